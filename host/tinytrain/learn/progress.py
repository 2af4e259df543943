"""Progress bars that suit where the output goes: tqdm's live bar on a terminal, and on anything else
(a CI log, a file, a pipe) plain lines, one every tenth of the way (or every 30 s) and one at the end,
instead of a carriage return per update."""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from tqdm import tqdm


class LineProgress:
    """The part of tqdm's interface tinytrain uses, written as whole lines."""

    def __init__(self, total: int | None, desc: str, unit: str, initial: int = 0, file: IO[str] | None = None,
                 every_fraction: float = 0.1, every_seconds: float = 30.0) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.file = file if file is not None else sys.stderr
        self.every_fraction, self.every_seconds = every_fraction, every_seconds
        self.postfix = ""
        self._t0 = self._last_time = time.monotonic()
        self._start = initial
        self._last_n = initial
        self._closed = False

    def __enter__(self) -> "LineProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self):  # pragma: no cover - tinytrain drives bars with update()
        raise TypeError("LineProgress is not iterable; wrap the iterable with progress_iter().")

    def line(self) -> str:
        def num(x: float) -> str:
            return str(int(x)) if float(x).is_integer() else f"{x:.1f}"

        done = f"{num(self.n)}/{num(self.total)}" if self.total else num(self.n)
        pct = f" ({100.0 * self.n / self.total:.0f}%)" if self.total else ""
        elapsed = time.monotonic() - self._t0
        rate = (self.n - self._start) / elapsed if elapsed > 0 else 0.0
        post = f", {self.postfix}" if self.postfix else ""
        return f"{self.desc}: {done} {self.unit}s{pct}, {elapsed:.0f} s, {rate:.1f} {self.unit}s/s{post}"

    def _emit(self) -> None:
        print(self.line(), file=self.file, flush=True)
        self._last_n, self._last_time = self.n, time.monotonic()

    def update(self, n: int = 1) -> None:
        self.n += n
        step = max(1, int(self.total * self.every_fraction)) if self.total else 0
        due = (step and self.n - self._last_n >= step) or time.monotonic() - self._last_time >= self.every_seconds
        if due and (not self.total or self.n < self.total):
            self._emit()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def reset_to(self, n: int) -> None:
        self.n = self._last_n = n

    def write(self, text: str) -> None:
        print(text, file=self.file, flush=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._emit()


class _TtyProgress(tqdm):
    def reset_to(self, n: int) -> None:
        self.n = n
        self.refresh()


class _Silent:
    n = 0

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, **values: Any) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def reset_to(self, n: int) -> None:
        self.n = n

    def write(self, text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        pass


def progress(total: int | None, desc: str, unit: str = "sample", disable: bool = False, initial: int = 0,
             file: IO[str] | None = None, **tty_options: Any):
    """A progress bar: tqdm on a terminal (with tty_options, e.g. bar_format), LineProgress otherwise,
    nothing when disabled."""
    if disable:
        silent = _Silent()
        silent.n = initial
        return silent
    out = file if file is not None else sys.stderr
    if getattr(out, "isatty", lambda: False)():
        return _TtyProgress(total=total, desc=desc, unit=unit, initial=initial, dynamic_ncols=True, file=out,
                            **tty_options)
    return LineProgress(total, desc, unit, initial, out)


def progress_iter(items, desc: str, unit: str = "sample", disable: bool = False):
    """Iterates over items with a progress bar (as tqdm(items) does)."""
    items = list(items)
    with progress(len(items), desc, unit, disable) as bar:
        for item in items:
            yield item
            bar.update(1)
