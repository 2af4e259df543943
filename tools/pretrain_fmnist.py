#!/usr/bin/env python3
"""Pretrains the project's shipped model on Fashion-MNIST and exports it as a real-int8 .ttm.

    .venv/bin/python tools/pretrain_fmnist.py            # -> models/fmnist-mbv2/{model.ttm,README.md}

Steps: train a small MobileNetV2-style CNN in PyTorch (CPU, 2 threads, fixed
seed); fold BatchNorm into the convolutions; quantize weights per output
channel (symmetric int8, scale max|w|/127) and activations per tensor
(asymmetric int8: ReLU6 outputs get exactly [0, 6], linear outputs the
calibrated percentile range over training images); biases become int32 at
scale s_x * s_w[c]; then measure the int8 model with tinytrain's NumPy
backend on the 10,000 test images and write the model card.

PyTorch is a tools-only dependency (pip install torch==2.13.0); the tinytrain
package never imports it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: on 2 shared cores a spinning
# thread makes training 3x slower whenever anything else runs (measured).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from tinytrain.learn import datasets  # noqa: E402
from tinytrain.model import ttm as model_file
from tinytrain.compile import scheme as sparse_scheme
from tinytrain.ops import Add, Conv2D, Dense, GlobalAveragePool  # noqa: E402
from tinytrain.ir.graph import Model, QuantParams, TensorSpec  # noqa: E402
from tinytrain.reference.executor import NumpyBackend  # noqa: E402
from tinytrain.compile.autodiff import compile_program  # noqa: E402

# MobileNetV2-style: stem 3x3 stride 2, then inverted residual blocks (expansion t,
# output channels c, depthwise stride s); a residual add where shape allows.
STEM_CHANNELS = 16
BLOCKS = [(1, 16, 1), (4, 24, 2), (4, 24, 1), (4, 48, 2), (4, 48, 1), (4, 64, 1)]
NUM_CLASSES = 10
RELU6_QPARAMS = QuantParams(6.0 / 255.0, -128)
INPUT_QPARAMS = QuantParams(1.0 / 255.0, -128)
PIXEL_TO_REAL = [1.0 / 255.0, 0.0]


# ------------------------------------------------------------------ PyTorch model


class ConvBN(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, relu6: bool = True):
        super().__init__(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout))
        self.relu6 = relu6

    def forward(self, x):
        x = super().forward(x)
        return F.relu6(x) if self.relu6 else x


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, t: int, cout: int, stride: int):
        super().__init__()
        hidden = cin * t
        self.expand = ConvBN(cin, hidden, 1) if t != 1 else None
        self.depthwise = ConvBN(hidden, hidden, 3, stride, groups=hidden)
        self.project = ConvBN(hidden, cout, 1, relu6=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class FashionNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = ConvBN(1, STEM_CHANNELS, 3, 2)
        blocks, c = [], STEM_CHANNELS
        for t, cout, s in BLOCKS:
            blocks.append(InvertedResidual(c, t, cout, s))
            c = cout
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(c, NUM_CLASSES)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.classifier(x.mean(dim=(2, 3)))


# ------------------------------------------------------------------ float graph (BN folded)


@dataclass
class FloatOp:
    kind: str  # conv | add | pool | dense
    name: str
    inputs: tuple[str, ...]
    output: str
    weight: np.ndarray | None = None  # conv: OIHW float64, dense: [N, K]
    bias: np.ndarray | None = None
    stride: int = 1
    groups: int = 1
    relu6: bool = False


def fold(convbn: ConvBN) -> tuple[np.ndarray, np.ndarray]:
    conv, bn = convbn[0], convbn[1]
    w = conv.weight.detach().double().numpy()
    inv = (bn.weight.detach().double() / torch.sqrt(bn.running_var.double() + bn.eps)).numpy()
    b = bn.bias.detach().double().numpy() - bn.running_mean.detach().double().numpy() * inv
    return w * inv[:, None, None, None], b


def float_graph(net: FashionNet) -> list[FloatOp]:
    ops: list[FloatOp] = []
    n = 0

    def conv(cb: ConvBN, x: str) -> str:
        nonlocal n
        w, b = fold(cb)
        c = cb[0]
        y = f"t{n}"
        ops.append(FloatOp("conv", f"conv{n}", (x,), y, w, b, c.stride[0], c.groups, cb.relu6))
        n += 1
        return y

    x = conv(net.stem, "input")
    for bi, blk in enumerate(net.blocks):
        inp = x
        if blk.expand is not None:
            x = conv(blk.expand, x)
        x = conv(blk.project, conv(blk.depthwise, x))
        if blk.residual:
            ops.append(FloatOp("add", f"add{bi}", (x, inp), f"res{bi}"))
            x = f"res{bi}"
    ops.append(FloatOp("pool", "pool", (x,), "pooled"))
    fc = net.classifier
    ops.append(FloatOp("dense", f"conv{n}", ("pooled",), "logits", fc.weight.detach().double().numpy(),
                       fc.bias.detach().double().numpy()))
    return ops


def run_float(ops: list[FloatOp], x: torch.Tensor, keep: bool = False) -> dict[str, torch.Tensor]:
    """Evaluates the folded float graph on NCHW float64 input; returns every tensor (or just the logits)."""
    vals = {"input": x}
    for op in ops:
        a = vals[op.inputs[0]]
        if op.kind == "conv":
            y = F.conv2d(a, torch.from_numpy(op.weight), torch.from_numpy(op.bias), op.stride,
                         op.weight.shape[2] // 2, 1, op.groups)
            y = F.relu6(y) if op.relu6 else y
        elif op.kind == "add":
            y = a + vals[op.inputs[1]]
        elif op.kind == "pool":
            y = a.mean(dim=(2, 3), keepdim=True)
        else:
            y = a.flatten(1) @ torch.from_numpy(op.weight).T + torch.from_numpy(op.bias)
        vals[op.output] = y
        if not keep:
            for t in op.inputs:
                if all(t not in o.inputs for o in ops[ops.index(op) + 1 :]):
                    vals.pop(t, None)
    return vals


# ------------------------------------------------------------------ quantization


def linear_qparams(lo: float, hi: float) -> QuantParams:
    """Asymmetric int8 parameters for [lo, hi] widened to include 0 (so zero is exact)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-8:
        hi = lo + 1e-8
    scale = (hi - lo) / 255.0
    zp = int(np.clip(np.rint(-128 - lo / scale), -128, 127))
    return QuantParams(float(scale), zp)


