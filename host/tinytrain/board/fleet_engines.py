"""Running a fleet on Flower's two run modes, with the boards this machine runs for it.

- Simulation engine (`run_simulation_engine`): Flower's Simulation Runtime in this process. The
  ServerApp runs in a thread, one ClientApp per board in Ray actors (Flower's Ray backend), each
  driving its board over its serial line; for boards on this machine (QEMU, host builds, USB boards).
- Deployment engine (`DeploymentEngine`): a SuperLink and one SuperNode per board as separate
  processes talking over Flower's Fleet API, and `flwr run` submitting the Flower App
  (tinytrain/board/flower_app) to the SuperLink. SuperNodes on other hosts join the same way
  (docs/fleet.md).

`LocalBoard` is a board this machine runs (QEMU or the host build) that can be killed and powered on
again on the same address; `Supervisor` watches a run from its output folder: a progress bar fed by
the ClientApps' progress files, one line per finished round, a board restarted when its process died
(a power cycle: what it learned is gone, the next round pushes the global state again), and the
fault injection of `tinytrain fleet --kill`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


from tinytrain.board.emulator import QemuBoard, find_free_port, port_accepts
from tinytrain.board.fleet import ERROR_FILE, FLOWER_APP, FleetConfig, client_app, load_round, make_server_app, \
    round_files
from tinytrain.board.host_board import HostBoard
from tinytrain.errors import TinytrainError
from tinytrain.learn.progress import progress as progress_bar

QUIET = {"FLWR_TELEMETRY_ENABLED": "0", "RAY_USAGE_STATS_ENABLED": "0", "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0"}


def hide_tensorflow() -> None:
    """Flower's Ray transport imports TensorFlow whenever it is installed (to offer GPU memory growth);
    the project's tools extra installs it for pretraining. No ClientApp of the fleet uses it, and
    importing it costs each Ray worker seconds and hundreds of MB: an import of it fails here instead
    (Flower then proceeds as without TensorFlow). Ray's worker_process_setup_hook runs this."""
    if "tensorflow" not in sys.modules:
        sys.modules["tensorflow"] = None  # type: ignore[assignment]


# ---------------------------------------------------------------- the boards of this machine


@dataclass
class LocalBoard:
    """A board process of this machine (kind host or qemu), or a line to a board (kind port)."""

    index: int
    kind: str  # host | qemu | port
    image: Path | None = None
    url: str = ""
    port: int = 0
    restarts: int = 0
    _handle: HostBoard | QemuBoard | None = field(default=None, repr=False)

    def start(self) -> "LocalBoard":
        if self.kind == "host":
            assert self.image is not None
            self._handle = HostBoard(self.image, self.port).__enter__()
            self.url = self._handle.url
            self.port = int(self.url.rsplit(":", 1)[1])
        elif self.kind == "qemu":
            assert self.image is not None
            self._handle = QemuBoard(self.image, port=self.port).start()
            self.url, self.port = self._handle.url, self._handle.port
        return self

    @property
    def process(self) -> subprocess.Popen | None:
        h = self._handle
        return None if h is None else (h._proc if isinstance(h, HostBoard) else h.process)

    @property
    def alive(self) -> bool:
        p = self.process
        return self.kind == "port" or (p is not None and p.poll() is None)

    def kill(self) -> None:
        """Like pulling the plug: SIGKILL, no chance to answer anything."""
        p = self.process
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()

    def restart(self) -> None:
        """Power on again on the same address (the firmware starts from its initial state)."""
        self.stop()
        self.start()
        self.restarts += 1

    def stop(self) -> None:
        if isinstance(self._handle, HostBoard):
            self._handle.__exit__(None, None, None)
        elif isinstance(self._handle, QemuBoard):
            self._handle.stop()
        self._handle = None

    @property
    def label(self) -> str:
        what = {"host": "host build", "qemu": "QEMU", "port": "line"}[self.kind]
        return f"board {self.index} ({what}, {self.url})"


@dataclass
class Event:
    time: float
    board: int
    what: str  # killed | restarted
    round: int | None = None
    step: int | None = None


