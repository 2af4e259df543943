"""The fp32 baseline of on-device fine-tuning: the same network, windows, order and schedule in PyTorch.

The int8 model is dequantized (weights w_q * s_w[o], biases b_q * s_x * s_w[o]) into an fp32 PyTorch
network of the same graph; an activation the int8 model folds into its quantization range (an output
whose zero point is -128, i.e. a range starting at 0: ReLU / ReLU6) becomes a clamp to that range, and
its input is the dequantized int8 input (the same values the int8 model sees). It is fine-tuned by
plain SGD at batch 1 with the same learning rate and per-step schedule as the board, on the same
samples in the same order, either every parameter ("full") or exactly the parameters a sparse-update
scheme trains (its bias layers, and each weight layer's first input channels at its ratio). PyTorch
is imported only here (the `tools` extra).
"""

from __future__ import annotations

import numpy as np

from tinytrain.compile.scheme import SparseScheme
from tinytrain.errors import TinytrainError
from tinytrain.ir.graph import Model
from tinytrain.learn.schedules import lr_scales
from tinytrain.numerics.fixed_point import LR_ONE


class FloatBaselineError(TinytrainError):
    """A model the fp32 baseline cannot express, or PyTorch missing."""


def _torch():
    try:
        import torch
    except ImportError as exc:
        raise FloatBaselineError("the fp32 baseline needs PyTorch (pip install -e '.[tools]').") from exc
    return torch


class FloatNet:
    """The dequantized model as PyTorch tensors, run op by op (batch-first NHWC -> NCHW internally)."""

    def __init__(self, model: Model):
        torch = _torch()
        self.torch = torch
        self.model = model
        self.params: dict[str, tuple] = {}
        for op in model.weighted_ops:
            s_x = model.tensors[op.input].qparams.scale
            ws = np.asarray(op.weight_scales, np.float64)
            w = op.weight.astype(np.float64) * ws.reshape((-1,) + (1,) * (op.weight.ndim - 1))
            b = op.bias.astype(np.float64) * s_x * ws
            if op.op_type == "conv2d":
                w = w.transpose(0, 3, 1, 2)  # [O, KH, KW, I/g] -> [O, I/g, KH, KW]
            self.params[op.name] = (torch.tensor(w, dtype=torch.float32, requires_grad=True),
                                    torch.tensor(b, dtype=torch.float32, requires_grad=True))
        for op in model.ops:
            if op.op_type not in ("conv2d", "dense", "avgpool", "add"):
                raise FloatBaselineError(f"the fp32 baseline has no {op.op_type} ({op.name}); it takes convs, "
                                         "dense layers, global average pools and adds.")

    def _activation(self, name: str, t):
        q = self.model.tensors[name].qparams
        if q.zero_point == -128:  # a range starting at 0: the folded ReLU / ReLU6
            return t.clamp(0.0, q.scale * 255.0)
        return t

    def forward(self, x_int8: np.ndarray):
        """Logits [N, classes] of int8 inputs [N, H, W, C]."""
        torch, F = self.torch, self.torch.nn.functional
        q = self.model.input_spec.qparams
        x = (x_int8.astype(np.float32) - q.zero_point) * np.float32(q.scale)
        values = {self.model.input: torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))}
        for op in self.model.ops:
            if op.op_type == "conv2d":
                w, b = self.params[op.name]
                top, bottom, left, right = op.pads
                t = F.pad(values[op.input], (left, right, top, bottom))
                t = F.conv2d(t, w, b, stride=op.strides, groups=op.groups)
            elif op.op_type == "dense":
                w, b = self.params[op.name]
                t = values[op.input].permute(0, 2, 3, 1).reshape(values[op.input].shape[0], -1)
                t = F.linear(t, w, b)
            elif op.op_type == "avgpool":
                t = values[op.input].mean(dim=(2, 3), keepdim=True)
            else:  # add
                a, c = op.inputs
                t = values[a] + values[c]
            values[op.output] = self._activation(op.output, t)
        out = values[self.model.output]
        return out.reshape(out.shape[0], -1)

    def accuracy(self, xs: np.ndarray, ys: np.ndarray) -> float:
        with self.torch.no_grad():
            pred = self.forward(xs).argmax(dim=1).numpy()
        return float(np.mean(pred == ys)) if len(ys) else 0.0

    def trained(self, scheme: SparseScheme | None) -> list[tuple]:
        """(tensor, gradient mask or None) of every trained parameter: all (scheme None) or the scheme's."""
        out = []
        for i, op in enumerate(self.model.weighted_ops):
            w, b = self.params[op.name]
            if scheme is None:
                out += [(w, None), (b, None)]
                continue
            if i in scheme.bias_layers:
                out.append((b, None))
            k = scheme.updated_channels(op, i)
            if k:
                mask = self.torch.zeros_like(w)
                if op.op_type == "dense":
                    mask[:, :k] = 1.0
                elif op.is_depthwise:
                    mask[:k] = 1.0
                else:
                    mask[:, :k] = 1.0
                out.append((w, None if k == op.update_channels else mask))
        return out


def finetune(model: Model, xs: np.ndarray, ys: np.ndarray, scheme: SparseScheme | None, lr: float,
             epochs: int = 1, schedule: str = "linear", eval_xs: np.ndarray | None = None,
             eval_ys: np.ndarray | None = None, threads: int = 1) -> dict:
    """Batch-1 SGD of the dequantized model in fp32 over xs (epochs times, in order), every parameter
    (scheme None) or the scheme's; the per-step learning rate is lr times the board's schedule scale.
    Returns accuracy on eval_xs before and after, and the running training accuracy."""
    torch = _torch()
    torch.set_num_threads(threads)
    net = FloatNet(model)
    trained = net.trained(scheme)
    before = net.accuracy(eval_xs, eval_ys) if eval_xs is not None else None
    n = len(xs) * epochs
    scales = lr_scales(n, schedule)
    correct = []
    for i in range(n):
        x, y = xs[i % len(xs)][None], int(ys[i % len(ys)])
        logits = net.forward(x)
        correct.append(int(logits.argmax(dim=1)[0]) == y)
        loss = torch.nn.functional.cross_entropy(logits, torch.tensor([y]))
        for p, _ in trained:
            p.grad = None
        loss.backward()
        step = lr * float(scales[i]) / LR_ONE
        with torch.no_grad():
            for p, mask in trained:
                g = p.grad if mask is None else p.grad * mask
                p -= step * g
    after = net.accuracy(eval_xs, eval_ys) if eval_xs is not None else None
    return {"accuracy_before": before, "accuracy_after": after, "steps": n, "correct": correct}
