#!/usr/bin/env python3
"""The acceptance table of "TFLite in, TFLite out" (issue 13): for each test model, its ops, its output
bytes against TFLite Micro, fine-tuning on the emulated board against the NumPy reference, and the
exported file's predictions against the board's.

    .venv/bin/python tools/tflite_table.py                      # every model, QEMU (qemu_m7 builds)
    .venv/bin/python tools/tflite_table.py --models keras_kws   # some of them
    .venv/bin/python tools/tflite_table.py --target host        # the host build instead (no measurements)

Models: the suite's test models (tools/make_tflite_models.py, cached in build/tflite-models) and the
shipped IMU model (models/watch-imu: model.ttm, imported from its model.tflite, with its scheme.json).
Per model:

1. **ops**: the TFLite operators of the file;
2. **TFLM parity**: --samples random inputs (int8 over the whole range; a float-input model gets the
   values they stand for) through tinytrain's reference (the imported model; a final SOFTMAX and a float
   output's DEQUANTIZE as the host computes them) and through TFLite Micro on the file: differing bytes
   of the output tensor, and of every operator's output;
3. **board**: the firmware built for qemu_m7 with the model (a new head where the case says so) and a
   scheme; --steps training steps on random samples, each step's logits compared with the NumPy
   reference, then the whole learned state; measured peak SRAM (STATS: .data + .bss + stack high-water
   mark), flash (ELF), instructions per training step and per inference (SysTick under -icount);
4. **export**: `tinytrain pull --tflite` from the board (and `tinytrain export` from its npz: the same
   bytes), then --samples random samples through the board (INFER) and through TFLite Micro on the
   tuned file: predictions (argmax of the logits) identical, logits and output bytes differing; LiteRT's
   reference kernels on the tuned file too.

Writes OUT.json and OUT.md (default build/tflite-table/table) and prints the markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host" / "tests"))  # the suite's model cache and oracles

import tflm_oracle as O  # noqa: E402
from tflite_models import EDGE_MODELS, KERAS_MODELS, maker  # noqa: E402

from tinytrain.board.builds import build_firmware, build_host_firmware  # noqa: E402
from tinytrain.board.elf_memory import static_memory  # noqa: E402
from tinytrain.board.emulator import QemuBoard  # noqa: E402
from tinytrain.board.engine_client import EngineClient  # noqa: E402
from tinytrain.board.host_board import HostBoard  # noqa: E402
from tinytrain.board.link import Link  # noqa: E402
from tinytrain.commands.cli import main as cli  # noqa: E402
from tinytrain.compile.autodiff import compile_program  # noqa: E402
from tinytrain.compile.build_config import BuildConfig  # noqa: E402
from tinytrain.compile.scheme import builtin  # noqa: E402
from tinytrain.model.tflite import import_tflite, outputs_from_logits  # noqa: E402
from tinytrain.model.tflite_reader import read_tflite  # noqa: E402
from tinytrain.numerics import tflite_kernels as TK  # noqa: E402
from tinytrain.numerics.sensor_input import SensorScaling, sensor_to_int8  # noqa: E402
from tinytrain.reference.executor import NumpyBackend  # noqa: E402


@dataclass
class Case:
    name: str
    scheme: str
    classes: int | None = None  # a new head of this many classes
    budget: str = ""
    lr: float = 0.02

    @property
    def base(self) -> Path:
        if self.name == "watch-imu":
            return ROOT / "models" / "watch-imu" / "model.tflite"
        return maker.model_path(self.name)

    @property
    def build_model(self) -> Path:
        return ROOT / "models" / "watch-imu" / "model.ttm" if self.name == "watch-imu" else self.base


CASES = {
    "edge_odd_sizes": Case("edge_odd_sizes", "full", 3),
    "edge_mean_windows": Case("edge_mean_windows", "full", 4),
    "edge_stride2_pad": Case("edge_stride2_pad", "full"),
    "keras_mobilenet": Case("keras_mobilenet", "full", 5, budget="256KB"),
    "keras_kws": Case("keras_kws", "full", 8),
    "keras_sensor": Case("keras_sensor", "full", 4),
    "keras_kws_float_io": Case("keras_kws_float_io", "last:4", 20),
    "watch-imu": Case("watch-imu", str(ROOT / "models" / "watch-imu" / "scheme.json")),
}


def file_input(model, tm, x: np.ndarray) -> np.ndarray:
    """What TFLite Micro is fed for our int8 input x (a float-input file gets the values x stands for)."""
    meta = model.metadata["tflite"]["input"]
    if meta["dtype"] == "float32":
        q = meta["quantize"]
        return TK.dequantize(x, q["scale"], q["zero_point"]).reshape(tm.input.shape).astype(np.float32)
    return x.reshape(tm.input.shape)


def host_output(model, logits: np.ndarray) -> np.ndarray:
    """The file's output tensor as the host computes it from the logits (SOFTMAX, DEQUANTIZE)."""
    out = outputs_from_logits(model, logits)
    return np.asarray(out.get("output_float", out["output"]))


