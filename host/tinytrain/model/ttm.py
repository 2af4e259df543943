"""The on-disk model format (.ttm): one zip file, no pickle. See docs/model_format.md.

    model.json          the graph: tensors, ops in forward order, metadata
    arrays/<name>.npy   every array (weights, biases, weight scales), NumPy .npy
                        format, read with allow_pickle=False
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np

from tinytrain.errors import TinytrainError
from tinytrain.ops import NODE_TYPES
from tinytrain.ir.graph import Model, ModelError, Node, QuantParams, TensorSpec, json_int

FORMAT = "tinytrain-model"
VERSION = 1


class ModelFileError(TinytrainError):
    """A model file that cannot be read."""


def _array_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def to_bytes(model: Model) -> bytes:
    model.validate()
    arrays: dict[str, np.ndarray] = {}
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "name": model.name,
        "input": model.input,
        "output": model.output,
        "tensors": [
            {"name": t.name, "shape": list(t.shape), "scale": t.qparams.scale, "zero_point": t.qparams.zero_point}
            for t in model.tensors.values()
        ],
        "ops": [op.to_json(arrays) for op in model.ops],
        "metadata": model.metadata,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        # Fixed timestamps keep the bytes (and the model hash) reproducible.
        def put(name: str, data: bytes) -> None:
            z.writestr(zipfile.ZipInfo(name, date_time=(2022, 1, 1, 0, 0, 0)), data, compress_type=zipfile.ZIP_DEFLATED)

        put("model.json", json.dumps(doc, indent=1, sort_keys=True).encode())
        for ref in sorted(arrays):
            put(f"arrays/{ref}.npy", _array_bytes(arrays[ref]))
    return buf.getvalue()


def save(model: Model, path: str | Path) -> None:
    Path(path).write_bytes(to_bytes(model))


def model_hash(model: Model) -> str:
    """Hex SHA-256 of what decides the model's numerics (the canonical file bytes)."""
    return hashlib.sha256(to_bytes(model)).hexdigest()


def _why(exc: BaseException) -> str:
    """The exception's kind and first line, for a one-sentence message."""
    text = str(exc).splitlines()[0][:100].rstrip(".") if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load(path: str | Path) -> Model:
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file {path} does not exist.")
    if not path.is_file():
        raise ModelFileError(f"{path} is not a file.")
    return _load(path, path)


def from_bytes(data: bytes, name: str = "the embedded model") -> Model:
    """The model of to_bytes' bytes (e.g. the one a `tinytrain pull` file carries); errors name `name`."""
    return _load(io.BytesIO(data), name)


def _load(source, path) -> Model:
    try:
        with zipfile.ZipFile(source) as z:
            doc = json.loads(z.read("model.json"))
            if not isinstance(doc, dict):
                raise ModelFileError(f"{path} is not a tinytrain model (its model.json is not an object).")
            if doc.get("format") != FORMAT:
                raise ModelFileError(f"{path} is not a tinytrain model (format {doc.get('format')!r}).")
            if doc.get("version") != VERSION:
                raise ModelFileError(f"{path} has model format version {doc.get('version')}, this tinytrain reads {VERSION}.")

            def arr(ref: str) -> np.ndarray:
                with z.open(f"arrays/{ref}.npy") as f:
                    return np.lib.format.read_array(io.BytesIO(f.read()), allow_pickle=False)

            tensors = {
                t["name"]: TensorSpec(t["name"], tuple(json_int(v) for v in t["shape"]),
                                      QuantParams(float(t["scale"]), json_int(t["zero_point"])))
                for t in doc["tensors"]
            }
            ops: list[Node] = []
            for d in doc["ops"]:
                node_type = NODE_TYPES.get(d["type"])
                if node_type is None:
                    raise ModelFileError(f"{path} uses an unknown op type {d['type']!r}.")
                ops.append(node_type.from_json(d, arr))
            model = Model(str(doc["name"]), tensors, ops, doc["input"], doc["output"], doc.get("metadata", {}))
    except ModelFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - anything a damaged or hostile file makes the parser raise
        # (zlib.error, EOFError, KeyError, TypeError, AttributeError, ValueError, BadZipFile, ...)
        raise ModelFileError(f"{path} is not a readable tinytrain model file ({_why(exc)}).") from None
    try:
        model.validate()
    except ModelError as exc:
        raise ModelFileError(f"{path}: {exc}") from exc
    return model
