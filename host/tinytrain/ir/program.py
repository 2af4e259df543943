"""The compiled training program: kernel steps over named buffers, and what decides their numerics.

A program is a list of steps (forward, loss, the pruned backward, the updates) over named
buffers (activations, 1-bit masks, saved input slices, gradient mantissas). Each step names
its kind (one `StepKind`, the host's and the firmware's only list of them), the buffers it
reads and writes, its typed attributes, and the rule that created it: the rule executes the
step in NumPy and emits its C (tinytrain.ops). The compiler (tinytrain.compile) builds
programs; nothing here knows an op.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from tinytrain.errors import TinytrainError
from tinytrain.ir.graph import Model
from tinytrain.numerics import fixed_point as fp

DTYPE_BYTES = {"int8": 1, "int16": 2, "int32": 4}
GRAD_BITS = 16  # mantissa bits of a stored activation gradient


class CompileError(TinytrainError):
    """A model/scheme combination the compiler cannot turn into a training step."""


class Phase(enum.Enum):
    FORWARD = "forward"
    BACKWARD = "backward"


class StepKind(str, enum.Enum):
    """Every kind of step. The firmware's enum (reported per step by PROFILE) is generated from this
    list, in this order: add new kinds at the end."""

    def __new__(cls, value: str, phase: Phase) -> "StepKind":
        obj = str.__new__(cls, value)
        obj._value_ = value
        obj.phase = phase
        return obj

    CONV = "conv", Phase.FORWARD
    POINTWISE = "pointwise", Phase.FORWARD
    DEPTHWISE = "depthwise", Phase.FORWARD
    DENSE = "dense", Phase.FORWARD
    ADD = "add", Phase.FORWARD
    AVGPOOL = "avgpool", Phase.FORWARD
    SAVE_CHANNELS = "save_channels", Phase.FORWARD
    LOSS_GRAD = "loss_grad", Phase.BACKWARD
    REQUANT_GRAD = "requant_grad", Phase.BACKWARD
    INPUT_GRAD = "input_grad", Phase.BACKWARD
    WEIGHT_UPDATE = "weight_update", Phase.BACKWARD
    BIAS_UPDATE = "bias_update", Phase.BACKWARD
    ADD_GRAD = "add_grad", Phase.BACKWARD
    AVGPOOL_GRAD = "avgpool_grad", Phase.BACKWARD
    GRAD_SUM = "grad_sum", Phase.BACKWARD
    PATCH_STAGE = "patch_stage", Phase.FORWARD
    # Without reordering (reported for comparison, never built): gradients as tensors, applied at the end.
    WEIGHT_GRAD = "weight_grad", Phase.BACKWARD
    BIAS_GRAD = "bias_grad", Phase.BACKWARD
    APPLY_WEIGHT_GRAD = "apply_weight_grad", Phase.BACKWARD
    APPLY_BIAS_GRAD = "apply_bias_grad", Phase.BACKWARD
    MAXPOOL = "maxpool", Phase.FORWARD
    MAXPOOL_GRAD = "maxpool_grad", Phase.BACKWARD
    AVGPOOL2D = "avgpool2d", Phase.FORWARD
    AVGPOOL2D_GRAD = "avgpool2d_grad", Phase.BACKWARD
    PAD = "pad", Phase.FORWARD
    PAD_GRAD = "pad_grad", Phase.BACKWARD
    CONCAT = "concat", Phase.FORWARD
    CONCAT_GRAD = "concat_grad", Phase.BACKWARD
    RESHAPE = "reshape", Phase.FORWARD
    RESHAPE_GRAD = "reshape_grad", Phase.BACKWARD
    REQUANTIZE = "requantize", Phase.FORWARD
    REQUANTIZE_GRAD = "requantize_grad", Phase.BACKWARD
    CLAMP = "clamp", Phase.FORWARD
    CLAMP_GRAD = "clamp_grad", Phase.BACKWARD
    IMAGE_RESIZE = "image_resize", Phase.FORWARD

    @property
    def is_forward(self) -> bool:
        return self.phase is Phase.FORWARD

    @property
    def c_name(self) -> str:
        return f"TT_STEP_{self.name}"

    @property
    def code(self) -> int:
        """The number the firmware reports for this kind (its position in the enum)."""
        return list(StepKind).index(self)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


# ---------------------------------------------------------------- step attributes (one type per kind)


@dataclass(frozen=True)
class NoAttrs:
    pass


@dataclass(frozen=True)
class ForwardAttrs:
    ring: str | None = None  # the row ring of a conv that overwrites its input (in place)


@dataclass(frozen=True)
class SaveAttrs:
    channels: int  # the first `channels` channels (dense: elements) of each position are kept


@dataclass(frozen=True)
class StageAttrs:
    stage: Any  # tinytrain.compile.staging.PatchStage


@dataclass(frozen=True)
class GradAttrs:
    bits: int  # mantissa bits of the gradient written
    mask: str | None = None  # the clamp mask the incoming gradient passes


@dataclass(frozen=True)
class InputGradAttrs:
    bits: int | None  # int16 mantissas of `bits` bits; None: int32 values with the incoming exponent
    ring: str | None = None  # in place over dL/dacc through a ring of rows


@dataclass(frozen=True)
class InputsGradAttrs:
    """The gradients of several inputs from one step (add, concat)."""

    bits: int
    outputs: tuple[str, ...]  # the gradient buffer of each input ("" where an input needs none)
    mask: str | None = None


ATTRS = {
    **{k: ForwardAttrs for k in (StepKind.CONV, StepKind.POINTWISE, StepKind.DEPTHWISE, StepKind.DENSE,
                                 StepKind.ADD, StepKind.AVGPOOL, StepKind.MAXPOOL, StepKind.AVGPOOL2D,
                                 StepKind.PAD, StepKind.CONCAT, StepKind.RESHAPE, StepKind.REQUANTIZE,
                                 StepKind.CLAMP, StepKind.IMAGE_RESIZE)},
    StepKind.SAVE_CHANNELS: SaveAttrs,
    StepKind.PATCH_STAGE: StageAttrs,
    StepKind.LOSS_GRAD: GradAttrs,
    StepKind.REQUANT_GRAD: GradAttrs,
    StepKind.AVGPOOL_GRAD: GradAttrs,
    StepKind.GRAD_SUM: GradAttrs,
    **{k: GradAttrs for k in (StepKind.MAXPOOL_GRAD, StepKind.AVGPOOL2D_GRAD, StepKind.PAD_GRAD,
                              StepKind.RESHAPE_GRAD, StepKind.REQUANTIZE_GRAD, StepKind.CLAMP_GRAD)},
    StepKind.CONCAT_GRAD: InputsGradAttrs,
    StepKind.INPUT_GRAD: InputGradAttrs,
    StepKind.ADD_GRAD: InputsGradAttrs,
}


def attrs_type(kind: StepKind) -> type:
    return ATTRS.get(kind, NoAttrs)


class StepRule(Protocol):
    """What creates steps of a kind and knows how to run them (tinytrain.ops)."""

    def run(self, step: "Step", ex: Any) -> None: ...

    def emit(self, step: "Step", em: Any) -> str: ...


# ---------------------------------------------------------------- buffers and steps


@dataclass
class Buffer:
    name: str
    dtype: str  # int8 | int16 | int32 | bits
    shape: tuple[int, ...]
    role: str  # input | stream | activation | mask | saved | grad | grad32 | wgrad | scratch (a kernel's, one step)
    # (stream: the model input when its rows are received during a streaming stage; not in the arena)

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        if self.dtype == "bits":
            return (self.elements + 7) // 8
        return self.elements * DTYPE_BYTES[self.dtype]


@dataclass
class Step:
    kind: StepKind
    op: str | None  # the node (or, for a program-level step, the tensor) it belongs to
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    attrs: Any = None  # an instance of attrs_type(kind); None = its defaults
    inplace: dict[str, str] = field(default_factory=dict)  # written buffer -> read buffer it may overwrite
    macs: int = 0
    rule: StepRule | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.kind = StepKind(self.kind)
        expected = attrs_type(self.kind)
        if self.attrs is None:
            self.attrs = expected()
        if not isinstance(self.attrs, expected):
            raise TypeError(f"a {self.kind} step takes {expected.__name__}, not {type(self.attrs).__name__}")

    @property
    def mask(self) -> str | None:
        return getattr(self.attrs, "mask", None)


# ---------------------------------------------------------------- trained tensors


@dataclass
class ParamSpec:
    """One weight or bias tensor of a weighted op, and the one description of where it lives: its
    SRAM part is `full[sram_index]` (the rest stays in flash), of which `sram[update_index]` is
    updated. The layer's rule (tinytrain.ops) decides the cut; the planner, the NumPy executor and
    the code generator all read it from here."""

    op: str
    layer: int
    kind: str  # weight | bias
    shape: tuple[int, ...]  # full tensor
    trainable: bool
    channels: int = 0  # weights: trained input channels (depthwise: channels)
    split_axis: int | None = None  # the SRAM part is [0:channels] along this axis; None: the whole tensor
    update_axis: int | None = None  # of the SRAM part, [0:channels] along this axis is updated; None: all
    element_offset: int = 0  # first PRNG counter of this tensor's SRAM part

    @property
    def sram_shape(self) -> tuple[int, ...]:
        if not self.trainable:
            return ()
        if self.split_axis is None:
            return self.shape
        return tuple(self.channels if i == self.split_axis else n for i, n in enumerate(self.shape))

    @property
    def sram_elements(self) -> int:
        return int(np.prod(self.sram_shape, dtype=np.int64)) if self.sram_shape else 0

    @property
    def sram_bytes(self) -> int:
        return self.sram_elements * (1 if self.kind == "weight" else 4)

    def _cut(self, axis: int | None, start: int, stop: int | None) -> tuple:
        if axis is None:
            return (Ellipsis,)
        return (slice(None),) * axis + (slice(start, stop),)

    @property
    def sram_index(self) -> tuple:
        return self._cut(self.split_axis, 0, self.channels)

    @property
    def frozen_index(self) -> tuple | None:
        """The flash part of a split tensor (None when nothing of it stays in flash)."""
        if self.split_axis is None or self.channels >= self.shape[self.split_axis]:
            return None
        return self._cut(self.split_axis, self.channels, None)

    @property
    def update_index(self) -> tuple:
        return self._cut(self.update_axis, 0, self.channels)


# ---------------------------------------------------------------- options and the program


@dataclass
class CompileOptions:
    lr: float = 0.05
    bias_lr: float | None = None
    qas: bool = True
    rounding: str = "stochastic"
    seed: int = 1
    reorder: bool = True
    # Streaming front (compile/staging.py): (index of the last stage op, rows of its output per strip), or None.
    stage: tuple[int, int] | None = None
    # Let the compiler choose the stage (compiler.choose_stage).
    patch: bool = True
    # With a streaming stage, receive the sample's rows while the stage runs instead of the whole
    # sample into the arena first (the firmware's TRAIN/INFER pull the payload during the step).
    stream_input: bool = True
    # Stride-1 depthwise input gradients with frozen weights overwrite their dL/dacc (a ring of rows).
    inplace_depthwise_grads: bool = True
    # Layers whose input gradient, although the only one of its tensor, stays int32 and is renormalized
    # afterwards: one pass instead of two, for more memory (compiler.choose_wide_input_grads).
    wide_input_grads: frozenset[str] = frozenset()

    def validate(self) -> None:
        if self.rounding not in fp.ROUNDING_MODES:
            raise CompileError(f"unknown rounding {self.rounding!r}; choose one of {', '.join(fp.ROUNDING_MODES)}.")
        if not self.lr > 0 or (self.bias_lr is not None and not self.bias_lr > 0):
            raise CompileError("learning rates must be positive.")


@dataclass
class TrainingProgram:
    model: Model
    scheme: Any  # tinytrain.compile.scheme.SparseScheme
    options: CompileOptions
    buffers: dict[str, Buffer]
    train_steps: list[Step]
    infer_steps: list[Step]
    params: list[ParamSpec]
    consts: dict[str, Any]  # per node: what its rule derived from the float scales (integers only)
    loss_table: np.ndarray
    loss_scale_mult: tuple[int, int]
    grad_bits: dict[str, int]

    @property
    def trainable_params(self) -> list[ParamSpec]:
        return [p for p in self.params if p.trainable]

    @property
    def trainable_sram_bytes(self) -> int:
        return sum(p.sram_bytes for p in self.params if p.trainable)

    @property
    def trainable_elements(self) -> int:
        return sum(p.sram_elements for p in self.params if p.trainable)

    @property
    def macs_forward(self) -> int:
        return sum(s.macs for s in self.infer_steps)

    @property
    def macs_backward(self) -> int:
        return sum(s.macs for s in self.train_steps if not s.kind.is_forward)

    def param(self, op: str, kind: str) -> ParamSpec:
        for p in self.params:
            if p.op == op and p.kind == kind:
                return p
        raise KeyError((op, kind))
