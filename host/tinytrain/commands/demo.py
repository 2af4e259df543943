"""tinytrain demo: the main job end to end: evaluate, train on the board, evaluate, report."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from tinytrain.board.builds import build_firmware
from tinytrain.board.link import DEFAULT_BAUDRATE
from tinytrain.board.session import open_board
from tinytrain.board.streaming import evaluate, stream
from tinytrain.commands import demo_imu
from tinytrain.commands.options import positive_int
from tinytrain.compile.sram_budget import kb, parse_bytes
from tinytrain.learn.sample_input import model_samples
from tinytrain.learn.schedules import SCHEDULES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="transfer learning on the board, end to end",
                       description="Build the default model for qemu_m7 and boot it in QEMU (or use --port), "
                                   "evaluate on held-out digits, stream training samples, evaluate again, and "
                                   "write a summary (demo.json) and the learning curve (demo.png). With --task imu: "
                                   "the shipped motion model (models/watch-imu) adapts to each held-out wearer of "
                                   "the smartwatch data, against fp32 PyTorch (demo-imu.json, demo-imu.png).")
    p.add_argument("--task", choices=["images", "imu"], default="images",
                   help="images: Fashion-MNIST features learn MNIST digits (the default build); imu: personalization "
                        "of the IMU model, each held-out subject separately")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--port", metavar="URL", help="a real board running the firmware instead of QEMU")
    p.add_argument("--env", default="qemu_m7", help="PlatformIO environment to build for QEMU")
    p.add_argument("--build", type=Path, help="build folder of the firmware on --port")
    p.add_argument("--baud", type=int, default=DEFAULT_BAUDRATE, help="baud rate of --port")
    p.add_argument("--train", default="mnist:train", help="training samples")
    p.add_argument("--test", default="mnist:test", help="held-out samples")
    p.add_argument("--train-samples", type=positive_int, default=1000)
    p.add_argument("--test-samples", type=positive_int, default=1000)
    p.add_argument("--epochs", type=positive_int, default=1)
    p.add_argument("--schedule", choices=SCHEDULES, default="linear")
    p.add_argument("--out", type=Path, default=Path("demo.json"))
    p.add_argument("--no-check", action="store_true",
                   help="skip running the NumPy reference in lockstep (by default every training step's logits and "
                        "the final trained tensors are compared with it, as `tinytrain check` does)")
    demo_imu.add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.task == "imu":
        return demo_imu.run_imu(args)
    t0 = time.monotonic()
    args.emulate = args.port is None
    if args.emulate:
        print(f"building the {args.env} image ...", flush=True)
        build_firmware(args.env)
    with open_board(args, env=args.env) as s:
        model = s.config.load_model()
        scale = model.tensors[model.output].qparams.scale
        print(f"board {s.url}: model {s.engine.model.name} ({s.engine.model.hash[:12]}), scheme {s.engine.model.scheme}, "
              f"{model.num_classes} classes", flush=True)
        test_x, test_y = model_samples(args.test, model, args.test_samples)
        train_x, train_y = model_samples(args.train, model, args.train_samples)
        reference = None
        if not args.no_check:
            reference = s.reference()
            reference.load_state_bytes(s.engine.params_get())
        before = evaluate(s.engine, test_x, test_y, desc="eval before")
        res = stream(s.engine, train_x, train_y, scale, args.epochs, args.schedule, reference=reference)
        after = evaluate(s.engine, test_x, test_y, desc="eval after")
        identical = None
        if reference is not None:
            identical = res.mismatch is None and s.engine.params_get() == reference.state_bytes()
        stats = s.link.stats()
        budget = parse_bytes(s.config.budget) if s.config.budget else 262144
        summary = {
            "accuracy_before": before.accuracy,
            "accuracy_after": after.accuracy,
            "train_samples": res.samples,
            "test_samples": len(test_y),
            "peak_sram_bytes": stats.peak_sram_bytes,
            "static_sram_bytes": stats.data_bytes + stats.bss_bytes,
            "stack_bytes": stats.stack_used_bytes,
            "planned_peak_sram_bytes": s.info["planned_peak_sram_bytes"],
            "budget_bytes": budget,
            "instructions_per_step": float(np.mean(res.counts)) if res.counts else 0.0,
            "instructions_per_inference": float(np.mean(after.counts)) if after.counts else 0.0,
            "counter_unit": {0: "instructions", 1: "cycles", 2: "ns"}[int(stats.counter_kind)],
            "stream_seconds": res.seconds,
            "seconds": time.monotonic() - t0,
            "model": s.engine.model.name,
            "model_hash": s.engine.model.hash,
            "scheme": s.engine.model.scheme,
            "board": s.link.info().board,
            "identical_to_reference": identical,
        }
    args.out.write_text(json.dumps(summary, indent=1))
    png = args.out.with_suffix(".png")
    plot_curve(res, before.accuracy, after.accuracy, png, summary)
    print(format_summary(summary))
    print(f"wrote {args.out} and {png}")
    return 1 if summary["identical_to_reference"] is False else 0


def format_summary(s: dict) -> str:
    return "\n".join([
        f"accuracy on {s['test_samples']} held-out samples: {100 * s['accuracy_before']:.1f}% before, "
        f"{100 * s['accuracy_after']:.1f}% after training on {s['train_samples']} samples",
        f"peak SRAM measured on the board {kb(s['peak_sram_bytes'])} (static {kb(s['static_sram_bytes'])} + stack "
        f"{kb(s['stack_bytes'])}), planned {kb(s['planned_peak_sram_bytes'])}, budget {kb(s['budget_bytes'])}",
        f"{s['instructions_per_step'] / 1e6:.2f} M {s['counter_unit']} per training step, "
        f"{s['instructions_per_inference'] / 1e6:.2f} M per inference; wall time {s['seconds']:.0f} s",
    ] + ([] if s["identical_to_reference"] is None else [
        "every training step and the trained tensors are identical to the NumPy reference: "
        + ("yes" if s["identical_to_reference"] else "NO")]))


def plot_curve(res, acc_before: float, acc_after: float, path: Path, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    window = 100
    run = res.running_accuracy(window)
    ax.plot(np.arange(len(run)) + window, 100 * run, label=f"running accuracy on training samples "
                                                            f"(prediction before update, window {window})")
    ax.axhline(100 * acc_before, color="gray", ls="--", label=f"held-out before: {100 * acc_before:.1f}%")
    ax.axhline(100 * acc_after, color="green", ls="--", label=f"held-out after: {100 * acc_after:.1f}%")
    ax.set_xlabel("training samples streamed to the board")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"{summary['model']} on {summary['board']}: on-device training "
                 f"({summary['scheme']}, peak SRAM {summary['peak_sram_bytes'] / 1024:.0f} KB)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
