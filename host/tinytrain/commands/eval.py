"""tinytrain eval: accuracy measured on the board with INFER frames."""

from __future__ import annotations

import argparse

from tinytrain.board.session import add_board_arguments, open_board
from tinytrain.learn.sample_input import board_samples
from tinytrain.board.streaming import evaluate
from tinytrain.commands.stream import add_data_arguments


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="measure a board's accuracy",
                       description="Classify labelled samples on the board (INFER frames) and print the accuracy.")
    add_board_arguments(p)
    add_data_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open_board(args) as s:
        model = s.config.load_model()
        wire, xs, ys = board_samples(args.data, model, args.samples, args.resize)
        r = evaluate(s.engine, xs, ys, wire=wire)
        print(f"accuracy {r.accuracy:.4f} on {len(ys)} samples of {args.data}")
    return 0
