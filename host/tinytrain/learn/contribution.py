"""Contribution analysis (Lin et al. 2022, Sec. 3.2): how much each bias depth and each weight slice
adds to the accuracy of a short fine-tuning run of the board's exact arithmetic: the NumPy reference
(NumpyRuns) or the engine's own C code built for the host (tinytrain.board.host_runs), which give
the same bytes.

Two families of measurements, each a fine-tuning run on a *fit* slice of the dataset scored on a
disjoint *validation* slice (never a test set), with the same sample order and seeds for every run:

- biases: acc_b[k] = accuracy when the classifier and the biases of the last k layers train
  (k = 1 is the classifier alone); Δacc_b[k] = acc_b[k] - acc_b[1].
- weights: on top of a bias-updated model, as in the paper. The reference is the best bias depth
  k_ref = argmax_k acc_b[k] (the "best last-k-bias" model); for every layer i and ratio r,
  Δacc_W[i, r] = acc(classifier + biases of the last k_ref layers + layer i's weights at ratio r)
               - acc_b[k_ref].

Every run is cached on disk (one JSON file per run, keyed by model hash, protocol, scheme and seed),
so an interrupted analysis resumes where it stopped. Runs go to worker processes (one per core).

Speed, NumPy: the layers below the lowest trained one never change, so their outputs are a function of
the input sample only. They are computed once per sample (one inference pass) and reused by every run
and step (`PrefixCachedBackend`); the result is identical to a plain NumpyBackend run (tested). The C
backend runs the whole generated step, a few milliseconds on the host.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tinytrain.learn.progress import progress
from tinytrain.model import ttm as model_file
from tinytrain.errors import TinytrainError
from tinytrain.ir.graph import Model
from tinytrain.reference.executor import NumpyBackend
from tinytrain.learn.sample_input import model_samples
from tinytrain.compile.scheme import SparseScheme, builtin, from_authors
from tinytrain.learn.schedules import cross_entropy, lr_scales
from tinytrain.ir.program import CompileOptions, TrainingProgram
from tinytrain.compile.autodiff import compile_program

RATIOS = (0.125, 0.25, 0.5, 1.0)
FORMAT = 1  # bump when the meaning of a cached measurement changes
VAL_BATCH = 100  # validation samples inferred as one batch


class ContributionError(TinytrainError):
    """An analysis that cannot run as asked."""


# ---------------------------------------------------------------- protocol


@dataclass(frozen=True)
class Protocol:
    """How one contribution measurement fine-tunes and scores a scheme (the same for every run).

    The dataset's last `val_samples` samples are the validation slice, the rest the fit slice.
    A run trains on `fit_samples` samples (0: one pass over the fit slice) drawn from the fit slice in a
    seed-dependent order
    (the same order for every scheme), with a linearly decaying learning rate; the stochastic-
    rounding seed is the run's seed too. Each scheme is measured once per seed.
    """

    data: str = "mnist:train"
    val_samples: int = 800
    fit_samples: int = 500
    lr: float = 0.05
    schedule: str = "linear"
    seeds: tuple[int, ...] = (1, 2)
    # Score on this dataset (all of it) and fit on all of `data` instead of splitting `data`. Only for
    # the final held-out evaluation of chosen schemes (tools/contrib_table.py), never for the analysis.
    eval_data: str | None = None
    resize: bool = False  # images of another size or channel count are resized (datasets.to_model_input)

    def key(self) -> dict:
        k = {"data": self.data, "val_samples": self.val_samples, "fit_samples": self.fit_samples,
             "lr": self.lr, "schedule": self.schedule, "format": FORMAT}
        if self.resize:
            k["resize"] = True
        if self.eval_data:
            k["eval_data"] = self.eval_data
            del k["val_samples"]  # unused: all of `data` is fitted, all of eval_data scored
        return k

    def check(self) -> None:
        base = self.data.split("[")[0]
        if base.endswith(":test") or base.rstrip("/").endswith("test"):
            raise ContributionError(f"{self.data} looks like a test set; contribution analysis fits and validates "
                                    "on a training set only (e.g. mnist:train).")
        if self.fit_samples < 0 or self.val_samples < 1 or not self.seeds:
            raise ContributionError("contribution runs need at least one fit sample, one validation sample and one seed.")


# ---------------------------------------------------------------- schemes


def bias_scheme(n_layers: int, k: int) -> SparseScheme:
    """The classifier plus the biases of the last k layers."""
    return from_authors(f"bias:{k}", {"n_bias_update": k, "manual_weight_idx": [], "weight_update_ratio": []},
                        n_layers)


def weight_scheme(n_layers: int, k: int, layer: int, ratio: float) -> SparseScheme:
    return from_authors(f"bias:{k}+w{layer}@{ratio:g}",
                        {"n_bias_update": k, "manual_weight_idx": [layer], "weight_update_ratio": [ratio]}, n_layers)


def scheme_key(model: Model, scheme: SparseScheme) -> str:
    """What decides a run: the trained biases and the trained channel count of every weight.
    Two ratios that train the same channels (e.g. any ratio of a 1-channel layer) share a key."""
    ops = model.weighted_ops
    w = [[i, scheme.updated_channels(op, i)] for i, op in enumerate(ops)]
    return json.dumps({"b": sorted(scheme.bias_layers), "w": [x for x in w if x[1]]}, separators=(",", ":"))


def effective_ratios(model: Model, layer: int, ratios: tuple[float, ...] = RATIOS) -> list[float]:
    """The ratios of `ratios` that train distinct channel counts of a layer (the smallest ratio of each)."""
    op = model.weighted_ops[layer]
    n = len(model.weighted_ops)
    seen, out = set(), []
    for r in sorted(ratios):
        c = SparseScheme("r", n, weight_ratios={layer: r}).updated_channels(op, layer)
        if c not in seen:
            seen.add(c)
            out.append(r)
    return out


# ---------------------------------------------------------------- the backend with a frozen-prefix cache


def constant_tensors(model: Model, program: TrainingProgram) -> set[str]:
    """Tensors whose value depends only on the input sample: produced by ops that have no trainable
    parameter and read only such tensors."""
    trained = {p.op for p in program.params if p.trainable}
    const = {model.input}
    for op in model.ops:
        if op.name not in trained and all(t in const for t in op.inputs):
            const.add(op.output)
    return const


class PrefixCachedBackend(NumpyBackend):
    """A NumpyBackend (no arena) that takes the outputs of frozen prefix ops from a per-sample table
    instead of recomputing them. Only used on indexed samples (`train_row`, `predict_row`);
    `train_step`/`infer` on raw inputs behave exactly like NumpyBackend."""

    def __init__(self, program: TrainingProgram, activations: dict[str, np.ndarray]):
        super().__init__(program, use_arena=False)
        self._acts = activations
        self._row: int | None = None
        model = program.model
        const = constant_tensors(model, program)
        read = set()
        for s in program.train_steps + program.infer_steps:
            read.update(s.reads)
            if s.mask:
                read.add(s.mask)
        self._cached = {op.name for op in model.ops if op.output in const and op.output in activations}
        self._read = read

    def run_step(self, s) -> None:
        if (self._row is not None and _node_step(s, self.nodes) and s.op in self._cached
                and not any(w in self._read for w in s.writes[1:])):
            self.mem[s.writes[0]] = self._acts[s.writes[0]][self._row]
            return
        super().run_step(s)

    def train_row(self, row: int, label: int, lr_scale: int) -> np.ndarray:
        self._row = row
        try:
            return self.train_step(self._acts[self.model.input][row], label, lr_scale)
        finally:
            self._row = None

    def infer_row(self, row: int) -> np.ndarray:
        self._row = row
        try:
            return self.infer(self._acts[self.model.input][row])
        finally:
            self._row = None

    def infer_rows(self, rows: np.ndarray) -> np.ndarray:
        """infer_row of every row, [len(rows), classes], as one batch through the same kernels (each
        sample's integer arithmetic is unchanged, so the logits are identical; tested)."""
        values = {self.model.input: self._acts[self.model.input][rows]}
        for s in self.program.infer_steps:
            if not _node_step(s, self.nodes):
                raise ContributionError(f"batched inference has no {s.kind!r} step")
            op = self.nodes[s.op]
            if s.op in self._cached:
                values[s.writes[0]] = self._acts[s.writes[0]][rows]
            else:
                values[s.writes[0]] = self.compute(op, values.__getitem__)[0]
        return values[self.model.output].reshape(len(rows), -1)


def _node_step(s, nodes: dict) -> bool:
    """A forward step computing one node's output (what the prefix cache can replace)."""
    return s.kind.is_forward and s.op in nodes and s.writes[0] == nodes[s.op].output


def all_activations(model: Model, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every op output of the frozen model for every sample: {tensor: int8 [N, H, W, C]}."""
    program = compile_program(model, builtin("classifier", len(model.weighted_ops)))
    b = NumpyBackend(program, use_arena=False)
    names = [model.input] + [op.output for op in model.ops if op.output != model.output]
    out = {t: np.empty((len(x),) + tuple(model.tensors[t].shape), dtype=np.int8) for t in names}
    for i, xi in enumerate(x):
        b.infer(xi)
        for t in names:
            out[t][i] = np.asarray(b.mem[t]).reshape(model.tensors[t].shape)
    return out


# ---------------------------------------------------------------- one run


@dataclass
class Job:
    key: str  # cache key (hex)
    skey: str  # scheme_key
    scheme: dict  # authors' JSON
    seed: int
    cost: float  # estimated work, for the progress bar's time estimate


def run_cost(model: Model, program: TrainingProgram, fit: int, val: int) -> float:
    """Estimated seconds of a run: a per-step overhead plus MACs, over the steps the cache does not skip."""
    const = constant_tensors(model, program)
    nodes = {op.name: op for op in model.ops}

    def cost(steps, n):
        t = 0.0
        for s in steps:
            if _node_step(s, nodes) and s.writes[0] in const:
                t += 2e-6
            else:
                t += 6e-5 + 5e-9 * s.macs
        return n * t

    return cost(program.train_steps, fit) + cost(program.infer_steps, val)


_STATE: dict = {}  # per process: model, protocol, backend, activations, labels, rows (inherited by fork)


# ---------------------------------------------------------------- backends: where a run's steps execute


class NumpyRuns:
    """Fine-tuning runs on the NumPy reference (reference/executor.py), with the frozen prefix of the
    network computed once per sample for all runs (PrefixCachedBackend). A backend's `fine_tune` gets
    the program of a run, its training rows, labels and lr scales in order, and the validation rows,
    and returns the validation logits; every backend returns the same bytes (the C engine on the host,
    tinytrain.board.host_runs, is tested against this one), so cached runs do not record which
    one measured them except for information."""

    name = "numpy"
    prefix_cache = True  # wants every frozen activation of every sample in _STATE["acts"]

    def prepare(self, model: Model) -> None:
        """Called in the measuring process before the workers start (they inherit what it made)."""

    def cost(self, model: Model, program: TrainingProgram, fit: int, val: int) -> float:
        return run_cost(model, program, fit, val)

    def fine_tune(self, program: TrainingProgram, acts: dict[str, np.ndarray], rows: np.ndarray,
                  labels: np.ndarray, scales: np.ndarray, val_rows: np.ndarray) -> np.ndarray:
        b = PrefixCachedBackend(program, acts)
        for row, label, scale in zip(rows, labels, scales):
            b.train_row(int(row), int(label), int(scale))
        return np.concatenate([b.infer_rows(val_rows[at:at + VAL_BATCH])
                               for at in range(0, len(val_rows), VAL_BATCH)])


def run_program(model: Model, protocol: Protocol, scheme: dict, seed: int) -> TrainingProgram:
    """The training program of one run (also what a C run generates its code from)."""
    return compile_program(model, from_authors("run", scheme, len(model.weighted_ops)),
                           CompileOptions(lr=protocol.lr, seed=seed))


def run_samples(protocol: Protocol, fit_rows: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, lr scales) of a run's training steps, in order."""
    order = sample_order(len(fit_rows), protocol.fit_samples or len(fit_rows), seed)
    return fit_rows[order], lr_scales(len(order), protocol.schedule)


def score_logits(model: Model, logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of validation logits [N, classes] against their labels."""
    scale = model.tensors[model.output].qparams.scale
    correct, loss = 0, 0.0
    for row_logits, label in zip(logits, labels):
        correct += int(np.argmax(row_logits) == label)
        loss += cross_entropy(row_logits, int(label), scale)
    return correct / len(labels), loss / len(labels)


def _run(job: Job) -> tuple[str, dict]:
    model: Model = _STATE["model"]
    proto: Protocol = _STATE["protocol"]
    backend = _STATE["backend"]
    acts, labels = _STATE["acts"], _STATE["labels"]
    fit_rows, val_rows = _STATE["fit_rows"], _STATE["val_rows"]
    t0 = time.monotonic()
    program = run_program(model, proto, job.scheme, job.seed)
    rows, scales = run_samples(proto, fit_rows, job.seed)
    logits = backend.fine_tune(program, acts, rows, labels[rows], scales, val_rows)
    accuracy, loss = score_logits(model, logits, labels[val_rows])
    return job.key, {"accuracy": accuracy, "loss": loss, "seconds": time.monotonic() - t0, "seed": job.seed,
                     "scheme": job.scheme, "backend": backend.name}


def sample_order(n_rows: int, count: int, seed: int) -> np.ndarray:
    """The fit samples of a run: seed-dependent permutations of the fit slice, repeated as needed."""
    rng = np.random.default_rng(seed)
    parts = [rng.permutation(n_rows) for _ in range(math.ceil(count / n_rows))]
    return np.concatenate(parts)[:count]


def _activations_chunk(args) -> dict[str, np.ndarray]:
    lo, hi = args
    return all_activations(_STATE["model"], _STATE["x"][lo:hi])


# ---------------------------------------------------------------- measuring many runs


class Measurer:
    """Runs fine-tuning measurements in parallel, caching each finished run as DIR/runs/<key>.json.

    `backend` executes the runs: NumpyRuns (the default) or the engine's C code built for the host
    (tinytrain.board.host_runs.CRuns). Both give the same bytes, so the cache keys do not name it."""

    def __init__(self, model: Model, protocol: Protocol, cache_dir: Path, workers: int | None = None,
                 progress: bool = True, backend=None):
        protocol.check()
        self.model = model
        self.protocol = protocol
        self.backend = backend or NumpyRuns()
        self.cache_dir = Path(cache_dir) / "runs"
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.progress = progress
        self.model_hash = model_file.model_hash(model)
        self.n_layers = len(model.weighted_ops)
        self.measured_seconds = 0.0  # wall time spent running (not loading from the cache)
        self.runs_done = 0

    # -- cache

    def job_key(self, scheme: SparseScheme, seed: int) -> str:
        doc = {"model": self.model_hash, "protocol": self.protocol.key(), "scheme": scheme_key(self.model, scheme),
               "seed": seed}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:24]

    def cached(self, key: str) -> dict | None:
        path = self.cache_dir / f"{key}.json"
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            return None  # a run interrupted while writing: measure it again

    def _store(self, key: str, result: dict) -> None:
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.cache_dir / f".{key}.tmp"
        tmp.write_text(json.dumps(result))
        tmp.replace(self.cache_dir / f"{key}.json")

    # -- data

    def _load_data(self) -> None:
        """The samples and, for a backend with a prefix cache, every frozen activation of them, in
        _STATE (workers inherit it by fork). Measurers of the same model and data in one process share
        them."""
        p = self.protocol
        data_key = (self.model_hash, p.data, p.val_samples, p.eval_data, p.resize)
        prefix = self.backend.prefix_cache
        if _STATE.get("data_key") != data_key or (prefix and not _STATE.get("prefix")):
            _STATE.clear()
            x, y = model_samples(p.data, self.model, resize=p.resize)
            n = len(y)
            if p.eval_data:
                xe, ye = model_samples(p.eval_data, self.model, resize=p.resize)
                x, y = np.concatenate([x, xe]), np.concatenate([y, ye])
                fit_rows, val_rows = np.arange(0, n), np.arange(n, len(y))
            else:
                if n < p.val_samples + 10:
                    raise ContributionError(f"{p.data} has {n} samples; it needs more than the "
                                            f"{p.val_samples} validation samples plus a fit slice.")
                fit_rows, val_rows = np.arange(0, n - p.val_samples), np.arange(n - p.val_samples, n)
            if prefix:
                _STATE.update(model=self.model, x=x)
                chunks = np.linspace(0, len(x), self.workers * 4 + 1).astype(int)
                parts = self._map(_activations_chunk, list(zip(chunks[:-1], chunks[1:])), ordered=True)
                acts = {t: np.concatenate([part[t] for part in parts]) for t in parts[0]}
                del _STATE["x"]
            else:
                acts = {self.model.input: np.ascontiguousarray(x, dtype=np.int8)}
            for a in acts.values():
                a.setflags(write=False)
            _STATE.update(acts=acts, labels=y, fit_rows=fit_rows, val_rows=val_rows, data_key=data_key,
                          prefix=prefix)
        _STATE.update(model=self.model, protocol=p, backend=self.backend)
        self.fit_rows, self.val_rows = _STATE["fit_rows"], _STATE["val_rows"]

    def _map(self, fn, items, ordered=False):
        if self.workers == 1 or len(items) == 1:
            return [fn(i) for i in items]
        ctx = multiprocessing.get_context("fork")  # workers inherit _STATE (the activations) for free
        with ctx.Pool(min(self.workers, len(items))) as pool:
            return pool.map(fn, items, chunksize=1) if ordered else list(pool.imap_unordered(fn, items))

    # -- runs

    def measure(self, schemes: list[SparseScheme], desc: str = "runs") -> dict[str, dict[int, dict]]:
        """{scheme_key: {seed: result}} for every scheme and seed; missing runs are measured."""
        out: dict[str, dict[int, dict]] = {}
        todo: dict[str, Job] = {}
        for s in schemes:
            sk = scheme_key(self.model, s)
            out.setdefault(sk, {})
            for seed in self.protocol.seeds:
                key = self.job_key(s, seed)
                hit = self.cached(key)
                if hit is not None:
                    out[sk][seed] = hit
                elif key not in todo:
                    todo[key] = Job(key, sk, s.to_authors_json(), seed, 0.0)
        if not todo:
            return out
        self._load_data()
        self.backend.prepare(self.model)
        jobs = list(todo.values())
        for j in jobs:
            prog = compile_program(self.model, from_authors("c", j.scheme, self.n_layers))
            j.cost = self.backend.cost(self.model, prog, self.protocol.fit_samples or len(self.fit_rows),
                                       len(self.val_rows))
        jobs.sort(key=lambda j: -j.cost)  # longest first: the last runs finish together
        by_key = {j.key: j for j in jobs}
        t0 = time.monotonic()
        fmt = "{desc}: {percentage:3.0f}%|{bar}| {postfix} [{elapsed}<{remaining}]"
        with progress(sum(j.cost for j in jobs), desc, "cost unit", disable=not self.progress, bar_format=fmt) as bar:
            bar.set_postfix_str(f"0/{len(jobs)} runs")
            done = 0
            for key, result in self._imap(jobs):
                self._store(key, result)
                j = by_key[key]
                out[j.skey][j.seed] = result
                done += 1
                bar.set_postfix_str(f"{done}/{len(jobs)} runs")
                bar.update(j.cost)
        self.measured_seconds += time.monotonic() - t0
        self.runs_done += len(jobs)
        return out

    def _imap(self, jobs: list[Job]):
        if self.workers == 1 or len(jobs) == 1:
            for j in jobs:
                yield _run(j)
            return
        ctx = multiprocessing.get_context("fork")
        with ctx.Pool(min(self.workers, len(jobs))) as pool:
            yield from pool.imap_unordered(_run, jobs, chunksize=1)


# ---------------------------------------------------------------- the analysis


@dataclass
class Score:
    """A scheme's validation accuracy: per seed and the mean."""

    per_seed: dict[int, float]
    loss: float

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.per_seed.values())))


