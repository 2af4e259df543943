"""A fleet of boards learning together on Flower: the ServerApp that aggregates only the trained
tensors, and the ClientApp that drives one board through the serial protocol.

Every round, for every board (one Flower ClientApp per board, identified by its node config's
`partition-id`):

1. the ClientApp opens the board's line, asks MODEL and refuses a board whose model, program or
   trained-state layout is not the fleet's (one sentence: "board 2 runs another build ...");
2. pushes the global learned state (PARAMS_SET: staged, SHA-256 checked, atomic), with the board's own
   PRNG step counter (below);
3. streams its local samples of this round (TRAIN), `local-samples` of its share of the data;
4. pulls what the board learned (PARAMS_GET), measures it on its held-out share (INFER), and returns
   the state with its sample count.

The ServerApp averages the returned states in the int8 layout (tinytrain.learn.federated_average),
writes every round's global state to `OUT/round-NNN.npz` (a `tinytrain push`-able state file that
also holds the round's figures) before the next round starts, and measures the global model on the
evaluation set with the NumPy reference of the boards' program (bit-exact with the firmware).
A board that fails mid-round makes its ClientApp raise; Flower reports an error reply for it, the
round is aggregated from the others, and the board is asked again in the next round. After a server
crash the run continues from the last round file (`resume`).

Step counters. The update's stochastic rounding draws from mix32(mix32(seed ^ step) + index) with the
board's step counter (docs/numerics.md). Boards that started a round from the same counter would draw
the same bits at the same steps, so their rounding errors would not average out. The global state's
counter G counts the training steps scheduled in the fleet so far (G = rounds x boards x local
samples); in a round board k trains with counters G + k L ... G + (k + 1) L - 1 (L local samples),
and the next global counter is G + boards x L: no two steps of the fleet ever draw the same bits.

Flower is imported only here and in tinytrain.board.fleet_engines (the board layer).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import struct
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # Flower's usage telemetry: no network here, none wanted
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from tinytrain.board.engine_client import EngineClient
from tinytrain.board.link import Link
from tinytrain.compile.build_config import BuildConfig, read_build_info
from tinytrain.compile.compiler import Compiled
from tinytrain.errors import TinytrainError
from tinytrain.ir.graph import Model
from tinytrain.learn.datasets import BUILTIN
from tinytrain.learn.federated_average import StateLayout, federated_average, state_layout
from tinytrain.learn.partitions import Partition, partition, round_samples, split_like
from tinytrain.learn.sample_input import board_samples
from tinytrain.reference.executor import NumpyBackend

FLOWER_APP = Path(__file__).with_name("flower_app")  # the Flower App (pyproject.toml) for `flwr run`
ROUND_FILE = "round-{:03d}.npz"
ROUND_PATTERN = re.compile(r"^round-(\d{3,})\.npz$")
STATE_FORMAT = 2  # the keys of `tinytrain pull` files (commands/pull.py), so `tinytrain push` takes a round file
NPY_HEADER = 128  # bytes a Flower Array adds to a 1-D uint8 array (the .npy header)
ERROR_FILE = "server-error.txt"
JOIN_SECONDS = 120.0  # how long the first round waits for every board's node to connect


# ---------------------------------------------------------------- configuration


@dataclass
class FleetConfig:
    """A fleet run; the Flower run config carries it as key-value pairs (dashes for underscores),
    and flower_app/pyproject.toml lists the same keys with their defaults."""

    build: str = ""  # the boards' build: a tinytrain.json or a build folder
    boards: int = 4
    rounds: int = 5
    local_samples: int = 200
    data: str = "mnist:train"
    eval_data: str = "mnist:test"
    eval_samples: int = 0  # 0: all of eval_data
    split: str = "dirichlet"
    alpha: float = 0.5
    seed: int = 0
    out: str = "fleet"
    resume: bool = False
    round_timeout: float = 0.0  # 0: 300 s + 2 s per local sample
    local_eval: bool = True  # also measure every board's own model on the evaluation set (server side)
    board_urls: str = ""  # simulation: the comma-separated lines of boards 0, 1, ...

    def to_run_config(self) -> dict:
        return {f.name.replace("_", "-"): getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_run_config(cls, run_config: dict) -> "FleetConfig":
        known = {f.name: f.type for f in fields(cls)}
        values = {}
        for key, value in run_config.items():
            name = str(key).replace("-", "_")
            if name in known:
                default = getattr(cls(), name)
                values[name] = type(default)(value) if not isinstance(default, bool) else bool(value)
        return cls(**values)

    @property
    def timeout(self) -> float:
        return self.round_timeout if self.round_timeout > 0 else 300.0 + 2.0 * self.local_samples

    def setup(self) -> dict:
        """What decides a run's rounds: a resumed run must have the same."""
        d = asdict(self)
        return {k: d[k] for k in ("boards", "local_samples", "data", "eval_data", "eval_samples", "split", "alpha",
                                  "seed")}


