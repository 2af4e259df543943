#!/usr/bin/env python3
"""Instructions per MAC of the forward kernels in QEMU, on small synthetic models.

Each bench model is a short chain of the ops to measure (random int8 weights, activations
calibrated on random inputs as in tinytrain.synthetic) followed by a global pool and a 10-class
dense head. It is written as a .ttm under build/kernel_bench/, built for qemu_m7 through the
normal PlatformIO build (TINYTRAIN_MODEL=<the .ttm>, its own PLATFORMIO_BUILD_DIR so that the
worktree's .pio build stays as it is), booted in QEMU, and `tinytrain profile --emulate --build`
gives the instructions of every op of one inference (and, with a trained scheme, of one training
step, whose forward ops carry masks).

    PYTHONPATH=host .venv/bin/python tools/kernel_bench.py                 # every bench model
    PYTHONPATH=host .venv/bin/python tools/kernel_bench.py pw dw --json out.json
    PYTHONPATH=host .venv/bin/python tools/kernel_bench.py --list

Prints one line per op (model, op, kind, shape, MACs, instructions, per MAC) and writes JSON
(default build/kernel_bench/results.json). The acceptance row (1x1 conv 16x16x64 -> 64) is also
printed as the `tinytrain profile` table prints it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from tinytrain.numerics import fixed_point as fp  # noqa: E402
from tinytrain.numerics import kernels as K  # noqa: E402
from tinytrain.model import ttm as model_file  # noqa: E402
from tinytrain.ops import Add, Conv2D, Dense, GlobalAveragePool  # noqa: E402
from tinytrain.ir.graph import Model, QuantParams, TensorSpec  # noqa: E402

OUT = ROOT / "build" / "kernel_bench"


class Builder:
    """A chain of ops with calibrated int8 activations (as tinytrain.synthetic.random_model)."""

    def __init__(self, name: str, shape: tuple[int, int, int], seed: int = 0, calibration: int = 2):
        self.rng = np.random.default_rng(seed)
        self.name = name
        self.tensors: dict[str, TensorSpec] = {}
        self.ops: list = []
        self.values: dict[str, np.ndarray] = {}
        self.n = 0
        self.labels: dict[str, str] = {}
        pixels = self.rng.integers(0, 256, size=(calibration, *shape))
        self.tensors["input"] = TensorSpec("input", shape, QuantParams(1 / 255, -128))
        self.values["input"] = (pixels - 128).astype(np.int8)
        self.x = "input"

    def _quantize(self, name: str, real: np.ndarray, relu: bool) -> str:
        hi = float(np.percentile(real, 99.9))
        if relu:
            qp = QuantParams(max(hi, 1e-3) / 255, -128)
        else:
            lo = min(float(np.percentile(real, 0.1)), 0.0)
            hi = max(hi, 0.0)
            scale = max(hi - lo, 1e-3) / 255
            qp = QuantParams(scale, int(np.clip(round(-128 - lo / scale), -128, 127)))
        self.tensors[name] = TensorSpec(name, real.shape[1:], qp)
        self.values[name] = np.clip(np.rint(real / qp.scale) + qp.zero_point, -128, 127).astype(np.int8)
        return name

    def conv(self, out_c: int, k: int = 1, stride: int = 1, depthwise: bool = False, relu: bool = True,
             x: str | None = None, label: str = "") -> str:
        x = x or self.x
        qx = self.tensors[x].qparams
        c = self.tensors[x].shape[2]
        groups = c if depthwise else 1
        if depthwise:
            out_c = c
        fan_in = k * k * c // groups
        wf = self.rng.normal(0, np.sqrt(2.0 / fan_in), size=(out_c, k, k, c // groups))
        w_scales = np.abs(wf.reshape(out_c, -1)).max(axis=1) / 127
        w = np.clip(np.rint(wf / w_scales.reshape(-1, 1, 1, 1)), -127, 127).astype(np.int8)
        bias = np.rint(self.rng.normal(0, 0.1, size=out_c) / (qx.scale * w_scales)).astype(np.int32)
        acc = np.stack([K.conv_accumulate(v, qx.zero_point, w, bias, stride, groups, k // 2) for v in self.values[x]])
        real = acc * (qx.scale * w_scales)
        if relu:
            real = np.clip(real, 0, 6)
        y = self._quantize(f"t{self.n}", real, relu)
        name = f"conv{self.n}"
        self.n += 1
        self.ops.append(Conv2D(name, x, y, w, bias, w_scales.astype(np.float32), stride, groups, k // 2))
        qy = self.tensors[y].qparams
        mult = [fp.quantize_multiplier(qx.scale * s / qy.scale) for s in w_scales]
        rq = K.Requant(np.array([m for m, _ in mult]), np.array([s for _, s in mult]), qy.zero_point)
        self.values[y] = np.stack([rq.apply(a)[0] for a in acc])
        h, wd, _ = self.tensors[x].shape
        kind = "dw" if depthwise else ("pw" if k == 1 else "conv")
        self.labels[name] = label or f"{kind} {k}x{k}/{stride} {h}x{wd}x{c}->{out_c}"
        self.x = y
        return y

    def add(self, a: str, b: str) -> str:
        qa, qb = self.tensors[a].qparams, self.tensors[b].qparams
        real = qa.dequantize(self.values[a]) + qb.dequantize(self.values[b])
        y = self._quantize(f"res{self.n}", real, relu=False)
        qy = self.tensors[y].qparams
        params = K.make_add_params(qa.scale, qa.zero_point, qb.scale, qb.zero_point, qy.scale, qy.zero_point)
        self.values[y] = np.stack([K.add_forward(u, v, params)[0] for u, v in zip(self.values[a], self.values[b])])
        name = f"add{self.n}"
        self.n += 1
        self.ops.append(Add(name, (a, b), y))
        self.labels[name] = f"add {self.tensors[a].shape}"
        self.x = y
        return y

    def finish(self, classes: int = 10) -> Model:
        x = self.x
        qx = self.tensors[x].qparams
        real = qx.dequantize(self.values[x]).mean(axis=(1, 2), keepdims=True)
        pooled = self._quantize("pooled", real, relu=False)
        hw = self.tensors[x].shape[0] * self.tensors[x].shape[1]
        qp = self.tensors[pooled].qparams
        m, s = fp.quantize_multiplier(qx.scale / (qp.scale * hw))
        self.values[pooled] = np.stack([K.Requant(np.array([m]), np.array([s]), qp.zero_point)
                                        .apply(K.avgpool_accumulate(v, qx.zero_point))[0] for v in self.values[x]])
        self.ops.append(GlobalAveragePool("pool", x, pooled))
        c = self.tensors[pooled].size
        wf = self.rng.normal(0, np.sqrt(2.0 / c), size=(classes, c))
        ws = np.abs(wf).max(axis=1) / 127
        w = np.clip(np.rint(wf / ws[:, None]), -127, 127).astype(np.int8)
        bias = np.zeros(classes, dtype=np.int32)
        self.tensors["logits"] = TensorSpec("logits", (1, 1, classes), QuantParams(0.1, 0))
        self.ops.append(Dense("head", pooled, "logits", w, bias, ws.astype(np.float32)))
        model = Model(f"kbench-{self.name}", self.tensors, self.ops, "input", "logits", {"pixel_to_real": [1 / 255, 0.0]})
        model.validate()
        return model


@dataclass
class Bench:
    name: str
    build: callable
    scheme: str = "classifier"
    programs: tuple[str, ...] = ("infer",)
    labels: dict = field(default_factory=dict)


def bench_pw() -> Builder:
    """Pointwise layers on 256 positions (a 1 x 256 image: the same kernel calls as 16 x 16, and a
    height of 1 keeps the compiler from streaming the frozen chain as a patch stage)."""
    b = Builder("pw", (1, 256, 64))
    b.conv(64, label="pw 16x16x64->64 (acceptance)")
    b.conv(16)
    b.conv(96)
    b.conv(24)
    b.conv(144)
    b.conv(48)
    return b


def bench_dw() -> Builder:
    """MCUNet-5fps / MobileNetV2-like depthwise layers: stride 1 in place (input dead) and out of
    place (input read again by a residual add), strides 2, kernels 3/5/7."""
    b = Builder("dw", (32, 32, 48))
    t = b.x
    t1 = b.conv(0, 3, 1, True, label="dw 3x3/1 32x32x48 (out of place)")
    b.add(b.x, t)
    b.conv(0, 3, 1, True, label="dw 3x3/1 32x32x48 (in place)")
    b.conv(0, 7, 2, True)
    b.conv(120)
    b.conv(0, 3, 1, True, label="dw 3x3/1 16x16x120 (in place)")
    b.conv(0, 5, 1, True, label="dw 5x5/1 16x16x120 (in place)")
    b.conv(0, 3, 2, True)
    b.conv(160)
    b.conv(0, 7, 1, True, label="dw 7x7/1 8x8x160 (in place)")
    b.conv(0, 5, 1, True, label="dw 5x5/1 8x8x160 (in place)")
    b.conv(0, 7, 2, True)
    b.conv(384)
    b.conv(0, 5, 1, True, label="dw 5x5/1 4x4x384 (in place)")
    b.conv(0, 3, 1, True, label="dw 3x3/1 4x4x384 (in place)")
    # t1 (the first op's output) read again at the very end: no prefix of the chain has a single escaping tensor, so the
    # compiler runs every op whole (no patch stage)
    end = b.x
    b.conv(384, 1, 8, x=t1, label="conv 1x1/8 (keeps t1 alive)")
    b.add(b.x, end)
    return b


def bench_dw_train() -> Builder:
    """Late depthwise layers that are trained through (forward with masks)."""
    b = Builder("dwm", (8, 8, 48))
    b.conv(144)
    b.conv(0, 3, 1, True, label="dw 3x3/1 8x8x144 (in place, mask)")
    b.conv(240)
    b.conv(0, 7, 2, True, label="dw 7x7/2 8x8x240 (mask)")
    b.conv(384)
    b.conv(0, 5, 1, True, label="dw 5x5/1 4x4x384 (in place, mask)")
    b.conv(160)
    return b


def bench_dw_kernels() -> Builder:
    """Every depthwise forward form of MCUNet-5fps as its own op (scheme bias-only: no layer is frozen, so
    nothing is streamed; the inference program has no masks): 3x3 / 5x5 / 7x7, stride 1 (in place)
    and 2 (out of place)."""
    b = Builder("dwk", (32, 32, 48))
    b.conv(0, 3, 1, True, label="dw 3x3/1 32x32x48 (out of place: reads the input)")
    b.conv(0, 3, 2, True, label="dw 3x3/2 32x32x48 (out of place)")
    b.conv(120)
    b.conv(0, 3, 1, True, label="dw 3x3/1 16x16x120 (in place)")
    b.conv(0, 5, 1, True, label="dw 5x5/1 16x16x120 (in place)")
    b.conv(0, 3, 2, True, label="dw 3x3/2 16x16x120 (out of place)")
    b.conv(160)
    b.conv(0, 7, 1, True, label="dw 7x7/1 8x8x160 (in place)")
    b.conv(0, 5, 1, True, label="dw 5x5/1 8x8x160 (in place)")
    b.conv(0, 3, 1, True, label="dw 3x3/1 8x8x160 (in place)")
    b.conv(0, 7, 2, True, label="dw 7x7/2 8x8x160 (out of place)")
    b.conv(384)
    b.conv(0, 5, 1, True, label="dw 5x5/1 4x4x384 (in place)")
    return b


def bench_pw_update() -> Builder:
    """Pointwise weight gradients + updates (the fused weight_update kernel) of MCUNet-5fps's trained
    1x1 layers: 8x8 positions, 48 inputs, 144 / 240 outputs (scheme full: every weight trained)."""
    b = Builder("pwu", (8, 8, 48))
    b.conv(144, label="pw 1x1/1 8x8x48->144")
    b.conv(0, 3, 1, True)
    b.conv(48, relu=False)
    b.conv(240, label="pw 1x1/1 8x8x48->240")
    return b


def bench_pw_update_wide() -> Builder:
    """A pointwise weight update past the packed path's 256 positions (the 2 x 4 blocks on the raw rows),
    on a 1 x 289 image (as bench_pw: no patch stage)."""
    b = Builder("pwub", (1, 289, 24))
    b.conv(46, label="pw 1x1/1 1x289x24->46 (2x4 blocks)")
    return b


def bench_first() -> Builder:
    b = Builder("first", (64, 64, 3))
    b.conv(16, 3, 2, label="conv 3x3/2 64x64x3->16 (whole tensor)")
    return b


def bench_front() -> Builder:
    """MCUNet-5fps's streaming front (the compiler runs it as a patch stage, row band by row band)."""
    b = Builder("front", (128, 128, 3))
    b.conv(16, 3, 2)
    b.conv(0, 3, 1, True)
    b.conv(8, relu=False)
    b.conv(32)
    b.conv(0, 3, 2, True)
    b.conv(16, relu=False)
    b.conv(48)
    b.conv(0, 7, 2, True)
    b.conv(24, relu=False)
    return b


