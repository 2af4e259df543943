"""conv2d (any groups; pointwise and depthwise are its fast kinds): the node and its rule."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinytrain.ir.graph import Model, ModelError, Shape, WeightedNode, json_int
from tinytrain.ir.program import ForwardAttrs, Step, StepKind
from tinytrain.numerics import kernels as K
import tinytrain.ops.scratch as scratch
from tinytrain.ops.base import Builder, Emitter, Executor, geometry_fields, ident
from tinytrain.ops.weighted import WeightedRule, input_grad_call


@dataclass
class Conv2D(WeightedNode):
    """conv2d with zero-point padding, any groups; weights [O, KH, KW, I/groups].

    stride: one int or (sh, sw); padding: None (PyTorch's k//2 on every side), one int for every
    side, or (top, bottom, left, right) as TFLite's SAME computes it (asymmetric with stride 2)."""

    name: str
    input: str
    output: str
    weight: np.ndarray  # int8 [O, KH, KW, I/groups]
    bias: np.ndarray  # int32 [O]
    weight_scales: np.ndarray  # float32 [O]
    stride: int | tuple[int, int] = 1
    groups: int = 1
    padding: int | tuple[int, int, int, int] | None = None

    op_type = "conv2d"

    @property
    def kernel(self) -> tuple[int, int]:
        return int(self.weight.shape[1]), int(self.weight.shape[2])

    @property
    def strides(self) -> tuple[int, int]:
        return K.as_pair(self.stride)

    @property
    def pads(self) -> K.Pads:
        if self.padding is None:
            kh, kw = self.kernel
            return kh // 2, kh // 2, kw // 2, kw // 2
        return K.as_pads(self.padding)

    @property
    def regular(self) -> bool:
        """Square kernel, one stride, the same padding above and left (what the fast kernels take;
        the padding below and right is whatever the output size implies)."""
        (kh, kw), (sh, sw), (t, _, left, _) = self.kernel, self.strides, self.pads
        return kh == kw and sh == sw and t == left

    @property
    def pad(self) -> int:
        """The padding above and left of a regular conv."""
        return self.pads[0]

    @property
    def in_channels(self) -> int:
        return int(self.weight.shape[3]) * self.groups

    @property
    def is_depthwise(self) -> bool:
        return self.groups > 1 and self.groups == self.in_channels == self.out_channels

    @property
    def is_pointwise(self) -> bool:
        return self.kernel == (1, 1) and self.groups == 1 and self.strides == (1, 1) and self.pads == (0, 0, 0, 0)

    @property
    def kind(self) -> str:
        if self.is_depthwise:
            return "depthwise"
        if self.is_pointwise:
            return "pointwise"
        return "conv"

    @property
    def update_channels(self) -> int:
        return self.out_channels if self.is_depthwise else self.in_channels

    def output_shape(self, shapes: list[Shape]) -> Shape:
        (h, w, c), = shapes
        if c != self.in_channels:
            raise ModelError(f"conv {self.name} takes {self.in_channels} channels, not {c}.")
        oh, ow = K.out_hw(h, w, self.kernel, self.strides, self.pads)
        return oh, ow, self.out_channels

    def check(self, model: Model) -> None:
        def ints(v, n: int) -> bool:
            one = isinstance(v, (int, np.integer)) and not isinstance(v, bool)
            return one or (isinstance(v, (tuple, list)) and len(v) == n and all(ints(i, 0) for i in v))

        if not ints(self.stride, 2) or not (self.padding is None or ints(self.padding, 4)):
            raise ModelError(f"conv {self.name} has stride {self.stride!r} and padding {self.padding!r}; a stride is "
                             f"one integer or two, padding one integer or four.")
        c = model.tensors[self.input].shape[2]
        oc = model.tensors[self.output].shape[2]
        if self.weight.ndim != 4:
            raise ModelError(f"conv {self.name} needs weights [out, kh, kw, in/groups].")
        kh, kw = self.kernel
        self._check_params()
        if min(self.strides) < 1 or self.groups < 1 or min(self.pads) < 0:
            raise ModelError(f"conv {self.name} needs strides and groups of at least 1 and no negative padding.")
        if max(self.pads[:2]) >= kh or max(self.pads[2:]) >= kw:
            raise ModelError(f"conv {self.name} pads {self.pads} around a {kh}x{kw} kernel: an output would read "
                             f"padding only.")
        if c != self.in_channels or oc != self.out_channels or c % self.groups or oc % self.groups:
            raise ModelError(f"conv {self.name} has channels {c}->{oc} but weights {self.weight.shape} with "
                             f"groups {self.groups}.")
        if self.groups > 1 and not self.is_depthwise:
            raise ModelError(f"conv {self.name} is a grouped conv ({self.groups} groups), which only trains as a "
                             f"depthwise conv (groups = channels).")

    def to_json(self, arrays: dict[str, np.ndarray]) -> dict:
        # One number where one says it all (the form of every model made before non-square kernels).
        (sh, sw), pads = self.strides, self.pads
        d = {"type": self.op_type, "name": self.name, "input": self.input, "output": self.output,
             "stride": sh if sh == sw else [sh, sw], "groups": self.groups,
             "padding": pads[0] if len(set(pads)) == 1 else list(pads)}
        return self._params_to_json(d, arrays)

    @classmethod
    def from_json(cls, d: dict, array) -> "Conv2D":
        def ints(v):
            return json_int(v) if np.isscalar(v) else tuple(json_int(i) for i in v)

        return cls(d["name"], d["input"], d["output"], array(d["weight"]), array(d["bias"]), array(d["weight_scales"]),
                   ints(d["stride"]), json_int(d["groups"]), ints(d["padding"]))


def fast_depthwise(node: Conv2D) -> bool:
    """A depthwise conv the depthwise kernels take (square window, one stride, the same padding above and
    left); any other depthwise conv runs on the generic kernels."""
    return node.is_depthwise and node.regular


def same_size_depthwise(node: Conv2D) -> bool:
    """A stride-1 depthwise conv whose output is as large as its input (odd square kernel, k//2 on
    every side): what the in-place kernels take."""
    kh, kw = node.kernel
    return (node.is_depthwise and kh == kw and kh % 2 == 1 and node.strides == (1, 1)
            and node.pads == (kh // 2,) * 4)


class ConvRule(WeightedRule):
    node_type = Conv2D

    def stageable(self, node: Conv2D) -> bool:
        return node.regular

    def kind_of(self, node: Conv2D) -> StepKind:
        return {"depthwise": StepKind.DEPTHWISE, "pointwise": StepKind.POINTWISE}.get(node.kind, StepKind.CONV)

    def macs(self, node: Conv2D, model: Model) -> int:
        oh, ow, oc = model.tensors[node.output].shape
        kh, kw = node.kernel
        return oh * ow * oc * kh * kw * (node.in_channels // node.groups)

    # ---------------------------------------------------------------- layout and backward shape

    def weight_layout(self, node: Conv2D, channels: int) -> tuple[int | None, int | None]:
        # pointwise: the trained input channels [O][1][1][k] in SRAM, the rest in flash;
        # depthwise: the trained channels [k][KH][KW][1]; any other conv: the whole tensor, of which
        # input channels [..., :k] are updated.
        if node.kind == "pointwise":
            return 3, None
        if node.is_depthwise:
            return 0, None
        return None, 3

    def saved_shape(self, node: Conv2D, x_shape: tuple[int, int, int], k: int) -> tuple[int, tuple[int, ...]]:
        return x_shape[2], tuple(x_shape[:2]) + (k,)

    def input_grad_fan(self, node: Conv2D) -> int:
        kh, kw = node.kernel
        return kh * kw * (node.out_channels // node.groups)

    def input_grad_in_place(self, node: Conv2D, b: Builder) -> bool:
        # A stride-1 depthwise input gradient can overwrite dL/dacc (through a ring of pad+1 rows)
        # when nothing reads dL/dacc after it: its weights are frozen (a weight update must see the
        # gradient of the weights it came from) and its bias update runs first.
        return same_size_depthwise(node) and b.options.inplace_depthwise_grads

    def pad_rows(self, node: Conv2D) -> int:
        return node.pad

    def weight_grad_macs(self, node: Conv2D, model: Model, k: int) -> int:
        oh, ow, oc = model.tensors[node.output].shape
        kh, kw = node.kernel
        if node.is_depthwise:
            return oh * ow * k * kh * kw
        return oh * ow * oc * kh * kw * k

    def uses_weight_sums(self, node: Conv2D) -> bool:
        return node.kind == "pointwise"

    def place(self, node: Conv2D, b: Builder, infer: Step, train: Step) -> None:
        """A stride-1 depthwise conv may overwrite its input when nothing else ever reads it
        (tt_conv_depthwise_inplace); its mask rows must be byte-aligned."""
        if not (same_size_depthwise(node) and node.input != b.model.input):
            return
        _, w, c = b.model.tensors[node.output].shape
        if (w * c) % 8 or len(b.consumers[node.input]) != 1 or node.input in b.saved.values():
            return
        ring = b.buf(f"{node.name}.ring", "int8", ((node.pad + 1) * w * c,), "activation")
        for step in (train, infer):
            step.writes += (ring,)
            step.inplace = {node.output: node.input}
            step.attrs = ForwardAttrs(ring)

    # ---------------------------------------------------------------- NumPy

    def compute(self, node: Conv2D, get: Callable[[str], np.ndarray], ex: Executor) -> tuple[np.ndarray, np.ndarray]:
        c = ex.program.consts[node.name]
        acc = K.conv_accumulate(get(node.input), c.zx, ex.weights[node.name], ex.biases[node.name], node.strides,
                                node.groups, node.pads)
        return K.Requant(c.multiplier, c.shift, c.zy).apply(acc)

    def input_grad(self, node: Conv2D, g: np.ndarray, ex: Executor) -> np.ndarray:
        return K.conv_backward_input(g, ex.weights[node.name], node.strides, node.groups, node.pads,
                                     ex.model.tensors[node.input].shape)

    def weight_grad(self, node: Conv2D, g: np.ndarray, x: np.ndarray, zx: int, k: int) -> np.ndarray:
        return K.conv_weight_grad(g, x, zx, node.kernel, node.strides, node.groups, node.pads, k)

    # ---------------------------------------------------------------- C

    def geometry(self, node: Conv2D, model: Model) -> dict[str, int]:
        h, w, cin = model.tensors[node.input].shape
        oh, ow, cout = model.tensors[node.output].shape
        return geometry_fields(h, w, cin, oh, ow, cout, node.kernel, node.strides, node.pads, node.groups)

    def scratch_bytes(self, node: Conv2D, model: Model, step: Step) -> int:
        kind = self.kernel_kind(node)
        if step.kind is StepKind.WEIGHT_UPDATE:
            return scratch.weight_update_pointwise(self.geometry(node, model)) if kind == "pointwise" else 0
        if step.kind.is_forward:
            name = f"conv_{kind}_inplace" if kind == "depthwise" and step.attrs.ring is not None else f"conv_{kind}"
        else:
            name = f"input_grad_{kind}"
        return getattr(scratch, name)(self.geometry(node, model))

    def rows_scratch_bytes(self, node: Conv2D, model: Model) -> int:
        """The scratch of its band kernel inside a streaming stage (the whole layer's need)."""
        return getattr(scratch, f"conv_{self.kernel_kind(node)}")(self.geometry(node, model))

    def kernel_kind(self, node: Conv2D) -> str:
        """Which kernels run it: pointwise, depthwise (the fast kinds' shapes) or generic (everything else)."""
        if node.kind == "pointwise":
            return "pointwise"
        return "depthwise" if fast_depthwise(node) else "generic"

    def emit_forward(self, node: Conv2D, step: Step, em: Emitter, mask: str) -> str:
        n = ident(node.name)
        x, y = em.a8(node.input), em.a8(node.output)
        kind = self.kernel_kind(node)
        if kind == "depthwise" and step.attrs.ring is not None and em.offset(node.input) == em.offset(node.output):
            return (f"tt_conv_depthwise_inplace(&{n}_g, &{n}_l, {x}, {mask}, {em.a8(step.attrs.ring)}, "
                    f"{em.scratch()});")
        return f"tt_conv_{kind}(&{n}_g, &{n}_l, {x}, {y}, {mask}, {em.scratch()});"

    def emit_input_grad(self, node: Conv2D, step: Step, em: Emitter) -> str:
        n = ident(node.name)
        kind = self.kernel_kind(node)
        if kind == "depthwise" and step.attrs.ring is not None:  # stride 1: gx overwrites g (same slot)
            g = step.reads[0]
            return (f"{em.exp(step.writes[0])} = tt_input_grad_depthwise16_inplace(&{n}_g, &{n}_l, {em.a16(g)}, "
                    f"{em.exp(g)}, {step.attrs.bits}, {em.a16(step.attrs.ring)}, {em.scratch()});")
        return input_grad_call(step, em, f"tt_input_grad_{kind}", scratch=kind != "generic")

    def weight_update_kernel(self, node: Conv2D) -> str:
        return f"tt_weight_update_{self.kernel_kind(node)}"

    # ---------------------------------------------------------------- streaming stage

    def input_rows(self, node: Conv2D, model: Model, out_rows: tuple[int, int]) -> tuple[int, int]:
        a, b = out_rows
        h_in = model.tensors[node.input].shape[0]
        k, s, p = node.kernel[0], node.strides[0], node.pads[0]
        return max(0, a * s - p), min(h_in, (b - 1) * s - p + k)

    def row_macs(self, node: Conv2D, model: Model) -> int:
        _, ow, oc = model.tensors[node.output].shape
        return ow * oc * node.kernel[0] * node.kernel[1] * (node.in_channels // node.groups)

    def emit_rows(self, node: Conv2D, em: Emitter, row: Callable[[str, int], str], rows: tuple[int, int],
                  rows_held: Callable[[str], int]) -> str:
        """The layer's own tt_geom and tt_layer, with the band's input rows, output rows and padding above
        given by the call (no struct per strip)."""
        n = ident(node.name)
        a, b = rows
        kind = self.kernel_kind(node)
        if kind == "pointwise":
            return (f"tt_conv_pointwise_rows(&{n}_g, &{n}_l, {row(node.input, a)}, {row(node.output, a)}, {b - a}, "
                    f"{em.scratch()});")
        first = a * node.strides[0] - node.pads[0]
        start, pad_top = (first, 0) if first >= 0 else (0, -first)
        x, h = row(node.input, start), rows_held(node.input) - start
        return (f"tt_conv_{kind}_rows(&{n}_g, &{n}_l, {x}, {row(node.output, a)}, {h}, {b - a}, {pad_top}, "
                f"{em.scratch()});")


RULE = ConvRule()