def differing(a: np.ndarray, b: np.ndarray) -> int:
    a, b = np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1)
    if a.dtype != b.dtype or a.size != b.size:
        return max(a.nbytes, b.nbytes)
    return int(np.count_nonzero(a.view(np.uint8) != b.view(np.uint8)))


def parity(case: Case, samples: int, rng: np.random.Generator) -> dict:
    """Output (and every operator's output) bytes of the reference vs TFLite Micro on the base file."""
    model = import_tflite(case.base)
    tm = read_tflite(case.base)
    be = NumpyBackend(compile_program(model, builtin("classifier", len(model.weighted_ops))), use_arena=False)
    tensors = model.metadata["tflite"]["tensors"]
    out_bytes = out_diff = all_bytes = all_diff = 0
    for _ in range(samples):
        x = rng.integers(-128, 128, size=model.input_spec.shape).astype(np.int8)
        ref = O.run_tflm(case.base, file_input(model, tm, x))
        ours = host_output(model, be.infer(x))
        theirs = np.asarray(ref[tm.outputs[0]])
        out_bytes += ours.nbytes
        out_diff += differing(ours, theirs)
        for op in model.ops:
            if op.output in tensors:
                a = np.asarray(be.mem[op.output])
                all_bytes += a.nbytes
                all_diff += differing(a, np.asarray(ref[tensors[op.output]]))
    return {"output_bytes": out_bytes, "output_bytes_differing": out_diff, "activation_bytes": all_bytes,
            "activation_bytes_differing": all_diff}


@contextlib.contextmanager
def open_board(case: Case, target: str, cfg: BuildConfig):
    """(url, build folder, elf or None) of a running board built with cfg."""
    if target == "host":
        exe = build_host_firmware(cfg)
        with HostBoard(exe) as host:
            yield host.url, exe.parent, None
        report = host.sanitizer_report()
        if report:
            raise RuntimeError(report)
        return
    options = {"TINYTRAIN_MODEL": cfg.model, "TINYTRAIN_SCHEME": cfg.scheme, "TINYTRAIN_LR": str(cfg.lr),
               "TINYTRAIN_CLASSES": str(cfg.classes or ""), "TINYTRAIN_NEW_HEAD": "1" if cfg.new_head else "0",
               "TINYTRAIN_BUDGET": cfg.budget or "", "TINYTRAIN_RESOLUTION": "", "TINYTRAIN_SOURCE": ""}
    build_dir = ROOT / ".pio" / f"build-table-{case.name}"
    elf = build_firmware("qemu_m7", model_options=options, build_dir=build_dir)
    with QemuBoard(elf) as qemu:
        yield qemu.url, elf.parent, elf


