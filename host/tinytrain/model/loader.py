"""Loads a model for compilation: a tinytrain .ttm file, an int8 .tflite file or one of the authors'
.pkl files, optionally with a new N-class head."""

from __future__ import annotations

from pathlib import Path

from tinytrain.model import head
from tinytrain.model import tiny_training as import_tiny_training
from tinytrain.model.pixels import parse_source, with_pixel_source
from tinytrain.model.tflite import import_tflite
from tinytrain.model import ttm as model_file
from tinytrain.errors import TinytrainError
from tinytrain.ir.graph import Model, with_input_size


def load_model(path: str | Path, classes: int | None = None, new_head: bool = False, head_seed: int = 0,
               resolution: int | None = None, source: str | None = None) -> Model:
    """The model of a file, at another input resolution, with a new head of `classes` classes, and
    taking its images from an HxWxC `source` (resized on the board, model.pixels), as asked."""
    path = Path(path)
    if path.is_dir():
        candidates = sorted(path.glob("*.ttm"))
        if len(candidates) != 1:
            raise TinytrainError(f"{path} is a folder without exactly one .ttm model in it.")
        path = candidates[0]
    if path.suffix == ".pkl":
        model = import_tiny_training.load(path)
    elif path.suffix == ".ttm":
        model = model_file.load(path)
    elif path.suffix == ".tflite":
        model = import_tflite(path)
    else:
        raise TinytrainError(f"{path} is neither a tinytrain model (.ttm), an int8 TFLite model (.tflite) nor one of "
                             f"the paper's models (.pkl).")
    if resolution is not None and resolution != model.input_spec.shape[0]:
        model = with_input_size(model, resolution)
    if classes is not None and (new_head or classes != model.num_classes):
        model = head.replace_head(model, classes, seed=head_seed)
    elif new_head:
        model = head.replace_head(model, model.num_classes, seed=head_seed)
    if source:
        model = with_pixel_source(model, parse_source(source))
    return model
