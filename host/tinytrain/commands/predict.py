"""tinytrain predict: the NumPy int8 forward on image files, top-5 classes."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..datasets import open_image, to_model_input
from ..errors import TinytrainError
from ..numpy_backend import NumpyBackend
from ..sparse_scheme import builtin
from ..training_program import compile_program
from .options import add_model_arguments, model_from_args, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify image files with the int8 reference forward",
                       description="Run the NumPy int8 forward pass on each IMAGE (resized to the model's input) "
                                   "and print the top-5 classes with their softmax scores.")
    add_model_arguments(p)
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("--top", type=positive_int, default=5)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = model_from_args(args)
    backend = NumpyBackend(compile_program(model, builtin("classifier", len(model.weighted_ops))), use_arena=False)
    names = model.metadata.get("class_names")
    scale = model.tensors[model.output].qparams.scale
    for path in args.images:
        if not path.is_file():
            raise TinytrainError(f"the image {path} does not exist.")
        img = open_image(path)
        channels = model.input_spec.shape[2]
        arr = np.asarray(img.convert("RGB" if channels == 3 else "L"))
        x = to_model_input(arr[None, ...] if arr.ndim == 3 else arr[None, ..., None], model)[0]
        logits = backend.infer(x).astype(np.float64) * scale
        p = np.exp(logits - logits.max())
        p /= p.sum()
        top = np.argsort(-p, kind="stable")[: args.top]
        print(f"{path}:")
        for c in top:
            label = f" {names[c]}" if names and c < len(names) else ""
            print(f"  {c:5d}{label}  {p[c]:.3f}")
    return 0
