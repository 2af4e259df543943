"""Autodiff at compile time: a model + a sparse scheme -> one straight-line training step.

The result is a list of kernel steps over named buffers (activations, 1-bit
masks, saved input slices, gradient mantissas) plus the constants each step
needs. Only what the scheme needs is derived: no input gradient below the
earliest trained layer, no weight gradient for frozen weights, weight
gradients for only the trained input-channel slice, masks only where a
gradient passes a clamp, activations kept only where a weight gradient reads
them. With `reorder=True` (the default) every update runs right after its
gradient and the gradient never exists as a tensor; with `reorder=False` the
weight and bias gradients are materialized and applied at the end, the way a
conventional framework does it (only used to report the difference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import fixed_point as fp
from . import kernels_ref as K
from .errors import TinytrainError
from .ir import Add, Conv2D, Dense, GlobalAveragePool, Model, Op, WeightedOp
from .sparse_scheme import SparseScheme

DTYPE_BYTES = {"int8": 1, "int16": 2, "int32": 4}
GRAD_BITS = 16  # mantissa bits of a stored activation gradient


class CompileError(TinytrainError):
    """A model/scheme combination the compiler cannot turn into a training step."""


@dataclass
class Buffer:
    name: str
    dtype: str  # int8 | int16 | int32 | bits
    shape: tuple[int, ...]
    role: str  # input | stream | activation | mask | saved | grad | grad32 | wgrad
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
    kind: str
    op: str | None
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    attrs: dict = field(default_factory=dict)
    inplace: dict[str, str] = field(default_factory=dict)  # written buffer -> read buffer it may overwrite
    macs: int = 0


@dataclass
class ParamSpec:
    """One weight or bias tensor of a weighted op and where it lives."""

    op: str
    layer: int
    kind: str  # weight | bias
    shape: tuple[int, ...]  # full tensor
    trainable: bool
    channels: int = 0  # weights: trained input channels (depthwise: channels)
    sram_shape: tuple[int, ...] = ()  # part kept in SRAM (empty when frozen)
    element_offset: int = 0  # first PRNG counter of this tensor's SRAM part

    @property
    def sram_bytes(self) -> int:
        n = int(np.prod(self.sram_shape, dtype=np.int64)) if self.sram_shape else 0
        return n * (1 if self.kind == "weight" else 4)

    @property
    def sram_elements(self) -> int:
        return int(np.prod(self.sram_shape, dtype=np.int64)) if self.sram_shape else 0


@dataclass
class LayerConsts:
    """Compile-time integers of one op (everything derived from float scales lives here)."""

    zx: int = 0
    zy: int = 0
    multiplier: np.ndarray | None = None  # int64 [C] forward requantization
    shift: np.ndarray | None = None
    add: K.AddParams | None = None
    add_grad: tuple[tuple[int, int], tuple[int, int]] | None = None  # (mult, shift) per input
    pool_grad: tuple[int, int] | None = None
    w_coef: tuple[np.ndarray, np.ndarray] | None = None  # update coefficient per out channel
    b_coef: tuple[np.ndarray, np.ndarray] | None = None


@dataclass
class CompileOptions:
    lr: float = 0.05
    bias_lr: float | None = None
    qas: bool = True
    rounding: str = "stochastic"
    seed: int = 1
    reorder: bool = True
    # Streaming front (patch_stage.py): (index of the last stage op, rows of its output per strip), or None.
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
    scheme: SparseScheme
    options: CompileOptions
    buffers: dict[str, Buffer]
    train_steps: list[Step]
    infer_steps: list[Step]
    params: list[ParamSpec]
    consts: dict[str, LayerConsts]
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
        fwd = {id(s) for s in self.train_steps if s.kind in FORWARD_KINDS}
        return sum(s.macs for s in self.train_steps if id(s) not in fwd)

    def param(self, op: str, kind: str) -> ParamSpec:
        for p in self.params:
            if p.op == op and p.kind == kind:
                return p
        raise KeyError((op, kind))


FORWARD_KINDS = {"conv", "dense", "add", "avgpool", "save_channels", "patch_stage"}


def _clog2(n: int) -> int:
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0


def _op_macs(model: Model, op: Op) -> int:
    if isinstance(op, Conv2D):
        oh, ow, oc = model.tensors[op.output].shape
        kh, kw = op.kernel
        return oh * ow * oc * kh * kw * (op.in_channels // op.groups)
    if isinstance(op, Dense):
        return op.out_channels * op.in_channels
    return 0


def layer_consts(model: Model, op: Op, options: CompileOptions) -> LayerConsts:
    t = model.tensors
    c = LayerConsts()
    if isinstance(op, (Conv2D, Dense)):
        x, y = t[op.input].qparams, t[op.output].qparams
        c.zx, c.zy = x.zero_point, y.zero_point
        mult = [fp.quantize_multiplier(x.scale * float(s) / y.scale) for s in op.weight_scales]
        c.multiplier = np.array([m for m, _ in mult], dtype=np.int64)
        c.shift = np.array([s for _, s in mult], dtype=np.int64)
        ws = op.weight_scales.astype(np.float64)
        bias_lr = options.bias_lr if options.bias_lr is not None else options.lr
        if options.qas:
            wc = [fp.quantize_multiplier(options.lr / (s * s)) for s in ws]
            bc = [fp.quantize_multiplier(bias_lr / (x.scale * s) ** 2) for s in ws]
        else:
            wc = [fp.quantize_multiplier(options.lr)] * len(ws)
            bc = [fp.quantize_multiplier(bias_lr)] * len(ws)
        c.w_coef = (np.array([m for m, _ in wc], dtype=np.int64), np.array([s for _, s in wc], dtype=np.int64))
        c.b_coef = (np.array([m for m, _ in bc], dtype=np.int64), np.array([s for _, s in bc], dtype=np.int64))
    elif isinstance(op, Add):
        a, b = (t[n].qparams for n in op.inputs)
        y = t[op.output].qparams
        c.zy = y.zero_point
        c.add = K.make_add_params(a.scale, a.zero_point, b.scale, b.zero_point, y.scale, y.zero_point)
        c.add_grad = (fp.quantize_multiplier(a.scale / y.scale), fp.quantize_multiplier(b.scale / y.scale))
    elif isinstance(op, GlobalAveragePool):
        x, y = t[op.input].qparams, t[op.output].qparams
        h, w, _ = t[op.input].shape
        c.zx, c.zy = x.zero_point, y.zero_point
        m, s = fp.quantize_multiplier(x.scale / (y.scale * h * w))
        c.multiplier, c.shift = np.array([m], dtype=np.int64), np.array([s], dtype=np.int64)
        c.pool_grad = (m, s)
    return c


def _param_specs(model: Model, scheme: SparseScheme) -> list[ParamSpec]:
    specs: list[ParamSpec] = []
    offset = 0
    for i, op in enumerate(model.weighted_ops):
        k = scheme.updated_channels(op, i)
        w_shape = tuple(op.weight.shape)
        if k == 0:
            specs.append(ParamSpec(op.name, i, "weight", w_shape, False))
        else:
            if isinstance(op, Dense):
                sram = (op.out_channels, k)
            elif op.is_depthwise:
                sram = (k,) + w_shape[1:]
            elif op.kernel == (1, 1):
                sram = w_shape[:3] + (k,)
            else:  # full k x k conv: the whole tensor stays in SRAM, only [..., :k] is updated
                sram = w_shape
            p = ParamSpec(op.name, i, "weight", w_shape, True, k, sram, offset)
            offset += p.sram_elements
            specs.append(p)
        if i in scheme.bias_layers:
            p = ParamSpec(op.name, i, "bias", (op.out_channels,), True, 0, (op.out_channels,), offset)
            offset += p.sram_elements
            specs.append(p)
        else:
            specs.append(ParamSpec(op.name, i, "bias", (op.out_channels,), False))
    return specs


def requires_grad(model: Model, params: list[ParamSpec]) -> dict[str, bool]:
    """Tensors whose gradient the training step needs (everything downstream of a trained op)."""
    trained = {p.op for p in params if p.trainable}
    rg: dict[str, bool] = {model.input: False}
    for op in model.ops:
        rg[op.output] = op.name in trained or any(rg[x] for x in op.inputs)
    return rg


def frozen_tensors(model: Model, scheme: SparseScheme) -> set[str]:
    return {t for t, g in requires_grad(model, _param_specs(model, scheme)).items() if not g}


def acc_grad_bits(model: Model, op: WeightedOp, need_input: bool, weight_channels: int) -> int:
    """Mantissa bits of dL/dacc so that every int32 sum a consumer makes cannot overflow."""
    bits = GRAD_BITS
    oh, ow, _ = model.tensors[op.output].shape
    positions = oh * ow
    if need_input:
        if isinstance(op, Dense):
            n = op.out_channels
        else:
            kh, kw = op.kernel
            n = kh * kw * (op.out_channels // op.groups)
        bits = min(bits, 24 - _clog2(n))  # |g| <= 2**(b-1), |w| <= 2**7
    if weight_channels:
        bits = min(bits, 23 - _clog2(positions))  # |x - zx| <= 255 < 2**8
    if bits < 6:
        raise CompileError(f"layer {op.name} is too large for int32 gradient sums (only {bits} mantissa bits left).")
    return bits


def compile_program(model: Model, scheme: SparseScheme, options: CompileOptions | None = None) -> TrainingProgram:
    options = options or CompileOptions()
    options.validate()
    model.validate()
    wops = model.weighted_ops
    if scheme.n_layers != len(wops):
        raise CompileError(f"the scheme is for {scheme.n_layers} layers but the model has {len(wops)}.")
    if not isinstance(model.producer()[model.output], (Conv2D, Dense)):
        raise CompileError("the model's output must be produced by its classifier (a dense or conv layer).")
    layer = {op.name: i for i, op in enumerate(wops)}
    params = _param_specs(model, scheme)
    pmap = {(p.op, p.kind): p for p in params}
    consts = {op.name: layer_consts(model, op, options) for op in model.ops}
    t = model.tensors

    rg = requires_grad(model, params)

    buffers: dict[str, Buffer] = {}

    def buf(name: str, dtype: str, shape: tuple[int, ...], role: str) -> str:
        buffers[name] = Buffer(name, dtype, tuple(int(s) for s in shape), role)
        return name

    buf(model.input, "int8", t[model.input].shape, "input")
    infer_steps: list[Step] = []
    train_steps: list[Step] = []
    saved: dict[str, str] = {}  # op -> buffer its weight gradient reads
    stage_ops: set[str] = set()
    consumers_of = model.consumers()
    if options.stage is not None:
        from .patch_stage import build_stage, candidate_cuts, stage_step

        cut, rows_per_strip = options.stage
        if cut not in candidate_cuts(model, {n for n, g in rg.items() if not g}):
            raise CompileError(f"ops 0..{cut} cannot be run as a streaming stage for this scheme.")
        stage_ops = {op.name for op in model.ops[: cut + 1]}
        stream = options.stream_input and all(c.name in stage_ops for c in consumers_of[model.input])
        stage = build_stage(model, model.ops[: cut + 1], rows_per_strip, stream_input=stream)
        if stream:
            buffers[model.input].role = "stream"
        step, scratch = stage_step(model, stage)
        buffers[scratch.name] = scratch
        buf(stage.output, "int8", t[stage.output].shape, "activation")
        infer_steps.append(step)
        train_steps.append(step)

    for op in model.ops:
        if op.name in stage_ops:
            continue
        y = buf(op.output, "int8", t[op.output].shape, "activation")
        kind = {Conv2D: "conv", Dense: "dense", Add: "add", GlobalAveragePool: "avgpool"}[type(op)]
        macs = _op_macs(model, op)
        infer_steps.append(Step(kind, op.name, tuple(op.inputs), (y,), macs=macs))
        writes = (y,)
        if rg[op.output] and op.output != model.output:
            writes = (y, buf(f"{op.output}.mask", "bits", t[op.output].shape, "mask"))
        if isinstance(op, (Conv2D, Dense)) and pmap[(op.name, "weight")].trainable:
            k = pmap[(op.name, "weight")].channels
            x = t[op.input]
            if isinstance(op, Dense):
                full = x.size
                xs_shape: tuple[int, ...] = (k,)
            else:
                full = x.shape[2]
                xs_shape = x.shape[:2] + (k,)
            if k < full:
                xs = buf(f"{op.name}.x_saved", "int8", xs_shape, "saved")
                train_steps.append(Step("save_channels", op.name, (op.input,), (xs,), {"channels": k}))
                saved[op.name] = xs
            else:
                saved[op.name] = op.input
        step = Step(kind, op.name, tuple(op.inputs), writes, macs=macs)
        if _can_run_in_place(model, op, consumers_of, saved, rg):
            ring = buf(f"{op.name}.ring", "int8", ((op.pad + 1) * t[op.output].shape[1] * t[op.output].shape[2],),
                       "activation")
            step.writes += (ring,)
            step.inplace = {op.output: op.input}
            step.attrs["ring"] = ring
            infer_steps[-1].writes += (ring,)
            infer_steps[-1].inplace = {op.output: op.input}
            infer_steps[-1].attrs["ring"] = ring
        train_steps.append(step)

    # ---- loss
    logits_q = t[model.output].qparams
    loss_table = K.softmax_table(logits_q.scale)
    loss_scale_mult = fp.quantize_multiplier(logits_q.scale)
    grad_bits: dict[str, int] = {}
    consumers = model.consumers()
    pending = {name: sum(op.inputs.count(name) for op in consumers[name]) for name in t}
    consumer_count = dict(pending)  # a gradient with several parts is summed from int32 parts
    parts: dict[str, list[str]] = {name: [] for name in t}
    grad_of: dict[str, str] = {}

    gy = buf(f"{model.output}.grad", "int16", t[model.output].shape, "grad")
    grad_bits[gy] = GRAD_BITS
    train_steps.append(Step("loss_grad", model.output, (model.output,), (gy,), {"bits": GRAD_BITS}))
    grad_of[model.output] = gy
    deferred: list[Step] = []

    def contribute(tensor: str, part: str) -> None:
        parts[tensor].append(part)
        pending[tensor] -= 1
        if pending[tensor] > 0:
            return
        ps = parts[tensor]
        if len(ps) == 1 and buffers[ps[0]].dtype == "int16":
            grad_of[tensor] = ps[0]
            return
        g = buf(f"{tensor}.grad", "int16", t[tensor].shape, "grad")
        grad_bits[g] = GRAD_BITS
        inplace = {g: ps[0]} if buffers[ps[0]].dtype == "int32" else {}
        train_steps.append(Step("grad_sum", tensor, tuple(ps), (g,), {"bits": GRAD_BITS}, inplace))
        grad_of[tensor] = g

    for op in reversed(model.ops):
        if not rg[op.output]:
            continue
        g = grad_of[op.output]
        mask = None if op.output == model.output else f"{op.output}.mask"
        if isinstance(op, (Conv2D, Dense)):
            wspec, bspec = pmap[(op.name, "weight")], pmap[(op.name, "bias")]
            need_input = rg[op.input]
            bits = acc_grad_bits(model, op, need_input, wspec.channels)
            gacc = buf(f"{op.name}.gacc", "int16", t[op.output].shape, "grad")
            grad_bits[gacc] = bits
            reads = (g,) if mask is None else (g, mask)
            train_steps.append(Step("requant_grad", op.name, reads, (gacc,), {"bits": bits, "mask": mask}, {gacc: g}))
            narrow = need_input and consumer_count[op.input] == 1 and op.name not in options.wide_input_grads
            # A stride-1 depthwise input gradient can overwrite dL/dacc (through a ring of pad+1 rows)
            # when nothing reads dL/dacc after it: its weights are frozen (a weight update must see
            # the gradient of the weights it came from) and its bias update runs first.
            in_place = (narrow and isinstance(op, Conv2D) and op.is_depthwise and op.stride == 1
                        and not wspec.trainable and options.inplace_depthwise_grads)

            def bias_steps() -> None:
                if options.reorder:
                    train_steps.append(Step("bias_update", op.name, (gacc,), ()))
                else:
                    gb = buf(f"{op.name}.bgrad", "int32", (op.out_channels,), "wgrad")
                    train_steps.append(Step("bias_grad", op.name, (gacc,), (gb,)))
                    deferred.append(Step("apply_bias_grad", op.name, (gb,), ()))

            if bspec.trainable and in_place:
                bias_steps()
            if need_input:
                if narrow:
                    # The only gradient of x: written directly as int16 mantissas (two passes, no int32 tensor).
                    gx = buf(f"{op.input}.grad", "int16", t[op.input].shape, "grad")
                    grad_bits[gx] = GRAD_BITS
                    attrs = {"bits": GRAD_BITS}
                else:
                    gx = buf(f"{op.name}.gx32", "int32", t[op.input].shape, "grad32")
                    attrs = {}
                step = Step("input_grad", op.name, (gacc,), (gx,), attrs, macs=_op_macs(model, op))
                if in_place:
                    ring = buf(f"{op.name}.gring", "int16", ((op.pad + 1) * t[op.input].shape[1] * t[op.input].shape[2],),
                               "grad")
                    step.writes += (ring,)
                    step.inplace = {gx: gacc}
                    step.attrs["ring"] = ring
                train_steps.append(step)
            if wspec.trainable:
                wmacs = _weight_grad_macs(model, op, wspec.channels)
                if options.reorder:
                    train_steps.append(Step("weight_update", op.name, (gacc, saved[op.name]), (), macs=wmacs))
                else:
                    gw = buf(f"{op.name}.wgrad", "int32", _wgrad_shape(op, wspec), "wgrad")
                    train_steps.append(Step("weight_grad", op.name, (gacc, saved[op.name]), (gw,), macs=wmacs))
                    deferred.append(Step("apply_weight_grad", op.name, (gw,), ()))
            if bspec.trainable and not in_place:
                bias_steps()
            if need_input:
                contribute(op.input, gx)
        elif isinstance(op, Add):
            outs = []
            for j, name in enumerate(op.inputs):
                if rg[name]:
                    ga = buf(f"{op.name}.g{j}", "int16", t[name].shape, "grad")
                    grad_bits[ga] = GRAD_BITS
                    outs.append(ga)
                else:
                    outs.append("")
            writes = tuple(o for o in outs if o)
            train_steps.append(Step("add_grad", op.name, tuple(r for r in (g, mask) if r), writes, {"bits": GRAD_BITS, "outputs": outs, "mask": mask},
                                    {writes[0]: g}))
            for name, o in zip(op.inputs, outs):
                if o:
                    contribute(name, o)
        elif isinstance(op, GlobalAveragePool):
            gx = buf(f"{op.name}.gx", "int16", t[op.input].shape, "grad")
            grad_bits[gx] = GRAD_BITS
            train_steps.append(Step("avgpool_grad", op.name, tuple(r for r in (g, mask) if r), (gx,),
                                    {"bits": GRAD_BITS, "mask": mask}))
            contribute(op.input, gx)
    train_steps.extend(deferred)
    return TrainingProgram(model, scheme, options, buffers, train_steps, infer_steps, params, consts, loss_table,
                           loss_scale_mult, grad_bits)


def _can_run_in_place(model: Model, op: Op, consumers: dict[str, list[Op]], saved: dict[str, str],
                      rg: dict[str, bool]) -> bool:
    """A stride-1 depthwise conv may overwrite its input when nothing else ever reads it
    (tt_conv_depthwise_inplace); its mask rows must be byte-aligned."""
    if not (isinstance(op, Conv2D) and op.is_depthwise and op.stride == 1 and op.input != model.input):
        return False
    _, w, c = model.tensors[op.output].shape
    if (w * c) % 8:
        return False
    return len(consumers[op.input]) == 1 and op.input not in saved.values()


def _wgrad_shape(op: WeightedOp, spec: ParamSpec) -> tuple[int, ...]:
    if isinstance(op, Dense):
        return (op.out_channels, spec.channels)
    if op.is_depthwise:
        return (spec.channels,) + tuple(op.weight.shape[1:])
    return tuple(op.weight.shape[:3]) + (spec.channels,)


def _weight_grad_macs(model: Model, op: WeightedOp, k: int) -> int:
    if isinstance(op, Dense):
        return op.out_channels * k
    oh, ow, oc = model.tensors[op.output].shape
    kh, kw = op.kernel
    if op.is_depthwise:
        return oh * ow * k * kh * kw
    return oh * ow * oc * kh * kw * k
