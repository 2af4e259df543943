"""tinytrain pull / push: back up and restore what a board learned."""

from __future__ import annotations

import argparse
from pathlib import Path

from tinytrain.board.session import add_board_arguments, open_board
from tinytrain.commands.export import base_of, check_tflite_out, export_file
from tinytrain.commands.state_file import STATE_FORMAT, STATE_KEYS, check_out_path, load_state, save_state  # noqa: F401
from tinytrain.errors import TinytrainError
from tinytrain.reference.executor import NumpyBackend


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pull", help="save a board's trained tensors",
                       description="Save the board's learned state (trainable tensors + step counter) with its "
                                   "model hash and the hashes of its program and trained-state layout.")
    add_board_arguments(p)
    p.add_argument("--out", type=Path, required=True, help="the .npz file to write")
    p.add_argument("--tflite", type=Path, metavar="OUT",
                   help="also write the fine-tuned model as a TFLite file (a model imported from TFLite only; as "
                        "`tinytrain export`)")
    p.add_argument("--base", type=Path, metavar="BASE.tflite",
                   help="with --tflite: the TFLite file the model was imported from (default: the build's model, or "
                        "the .tflite named in the .ttm's metadata next to it)")
    p.add_argument("--force", action="store_true", help="with --tflite: overwrite OUT if it exists")
    p.set_defaults(func=run_pull)
    q = sub.add_parser("push", help="restore saved trained tensors to a board",
                       description="Restore a state saved by `tinytrain pull` (or `tinytrain train --out`); refuses a "
                                   "file made for another model or another trained-state layout (scheme). The board "
                                   "stages the state and commits it only once all of it arrived and matches its "
                                   "SHA-256: an interrupted push leaves the old state whole.")
    add_board_arguments(q)
    q.add_argument("file", type=Path)
    q.set_defaults(func=run_push)


def run_pull(args: argparse.Namespace) -> int:
    check_out_path(args.out)
    if args.tflite is not None:
        check_tflite_out(args.tflite, args.force)
    elif args.base is not None:
        raise TinytrainError("--base is the base file of --tflite; give --tflite OUT too.")
    with open_board(args) as s:
        state = s.engine.params_get()
        m = s.engine.model
        ref = NumpyBackend(s.verify_program().program, use_arena=False)
        ref.load_state_bytes(state)
        save_state(args.out, m.hash, m.name, state, m.state_hash, m.program_hash, m.scheme, model=ref.model,
                   learned=(ref.weights, ref.biases), config=s.config.to_json())
        print(f"saved {len(state)} bytes of learned state of {m.name} ({m.hash[:12]}, scheme {m.scheme}) to {args.out}")
        model_path = Path(s.config.model)
    if args.tflite is not None:
        base = args.base if args.base is not None else base_of(ref.model, model_path)
        print(export_file(base, args.out, args.tflite, args.force))
    return 0


def run_push(args: argparse.Namespace) -> int:
    saved = load_state(args.file)
    with open_board(args) as s:
        m = s.engine.model
        if saved["model_hash"] != m.hash:
            raise TinytrainError(f"{args.file} was saved from model {saved['model_hash'][:12]}, but the board runs "
                                 f"{m.hash[:12]}; refusing to restore it.")
        if saved["state_hash"] != m.state_hash:
            scheme = f" (scheme {saved['scheme']})" if saved["scheme"] else ""
            raise TinytrainError(f"{args.file} was saved from a build training other tensors{scheme} than the board's "
                                 f"(scheme {m.scheme}): its trained-state layout {saved['state_hash'][:12]} is not the "
                                 f"board's {m.state_hash[:12]}; refusing to restore it.")
        s.engine.params_set(saved["state"], saved["state_hash"])
        print(f"restored {len(saved['state'])} bytes to {m.name}")
    return 0
