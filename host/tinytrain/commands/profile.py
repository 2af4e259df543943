"""tinytrain profile: instructions (QEMU) or cycles (board) per op of the last step."""

from __future__ import annotations

import argparse
import json

import numpy as np

from tinytrain.board.session import add_board_arguments, open_board
from tinytrain.board.messages import CounterKind

UNITS = {CounterKind.INSTRUCTIONS: "instructions", CounterKind.CYCLES: "cycles", CounterKind.NANOSECONDS: "ns"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="per-op cost of the last training step or inference",
                       description="Fetch the counter of every op of the last TRAIN (or INFER) from the board.")
    add_board_arguments(p)
    p.add_argument("--program", choices=["train", "infer"], default="train")
    p.add_argument("--json", action="store_true", help="a JSON list of rows: op, kind, macs, instructions")
    p.add_argument("--run", action="store_true",
                   help="first run one step on a zero sample (TRAIN with learning-rate scale 0, which changes no "
                        "weight but advances the step counter); implied by --emulate")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_board(args) as s:
        if args.run or args.emulate:
            x = np.zeros(s.engine.model.input_bytes, dtype=np.int8)
            s.engine.train(x, 0, lr_scale=0) if args.program == "train" else s.engine.infer(x)
        rows = s.engine.profile(args.program)
        unit = UNITS.get(s.link.info().counter_kind, "counts")
    if args.json:
        print(json.dumps([{"op": r.op, "kind": r.kind, "macs": r.macs, "instructions": r.count, "unit": unit}
                          for r in rows], indent=1))
        return 0
    print(format_table(rows, unit))
    return 0


def format_table(rows, unit: str) -> str:
    total = sum(r.count for r in rows) or 1
    lines = [f"{'op':12s} {'kind':14s} {'MACs':>10s} {unit:>12s} {'per MAC':>8s} {'share':>6s}"]
    for r in rows:
        per = f"{r.count / r.macs:.2f}" if r.macs else ""
        lines.append(f"{r.op:12s} {r.kind:14s} {r.macs:10d} {r.count:12d} {per:>8s} {100 * r.count / total:5.1f}%")
    lines.append(f"{'total':12s} {'':14s} {sum(r.macs for r in rows):10d} {total:12d}")
    return "\n".join(lines)


