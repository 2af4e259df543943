"""Choosing a sparse-update scheme for a memory budget from measured contributions.

The objective is the paper's: maximize the summed contributions

    score(k, {i: r}) = acc_classifier + Δacc_b[k] + Σ_i Δacc_W[i, r_i]

subject to the planner's predicted peak SRAM (compiler.predict_peak_sram: the real memory plan of the
compiled, reordered training step, not an additive estimate) staying within the budget.

Search: greedy by contribution per byte from every feasible bias depth, then hill climbing over
single moves (any layer to any ratio or off, any bias depth) and pair moves (one layer down or off,
another up), best-first by score gain, each move checked with the real planner (memoized). The space
is small enough (19 bias depths x ≤ 5 options for 18 layers) that this converges in seconds; see
docs/contribution_analysis.md for why this and not the paper's evolutionary search.

The summed contributions are an additive model of a non-additive quantity (two layers that each add
25 points do not add 50), so the best local optima (from different starting depths) are finally
re-measured with the same fine-tuning protocol as the contributions (`verify`), and the one with
the best measured validation accuracy is chosen.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tinytrain.model import ttm as model_file
from tinytrain.compile.compiler import model_lr, predict_peak_sram
from tinytrain.learn.contribution import Contributions, Measurer, Protocol, analyze, plot_contributions, scheme_key
from tinytrain.errors import TinytrainError
from tinytrain.ir.graph import Model
from tinytrain.compile.scheme import SparseScheme, from_authors
from tinytrain.compile.sram_budget import BudgetError, kb
from tinytrain.compile.autodiff import compile_program

MAX_PLANS = 1500  # planner calls per planner (0.1-0.3 s each on the shipped model)
PAIR_MOVES = 20
BOUND_SLACK = 1024  # bytes of lower_bound's margin  # pair moves tried per hill-climbing step (best score gain first)
VERIFY = 3  # local optima re-measured at the end
VERIFY_SEEDS = (1, 2)
VERIFY_SAMPLES = 1000  # fine-tuning steps of a re-measurement: a typical on-device run (what `make demo` streams)
VERIFY_LEVELS = (2, 4, 8)  # lighter candidates re-measured too: the search's optimum within budget / each


class SearchError(TinytrainError):
    """A search that cannot run or cannot meet its budget."""


@dataclass(frozen=True)
class Point:
    """A point of the search space: bias depth k and the ratio of every layer's weights (0 = frozen)."""

    k: int
    ratios: tuple[float, ...]  # per layer below the classifier

    def scheme(self, n_layers: int, name: str = "candidate") -> SparseScheme:
        idx = [i for i, r in enumerate(self.ratios) if r > 0]
        return from_authors(name, {"n_bias_update": self.k, "manual_weight_idx": idx,
                                   "weight_update_ratio": [self.ratios[i] for i in idx]}, n_layers)

    def with_ratio(self, i: int, r: float) -> "Point":
        return Point(self.k, self.ratios[:i] + (r,) + self.ratios[i + 1:])

    def describe(self) -> str:
        w = " ".join(f"{i}@{r:g}" for i, r in enumerate(self.ratios) if r > 0)
        return f"bias:{self.k}" + (f" w[{w}]" if w else "")


@dataclass
class Candidate:
    point: Point
    peak_bytes: int
    score: float  # predicted accuracy (summed contributions)
    origin: str = ""
    measured: dict[int, float] | None = None  # seed -> validation accuracy, when verified

    @property
    def measured_mean(self) -> float | None:
        return None if not self.measured else sum(self.measured.values()) / len(self.measured)


@dataclass
class SearchResult:
    budget: int
    best: Candidate  # the chosen scheme (after verification, if any)
    best_predicted: Candidate  # the best by summed contributions
    visited: list[Candidate]
    local_optima: list[Candidate]
    verified: list[Candidate] = field(default_factory=list)
    plans: int = 0
    seconds: float = 0.0
    truncated: bool = False  # the planner's call budget ran out (the search stopped early)