def _score(results: dict[int, dict]) -> Score:
    return Score({s: r["accuracy"] for s, r in sorted(results.items())},
                 float(np.mean([r["loss"] for r in results.values()])))


@dataclass
class Contributions:
    """The measured table: bias depths, the reference depth, and weight slices on top of it."""

    n_layers: int
    protocol: dict
    bias: dict[int, Score]  # k -> accuracy with the classifier + biases of the last k layers
    k_ref: int
    weights: dict[tuple[int, float], Score]  # (layer, ratio) -> accuracy on top of bias:k_ref
    noise: dict = field(default_factory=dict)
    layer_names: list[str] = field(default_factory=list)

    @property
    def classifier(self) -> float:
        return self.bias[1].mean

    def delta_bias(self, k: int) -> float:
        return self.bias[k].mean - self.bias[1].mean

    def delta_weight(self, layer: int, ratio: float) -> float:
        return self.weights[(layer, ratio)].mean - self.bias[self.k_ref].mean

    def weight_options(self, layer: int) -> list[float]:
        return sorted(r for (i, r) in self.weights if i == layer)

    def to_json(self) -> dict:
        return {
            "n_layers": self.n_layers,
            "protocol": self.protocol,
            "layer_names": self.layer_names,
            "classifier_accuracy": self.classifier,
            "k_ref": self.k_ref,
            "bias": [{"k": k, "accuracy": s.mean, "per_seed": s.per_seed, "loss": s.loss,
                      "delta": self.delta_bias(k)} for k, s in sorted(self.bias.items())],
            "weights": [{"layer": i, "ratio": r, "accuracy": s.mean, "per_seed": s.per_seed, "loss": s.loss,
                         "delta": self.delta_weight(i, r)} for (i, r), s in sorted(self.weights.items())],
            "noise": self.noise,
        }

    @classmethod
    def from_json(cls, doc: dict) -> "Contributions":
        def sc(e):
            return Score({int(k): v for k, v in e["per_seed"].items()}, e["loss"])
        return cls(doc["n_layers"], doc["protocol"], {e["k"]: sc(e) for e in doc["bias"]}, doc["k_ref"],
                   {(e["layer"], e["ratio"]): sc(e) for e in doc["weights"]}, doc.get("noise", {}),
                   doc.get("layer_names", []))


