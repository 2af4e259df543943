"""tinytrain import: an int8 TFLite model as a tinytrain model file (.ttm)."""

from __future__ import annotations

import argparse
from pathlib import Path

from tinytrain.errors import TinytrainError
from tinytrain.model import ttm
from tinytrain.model.tflite import import_tflite


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import an int8 TFLite model as a .ttm file",
                       description="Read an int8 (full-integer) TFLite model and write it as a tinytrain model "
                                   "(.ttm). Every command that takes a model also takes the .tflite directly.")
    p.add_argument("model", type=Path, help="the .tflite file")
    p.add_argument("--out", type=Path, required=True, help="the .ttm file to write")
    p.add_argument("--pixel-scale", type=float, default=1 / 255,
                   help="what image inputs mean: real input = pixel * SCALE + OFFSET (default 1/255, i.e. 0..1)")
    p.add_argument("--pixel-offset", type=float, default=0.0, help="see --pixel-scale")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.model.suffix != ".tflite":
        raise TinytrainError(f"{args.model} is not a .tflite file.")
    if args.out.exists() and not args.force:
        raise TinytrainError(f"{args.out} exists; pass --force to overwrite it.")
    if not args.out.parent.is_dir():
        raise TinytrainError(f"the folder {args.out.parent} does not exist.")
    model = import_tflite(args.model)
    model.metadata["pixel_to_real"] = [args.pixel_scale, args.pixel_offset]
    ttm.save(model, args.out)
    kinds = sorted({op.op_type for op in model.ops})
    h, w, c = model.input_spec.shape
    print(f"{args.model} -> {args.out}: {len(model.ops)} ops ({', '.join(kinds)}), {len(model.weighted_ops)} layers "
          f"with weights, input {h}x{w}x{c}, {model.num_classes} classes")
    return 0
