"""Replacing a model's classifier with a new N-class head for transfer learning.

The new head inherits the quantization ranges of the old one: its weight scale
is the median of the old per-channel weight scales and its logits keep the old
output scale (with zero point 0), so weights and logits have the same room to
grow as the pre-trained head had. Weights start as PyTorch's default Linear
init (uniform in +-1/sqrt(fan_in), quantized), biases at zero.
"""

from __future__ import annotations

import copy

import numpy as np

from tinytrain.errors import TinytrainError
from tinytrain.ops import Dense
from tinytrain.ir.graph import Model, QuantParams, TensorSpec


def replace_head(model: Model, num_classes: int, seed: int = 0, init: str = "uniform") -> Model:
    if not 2 <= num_classes <= 2047:
        raise TinytrainError(f"a head needs 2 to 2047 classes, got {num_classes}.")
    head = model.producer()[model.output]
    if not isinstance(head, Dense):
        raise TinytrainError("only a dense classifier can be replaced by a new head.")
    new = copy.deepcopy(model)
    k = head.in_channels
    w_scale = float(np.median(head.weight_scales))
    rng = np.random.default_rng(seed)
    if init == "uniform":
        wf = rng.uniform(-1.0, 1.0, size=(num_classes, k)) / np.sqrt(k)
    elif init == "zeros":
        wf = np.zeros((num_classes, k))
    else:
        raise TinytrainError(f"unknown head init {init!r}; use uniform or zeros.")
    w = np.clip(np.rint(wf / w_scale), -127, 127).astype(np.int8)
    old_out = new.tensors[model.output]
    new.tensors[model.output] = TensorSpec(old_out.name, (1, 1, num_classes), QuantParams(old_out.qparams.scale, 0))
    new_head = Dense(head.name, head.input, head.output, w, np.zeros(num_classes, dtype=np.int32),
                     np.full(num_classes, w_scale, dtype=np.float32))
    new.ops = [new_head if op.name == head.name else op for op in new.ops]
    new.metadata = dict(new.metadata, head={"classes": num_classes, "init": init, "seed": seed,
                                            "replaced": model.num_classes})
    new.validate()
    return new