BENCHES = {
    "pw": Bench("pw", bench_pw),
    "dw": Bench("dw", bench_dw),
    "dwm": Bench("dwm", bench_dw_train, scheme="bias-only", programs=("train",)),
    "dwk": Bench("dwk", bench_dw_kernels, scheme="bias-only"),
    "pwu": Bench("pwu", bench_pw_update, scheme="full", programs=("train",)),
    "pwub": Bench("pwub", bench_pw_update_wide, scheme="full", programs=("train",)),
    "first": Bench("first", bench_first),
    "front": Bench("front", bench_front),
}


def run(cmd: list[str], env: dict, what: str, tries: int = 1) -> str:
    """tries > 1: again after a failure (a QEMU step can miss its reply deadline on a loaded machine)."""
    for _ in range(tries):
        r = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
        if r.returncode == 0:
            break
    if r.returncode != 0:
        sys.exit(f"{what} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r.stdout


def bin_dir() -> Path:
    venv = os.environ.get("TT_VENV_BIN")
    if venv:
        return Path(venv)
    here = Path(sys.executable).parent
    return here if (here / "pio").exists() else ROOT / ".venv" / "bin"


def measure(bench: Bench, verbose: bool) -> list[dict]:
    t0 = time.time()
    b = bench.build()
    model = b.finish()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{bench.name}.ttm"
    model_file.save(model, path)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "host")
    build_dir = OUT / "pio" / bench.name
    env.update(TINYTRAIN_MODEL=str(path), TINYTRAIN_SCHEME=bench.scheme, TINYTRAIN_CLASSES="10",
               TINYTRAIN_NEW_HEAD="0", TINYTRAIN_BUDGET="", PLATFORMIO_BUILD_DIR=str(build_dir),
               # no checkpoint slots: the image gets the whole flash (QEMU refuses an image whose last
               # segment, .bss included, reaches the slots' preloaded file at 512 KB, as dwk's does)
               TINYTRAIN_CHECKPOINTS="0")
    bins = bin_dir()
    run([str(bins / "pio"), "run", "-e", "qemu_m7", "-d", str(ROOT)], env, f"build of {bench.name}")
    rows = []
    for program in bench.programs:
        out = run([str(bins / "tinytrain"), "profile", "--emulate", "--build", str(build_dir / "qemu_m7"),
                   "--program", program, "--json"], env, f"profile of {bench.name}", tries=3)
        prof = json.loads(out)
        seen = set()
        for r in prof:
            if r["kind"] in ("loss_grad",) or (r["op"] in seen and program == "train"
                                               and r["kind"] not in ("save_channels", "weight_update")):
                continue
            if program == "train" and r["kind"] not in ("pointwise", "depthwise", "conv", "patch_stage", "add",
                                                        "avgpool", "save_channels", "weight_update"):
                continue
            seen.add(r["op"])
            label = b.labels.get(r["op"], r["op"])
            if r["kind"] == "weight_update":
                label = f"weight grad + update of {label}"
            rows.append({"model": bench.name, "program": program, "op": r["op"], "kind": r["kind"],
                         "label": label, "macs": r["macs"],
                         "instructions": r["instructions"],
                         "per_mac": round(r["instructions"] / r["macs"], 3) if r["macs"] else None,
                         "row": profile_row(r)})
    if verbose:
        print(f"# {bench.name}: {time.time() - t0:.0f} s", file=sys.stderr)
    return rows