_PLAN_MODEL: list = []  # the model the planner workers plan for (inherited by fork)


def _plan(doc: dict) -> int:
    model = _PLAN_MODEL[0]
    return predict_peak_sram(model, from_authors("plan", doc, len(model.weighted_ops)))


class Planner:
    """predict_peak_sram of schemes: memoized by what decides the plan (scheme_key), run in worker
    processes when several are asked at once. One planner can serve several searches (budgets)."""

    def __init__(self, model: Model, workers: int | None = None, max_calls: int = MAX_PLANS):
        self.model = model
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.memo: dict[str, int] = {}
        self.calls = 0
        self.max_calls = max_calls
        self._pool = None

    def peaks(self, schemes: list[SparseScheme]) -> list[int | None]:
        """Planned peaks; None for schemes not planned because the call budget ran out."""
        keys = [scheme_key(self.model, s) for s in schemes]
        todo: dict[str, SparseScheme] = {}
        for k, s in zip(keys, schemes):
            if k not in self.memo and k not in todo and self.calls + len(todo) < self.max_calls:
                todo[k] = s
        if todo:
            docs = [s.to_authors_json() for s in todo.values()]
            if self.workers > 1 and len(docs) > 1:
                if self._pool is None:
                    _PLAN_MODEL[:] = [self.model]
                    self._pool = multiprocessing.get_context("fork").Pool(self.workers)
                results = self._pool.map(_plan, docs, chunksize=1)
            else:
                results = [predict_peak_sram(self.model, s) for s in todo.values()]
            self.memo.update(zip(todo, results))
            self.calls += len(todo)
        return [self.memo.get(k) for k in keys]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool = None

    def __enter__(self) -> "Planner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Space:
    """Scores (additive) and peak SRAM (the real planner) of search points."""

    def __init__(self, model: Model, c: Contributions, planner: Planner):
        self.model = model
        self.c = c
        self.n = len(model.weighted_ops)
        self.planner = planner
        # Options with a non-positive measured contribution can only lower the additive score: dropped.
        self.options = {i: [r for r in c.weight_options(i) if c.delta_weight(i, r) > 0] for i in range(self.n - 1)}
        self.seen: dict[Point, int] = {}  # every point whose peak was planned
        self.truncated = False  # the planner's call budget ran out
        self._bytes: dict[tuple, int] = {}

    def _trainable(self, k: int, layer: int | None = None, ratio: float = 0.0) -> int:
        key = (k, layer, ratio)
        if key not in self._bytes:
            ratios = tuple(ratio if i == layer else 0.0 for i in range(self.n - 1))
            self._bytes[key] = compile_program(self.model, Point(k, ratios).scheme(self.n)).trainable_sram_bytes
        return self._bytes[key]

    def trainable_bytes(self, p: Point) -> int:
        """SRAM of the trained tensors: a sum over tensors, so per option, from one compile of each."""
        base = self._trainable(1)
        return (self._trainable(p.k)
                + sum(self._trainable(1, i, r) - base for i, r in enumerate(p.ratios) if r > 0))

    def lower_bound(self, q: Point, p: Point) -> int:
        """A lower bound of q's peak from p's when q trains a superset of p (else 0): q adds its extra
        trained bytes and, in practice, never shrinks the arena (checked on the shipped model: at most
        a few hundred bytes of runtime state move, hence the slack)."""
        if p not in self.seen or q.k < p.k or any(a < b for a, b in zip(q.ratios, p.ratios)):
            return 0
        return self.seen[p] + self.trainable_bytes(q) - self.trainable_bytes(p) - BOUND_SLACK

    def score(self, p: Point) -> float:
        return (self.c.classifier + self.c.delta_bias(p.k)
                + sum(self.c.delta_weight(i, r) for i, r in enumerate(p.ratios) if r > 0))

    def peaks(self, points: list[Point]) -> list[int]:
        todo = [p for p in dict.fromkeys(points) if p not in self.seen]
        if todo:
            for p, m in zip(todo, self.planner.peaks([p.scheme(self.n) for p in todo])):
                if m is None:
                    self.truncated = True  # not planned: treated as not fitting, not recorded
                else:
                    self.seen[p] = m
        return [self.seen.get(p, 1 << 62) for p in points]

    def peak(self, p: Point) -> int:
        return self.peaks([p])[0]

    def candidate(self, p: Point, origin: str = "") -> Candidate:
        return Candidate(p, self.peak(p), self.score(p), origin)

    def start(self, k: int) -> Point:
        return Point(k, (0.0,) * (self.n - 1))

    def last_k(self, k: int) -> Point:
        """The structured scheme last:k (weights and biases of the last k layers) as a point, with
        options of non-positive contribution left out."""
        ratios = tuple(max(self.options[i], default=0.0) if i >= self.n - k else 0.0 for i in range(self.n - 1))
        return Point(k, ratios)

    def neighbours(self, p: Point, pairs: bool) -> list[tuple[float, Point]]:
        """Moves with a positive score gain, best gain first: single moves (another bias depth, or one
        layer to another ratio or off), or pair moves (one layer down or off, another up)."""
        base = self.score(p)
        out = []
        if not pairs:
            moves = [Point(k, p.ratios) for k in range(1, self.n + 1) if k != p.k]
            for i in range(self.n - 1):
                moves += [p.with_ratio(i, r) for r in [0.0] + self.options[i] if r != p.ratios[i]]
        else:
            moves = []
            for i in range(self.n - 1):
                for ri in (r for r in [0.0] + self.options[i] if r < p.ratios[i]):
                    q0 = p.with_ratio(i, ri)
                    moves += [q0.with_ratio(j, rj) for j in range(self.n - 1) if j != i
                              for rj in self.options[j] if rj > p.ratios[j]]
        for q in moves:
            g = self.score(q) - base
            if g > 1e-12:
                out.append((g, q))
        out.sort(key=lambda t: -t[0])
        return out


