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

from tinytrain import ops
from tinytrain.compile.arena_plan import ArenaPlan
from tinytrain.compile.compiler import Compiled
from tinytrain.compile.staging import kernel_scratch_bytes, kernel_scratch_offset
from tinytrain.ir.graph import Node
from tinytrain.ir.program import CompileError, Step, StepKind
from tinytrain.numerics.sensor_input import SensorScaling
from tinytrain.ops.base import ident

SENSOR_MAX_CHANNELS = 16  # TT_SENSOR_MAX_CHANNELS of firmware/engine/sensor_input.h


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


def step_kind_enum() -> str:
    """The firmware's names of the step kinds, numbered as the host decodes them (StepKind order)."""
    names = ", ".join(f"{k.c_name} = {k.code}" for k in StepKind)
    return f"enum tt_step_kind {{ {names} }};\n"


class _Emitter:
    """The code generator's state; the op rules emit through it (tinytrain.ops.base.Emitter)."""

    def __init__(self, c: Compiled):
        self.c = c
        self.program = c.program
        self.model = c.program.model
        self.nodes = {op.name: op for op in self.model.ops}
        self.decls: list[str] = []
        self.plan: ArenaPlan = c.train_plan
        self.kinds = {(s.op, s.kind) for s in self.program.train_steps}

    # ---------------------------------------------------------------- for the rules

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def offset(self, buf: str) -> int:
        return self.plan.offsets[buf]

    def _ptr(self, buf: str, ctype: str) -> str:
        return f"(({ctype} *)(tt_arena + {self.plan.offsets[buf]}u))"

    def a8(self, buf: str) -> str:
        return self._ptr(buf, "int8_t")

    def a16(self, buf: str) -> str:
        return self._ptr(buf, "int16_t")

    def a32(self, buf: str) -> str:
        return self._ptr(buf, "int32_t")

    def mask(self, buf: str | None) -> str:
        return self._ptr(buf, "uint8_t") if buf else "NULL"

    def scratch(self) -> str:
        """The kernel scratch of the step being emitted: its buffer of role `scratch` (a streaming stage:
        the part of its buffer after the row windows), else NULL (the kernel needs none)."""
        s = self.step
        if s.kind is StepKind.PATCH_STAGE:
            if not kernel_scratch_bytes(self.model, s.attrs.stage):
                return "NULL"
            return f"((void *)(tt_arena + {self.plan.offsets[s.writes[1]] + kernel_scratch_offset(s.attrs.stage)}u))"
        bufs = [b for b in s.writes if self.program.buffers[b].role == "scratch"]
        return f"((void *)(tt_arena + {self.plan.offsets[bufs[0]]}u))" if bufs else "NULL"

    def exp(self, buf: str) -> str:
        return f"e_{ident(buf)}"

    def decl(self, text: str) -> None:
        self.decls.append(text)

    def array(self, ctype: str, name: str, values: np.ndarray, const: bool = True) -> None:
        self.decls.append(c_array(ctype, name, values, const))

    def has_step(self, op: str, kind: StepKind) -> bool:
        return (op, kind) in self.kinds

    def weight_parts(self, node: Node) -> tuple[str, str, int]:
        """(SRAM part, flash part, trained channels) of a layer's weights, as the kernels take them."""
        n = ident(node.name)
        ws = self.program.param(node.name, "weight")
        if not ws.trainable:
            return "NULL", f"{n}_w", 0
        return f"{n}_w_lo", f"{n}_w_hi" if ws.frozen_index is not None else "NULL", ws.channels

    def weights_whole(self, node: Node) -> str:
        n = ident(node.name)
        return f"{n}_w_lo" if self.program.param(node.name, "weight").trainable else f"{n}_w"

    # ---------------------------------------------------------------- constants

    def constants(self) -> None:
        for op in self.model.ops:
            ops.rule_for(op).declare(op, self)
        self.array("uint32_t", "loss_table", self.program.loss_table)

    # ---------------------------------------------------------------- program

    def function(self, name: str, steps: list[Step], plan: ArenaPlan, train: bool) -> str:
        self.plan = plan
        exps = sorted({b for s in steps for b in s.writes
                       if self.program.buffers[b].role in ("grad", "grad32") and b != getattr(s.attrs, "ring", None)})
        body = []
        if exps:
            body.append("    int32_t " + ", ".join(f"e_{ident(b)} = 0" for b in exps) + ";")
        counts = "tt_train_op_counts" if train else "tt_infer_op_counts"
        streamed = any(s.kind is StepKind.PATCH_STAGE and s.attrs.stage.stream_input for s in steps)
        if streamed:
            body.append("    int rc;")
        # Counts exclude the time spent receiving a streamed sample (tt_input_counter_total).
        body.append("    uint64_t t0 = board_counter_read() - tt_input_counter_total, t1;")
        for i, s in enumerate(steps):
            self.step = s
            code = s.rule.emit(s, self)
            body.append(f"    TT_CHECK_BEGIN({i});")
            body.append(f"    {code}")
            body.append(f"    TT_CHECK_END({'train' if train else 'infer'}, {i});")
            body.append(f"    t1 = board_counter_read() - tt_input_counter_total; {counts}[{i}] = (uint32_t)(t1 - t0); t0 = t1;")
            if s.kind.is_forward and self.model.output in s.writes:
                body.append(f"    memcpy(logits, tt_arena + {plan.offsets[self.model.output]}u, {self.model.num_classes});")
        if train:
            body.append("    tt_train_step_count++;")
        body.append("    return 0;")
        args = "int32_t label, uint32_t lr_scale, int8_t *logits" if train else "int8_t *logits"
        unused = "    (void)label; (void)lr_scale;\n" if train and not any(s.kind is StepKind.LOSS_GRAD for s in steps) else ""
        return f"int {name}({args})\n{{\n{unused}" + "\n".join(body) + "\n}\n"

    def op_table(self, name: str, steps: list[Step]) -> str:
        rows = []
        for s in steps:
            label = f"{s.op or ''} {s.kind}".strip()
            rows.append(f'    {{"{label}", {s.kind.c_name}, {s.macs}u}},')
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
        c, p, m = self.c, self.program, self.model
        self.constants()
        params = []
        for s in p.trainable_params:
            n = ident(s.op)
            sym = f"{n}_w_lo" if s.kind == "weight" else f"{n}_b"
            params.append(f"    {{{sym}, {s.sram_bytes}u}},")
        h, w, ch = m.input_spec.shape
        hash_bytes = ", ".join(f"0x{b:02x}" for b in bytes.fromhex(c.model_hash))
        program_hash = ", ".join(f"0x{b:02x}" for b in bytes.fromhex(c.program_hash))
        state_hash = ", ".join(f"0x{b:02x}" for b in bytes.fromhex(c.state_hash))
        n_train, n_infer = len(p.train_steps), len(p.infer_steps)
        streamed = p.buffers[m.input].role == "stream"
        return "\n".join([
            f"/* Generated at build time by tinytrain.compile.codegen from model {m.name} ({c.model_hash[:12]}), "
            f"scheme {p.scheme.name}. Do not edit. */",
            "#include <stdint.h>\n#include <stddef.h>\n#include <string.h>\n",
            step_kind_enum(),
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
            f"    {{{program_hash}}},",
            f"    {{{state_hash}}},",
            f"    {m.num_classes}u, {h}u, {w}u, {ch}u, {m.input_spec.size}u,",
            f"    {int(streamed)}u, {c.train_plan.offsets.get(m.input, 0)}u, {c.infer_plan.offsets.get(m.input, 0)}u, "
            f"{c.arena_bytes}u,",
            f"    {p.trainable_sram_bytes}u, {c.sram.total}u,",
            f"    {len(params)}u, params, {n_train}u, {n_infer}u, train_ops, infer_ops,",
            "};\n",
            sensor_input_table(m),
            "#ifdef TT_CHECKED",
            self.check_tables("train", p.train_steps, c.train_plan),
            self.check_tables("infer", p.infer_steps, c.infer_plan),
            "#endif\n",
            self.function("tt_train_step", p.train_steps, c.train_plan, True),
            self.function("tt_infer", p.infer_steps, c.infer_plan, False),
        ])


def sensor_input_table(model) -> str:
    """tt_sensor (engine/sensor_input.h): the model's scaling of raw int16 sensor counts, or channels 0."""
    entry = model.metadata.get("sensor_to_input")
    head = '#include "engine/sensor_input.h"\n'
    if entry is None:
        return head + "const tt_sensor_input tt_sensor = {0u, 0, {0}, {0}, {0}};\n"
    s = SensorScaling.from_json(entry)
    if len(s.channels) > SENSOR_MAX_CHANNELS or len(s.channels) != model.input_spec.shape[2]:
        raise CompileError(f"model {model.name} scales {len(s.channels)} sensor channels; the firmware takes up to "
                           f"{SENSOR_MAX_CHANNELS}, as many as the input's {model.input_spec.shape[2]}.")
    return head + (f"const tt_sensor_input tt_sensor = {{{len(s.channels)}u, {model.input_spec.qparams.zero_point}, "
                   f"{{{', '.join(map(str, s.center))}}}, {{{', '.join(map(str, s.multiplier))}}}, "
                   f"{{{', '.join(f'{v}u' for v in s.shift)}}}}};\n")


def generate(compiled: Compiled, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "tt_model_gen.c"
    text = _Emitter(compiled).source()
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path
