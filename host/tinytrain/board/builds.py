"""Builds the firmware: MCU images through PlatformIO, and the host board (the
same firmware as a Linux process under AddressSanitizer and UBSan) and C test
programs with gcc into build/host/.

    python -m tinytrain.board.builds host      # -> build/host/tinytrain_host
    python -m tinytrain.board.builds qemu_m7   # -> .pio/build/qemu_m7/firmware.elf
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from tinytrain.errors import TinytrainError

# Same code generation rules as the MCU builds, plus the sanitizers.
HOST_CFLAGS = [
    "-std=c11",
    "-g",
    "-O1",
    "-fno-omit-frame-pointer",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-ffp-contract=off",
    "-Wall",
    "-Wextra",
    "-Werror",
]


class BuildError(TinytrainError):
    """A firmware or test build failed, or its tools are missing."""


def project_root() -> Path:
    root = Path(__file__).resolve().parents[3]
    if not (root / "platformio.ini").is_file() or not (root / "firmware").is_dir():
        raise BuildError(f"No tinytrain checkout around {root}; firmware builds need the repository's sources.")
    return root


@contextmanager
def exclusive(lock: Path) -> Iterator[None]:
    """Holds an advisory lock on the file `lock` (created if missing): builds of the same folder from
    several processes (e.g. pytest-xdist workers) run one after the other instead of writing over each
    other. Without fcntl (Windows) it does nothing."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def firmware_elf(env: str) -> Path:
    return project_root() / ".pio" / "build" / env / "firmware.elf"


def host_build_dir() -> Path:
    return project_root() / "build" / "host"


def pio_executable() -> str:
    beside = Path(sys.executable).with_name("pio")
    if beside.is_file():
        return str(beside)
    found = shutil.which("pio")
    if found is None:
        raise BuildError("PlatformIO (pio) is not installed; run `make setup`.")
    return found


def build_firmware(env: str = "qemu_m7", *, verbose: bool = False, model_options: dict[str, str] | None = None,
                   build_dir: Path | None = None) -> Path:
    """Runs `pio run -e ENV` (incremental) and returns the ELF. model_options are TINYTRAIN_*
    overrides (e.g. {"TINYTRAIN_MODEL": ...}); build_dir keeps such a build apart from the default one."""
    return run_pio_build(env, verbose=verbose, model_options=model_options, build_dir=build_dir)[0]


def run_pio_build(env: str = "qemu_m7", *, verbose: bool = False, model_options: dict[str, str] | None = None,
                  build_dir: Path | None = None) -> tuple[Path, str]:
    """build_firmware, also returning PlatformIO's output (empty when verbose: it went to the terminal).
    One build of a folder at a time, across processes."""
    root = project_root()
    cmd = [pio_executable(), "run", "-e", env, "-d", str(root)]
    run_env = dict(os.environ, **(model_options or {}))
    if build_dir is not None:
        run_env["PLATFORMIO_BUILD_DIR"] = str(build_dir)
    with exclusive((build_dir or root / ".pio" / "build") / f".{env}.lock"):
        result = subprocess.run(cmd, cwd=root, text=True, capture_output=not verbose, env=run_env)
    if result.returncode != 0:
        tail = "\n".join((result.stdout or "").splitlines()[-30:] + (result.stderr or "").splitlines()[-10:])
        raise BuildError(f"`{' '.join(cmd)}` failed:\n{tail}\nThe firmware for {env} did not build.")
    elf = build_dir / env / "firmware.elf" if build_dir is not None else firmware_elf(env)
    return elf, result.stdout or ""


def firmware_sources(board_dirs: Sequence[str]) -> list[Path]:
    """The rule of the PlatformIO builder: every .c under firmware/ except
    firmware/tests/ and the folders of other boards."""
    fw = project_root() / "firmware"
    sources = []
    for path in sorted(fw.rglob("*.c")):
        rel = path.relative_to(fw).parts
        if rel[0] == "tests":
            continue
        if rel[0] == "boards" and len(rel) > 2 and rel[1] not in board_dirs:
            continue
        sources.append(path)
    return sources