def _greedy(space: Space, p: Point, budget: int) -> Point:
    """Takes the move with the best score gain per extra byte (a deeper bias depth, or a layer's weights
    on or up) until nothing fits. Lazy: a move's extra bytes are re-planned only when it reaches the top
    of the queue (its rate on a smaller scheme is usually close; it is taken only if its fresh rate
    still beats every other move's last known rate)."""
    width = space.planner.workers
    stale: dict[Point, float] = {}  # move target -> last known rate (keyed by the move, see key())

    def key(q: Point) -> tuple:
        return ("k", q.k) if q.k != p.k else ("w",) + tuple((i, r) for i, r in enumerate(q.ratios) if r != p.ratios[i])

    while True:
        base_s, base_m = space.score(p), space.peak(p)
        moves = [Point(k, p.ratios) for k in range(p.k + 1, space.n + 1)]
        moves += [p.with_ratio(i, r) for i in range(space.n - 1) for r in space.options[i] if r > p.ratios[i]]
        moves = [q for q in moves if space.score(q) > base_s and space.lower_bound(q, p) <= budget]
        for q in moves:  # never planned: an optimistic rate from the lower bound
            stale.setdefault(key(q), (space.score(q) - base_s) / max(space.lower_bound(q, p) - base_m, 256))
        fresh: dict[Point, float] = {}
        taken = None
        while moves:
            moves.sort(key=lambda q: -fresh.get(q, stale[key(q)]))
            if moves[0] in fresh:
                taken = moves[0]
                break
            batch = []
            for q in moves:
                if q in fresh or len(batch) == width:
                    break
                batch.append(q)
            for q, peak in zip(batch, space.peaks(batch)):
                if peak > budget:
                    moves.remove(q)
                else:
                    fresh[q] = stale[key(q)] = (space.score(q) - base_s) / max(peak - base_m, 256)
        if taken is None:
            return p
        p = taken


