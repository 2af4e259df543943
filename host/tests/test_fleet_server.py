"""The fleet's ServerApp logic against a stand-in for Flower's Grid whose clients are the NumPy
reference of the boards' program (bit-exact with the firmware): rounds written to disk, resumable
after a crash with the same result, step counters, dropped and refused boards, round files that
`tinytrain push` takes."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Error, Message, MetricRecord, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from tinytrain.board import fleet
from tinytrain.board.builds import build_host_firmware, default_build_config
from tinytrain.commands.pull import load_state
from tinytrain.errors import TinytrainError
from tinytrain.learn.partitions import round_samples
from tinytrain.reference.executor import NumpyBackend


class Crash(Exception):
    pass


class ReferenceGrid:
    """Flower's Grid as the fleet server uses it; node n is board n - 100, trained in NumPy."""

    def __init__(self, boards: int, program, fail: dict | None = None, crash_in_round: int | None = None):
        self.nodes = [100 + b for b in range(boards)]
        self.program = program
        self.fail = fail or {}  # (round, board) -> reason
        self.crash_in_round = crash_in_round
        self.steps_seen: dict[tuple[int, int], tuple[int, int]] = {}
        self.ref = NumpyBackend(program)

    def get_node_ids(self):
        return list(self.nodes)

    def send_and_receive(self, messages, timeout=None):
        replies = []
        for m in messages:
            cfg = m.content["config"]
            board, r, local = m.metadata.dst_node_id - 100, int(cfg["server-round"]), int(cfg["local-samples"])
            if r == self.crash_in_round:
                raise Crash()
            if (r, board) in self.fail:
                reason = self.fail[(r, board)]
                err = fleet.BoardDropped(board, reason, refused="runs another" in reason)
                replies.append(Message(Error(code=1, reason=f"<class 'ClientAppException'>:<'{err}'>"), reply_to=m))
                continue
            data = fleet.fleet_data(*fleet.data_key(cfg, str(cfg["program-hash"])))
            ref = self.ref
            state = m.content["arrays"]["state"].numpy().tobytes()
            base = int(cfg["step-base"]) + board * local
            ref.load_state_bytes(struct.pack("<I", base) + state[4:])
            for j in round_samples(data.shares.shares[board], r, local):
                ref.train_step(data.inputs[j], int(data.labels[j]))
            learned = ref.state_bytes()
            self.steps_seen[(r, board)] = (base, ref.step_count)
            metrics = {"num-examples": local, "board": board, "train-accuracy": 0.5, "held-out-accuracy": 0.5,
                       "held-out-samples": 1, "serial-bytes": 0, "seconds": 0.0}
            replies.append(Message(RecordDict({"arrays": ArrayRecord({"state": Array(np.frombuffer(learned, np.uint8))}),
                                               "metrics": MetricRecord(metrics)}), reply_to=m))
        return replies


@pytest.fixture(scope="module")
def build_json() -> str:
    exe = build_host_firmware(default_build_config())
    return str(exe.parent / "generated" / "tinytrain.json")


@pytest.fixture(autouse=True)
def task_identity():
    # Messages built outside a Flower run need a run and node identity (Flower's engines set it).
    saved = (TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id)
    TaskIdentity.run_id, TaskIdentity.node_id, TaskIdentity.task_id = 1, 1, 1
    yield
    TaskIdentity._run_id, TaskIdentity._node_id, TaskIdentity._task_id = saved


def config(build_json: str, out: Path, **kw) -> fleet.FleetConfig:
    return fleet.FleetConfig(**{**dict(build=build_json, boards=3, rounds=3, local_samples=6, eval_samples=40,
                                       out=str(out), local_eval=False), **kw})


def test_rounds_resume_after_a_crash_to_the_same_states(build_json, tmp_path):
    straight = config(build_json, tmp_path / "straight")
    server = fleet.FleetServer(straight)
    grid = ReferenceGrid(3, server.compiled.program)
    server.run(grid)
    want = [fleet.load_round(p) for p in fleet.round_files(tmp_path / "straight")]
    assert [w["round"] for w in want] == [0, 1, 2, 3]
    # Every board trains with its own range of PRNG step counters; the global counter counts them all.
    assert grid.steps_seen[(2, 1)] == (3 * 6 + 6, 3 * 6 + 12)
    assert [struct.unpack_from("<I", w["state"])[0] for w in want] == [0, 18, 36, 54]
    assert all(w["record"]["boards"] == 3 and not w["record"]["dropped"] for w in want[1:])

    crashed = config(build_json, tmp_path / "crashed")
    with pytest.raises(Crash):
        fleet.FleetServer(crashed).run(ReferenceGrid(3, server.compiled.program, crash_in_round=3))
    assert len(fleet.round_files(tmp_path / "crashed")) == 3  # rounds 0..2 are on disk
    with pytest.raises(TinytrainError, match="--resume"):
        fleet.FleetServer(crashed).run(ReferenceGrid(3, server.compiled.program))
    crashed.resume = True
    fleet.FleetServer(crashed).run(ReferenceGrid(3, server.compiled.program))
    got = [fleet.load_round(p) for p in fleet.round_files(tmp_path / "crashed")]
    assert [g["state"] for g in got] == [w["state"] for w in want]
    # A round file is a learned state `tinytrain push` restores to a board.
    saved = load_state(fleet.round_path(tmp_path / "crashed", 3))
    assert saved["state"] == got[3]["state"] and saved["program_hash"] == server.compiled.program_hash


