"""The node shape shared by the pooling ops: a window sliding over H and W with strides and padding,
channel by channel, keeping its input's quantization."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinytrain.ir.graph import Model, ModelError, Shape, UnaryNode, json_int
from tinytrain.numerics import kernels as K


@dataclass
class WindowNode(UnaryNode):
    name: str
    input: str
    output: str
    kernel: tuple[int, int]  # (kh, kw)
    stride: tuple[int, int]  # (sh, sw)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # (top, bottom, left, right): never in a window's result

    what = "pool"  # for messages

    def output_shape(self, shapes: list[Shape]) -> Shape:
        (h, w, c), = shapes
        oh, ow = K.out_hw(h, w, self.kernel, self.stride, self.padding)
        return oh, ow, c

    def check(self, model: Model) -> None:
        (kh, kw), (t, b, left, r) = self.kernel, self.padding
        if min(self.kernel) < 1 or min(self.stride) < 1 or min(self.padding) < 0 or max(t, b) >= kh or max(left, r) >= kw:
            raise ModelError(f"{self.what} {self.name} has an invalid window {self.kernel}, stride {self.stride} or "
                             f"padding {self.padding}.")
        if model.tensors[self.input].qparams != model.tensors[self.output].qparams:
            raise ModelError(f"{self.what} {self.name} must keep its input's scale and zero point.")

    def to_json(self, arrays: dict[str, np.ndarray]) -> dict:
        return {"type": self.op_type, "name": self.name, "input": self.input, "output": self.output,
                "kernel": list(self.kernel), "stride": list(self.stride), "padding": list(self.padding)}

    @classmethod
    def from_json(cls, d: dict, array) -> "WindowNode":
        return cls(d["name"], d["input"], d["output"], tuple(json_int(v) for v in d["kernel"]),
                   tuple(json_int(v) for v in d["stride"]), tuple(json_int(v) for v in d["padding"]))
