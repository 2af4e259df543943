"""tinytrain train: fine-tune with the NumPy reference backend (the board's exact arithmetic) on the host."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from tinytrain.commands.options import add_model_arguments, add_training_arguments, model_from_args, options_from_args, positive_int
from tinytrain.commands.pull import check_out_path, save_state
from tinytrain.compile import scheme as sparse_scheme
from tinytrain.compile.compiler import compile_model
from tinytrain.learn.progress import progress
from tinytrain.learn.sample_input import model_samples
from tinytrain.learn.schedules import SCHEDULES, cross_entropy, lr_scales
from tinytrain.model.ttm import model_hash
from tinytrain.reference.executor import NumpyBackend


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune on the host with the NumPy reference backend",
                       description="Compile MODEL with a scheme and run the training step on labelled samples with "
                                   "the NumPy backend: bit for bit what the board computes. Optionally evaluate and "
                                   "save the learned state (loadable on a board built the same way with `push`).")
    add_model_arguments(p)
    p.add_argument("--backend", choices=["numpy"], default="numpy",
                   help="numpy (on a board, use `tinytrain stream`)")
    p.add_argument("--scheme", default="classifier", help="as for compile")
    p.add_argument("--data", required=True, help="training samples (as for stream)")
    p.add_argument("--samples", type=positive_int)
    p.add_argument("--eval-data", help="held-out samples to measure accuracy on after training")
    p.add_argument("--eval-samples", type=positive_int)
    p.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--schedule", choices=SCHEDULES, default="linear")
    p.add_argument("--resize", action="store_true")
    p.add_argument("--out", type=Path, help="save the learned state here (the format of `tinytrain pull`)")
    add_training_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.out is not None:
        check_out_path(args.out)
    model = model_from_args(args)
    compiled = compile_model(model, sparse_scheme.load(args.scheme, model), options_from_args(args, model))
    backend = NumpyBackend(compiled.program, use_arena=False)
    xs, ys = model_samples(args.data, model, args.samples, args.resize)
    n = len(xs) * args.epochs
    scales = lr_scales(n, args.schedule)
    scale = model.tensors[model.output].qparams.scale
    ex = ey = None
    if args.eval_data:
        ex, ey = model_samples(args.eval_data, model, args.eval_samples, args.resize)
        before = accuracy(backend, ex, ey, "eval before")
        print(f"accuracy before {before:.4f} on {len(ey)} samples of {args.eval_data}")
    losses, correct = [], []
    t0 = time.monotonic()
    with progress(n, "train (numpy)", "sample") as bar:
        for i in range(n):
            x, y = xs[i % len(xs)], int(ys[i % len(ys)])
            logits = backend.train_step(x, y, int(scales[i]))
            losses.append(cross_entropy(logits, y, scale))
            correct.append(int(np.argmax(logits)) == y)
            bar.update(1)
            if (i + 1) % 10 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-100:]):.3f}", acc=f"{np.mean(correct[-100:]):.3f}")
    print(f"{n} steps in {time.monotonic() - t0:.1f} s; running accuracy {np.mean(correct[-100:]):.3f} "
          f"over the last {min(n, 100)}")
    if ex is not None:
        print(f"accuracy after {accuracy(backend, ex, ey, 'eval after'):.4f} on {len(ey)} samples of {args.eval_data}")
    if args.out:
        save_state(args.out, model_hash(model), model.name, backend.state_bytes(), compiled.state_hash,
                   compiled.program_hash, compiled.program.scheme.name)
        print(f"saved the learned state to {args.out}")
    return 0


def accuracy(backend: NumpyBackend, xs: np.ndarray, ys: np.ndarray, desc: str) -> float:
    hits = [backend.predict(x) == y for x, y in tqdm(list(zip(xs, ys)), desc=desc, unit="sample", dynamic_ncols=True)]
    return float(np.mean(hits))