def _pooled_std(groups: list[np.ndarray]) -> tuple[float | None, int]:
    ss, dof = 0.0, 0
    for v in groups:
        if len(v) > 1:
            ss += float(((v - v.mean()) ** 2).sum())
            dof += len(v) - 1
    return (math.sqrt(ss / dof) if dof else None), dof


def noise_estimate(bias: dict[int, Score], weights: dict[tuple[int, float], Score], k_ref: int) -> dict:
    """Seed-to-seed spread of the measurements.

    run_std: one run's accuracy around its scheme's mean over seeds (pooled over schemes).
    delta_std: one Δ as measured (difference of two seed means), from the spread over seeds of the
    per-seed differences to the reference run of the same seed (pooled), divided by sqrt(seeds).
    Both are 1-sigma; with two seeds they are rough (one degree of freedom per scheme).
    """
    scores = list(bias.values()) + list(weights.values())
    seeds = max((len(s.per_seed) for s in scores), default=1)
    run_std, dof = _pooled_std([np.array(list(s.per_seed.values())) for s in scores])
    diffs = []
    for ref, group in ((bias[1], [bias[k] for k in bias if k != 1]), (bias[k_ref], list(weights.values()))):
        for s in group:
            common = sorted(set(s.per_seed) & set(ref.per_seed))
            diffs.append(np.array([s.per_seed[x] - ref.per_seed[x] for x in common]))
    paired, _ = _pooled_std(diffs)
    return {"seeds": seeds, "schemes": len(scores), "degrees_of_freedom": dof, "run_std": run_std,
            "mean_std": None if run_std is None else run_std / math.sqrt(seeds),
            "paired_delta_run_std": paired,
            "delta_std": None if paired is None else paired / math.sqrt(seeds)}