def _climb(space: Space, p: Point, budget: int) -> Point:
    """Hill climbing: take the best-gain move that fits; single moves first, then the PAIR_MOVES
    best pair moves. Moves are planned a few at a time (in parallel), in order of gain."""
    chunk = 2 * space.planner.workers
    while True:
        moved = False
        for pairs in (False, True):
            moves = [q for _, q in space.neighbours(p, pairs) if space.lower_bound(q, p) <= budget]
            moves = moves[:PAIR_MOVES] if pairs else moves
            for at in range(0, len(moves), chunk):
                part = moves[at:at + chunk]
                fits = [q for q, m in zip(part, space.peaks(part)) if m <= budget]
                if fits:
                    p, moved = fits[0], True
                    break
            if moved:
                break
        if not moved:
            return p


def search(model: Model, c: Contributions, budget: int, planner: Planner | None = None) -> SearchResult:
    """Maximizes the summed contributions under the budget (no fine-tuning; see `verify`)."""
    t0 = time.monotonic()
    own = planner is None
    planner = planner or Planner(model)
    try:
        return _search(model, c, budget, Space(model, c, planner), t0)
    finally:
        if own:
            planner.close()


def _search(model: Model, c: Contributions, budget: int, space: Space, t0: float) -> SearchResult:
    n = space.n
    calls0 = space.planner.calls
    depths = list(range(1, n + 1))
    fitting = [k for k, m in zip(depths, space.peaks([space.start(k) for k in depths])) if m <= budget]
    if not fitting:
        need = min(space.peaks([space.start(k) for k in depths]))
        raise BudgetError(f"no scheme fits {kb(budget)}: even training the classifier alone needs a planned peak "
                          f"SRAM of {kb(need)}.")
    # Greedy from the classifier alone and from the best bias depth that fits.
    k_best = max(fitting, key=lambda k: (c.delta_bias(k), -k))
    starts = [(f"greedy from bias:{k}", space.start(k)) for k in dict.fromkeys([1, k_best])]
    structured = [space.last_k(k) for k in range(2, n + 1)]
    structured = [q for q, m in zip(structured, space.peaks(structured)) if m <= budget]
    if structured:  # the best structured scheme as one more start
        q = max(structured, key=space.score)
        starts.append((f"from last:{q.k}", q))
    optima: dict[Point, Candidate] = {}
    for origin, p in starts:
        if origin.startswith("greedy"):
            p = _greedy(space, p, budget)
        p = _climb(space, p, budget)
        if p not in optima:
            optima[p] = space.candidate(p, origin)
    while True:  # a fitting point seen on the way that beats every optimum: climb from it too
        top = max((q for q, m in space.seen.items() if m <= budget), key=space.score)
        if space.score(top) <= max(o.score for o in optima.values()) + 1e-12:
            break
        p = _climb(space, top, budget)
        optima.setdefault(p, space.candidate(p, "from a visited point"))
    visited = [Candidate(q, m, space.score(q)) for q, m in space.seen.items()]
    local = sorted(optima.values(), key=lambda x: (-x.score, x.peak_bytes))
    best = local[0]
    return SearchResult(budget, best, best, visited, local, plans=space.planner.calls - calls0,
                        seconds=time.monotonic() - t0, truncated=space.truncated)


def verification_protocol(protocol: Protocol, seeds: tuple[int, ...] = VERIFY_SEEDS,
                          samples: int = VERIFY_SAMPLES) -> Protocol:
    """The re-measurements fine-tune as long as a real on-device run (`samples` steps), not as long as a
    contribution run: the summed contributions rank what a short run learns, the choice should rank
    what the run the scheme is for learns."""
    return replace(protocol, fit_samples=samples, seeds=seeds)


