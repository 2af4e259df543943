"""Imports the authors' real-quantized int8 models (mit-han-lab/tiny-training .pkl files).

The files are torch.save zip archives holding one protocol-2 pickle whose
tensors are plain NumPy arrays. They are read with a restricted unpickler that
only admits the handful of globals NumPy arrays need; anything else is refused,
so a hostile file cannot run code. PyTorch is not needed.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path

import numpy as np

from tinytrain.errors import TinytrainError
from tinytrain.ops import Add, Conv2D, Dense, GlobalAveragePool
from tinytrain.ir.graph import Model, QuantParams, TensorSpec

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
}


def _latin1_encode(text, encoding="latin1", errors="strict"):
    """_codecs.encode as protocol-2 pickles of arrays use it (str -> bytes, latin1), and nothing else."""
    if encoding not in ("latin1", "latin-1") or errors != "strict" or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with the codec {encoding!r}")
    return text.encode("latin1")


class ImportError_(TinytrainError):
    """A model file that cannot be imported."""


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing global {module}.{name}")
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if module.startswith("numpy.core"):
            module = module.replace("numpy.core", "numpy._core", 1)
        return super().find_class(module, name)


def _why(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:100].rstrip(".") if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def read_pickle(path: str | Path) -> dict:
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("data.pkl")]
            if len(names) != 1:
                raise ImportError_(f"{path} does not hold exactly one data.pkl.")
            with z.open(names[0]) as f:
                d = _RestrictedUnpickler(f).load()
    except ImportError_:
        raise
    except zipfile.BadZipFile as exc:
        raise ImportError_(f"{path} is not a torch.save zip archive ({_why(exc)}).") from None
    except pickle.UnpicklingError as exc:
        raise ImportError_(f"{path} contains something other than NumPy arrays ({_why(exc)}).") from None
    except Exception as exc:  # noqa: BLE001 - a damaged pickle (EOFError, ValueError, zlib.error, ...)
        raise ImportError_(f"{path} is not a readable model pickle ({_why(exc)}).") from None
    if not isinstance(d, dict):
        raise ImportError_(f"{path} holds a {type(d).__name__}, not the dict of one of the paper's models.")
    return d


def _qp(scale, zero) -> QuantParams:
    return QuantParams(float(scale), int(zero))


def from_dict(d: dict, name: str) -> Model:
    tensors: dict[str, TensorSpec] = {}
    ops = []
    convs = [d["first_conv"]]
    n_conv = 0

    def add_tensor(tname: str, size: int, channels: int, qp: QuantParams) -> str:
        tensors[tname] = TensorSpec(tname, (size, size, channels), qp)
        return tname

    def conv(c: dict, x: str) -> str:
        nonlocal n_conv
        p = c["params"]
        i = n_conv
        n_conv += 1
        y = add_tensor(f"t{i}", int(c["out_shape"]), int(c["out_channel"]), _qp(p["y_scale"], p["y_zero"]))
        w = np.asarray(p["weight"], dtype=np.int8).transpose(0, 2, 3, 1).copy()  # OIHW -> OHWI
        k = int(c["kernel_size"][0])
        ops.append(Conv2D(f"conv{i}", x, y, w, np.asarray(p["bias"], dtype=np.int32),
                          np.asarray(p["w_scales"], dtype=np.float32).reshape(-1), int(c["stride"]), int(c["groups"]),
                          k // 2))
        return y

    fc = d["first_conv"]
    x = add_tensor("input", int(fc["in_shape"]), int(fc["in_channel"]),
                   _qp(fc["params"]["x_scale"], fc["params"]["x_zero"]))
    x = conv(fc, x)
    for bi, b in enumerate(d["blocks"]):
        block_in = x
        for key in ("pointwise1", "depthwise", "pointwise2"):
            if b.get(key) is not None:
                x = conv(b[key], x)
        if b.get("se") is not None:
            raise ImportError_("squeeze-and-excitation blocks are not supported.")
        if b.get("residual") is not None:
            r = b["residual"]["params"]
            y = add_tensor(f"res{bi}", tensors[x].shape[0], tensors[x].shape[2], _qp(r["y_scale"], r["y_zero"]))
            ops.append(Add(f"add{bi}", (x, block_in), y))
            x = y
    if d.get("feature_mix") is not None:
        x = conv(d["feature_mix"], x)
    cl = d["classifier"]["params"]
    pooled = add_tensor("pooled", 1, tensors[x].shape[2], _qp(cl["x_scale"], cl["x_zero"]))
    ops.append(GlobalAveragePool("pool", x, pooled))
    w = np.asarray(cl["weight"], dtype=np.int8).reshape(cl["weight"].shape[0], -1)
    logits = add_tensor("logits", 1, w.shape[0], _qp(cl["y_scale"], cl["y_zero"]))
    ops.append(Dense(f"conv{n_conv}", pooled, logits, w, np.asarray(cl["bias"], dtype=np.int32),
                     np.asarray(cl["w_scales"], dtype=np.float32).reshape(-1)))
    del convs
    model = Model(name, tensors, ops, "input", "logits", {
        "source": "mit-han-lab/tiny-training algorithm/assets/mcu_models (commit 7bf8e05), MIT licence",
        # RGB pixel p in 0..255 -> p / 127.5 - 1 (the int8 input is then exactly p - 128).
        "pixel_to_real": [1 / 127.5, -1.0],
        "mean_rgb": None,
    })
    model.validate()
    return model


def load(path: str | Path) -> Model:
    path = Path(path)
    if not path.exists():
        raise ImportError_(f"{path} does not exist (the paper's models live in ../shared/models/tiny-training/).")
    d = read_pickle(path)
    try:
        model = from_dict(d, path.stem)
    except TinytrainError:
        raise
    except Exception as exc:  # noqa: BLE001 - a dict without the layout of the authors' models
        raise ImportError_(f"{path} is not one of the paper's models ({_why(exc)}).") from None
    # A .pkl carries no metadata: its hash finds its base learning rate in model.known_models.
    model.metadata["file_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    return model
