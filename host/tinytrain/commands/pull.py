"""tinytrain pull / push: back up and restore what a board learned."""

from __future__ import annotations

import argparse
import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from tinytrain.board.session import add_board_arguments, open_board
from tinytrain.errors import TinytrainError
from tinytrain.ir.graph import Model
from tinytrain.model import ttm
from tinytrain.reference.executor import NumpyBackend

STATE_FORMAT = 2  # 2: bound to the trained-state layout (state_hash); 1 (no format key): model hash only
STATE_KEYS = ("model_hash", "state_hash", "state")
# What `tinytrain export` reads besides: "model" (the .ttm bytes of the model the board ran) and each
# layer's whole learned tensors under these prefixes plus its node name.
WEIGHT_PREFIX, BIAS_PREFIX = "weight.", "bias."


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


def check_out_path(path: Path) -> None:
    """Refuses an output file that cannot be written before any work is done."""
    if path.is_dir():
        raise TinytrainError(f"{path} is a folder; give the file to write, e.g. {path / 'learned.npz'}.")
    if not path.parent.is_dir():
        raise TinytrainError(f"the folder {path.parent} of {path} does not exist.")


def save_state(path: Path, model_hash: str, model_name: str, state: bytes, state_hash: str,
               program_hash: str = "", scheme: str = "", *, model: Model | None = None,
               learned: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None,
               config: dict | None = None) -> None:
    """The state and its hashes; with `model` and `learned` (every layer's whole weights and biases after
    learning, by node name) also what `tinytrain export` needs: the model the board ran (the .ttm bytes)
    and its learned tensors; `config` is the build configuration (informative)."""
    check_out_path(path)
    extra: dict[str, np.ndarray] = {}
    if model is not None and learned is not None:
        extra["model"] = np.frombuffer(ttm.to_bytes(model), dtype=np.uint8)
        weights, biases = learned
        for node in model.weighted_ops:
            extra[f"{WEIGHT_PREFIX}{node.name}"] = np.asarray(weights[node.name], dtype=np.int8)
            extra[f"{BIAS_PREFIX}{node.name}"] = np.asarray(biases[node.name], dtype=np.int32)
    if config is not None:
        extra["config"] = np.array(json.dumps(config, sort_keys=True))
    try:
        with open(path, "wb") as f:
            np.savez(f, format=np.array(STATE_FORMAT), model_hash=np.array(model_hash), model_name=np.array(model_name),
                     state_hash=np.array(state_hash), program_hash=np.array(program_hash), scheme=np.array(scheme),
                     state=np.frombuffer(state, dtype=np.uint8), **extra)
    except OSError as exc:
        raise TinytrainError(f"cannot write {path} ({exc.strerror or exc}).") from None


def load_state(path: Path) -> dict:
    """The saved state and its hashes; one sentence for anything that is not such a file."""
    what = f"{path} is not a state saved by `tinytrain pull`"
    if not path.is_file():
        raise TinytrainError(f"{path} does not exist." if not path.exists() else f"{what} (it is a folder).")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise TinytrainError(f"{what} (it is a single array, not an .npz archive).")
        with z:
            missing = [k for k in STATE_KEYS if k not in z.files]
            if "model_hash" in z.files and "state_hash" in missing and "state" in z.files:
                raise TinytrainError(f"{path} was saved by an older tinytrain without the layout of its trained "
                                     "state, so it cannot be checked against the board; pull it again.")
            if missing:
                raise TinytrainError(f"{what} (it lacks {', '.join(missing)}).")
            doc = {k: z[k] for k in z.files}
    except TinytrainError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError) as exc:
        raise TinytrainError(f"{what} ({type(exc).__name__}).") from None
    try:
        state = doc["state"]
        if state.dtype != np.uint8 or state.ndim != 1 or state.size < 4:
            raise ValueError("state")
        out = {"state": state.tobytes()}
        for key in ("model_hash", "state_hash", "program_hash", "scheme", "model_name"):
            value = doc.get(key, np.array(""))
            if value.ndim != 0 or value.dtype.kind != "U":
                raise ValueError(key)
            out[key] = str(value)
        for key in ("model_hash", "state_hash"):
            if len(out[key]) != 64 or any(c not in "0123456789abcdef" for c in out[key]):
                raise ValueError(key)
    except ValueError as exc:
        raise TinytrainError(f"{what} (its {exc} entry is malformed).") from None
    return out


def run_pull(args: argparse.Namespace) -> int:
    check_out_path(args.out)
    if args.tflite is not None:
        from tinytrain.commands.export import check_tflite_out

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
        from tinytrain.commands.export import base_of, export_file

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