class Supervisor(threading.Thread):
    """Watches a fleet run through its output folder (works for both engines)."""

    def __init__(self, cfg: FleetConfig, boards: list[LocalBoard], kill: tuple[int, int, int] | None = None,
                 progress: bool = True, interval: float = 0.05):
        super().__init__(daemon=True)
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.boards = boards
        self.kill_at = kill
        self.interval = interval
        self.events: list[Event] = []
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self._seen_rounds = len(round_files(self.out)) if self.out.is_dir() else 0
        self._first = max(self._seen_rounds, 1)
        self.total = total = max(cfg.rounds - self._first + 1, 0) * cfg.boards * cfg.local_samples
        self.bar = progress_bar(total, "fleet", unit="step", disable=not progress)  # lines when not a terminal

    def _progress(self) -> dict[int, dict]:
        folder = self.out / "progress"
        found = {}
        for b in range(self.cfg.boards):
            try:
                found[b] = json.loads((folder / f"board-{b}.json").read_text())
            except (OSError, ValueError):
                continue
        return found

    def _rounds(self) -> None:
        files = round_files(self.out)
        for path in files[self._seen_rounds:]:
            rec = load_round(path)["record"]
            if rec["round"] > 0:
                self.bar.write(format_round(rec, self.cfg))
        self._seen_rounds = max(self._seen_rounds, len(files))

    def _tick(self) -> None:
        self._rounds()
        progress = self._progress()
        current = max(self._seen_rounds, 1)  # the round under way (round files 0..current-1 exist)
        if self.kill_at is not None:
            b, r, s = self.kill_at
            p = progress.get(b)
            if p and p["round"] == r and p["step"] >= s and b < len(self.boards):
                self.boards[b].kill()
                self.events.append(Event(time.time(), b, "killed", r, p["step"]))
                self.bar.write(f"round {r}: killed {self.boards[b].label} after {p['step']} of its "
                               f"{self.cfg.local_samples} steps (--kill)")
                self.kill_at = None
        for board in self.boards:
            if board.kind != "port" and not board.alive and board.process is not None:
                board.restart()
                self.events.append(Event(time.time(), board.index, "restarted", current))
                self.bar.write(f"round {current}: {board.label} powered on again (its learned state is gone; the "
                               "next round pushes the global state to it)")
        done = (current - self._first) * self.cfg.boards * self.cfg.local_samples
        done += sum(p["step"] for p in progress.values() if p.get("round") == current)
        done = min(max(done, 0), self.total)
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                self._tick()
                self.stop_event.wait(self.interval)
            self._tick()
        except BaseException as exc:  # reported by finish()
            self.error = exc

    def finish(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)
        self.bar.close()


def format_round(rec: dict, cfg: FleetConfig) -> str:
    local = rec.get("mean_local_accuracy")
    line = (f"round {rec['round']}/{cfg.rounds}: {rec['boards']} of {cfg.boards} boards, global accuracy "
            f"{100 * rec['global_accuracy']:.1f}%")
    if local is not None:
        line += f" (their own models: mean {100 * local:.1f}%)"
    line += f", {rec['bytes_per_board']:,} B per board on the wire"
    for d in rec.get("dropped", []):
        line += f"\n  {'refused' if d.get('refused') else 'dropped'}: {d['reason']}"
    return line


# ---------------------------------------------------------------- simulation engine


def run_simulation_engine(cfg: FleetConfig, verbose: bool = False) -> None:
    """The fleet on Flower's Simulation Runtime (Ray backend), in this process; returns when the
    ServerApp has run every round. A user-caused error in the ServerApp is raised as it was."""
    for k, v in QUIET.items():
        os.environ.setdefault(k, v)
    hide_tensorflow()
    import ray
    from flwr.simulation import run_simulation

    flwr_logger = logging.getLogger("flwr")
    level = flwr_logger.level
    if not verbose:
        flwr_logger.setLevel(logging.CRITICAL)
    env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p), **QUIET}
    # Ray is started here rather than by Flower so that its workers get the setup hook: one logical CPU
    # per board, so every board's ClientApp runs at once (they wait on their boards, not on the CPU).
    ray.init(num_cpus=max(cfg.boards, 1), num_gpus=0, include_dashboard=False, log_to_driver=verbose,
             logging_level=logging.INFO if verbose else logging.ERROR, configure_logging=True,
             runtime_env={"worker_process_setup_hook": "tinytrain.board.fleet_engines.hide_tensorflow",
                          "env_vars": env})
    try:
        run_simulation(server_app=make_server_app(cfg), client_app=client_app, num_supernodes=cfg.boards,
                       backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0}},
                       verbose_logging=verbose)
    except TinytrainError:
        raise
    except RuntimeError as exc:
        raise TinytrainError(_server_error(cfg) or f"Flower's simulation stopped: {exc}") from None
    finally:
        ray.shutdown()
        flwr_logger.setLevel(level)


