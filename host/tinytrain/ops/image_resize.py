"""The image a sensor gives, made into the model's input on the board (issue: samples arrive slowly).

A model built with a pixel source (`tinytrain compile/pio` option `source`, e.g. 28x28x1) takes the
source's uint8 pixels as its input (784 bytes on the wire instead of the 49,152 of a 128x128x3 input)
and starts with this node: gray <-> RGB, a bilinear resize in integers, and the model's pixel table
(metadata pixel_to_real and the input's quantization) — numerics.kernels.image_resize, which the
NumPy reference and the board compute alike. It runs row by row in a streaming stage, never trains.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinytrain.ir.graph import Model, ModelError, Shape, UnaryNode, json_int
from tinytrain.ir.program import Step, StepKind
from tinytrain.numerics import kernels as K
from tinytrain.ops.base import Builder, Emitter, Executor, OpRule, declare_geometry, ident


@dataclass
class ImageResize(UnaryNode):
    name: str
    input: str  # uint8 pixels [h, w, c] (held as their bytes)
    output: str  # the model's int8 input [H, W, C]
    shape: tuple[int, int, int]  # H, W, C
    lut: np.ndarray  # int8 [256]: pixel -> input value

    op_type = "image_resize"

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return tuple(self.shape)

    def check(self, model: Model) -> None:
        (h, w, c), (oh, ow, oc) = model.tensors[self.input].shape, model.tensors[self.output].shape
        if c not in (1, 3) or oc not in (1, 3):
            raise ModelError(f"image resize {self.name} maps {c} to {oc} channels; images have 1 or 3.")
        if np.asarray(self.lut).shape != (256,) or np.asarray(self.lut).dtype != np.int8:
            raise ModelError(f"image resize {self.name} needs a table of 256 int8 values.")

    def to_json(self, arrays: dict[str, np.ndarray]) -> dict:
        arrays[f"{self.name}.lut"] = np.asarray(self.lut, np.int8)
        return {"type": self.op_type, "name": self.name, "input": self.input, "output": self.output,
                "shape": list(self.shape), "lut": f"{self.name}.lut"}

    @classmethod
    def from_json(cls, d: dict, array) -> "ImageResize":
        return cls(d["name"], d["input"], d["output"], tuple(json_int(v) for v in d["shape"]), array(d["lut"]))


class ImageResizeRule(OpRule):
    node_type = ImageResize

    def forward(self, node: ImageResize, b: Builder) -> None:
        y = b.buf(node.output, "int8", b.model.tensors[node.output].shape, "activation")
        for add in (b.add_infer, b.add_train):
            add(Step(StepKind.IMAGE_RESIZE, node.name, (node.input,), (y,), rule=self))

    def backward(self, node: ImageResize, b: Builder) -> None:
        pass  # its input is the sample: nothing below it trains

    def compute(self, node: ImageResize, get: Callable[[str], np.ndarray], ex: Executor) -> tuple[np.ndarray, None]:
        oh, ow, oc = node.shape
        return K.image_resize(np.asarray(get(node.input)).view(np.uint8), (oh, ow), oc, node.lut), None

    # ---------------------------------------------------------------- C

    def declare(self, node: ImageResize, em: Emitter) -> None:
        declare_geometry(node, em, (2, 2), (1, 1), (0, 0, 0, 0))
        em.array("int8_t", f"{ident(node.name)}_lut", node.lut)

    def emit(self, step: Step, em: Emitter) -> str:
        node = em.node(step.op)
        oh = em.model.tensors[node.output].shape[0]
        return self._call(node, em, em.a8(node.input), em.a8(node.output), 0, oh, 0)

    def _call(self, node: ImageResize, em: Emitter, src: str, dst: str, first_src_row: int, rows: int,
              first_row: int) -> str:
        n = ident(node.name)
        return (f"tt_image_resize(&{n}_g, (const uint8_t *){src}, {first_src_row}, {dst}, {first_row}, {rows}, "
                f"{n}_lut);")

    # ---------------------------------------------------------------- streaming stage

    def stageable(self, node: ImageResize) -> bool:
        return True

    def input_rows(self, node: ImageResize, model: Model, out_rows: tuple[int, int]) -> tuple[int, int]:
        y0, y1, _ = K.resize_coords(model.tensors[node.input].shape[0], model.tensors[node.output].shape[0])
        a, b = out_rows
        return int(y0[a]), int(y1[b - 1]) + 1

    def row_macs(self, node: ImageResize, model: Model) -> int:
        return 0

    def emit_rows(self, node: ImageResize, em: Emitter, row: Callable[[str, int], str], rows: tuple[int, int],
                  rows_held: Callable[[str], int]) -> str:
        a, b = rows
        first_src = self.input_rows(node, em.model, rows)[0]
        return self._call(node, em, row(node.input, first_src), row(node.output, a), first_src, b - a, a)


RULE = ImageResizeRule()
