"""tinytrain tune-lr: choose a model's base learning rate by short fine-tuning runs on the host."""

from __future__ import annotations

import argparse
from pathlib import Path

from tinytrain.commands.options import add_backend_argument, add_model_arguments, model_from_args, positive_int, run_backend
from tinytrain.compile import scheme as sparse_scheme
from tinytrain.errors import TinytrainError
from tinytrain.learn.contribution import Protocol
from tinytrain.learn.lr_sweep import DEFAULT_LRS, sweep, write_outputs
from tinytrain.model import ttm


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune-lr", help="choose a model's base learning rate (host-side sweep)",
                       description="Fine-tune MODEL with SCHEME at several learning rates with the board's exact "
                                   "arithmetic (the engine's C code built for the host, or the NumPy reference), each run on the first part of DATA and scored on "
                                   "its last --val-samples samples; print the table and the chosen rate, write "
                                   "tune_lr.json and tune_lr.png to --out, and with --write keep the rate in the "
                                   "model file (metadata lr), where builds, stream and contrib take it from.")
    add_model_arguments(p)
    p.add_argument("--data", default="mnist:train", help="training dataset (its last --val-samples are the validation "
                                                         "slice; never a test set)")
    p.add_argument("--scheme", default="last:4", help="the sparse-update scheme the model will train with")
    p.add_argument("--lrs", default=",".join(f"{lr:g}" for lr in DEFAULT_LRS), help="comma-separated rates to try")
    p.add_argument("--fit-samples", type=positive_int, default=500, help="training steps of each run")
    p.add_argument("--val-samples", type=positive_int, default=500, help="validation slice size")
    p.add_argument("--seeds", default="1", help="comma-separated seeds (one run per seed and rate)")
    p.add_argument("--resize", action="store_true", help="resize the dataset's images to the model's input")
    p.add_argument("--out", type=Path, default=Path("build/tune-lr"), help="output folder (and the runs' cache)")
    p.add_argument("--write", action="store_true", help="store the chosen rate in the model file (a .ttm)")
    p.add_argument("--workers", type=positive_int, help="worker processes (default: one per core)")
    add_backend_argument(p)
    p.set_defaults(func=run)


def _numbers(text: str, kind, what: str) -> tuple:
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values:
        raise TinytrainError(f"cannot read {text!r} as {what}; give comma-separated numbers.")
    return values


def run(args: argparse.Namespace) -> int:
    if args.write and Path(args.model).suffix != ".ttm":
        raise TinytrainError("--write stores the rate in a .ttm model file; import the model first "
                             "(tinytrain import) or pass the rate to builds as TINYTRAIN_LR.")
    model = model_from_args(args)
    scheme = sparse_scheme.load(args.scheme, model)
    protocol = Protocol(data=args.data, val_samples=args.val_samples, fit_samples=args.fit_samples,
                        seeds=_numbers(args.seeds, int, "seeds"), resize=args.resize)
    protocol.check()
    result = sweep(model, scheme, protocol, _numbers(args.lrs, float, "learning rates"), args.out / "runs",
                   args.workers, backend=run_backend(args))
    write_outputs(model, scheme, protocol, result, args.out)
    print(f"{model.name} / {scheme.name}, {protocol.fit_samples} steps on {protocol.data}, "
          f"validation on its last {protocol.val_samples}:")
    for p in result.points:
        flag = "  diverged" if result.diverged(p) else ("  <- chosen" if p is result.best else "")
        print(f"  lr {p.lr:<8g} accuracy {100 * p.accuracy:5.1f} %  loss {p.loss:.3f}{flag}")
    if args.write:
        m = ttm.load(args.model)
        m.metadata["lr"] = result.best.lr
        m.metadata["lr_tuning"] = {"data": args.data, "scheme": scheme.name, "fit_samples": protocol.fit_samples,
                                   "accuracy": result.best.accuracy}
        ttm.save(m, args.model)
        print(f"stored lr {result.best.lr:g} in {args.model} (its model hash changed: rebuild the firmware)")
    print(f"wrote {args.out / 'tune_lr.json'} and {args.out / 'tune_lr.png'}")
    return 0