def analyze(model: Model, protocol: Protocol, cache_dir: Path | None = None, workers: int | None = None,
            progress: bool = True, ratios: tuple[float, ...] = RATIOS, measurer: Measurer | None = None,
            backend=None) -> Contributions:
    """Measures (or loads from cache_dir/runs) every bias depth, then every weight slice on top of the best depth."""
    if measurer is None and cache_dir is None:
        raise ContributionError("analyze needs a cache folder or a Measurer.")
    m = measurer or Measurer(model, protocol, cache_dir, workers, progress, backend)
    n = len(model.weighted_ops)
    bias_schemes = {k: bias_scheme(n, k) for k in range(1, n + 1)}
    res = m.measure(list(bias_schemes.values()), desc="bias runs")
    bias = {k: _score(res[scheme_key(model, s)]) for k, s in bias_schemes.items()}
    k_ref = max(bias, key=lambda k: (round(bias[k].mean, 9), -k))  # ties: the shallower (cheaper) depth
    weight_schemes = {(i, r): weight_scheme(n, k_ref, i, r)
                      for i in range(n - 1) for r in effective_ratios(model, i, ratios)}
    res = m.measure(list(weight_schemes.values()), desc=f"weight runs (on bias:{k_ref})")
    weights = {ir: _score(res[scheme_key(model, s)]) for ir, s in weight_schemes.items()}
    c = Contributions(n, {**asdict(protocol), "seeds": list(protocol.seeds)}, bias, k_ref, weights,
                      layer_names=[op.name for op in model.weighted_ops])
    c.noise = noise_estimate(bias, weights, k_ref)
    return c


