"""tinytrain compile: model + scheme -> training program, memory plan, report.json and a plot."""

from __future__ import annotations

import argparse
from pathlib import Path

from tinytrain.commands.options import (add_backend_argument, add_model_arguments, add_training_arguments, model_from_args,
                                       options_from_args, run_backend)
from tinytrain.compile import scheme as sparse_scheme
from tinytrain.compile.compiler import compile_model, write_outputs
from tinytrain.compile.sram_budget import kb, parse_bytes
from tinytrain.errors import TinytrainError
from tinytrain.learn.scheme_search import auto_scheme


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compile", help="compile a training step and plan its memory",
                       description="Compile MODEL with a sparse-update scheme into a static training step; write "
                                   "DIR/report.json, DIR/memory_plan.png and DIR/program.txt.")
    add_model_arguments(p)
    p.add_argument("--scheme", default="classifier",
                   help="classifier | bias-only | last:K | full | FILE.json | FILE.json:model/budget | auto "
                        "(contribution analysis for --budget, see tinytrain contrib)")
    p.add_argument("--budget", help="total SRAM budget, e.g. 256KB; an unmet budget is an error")
    p.add_argument("--contrib-data", default="mnist:train", help="--scheme auto: dataset of the contribution runs")
    p.add_argument("--contrib-dir", type=Path,
                   help="--scheme auto: folder of the cached contribution runs (default build/contrib/<model hash>)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    add_backend_argument(p, "--scheme auto: ")
    add_training_arguments(p)
    p.set_defaults(func=run)


def check_out_folder(path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise TinytrainError(f"--out {path} is a file, not a folder; name a folder to write into.")


def run(args: argparse.Namespace) -> int:
    check_out_folder(args.out)
    model = model_from_args(args)
    budget = parse_bytes(args.budget) if args.budget else None
    scheme = sparse_scheme.load(args.scheme, model, budget, auto=lambda m, b: auto_scheme(
        m, b, data=args.contrib_data, cache_dir=args.contrib_dir, backend=run_backend(args)))
    compiled = compile_model(model, scheme, options_from_args(args, model), budget)
    report = write_outputs(compiled, args.out, budget)
    print(f"{model.name} / {scheme.name}: planned peak SRAM {kb(report['planned_peak_sram_bytes'])} "
          f"(arena {kb(report['arena_bytes'])}, trainable {kb(report['trainable_sram_bytes'])}; "
          f"without reordering {kb(report['peak_without_reordering_bytes'])}), flash {kb(report['flash_bytes'])}, "
          f"{report['macs_forward'] / 1e6:.2f} M MACs forward, {report['macs_backward'] / 1e6:.2f} M backward")
    print(f"wrote {args.out / 'report.json'}, {args.out / 'memory_plan.png'}, {args.out / 'program.txt'}")
    return 0


