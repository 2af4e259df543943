"""tinytrain pull / push: back up and restore what a board learned."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tinytrain.board.session import add_board_arguments, open_board
from tinytrain.errors import TinytrainError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pull", help="save a board's trained tensors",
                       description="Save the board's learned state (trainable tensors + step counter) with its "
                                   "model hash.")
    add_board_arguments(p)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=run_pull)
    q = sub.add_parser("push", help="restore saved trained tensors to a board",
                       description="Restore a state saved by `tinytrain pull`; refuses a file made for another model.")
    add_board_arguments(q)
    q.add_argument("file", type=Path)
    q.set_defaults(func=run_push)


def save_state(path: Path, model_hash: str, model_name: str, state: bytes) -> None:
    with open(path, "wb") as f:
        np.savez(f, model_hash=np.array(model_hash), model_name=np.array(model_name),
                 state=np.frombuffer(state, dtype=np.uint8))


def load_state(path: Path) -> tuple[str, bytes]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return str(z["model_hash"]), z["state"].tobytes()
    except (OSError, KeyError, ValueError) as exc:
        raise TinytrainError(f"{path} is not a state saved by `tinytrain pull` ({exc}).") from exc


def run_pull(args: argparse.Namespace) -> int:
    with open_board(args) as s:
        state = s.engine.params_get()
        save_state(args.out, s.engine.model.hash, s.engine.model.name, state)
        print(f"saved {len(state)} bytes of learned state of {s.engine.model.name} "
              f"({s.engine.model.hash[:12]}) to {args.out}")
    return 0


def run_push(args: argparse.Namespace) -> int:
    model_hash, state = load_state(args.file)
    with open_board(args) as s:
        if model_hash != s.engine.model.hash:
            raise TinytrainError(f"{args.file} was saved from model {model_hash[:12]}, but the board runs "
                                 f"{s.engine.model.hash[:12]}; refusing to restore it.")
        s.engine.params_set(state)
        print(f"restored {len(state)} bytes to {s.engine.model.name}")
    return 0
