"""tinytrain predict: the NumPy int8 forward on image files or input tensors (.npy), top-5 classes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tinytrain.commands.options import add_model_arguments, model_from_args, positive_int
from tinytrain.compile.autodiff import compile_program
from tinytrain.compile.scheme import builtin
from tinytrain.errors import TinytrainError
from tinytrain.learn.datasets import open_image, to_model_input
from tinytrain.model.tflite import input_from_array, outputs_from_logits
from tinytrain.reference.executor import NumpyBackend


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="classify images or input tensors with the int8 reference forward",
                       description="Run the NumPy int8 forward pass on each INPUT: an image (resized to the model's "
                                   "input) or a .npy file holding the model's input tensor (int8, or float32 for a "
                                   "float-input TFLite model); print the top classes.")
    add_model_arguments(p)
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT")
    p.add_argument("--top", type=positive_int, default=5)
    p.add_argument("--json", action="store_true",
                   help="one JSON object per input: output (the output tensor's int8 values; after the model's own "
                        "final SOFTMAX, if it has one), scale, zero_point, top5, logits (and output_float for a "
                        "float-output model)")
    p.set_defaults(func=run)


def model_input(path: Path, model) -> np.ndarray:
    if not path.is_file():
        raise TinytrainError(f"the input {path} does not exist.")
    if path.suffix == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise TinytrainError(f"cannot read {path} as a .npy array ({exc}).") from exc
        return input_from_array(model, a)
    img = open_image(path)
    channels = model.input_spec.shape[2]
    arr = np.asarray(img.convert("RGB" if channels == 3 else "L"))
    return to_model_input(arr[None, ...] if arr.ndim == 3 else arr[None, ..., None], model)[0]


def run(args: argparse.Namespace) -> int:
    if args.top < 1:
        raise TinytrainError("--top needs at least 1.")
    model = model_from_args(args)
    backend = NumpyBackend(compile_program(model, builtin("classifier", len(model.weighted_ops))), use_arena=False)
    names = model.metadata.get("class_names")
    scale = model.tensors[model.output].qparams.scale
    for path in args.inputs:
        logits_q = backend.infer(model_input(path, model))
        logits = logits_q.astype(np.float64) * scale
        p = np.exp(logits - logits.max())
        p /= p.sum()
        top = [int(c) for c in np.argsort(-logits_q.astype(np.int64), kind="stable")[: args.top]]
        if args.json:
            out = outputs_from_logits(model, logits_q)
            doc = {"input": str(path), "output": out["output"].astype(int).tolist(), "scale": out["scale"],
                   "zero_point": out["zero_point"], "top5": top[:5], "logits": logits_q.astype(int).tolist(),
                   "logits_scale": scale, "logits_zero_point": model.tensors[model.output].qparams.zero_point}
            if "output_float" in out:
                doc["output_float"] = out["output_float"].astype(float).tolist()
            print(json.dumps(doc))
            continue
        print(f"{path}:")
        for c in top:
            label = f" {names[c]}" if names and c < len(names) else ""
            print(f"  {c:5d}{label}  {p[c]:.3f}")
    return 0
