"""What an op kind provides: its node (tinytrain.ir.graph.Node) and one rule object that compiles,
executes and emits it. A rule is the only place that knows its op:

- at compile time: `consts` (integers from float scales), `forward` and `backward` (the steps the
  op adds to a program, through a `Builder`), `weight_layout` (where a trained weight lives);
- in the NumPy reference: `compute` (the forward values) and `run` (any step it created);
- in the C code: `declare` (constants in flash) and `emit` (the kernel call of a step);
- in a streaming stage: `input_rows`, `row_macs` and `emit_rows` (stageable ops only).

The compiler, the executor and the code generator implement the context protocols below and
call rules; they name no op.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from tinytrain.ir.graph import Model, Node
from tinytrain.ir.program import Buffer, CompileError, CompileOptions, ParamSpec, Step, StepKind, TrainingProgram


class Builder(Protocol):
    """The compiler's side of building a program (tinytrain.compile.autodiff)."""

    model: Model
    options: CompileOptions
    consts: dict[str, Any]
    buffers: dict[str, Buffer]
    saved: dict[str, str]  # weighted op -> the buffer its weight gradient reads
    consumers: dict[str, list[Node]]
    grad_bits: dict[str, int]  # mantissa bits of every int16 gradient buffer

    def buf(self, name: str, dtype: str, shape: tuple[int, ...], role: str) -> str: ...
    def param(self, op: str, kind: str) -> ParamSpec: ...
    def requires_grad(self, tensor: str) -> bool: ...
    def mask_for(self, tensor: str) -> tuple[str, ...]: ...
    def add_infer(self, step: Step) -> None: ...
    def add_train(self, step: Step) -> None: ...
    def defer(self, step: Step) -> None: ...
    def grad(self, tensor: str) -> str: ...
    def consumer_count(self, tensor: str) -> int: ...
    def contribute(self, tensor: str, part: str) -> None: ...


class Executor(Protocol):
    """The NumPy reference's side of running a step (tinytrain.reference.executor)."""

    program: TrainingProgram
    model: Model
    nodes: dict[str, Node]
    weights: dict[str, np.ndarray]
    biases: dict[str, np.ndarray]
    mem: Any  # buffers by name
    exps: dict[str, int]  # gradient exponents by buffer
    label: int
    lr_scale: int
    step_count: int

    def set_grad(self, name: str, value: np.ndarray, exponent: int) -> None: ...
    def mask(self, step: Step) -> np.ndarray | None: ...
    def apply_update(self, spec: ParamSpec, grad: np.ndarray, exponent: int) -> None: ...


class Emitter(Protocol):
    """The code generator's side of emitting a step (tinytrain.compile.codegen)."""

    program: TrainingProgram
    model: Model

    def node(self, name: str) -> Node: ...
    def a8(self, buf: str) -> str: ...
    def a16(self, buf: str) -> str: ...
    def a32(self, buf: str) -> str: ...
    def mask(self, buf: str | None) -> str: ...
    def scratch(self) -> str: ...  # the kernel scratch of the step being emitted (a pointer, or NULL)
    def exp(self, buf: str) -> str: ...
    def offset(self, buf: str) -> int: ...
    def decl(self, text: str) -> None: ...
    def array(self, ctype: str, name: str, values: np.ndarray, const: bool = True) -> None: ...
    def has_step(self, op: str, kind: StepKind) -> bool: ...
    def weight_parts(self, node: Node) -> tuple[str, str, int]: ...
    def weights_whole(self, node: Node) -> str: ...


def ident(name: str) -> str:
    """A C identifier for a node or buffer name."""
    import re

    return re.sub(r"[^0-9A-Za-z_]", "_", name)


def declare_struct(em: Emitter, ctype: str, name: str, fields: dict[str, object]) -> str:
    """`static const <ctype> <name> = {.field = value, ...};` (designated initializers: a field cannot
    be given to another by its position); returns the name."""
    em.decl(f"static const {ctype} {name} = {{{', '.join(f'.{k} = {v}' for k, v in fields.items())}}};\n")
    return name


def geometry_fields(h: int, w: int, cin: int, oh: int, ow: int, cout: int, kernel: tuple[int, int] = (1, 1),
                    stride: tuple[int, int] = (1, 1), pads: tuple[int, int, int, int] = (0, 0, 0, 0),
                    groups: int = 1) -> dict[str, int]:
    """The fields of a tt_geom, in its order (engine/tt_kernels.h)."""
    return dict(h=h, w=w, cin=cin, oh=oh, ow=ow, cout=cout, kh=kernel[0], kw=kernel[1], sh=stride[0], sw=stride[1],
                pad_top=pads[0], pad_left=pads[2], groups=groups)