# ---------------------------------------------------------------- plot


def plot_contributions(c: Contributions, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = c.n_layers
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw={"width_ratios": [1, 1.6]})
    ks = sorted(c.bias)
    d = [100 * c.delta_bias(k) for k in ks]
    err = 100 * (c.noise.get("delta_std") or 0.0)
    ax1.bar(ks, d, color=["#c44e52" if k == c.k_ref else "#4c72b0" for k in ks], yerr=err, capsize=2)
    ax1.set_xlabel("k (biases of the last k layers train)")
    ax1.set_ylabel("Δ validation accuracy vs. classifier only (points)")
    ax1.set_title(f"biases (classifier only: {100 * c.classifier:.1f}%; red = k_ref)")
    ax1.axhline(0, color="k", lw=0.6)
    layers = list(range(n - 1))
    ratios = sorted({r for (_, r) in c.weights})
    width = 0.8 / max(len(ratios), 1)
    colors = plt.cm.viridis(np.linspace(0.15, 0.85, len(ratios)))
    for j, r in enumerate(ratios):
        xs = [i for i in layers if (i, r) in c.weights]
        ax2.bar([x + (j - (len(ratios) - 1) / 2) * width for x in xs], [100 * c.delta_weight(i, r) for i in xs],
                width, color=colors[j], label=f"r = {r:g}")
    ax2.axhspan(-err, err, color="0.85", zorder=0, label="±1 std of a Δ (seed noise)")
    ax2.axhline(0, color="k", lw=0.6)
    ax2.set_xticks(layers)
    ax2.set_xticklabels([str(i) for i in layers])
    ax2.set_xlabel("layer i (its weights train at ratio r)")
    ax2.set_ylabel(f"Δ accuracy vs. bias:{c.k_ref} (points)")
    ax2.set_title(f"weights, on top of classifier + biases of the last {c.k_ref} layers "
                  f"({100 * c.bias[c.k_ref].mean:.1f}%)")
    ax2.legend(fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
