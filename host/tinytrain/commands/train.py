"""tinytrain train: fine-tune on the host with the board's exact arithmetic (the engine's C code or the NumPy reference)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from tinytrain.commands.options import (add_backend_argument, add_model_arguments, add_training_arguments, model_from_args,
                                       options_from_args, positive_int, run_backend)
from tinytrain.commands.state_file import check_out_path, save_state
from tinytrain.compile import scheme as sparse_scheme
from tinytrain.compile.compiler import compile_model
from tinytrain.learn.progress import progress, progress_iter
from tinytrain.learn.sample_input import model_samples
from tinytrain.learn.schedules import SCHEDULES, cross_entropy, lr_scales
from tinytrain.reference.executor import NumpyBackend


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="fine-tune on the host, bit for bit as the board",
                       description="Compile MODEL with a scheme and run the training step on labelled samples with "
                                   "the board's exact arithmetic (the engine's C code built for the host, or the NumPy "
                                   "reference): bit for bit what the board computes. Optionally evaluate before and "
                                   "after and save the learned state (loadable on a board built the same way with "
                                   "`push`).")
    add_model_arguments(p)
    add_backend_argument(p, "on a board, use `tinytrain stream`; ")
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
    xs, ys = model_samples(args.data, model, args.samples, args.resize)
    n = len(xs) * args.epochs
    scales = lr_scales(n, args.schedule)
    scale = model.tensors[model.output].qparams.scale
    if run_backend(args).name == "c":
        return run_c(args, model, compiled, xs, ys, scales, scale)
    backend = NumpyBackend(compiled.program, use_arena=False)
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
        save_state(args.out, compiled.model_hash, model.name, backend.state_bytes(), compiled.state_hash,
                   compiled.program_hash, compiled.program.scheme.name, model=compiled.program.model,
                   learned=(backend.weights, backend.biases))
        print(f"saved the learned state to {args.out}")
    return 0


def accuracy(backend: NumpyBackend, xs: np.ndarray, ys: np.ndarray, desc: str) -> float:
    hits = [backend.predict(x) == y for x, y in progress_iter(zip(xs, ys), desc)]
    return float(np.mean(hits))


def run_c(args: argparse.Namespace, model, compiled, xs: np.ndarray, ys: np.ndarray, scales: np.ndarray,
          scale: float) -> int:
    """The same run through the engine's C code built for the host (board.host_runs: the same bytes as
    the NumPy reference, tested), all steps in one call."""
    from tinytrain.board.host_runs import RunLibrary, engine_objects, host_program

    n = len(scales)
    rows, labels = np.arange(n) % len(xs), ys[np.arange(n) % len(ys)]
    with RunLibrary(host_program(compiled.program), engine_objects()) as lib:
        ex = ey = None
        if args.eval_data:
            ex, ey = model_samples(args.eval_data, model, args.eval_samples, args.resize)
            before = float(np.mean(np.argmax(lib.infer(ex, np.arange(len(ex))), axis=1) == ey))
            print(f"accuracy before {before:.4f} on {len(ey)} samples of {args.eval_data}")
        t0 = time.monotonic()
        logits = lib.train(xs, rows, labels, scales)
        losses = [cross_entropy(lg, int(y), scale) for lg, y in zip(logits, labels)]
        correct = np.argmax(logits, axis=1) == labels
        print(f"{n} steps in {time.monotonic() - t0:.1f} s (the engine's C code on the host); running accuracy "
              f"{np.mean(correct[-100:]):.3f} over the last {min(n, 100)}; loss {np.mean(losses[:10]):.2f} over the "
              f"first 10 steps, {np.mean(losses[-100:]):.2f} over the last {min(n, 100)}")
        if ex is not None:
            after = float(np.mean(np.argmax(lib.infer(ex, np.arange(len(ex))), axis=1) == ey))
            print(f"accuracy after {after:.4f} on {len(ey)} samples of {args.eval_data}")
        if args.out:
            state = lib.state_bytes()
            learned = NumpyBackend(compiled.program, use_arena=False)  # its tensors, for `tinytrain export`
            learned.load_state_bytes(state)
            save_state(args.out, compiled.model_hash, model.name, state, compiled.state_hash,
                       compiled.program_hash, compiled.program.scheme.name, model=compiled.program.model,
                       learned=(learned.weights, learned.biases))
            print(f"saved the learned state to {args.out}")
    return 0
