"""What a fleet is measured against, on the same data and the same build:

- local only: every board trained alone on its own share, the same samples in the same order as in
  the fleet's rounds (rounds x local samples), never averaged;
- centralized: one board trained on the whole training set in sequence (a seeded order), as many
  samples as the whole fleet trained (rounds x boards x local samples; with 4 boards x 5 rounds x 200
  on mnist:train that is each of its 4,000 digits once).

Both start from the state a board holds after power-on and are measured after every round's worth of
samples on the evaluation set, like the fleet's global model. They train on the fleet's boards (one
thread per board) or, with `on="reference"`, on the NumPy reference of the same program, whose every
step is identical to the firmware's.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from tinytrain.board.engine_client import EngineClient
from tinytrain.board.fleet import FleetConfig, FleetData, accuracy, fleet_data, data_key
from tinytrain.board.link import Link
from tinytrain.compile.compiler import Compiled
from tinytrain.errors import TinytrainError
from tinytrain.learn.partitions import round_samples
from tinytrain.reference.executor import NumpyBackend


class _ReferenceTrainer:
    def __init__(self, compiled: Compiled):
        self.ref = NumpyBackend(compiled.program)

    def push(self, state: bytes) -> None:
        self.ref.load_state_bytes(state)

    def train(self, wire: np.ndarray, x: np.ndarray, y: int) -> None:
        self.ref.train_step(x, y)

    def pull(self) -> bytes:
        return self.ref.state_bytes()

    def close(self) -> None:
        pass


class _BoardTrainer:
    def __init__(self, url: str):
        self.link = Link(url)
        self.engine = EngineClient(self.link)

    def push(self, state: bytes) -> None:
        self.engine.params_set(state)

    def train(self, wire: np.ndarray, x: np.ndarray, y: int) -> None:
        self.engine.train(wire, y)

    def pull(self) -> bytes:
        return self.engine.params_get()

    def close(self) -> None:
        self.link.close()


@dataclass
class Baselines:
    on: str  # board | reference
    local_only: list[list[float]] = field(default_factory=list)  # [board][round - 1]
    centralized: list[float] = field(default_factory=list)  # [round - 1]

    @property
    def local_only_mean(self) -> list[float]:
        return [float(np.mean(col)) for col in zip(*self.local_only)] if self.local_only else []


def run_baselines(cfg: FleetConfig, compiled: Compiled, urls: list[str], on: str = "board",
                  progress: bool = True) -> Baselines:
    """Both baselines; `urls` are the boards to train on (on="board"), one thread each."""
    data: FleetData = fleet_data(*data_key(cfg, compiled.program_hash))
    initial = NumpyBackend(compiled.program).state_bytes()
    n = cfg.boards
    per_round_c = n * cfg.local_samples
    order = np.random.default_rng([cfg.seed, 2]).permutation(len(data.labels))
    jobs: list[tuple[str, int, list[np.ndarray]]] = [
        ("local", b, [round_samples(data.shares.shares[b], r, cfg.local_samples) for r in range(1, cfg.rounds + 1)])
        for b in range(n)]
    jobs.append(("central", 0, [round_samples(order, r, per_round_c) for r in range(1, cfg.rounds + 1)]))
    total = sum(len(i) for _, _, rounds in jobs for i in rounds)
    bar = tqdm(total=total, desc="baselines", unit="step", disable=not progress, dynamic_ncols=True, mininterval=1.0)
    results: dict[tuple[str, int], list[float]] = {}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(job_list: list[tuple[str, int, list[np.ndarray]]], where: str | None) -> None:
        trainer = None
        try:
            trainer = _BoardTrainer(where) if where else _ReferenceTrainer(compiled)
            evaluator = NumpyBackend(compiled.program)
            for kind, b, rounds in job_list:
                trainer.push(initial)
                accs = []
                for idx in rounds:
                    for j in idx:
                        trainer.train(data.wire[j], data.inputs[j], int(data.labels[j]))
                        with lock:
                            bar.update(1)
                    accs.append(accuracy(evaluator, trainer.pull(), data.eval_inputs, data.eval_labels))
                results[(kind, b)] = accs
        except BaseException as exc:  # reported below, in the calling thread
            errors.append(exc)
        finally:
            if trainer is not None:
                trainer.close()

    # Board k trains its own share alone; the centralized run goes to the board with the least work.
    workers = max(1, len(urls)) if on == "board" else 2
    plan: list[list] = [[] for _ in range(workers)]
    for i, job in enumerate(jobs[:-1]):
        plan[i % workers].append(job)
    min(plan, key=lambda p: sum(len(i) for _, _, r in p for i in r)).append(jobs[-1])
    threads = [threading.Thread(target=run, args=(p, urls[w] if on == "board" else None), daemon=True)
               for w, p in enumerate(plan) if p]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bar.close()
    if errors:
        exc = errors[0]
        if isinstance(exc, TinytrainError):
            raise TinytrainError(f"the baselines stopped: {str(exc)[:1].lower()}{str(exc)[1:]}") from None
        raise exc
    return Baselines(on, [results[("local", b)] for b in range(n)], results[("central", 0)])
