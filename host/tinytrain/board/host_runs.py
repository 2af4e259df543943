"""Fine-tuning runs of the contribution analysis through the engine's own C code, built for the host.

A run (learn/contribution.py: one scheme, one seed) is its training program's generated C
(compile/codegen.py, exactly what a firmware build of that program would compile) linked with the
kernels of firmware/engine and a small driver (firmware/boards/host_library/run_driver.c) into a
shared library, loaded with ctypes: one call trains on all the run's samples, one call infers the
validation samples. The kernels and the driver are compiled once (build/host/runs/<hash>/, keyed by
their sources and flags); per run only the generated file compiles.

The C program computes what the NumPy reference computes, bit for bit (the host build of the
firmware is tested to; host/tests/test_host_runs.py checks runs of this backend against NumpyRuns),
so its measurements share the NumPy runs' cache.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from tinytrain.board.builds import BuildError, firmware_sources, host_build_dir, project_root
from tinytrain.compile import codegen
from tinytrain.compile.autodiff import compile_program
from tinytrain.compile.compiler import plan_program
from tinytrain.ir.graph import Model
from tinytrain.ir.program import StepKind, TrainingProgram

BOARD = "host_library"  # firmware/boards/host_library: the driver
# The kernels and the driver: no sanitizers, no arena checks. Integer code only (and no
# floating-point contraction anywhere), so any optimization computes the same bytes.
ENGINE_FLAGS = ["-std=c11", "-O3", "-march=native", "-fPIC", "-ffp-contract=off", "-w"]
# The generated program: straight-line calls of the kernels and big constant tables; optimizing
# it gains nothing at run time and costs compile time per run.
PROGRAM_FLAGS = ["-std=c11", "-O0", "-fPIC", "-ffp-contract=off", "-w"]


def engine_sources() -> list[Path]:
    """The firmware sources a run library needs: firmware/engine (the host build's engine sources,
    builds.firmware_sources) and the driver board."""
    fw = project_root() / "firmware"
    out = []
    for path in firmware_sources([BOARD]):
        rel = path.relative_to(fw).parts
        if rel[0] == "engine" or (rel[0] == "boards" and len(rel) > 2 and rel[1] == BOARD):
            out.append(path)
    return out


def engine_objects(flags: list[str] | None = None, jobs: int | None = None) -> list[Path]:
    """The compiled kernels and driver (position-independent objects), built once per set of sources
    and flags into build/host/runs/<hash>/."""
    flags = list(ENGINE_FLAGS if flags is None else flags)
    fw = project_root() / "firmware"
    sources = engine_sources()
    h = hashlib.sha256(" ".join(flags).encode())
    for f in sorted(sources + list(fw.rglob("*.h"))):
        h.update(str(f.relative_to(fw)).encode() + b"\0" + f.read_bytes())
    out = host_build_dir() / "runs" / h.hexdigest()[:16]
    objects = [out / (str(s.relative_to(fw)).replace(os.sep, "__")[:-2] + ".o") for s in sources]
    if all(o.exists() for o in objects):
        return objects
    if shutil.which("gcc") is None:
        raise BuildError("gcc is not installed; run `make setup` (or measure with --backend numpy).")
    out.mkdir(parents=True, exist_ok=True)

    def build(pair: tuple[Path, Path]) -> None:
        src, obj = pair
        if obj.exists():
            return
        tmp = obj.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        _gcc([*flags, "-I", str(fw), "-c", str(src), "-o", str(tmp)], f"compiling {src.name}")
        tmp.replace(obj)

    with ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 1) as pool:
        list(pool.map(build, zip(sources, objects)))
    return objects


def _gcc(args: list[str], what: str) -> None:
    r = subprocess.run(["gcc", *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildError(f"{what} for a host run failed:\n{r.stderr.strip()[-3000:]}")


def host_program(program: TrainingProgram) -> TrainingProgram:
    """The program as a run library executes it: the same scheme and options, but with every input
    gradient kept as int32 and renormalized by its consumer (one pass instead of two) and no in-place
    depthwise gradient rings. These forms only trade memory for speed: where the values live changes,
    not what they are (both forms renormalize the same int32 sums to the same 16-bit mantissas), so the
    logits and the learned state are the same bytes (tested), and on the host memory is free."""
    model = program.model
    options = replace(program.options, inplace_depthwise_grads=False,
                      wide_input_grads=frozenset(op.name for op in model.weighted_ops))
    return compile_program(model, program.scheme, options)


class RunLibrary:
    """One program's generated C, built with the engine objects into a shared library and loaded.
    A context manager: leaving it unloads the library and deletes its files."""

    def __init__(self, program: TrainingProgram, objects: list[Path], flags: list[str] | None = None,
                 workdir: Path | None = None):
        self.program = program
        self.model = program.model
        self._dir = Path(tempfile.mkdtemp(prefix="tt-run-", dir=workdir))
        self._lib = None
        try:
            codegen.generate(plan_program(program), self._dir)
            fw = project_root() / "firmware"
            lib = self._dir / "run.so"
            _gcc([*(PROGRAM_FLAGS if flags is None else flags), "-shared", "-Wl,-Bsymbolic", "-I", str(fw),
                  "-I", str(self._dir), *map(str, sorted(self._dir.glob("*.c"))), *map(str, objects),
                  "-o", str(lib)], f"building the program of scheme {program.scheme.name}")
            self._lib = ctypes.CDLL(str(lib), mode=os.RTLD_LOCAL)
        except BaseException:
            self.close()
            raise
        L = self._lib
        p = ctypes.c_void_p
        L.ttr_train.argtypes = [p, p, p, p, ctypes.c_int32, p]
        L.ttr_infer.argtypes = [p, p, ctypes.c_int32, p]
        L.ttr_state.argtypes = [p]
        L.ttr_state.restype = ctypes.c_uint32
        L.ttr_input_bytes.restype = ctypes.c_uint32
        L.ttr_classes.restype = ctypes.c_uint32
        self.input_bytes = int(L.ttr_input_bytes())
        self.classes = int(L.ttr_classes())
        if self.input_bytes != self.model.input_spec.size or self.classes != self.model.num_classes:
            self.close()
            raise BuildError(f"the run library of {program.scheme.name} takes {self.input_bytes}-byte samples "
                             f"and {self.classes} classes, the model {self.model.input_spec.size} and "
                             f"{self.model.num_classes}.")

    def _samples(self, samples: np.ndarray) -> np.ndarray:
        s = np.ascontiguousarray(samples, dtype=np.int8)
        if s[0].size != self.input_bytes:
            raise ValueError(f"samples of {s[0].size} bytes; the program takes {self.input_bytes}")
        return s

    def train(self, samples: np.ndarray, rows: np.ndarray, labels: np.ndarray, lr_scales: np.ndarray) -> np.ndarray:
        """Training steps on samples[rows[i]] with labels[i], lr_scales[i]; the logits of each step."""
        s = self._samples(samples)
        rows = np.ascontiguousarray(rows, dtype=np.int32)
        labels = np.ascontiguousarray(labels, dtype=np.int32)
        scales = np.ascontiguousarray(lr_scales, dtype=np.uint32)
        if not (len(rows) == len(labels) == len(scales)) or (len(rows) and not 0 <= rows.min() <= rows.max() < len(s)):
            raise ValueError("rows, labels and lr scales must match and index the samples")
        if len(labels) and not 0 <= labels.min() <= labels.max() < self.classes:
            raise ValueError("label out of range")
        out = np.zeros((len(rows), self.classes), dtype=np.int8)
        status = self._lib.ttr_train(s.ctypes.data, rows.ctypes.data, labels.ctypes.data, scales.ctypes.data,
                                     len(rows), out.ctypes.data)
        if status:
            raise BuildError(f"a training step of the run library stopped with status {status}")
        return out

    def infer(self, samples: np.ndarray, rows: np.ndarray) -> np.ndarray:
        s = self._samples(samples)
        rows = np.ascontiguousarray(rows, dtype=np.int32)
        if len(rows) and not 0 <= rows.min() <= rows.max() < len(s):
            raise ValueError("rows must index the samples")
        out = np.zeros((len(rows), self.classes), dtype=np.int8)
        status = self._lib.ttr_infer(s.ctypes.data, rows.ctypes.data, len(rows), out.ctypes.data)
        if status:
            raise BuildError(f"an inference of the run library stopped with status {status}")
        return out

    def state_bytes(self) -> bytes:
        """The learned state as PARAMS_GET returns it (NumpyBackend.state_bytes)."""
        buf = ctypes.create_string_buffer(int(self._lib.ttr_state(None)))
        self._lib.ttr_state(buf)
        return buf.raw

    def close(self) -> None:
        if self._lib is not None:
            import _ctypes

            _ctypes.dlclose(self._lib._handle)
            self._lib = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> "RunLibrary":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class CRuns:
    """The contribution measurer's backend (learn.contribution.Measurer) that runs the engine's C code:
    no prefix cache (the C step computes the frozen layers too, in far less time than NumPy takes to
    skip them)."""

    name = "c"
    prefix_cache = False

    def __init__(self, flags: list[str] | None = None):
        self.flags = flags
        self.objects: list[Path] | None = None

    def prepare(self, model: Model) -> None:
        if self.objects is None:
            self.objects = engine_objects(self.flags)

    def cost(self, model: Model, program: TrainingProgram, fit: int, val: int) -> float:
        """Estimated seconds (for the progress bar): building, then the MACs of every step."""
        train = sum(s.macs for s in program.train_steps)
        infer = sum(s.macs for s in program.infer_steps if s.kind is not StepKind.PATCH_STAGE)
        return 0.3 + 1e-9 * (fit * (train + 2e5) + val * (infer + 1e5))

    def fine_tune(self, program: TrainingProgram, acts: dict[str, np.ndarray], rows: np.ndarray,
                  labels: np.ndarray, scales: np.ndarray, val_rows: np.ndarray) -> np.ndarray:
        self.prepare(program.model)
        samples = acts[program.model.input]
        with RunLibrary(host_program(program), self.objects) as lib:
            lib.train(samples, rows, labels, scales)
            return lib.infer(samples, val_rows)


BACKENDS = ("c", "numpy")


def backend(name: str = "c"):
    """The measurer backend called `name`: "c" (the engine built for the host) or "numpy". Without gcc,
    "c" falls back to "numpy" (the same results, slower) and says so."""
    from tinytrain.learn.contribution import NumpyRuns

    if name not in BACKENDS:
        raise BuildError(f"unknown backend {name!r}; use {' or '.join(BACKENDS)}.")
    if name == "c" and shutil.which("gcc") is None:
        print("tinytrain: gcc is not installed (make setup installs it): fine-tuning runs go through the NumPy "
              "reference instead of the engine's C code (the same results, slower).")
        name = "numpy"
    return CRuns() if name == "c" else NumpyRuns()
