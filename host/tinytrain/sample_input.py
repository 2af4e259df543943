"""Labelled samples as a board's model input: load a dataset spec and convert it to int8."""

from __future__ import annotations

import numpy as np

from .datasets import load_dataset, to_model_input
from .errors import TinytrainError
from .ir import Model


def model_samples(spec: str, model: Model, limit: int | None = None, resize: bool = False,
                  offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """int8 inputs [N, h, w, c] and labels of a dataset for this model.

    Images whose size or channel count differ from the model's input are an
    error unless resize is set (then they are resized / converted, see
    datasets.to_model_input); labels must be classes of the model's head.
    """
    data = load_dataset(spec)
    images, labels = data.images, np.asarray(data.labels)
    if limit is not None:
        images, labels = images[offset : offset + limit], labels[offset : offset + limit]
    if len(labels) == 0:
        raise TinytrainError(f"{spec} holds no samples.")
    h, w, c = model.input_spec.shape
    if not resize and images.shape[1:3] != (h, w):
        raise TinytrainError(f"{spec} has {images.shape[1]}x{images.shape[2]} images but the model takes {h}x{w}; "
                             "pass --resize to resize them.")
    if not resize and images.shape[3:] != (c,):
        raise TinytrainError(f"{spec} has {images.shape[3] if images.ndim == 4 else 1}-channel images but the model "
                             f"takes {c}; pass --resize to convert them.")
    bad = np.nonzero((labels < 0) | (labels >= model.num_classes))[0]
    if bad.size:
        raise TinytrainError(f"sample {int(bad[0])} of {spec} has label {int(labels[bad[0]])}, outside the model's "
                             f"{model.num_classes} classes.")
    return to_model_input(images, model), labels.astype(np.int64)
