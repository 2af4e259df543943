"""Labelled samples as a board's model input: load a dataset spec and convert it to int8 (and, for a
sensor model, keep the int16 counts that travel to the board)."""

from __future__ import annotations

import numpy as np

from tinytrain.learn.datasets import load_dataset, sensor_scaling, to_model_input
from tinytrain.errors import TinytrainError
from tinytrain.ir.graph import Model


def model_samples(spec: str, model: Model, limit: int | None = None, resize: bool = False,
                  offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """int8 inputs [N, h, w, c] and labels of a dataset for this model.

    Images whose size or channel count differ from the model's input are an
    error unless resize is set (then they are resized / converted, see
    datasets.to_model_input); sensor windows (int16 counts) become the int8 input
    through the model's sensor_to_input scaling; labels must be classes of the model's head.
    """
    _, x, y = board_samples(spec, model, limit, resize, offset)
    return x, y


def board_samples(spec: str, model: Model, limit: int | None = None, resize: bool = False,
                  offset: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(wire, inputs, labels): what TRAIN and INFER frames carry, the int8 model inputs the NumPy
    reference takes, and the labels. For an image model wire is the int8 input itself; for a sensor
    model (metadata sensor_to_input) it is the int16 counts [N, T, 1, C], which the board scales."""
    data = load_dataset(spec)
    images, labels = data.images, np.asarray(data.labels)
    if limit is not None:
        images, labels = images[offset : offset + limit], labels[offset : offset + limit]
    if len(labels) == 0:
        raise TinytrainError(f"{spec} holds no samples.")
    h, w, c = model.input_spec.shape
    sensor = sensor_scaling(model) is not None
    if data.is_sensor != sensor:
        raise TinytrainError(f"{spec} holds {'sensor windows' if data.is_sensor else 'images'} but model "
                             f"{model.name} takes {'sensor windows' if sensor else 'images'}.")
    if not sensor and not resize and images.shape[1:3] != (h, w):
        raise TinytrainError(f"{spec} has {images.shape[1]}x{images.shape[2]} images but the model takes {h}x{w}; "
                             "pass --resize to resize them.")
    if not sensor and not resize and images.shape[3:] != (c,):
        raise TinytrainError(f"{spec} has {images.shape[3] if images.ndim == 4 else 1}-channel images but the model "
                             f"takes {c}; pass --resize to convert them.")
    bad = np.nonzero((labels < 0) | (labels >= model.num_classes))[0]
    if bad.size:
        raise TinytrainError(f"sample {int(bad[0])} of {spec} has label {int(labels[bad[0]])}, outside the model's "
                             f"{model.num_classes} classes.")
    x = to_model_input(images, model)
    return (np.ascontiguousarray(images) if sensor else x), x, labels.astype(np.int64)
