"""`tinytrain fleet` end to end with boards: a QEMU board and host builds of the firmware on Flower's
simulation engine, with a board killed mid-round; host builds behind Flower's deployment engine
(SuperLink and SuperNodes as separate processes), with a board of another build refused. The command
runs as a subprocess (Ray and Flower stay out of the test process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinytrain.board.builds import build_host_firmware, default_build_config
from tinytrain.board.fleet import load_round, round_files
from tinytrain.board.host_board import HostBoard
from tinytrain.commands.pull import load_state

TINYTRAIN = [str(Path(sys.executable).with_name("tinytrain"))]


def fleet(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(TINYTRAIN + ["fleet", *args], capture_output=True, text=True, timeout=timeout)


def summary(path: Path) -> dict:
    return json.loads(path.read_text())


def test_simulation_engine_with_a_board_killed_mid_round(tmp_path):
    """A QEMU board and 2 host builds, 2 rounds; host board 2 is killed in round 1 and powered on again:
    round 1 completes with the other two, nothing on the server is lost, round 2 has all three again."""
    out = tmp_path / "fleet"
    r = fleet("--emulate", "1", "--host-boards", "2", "--rounds", "2", "--local-samples", "20", "--eval-samples",
              "30", "--out", str(out), "--kill", "2:1:3", "--baselines", "none")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    s = summary(out / "fleet.json")
    assert [b["kind"] for b in s["boards"]] == ["qemu", "host", "host"] and s["engine"] == "simulation"
    rounds = s["rounds"]
    assert [x["round"] for x in rounds] == [1, 2]
    assert [x["boards"] for x in rounds] == [2, 3]
    dropped = rounds[0]["dropped"]
    assert len(dropped) == 1 and dropped[0]["board"] == 2 and not dropped[0]["refused"]
    assert "board 2" in dropped[0]["reason"] and "round 1" in dropped[0]["reason"]
    assert rounds[1]["board_ids"] == [0, 1, 2] and s["boards"][2]["restarts"] == 1
    assert [e["what"] for e in s["events"]] == ["killed", "restarted"]
    assert "dropped: board 2" in r.stdout
    # The server lost nothing: a round file per round, each the aggregate of that round's replies.
    files = round_files(out)
    assert len(files) == 3
    states = [load_round(f) for f in files]
    assert [st["record"]["step_count"] for st in states] == [0, 60, 120]
    assert states[1]["record"]["samples"] == 40 and states[2]["record"]["samples"] == 60
    assert len({st["state"] for st in states}) == 3
    assert all(0 <= x["global_accuracy"] <= 1 and x["bytes_per_board"] == 2 * (s["state_bytes"] + 128)
               for x in rounds)
    assert s["whole_model_bytes_per_board"] > rounds[0]["bytes_per_board"]
    assert load_state(files[-1])["state"] == states[-1]["state"]
    assert (out / "fleet.png").stat().st_size > 10000
    # An existing run without --resume is refused in one sentence.
    again = fleet("--host-boards", "1", "--out", str(out), "--rounds", "3", "--local-samples", "40")
    assert again.returncode == 2 and again.stderr.startswith("tinytrain: error:") and "--resume" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


@pytest.fixture
def other_build_board():
    """A host build of the shipped model with another learning rate: same model and trained tensors,
    another program."""
    cfg = default_build_config()
    cfg.lr = 0.0123
    with HostBoard(build_host_firmware(cfg)) as board:
        yield board.url


def test_deployment_engine_refuses_a_board_of_another_build(tmp_path, other_build_board):
    """A SuperLink and one SuperNode per board as separate processes: two host builds train; a host
    build of another program is refused with one sentence and the round goes on."""
    out = tmp_path / "fleet"
    r = fleet("--engine", "deployment", "--port", other_build_board, "--host-boards", "2",
              "--rounds", "1", "--local-samples", "10", "--eval-samples", "40", "--out", str(out),
              "--json", str(tmp_path / "s.json"), "--baselines", "reference", "--split", "iid")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    s = summary(tmp_path / "s.json")
    assert s["engine"] == "deployment" and [b["kind"] for b in s["boards"]] == ["port", "host", "host"]
    (one,) = s["rounds"]
    assert one["boards"] == 2 and one["board_ids"] == [1, 2]
    (refused,) = one["dropped"]
    assert refused["refused"] and refused["board"] == 0
    assert "runs another build" in refused["reason"] and "flash it with the fleet's build" in refused["reason"]
    assert "refused: board 0" in r.stdout
    assert set(s) >= {"rounds", "local_only_accuracy", "centralized_accuracy"}
    assert 0 <= s["local_only_accuracy"] <= 1 and 0 <= s["centralized_accuracy"] <= 1
    assert len(s["local_only_per_round"]) == 1 and len(s["local_only_accuracy_per_board"]) == 3
    logs = out / "flower"
    assert (logs / "superlink.log").is_file() and (logs / "supernode-2.log").is_file()
    assert np.isclose(one["bytes_down_per_board"], s["state_bytes"] + 128)