def board_run(case: Case, target: str, steps: int, samples: int, rng: np.random.Generator, out_dir: Path) -> dict:
    cfg = BuildConfig(str(case.build_model), case.scheme, classes=case.classes, new_head=case.classes is not None,
                      budget=case.budget or None, lr=case.lr)
    compiled = cfg.compile()
    ref = NumpyBackend(compiled.program)
    model = compiled.program.model
    shape = model.input_spec.shape
    sensor = model.metadata.get("sensor_to_input")

    def sample():
        x = wire = rng.integers(-128, 128, size=shape).astype(np.int8)
        if sensor is not None:  # the board takes int16 counts and scales them as the reference does
            wire = rng.integers(-4000, 4000, size=shape).astype(np.int16)
            x = sensor_to_int8(wire, SensorScaling.from_json(sensor), model.input_spec.qparams.zero_point)
        return wire, x

    npz, tuned, again = out_dir / f"{case.name}.npz", out_dir / f"{case.name}.tflite", out_dir / f"{case.name}-export.tflite"
    row: dict = {"scheme": Path(case.scheme).name if case.scheme.endswith(".json") else case.scheme,
                 "classes": model.num_classes, "new_head": case.classes is not None, "budget": case.budget or None,
                 "planned_peak_sram_bytes": compiled.sram.total, "target": target}
    t0 = time.monotonic()
    with open_board(case, target, cfg) as (url, build_dir, elf):
        with Link(url) as link:  # (a board serves one connection at a time: pull opens its own)
            link.wait_ready(15.0)
            engine = EngineClient(link, train_timeout=600.0)
            assert engine.model.hash == compiled.model_hash, "the board runs another model"
            same = [engine.params_get() == ref.state_bytes()]
            train_counts, equal_steps = [], 0
            for _ in range(steps):
                wire, x = sample()
                y = int(rng.integers(0, model.num_classes))
                got = engine.train(wire, y)
                equal_steps += int(np.array_equal(got.logits, ref.train_step(x, y)))
                train_counts.append(got.count)
            same.append(engine.params_get() == ref.state_bytes())
        with contextlib.redirect_stdout(io.StringIO()):
            rc = cli(["pull", "--port", url, "--build", str(build_dir), "--out", str(npz), "--tflite", str(tuned),
                      "--force"])
        assert rc == 0, f"tinytrain pull failed for {case.name}"
        board, infer_counts, xs = [], [], []
        with Link(url) as link:
            engine = EngineClient(link, train_timeout=600.0)
            for _ in range(samples):
                wire, x = sample()
                r = engine.infer(wire)
                board.append(np.asarray(r.logits))
                infer_counts.append(r.count)
                xs.append(x)
            if elf is not None:
                stats = link.stats()
                row.update(measured_peak_sram_bytes=stats.peak_sram_bytes,
                           static_sram_bytes=stats.data_bytes + stats.bss_bytes, stack_bytes=stats.stack_used_bytes,
                           flash_bytes=static_memory(elf).flash_bytes,
                           instructions_per_train_step=float(np.mean(train_counts)),
                           instructions_per_inference=float(np.mean(infer_counts)))
    row["board_seconds"] = round(time.monotonic() - t0, 1)
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli(["export", str(case.base), str(npz), "--out", str(again), "--force"]) == 0
    data = tuned.read_bytes()
    tm = read_tflite(case.base)
    logits_idx = model.metadata["tflite"]["output"]["logits"]
    out_idx = O.output_index(data)
    pred_same = logit_diff = out_diff = litert_same = 0
    for x, logits in zip(xs, board):
        t = O.run_tflm(data, file_input(model, tm, x))
        theirs = np.asarray(t[logits_idx]).reshape(-1)
        pred_same += int(np.argmax(theirs) == np.argmax(logits))
        logit_diff += differing(theirs, logits.astype(np.int8))
        out_diff += differing(np.asarray(t[out_idx]), host_output(model, logits))
        lr = O.run_litert_ref(data, file_input(model, tm, x))
        litert_same += int(differing(np.asarray(lr[out_idx]), host_output(model, logits)) == 0)
    row.update(steps=steps, steps_identical=equal_steps, state_identical=all(same), export_same_bytes=again.read_bytes() == data,
               tuned_bytes=len(data), samples=samples, predictions_identical=pred_same, logit_bytes_differing=logit_diff,
               output_bytes_differing=out_diff, litert_outputs_identical=litert_same,
               tuned_classes=int(read_tflite(tuned).tensors[logits_idx].shape[-1]))
    return row