def _server_error(cfg: FleetConfig) -> str | None:
    path = Path(cfg.out) / ERROR_FILE
    return path.read_text().strip() if path.is_file() else None


# ---------------------------------------------------------------- deployment engine


def flower_executable(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    if beside.is_file():
        return str(beside)
    raise TinytrainError(f"Flower's {name} is not installed beside {sys.executable}; run `make setup`.")


class DeploymentEngine:
    """A SuperLink and one SuperNode per board as separate processes on this machine, and `flwr run`
    of the fleet's Flower App against them. Every process logs to OUT/flower/; FLWR_HOME is
    OUT/flower/home (the `flwr` CLI's connection to this SuperLink, the FABs)."""

    def __init__(self, cfg: FleetConfig, urls: list[str], verbose: bool = False):
        self.cfg = cfg
        self.urls = urls
        self.verbose = verbose
        self.dir = Path(cfg.out).resolve() / "flower"
        self.home = self.dir / "home"
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.port = 0
        # The SuperLink and SuperNodes start their SuperExec (and it the apps) by name: this venv's bin first.
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        # SuperExec asks for new app processes to start once a second by default; a board's round is short.
        self.env = dict(os.environ, FLWR_HOME=str(self.home), PATH=path, FLWR_SUPEREXEC_TASK_POLL_INTERVAL="0.2",
                        **QUIET)

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "ab")
        # Its own session, so that stopping it also stops the SuperExec and app processes it started.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                                start_new_session=True, cwd=self.dir)
        log.close()
        self.procs.append((name, proc))
        return proc

    def start(self) -> "DeploymentEngine":
        self.dir.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(exist_ok=True)
        self.port = find_free_port()
        (self.home / "config.toml").write_text(
            '[superlink]\ndefault = "tinytrain-fleet"\n\n[superlink.tinytrain-fleet]\n'
            f'address = "127.0.0.1:{self.port}"\ninsecure = true\n')
        link = self._spawn("superlink", [flower_executable("flower-superlink"), "--insecure", "--host", "127.0.0.1",
                                         "--port", str(self.port), "--disable-runtime-dependency-installation"])
        deadline = time.monotonic() + 60
        while not port_accepts(self.port):
            if link.poll() is not None or time.monotonic() > deadline:
                raise TinytrainError(f"Flower's SuperLink did not start; its log is {self.dir / 'superlink.log'}.")
            time.sleep(0.2)
        for k, url in enumerate(self.urls):
            node_config = (f"board-url='{url}' partition-id={k} num-partitions={len(self.urls)} "
                           f"build='{Path(self.cfg.build).resolve()}'")
            self._spawn(f"supernode-{k}", [flower_executable("flower-supernode"), "--insecure", "--superlink",
                                           f"127.0.0.1:{self.port}", "--port", str(find_free_port()),
                                           "--node-config", node_config])
        return self

    def run(self) -> None:
        """`flwr run` of the fleet's app, streaming the ServerApp's log into OUT/flower/run.log until the
        run ends."""
        overrides = self.dir / "run-config.toml"
        overrides.write_text("".join(f"{k} = {_toml(v)}\n" for k, v in self.cfg.to_run_config().items()))
        cmd = [flower_executable("flwr"), "run", str(FLOWER_APP), "tinytrain-fleet", "--run-config", str(overrides),
               "--stream"]
        with open(self.dir / "run.log", "ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env,
                                    cwd=self.dir, start_new_session=True)
            self.procs.append(("flwr-run", proc))
            limit = 600 + self.cfg.rounds * (self.cfg.timeout + 120)
            try:
                code = proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                raise TinytrainError(f"the deployment run did not end within {limit:.0f} s; see {self.dir}.") from None
        if error := _server_error(self.cfg):
            raise TinytrainError(error)
        if code != 0 or len(round_files(Path(self.cfg.out))) < self.cfg.rounds + 1:
            raise TinytrainError(f"the deployment run ended before its last round (`flwr run` exit status {code}); "
                                 f"the logs are in {self.dir}.")

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        self.procs = []

    def __enter__(self) -> "DeploymentEngine":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # a TOML basic string is a JSON string for these values