def lighter_optima(model: Model, c: Contributions, budget: int, planner: Planner,
                   levels: tuple[int, ...] = VERIFY_LEVELS) -> list[Candidate]:
    """The search's optimum within budget / L for each level L (as long as anything fits): the summed
    contributions grow with every layer added, so every optimum fills its budget; but training more
    is not always better (more parameters, the same samples), which only a measurement of lighter
    schemes can show."""
    out = []
    for level in levels:
        try:
            r = search(model, c, budget // level, planner)
        except BudgetError:
            break
        r.best.origin = f"optimum within budget/{level}"
        out.append(r.best)
    return out


def verification_candidates(result: SearchResult, count: int = VERIFY,
                            lighter: list[Candidate] | None = None) -> list[Candidate]:
    """The best `count` local optima, then the lighter optima (see lighter_optima), without repeats."""
    out = list(result.local_optima[:count])
    for cand in lighter or []:
        if all(cand.point != x.point for x in out):
            out.append(cand)
    return out


def verify(result: SearchResult, measurer: Measurer, count: int = VERIFY,
           lighter: list[Candidate] | None = None) -> SearchResult:
    """Re-measures the verification candidates with the measurer's protocol (see verification_protocol);
    the best measured one wins (ties: the higher predicted score, then the smaller peak)."""
    if count <= 0:
        return result
    chosen = verification_candidates(result, count, lighter)
    n = len(measurer.model.weighted_ops)
    schemes = [c.point.scheme(n) for c in chosen]
    res = measurer.measure(schemes, desc=f"verify {kb(result.budget)}")
    for cand, s in zip(chosen, schemes):
        cand.measured = {seed: r["accuracy"] for seed, r in sorted(res[scheme_key(measurer.model, s)].items())}
    result.verified = chosen
    result.best = max(chosen, key=lambda x: (round(x.measured_mean, 9), x.score, -x.peak_bytes))
    return result


# ---------------------------------------------------------------- end to end


def choose(model: Model, budget: int, out_dir: Path, protocol: Protocol | None = None, workers: int | None = None,
           progress: bool = True, verify_count: int = VERIFY, cache_dir: Path | None = None,
           verify_seeds: tuple[int, ...] = VERIFY_SEEDS, verify_samples: int = VERIFY_SAMPLES,
           backend=None) -> tuple[SparseScheme, SearchResult, Contributions]:
    """Contribution analysis (runs cached in cache_dir/runs, default out_dir/runs) + search + verification
    for one budget; writes the scheme, the report and the plots to out_dir. `backend` runs the
    fine-tuning (see Measurer; default the NumPy reference)."""
    protocol = protocol or Protocol()
    t0 = time.monotonic()
    measurer = Measurer(model, protocol, Path(cache_dir or out_dir), workers, progress, backend)
    c = analyze(model, protocol, measurer=measurer)
    with Planner(model, workers) as planner:
        result = search(model, c, budget, planner)
        lighter = lighter_optima(model, c, budget, planner) if verify_count > 0 else []
    checker = Measurer(model, verification_protocol(protocol, verify_seeds, verify_samples), Path(cache_dir or out_dir), workers,
                       progress, backend)
    result = verify(result, checker, verify_count, lighter)
    scheme = result.best.point.scheme(len(model.weighted_ops), f"auto@{kb(budget).replace(' ', '')}")
    result.seconds = time.monotonic() - t0
    write_outputs(model, c, result, scheme, out_dir, measurer, checker)
    return scheme, result, c


def auto_scheme(model: Model, budget: int | None, data: str = "mnist:train", cache_dir: Path | None = None,
                workers: int | None = None, progress: bool = True, backend=None) -> SparseScheme:
    """The scheme `--scheme auto` stands for: the contribution search for this model and budget, with its
    measurements cached in build/contrib/<model hash>/ (reused by every later budget)."""
    if budget is None:
        raise SearchError("--scheme auto needs a memory budget (--budget, e.g. 256KB).")
    base = Path(cache_dir) if cache_dir else default_cache_dir(model)
    out = base / f"budget-{budget}"
    scheme, result, _ = choose(model, budget, out, Protocol(data=data, lr=model_lr(model)), workers, progress,
                               cache_dir=base, backend=backend)
    print(f"auto scheme for {kb(budget)}: {result.best.point.describe()} (planned peak {kb(result.best.peak_bytes)}, "
          f"validation accuracy {100 * (result.best.measured_mean or result.best.score):.1f}%); report in {out}")
    return scheme


def default_cache_dir(model: Model) -> Path:
    return Path("build") / "contrib" / model_file.model_hash(model)[:16]


# ---------------------------------------------------------------- outputs


def _cand_json(c: Candidate, n: int) -> dict:
    return {"scheme": c.point.scheme(n).to_authors_json(), "describe": c.point.describe(), "peak_sram_bytes": c.peak_bytes,
            "predicted_accuracy": c.score, "measured_accuracy": c.measured_mean,
            "measured_per_seed": c.measured, "origin": c.origin}


def write_outputs(model: Model, c: Contributions, r: SearchResult, scheme: SparseScheme, out_dir: Path,
                  measurer: Measurer | None = None, checker: Measurer | None = None) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    n = len(model.weighted_ops)
    (out_dir / "scheme.json").write_text(json.dumps(scheme.to_authors_json(), indent=1) + "\n")
    report = {
        "model": model.name,
        "model_hash": model_file.model_hash(model),
        "budget_bytes": r.budget,
        "chosen": _cand_json(r.best, n),
        "best_predicted": _cand_json(r.best_predicted, n),
        "verified": [_cand_json(x, n) for x in r.verified],
        "local_optima": [_cand_json(x, n) for x in r.local_optima],
        "search": {"method": "greedy by contribution per byte from every bias depth + hill climbing "
                             "(single and pair moves) with the real planner; the best local optima and the "
                             "optima within 1/2, 1/4, 1/8 of the budget re-measured",
                   "planner_calls": r.plans, "visited": len(r.visited), "seconds": r.seconds},
        "contributions": c.to_json(),
        "verification_protocol": {**asdict(checker.protocol), "seeds": list(checker.protocol.seeds)} if checker else None,
        "runs_measured": sum(m.runs_done for m in (measurer, checker) if m),
        "backend": measurer.backend.name if measurer else None,  # of the runs measured now (cached ones: any)
        "measuring_seconds": sum(m.measured_seconds for m in (measurer, checker) if m),
        "visited": [{"describe": v.point.describe(), "peak_sram_bytes": v.peak_bytes, "predicted_accuracy": v.score}
                    for v in sorted(r.visited, key=lambda v: v.peak_bytes)],
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=1))
    (out_dir / "report.md").write_text(report_markdown(model, c, r, checker.protocol.fit_samples if checker else 0))
    plot_contributions(c, out_dir / "contributions.png")
    plot_search(r, out_dir / "search.png")
    return report


