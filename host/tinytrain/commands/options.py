"""Command-line options shared by several subcommands."""

from __future__ import annotations

import argparse

from tinytrain.ir.graph import Model
from tinytrain.model.loader import load_model
from tinytrain.compile.compiler import model_lr
from tinytrain.ir.program import CompileOptions


def positive_int(text: str) -> int:
    """argparse type of counts (samples, epochs, steps): an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def positive_float(text: str) -> float:
    """argparse type of rates: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, not {text}")
    return value


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a tinytrain model (.ttm, or a folder holding one), an int8 TFLite model (.tflite) or "
                                 "one of the paper's .pkl models")
    p.add_argument("--classes", type=positive_int, help="number of classes; a different number replaces the head")
    p.add_argument("--new-head", action="store_true", help="replace the classifier by a fresh head even if --classes matches")
    p.add_argument("--head-seed", type=int, default=0, help="seed of the new head's initial weights")
    p.add_argument("--source", metavar="HxWxC",
                   help="the samples are images of this size (e.g. 28x28x1), made into the model's input (resized, "
                        "gray/RGB) by the model itself, on the board as in the reference; as the build option source")


def add_backend_argument(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """--backend: where fine-tuning runs on the host execute (tinytrain.board.host_runs)."""
    p.add_argument("--backend", choices=["c", "numpy"], default="c",
                   help=prefix + "where the fine-tuning runs execute: c = the engine's own C code built for the host "
                                 "with gcc (default), numpy = the NumPy reference (the same results, bit for bit; "
                                 "slower)")


def run_backend(args: argparse.Namespace):
    from tinytrain.board.host_runs import backend

    return backend(args.backend)


def model_from_args(args: argparse.Namespace) -> Model:
    return load_model(args.model, args.classes, args.new_head, args.head_seed, source=getattr(args, "source", None))


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--lr", type=positive_float,
                   help="SGD learning rate (fp32-equivalent with QAS); default: the model's own (its metadata lr, "
                        "see tinytrain tune-lr), else 0.05")
    p.add_argument("--bias-lr", type=positive_float, help="learning rate of biases (default: --lr)")
    p.add_argument("--no-qas", action="store_true", help="ablation: no quantization-aware scaling of gradients")
    p.add_argument("--rounding", choices=["stochastic", "nearest", "truncate"], default="stochastic",
                   help="rounding of int8 weight updates (truncate = the authors' engine)")
    p.add_argument("--seed", type=int, default=1, help="seed of the stochastic-rounding PRNG")


def options_from_args(args: argparse.Namespace, model: Model) -> CompileOptions:
    lr = args.lr if args.lr is not None else model_lr(model)
    return CompileOptions(lr=lr, bias_lr=args.bias_lr, qas=not args.no_qas, rounding=args.rounding, seed=args.seed)