def git_describe(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=root, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "nogit"
    except (OSError, subprocess.SubprocessError):
        return "nogit"


def write_build_info(generated_dir: Path) -> Path:
    """The host build's build_info.c (tools/platformio/scripts/build_info.py does it for pio)."""
    generated_dir.mkdir(parents=True, exist_ok=True)
    path = generated_dir / "build_info.c"
    build_id = f"{git_describe(project_root())} {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}"
    path.write_text(
        "/* Generated at build time by tinytrain.board.builds; do not edit. */\n"
        f'const char tt_build_id[] = "{build_id}";\n'
    )
    return path


def _newest_mtime(paths: Iterable[Path]) -> float:
    return max((p.stat().st_mtime for p in paths), default=0.0)


def compile_host_program(
    output: Path, sources: Sequence[Path], *, include_dirs: Sequence[Path] = (), flags: Sequence[str] = ()
) -> Path:
    """gcc with sanitizers; skipped when the output is newer than every source and header.

    Each source is compiled on its own (on every core) into an object cached under build/host/objects/
    by the hash of its preprocessed text and the compiler's flags, then all are linked: the builds of
    different models share the objects of every file their options do not change."""
    fw = project_root() / "firmware"
    headers = [h for d in [fw, *include_dirs] for h in Path(d).rglob("*.h")]
    inputs = list(sources) + headers + [Path(__file__)]
    if output.exists() and output.stat().st_mtime >= _newest_mtime(inputs):
        return output
    if shutil.which("gcc") is None:
        raise BuildError("gcc is not installed; run `make setup`.")
    output.parent.mkdir(parents=True, exist_ok=True)
    cflags = [*HOST_CFLAGS, *flags, f"-I{fw}", *(f"-I{inc}" for inc in include_dirs)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        objects = list(pool.map(lambda src: _cached_object(Path(src), cflags, output.name), sources))
    tmp = output.with_name(f".{output.name}.{os.getpid()}.tmp")
    _gcc([*HOST_CFLAGS, *flags, *map(str, objects), "-o", str(tmp)], f"Linking {output.name}")
    tmp.replace(output)  # a program another process is starting is never half written
    return output


@cache
def _gcc_version() -> str:
    return subprocess.run(["gcc", "--version"], capture_output=True, text=True).stdout


def _gcc(args: list[str], what: str) -> str:
    result = subprocess.run(["gcc", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(f"{what} failed:\n{result.stderr.strip()}")
    return result.stdout


def _cached_object(source: Path, cflags: list[str], program: str) -> Path:
    """The object of one source: its preprocessed text (which carries every -D and -I) and the other
    flags are the key, as in ccache's preprocessor mode."""
    text = _gcc([*cflags, "-E", str(source)], f"Compiling {program} ({source.name})")
    key = hashlib.sha256(_gcc_version().encode())
    key.update(" ".join(f for f in cflags if not f.startswith(("-D", "-U", "-I"))).encode() + b"\0")
    key.update(text.encode())
    obj = host_build_dir() / "objects" / f"{source.stem}-{key.hexdigest()[:20]}.o"
    if not obj.exists():
        obj.parent.mkdir(parents=True, exist_ok=True)
        tmp = obj.with_name(f".{obj.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            _gcc([*cflags, "-c", str(source), "-o", str(tmp)], f"Compiling {program} ({source.name})")
            tmp.replace(obj)
        finally:
            tmp.unlink(missing_ok=True)
    return obj


def default_build_config(env: str = "qemu_m7"):
    """The model options of a PlatformIO env (platformio.ini, read by PlatformIO's own parser: [env]
    defaults and `extends` apply), with the TINYTRAIN_* overrides: what `pio run -e ENV` builds."""
    from platformio.project.config import ProjectConfig

    from tinytrain.compile.build_config import resolve

    root = project_root()
    ini = ProjectConfig(str(root / "platformio.ini"), parse_extra=False)
    return resolve(lambda option: ini.get(f"env:{env}", option, None), root)


def build_host_firmware(config=None, flags: Sequence[str] = (), checked: bool = True) -> Path:
    """The firmware with boards/host (a TCP server standing in for the serial line) and the model of
    `config` (default: platformio.ini's), built with sanitizers and, when checked, the arena write checks.

    Like the PlatformIO builder it compiles <build>/generated/*.c, where the model code is generated;
    each configuration gets its own folder under build/host/."""
    from tinytrain.compile.build_config import build_key

    config = config or default_build_config()
    if not Path(config.model).exists():
        raise BuildError(f"the model {config.model} does not exist.")
    key = build_key(config, str(checked).encode(), " ".join(flags).encode())[:12]
    out_dir = host_build_dir() / f"engine-{key}"
    with exclusive(out_dir.with_name(f".engine-{key}.lock")):
        return _build_host_firmware(config, out_dir, flags, checked)


def _build_host_firmware(config, out_dir: Path, flags: Sequence[str], checked: bool) -> Path:
    import json

    from tinytrain.compile.build_config import compile_for_build

    output = out_dir / "tinytrain_host"
    generated = out_dir / "generated"
    if not (generated / "tinytrain.json").exists():
        compile_for_build(config, generated)
    sources = firmware_sources(["host"])
    if not output.exists() or output.stat().st_mtime < _newest_mtime(sources + list((project_root() / "firmware").rglob("*.h"))):
        write_build_info(generated)
    info = json.loads((generated / "tinytrain.json").read_text())
    # As in the PlatformIO build: samples arrive zero-copy, only the largest payload grows with the input.
    extra = [f"-DTT_MAX_PAYLOAD={max(4096, info.get('sample_bytes', info['input_bytes']) + 12)}u",
             "-DTT_RX_BUFFER_BYTES=4096u", f"-DTT_MODEL_CLASSES={info['classes']}u"]
    extra += [] if config.checkpoints else ["-DTT_HOST_NO_NV"]
    extra += ["-DTT_CHECKED"] if checked else []
    return compile_host_program(
        output, sources + sorted(generated.glob("*.c")), include_dirs=[generated], flags=[*extra, *flags]
    )


def build_c_test(name: str, sources: Sequence[str], flags: Sequence[str] = ()) -> Path:
    """A test driver from firmware/tests/ plus firmware sources (paths relative to firmware/)."""
    fw = project_root() / "firmware"
    output = host_build_dir() / "tests" / name
    with exclusive(output.with_name(f".{name}.lock")):
        return compile_host_program(output, [fw / s for s in sources], flags=flags)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinytrain.board.builds", description=__doc__.splitlines()[0])
    parser.add_argument("target", help="`host`, or a PlatformIO env such as qemu_m7 or disco_f746ng")
    args = parser.parse_args(argv)
    try:
        path = build_host_firmware() if args.target == "host" else build_firmware(args.target, verbose=True)
    except TinytrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(os.path.relpath(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
