"""C code generation: a compiled training program -> tt_model_gen.c for the firmware.

Frozen weights, biases and all compile-time integers go to flash as `const`;
the SRAM parts of trainable tensors are initialised data; activations and
gradients live in one static arena at the planned offsets; `tt_train_step` and
`tt_infer` are straight-line calls of the kernels in firmware/engine. With
-DTT_CHECKED (host builds) every step is bracketed by a check that it changed
only the arena bytes of the buffers it writes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .arena_plan import ArenaPlan
from .compiler import Compiled
from .ir import Add, Dense
from .training_program import FORWARD_KINDS, ParamSpec, Step

ROUNDING = {"stochastic": "TT_ROUND_STOCHASTIC", "nearest": "TT_ROUND_NEAREST", "truncate": "TT_ROUND_TRUNCATE"}
OP_KIND = {
    "pointwise": "TT_OP_POINTWISE", "depthwise": "TT_OP_DEPTHWISE", "conv": "TT_OP_CONV", "dense": "TT_OP_DENSE",
    "add": "TT_OP_ADD", "avgpool": "TT_OP_AVGPOOL", "save_channels": "TT_OP_SAVE", "loss_grad": "TT_OP_LOSS",
    "requant_grad": "TT_OP_REQUANT_GRAD", "input_grad": "TT_OP_INPUT_GRAD", "weight_update": "TT_OP_WEIGHT_UPDATE",
    "bias_update": "TT_OP_BIAS_UPDATE", "add_grad": "TT_OP_ADD_GRAD", "avgpool_grad": "TT_OP_AVGPOOL_GRAD",
    "grad_sum": "TT_OP_GRAD_SUM", "patch_stage": "TT_OP_PATCH_STAGE",
}


def ident(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", name)


def c_array(ctype: str, name: str, values: np.ndarray, const: bool = True, per_line: int = 24) -> str:
    flat = np.asarray(values).reshape(-1)
    if ctype == "uint32_t":
        items = [f"{int(v)}u" for v in flat]
    elif ctype == "int32_t":
        items = [str(int(v)) if int(v) != -(2**31) else "INT32_MIN" for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    body = ",\n    ".join(", ".join(items[i : i + per_line]) for i in range(0, len(items), per_line))
    qual = "static const " if const else "static "
    align = " __attribute__((aligned(4)))"
    return f"{qual}{ctype} {name}[{max(len(items), 1)}]{align} = {{\n    {body or '0'}\n}};\n"


class _Emitter:
    def __init__(self, c: Compiled):
        self.c = c
        self.p = c.program
        self.model = self.p.model
        self.ops = {op.name: op for op in self.model.ops}
        self.decls: list[str] = []
        self.pspec = {(s.op, s.kind): s for s in self.p.params}

    # ---------------------------------------------------------------- constants

    def weights(self) -> None:
        for op in self.model.weighted_ops:
            n = ident(op.name)
            c = self.p.consts[op.name]
            w = op.weight
            ws = self.pspec[(op.name, "weight")]
            if isinstance(op, Dense):
                w2 = w.reshape(op.out_channels, -1)
            else:
                w2 = w
            if not ws.trainable:
                self.decls.append(c_array("int8_t", f"{n}_w", w2))
            elif isinstance(op, Dense) or op.kind == "pointwise":
                flat = w2.reshape(op.out_channels, -1)
                self.decls.append(c_array("int8_t", f"{n}_w_lo", flat[:, : ws.channels], const=False))
                if ws.channels < flat.shape[1]:
                    self.decls.append(c_array("int8_t", f"{n}_w_hi", flat[:, ws.channels :]))
            elif op.kind == "depthwise":
                self.decls.append(c_array("int8_t", f"{n}_w_lo", w[: ws.channels], const=False))
                if ws.channels < op.out_channels:
                    self.decls.append(c_array("int8_t", f"{n}_w_hi", w[ws.channels :]))
            else:
                self.decls.append(c_array("int8_t", f"{n}_w_lo", w, const=False))
            bs = self.pspec[(op.name, "bias")]
            self.decls.append(c_array("int32_t", f"{n}_b", op.bias, const=not bs.trainable))
            self.decls.append(c_array("int32_t", f"{n}_mult", c.multiplier))
            self.decls.append(c_array("int32_t", f"{n}_shift", c.shift))
            if not ws.trainable and (isinstance(op, Dense) or op.kind == "pointwise"):
                self.decls.append(c_array("int32_t", f"{n}_wsum", w2.reshape(op.out_channels, -1).astype(np.int64).sum(axis=1)))
            if ws.trainable:
                self.decls.append(c_array("int32_t", f"{n}_wcoef_m", c.w_coef[0]))
                self.decls.append(c_array("int32_t", f"{n}_wcoef_s", c.w_coef[1]))
            if bs.trainable:
                self.decls.append(c_array("int32_t", f"{n}_bcoef_m", c.b_coef[0]))
                self.decls.append(c_array("int32_t", f"{n}_bcoef_s", c.b_coef[1]))
        backward = {s.op for s in self.p.train_steps if s.kind in ("add_grad", "avgpool_grad")}
        add_outputs = {s.op: s.attrs["outputs"] for s in self.p.train_steps if s.kind == "add_grad"}
        for op in self.model.ops:
            c = self.p.consts[op.name]
            if c.add is not None:
                a = c.add
                self.decls.append(
                    f"static const tt_add_params {ident(op.name)}_p = {{{a.left_shift}, {a.in1[0]}, {a.in1[1]}, {a.in1[2]}, "
                    f"{a.in2[0]}, {a.in2[1]}, {a.in2[2]}, {a.out[0]}, {a.out[1]}, {a.out[2]}}};\n")
                for j, (m, s) in enumerate(c.add_grad if op.name in backward else []):
                    if not add_outputs[op.name][j]:
                        continue
                    self.decls.append(f"static const int32_t {ident(op.name)}_gm{j} = {m}, {ident(op.name)}_gs{j} = {s};\n")
            if c.pool_grad is not None and op.name in backward:
                m, s = c.pool_grad
                self.decls.append(f"static const int32_t {ident(op.name)}_pm = {m}, {ident(op.name)}_ps = {s};\n")
        self.decls.append(c_array("uint32_t", "loss_table", self.p.loss_table))

    # ---------------------------------------------------------------- steps

    def ptr(self, plan: ArenaPlan, buf: str, ctype: str) -> str:
        return f"(({ctype} *)(tt_arena + {plan.offsets[buf]}u))"

    def w_parts(self, op) -> tuple[str, str, int]:
        n = ident(op.name)
        ws = self.pspec[(op.name, "weight")]
        if not ws.trainable:
            return "NULL", f"{n}_w", 0
        full = op.in_channels if (isinstance(op, Dense) or op.kind == "pointwise") else op.out_channels
        hi = f"{n}_w_hi" if ws.channels < full else "NULL"
        return f"{n}_w_lo", hi, ws.channels

    def weights_whole(self, op) -> str:
        n = ident(op.name)
        return f"{n}_w_lo" if self.pspec[(op.name, "weight")].trainable else f"{n}_w"

    def patch_stage(self, s: Step, plan: ArenaPlan) -> str:
        """The streaming stage (patch_stage.py): per strip, one kernel call per op on its new rows,
        then the windows drop the rows no later strip needs."""
        stage = s.attrs["stage"]
        scratch = plan.offsets[s.writes[1]]
        t = self.model.tensors
        lines = []
        done = {name: 0 for name in stage.windows}
        for strip in stage.strips:
            def row(tensor: str, r: int, strip=strip) -> str:
                if tensor not in stage.windows:
                    return f"((int8_t *)(tt_arena + {plan.offsets[tensor] + r * stage.row_bytes[tensor]}u))"
                off = scratch + stage.windows[tensor][0] + (r - strip.base[tensor]) * stage.row_bytes[tensor]
                return f"((int8_t *)(tt_arena + {off}u))"

            def rows_held(tensor: str) -> int:
                return done[tensor] if tensor in done else t[tensor].shape[0]

            lines.append(f"/* {strip.ops[0].op}: rows {strip.rows[0]}..{strip.rows[1] - 1} */")
            for so in strip.ops:
                a, b = so.out_rows
                if so.op == stage.input:  # the next rows of the sample, straight from the serial line
                    lines.append(f"if ((rc = tt_input_read({row(stage.input, a)}, {(b - a) * stage.row_bytes[stage.input]}u)) != 0) "
                                 "return rc;")
                    done[stage.input] = b
                    continue
                op = self.ops[so.op]
                n = ident(op.name)
                c = self.p.consts[op.name]
                _, ow, cout = t[op.output].shape
                if isinstance(op, Add):
                    lines.append(f"tt_add({row(op.inputs[0], a)}, {row(op.inputs[1], a)}, {row(op.output, a)}, "
                                 f"{(b - a) * ow * cout}, &{n}_p, NULL);")
                elif op.kind == "pointwise":
                    _, w, cin = t[op.input].shape
                    lines.append(f"tt_conv_pointwise({row(op.input, a)}, {(b - a) * w}, {cin}, {row(op.output, a)}, "
                                 f"{cout}, NULL, {n}_w, 0, {n}_wsum, {n}_b, {n}_mult, {n}_shift, {c.zx}, {c.zy}, NULL);")
                else:
                    _, w, cin = t[op.input].shape
                    first = a * op.stride - op.pad
                    start, pad_top = (first, 0) if first >= 0 else (0, -first)
                    x, h = row(op.input, start), rows_held(op.input) - start
                    q = f"{n}_b, {n}_mult, {n}_shift, {c.zx}, {c.zy}, NULL"
                    if op.kind == "depthwise":
                        lines.append(f"tt_conv_depthwise({x}, {h}, {w}, {cin}, {row(op.output, a)}, {b - a}, {ow}, "
                                     f"{op.kernel[0]}, {op.stride}, {pad_top}, {op.pad}, NULL, {n}_w, 0, {q});")
                    else:
                        lines.append(f"tt_conv_generic({x}, {h}, {w}, {cin}, {row(op.output, a)}, {b - a}, {ow}, "
                                     f"{cout}, {op.kernel[0]}, {op.stride}, {pad_top}, {op.pad}, {op.groups}, {n}_w, {q});")
                if op.output in done:
                    done[op.output] = b
            for tensor, drop, keep in strip.shifts:
                if keep:
                    off = scratch + stage.windows[tensor][0]
                    rb = stage.row_bytes[tensor]
                    lines.append(f"memmove(tt_arena + {off}u, tt_arena + {off + drop * rb}u, {keep * rb}u);")
        if stage.stream_input:  # the payload's CRC: nothing has changed yet if the sample was corrupted
            lines.append("if ((rc = tt_input_end()) != 0) return rc;")
        return "\n    ".join(lines)

    def forward(self, s: Step, plan: ArenaPlan) -> str:
        if s.kind == "patch_stage":
            return self.patch_stage(s, plan)
        A8 = lambda b: self.ptr(plan, b, "int8_t")  # noqa: E731
        masks = [b for b in s.writes if self.p.buffers[b].role == "mask"]
        mask = self.ptr(plan, masks[0], "uint8_t") if masks else "NULL"
        if s.kind == "save_channels":
            src = self.model.tensors[s.reads[0]]
            dst = self.p.buffers[s.writes[0]]
            if len(dst.shape) == 1:
                return f"tt_save_channels({A8(s.reads[0])}, 1, {src.size}, {dst.shape[0]}, {A8(s.writes[0])});"
            h, w, ch = src.shape
            return f"tt_save_channels({A8(s.reads[0])}, {h * w}, {ch}, {dst.shape[2]}, {A8(s.writes[0])});"
        op = self.ops[s.op]
        n = ident(op.name)
        c = self.p.consts[op.name]
        t = self.model.tensors
        if s.kind == "add":
            return (f"tt_add({A8(op.inputs[0])}, {A8(op.inputs[1])}, {A8(op.output)}, {t[op.output].size}, "
                    f"&{n}_p, {mask});")
        if s.kind == "avgpool":
            h, w, ch = t[op.input].shape
            return (f"tt_avgpool({A8(op.input)}, {h * w}, {ch}, {A8(op.output)}, {int(c.multiplier[0])}, "
                    f"{int(c.shift[0])}, {c.zx}, {c.zy}, {mask});")
        q = f"{n}_b, {n}_mult, {n}_shift, {c.zx}, {c.zy}, {mask}"
        wsum = f"{n}_wsum" if not self.pspec[(op.name, "weight")].trainable else "NULL"
        if isinstance(op, Dense):
            lo, hi, k = self.w_parts(op)
            return (f"tt_conv_pointwise({A8(op.input)}, 1, {op.in_channels}, {A8(op.output)}, {op.out_channels}, "
                    f"{lo}, {hi}, {k}, {wsum}, {q});")
        h, w, cin = t[op.input].shape
        oh, ow, cout = t[op.output].shape
        if op.kind == "pointwise":
            lo, hi, k = self.w_parts(op)
            return (f"tt_conv_pointwise({A8(op.input)}, {h * w}, {cin}, {A8(op.output)}, {cout}, {lo}, {hi}, {k}, "
                    f"{wsum}, {q});")
        if op.kind == "depthwise" and "ring" in s.attrs and plan.offsets[op.input] == plan.offsets[op.output]:
            lo, hi, k = self.w_parts(op)
            return (f"tt_conv_depthwise_inplace({A8(op.input)}, {h}, {w}, {cin}, {op.kernel[0]}, {op.pad}, {lo}, {hi}, "
                    f"{k}, {q}, {A8(s.attrs['ring'])});")
        if op.kind == "depthwise":
            lo, hi, k = self.w_parts(op)
            return (f"tt_conv_depthwise({A8(op.input)}, {h}, {w}, {cin}, {A8(op.output)}, {oh}, {ow}, {op.kernel[0]}, "
                    f"{op.stride}, {op.pad}, {op.pad}, {lo}, {hi}, {k}, {q});")
        return (f"tt_conv_generic({A8(op.input)}, {h}, {w}, {cin}, {A8(op.output)}, {oh}, {ow}, {cout}, {op.kernel[0]}, "
                f"{op.stride}, {op.pad}, {op.pad}, {op.groups}, {self.weights_whole(op)}, {q});")

    def backward(self, s: Step, plan: ArenaPlan) -> str:
        A8 = lambda b: self.ptr(plan, b, "int8_t")  # noqa: E731
        A16 = lambda b: self.ptr(plan, b, "int16_t")  # noqa: E731
        A32 = lambda b: self.ptr(plan, b, "int32_t")  # noqa: E731
        AM = lambda b: self.ptr(plan, b, "uint8_t") if b else "NULL"  # noqa: E731
        E = lambda b: f"e_{ident(b)}"  # noqa: E731
        t = self.model.tensors
        opt = self.p.options
        if s.kind == "loss_grad":
            m, sh = self.p.loss_scale_mult
            return (f"{E(s.writes[0])} = tt_loss_grad({A8(s.reads[0])}, {self.model.num_classes}, label, loss_table, "
                    f"lr_scale, {m}, {sh}, {s.attrs['bits']}, {A16(s.writes[0])});")
        if s.kind == "grad_sum":
            n = self.p.buffers[s.writes[0]].elements
            parts = ", ".join(f"(const void *)(tt_arena + {plan.offsets[b]}u)" for b in s.reads)
            is32 = ", ".join("1" if self.p.buffers[b].dtype == "int32" else "0" for b in s.reads)
            exps = ", ".join(E(b) for b in s.reads)
            k = len(s.reads)
            return (f"{{ const void *const parts[{k}] = {{{parts}}}; static const uint8_t is32[{k}] = {{{is32}}}; "
                    f"const int32_t exps[{k}] = {{{exps}}};\n      {E(s.writes[0])} = tt_grad_sum(parts, is32, exps, {k}, {n}, "
                    f"{s.attrs['bits']}, {A16(s.writes[0])}); }}")
        op = self.ops[s.op]
        n = ident(op.name)
        c = self.p.consts[op.name]
        if s.kind == "requant_grad":
            oh, ow, ch = t[op.output].shape
            return (f"{E(s.writes[0])} = tt_requant_grad({A16(s.reads[0])}, {E(s.reads[0])}, {AM(s.attrs['mask'])}, "
                    f"{oh * ow}, {ch}, {n}_mult, {n}_shift, {ch}, {s.attrs['bits']}, {A16(s.writes[0])});")
        if s.kind == "add_grad":
            h, w, ch = t[op.output].shape
            lines = []
            outs = [(j, o) for j, o in enumerate(s.attrs["outputs"]) if o]
            # The output that may overwrite the incoming gradient is computed last.
            for j, o in sorted(outs, key=lambda jo: jo[1] == s.writes[0]):
                lines.append(f"{E(o)} = tt_requant_grad({A16(s.reads[0])}, {E(s.reads[0])}, {AM(s.attrs['mask'])}, "
                             f"{h * w}, {ch}, &{n}_gm{j}, &{n}_gs{j}, 1, {s.attrs['bits']}, {A16(o)});")
            return "\n    ".join(lines)
        if s.kind == "avgpool_grad":
            h, w, ch = t[op.input].shape
            return (f"{E(s.writes[0])} = tt_requant_grad({A16(s.reads[0])}, {E(s.reads[0])}, {AM(s.attrs['mask'])}, 1, "
                    f"{ch}, &{n}_pm, &{n}_ps, 1, {s.attrs['bits']}, {A16(s.writes[0])});\n    "
                    f"tt_broadcast_rows({A16(s.writes[0])}, {h * w}, {ch}, {A16(s.writes[0])});")
        g = s.reads[0]
        oh, ow, cout = t[op.output].shape
        if s.kind == "input_grad":
            to16 = "bits" in s.attrs
            out = A16(s.writes[0]) if to16 else A32(s.writes[0])
            if to16:
                head, sfx, tail = f"{E(s.writes[0])} = ", "16", f", {s.attrs['bits']}, {out});"
                ge = f"{A16(g)}, {E(g)}"
            else:
                head, sfx, tail = f"{E(s.writes[0])} = {E(g)};\n    ", "", f", {out});"
                ge = A16(g)
            if isinstance(op, Dense):
                lo, hi, k = self.w_parts(op)
                return head + (f"tt_input_grad_pointwise{sfx}({ge}, 1, {op.out_channels}, {lo}, {hi}, {k}, "
                               f"{op.in_channels}{tail}")
            h, w, cin = t[op.input].shape
            if op.kind == "pointwise":
                lo, hi, k = self.w_parts(op)
                return head + f"tt_input_grad_pointwise{sfx}({ge}, {oh * ow}, {cout}, {lo}, {hi}, {k}, {cin}{tail}"
            if op.kind == "depthwise" and "ring" in s.attrs:  # stride 1: gx overwrites g (same slot)
                lo, hi, k = self.w_parts(op)
                return head + (f"tt_input_grad_depthwise16_inplace({A16(g)}, {E(g)}, {h}, {w}, {cout}, {op.kernel[0]}, "
                               f"{op.pad}, {lo}, {hi}, {k}, {s.attrs['bits']}, {A16(s.attrs['ring'])});")
            if op.kind == "depthwise":
                lo, hi, k = self.w_parts(op)
                return head + (f"tt_input_grad_depthwise{sfx}({ge}, {oh}, {ow}, {cout}, {op.kernel[0]}, {op.stride}, "
                               f"{op.pad}, {h}, {w}, {lo}, {hi}, {k}{tail}")
            return head + (f"tt_input_grad_generic{sfx}({ge}, {oh}, {ow}, {cout}, {op.kernel[0]}, {op.stride}, {op.pad}, "
                           f"{op.groups}, {self.weights_whole(op)}, {h}, {w}, {cin}{tail}")
        if s.kind in ("weight_update", "bias_update"):
            spec: ParamSpec = self.pspec[(op.name, "weight" if s.kind == "weight_update" else "bias")]
            u = (f"{{ const tt_update_ctx u = {{{ROUNDING[opt.rounding]}, {opt.seed & 0xFFFFFFFF}u, "
                 f"tt_train_step_count, {spec.element_offset}u}};\n      ")
            if s.kind == "bias_update":
                return u + (f"tt_bias_update({A16(g)}, {E(g)}, {oh * ow}, {cout}, {n}_b, {n}_bcoef_m, {n}_bcoef_s, &u); }}")
            xs = s.reads[1]
            xs_c = self.p.buffers[xs].shape[-1]
            k = spec.channels
            tail = f"{n}_wcoef_m, {n}_wcoef_s, &u); }}"
            if isinstance(op, Dense):
                xs_c = self.p.buffers[xs].elements
                return u + (f"tt_weight_update_pointwise({A16(g)}, {E(g)}, 1, {cout}, {A8(xs)}, {xs_c}, {k}, {c.zx}, "
                            f"{n}_w_lo, {tail}")
            h, w, _ = t[op.input].shape
            if op.kind == "pointwise":
                return u + (f"tt_weight_update_pointwise({A16(g)}, {E(g)}, {oh * ow}, {cout}, {A8(xs)}, {xs_c}, {k}, "
                            f"{c.zx}, {n}_w_lo, {tail}")
            if op.kind == "depthwise":
                return u + (f"tt_weight_update_depthwise({A16(g)}, {E(g)}, {oh}, {ow}, {cout}, {A8(xs)}, {h}, {w}, "
                            f"{xs_c}, {k}, {op.kernel[0]}, {op.stride}, {op.pad}, {c.zx}, {n}_w_lo, {tail}")
            return u + (f"tt_weight_update_generic({A16(g)}, {E(g)}, {oh}, {ow}, {cout}, {A8(xs)}, {h}, {w}, {xs_c}, "
                        f"{k}, {op.kernel[0]}, {op.stride}, {op.pad}, {c.zx}, {n}_w_lo, {op.in_channels}, {tail}")
        raise ValueError(f"no C kernel for step {s.kind}")

    # ---------------------------------------------------------------- program

    def op_kind(self, s: Step) -> str:
        if s.kind in ("conv", "dense"):
            op = self.ops[s.op]
            return OP_KIND["dense" if isinstance(op, Dense) else op.kind]
        return OP_KIND[s.kind]

    def function(self, name: str, steps: list[Step], plan: ArenaPlan, train: bool) -> str:
        exps = sorted({b for s in steps for b in s.writes
                       if self.p.buffers[b].role in ("grad", "grad32") and b != s.attrs.get("ring")})
        body = []
        if exps:
            body.append("    int32_t " + ", ".join(f"e_{ident(b)} = 0" for b in exps) + ";")
        counts = "tt_train_op_counts" if train else "tt_infer_op_counts"
        streamed = any(s.kind == "patch_stage" and s.attrs["stage"].stream_input for s in steps)
        if streamed:
            body.append("    int rc;")
        # Counts exclude the time spent receiving a streamed sample (tt_input_counter_total).
        body.append("    uint64_t t0 = board_counter_read() - tt_input_counter_total, t1;")
        for i, s in enumerate(steps):
            code = self.forward(s, plan) if s.kind in FORWARD_KINDS else \
                self.backward(s, plan)
            body.append(f"    TT_CHECK_BEGIN({i});")
            body.append(f"    {code}")
            body.append(f"    TT_CHECK_END({'train' if train else 'infer'}, {i});")
            body.append(f"    t1 = board_counter_read() - tt_input_counter_total; {counts}[{i}] = (uint32_t)(t1 - t0); t0 = t1;")
            if s.kind in ("conv", "dense") and s.writes[0] == self.model.output:
                body.append(f"    memcpy(logits, tt_arena + {plan.offsets[self.model.output]}u, {self.model.num_classes});")
        if train:
            body.append("    tt_train_step_count++;")
        body.append("    return 0;")
        args = "int32_t label, uint32_t lr_scale, int8_t *logits" if train else "int8_t *logits"
        unused = "    (void)label; (void)lr_scale;\n" if train and not any(s.kind == "loss_grad" for s in steps) else ""
        return f"int {name}({args})\n{{\n{unused}" + "\n".join(body) + "\n}\n"

    def op_table(self, name: str, steps: list[Step]) -> str:
        rows = []
        for s in steps:
            label = f"{s.op or ''} {s.kind}".strip()
            rows.append(f'    {{"{label}", {self.op_kind(s)}, {s.macs}u}},')
        return f"static const tt_op_info {name}[{len(steps)}] = {{\n" + "\n".join(rows) + "\n};\n"

    def check_tables(self, which: str, steps: list[Step], plan: ArenaPlan) -> str:
        """Per step: the arena ranges it may write (its outputs)."""
        rows, index = [], []
        for s in steps:
            first = len(rows)
            for b in s.writes:
                rows.append(f"{{{plan.offsets[b]}u, {plan.sizes[b]}u}}")
            index.append(f"{{{first}u, {len(rows) - first}u}}")
        return (f"static const tt_check_range {which}_writes[{max(len(rows), 1)}] = {{{', '.join(rows) or '{0u, 0u}'}}};\n"
                f"static const tt_check_step {which}_steps[{len(steps)}] = {{{', '.join(index)}}};\n")

    def source(self) -> str:
        c, p, m = self.c, self.p, self.model
        self.weights()
        params = []
        for s in p.trainable_params:
            n = ident(s.op)
            sym = f"{n}_w_lo" if s.kind == "weight" else f"{n}_b"
            params.append(f"    {{{sym}, {s.sram_bytes}u}},")
        h, w, ch = m.input_spec.shape
        hash_bytes = ", ".join(f"0x{b:02x}" for b in bytes.fromhex(c.model_hash))
        n_train, n_infer = len(p.train_steps), len(p.infer_steps)
        streamed = p.buffers[m.input].role == "stream"
        return "\n".join([
            f"/* Generated at build time by tinytrain codegen_c from model {m.name} ({c.model_hash[:12]}), "
            f"scheme {p.scheme.name}. Do not edit. */",
            "#include <stdint.h>\n#include <stddef.h>\n#include <string.h>\n",
            '#include "boards/board.h"\n#include "engine/tt_kernels.h"\n#include "engine/tt_model.h"\n'
            '#include "engine/tt_check.h"\n',
            f"uint8_t tt_arena[{c.arena_bytes}u] __attribute__((aligned(8)));",
            "uint32_t tt_train_step_count;",
            f"int8_t tt_logits[{m.num_classes}u];",
            f"uint32_t tt_train_op_counts[{n_train}];",
            f"uint32_t tt_infer_op_counts[{n_infer}];\n",
            "".join(self.decls),
            f"static const tt_param_region params[{max(len(params), 1)}] = {{\n" + "\n".join(params) + "\n};\n",
            self.op_table("train_ops", p.train_steps),
            self.op_table("infer_ops", p.infer_steps),
            "const tt_model_desc tt_model = {",
            f'    "{m.name}", "{p.scheme.name}", {{{hash_bytes}}},',
            f"    {m.num_classes}u, {h}u, {w}u, {ch}u, {m.input_spec.size}u,",
            f"    {int(streamed)}u, {c.train_plan.offsets.get(m.input, 0)}u, {c.infer_plan.offsets.get(m.input, 0)}u, "
            f"{c.arena_bytes}u,",
            f"    {p.trainable_sram_bytes}u, {c.sram.total}u,",
            f"    {len(params)}u, params, {n_train}u, {n_infer}u, train_ops, infer_ops,",
            "};\n",
            "#ifdef TT_CHECKED",
            self.check_tables("train", p.train_steps, c.train_plan),
            self.check_tables("infer", p.infer_steps, c.infer_plan),
            "#endif\n",
            self.function("tt_train_step", p.train_steps, c.train_plan, True),
            self.function("tt_infer", p.infer_steps, c.infer_plan, False),
        ])


def generate(compiled: Compiled, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "tt_model_gen.c"
    text = _Emitter(compiled).source()
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path