def report_markdown(model: Model, c: Contributions, r: SearchResult, verify_samples: int = 0) -> str:
    n = c.n_layers
    p = c.protocol
    noise = c.noise
    lines = [f"# Contribution analysis: {model.name}, budget {kb(r.budget)}", ""]
    b = r.best
    lines += [f"**Chosen scheme**: {b.point.describe()} — planned peak SRAM {kb(b.peak_bytes)}, predicted "
              f"(summed contributions) {100 * b.score:.1f}%"
              + (f", measured {100 * b.measured_mean:.1f}%" if b.measured else "") + " validation accuracy.", "",
              "```json", json.dumps(b.point.scheme(n).to_authors_json()), "```", ""]
    lines += [f"Protocol: fine-tune on {p['fit_samples']} samples of the fit slice of `{p['data']}` (all but its last "
              f"{p['val_samples']}), lr {p['lr']} with a {p['schedule']} decay to 0, score on the last "
              f"{p['val_samples']} samples; seeds {p['seeds']} (sample order and stochastic rounding), mean over seeds.", ""]
    if noise.get("run_std") is not None:
        lines += [f"Noise (1 sigma, from the spread over seeds, pooled over {noise['schemes']} schemes): one run's "
                  f"accuracy {100 * noise['run_std']:.2f} points, a mean over {noise['seeds']} seeds "
                  f"{100 * noise['mean_std']:.2f}; a Δ (paired with the reference run of the same seed) "
                  f"{100 * noise['delta_std']:.2f}.", ""]
    lines += ["## Biases", "", f"Classifier only: {100 * c.classifier:.1f}%. k_ref = {c.k_ref}.", "",
              "| k | accuracy | Δacc_b |", "|---|---|---|"]
    for k in sorted(c.bias):
        lines.append(f"| {k} | {100 * c.bias[k].mean:.1f}% | {100 * c.delta_bias(k):+.1f} |")
    ratios = sorted({rr for (_, rr) in c.weights})
    lines += ["", f"## Weights (Δ vs. classifier + biases of the last {c.k_ref} layers, "
                  f"{100 * c.bias[c.k_ref].mean:.1f}%)", "",
              "| layer | " + " | ".join(f"r={x:g}" for x in ratios) + " |", "|---" * (len(ratios) + 1) + "|"]
    for i in range(n - 1):
        cells = [f"{100 * c.delta_weight(i, x):+.1f}" if (i, x) in c.weights else "=" for x in ratios]
        name = c.layer_names[i] if c.layer_names else str(i)
        lines.append(f"| {i} {name} | " + " | ".join(cells) + " |")
    lines += ["", "(= : the same channels as a smaller ratio.)", "", "## Search", "",
              f"{r.plans} planner calls, {len(r.visited)} schemes visited, {len(r.local_optima)} local optima"
              + (" (stopped early: planner call budget used up)" if r.truncated else "") + f", {r.seconds:.0f} s "
              "for analysis, search and verification.", "",
              f"{len(r.verified)} candidates were re-measured (the best local optima by summed contributions and "
              "the search's optima within a half, a quarter and an eighth of the budget), fine-tuning "
              f"{verify_samples} samples (seeds "
              + ", ".join(str(x) for x in sorted({sd for v in r.verified for sd in (v.measured or {})}))
              + "); the best measured one is chosen.", "",
              "| candidate | peak SRAM | predicted | measured | from |", "|---|---|---|---|---|"]
    shown = list(r.verified) + [x for x in r.local_optima[:10] if all(x.point != v.point for v in r.verified)]
    for x in shown:
        meas = f"{100 * x.measured_mean:.1f}%" if x.measured else ""
        lines.append(f"| {x.point.describe()} | {kb(x.peak_bytes)} | {100 * x.score:.1f}% | {meas} | {x.origin} |")
    return "\n".join(lines) + "\n"