def test_resume_refuses_another_setup(build_json, tmp_path):
    cfg = config(build_json, tmp_path, rounds=1)
    server = fleet.FleetServer(cfg)
    server.run(ReferenceGrid(3, server.compiled.program))
    other = config(build_json, tmp_path, rounds=2, resume=True, alpha=5.0)
    with pytest.raises(TinytrainError, match="another setup"):
        fleet.FleetServer(other).run(ReferenceGrid(3, server.compiled.program))


def test_a_dropped_board_is_left_out_of_its_round_only(build_json, tmp_path):
    cfg = config(build_json, tmp_path, rounds=2)
    server = fleet.FleetServer(cfg)
    fail = {(1, 2): "board 2 at socket://x dropped out of round 1 at sample 3 of 6: it stopped answering."}
    grid = ReferenceGrid(3, server.compiled.program, fail=fail)
    server.run(grid)
    r1, r2 = (fleet.load_round(fleet.round_path(tmp_path, r))["record"] for r in (1, 2))
    assert r1["boards"] == 2 and r1["board_ids"] == [0, 1] and r1["samples"] == 12
    assert r1["dropped"] == [{"board": 2, "node": 102, "reason": fail[(1, 2)], "refused": False}]
    assert r2["boards"] == 3 and not r2["dropped"]  # back in the next round
    # Round 1's global state is the average of boards 0 and 1 only, as the aggregation computes it.
    r0 = fleet.load_round(fleet.round_path(tmp_path, 0))
    assert r0["record"]["global_accuracy"] >= 0
    assert r1["step_count"] == 18  # the dropped board's counters are not handed out again


def test_a_fleet_whose_every_board_is_refused_stops_in_one_sentence(build_json, tmp_path):
    cfg = config(build_json, tmp_path, boards=2, rounds=2)
    server = fleet.FleetServer(cfg)
    fail = {(1, b): f"board {b} at socket://x runs another model; flash it with the fleet's build." for b in (0, 1)}
    with pytest.raises(TinytrainError, match="every board was refused in round 1, e.g. board 0 at socket://x runs"):
        server.run(ReferenceGrid(2, server.compiled.program, fail=fail))


def test_error_reasons_become_one_sentence():
    text = ("<class 'ray.exceptions.RayTaskError(ClientAppException)'>:<'ray::ClientAppActor.run() ... Traceback "
            "(most recent call last): ... Message: <<tinytrain board=3 refused: board 3 at socket://h:1 runs another "
            "build of fmnist-mbv2 (program 0123456789ab, the fleet's ba9876543210: ...); flash it with the fleet's "
            "build.>>'>")
    msg = Message(Error(code=1, reason=text), reply_to=Message(RecordDict(), dst_node_id=7, message_type="train"))
    board, sentence, refused = fleet._reason(msg)
    assert (board, refused) == (3, True) and sentence.startswith("board 3 at socket://h:1 runs another build")
    plain = Message(Error(code=1, reason="Traceback ...\nValueError: something else"),
                    reply_to=Message(RecordDict(), dst_node_id=7, message_type="train"))
    assert fleet._reason(plain) == (None, "ValueError: something else", False)


def test_run_config_round_trips_with_the_flower_app():
    import tomllib

    app = tomllib.loads((fleet.FLOWER_APP / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    assert app["config"] == fleet.FleetConfig().to_run_config()
    assert app["components"] == {"serverapp": "tinytrain.board.fleet:server_app",
                                 "clientapp": "tinytrain.board.fleet:client_app"}
    cfg = fleet.FleetConfig(boards=7, alpha=0.25, resume=True, out="/x")
    assert fleet.FleetConfig.from_run_config(cfg.to_run_config()) == cfg


def test_flower_and_ray_stay_in_the_board_layer():
    import ast

    import tinytrain

    root = Path(tinytrain.__file__).parent
    users = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            if any(n.split(".")[0] in ("flwr", "ray") for n in names):
                users.add(path.relative_to(root).as_posix())
    assert users == {"board/fleet.py", "board/fleet_engines.py"}
