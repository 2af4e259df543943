"""tinytrain contrib: contribution analysis and the sparse-update scheme it chooses for a memory budget."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tinytrain.commands.compile import check_out_folder
from tinytrain.commands.options import add_backend_argument, add_model_arguments, model_from_args, run_backend
from tinytrain.compile.compiler import model_lr
from tinytrain.compile.sram_budget import kb, parse_bytes
from tinytrain.errors import TinytrainError
from tinytrain.learn.contribution import Protocol
from tinytrain.learn.scheme_search import VERIFY, VERIFY_SAMPLES, VERIFY_SEEDS, choose


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("contrib", help="choose the sparse-update scheme for a memory budget (contribution analysis)",
                       description="Measure how much each bias depth and each layer's weights (at ratios 1/8, 1/4, "
                                   "1/2, 1) add to a short fine-tuning run (the engine's C code built for the host, or the NumPy "
                                   "reference; fit/validation split of "
                                   "--data), then search the scheme with the best summed contributions whose planned "
                                   "peak SRAM fits --budget. Writes DIR/scheme.json (the authors' convention), "
                                   "DIR/report.json, DIR/report.md, DIR/contributions.png and DIR/search.png. "
                                   "Finished runs are cached in DIR/runs (or --cache) and never repeated.")
    add_model_arguments(p)
    p.add_argument("--data", default="mnist:train",
                   help="training dataset; its last --val-samples samples are the validation slice (never a test set)")
    p.add_argument("--budget", required=True, help="total SRAM budget (planned peak SRAM), e.g. 256KB")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--cache", type=Path, help="folder of the cached runs (default: OUT); share it between budgets")
    d = Protocol()
    p.add_argument("--val-samples", type=int, default=d.val_samples, help="validation slice size")
    p.add_argument("--fit-samples", type=int, default=d.fit_samples, help="training steps of one measurement")
    p.add_argument("--lr", type=float, help="learning rate of the measurements (decays linearly to 0); default: the "
                                             "model's own (metadata lr, see tinytrain tune-lr), else 0.05")
    p.add_argument("--seeds", default=",".join(map(str, d.seeds)),
                   help="comma-separated seeds; every scheme is measured once per seed and averaged")
    p.add_argument("--verify", type=int, default=VERIFY,
                   help="local optima re-measured before choosing, besides the best lighter schemes (0: no "
                        "re-measurement)")
    p.add_argument("--verify-samples", type=int, default=VERIFY_SAMPLES,
                   help="fine-tuning steps of a re-measurement (the length of the on-device run the scheme is for)")
    p.add_argument("--verify-seeds", default=",".join(map(str, VERIFY_SEEDS)), help="seeds of the re-measurements")
    p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_backend_argument(p)
    p.set_defaults(func=run)


def _seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in str(text).split(",") if s.strip())
    except ValueError:
        seeds = ()
    if not seeds:
        raise TinytrainError(f"cannot read {text!r} as seeds; give comma-separated integers, e.g. 1,2.")
    return seeds


def protocol_from_args(args: argparse.Namespace, model) -> Protocol:
    lr = args.lr if args.lr is not None else model_lr(model)
    return Protocol(data=args.data, val_samples=args.val_samples, fit_samples=args.fit_samples, lr=lr,
                    seeds=_seeds(args.seeds))


def run(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    check_out_folder(args.out)
    model = model_from_args(args)
    budget = parse_bytes(args.budget)
    scheme, result, c = choose(model, budget, args.out, protocol_from_args(args, model), args.workers,
                               not args.no_progress, args.verify, cache_dir=args.cache,
                               verify_seeds=_seeds(args.verify_seeds), verify_samples=args.verify_samples,
                               backend=run_backend(args))
    b = result.best
    noise = c.noise.get("delta_std")
    # the search's score adds up contributions measured one at a time: a ranking, not an accuracy (it can pass 100)
    print(f"{model.name}: chose {b.point.describe()} for {kb(budget)}: planned peak SRAM {kb(b.peak_bytes)}, "
          + (f"measured {100 * b.measured_mean:.1f}% validation accuracy, " if b.measured else "")
          + f"summed contributions {100 * b.score:.1f} points (classifier only {100 * c.classifier:.1f}%"
          + (f"; noise of a Δ {100 * noise:.1f} points" if noise else "") + ")")
    print(f"scheme {scheme.to_authors_json()}")
    print(f"wrote {args.out / 'scheme.json'}, report.json, report.md, contributions.png, search.png "
          f"in {time.monotonic() - t0:.0f} s")
    return 0
