"""The file of a board's learned state (`tinytrain pull`, `train --out`, fleet rounds): written by
save_state, read by load_state (`push`) and by `tinytrain export` (the model and learned tensors)."""

from __future__ import annotations

import json
import zipfile
import zlib
from pathlib import Path

import numpy as np

from tinytrain.errors import TinytrainError
from tinytrain.ir.graph import Model
from tinytrain.model import ttm

STATE_FORMAT = 2  # 2: bound to the trained-state layout (state_hash); 1 (no format key): model hash only
STATE_KEYS = ("model_hash", "state_hash", "state")
# What `tinytrain export` reads besides: "model" (the .ttm bytes of the model the board ran) and each
# layer's whole learned tensors under these prefixes plus its node name.
WEIGHT_PREFIX, BIAS_PREFIX = "weight.", "bias."



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
