"""Writes what a board learned back into the TFLite file it came from.

The base file is read again and only the tensors that learning changed are replaced: the weights
and biases of every weighted node (in the file's own layout and quantization), and, when the model
got a new head, the head's shapes and quantization and the shapes of what follows it (RESHAPE,
SOFTMAX, DEQUANTIZE). Everything else in the file stays as it was, so the tuned file runs wherever
TFLite Micro runs and computes, op by op, what the board computes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from tinytrain.errors import TinytrainError
from tinytrain.ir.graph import Model
from tinytrain.model.tflite_reader import Quantization, Tensor, TFLiteModel, read_tflite
from tinytrain.model.tflite_writer import replace_tensors, serialize_tflite, with_operators


class ExportError(TinytrainError):
    """A model that cannot be written back into a TFLite file."""


def _to_file_layout(w: np.ndarray, layout: str) -> np.ndarray:
    if layout == "depthwise":  # ours [C, KH, KW, 1], TFLite's [1, KH, KW, C]
        return np.ascontiguousarray(w.transpose(3, 1, 2, 0))
    if layout == "conv1x1":  # a 1x1 conv on a 1x1 input, imported as a dense layer
        return w.reshape(w.shape[0], 1, 1, -1)
    return w


def _weight_quantization(scales: np.ndarray, dim: int) -> Quantization:
    scales = np.asarray(scales, dtype=np.float32)
    if np.all(scales == scales[0]):
        scales = scales[:1]  # one scale where the file can say it with one
    return Quantization(scales, np.zeros(scales.size, np.int64), dim)


def export_tflite(base: str | Path, model: Model, weights: dict[str, np.ndarray],
                  biases: dict[str, np.ndarray]) -> bytes:
    """The bytes of BASE with `model`'s learned weights and biases (by node name, in tinytrain's
    layout) and, where `model` has a new head, the head's new shape and quantization."""
    meta = model.metadata.get("tflite")
    if not meta or "params" not in meta:
        raise ExportError(f"{model.name} was not imported from a TFLite file, so there is no file to write it into.")
    m = read_tflite(base)
    import hashlib

    if meta.get("sha256") and hashlib.sha256(Path(base).read_bytes()).hexdigest() != meta["sha256"]:
        raise ExportError(f"{base} is not the file the model was imported from (its SHA-256 differs).")
    changes: dict[int, dict | Tensor] = {}
    operators = list(m.operators)
    for node in model.weighted_ops:
        info = meta["params"].get(node.name)
        if info is None:
            raise ExportError(f"layer {node.name} has no tensor in {base}.")
        op = m.operators[info["op"]]
        w_t = m.tensors[info["weight"]]
        w = _to_file_layout(np.asarray(weights[node.name], dtype=np.int8), info["layout"])
        x = model.tensors[node.input].qparams
        dim = 3 if info["layout"] == "depthwise" else 0
        old_scales = np.asarray(w_t.quantization.scale, dtype=np.float32)
        new_scales = np.asarray(node.weight_scales, dtype=np.float32)
        same_quant = w.shape == tuple(w_t.shape) and (
            np.array_equal(old_scales, new_scales) or (old_scales.size == 1 and np.all(new_scales == old_scales[0])))
        change: dict = {"data": w}
        if not same_quant:
            change.update(shape=w.shape, quantization=_weight_quantization(new_scales, dim))
        changes[w_t.index] = change
        b = np.asarray(biases[node.name], dtype=np.int32)
        b_scales = (np.float64(x.scale) * new_scales.astype(np.float64)).astype(np.float32)
        b_q = Quantization(b_scales, np.zeros(b.size, np.int64), 0)
        if info["bias"] is not None:
            b_t = m.tensors[info["bias"]]
            changes[b_t.index] = {"data": b} if same_quant else {"data": b, "shape": b.shape, "quantization": b_q}
        elif np.any(b != 0) or not same_quant:
            idx = len(m.tensors) + sum(1 for k in changes if k >= len(m.tensors))
            changes[idx] = Tensor(idx, f"{node.name}/bias", b.shape, "INT32", b_q, b)
            operators[op.index] = dataclasses.replace(op, inputs=(*op.inputs[:2], idx))
        y = model.tensors[node.output].qparams
        out = op.outputs[0]
        same_output = (m.tensors[out].shape[-1] == node.out_channels and m.tensors[out].scale == y.scale
                       and m.tensors[out].zero_point == y.zero_point)
        if not (same_quant and same_output):  # a new head: its output and what follows it take its shape
            changes[out] = {"shape": _with_last(m.tensors[out].shape, node.out_channels),
                            "quantization": Quantization(np.array([y.scale], np.float32),
                                                         np.array([y.zero_point], np.int64), 0)}
            t = out
            while True:
                nxt = [o for o in m.operators if t in o.inputs]
                if len(nxt) != 1 or nxt[0].op not in ("SOFTMAX", "DEQUANTIZE", "RESHAPE"):
                    break
                t = nxt[0].outputs[0]
                changes[t] = {"shape": _with_last(m.tensors[t].shape, node.out_channels)}
    tuned = with_operators(replace_tensors(m, changes), operators)
    return serialize_tflite(tuned, Path(base).name)


def _with_last(shape: tuple[int, ...], n: int) -> tuple[int, ...]:
    return (*shape[:-1], n) if shape else (n,)


def read_back(data: bytes, name: str = "<exported>") -> TFLiteModel:
    from tinytrain.model.tflite_reader import parse_tflite

    return parse_tflite(data, name)
