"""The rule shared by layers with weights (conv, dense): requantized forward, the pruned backward
(dL/dacc, the input gradient, the fused weight and bias updates), QAS update coefficients, and the
saved input slice a weight gradient reads. A layer's own module (conv.py, dense.py) supplies its
kernels through the hooks at the end of `WeightedRule`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tinytrain.ir.graph import Model, QuantParams, WeightedNode
from tinytrain.ir.program import (
    GRAD_BITS,
    CompileError,
    CompileOptions,
    GradAttrs,
    InputGradAttrs,
    ParamSpec,
    SaveAttrs,
    Step,
    StepKind,
)
from tinytrain.numerics import fixed_point as fp
from tinytrain.numerics import kernels as K
from tinytrain.ops.base import Builder, Emitter, Executor, OpRule, declare_struct, ident

ROUNDING_C = {"stochastic": "TT_ROUND_STOCHASTIC", "nearest": "TT_ROUND_NEAREST", "truncate": "TT_ROUND_TRUNCATE"}


@dataclass
class WeightedConsts:
    """Compile-time integers of a layer with weights."""

    zx: int
    zy: int
    multiplier: np.ndarray  # int64 [C] forward requantization
    shift: np.ndarray
    w_coef: tuple[np.ndarray, np.ndarray]  # SGD coefficient per output channel: weights (QAS: lr / s_w^2)
    b_coef: tuple[np.ndarray, np.ndarray]  # biases (QAS: lr / (s_x s_w)^2)


_CONSTS: dict[tuple, WeightedConsts] = {}
_CONSTS_MAX = 4096


def _split(pairs: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([m for m, _ in pairs], dtype=np.int64), np.array([s for _, s in pairs], dtype=np.int64)


def _clog2(n: int) -> int:
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0


class SaveChannelsRule(OpRule):
    """Copies the trained input channels a weight gradient reads, so the rest of the input can die."""

    def run(self, step: Step, ex: Executor) -> None:
        x = ex.mem[step.reads[0]]
        k = step.attrs.channels
        flat = len(ex.program.buffers[step.writes[0]].shape) == 1
        ex.mem[step.writes[0]] = x.reshape(-1)[:k] if flat else x[..., :k]

    def emit(self, step: Step, em: Emitter) -> str:
        src = em.model.tensors[step.reads[0]]
        dst = em.program.buffers[step.writes[0]]
        if len(dst.shape) == 1:
            return f"tt_save_channels({em.a8(step.reads[0])}, 1, {src.size}, {dst.shape[0]}, {em.a8(step.writes[0])});"
        h, w, ch = src.shape
        return f"tt_save_channels({em.a8(step.reads[0])}, {h * w}, {ch}, {dst.shape[2]}, {em.a8(step.writes[0])});"


SAVE_CHANNELS = SaveChannelsRule()


class WeightedRule(OpRule):
    """Forward: acc = sat32(b + sum w (x - zx)), requantized per output channel."""

    # ---------------------------------------------------------------- compile

    def consts(self, node: WeightedNode, model: Model, options: CompileOptions) -> WeightedConsts:
        t = model.tensors
        x, y = t[node.input].qparams, t[node.output].qparams
        # A pure function of these values; the planner compiles the same layers hundreds of times.
        key = (x.scale, x.zero_point, y.scale, y.zero_point, node.weight_scales.dtype.str,
               node.weight_scales.tobytes(), options.lr, options.bias_lr, options.qas)
        hit = _CONSTS.get(key)
        if hit is None:
            if len(_CONSTS) >= _CONSTS_MAX:
                _CONSTS.clear()
            hit = _CONSTS[key] = self._consts(node, x, y, options)
        return hit

    @staticmethod
    def _consts(node: WeightedNode, x: QuantParams, y: QuantParams, options: CompileOptions) -> WeightedConsts:
        mult, shift = _split([fp.quantize_multiplier(x.scale * float(s) / y.scale) for s in node.weight_scales])
        ws = node.weight_scales.astype(np.float64)
        bias_lr = options.bias_lr if options.bias_lr is not None else options.lr
        if options.qas:
            wc = [fp.quantize_multiplier(options.lr / (s * s)) for s in ws]
            bc = [fp.quantize_multiplier(bias_lr / (x.scale * s) ** 2) for s in ws]
        else:
            wc = [fp.quantize_multiplier(options.lr)] * len(ws)
            bc = [fp.quantize_multiplier(bias_lr)] * len(ws)
        c = WeightedConsts(x.zero_point, y.zero_point, mult, shift, _split(wc), _split(bc))
        for a in (c.multiplier, c.shift, *c.w_coef, *c.b_coef):
            a.setflags(write=False)  # shared by every program compiled with the same values
        return c

    def params(self, node: WeightedNode, layer: int, channels: int, bias: bool, offset: int) -> list[ParamSpec]:
        """The layer's weight and bias specs; the trained ones take PRNG counters from `offset` on."""
        w_shape = tuple(node.weight.shape)
        if channels:
            split, update = self.weight_layout(node, channels)
            w = ParamSpec(node.name, layer, "weight", w_shape, True, channels, split, update, offset)
            offset += w.sram_elements
        else:
            w = ParamSpec(node.name, layer, "weight", w_shape, False)
        if bias:
            b = ParamSpec(node.name, layer, "bias", (node.out_channels,), True, 0, None, None, offset)
        else:
            b = ParamSpec(node.name, layer, "bias", (node.out_channels,), False)
        return [w, b]

    def forward(self, node: WeightedNode, b: Builder) -> None:
        y = b.buf(node.output, "int8", b.model.tensors[node.output].shape, "activation")
        kind, macs = self.kind_of(node), self.macs(node, b.model)
        infer = Step(kind, node.name, tuple(node.inputs), (y,), macs=macs, rule=self)
        b.add_infer(infer)
        wspec = b.param(node.name, "weight")
        if wspec.trainable:
            self._save_input(node, wspec.channels, b)
        train = Step(kind, node.name, tuple(node.inputs), (y,) + b.mask_for(node.output), macs=macs, rule=self)
        self.place(node, b, infer, train)
        n = self.scratch_bytes(node, b.model, train)
        if n:  # the DSP path's working memory, planned for this step only
            s = b.buf(f"{node.name}.scratch", "int8", (n,), "scratch")
            infer.writes += (s,)
            train.writes += (s,)
        b.add_train(train)

    def _save_input(self, node: WeightedNode, k: int, b: Builder) -> None:
        """A weight gradient reads the first k channels of the input: keep a copy of just those
        when that is less than the whole input."""
        x = b.model.tensors[node.input]
        full, shape = self.saved_shape(node, x.shape, k)
        if k < full:
            xs = b.buf(f"{node.name}.x_saved", "int8", shape, "saved")
            b.add_train(Step(StepKind.SAVE_CHANNELS, node.name, (node.input,), (xs,), SaveAttrs(k), rule=SAVE_CHANNELS))
            b.saved[node.name] = xs
        else:
            b.saved[node.name] = node.input

    def backward(self, node: WeightedNode, b: Builder) -> None:
        t = b.model.tensors
        opt = b.options
        g = b.grad(node.output)
        mask = b.mask_for(node.output)
        mask = mask[0] if mask else None
        wspec, bspec = b.param(node.name, "weight"), b.param(node.name, "bias")
        need_input = b.requires_grad(node.input)
        bits = self.acc_grad_bits(node, b.model, need_input, wspec.channels)
        gacc = b.buf(f"{node.name}.gacc", "int16", t[node.output].shape, "grad")
        b.grad_bits[gacc] = bits
        reads = (g,) if mask is None else (g, mask)
        b.add_train(Step(StepKind.REQUANT_GRAD, node.name, reads, (gacc,), GradAttrs(bits, mask), {gacc: g}, rule=self))
        narrow = need_input and b.consumer_count(node.input) == 1 and node.name not in opt.wide_input_grads
        in_place = narrow and not wspec.trainable and self.input_grad_in_place(node, b)

        def bias_steps() -> None:
            if opt.reorder:
                b.add_train(Step(StepKind.BIAS_UPDATE, node.name, (gacc,), (), rule=self))
            else:
                gb = b.buf(f"{node.name}.bgrad", "int32", (node.out_channels,), "wgrad")
                b.add_train(Step(StepKind.BIAS_GRAD, node.name, (gacc,), (gb,), rule=self))
                b.defer(Step(StepKind.APPLY_BIAS_GRAD, node.name, (gb,), (), rule=self))

        # In place, the input gradient overwrites dL/dacc: the bias update must read it first.
        if bspec.trainable and in_place:
            bias_steps()
        if need_input:
            if narrow:  # the only gradient of x: written directly as int16 mantissas (no int32 tensor)
                gx = b.buf(f"{node.input}.grad", "int16", t[node.input].shape, "grad")
                b.grad_bits[gx] = GRAD_BITS
                out_bits: int | None = GRAD_BITS
            else:
                gx = b.buf(f"{node.name}.gx32", "int32", t[node.input].shape, "grad32")
                out_bits = None
            step = Step(StepKind.INPUT_GRAD, node.name, (gacc,), (gx,), InputGradAttrs(out_bits),
                        macs=self.macs(node, b.model), rule=self)
            if in_place:
                shape = t[node.input].shape
                ring = b.buf(f"{node.name}.gring", "int16", ((self.pad_rows(node) + 1) * shape[1] * shape[2],), "grad")
                step.writes += (ring,)
                step.inplace = {gx: gacc}
                step.attrs = InputGradAttrs(out_bits, ring)
            n = self.scratch_bytes(node, b.model, step)
            if n:
                step.writes += (b.buf(f"{node.name}.gx_scratch", "int8", (n,), "scratch"),)
            b.add_train(step)
        if wspec.trainable:
            wmacs = self.weight_grad_macs(node, b.model, wspec.channels)
            xs = b.saved[node.name]
            if opt.reorder:
                step = Step(StepKind.WEIGHT_UPDATE, node.name, (gacc, xs), (), macs=wmacs, rule=self)
                n = self.scratch_bytes(node, b.model, step)
                if n:
                    step.writes += (b.buf(f"{node.name}.w_scratch", "int8", (n,), "scratch"),)
                b.add_train(step)
            else:
                shape = wspec.sram_shape if wspec.update_axis is None else \
                    tuple(wspec.channels if i == wspec.update_axis else n for i, n in enumerate(wspec.sram_shape))
                gw = b.buf(f"{node.name}.wgrad", "int32", shape, "wgrad")
                b.add_train(Step(StepKind.WEIGHT_GRAD, node.name, (gacc, xs), (gw,), macs=wmacs, rule=self))
                b.defer(Step(StepKind.APPLY_WEIGHT_GRAD, node.name, (gw,), (), rule=self))
        if bspec.trainable and not in_place:
            bias_steps()
        if need_input:
            b.contribute(node.input, gx)

    def acc_grad_bits(self, node: WeightedNode, model: Model, need_input: bool, weight_channels: int) -> int:
        """Mantissa bits of dL/dacc so that every int32 sum a consumer makes cannot overflow."""
        bits = GRAD_BITS
        oh, ow, _ = model.tensors[node.output].shape
        if need_input:
            bits = min(bits, 24 - _clog2(self.input_grad_fan(node)))  # |g| <= 2**(b-1), |w| <= 2**7
        if weight_channels:
            bits = min(bits, 23 - _clog2(oh * ow))  # |x - zx| <= 255 < 2**8
        if bits < 6:
            raise CompileError(f"layer {node.name} is too large for int32 gradient sums (only {bits} mantissa bits left).")
        return bits

    # ---------------------------------------------------------------- NumPy

    def run(self, step: Step, ex: Executor) -> None:
        kind = step.kind
        if kind.is_forward:
            return super().run(step, ex)
        node = ex.nodes[step.op]
        c = ex.program.consts[step.op]
        g = ex.mem[step.reads[0]]
        e = ex.exps[step.reads[0]]
        if kind is StepKind.REQUANT_GRAD:
            out, e2 = K.requant_backward(g, e, ex.mask(step), c.multiplier, c.shift, step.attrs.bits)
            ex.set_grad(step.writes[0], out, e2)
        elif kind is StepKind.INPUT_GRAD:
            gx = self.input_grad(node, g, ex)
            if step.attrs.bits is not None:  # written as normalized int16 mantissas
                gx, e = K.grad_sum([(gx, e)], step.attrs.bits)
            ex.set_grad(step.writes[0], gx, e)
        elif kind is StepKind.WEIGHT_UPDATE:
            ex.apply_update(ex.program.param(step.op, "weight"), self._weight_grad(node, step, ex), e)
        elif kind is StepKind.BIAS_UPDATE:
            ex.apply_update(ex.program.param(step.op, "bias"), K.bias_grad(g), e)
        elif kind is StepKind.WEIGHT_GRAD:
            ex.set_grad(step.writes[0], self._weight_grad(node, step, ex), e)
        elif kind is StepKind.BIAS_GRAD:
            ex.set_grad(step.writes[0], K.bias_grad(g), e)
        elif kind is StepKind.APPLY_WEIGHT_GRAD:
            ex.apply_update(ex.program.param(step.op, "weight"), g, e)
        elif kind is StepKind.APPLY_BIAS_GRAD:
            ex.apply_update(ex.program.param(step.op, "bias"), g, e)
        else:
            super().run(step, ex)

    def _weight_grad(self, node: WeightedNode, step: Step, ex: Executor) -> np.ndarray:
        spec = ex.program.param(node.name, "weight")
        return self.weight_grad(node, ex.mem[step.reads[0]], ex.mem[step.reads[1]], ex.program.consts[node.name].zx,
                                spec.channels)

    # ---------------------------------------------------------------- C

    def declare(self, node: WeightedNode, em: Emitter) -> None:
        """The layer's arrays, then its tt_geom `<name>_g` and tt_layer `<name>_l` (engine/tt_kernels.h),
        which every kernel call of the layer takes."""
        n = ident(node.name)
        c = em.program.consts[node.name]
        ws, bs = em.program.param(node.name, "weight"), em.program.param(node.name, "bias")
        w = node.weight
        if not ws.trainable:
            em.array("int8_t", f"{n}_w", w)
        else:
            em.array("int8_t", f"{n}_w_lo", w[ws.sram_index], const=False)
            if ws.frozen_index is not None:
                em.array("int8_t", f"{n}_w_hi", w[ws.frozen_index])
        em.array("int32_t", f"{n}_b", node.bias, const=not bs.trainable)
        em.array("int32_t", f"{n}_mult", c.multiplier)
        em.array("int32_t", f"{n}_shift", c.shift)
        wsum = not ws.trainable and self.uses_weight_sums(node)
        if wsum:
            em.array("int32_t", f"{n}_wsum", w.reshape(node.out_channels, -1).astype(np.int64).sum(axis=1))
        if ws.trainable:
            em.array("int32_t", f"{n}_wcoef_m", c.w_coef[0])
            em.array("int32_t", f"{n}_wcoef_s", c.w_coef[1])
        if bs.trainable:
            em.array("int32_t", f"{n}_bcoef_m", c.b_coef[0])
            em.array("int32_t", f"{n}_bcoef_s", c.b_coef[1])
        declare_struct(em, "tt_geom", f"{n}_g", self.geometry(node, em.model))
        w_lo, w_hi, k_lo = em.weight_parts(node)
        declare_struct(em, "tt_layer", f"{n}_l", {
            "w_lo": w_lo, "w_hi": w_hi, "k_lo": k_lo, "wsum": f"{n}_wsum" if wsum else "NULL", "bias": f"{n}_b",
            "mult": f"{n}_mult", "shift": f"{n}_shift", "zx": c.zx, "zy": c.zy,
            "wcoef_mult": f"{n}_wcoef_m" if ws.trainable else "NULL",
            "wcoef_shift": f"{n}_wcoef_s" if ws.trainable else "NULL",
            "bcoef_mult": f"{n}_bcoef_m" if bs.trainable else "NULL",
            "bcoef_shift": f"{n}_bcoef_s" if bs.trainable else "NULL"})

    def emit(self, step: Step, em: Emitter) -> str:
        node = em.node(step.op)
        n = ident(node.name)
        kind = step.kind
        if kind.is_forward:
            masks = [b for b in step.writes if em.program.buffers[b].role == "mask"]
            return self.emit_forward(node, step, em, em.mask(masks[0] if masks else None))
        g = step.reads[0]
        oh, ow, cout = em.model.tensors[node.output].shape
        if kind is StepKind.REQUANT_GRAD:
            return (f"{em.exp(step.writes[0])} = tt_requant_grad({em.a16(g)}, {em.exp(g)}, {em.mask(step.mask)}, "
                    f"{oh * ow}, {cout}, {n}_mult, {n}_shift, {cout}, {step.attrs.bits}, {em.a16(step.writes[0])});")
        if kind is StepKind.INPUT_GRAD:
            return self.emit_input_grad(node, step, em)
        if kind in (StepKind.WEIGHT_UPDATE, StepKind.BIAS_UPDATE):
            spec = em.program.param(node.name, "weight" if kind is StepKind.WEIGHT_UPDATE else "bias")
            opt = em.program.options
            u = (f"{{ const tt_update_ctx u = {{{ROUNDING_C[opt.rounding]}, {opt.seed & 0xFFFFFFFF}u, "
                 f"tt_train_step_count, {spec.element_offset}u}};\n      ")
            gl = f"&{n}_g, &{n}_l, {em.a16(g)}, {em.exp(g)}"
            if kind is StepKind.BIAS_UPDATE:
                return u + f"tt_bias_update({gl}, {n}_b, &u); }}"
            xs = step.reads[1]
            kernel = self.weight_update_kernel(node)
            scratch = f", {em.scratch()}" if kernel == "tt_weight_update_pointwise" else ""
            return u + f"{kernel}({gl}, {em.a8(xs)}, {self.saved_channels(node, em, xs)}, {n}_w_lo, &u{scratch}); }}"
        return super().emit(step, em)

    # ---------------------------------------------------------------- hooks of each layer kind

    def weight_layout(self, node: WeightedNode, channels: int) -> tuple[int | None, int | None]:
        """(split axis, update axis) of a weight trained on `channels` (see ParamSpec)."""
        raise NotImplementedError

    def saved_shape(self, node: WeightedNode, x_shape: tuple[int, int, int], k: int) -> tuple[int, tuple[int, ...]]:
        """(the input's full extent along the saved axis, the shape of a k-channel copy)."""
        raise NotImplementedError

    def input_grad_fan(self, node: WeightedNode) -> int:
        """How many products of g * w one input gradient sums."""
        raise NotImplementedError

    def input_grad_in_place(self, node: WeightedNode, b: Builder) -> bool:
        return False

    def pad_rows(self, node: WeightedNode) -> int:
        return 0

    def weight_grad_macs(self, node: WeightedNode, model: Model, k: int) -> int:
        raise NotImplementedError

    def uses_weight_sums(self, node: WeightedNode) -> bool:
        """Whether its forward kernel takes the per-channel weight sums from flash when frozen."""
        return False

    def input_grad(self, node: WeightedNode, g: np.ndarray, ex: Executor) -> np.ndarray:
        raise NotImplementedError

    def weight_grad(self, node: WeightedNode, g: np.ndarray, x: np.ndarray, zx: int, k: int) -> np.ndarray:
        raise NotImplementedError

    def emit_forward(self, node: WeightedNode, step: Step, em: Emitter, mask: str) -> str:
        raise NotImplementedError

    def emit_input_grad(self, node: WeightedNode, step: Step, em: Emitter) -> str:
        raise NotImplementedError

    def geometry(self, node: WeightedNode, model: Model) -> dict[str, int]:
        """The fields of the layer's tt_geom (ops.base.geometry_fields)."""
        raise NotImplementedError

    def scratch_bytes(self, node: WeightedNode, model: Model, step: Step) -> int:
        """Bytes of scratch the kernel of a forward, input-gradient or weight-update step needs (ops.scratch:
        the twins of the firmware's tt_<kernel>_scratch_bytes)."""
        return 0

    def weight_update_kernel(self, node: WeightedNode) -> str:
        """The C function of its fused weight update."""
        raise NotImplementedError

    def saved_channels(self, node: WeightedNode, em: Emitter, xs: str) -> int:
        """Channels per position of the buffer a weight update reads (xs_c)."""
        return em.program.buffers[xs].shape[-1]

    def place(self, node: WeightedNode, b: Builder, infer: Step, train: Step) -> None:
        """A chance to run the forward step in place (the depthwise conv)."""


def input_grad_call(step: Step, em: Emitter, name: str, scratch: bool = True) -> str:
    """An input gradient kernel call of layer step.op: the int16 form (`name`16, normalizing, returns
    the exponent) or the int32 form (values keep the incoming exponent); with the step's scratch unless
    the kernel takes none."""
    n = ident(step.op)
    g, gx = step.reads[0], step.writes[0]
    tail = f", {em.scratch()}" if scratch else ""
    if step.attrs.bits is not None:
        return (f"{em.exp(gx)} = {name}16(&{n}_g, &{n}_l, {em.a16(g)}, {em.exp(g)}, {step.attrs.bits}, "
                f"{em.a16(gx)}{tail});")
    return f"{em.exp(gx)} = {em.exp(g)};\n    {name}(&{n}_g, &{n}_l, {em.a16(g)}, {em.a32(gx)}{tail});"
