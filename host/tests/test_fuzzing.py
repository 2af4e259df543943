"""The libFuzzer targets of the firmware's host build (firmware/tests/fuzz, docs/fuzzing.md), briefly:
every target over its seed corpus plus a couple of seconds of fuzzing, under ASan and UBSan. The long
run is `make fuzz` (FUZZ_SECONDS per target)."""

from __future__ import annotations

import io
import os
import shutil

import pytest

from tinytrain.board import fuzzing

SECONDS = float(os.environ.get("TT_FUZZ_TEST_SECONDS", "1"))

pytestmark = pytest.mark.skipif(shutil.which(fuzzing.CLANG) is None, reason="clang is not installed")


def test_every_message_handler_and_the_frame_receiver_has_a_target_with_seeds() -> None:
    names = {t.name for t in fuzzing.TARGETS}
    assert {"frame_rx", "app", "restore"} | set(fuzzing.MESSAGE_TYPES) <= names
    from tinytrain.board.messages import MessageType

    handled = {m.value for m in MessageType if m.value < 0x80}
    assert handled <= set(fuzzing.MESSAGE_TYPES.values()), handled - set(fuzzing.MESSAGE_TYPES.values())
    for name in names:
        seeds = fuzzing.project_root() / fuzzing.CORPUS / name
        assert seeds.is_dir() and any(seeds.iterdir()), f"no seeds for {name}"


def test_a_short_fuzz_run_of_every_target_finds_nothing(tmp_path) -> None:
    out = io.StringIO()
    results = fuzzing.run(SECONDS, work=tmp_path, out=out)
    print("\n" + out.getvalue() + fuzzing.summary(results))
    assert len(results) == len(fuzzing.TARGETS)
    assert not [r for r in results if r.crash], out.getvalue()
    assert all(r.executions > 0 for r in results), out.getvalue()
    assert fuzzing.summary(results).startswith(f"fuzz: {len(results)} targets, ")


def test_findings_are_told_apart() -> None:
    assert fuzzing.classify("tinytrain-fuzz: silent tensor change: x\n") == "silent tensor change"
    assert fuzzing.classify("tinytrain-fuzz: the board no longer answers INFO\n") == "the board no longer answers INFO"
    assert fuzzing.classify("a.c:3:4: runtime error: signed integer overflow") == "UBSan report"
    assert fuzzing.classify("==1==ERROR: AddressSanitizer: heap-buffer-overflow") == "ASan report"


def test_make_fuzz_ends_with_one_summary_line_and_fails_on_a_crash(monkeypatch, capsys) -> None:
    found = [fuzzing.FuzzResult("train", executions=5), fuzzing.FuzzResult("app", executions=7, crash="ASan report")]
    monkeypatch.setattr(fuzzing, "run", lambda *a, **k: found)
    assert fuzzing.main(["--seconds", "1"]) == 1
    assert capsys.readouterr().out.strip().splitlines()[-1] == "fuzz: 2 targets, 12 executions, 1 crashes"
    monkeypatch.setattr(fuzzing, "run", lambda *a, **k: found[:1])
    assert fuzzing.main(["--seconds", "1"]) == 0
