"""tinytrain stream: labelled samples to a board as TRAIN frames, with a live progress bar."""

from __future__ import annotations

import argparse

import numpy as np

from tinytrain.board.session import add_board_arguments, open_board
from tinytrain.board.streaming import stream
from tinytrain.commands.options import positive_int
from tinytrain.learn.sample_input import board_samples
from tinytrain.learn.schedules import SCHEDULES


def add_data_arguments(p: argparse.ArgumentParser, default: str | None = None) -> None:
    p.add_argument("--data", required=default is None, default=default,
                   help="mnist:train, mnist:test, fashion-mnist:train|test, watch:train, watch:heldout, "
                        "watch:subject=S[:adapt|:test] (any with [a:b]), a .npz or a folder")
    p.add_argument("--samples", type=positive_int, help="use only the first N samples")
    p.add_argument("--resize", action="store_true", help="resize/convert images that do not match the model input")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stream", help="train a board on labelled samples",
                       description="Send labelled samples to the board as TRAIN frames; show samples/s, running "
                                   "loss and running accuracy (prediction before each update).")
    add_board_arguments(p)
    add_data_arguments(p)
    p.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--schedule", choices=SCHEDULES, default="constant", help="learning-rate scale per step")
    p.add_argument("--checkpoint-every", type=positive_int, metavar="N",
                   help="have the board checkpoint its learned state in flash when the stream starts, every N "
                        "steps and at the end, and survive resets of the board: wait for it and go on from the "
                        "step it restored (docs/checkpoints.md)")
    p.add_argument("--resume", action="store_true",
                   help="start where the board is in this stream, after an earlier run stopped (same --data, "
                        "--samples, --epochs, --schedule): from the step it restored, so no sample is trained "
                        "twice or skipped")
    p.add_argument("--lr", type=float, help="learning rate of this stream (default: the build's, i.e. the model's "
                                            "own); sent as each TRAIN's scale, no rebuild (up to 4x the build's)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_board(args) as s:
        model = s.config.load_model()
        wire, xs, ys = board_samples(args.data, model, args.samples, args.resize)
        unit = "window" if wire.dtype == np.int16 else "sample"
        built_lr = float(s.info["options"]["lr"])
        res = stream(s.engine, xs, ys, model.tensors[model.output].qparams.scale, args.epochs, args.schedule,
                     wire=wire, unit=unit, checkpoint_every=args.checkpoint_every, resume=args.resume,
                     lr_factor=(args.lr / built_lr) if args.lr else 1.0)
        n = res.samples
        total = len(xs) * args.epochs
        began = f" from {unit} {res.start + 1} of {total}" if res.start else ""
        print(f"{n} {unit}s{began} in {res.seconds:.1f} s ({n / max(res.seconds, 1e-9):.1f} {unit}s/s); running "
              f"accuracy {sum(res.correct[-100:]) / max(len(res.correct[-100:]), 1):.3f} over the last "
              f"{min(n, 100)}; {sum(res.counts) / max(n, 1):.0f} counter units per step")
        if args.checkpoint_every or res.resumes:
            print(f"{res.checkpoints} checkpoints ({res.erases} flash sector erases since the board started), "
                  f"{res.resumes} resets survived; the board's step counter is {s.engine.step_count()}")
    return 0