def profile_row(r: dict) -> str:
    """The row as `tinytrain profile` prints it (without the share column)."""
    per = f"{r['instructions'] / r['macs']:.2f}" if r["macs"] else ""
    return f"{r['op']:12s} {r['kind']:14s} {r['macs']:10d} {r['instructions']:12d} {per:>8s}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("benches", nargs="*", help=f"which bench models (default all: {' '.join(BENCHES)})")
    p.add_argument("--json", type=Path, default=OUT / "results.json")
    p.add_argument("--list", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.list:
        for name, bench in BENCHES.items():
            print(f"{name:6s} {bench.build.__doc__ or ''}".strip())
        return 0
    names = args.benches or list(BENCHES)
    rows = []
    for name in names:
        if name not in BENCHES:
            sys.exit(f"unknown bench {name}; --list shows them")
        rows += measure(BENCHES[name], args.verbose)
    print(f"{'model':6s} {'prog':5s} {'op':8s} {'kind':12s} {'what':40s} {'MACs':>9s} {'instr':>10s} {'/MAC':>6s}")
    for r in rows:
        per = f"{r['per_mac']:.2f}" if r["per_mac"] is not None else ""
        print(f"{r['model']:6s} {r['program']:5s} {r['op']:8s} {r['kind']:12s} {r['label']:40s} {r['macs']:9d} "
              f"{r['instructions']:10d} {per:>6s}")
    for r in rows:
        if "acceptance" in r["label"]:
            print("\nacceptance (tinytrain profile row):")
            print(f"{'op':12s} {'kind':14s} {'MACs':>10s} {'instructions':>12s} {'per MAC':>8s}")
            print(r["row"])
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=1))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