def plot_search(r: SearchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5))
    fit = [v for v in r.visited if v.peak_bytes <= r.budget]
    over = [v for v in r.visited if v.peak_bytes > r.budget]
    ax.scatter([v.peak_bytes / 1024 for v in over], [100 * v.score for v in over], s=6, color="0.75",
               label="visited, over budget")
    ax.scatter([v.peak_bytes / 1024 for v in fit], [100 * v.score for v in fit], s=8, color="#4c72b0",
               label="visited, within budget (predicted)")
    lo = r.local_optima
    ax.scatter([v.peak_bytes / 1024 for v in lo], [100 * v.score for v in lo], s=40, facecolors="none",
               edgecolors="#dd8452", label="local optima (predicted)")
    ver = [v for v in r.verified if v.measured]
    ax.scatter([v.peak_bytes / 1024 for v in ver], [100 * v.measured_mean for v in ver], s=40, marker="s",
               color="#55a868", label="re-measured (validation)")
    b = r.best
    ax.scatter([b.peak_bytes / 1024], [100 * (b.measured_mean or b.score)], s=160, marker="*", color="#c44e52",
               label="chosen", zorder=5)
    ax.axvline(r.budget / 1024, color="k", ls="--", lw=0.8)
    ax.set_xlabel("planned peak SRAM (KB)")
    ax.set_ylabel("validation accuracy (%): predicted = summed contributions")
    ax.set_title(f"scheme search, budget {kb(r.budget)}")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
