"""What image pixels mean to a model: its pixel table, and a model that takes a smaller image as it
comes from its source and makes its own input on the board (ops.image_resize)."""

from __future__ import annotations

import copy
import re

import numpy as np

from tinytrain.errors import TinytrainError
from tinytrain.ir.graph import Model, QuantParams, TensorSpec
from tinytrain.ops import ImageResize


def pixel_lut(model: Model, tensor: str | None = None) -> np.ndarray:
    """int8 value of every pixel 0..255 at the model's input (or at `tensor`): real = pixel * a + b with
    metadata pixel_to_real = [a, b], q = round(real / scale) + zero point with exact halves rounded
    down, saturated."""
    try:
        a, b = (float(v) for v in model.metadata["pixel_to_real"])
    except (KeyError, TypeError, ValueError) as exc:
        raise TinytrainError(f"model {model.name} has no metadata pixel_to_real = [a, b] (real = pixel * a + b).") \
            from exc
    qp = model.tensors[tensor or model.input].qparams
    v = (np.arange(256, dtype=np.float64) * a + b) / qp.scale
    # Exact halves round down (toward -inf), with a tolerance for float error in the scales: the
    # paper's models (p/127.5 - 1 at scale 1/127.5, i.e. p - 127.5) then get exactly q = p - 128,
    # which maps 0..255 onto the whole int8 range.
    q = np.ceil(v - 0.5 - 1e-6) + qp.zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def parse_source(text: str) -> tuple[int, int, int]:
    """'28x28x1' -> (28, 28, 1)."""
    m = re.fullmatch(r"\s*(\d+)x(\d+)x([13])\s*", text or "")
    if not m or min(int(m.group(1)), int(m.group(2))) < 1:
        raise TinytrainError(f"cannot read {text!r} as an image source; give HxWxC with C 1 or 3, e.g. 28x28x1.")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def with_pixel_source(model: Model, source: tuple[int, int, int]) -> Model:
    """The model taking h x w x c uint8 pixels (as a camera or a dataset has them): an image resize
    node in front makes its int8 input on the board, exactly as the NumPy reference does."""
    if model.metadata.get("sensor_to_input") is not None:
        raise TinytrainError(f"model {model.name} takes sensor windows, not images.")
    h, w, c = source
    if model.input_spec.shape[2] not in (1, 3):
        raise TinytrainError(f"model {model.name} takes {model.input_spec.shape[2]}-channel input; an image source "
                             "feeds 1 (gray) or 3 (RGB) channels.")
    new = copy.deepcopy(model)
    name = "pixels"
    while name in new.tensors:
        name += "_"
    lut = pixel_lut(model)
    a = float(model.metadata["pixel_to_real"][0])
    new.tensors[name] = TensorSpec(name, (h, w, c), QuantParams(a if a > 0 else 1.0, 0))
    new.ops.insert(0, ImageResize("image_resize", name, model.input, tuple(model.input_spec.shape), lut))
    new.input = name
    new.metadata = dict(new.metadata, pixel_source=[h, w, c])
    new.validate()
    return new