def declare_geometry(node: Node, em: Emitter, kernel: tuple[int, int], stride: tuple[int, int],
                     pads: tuple[int, int, int, int], groups: int = 1) -> str:
    """The node's `static const tt_geom <name>_g` (engine/tt_kernels.h), shared by every kernel call
    of the node (forward, input gradient, weight update); returns its name. Padding below and right
    is what the output size implies."""
    h, w, cin = em.model.tensors[node.inputs[0]].shape
    oh, ow, cout = em.model.tensors[node.output].shape
    return declare_struct(em, "tt_geom", f"{ident(node.name)}_g",
                          geometry_fields(h, w, cin, oh, ow, cout, kernel, stride, pads, groups))


class OpRule:
    """Base of every op's rule. The defaults fit a stateless one-step op without parameters."""

    node_type: type[Node]
    forward_kind: StepKind
    forward_in_place = False  # the forward step may overwrite its (only) input when that dies there

    # ---------------------------------------------------------------- compile

    def consts(self, node: Node, model: Model, options: CompileOptions) -> Any:
        return None

    def macs(self, node: Node, model: Model) -> int:
        return 0

    def kind_of(self, node: Node) -> StepKind:
        return self.forward_kind

    def forward(self, node: Node, b: Builder) -> None:
        """One forward step; in the training program it also writes the output's clamp mask when a
        gradient will pass it."""
        y = b.buf(node.output, "int8", b.model.tensors[node.output].shape, "activation")
        kind, macs = self.kind_of(node), self.macs(node, b.model)
        inplace = {y: node.inputs[0]} if self.forward_in_place else {}
        b.add_infer(Step(kind, node.name, tuple(node.inputs), (y,), inplace=dict(inplace), macs=macs, rule=self))
        b.add_train(Step(kind, node.name, tuple(node.inputs), (y,) + b.mask_for(node.output), inplace=inplace,
                         macs=macs, rule=self))

    def backward(self, node: Node, b: Builder) -> None:
        raise CompileError(f"op {node.name} ({node.op_type}) has no backward rule, so nothing below it can train.")

    # ---------------------------------------------------------------- NumPy

    def compute(self, node: Node, get: Callable[[str], np.ndarray], ex: Executor) -> tuple[np.ndarray, np.ndarray]:
        """The forward values: (int8 output, in-range mask of the value before the output clamp)."""
        raise NotImplementedError

    def run(self, step: Step, ex: Executor) -> None:
        if step.kind.is_forward:
            y, mask = self.compute(ex.nodes[step.op], ex.mem.__getitem__, ex)
            ex.mem[step.writes[0]] = y
            for b in step.writes[1:]:
                if ex.program.buffers[b].role == "mask":
                    ex.mem[b] = mask
            return
        raise NotImplementedError(f"{type(self).__name__} cannot run a {step.kind} step")

    # ---------------------------------------------------------------- C

    def declare(self, node: Node, em: Emitter) -> None:
        """Constants of the node in flash (and trained parameters in SRAM)."""

    def emit(self, step: Step, em: Emitter) -> str:
        raise NotImplementedError(f"{type(self).__name__} has no C kernel for a {step.kind} step")

    # ---------------------------------------------------------------- streaming stage

    def stageable(self, node: Node) -> bool:
        """Whether its output rows depend on a band of input rows only (it can run in a stage)."""
        return False

    def input_rows(self, node: Node, model: Model, out_rows: tuple[int, int]) -> tuple[int, int]:
        """The rows of the input that output rows [a, b) read."""
        return out_rows

    def row_macs(self, node: Node, model: Model) -> int:
        return 0

    def rows_scratch_bytes(self, node: Node, model: Model) -> int:
        """Bytes of kernel scratch its emit_rows call needs (em.scratch() there)."""
        return 0

    def emit_rows(self, node: Node, em: Emitter, row: Callable[[str, int], str], rows: tuple[int, int],
                  rows_held: Callable[[str], int]) -> str:
        """The kernel call computing output rows [a, b) inside a stage: row(tensor, r) is a pointer to
        row r of a tensor (in its window), rows_held(tensor) the rows of it computed so far."""
        raise NotImplementedError