def calibrate(ops: list[FloatOp], images: np.ndarray, percentile: float) -> dict[str, QuantParams]:
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).astype(np.float64) / 255.0)
    with torch.no_grad():
        vals = run_float(ops, x, keep=True)
    q = {"input": INPUT_QPARAMS}
    for op in ops:
        if op.kind == "conv" and op.relu6:
            q[op.output] = RELU6_QPARAMS
        else:
            v = vals[op.output].numpy().reshape(-1)
            q[op.output] = linear_qparams(float(np.percentile(v, 100 - percentile)), float(np.percentile(v, percentile)))
    return q


def quantize_weights(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
    scales = np.maximum(flat, 1e-8) / 127.0
    wq = np.clip(np.rint(w / scales.reshape((-1,) + (1,) * (w.ndim - 1))), -127, 127).astype(np.int8)
    return wq, scales.astype(np.float32)


def to_int8_model(ops: list[FloatOp], q: dict[str, QuantParams], name: str, shapes: dict[str, tuple]) -> Model:
    tensors = {t: TensorSpec(t, shapes[t], q[t]) for t in shapes}
    ir_ops = []
    for op in ops:
        if op.kind in ("conv", "dense"):
            wq, ws = quantize_weights(op.weight)
            # Scales as stored (float32) decide the bias quantization, so the file is self-consistent.
            bq = np.rint(op.bias / (q[op.inputs[0]].scale * ws.astype(np.float64)))
            bias = np.clip(bq, -(2**31), 2**31 - 1).astype(np.int32)
            if op.kind == "conv":
                ir_ops.append(Conv2D(op.name, op.inputs[0], op.output, wq.transpose(0, 2, 3, 1).copy(), bias, ws,
                                     op.stride, op.groups, op.weight.shape[2] // 2))
            else:
                ir_ops.append(Dense(op.name, op.inputs[0], op.output, wq, bias, ws))
        elif op.kind == "add":
            ir_ops.append(Add(op.name, (op.inputs[0], op.inputs[1]), op.output))
        else:
            ir_ops.append(GlobalAveragePool(op.name, op.inputs[0], op.output))
    model = Model(name, tensors, ir_ops, "input", "logits", {"pixel_to_real": PIXEL_TO_REAL})
    model.validate()
    return model


def tensor_shapes(ops: list[FloatOp]) -> dict[str, tuple[int, int, int]]:
    x = torch.zeros(1, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        vals = run_float(ops, x, keep=True)
    out = {}
    for k, v in vals.items():
        v = v.reshape(1, -1, 1, 1) if v.ndim == 2 else v
        out[k] = (int(v.shape[2]), int(v.shape[3]), int(v.shape[1]))
    return out


# ------------------------------------------------------------------ training


def augment(x: np.ndarray, rng: np.random.Generator, shift: int) -> np.ndarray:
    """Random horizontal flips and small translations (zero fill) of uint8 NHWC images."""
    out = np.where(rng.random(len(x))[:, None, None, None] < 0.5, x[:, :, ::-1], x)
    if shift:
        pad = np.pad(out, ((0, 0), (shift, shift), (shift, shift), (0, 0)))
        dy, dx = rng.integers(0, 2 * shift + 1, size=(2, len(x)))
        h, w = x.shape[1:3]
        out = np.stack([pad[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(len(x))])
    return out


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0)


def evaluate_torch(net: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), 1000):
            correct += int((net(to_tensor(images[i : i + 1000])).argmax(1).numpy() == labels[i : i + 1000]).sum())
    return correct / len(images)


def train(args, train_set, test_set) -> tuple[FashionNet, list[dict]]:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    net = FashionNet()
    decay = [p for n, p in net.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in net.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0}],
                          lr=args.lr, momentum=0.9, nesterov=True)
    steps_per_epoch = len(train_set) // args.batch
    total = steps_per_epoch * args.epochs
    warmup = steps_per_epoch // 2
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + np.cos(np.pi * (s - warmup) / (total - warmup))))
    log = []
    t0 = time.time()
    for epoch in range(args.epochs):
        net.train()
        order = rng.permutation(len(train_set))
        loss_sum = 0.0
        for b in range(steps_per_epoch):
            idx = np.sort(order[b * args.batch : (b + 1) * args.batch])
            x = to_tensor(augment(train_set.images[idx], rng, args.shift))
            y = torch.from_numpy(train_set.labels[idx])
            loss = F.cross_entropy(net(x), y, label_smoothing=args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += float(loss.detach())
        acc = evaluate_torch(net, test_set.images, test_set.labels)
        entry = {"epoch": epoch + 1, "loss": round(loss_sum / steps_per_epoch, 4), "test_acc": round(acc, 4),
                 "seconds": round(time.time() - t0, 1)}
        log.append(entry)
        print(json.dumps(entry), flush=True)
    return net, log


# ------------------------------------------------------------------ int8 evaluation


def evaluate_int8(model: Model, images: np.ndarray, labels: np.ndarray) -> float:
    prog = compile_program(model, sparse_scheme.builtin("classifier", len(model.weighted_ops)))
    backend = NumpyBackend(prog, use_arena=False)
    x = datasets.to_model_input(images, model)
    correct = sum(backend.predict(x[i]) == labels[i] for i in range(len(x)))
    return correct / len(x)


def model_stats(model: Model) -> dict:
    params = sum(op.weight.size + op.bias.size for op in model.weighted_ops)
    macs = 0
    for op in model.weighted_ops:
        if isinstance(op, Conv2D):
            oh, ow, oc = model.tensors[op.output].shape
            macs += oh * ow * oc * op.kernel[0] * op.kernel[1] * (op.in_channels // op.groups)
        else:
            macs += op.weight.size
    weight_bytes = sum(op.weight.size for op in model.weighted_ops)
    bias_bytes = 4 * sum(op.bias.size for op in model.weighted_ops)
    return {"params": int(params), "macs": int(macs), "weight_bytes": int(weight_bytes), "bias_bytes": int(bias_bytes),
            "layers": len(model.weighted_ops)}


# The experiment in tools/qas_experiment.py decides this sentence (rewrite with --card-only after it changes).
SCHEME_NOTE = ("The firmware's default (platformio.ini) is scheme last:7 with a new 10-class head, lr 0.05 "
               "(decayed linearly by the host over a run) and a 256 KB SRAM budget; its plan needs about 79 KB "
               "(`tinytrain compile models/fmnist-mbv2/model.ttm --classes 10 --new-head --scheme last:7 --out DIR`). "
               "Of the schemes compared in docs/qas_experiment.md (int8 + QAS "
               "transfer to MNIST: 4,000 training digits, one epoch, 1,000 test digits, 3 seeds), {best}.")
BEST_SCHEME = ("last:7 (the weights and biases of the last two inverted-residual blocks and the classifier, 44,922 "
               "trainable parameters) gave the best accuracy: 95.1% vs. 94.7% for last:10, 93.8% for last:4, 84.0% "
               "for biases only and 61.0% for the classifier only")


def layer_table(model: Model) -> list[str]:
    rows = ["| # | op | kind | in -> out (H x W x C) | stride | params | MACs |", "|---|---|---|---|---|---|---|"]
    for i, op in enumerate(model.weighted_ops):
        x, y = model.tensors[op.input].shape, model.tensors[op.output].shape
        if isinstance(op, Conv2D):
            kind = f"{op.kind} {op.kernel[0]}x{op.kernel[1]}"
            macs = y[0] * y[1] * y[2] * op.kernel[0] * op.kernel[1] * (op.in_channels // op.groups)
            stride = op.stride
        else:
            kind, macs, stride = "dense (classifier)", op.weight.size, "-"
        fmt = lambda s: "x".join(map(str, s))  # noqa: E731
        rows.append(f"| {i} | {op.name} | {kind} | {fmt(x)} -> {fmt(y)} | {stride} | {op.weight.size + op.bias.size:,} | {macs:,} |")
    return rows


def write_card(out: Path, model: Model, summary: dict, command: str) -> None:
    m = model.metadata
    relu6 = sum(1 for t in model.tensors.values() if t.qparams == RELU6_QPARAMS)
    adds = sum(1 for op in model.ops if isinstance(op, Add))
    lines = [
        "# fmnist-mbv2: the shipped pre-trained int8 model",
        "",
        "A MobileNetV2-style CNN for 28x28 gray images, trained from scratch on Fashion-MNIST and real-quantized to "
        "int8 (TFLite int8 semantics, per-channel weights). It is the starting point for on-device transfer learning: "
        "replace its head (`tinytrain.head.replace_head`) and fine-tune the int8 graph on the board.",
        "",
        "## Accuracy (Fashion-MNIST test set, 10,000 images)",
        "",
        "| model | accuracy |",
        "|---|---|",
        f"| fp32 (PyTorch, BatchNorm folded) | {100 * summary['fp32_acc']:.2f}% |",
        f"| int8 (`model.ttm`, tinytrain NumpyBackend, bit-exact reference of the board) | {100 * summary['int8_acc']:.2f}% |",
        "",
        "## Size",
        "",
        f"- {summary['params']:,} parameters ({summary['layers']} weighted layers), {summary['macs']:,} MACs per inference.",
        f"- Parameters in flash: {summary['weight_bytes']:,} B of int8 weights + {summary['bias_bytes']:,} B of int32 "
        f"biases = {summary['weight_bytes'] + summary['bias_bytes']:,} B (the compiler adds its per-channel "
        "requantization constants and the code).",
        f"- `model.ttm`: {summary['file_bytes']:,} B, model hash (sha256 of the canonical bytes) `{summary['sha256'][:16]}...`.",
        "",
        "## Default scheme",
        "",
        SCHEME_NOTE.format(best=BEST_SCHEME),
        "",
        "## Architecture",
        "",
        f"Stem 3x3 conv stride 2 ({STEM_CHANNELS} ch), inverted-residual blocks (expansion t, channels c, stride s) "
        f"{', '.join(f'({t},{c},{s_})' for t, c, s_ in BLOCKS)} with depthwise 3x3 and ReLU6, {adds} residual adds, "
        "global average pool, 10-class dense classifier.",
        "",
        *layer_table(model),
        "",
        "## Input",
        "",
        "Gray pixels p in 0..255, `pixel_to_real` = [1/255, 0] (real = p/255), input scale 1/255 and zero point -128: "
        "the int8 input is exactly p - 128 (`tinytrain.datasets.to_model_input`).",
        "",
        "## How it was made",
        "",
        "```",
        command,
        "```",
        "",
        f"- PyTorch {torch.__version__}, CPU, {summary['threads']} threads, seed {summary['seed']}; deterministic "
        f"(rerunning the command gives the same `model.ttm`). Training took {summary['train_seconds'] / 60:.1f} min "
        f"on 2 CPU cores shared with other jobs (an epoch takes about 25 s on 2 idle cores); the int8 evaluation of "
        f"the 10,000 test images {summary['int8_eval_seconds']:.0f} s.",
        f"- Training: {summary['epochs']} epochs over the 60,000 training images, batch {summary['batch']}, SGD with "
        f"Nesterov momentum 0.9, lr {summary['lr']} (half-epoch warm-up, cosine decay to 0), weight decay "
        f"{summary['weight_decay']} on weights only, random horizontal flips"
        + (f" and shifts of up to {summary['shift']} px" if summary["shift"] else "") + ".",
        "- Export: BatchNorm folded into the conv weights and biases; weights int8 symmetric per output channel "
        "(scale max|w|/127); biases int32 at scale s_x s_w[c]. Activations per tensor, asymmetric int8: the "
        f"{relu6} ReLU6 outputs use exactly [0, 6] (scale 6/255, zero point -128), so the ReLU6 is the int8 clamp, "
        "as in the paper's models; linear outputs (projections, residual adds, the pool, the logits) use the "
        f"{summary['percentile']} percentile range (widened to include 0) over {summary['calib']} training images.",
        "- Per-epoch log: `pretrain_log.json`.",
        "",
        "## Provenance and licence",
        "",
        "Fashion-MNIST (Zalando Research, MIT licence) from the Debian package `dataset-fashion-mnist`. "
        "The model itself is part of tinytrain.",
        "",
    ]
    (out / "README.md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=5e-5)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--shift", type=int, default=0, help="random translation in pixels (0 = flips only)")
    ap.add_argument("--calib", type=int, default=1000, help="training images used to calibrate activation ranges")
    ap.add_argument("--percentile", type=float, default=99.99)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "models" / "fmnist-mbv2")
    ap.add_argument("--int8-test", type=int, default=10000, help="test images for the int8 accuracy (all 10,000 by default)")
    ap.add_argument("--card-only", action="store_true", help="only rewrite README.md from model.ttm and pretrain_log.json")
    args = ap.parse_args(argv)
    if args.card_only:
        summary = json.loads((args.out / "pretrain_log.json").read_text())
        write_card(args.out, model_file.load(args.out / "model.ttm"), summary, summary["command"])
        return 0

    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    # Deterministic mode also NaN-fills every new tensor, which costs 2.5x here and decides nothing.
    torch.utils.deterministic.fill_uninitialized_memory = False
    t_start = time.time()
    train_set = datasets.load_dataset("fashion-mnist:train")
    test_set = datasets.load_dataset("fashion-mnist:test")
    net, log = train(args, train_set, test_set)
    train_seconds = time.time() - t_start
    net.eval()

    ops = float_graph(net)
    with torch.no_grad():
        logits = torch.cat([run_float(ops, torch.from_numpy(test_set.images[i : i + 1000].transpose(0, 3, 1, 2) / 255.0))["logits"]
                            for i in range(0, len(test_set), 1000)])
    fp32_acc = float((logits.argmax(1).numpy() == test_set.labels).mean())
    calib_idx = np.random.default_rng(args.seed + 1).choice(len(train_set), args.calib, replace=False)
    q = calibrate(ops, train_set.images[np.sort(calib_idx)], args.percentile)
    model = to_int8_model(ops, q, "fmnist-mbv2", tensor_shapes(ops))
    n_test = min(args.int8_test, len(test_set))
    t0 = time.time()
    int8_acc = evaluate_int8(model, test_set.images[:n_test], test_set.labels[:n_test])
    int8_seconds = time.time() - t0
    stats = model_stats(model)
    command = "python tools/pretrain_fmnist.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    model.metadata = {
        **model.metadata,
        "source": "tinytrain tools/pretrain_fmnist.py (PyTorch, CPU), trained from scratch",
        "dataset": "fashion-mnist (Zalando, MIT licence): 60,000 training images; accuracies on the 10,000 test images",
        "class_names": list(datasets.FASHION_MNIST_CLASSES),
        "pixel_to_real": PIXEL_TO_REAL,
        "accuracy_fp32": round(fp32_acc, 4),
        "accuracy_int8": round(int8_acc, 4),
        "accuracy_int8_images": n_test,
        "how_made": (f"{command}; seed {args.seed}, {args.epochs} epochs SGD nesterov lr {args.lr} cosine, batch "
                     f"{args.batch}, wd {args.weight_decay}, horizontal flips, shift {args.shift}; BatchNorm folded; "
                     "weights int8 per output channel (max|w|/127); ReLU6 outputs [0,6] (scale 6/255, zp -128); "
                     f"linear outputs calibrated on {args.calib} training images ({args.percentile} percentile); "
                     "int8 accuracy measured with tinytrain's NumpyBackend"),
        "architecture": {"stem": [STEM_CHANNELS, 3, 2], "blocks_t_c_s": BLOCKS, "classes": NUM_CLASSES},
        **{k: v for k, v in stats.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    model_file.save(model, args.out / "model.ttm")
    model_file.load(args.out / "model.ttm")  # round-trip check
    summary = {"command": command, "fp32_acc": fp32_acc, "int8_acc": int8_acc, "train_seconds": round(train_seconds, 1),
               "int8_eval_seconds": round(int8_seconds, 1), "file_bytes": (args.out / "model.ttm").stat().st_size,
               "sha256": model_file.model_hash(model), **stats,
               **{k: getattr(args, k) for k in ("seed", "epochs", "batch", "lr", "weight_decay", "shift", "calib",
                                                "percentile", "threads")},
               "log": log}
    (args.out / "pretrain_log.json").write_text(json.dumps(summary, indent=1) + "\n")
    write_card(args.out, model, summary, command)
    print(json.dumps({k: v for k, v in summary.items() if k != "log"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