# ---------------------------------------------------------------- round files


def round_path(out: Path, round_: int) -> Path:
    return out / ROUND_FILE.format(round_)


def save_round(out: Path, round_: int, state: bytes, compiled_info: dict, record: dict) -> Path:
    """The global state after a round, with the round's figures, written atomically (a crash leaves
    either the previous file set or the new one, never half a file)."""
    path = round_path(out, round_)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, format=np.array(STATE_FORMAT), model_hash=np.array(compiled_info["model_hash"]),
                 model_name=np.array(compiled_info["model_name"]), state_hash=np.array(compiled_info["state_hash"]),
                 program_hash=np.array(compiled_info["program_hash"]), scheme=np.array(compiled_info["scheme"]),
                 state=np.frombuffer(state, dtype=np.uint8), round=np.array(round_),
                 record=np.array(json.dumps(record)))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_round(path: Path) -> dict:
    """A round file: state, hashes, round and record; one sentence for a file that is not one."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {"state": z["state"].tobytes(), "round": int(z["round"]), "record": json.loads(str(z["record"])),
                    **{k: str(z[k]) for k in ("model_hash", "state_hash", "program_hash", "scheme", "model_name")}}
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise TinytrainError(f"{path} is not a round file of a fleet run ({type(exc).__name__}).") from None


def round_files(out: Path) -> list[Path]:
    """The round files in OUT by round number, which must run 0, 1, 2 ... without a gap."""
    if not out.is_dir():
        return []
    found = sorted((int(m.group(1)), out / name) for name in os.listdir(out) if (m := ROUND_PATTERN.match(name)))
    for expect, (n, path) in enumerate(found):
        if n != expect:
            raise TinytrainError(f"{out} holds round files with a gap (round {expect} is missing before {path.name}).")
    return [p for _, p in found]


def load_records(out: Path) -> list[dict]:
    return [load_round(p)["record"] for p in round_files(out)]


# ---------------------------------------------------------------- what client and server share


def find_build(program_hash: str, hint: str = "") -> BuildConfig:
    """The build configuration of a program: the hinted build, else any build on this machine
    (.pio/build/*, build/host/*) whose tinytrain.json has that program hash."""
    from tinytrain.board.builds import host_build_dir, project_root

    candidates = [Path(hint)] if hint else []
    try:
        root = project_root()
        candidates += sorted((root / ".pio" / "build").glob("*/generated/tinytrain.json"))
        candidates += sorted(host_build_dir().glob("*/generated/tinytrain.json"))
    except TinytrainError:
        pass
    for path in candidates:
        try:
            cfg, info = read_build_info(path)
        except TinytrainError:
            continue
        if info.get("program_hash") == program_hash:
            return cfg
    raise TinytrainError(f"no firmware build on this machine has the fleet's program {program_hash[:12]}; build the "
                         "boards' firmware here or give the SuperNode node config build='PATH/tinytrain.json'.")


@functools.lru_cache(maxsize=4)
def _model(program_hash: str, hint: str) -> Model:
    return find_build(program_hash, hint).load_model()


@dataclass
class FleetData:
    """The samples of every board: the training share and the held-out share, as board inputs."""

    wire: np.ndarray  # what TRAIN frames carry (int8 inputs, or a sensor model's int16 counts)
    inputs: np.ndarray  # int8 model inputs (the reference's)
    labels: np.ndarray
    eval_wire: np.ndarray
    eval_inputs: np.ndarray
    eval_labels: np.ndarray
    shares: Partition
    held_out: Partition


def _samples(spec: str, model: Model, program_hash: str, limit: int | None = None) -> tuple[np.ndarray, ...]:
    """board_samples of a dataset spec; a built-in dataset's (fixed content) are kept in a cache file
    per model, because a deployment's ClientApp is a new process every round and parsing mnist's CSV
    alone takes seconds."""
    base = re.sub(r"\[[^\]]*\]$", "", spec)
    builtin = base in BUILTIN or base.startswith("watch:subject=")
    if not builtin:
        return board_samples(spec, model, limit)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "tinytrain" / "fleet-samples"
    path = cache / (hashlib.sha256(f"{program_hash}|{spec}|{limit}".encode()).hexdigest()[:24] + ".npz")
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["wire"], z["inputs"], z["labels"]
    except (OSError, ValueError, KeyError, EOFError):
        pass
    wire, x, y = board_samples(spec, model, limit)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.savez(f, wire=wire, inputs=x, labels=y)
        os.replace(tmp, path)
    except OSError:
        pass  # no cache: slower, not wrong
    return wire, x, y


@functools.lru_cache(maxsize=4)
def fleet_data(program_hash: str, hint: str, data: str, eval_data: str, eval_samples: int, boards: int, split: str,
               alpha: float, seed: int) -> FleetData:
    """Every board computes the same split from the same (seeded) specification: a board's data never
    travels, only the specification of which samples are its own."""
    model = _model(program_hash, hint)
    wire, x, y = _samples(data, model, program_hash)
    ewire, ex, ey = _samples(eval_data, model, program_hash, eval_samples or None)
    shares = partition(y, boards, split, alpha, seed, model.num_classes)
    held = split_like(ey, shares.proportions, seed)
    return FleetData(wire, x, y, ewire, ex, ey, shares, held)


def data_key(cfg: FleetConfig | ConfigRecord, program_hash: str) -> tuple:
    get = (lambda k: cfg[k]) if isinstance(cfg, ConfigRecord) else (lambda k: getattr(cfg, k.replace("-", "_")))
    return (program_hash, str(get("build")), str(get("data")), str(get("eval-data")), int(get("eval-samples")),
            int(get("boards")), str(get("split")), float(get("alpha")), int(get("seed")))


# ---------------------------------------------------------------- the ClientApp: one board


class BoardDropped(Exception):
    """A board could not take part in a round; the message carries one sentence between markers that
    the server finds in Flower's error reason, whatever the engine wrapped around it."""

    def __init__(self, board: int, sentence: str, refused: bool = False):
        kind = "refused" if refused else "dropped"
        super().__init__(f"<<tinytrain board={board} {kind}: {sentence}>>")


DROP_MARK = re.compile(r"<<tinytrain board=(\d+) (dropped|refused): (.*?)>>", re.S)


def _check_board(engine: EngineClient, board: int, url: str, cfg: ConfigRecord) -> None:
    """The board must run the fleet's model, program and trained-state layout; else it is refused."""
    m = engine.model
    if m.hash != cfg["model-hash"]:
        raise BoardDropped(board, f"board {board} at {url} runs model {m.name} ({m.hash[:12]}), not the fleet's "
                                  f"{str(cfg['model-hash'])[:12]}; flash it with the fleet's build.", refused=True)
    if m.state_hash != cfg["state-hash"]:
        raise BoardDropped(board, f"board {board} at {url} trains other tensors (scheme {m.scheme}, state layout "
                                  f"{m.state_hash[:12]}) than the fleet ({str(cfg['state-hash'])[:12]}); flash it with "
                                  "the fleet's build.", refused=True)
    if m.program_hash != cfg["program-hash"]:
        raise BoardDropped(board, f"board {board} at {url} runs another build of {m.name} (program "
                                  f"{m.program_hash[:12]}, the fleet's {str(cfg['program-hash'])[:12]}: other compile "
                                  "options or compiler version); flash it with the fleet's build.", refused=True)


def _progress(cfg: ConfigRecord, board: int, round_: int, step: int, of: int) -> None:
    folder = str(cfg.get("progress-dir", ""))
    if not folder or not os.path.isdir(folder):
        return
    path = os.path.join(folder, f"board-{board}.json")
    try:
        with open(path + ".tmp", "w") as f:
            json.dump({"round": round_, "step": step, "of": of, "pid": os.getpid(), "time": time.time()}, f)
        os.replace(path + ".tmp", path)
    except OSError:
        pass


def train_board(url: str, board: int, global_state: bytes, cfg: ConfigRecord, build: str = "") -> tuple[bytes, dict]:
    """One round on one board: check, push, train, pull, measure. Raises BoardDropped. `build`: the
    board's tinytrain.json on this machine, if not the server's path (found by program hash otherwise)."""
    round_, local = int(cfg["server-round"]), int(cfg["local-samples"])
    if hashlib.sha256(global_state).hexdigest() != cfg["state-sha256"]:
        raise BoardDropped(board, f"the global state for board {board} arrived damaged (its SHA-256 differs).")
    t0 = time.monotonic()
    done = 0
    try:
        with Link(url) as link:
            engine = EngineClient(link)
            _check_board(engine, board, url, cfg)
            key = data_key(cfg, str(cfg["program-hash"]))
            data = fleet_data(key[0], build or key[1], *key[2:])
            if not 0 <= board < len(data.shares):
                raise BoardDropped(board, f"node of board {board} has partition-id {board} but the fleet has "
                                          f"{len(data.shares)} boards (0..{len(data.shares) - 1}).", refused=True)
            idx = round_samples(data.shares.shares[board], round_, local)
            base = int(cfg["step-base"]) + board * local
            engine.params_set(struct.pack("<I", base & 0xFFFFFFFF) + global_state[4:], engine.model.state_hash)
            correct = 0
            _progress(cfg, board, round_, 0, local)
            for done, j in enumerate(idx, start=1):
                r = engine.train(data.wire[j], int(data.labels[j]))
                correct += int(r.prediction == int(data.labels[j]))
                _progress(cfg, board, round_, done, local)
            learned = engine.params_get()
            steps = struct.unpack_from("<I", learned, 0)[0]
            if steps != (base + local) & 0xFFFFFFFF:
                raise TinytrainError(f"its step counter is {steps} after the round, not {base + local}")
            held = data.held_out.shares[board]
            hits = sum(int(engine.infer(data.eval_wire[j]).prediction == int(data.eval_labels[j])) for j in held)
            serial = link.bytes_sent + link.bytes_received
    except BoardDropped:
        raise
    except TinytrainError as exc:
        text = str(exc).rstrip(".")
        where = f"at sample {done} of {local}" if done else "before training"
        raise BoardDropped(board, f"board {board} at {url} dropped out of round {round_} {where}: "
                                  f"{text[:1].lower()}{text[1:]}.") from None
    metrics = {
        "num-examples": local,
        "board": board,
        "train-accuracy": correct / local,
        "held-out-accuracy": hits / len(held) if len(held) else -1.0,
        "held-out-samples": len(held),
        "serial-bytes": serial,
        "seconds": time.monotonic() - t0,
    }
    return learned, metrics


def board_url(context: Context, cfg: ConfigRecord, board: int) -> str:
    """The board of this node: node config `board-url` (deployment), else the board-urls list of the
    run (simulation: the command started the boards and numbered them like the partitions)."""
    url = str(context.node_config.get("board-url", ""))
    if url:
        return url
    urls = [u for u in str(cfg.get("board-urls", "")).split(",") if u]
    if board >= len(urls):
        raise BoardDropped(board, f"node {board} has no board: give its SuperNode node config board-url='URL'.")
    return urls[board]


client_app = ClientApp()


@client_app.train()
def _client_train(msg: Message, context: Context) -> Message:
    cfg = msg.content["config"]
    board = int(context.node_config.get("partition-id", 0))
    state = msg.content["arrays"]["state"].numpy().tobytes()
    learned, metrics = train_board(board_url(context, cfg, board), board, state, cfg,
                                   str(context.node_config.get("build", "")))
    content = RecordDict({"arrays": ArrayRecord({"state": Array(np.frombuffer(learned, dtype=np.uint8))}),
                          "metrics": MetricRecord(metrics)})
    return Message(content, reply_to=msg)


# ---------------------------------------------------------------- the ServerApp


def accuracy(reference: NumpyBackend, state: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """The model of a learned state on samples, computed by the NumPy reference of the boards' program
    (the firmware's logits are identical, tests/test_engine_host_build.py)."""
    reference.load_state_bytes(state)
    return float(np.mean([int(np.argmax(reference.infer(xi))) == int(yi) for xi, yi in zip(x, y)])) if len(y) else 0.0


def _reason(msg: Message) -> tuple[int | None, str, bool]:
    """(board, sentence, refused) of an error reply."""
    text = str(msg.error.reason)
    m = DROP_MARK.search(text)
    if m:
        return int(m.group(1)), m.group(3).strip(), m.group(2) == "refused"
    lines = [ln.strip() for ln in text.replace("\\n", "\n").splitlines() if ln.strip()]
    return None, (lines[-1] if lines else "no reason given")[:300], False


class FleetStrategy(FedAvg):
    """FedAvg over every connected board, aggregating learned states in the int8 layout."""

    def __init__(self, layout: StateLayout, boards: int, join_seconds: float = JOIN_SECONDS):
        super().__init__(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=1, min_available_nodes=1,
                         weighted_by_key="num-examples")
        self.layout = layout
        self.boards = boards
        self.join_seconds = join_seconds
        self.board_of_node: dict[int, int] = {}
        self.outcome: dict = {}
        self.step_after = 0

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid):
        deadline = time.monotonic() + self.join_seconds
        while len(nodes := sorted(grid.get_node_ids())) < self.boards and time.monotonic() < deadline:
            time.sleep(0.5)
        if not nodes:
            raise TinytrainError(f"no board's node joined the fleet within {self.join_seconds:.0f} s.")
        # Later rounds do not wait: a board that is gone is reported as dropped.
        self.join_seconds = 0.0
        config["server-round"] = server_round
        record = RecordDict({"arrays": arrays, "config": config})
        self.outcome = {"asked": len(nodes)}
        return [Message(content=record, message_type=MessageType.TRAIN, dst_node_id=n) for n in nodes]

    def aggregate_train(self, server_round: int, replies) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        states, weights, per_board, board_states, dropped = [], [], {}, {}, []
        for msg in replies:
            node = msg.metadata.src_node_id
            if msg.has_error():
                board, sentence, refused = _reason(msg)
                board = board if board is not None else self.board_of_node.get(node)
                dropped.append({"board": board, "node": node, "reason": sentence, "refused": refused})
                continue
            m = msg.content["metrics"]
            board = int(m["board"])
            if board in per_board:
                dropped.append({"board": board, "node": node, "refused": True,
                                "reason": f"two nodes answered as board {board}: give every SuperNode its own "
                                          "partition-id (the second one was left out)."})
                continue
            self.board_of_node[node] = board
            states.append(msg.content["arrays"]["state"].numpy().tobytes())
            weights.append(int(m["num-examples"]))
            per_board[board] = {k: m[k] for k in m.keys()}
            board_states[board] = states[-1]
        answered = {msg.metadata.src_node_id for msg in replies}
        for node in sorted(set(self.outcome.get("nodes", [])) - answered):
            dropped.append({"board": self.board_of_node.get(node), "node": node,
                            "reason": "no reply within the round's timeout", "refused": False})
        self.outcome.update(per_board=per_board, board_states=board_states, dropped=dropped, states=states,
                            weights=weights)
        if not states:
            return None, None
        global_state = federated_average(self.layout, states, weights, server_round, self.step_after)
        metrics = MetricRecord({"boards": len(states), "num-examples": sum(weights)})
        return ArrayRecord({"state": Array(np.frombuffer(global_state, dtype=np.uint8))}), metrics


class FleetServer:
    """The rounds of a fleet run: resumable, every round's global state on disk before the next."""

    def __init__(self, cfg: FleetConfig):
        self.cfg = cfg
        self.out = Path(cfg.out).resolve()
        if not cfg.build:
            raise TinytrainError("the fleet's run config names no build: give build='PATH/tinytrain.json' of the "
                                 "boards' firmware (flwr run ... --run-config).")
        build_cfg, info = read_build_info(Path(cfg.build))
        compiled: Compiled = build_cfg.compile()
        if compiled.program_hash != info.get("program_hash"):
            raise TinytrainError(f"{cfg.build} is a stale build: this tinytrain compiles its configuration to another "
                                 "program; rebuild the boards' firmware.")
        self.compiled = compiled
        self.layout = state_layout(compiled.program)
        self.reference = NumpyBackend(compiled.program)
        self.info = {"model_hash": compiled.model_hash, "state_hash": compiled.state_hash,
                     "program_hash": compiled.program_hash, "model_name": compiled.program.model.name,
                     "scheme": str(info.get("scheme", build_cfg.scheme))}

    def _start(self) -> tuple[int, bytes, int]:
        """(next round, global state, its step counter): a fresh run, or where a resumed one stopped."""
        files = round_files(self.out)
        if files and not self.cfg.resume:
            raise TinytrainError(f"{self.out} already holds rounds 0..{len(files) - 1} of a fleet run; pass --resume to "
                                 "continue it or choose another --out.")
        if files:
            first = load_round(files[0])
            last = load_round(files[-1])
            for key in ("model_hash", "program_hash", "state_hash"):
                if last[key] != self.info[key]:
                    raise TinytrainError(f"{files[-1]} was written for another build ({key.replace('_', ' ')} "
                                         f"{last[key][:12]}, the boards' {self.info[key][:12]}); choose another --out.")
            if first["record"].get("setup") != self.cfg.setup():
                raise TinytrainError(f"{self.out} holds a fleet run of another setup ({first['record'].get('setup')}); "
                                     "resume it with the same data, split and boards, or choose another --out.")
            step = struct.unpack_from("<I", last["state"], 0)[0]
            return last["round"] + 1, last["state"], step
        self.out.mkdir(parents=True, exist_ok=True)
        state = NumpyBackend(self.compiled.program).state_bytes()  # what a board holds after power-on
        data = self._data()
        record = {"round": 0, "global_accuracy": accuracy(self.reference, state, data.eval_inputs, data.eval_labels),
                  "boards": 0, "bytes_per_board": 0, "setup": self.cfg.setup(), "step_count": 0,
                  "label_counts": data.shares.label_counts(data.labels, self.compiled.program.model.num_classes).tolist(),
                  "held_out_samples": [len(s) for s in data.held_out.shares],
                  "state_bytes": len(state), "seconds": 0.0}
        save_round(self.out, 0, state, self.info, record)
        return 1, state, 0

    def _data(self) -> FleetData:
        return fleet_data(*data_key(self.cfg, self.info["program_hash"]))

    def run(self, grid: Grid) -> None:
        cfg = self.cfg
        first, state, step = self._start()
        data = self._data()
        strategy = FleetStrategy(self.layout, cfg.boards)
        progress = self.out / "progress"
        progress.mkdir(exist_ok=True)
        for r in range(first, cfg.rounds + 1):
            t0 = time.monotonic()
            config = ConfigRecord({
                "local-samples": cfg.local_samples, "step-base": step, "state-sha256": hashlib.sha256(state).hexdigest(),
                "progress-dir": str(progress), **{k: self.info[k.replace("-", "_")] for k in
                                                  ("model-hash", "program-hash", "state-hash")},
                **{k: v for k, v in cfg.to_run_config().items() if k in
                   ("build", "data", "eval-data", "eval-samples", "boards", "split", "alpha", "seed", "board-urls")},
            })
            config["build"] = str(Path(cfg.build).resolve()) if cfg.build else ""
            arrays = ArrayRecord({"state": Array(np.frombuffer(state, dtype=np.uint8))})
            strategy.step_after = step + cfg.boards * cfg.local_samples
            messages = list(strategy.configure_train(r, arrays, config, grid))
            strategy.outcome["nodes"] = [m.metadata.dst_node_id for m in messages]
            replies = grid.send_and_receive(messages, timeout=cfg.timeout)
            new, _ = strategy.aggregate_train(r, replies)
            o = strategy.outcome
            if new is None and o["dropped"] and all(d["refused"] for d in o["dropped"]):
                raise TinytrainError(f"every board was refused in round {r}, e.g. {o['dropped'][0]['reason']}")
            if new is not None:
                state = new["state"].numpy().tobytes()
                step = strategy.step_after
            down = len(arrays["state"].data)
            pb = o["per_board"]
            local_acc = {str(b): accuracy(self.reference, s, data.eval_inputs, data.eval_labels)
                         for b, s in sorted(o["board_states"].items())} if cfg.local_eval else {}
            record = {
                "round": r,
                "global_accuracy": accuracy(self.reference, state, data.eval_inputs, data.eval_labels),
                "boards": len(o["states"]),
                "board_ids": sorted(pb),
                "asked": o["asked"],
                "samples": int(sum(o["weights"])),
                "bytes_per_board": (down + down) if pb else 0,  # the global state down, the learned state up
                "bytes_down_per_board": down,
                "bytes_up_per_board": down,
                "serial_bytes_per_board": float(np.mean([m["serial-bytes"] for m in pb.values()])) if pb else 0.0,
                "local_accuracy": local_acc,
                "mean_local_accuracy": float(np.mean(list(local_acc.values()))) if local_acc else None,
                "held_out_accuracy": {str(b): m["held-out-accuracy"] if m["held-out-samples"] else None
                                      for b, m in sorted(pb.items())},
                "train_accuracy": {str(b): m["train-accuracy"] for b, m in sorted(pb.items())},
                "board_seconds": {str(b): m["seconds"] for b, m in sorted(pb.items())},
                "dropped": o["dropped"],
                "step_count": step,
                "state_sha256": hashlib.sha256(state).hexdigest(),
                "seconds": time.monotonic() - t0,
            }
            save_round(self.out, r, state, self.info, record)


def serve(grid: Grid, context: Context, cfg: FleetConfig | None = None) -> None:
    """The ServerApp's main: the fleet's rounds. A user-caused error is also written to OUT/server-error.txt,
    so that the command that started the run can say it in one sentence whatever engine ran it."""
    cfg = cfg or FleetConfig.from_run_config(dict(context.run_config))
    try:
        FleetServer(cfg).run(grid)
    except TinytrainError as exc:
        out = Path(cfg.out)
        if out.is_dir():
            (out / ERROR_FILE).write_text(str(exc))
        raise


def make_server_app(cfg: FleetConfig | None = None) -> ServerApp:
    app = ServerApp()

    @app.main()
    def _main(grid: Grid, context: Context) -> None:
        serve(grid, context, cfg)

    return app


server_app = make_server_app()  # `flwr run` (deployment engine): the configuration comes from the run config
