"""tinytrain check: the board against the NumPy reference, bit for bit, and its memory against the plan."""

from __future__ import annotations

import argparse

import numpy as np

from tinytrain.board.session import add_board_arguments, open_board
from tinytrain.board.streaming import evaluate, stream
from tinytrain.commands.options import positive_int
from tinytrain.commands.stream import add_data_arguments
from tinytrain.compile.sram_budget import parse_bytes
from tinytrain.learn.sample_input import board_samples
from tinytrain.learn.schedules import SCHEDULES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check a board against the NumPy reference",
                       description="Start the NumPy reference from the board's current learned state, stream the "
                                   "same samples to both, and check: identical logits and predictions, identical "
                                   "trained tensors (PARAMS_GET), measured peak SRAM (STATS) vs. plan vs. budget. "
                                   "Exits non-zero when a check fails.")
    add_board_arguments(p)
    add_data_arguments(p)
    p.add_argument("--eval-data", help="also compare INFER on these samples after training")
    p.add_argument("--eval-samples", type=positive_int)
    p.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--schedule", choices=SCHEDULES, default="constant")
    p.add_argument("--budget", help="SRAM budget to check the measured peak against (default: the build's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    results: list[tuple[str, bool, str]] = []
    with open_board(args) as s:
        model = s.config.load_model()
        ref = s.reference()
        ref.load_state_bytes(s.engine.params_get())
        wire, xs, ys = board_samples(args.data, model, args.samples, args.resize)
        res = stream(s.engine, xs, ys, model.tensors[model.output].qparams.scale, args.epochs, args.schedule,
                     reference=ref, desc="train (board + reference)", wire=wire)
        results.append(("training logits and predictions identical", res.mismatch is None,
                        f"{res.samples} steps" if res.mismatch is None else f"first mismatch at step {res.mismatch}"))
        board_state = s.engine.params_get()
        ref_state = ref.state_bytes()
        same = board_state == ref_state
        detail = f"{len(board_state)} bytes"
        if not same:
            diff = np.nonzero(np.frombuffer(board_state, np.uint8) != np.frombuffer(ref_state, np.uint8))[0]
            detail += f", {diff.size} differ, first at byte {int(diff[0])}" if diff.size else ", lengths differ"
        results.append(("trained tensors identical (PARAMS_GET vs reference)", same, detail))
        if args.eval_data:
            ewire, ex, ey = board_samples(args.eval_data, model, args.eval_samples, args.resize)
            ev = evaluate(s.engine, ex, ey, reference=ref, desc="eval (board + reference)", wire=ewire)
            results.append(("inference logits identical", ev.mismatch is None,
                            f"accuracy {ev.accuracy:.4f} on {len(ey)}" if ev.mismatch is None
                            else f"first mismatch at sample {ev.mismatch}"))
        stats = s.link.stats()
        planned = s.info["planned_peak_sram_bytes"]
        budget_text = args.budget or s.config.budget
        budget = parse_bytes(budget_text) if budget_text else None
        measured = (f"measured {stats.peak_sram_bytes} B (static {stats.data_bytes + stats.bss_bytes} + stack "
                    f"{stats.stack_used_bytes})")
        if budget is not None:
            results.append(("measured peak SRAM within budget", stats.peak_sram_bytes <= budget,
                            f"{measured}, budget {budget} B, planned {planned} B"))
        else:  # nothing to hold it to but the compiler's plan
            results.append(("measured peak SRAM within the plan", stats.peak_sram_bytes <= planned,
                            f"{measured}, planned {planned} B (no budget given or built with)"))
    width = max(len(name) for name, _, _ in results)
    for name, ok, detail in results:
        print(f"{'PASS' if ok else 'FAIL'}  {name:{width}s}  {detail}")
    return 0 if all(ok for _, ok, _ in results) else 1