def ops_of(path: Path) -> str:
    counts = Counter(op.op for op in read_tflite(path).operators)
    return ", ".join(f"{k}" + (f" x{v}" if v > 1 else "") for k, v in counts.items())


def markdown(rows: list[dict]) -> str:
    out = ["| model | input | ops | output bytes = TFLM (differing / compared; all activations) | fine-tuned on the "
           "board (scheme, classes) | steps = NumPy reference | exported file = board (TFLM predictions; logit bytes "
           "differing; LiteRT) | measured peak SRAM | flash | instructions / step |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p = r["parity"]
        par = (f"{'yes' if p['output_bytes_differing'] == 0 else 'no'} ({p['output_bytes_differing']} / "
               f"{p['output_bytes']:,}; {p['activation_bytes_differing']} / {p['activation_bytes']:,})")
        b = r.get("board")
        if b is None or "error" in (b or {}):
            out.append(f"| {r['model']} | {r['input']} | {r['ops']} | {par} | {(b or {}).get('error', '-')} | | | | | |")
            continue
        head = f"new head, {b['classes']} classes" if b["new_head"] else f"{b['classes']} classes"
        steps = (f"{'yes' if b['steps_identical'] == b['steps'] and b['state_identical'] else 'no'} "
                 f"({b['steps_identical']}/{b['steps']} steps, state {'identical' if b['state_identical'] else 'differs'})")
        exp = (f"{'yes' if b['predictions_identical'] == b['samples'] and b['logit_bytes_differing'] == 0 else 'no'} "
               f"({b['predictions_identical']}/{b['samples']}; {b['logit_bytes_differing']}; LiteRT "
               f"{b['litert_outputs_identical']}/{b['samples']})")
        peak = f"{b['measured_peak_sram_bytes'] / 1024:.1f} KB" if "measured_peak_sram_bytes" in b else "-"
        flash = f"{b['flash_bytes'] / 1024:.0f} KB" if "flash_bytes" in b else "-"
        instr = f"{b['instructions_per_train_step'] / 1e6:.2f} M" if "instructions_per_train_step" in b else "-"
        out.append(f"| {r['model']} | {r['input']} | {r['ops']} | {par} | yes ({b['scheme']}, {head}) | {steps} | {exp} | "
                   f"{peak} | {flash} | {instr} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", choices=list(CASES), help="default: all")
    ap.add_argument("--target", choices=["qemu", "host"], default="qemu")
    ap.add_argument("--steps", type=int, default=20, help="training steps on the board (default 20)")
    ap.add_argument("--samples", type=int, default=100, help="samples for parity and predictions (default 100)")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "tflite-table" / "table")
    ap.add_argument("--no-board", action="store_true", help="the TFLM parity columns only")
    args = ap.parse_args(argv)
    O.require_tflm = lambda: None
    if not O.tflm_available():
        print("TFLite Micro (PyPI tflite-micro, the `test` extra) is not installed.", file=sys.stderr)
        return 2
    names = args.models or [n for n in CASES if n not in KERAS_MODELS or maker.converter_available()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        case = CASES[name]
        rng = np.random.default_rng(sum(map(ord, name)))
        t0 = time.monotonic()
        h, w, c = import_tflite(case.base).input_spec.shape
        row = {"model": name, "base": str(case.base.relative_to(ROOT)), "input": f"{h}x{w}x{c}", "ops": ops_of(case.base),
               "parity": parity(case, args.samples, rng)}
        if not args.no_board:
            try:
                row["board"] = board_run(case, args.target, args.steps, args.samples, rng, args.out.parent)
            except Exception as exc:  # noqa: BLE001 - a row that failed says why, the others still run
                row["board"] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
        rows.append(row)
        print(f"{name}: {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    md = markdown(rows)
    args.out.with_suffix(".md").write_text(md)
    print(md)
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.md')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
