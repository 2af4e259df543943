"""tinytrain bench: the paper's models on the emulated Cortex-M7, side by side with the anchors."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tinytrain.board.bench import BenchCase, authors_cases, default_cases, markdown, plot, run
from tinytrain.commands.options import positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure the paper's models in QEMU (JSON + markdown table)",
                       description="For each model (10-class head) and scheme: build for qemu_m7, boot, run warm-up "
                                   "and counted training steps and inferences on real photos, and record planned and "
                                   "measured peak SRAM, flash, instructions per step and per inference, MACs and the "
                                   "per-op profile. Writes JSON, a markdown table next to it (with the anchors) and a plot.")
    p.add_argument("--models", nargs="+", help="default: mbv2-w0.35 proxyless-w0.3 mcunet-5fps")
    p.add_argument("--schemes", nargs="+", help="budget labels of ../shared/anchors/sparse_schemes.json (default: all)")
    p.add_argument("--resolutions", nargs="+", type=int,
                   help="input resolutions (default: 128, plus 96 and 160 for mcunet-5fps: the scaling study)")
    p.add_argument("--budget", default="",
                   help="SRAM budget of every build, e.g. 128KB (default: the smallest plan; the default set also "
                        "builds the target configuration, mcunet-5fps/49kb, with a 128KB budget)")
    p.add_argument("--steps", type=positive_int, default=3, help="counted training steps and inferences per configuration")
    p.add_argument("--json", type=Path, default=Path("bench.json"), dest="json_path")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.models or args.schemes or args.resolutions or args.budget:
        cases = [BenchCase(c.model, c.scheme, r, args.budget) for c in authors_cases(args.models, args.schemes)
                 for r in args.resolutions or [128]]
    else:
        cases = default_cases()
    args.json_path.parent.mkdir(parents=True, exist_ok=True)  # before the runs, not after them
    rows = run(cases, args.steps)
    args.json_path.write_text(json.dumps(rows, indent=1))
    md = args.json_path.with_suffix(".md")
    md.write_text(markdown(rows))
    plot(rows, args.json_path.with_suffix(".png"))
    print(markdown(rows))
    print(f"wrote {args.json_path}, {md} and {args.json_path.with_suffix('.png')}")
    return 0 if all("error" not in r for r in rows) else 1
