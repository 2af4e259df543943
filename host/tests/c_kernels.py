"""firmware/engine/*.c as host shared libraries (ASan + UBSan), loaded with ctypes.

The kernels are the .c files of firmware/engine/ (one per op and direction); their
internal headers sit in firmware/engine/internal/ and hold no sources.

Two builds of the same sources: the portable C path, and the Cortex-M DSP fast
path with its intrinsics emulated in C (-DTT_EMULATE_DSP), so the exact DSP
loop structure runs on the host too. An ASan library can only be loaded into a
Python whose first library is the ASan runtime: `sanitizer_env()` gives the
environment (LD_PRELOAD) that test_c_kernels.py re-runs itself under.

The wrappers take and return NumPy arrays and mirror tt_kernels.h one to one;
a None array is passed as NULL.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from ctypes import byref, c_int32, c_int64, c_uint32, c_void_p
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
ENGINE = FIRMWARE / "engine"
BUILD_DIR = ROOT / "build" / "host" / "c_kernels"

WARNINGS = ["-std=c11", "-Wall", "-Wextra", "-Werror"]
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
VARIANTS = {"portable": [], "dsp": ["-DTT_EMULATE_DSP"]}
ARM_FLAGS = ["-mcpu=cortex-m7", "-mthumb", "-mfpu=fpv5-sp-d16", "-mfloat-abi=hard"]

ROUNDING = {"stochastic": 0, "nearest": 1, "truncate": 2}


class BuildFailed(AssertionError):
    pass


def engine_sources() -> list[Path]:
    return sorted(ENGINE.glob("*.c"))


def _run(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildFailed(f"{' '.join(cmd)}\n{r.stdout}{r.stderr}")


def compile_objects(compiler: str, flags: list[str]) -> None:
    """Compiles every engine source (no link, in parallel), failing on any warning."""
    out = BUILD_DIR / "objects" / hashlib.sha256(f"{compiler} {flags}".encode()).hexdigest()[:12]
    out.mkdir(parents=True, exist_ok=True)
    cmds = [[compiler, *WARNINGS, *flags, f"-I{FIRMWARE}", "-c", str(src), "-o", str(out / (src.stem + ".o"))]
            for src in engine_sources()]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(_run, cmds))


def library_path(variant: str) -> tuple[Path, list[str]]:
    flags = [*WARNINGS, "-g", "-O1", "-fPIC", "-shared", *SANITIZE, *VARIANTS[variant], f"-I{FIRMWARE}"]
    h = hashlib.sha256(" ".join(flags).encode())
    for f in sorted([*engine_sources(), *ENGINE.rglob("*.h")]):
        h.update(str(f.relative_to(ENGINE)).encode() + f.read_bytes())
    return BUILD_DIR / f"libtt_kernels_{variant}_{h.hexdigest()[:16]}.so", flags


def build_library(variant: str) -> Path:
    """The sanitized shared library of one variant, rebuilt when a source or flag changes."""
    path, flags = library_path(variant)
    if not path.exists():
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        _run(["gcc", *flags, *map(str, engine_sources()), "-o", str(tmp)])
        tmp.replace(path)
        for old in BUILD_DIR.glob(f"libtt_kernels_{variant}_*.so"):  # builds of older sources
            if old != path:
                old.unlink(missing_ok=True)
    return path


def build_libraries() -> list[Path]:
    """Both variants, built side by side."""
    with ThreadPoolExecutor(max_workers=len(VARIANTS)) as pool:
        return list(pool.map(build_library, VARIANTS))


def sanitizer_env() -> dict[str, str] | None:
    """Environment for a Python that can load the ASan libraries (None without gcc/libasan)."""
    if shutil.which("gcc") is None:
        return None
    asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if not asan or not os.path.isabs(asan) or not os.path.exists(asan):
        return None
    env = dict(os.environ)
    env["LD_PRELOAD"] = os.path.realpath(asan)
    env["ASAN_OPTIONS"] = "detect_leaks=0:halt_on_error=1:abort_on_error=0"
    env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1"
    return env


# ---------------------------------------------------------------------------------------------- ctypes


def _p(a: np.ndarray | None) -> int | None:
    if a is None:
        return None
    assert a.flags.c_contiguous
    return a.ctypes.data


def _i8(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int8)


def _i16(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int16)


def _i32(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int32)


def mask_bytes(n: int) -> np.ndarray:
    """An uninitialized-looking mask buffer: the kernel must write every bit itself."""
    return np.full((n + 7) // 8, 0xA5, dtype=np.uint8)


class AddParams(ctypes.Structure):
    _fields_ = [(name, c_int32) for name in ("left_shift", "z1", "m1", "s1", "z2", "m2", "s2", "zo", "mo", "so")]


class UpdateCtx(ctypes.Structure):
    _fields_ = [("mode", c_int32), ("seed", c_uint32), ("step", c_uint32), ("elem_offset", c_uint32)]


@dataclass
class Update:
    mode: str
    seed: int
    step: int
    elem_offset: int

    def ctx(self) -> UpdateCtx:
        return UpdateCtx(ROUNDING[self.mode], self.seed, self.step, self.elem_offset)


P = c_void_p
I = c_int32

GEOM_FIELDS = ("h", "w", "cin", "oh", "ow", "cout", "kh", "kw", "sh", "sw", "pad_top", "pad_left", "groups")


class Geom(ctypes.Structure):
    """tt_geom (engine/tt_kernels.h)."""

    _fields_ = [(name, c_int32) for name in GEOM_FIELDS]


class Layer(ctypes.Structure):
    """tt_layer (engine/tt_kernels.h)."""

    _fields_ = [("w_lo", P), ("w_hi", P), ("k_lo", I), ("wsum", P), ("bias", P), ("mult", P), ("shift", P),
                ("zx", I), ("zy", I), ("wcoef_mult", P), ("wcoef_shift", P), ("bcoef_mult", P), ("bcoef_shift", P)]


def geom(h, w, cin, oh, ow, cout, kh=1, kw=1, sh=1, sw=1, pad_top=0, pad_left=0, groups=1) -> Geom:
    return Geom(h, w, cin, oh, ow, cout, kh, kw, sh, sw, pad_top, pad_left, groups)


def layer(w_lo=None, w_hi=None, k_lo=0, wsum=None, bias=None, mult=None, shift=None, zx=0, zy=0, wcoef_mult=None,
          wcoef_shift=None, bcoef_mult=None, bcoef_shift=None) -> Layer:
    return Layer(_p(w_lo), _p(w_hi), k_lo, _p(wsum), _p(bias), _p(mult), _p(shift), zx, zy, _p(wcoef_mult),
                 _p(wcoef_shift), _p(bcoef_mult), _p(bcoef_shift))


# the kernels with DSP scratch: tt_<name>_scratch_bytes(const tt_geom *)
SCRATCH_KERNELS = ("conv_pointwise", "conv_depthwise", "conv_depthwise_inplace", "conv_generic", "input_grad_pointwise",
                   "input_grad_depthwise", "weight_update_pointwise")
GUARD = 32


class Scratch:
    """A kernel's scratch of exactly the size its C function gives, between guard bands that must stay
    intact (the DSP path may not write past it)."""

    def __init__(self, lib, kernel: str, g: "Geom"):
        self.size = getattr(lib, f"tt_{kernel}_scratch_bytes")(ctypes.byref(g))
        self.buf = np.full(self.size + 2 * GUARD, 0xA5, dtype=np.uint8)
        self.ptr = self.buf.ctypes.data + GUARD

    def check(self) -> None:
        assert (self.buf[:GUARD] == 0xA5).all() and (self.buf[-GUARD:] == 0xA5).all(), "scratch written out of bounds"


G = ctypes.POINTER(Geom)
L = ctypes.POINTER(Layer)
SIGNATURES = {
    "tt_mbqm": (I, [I, I, I]),
    "tt_mix32": (c_uint32, [c_uint32]),
    "tt_round_shift": (c_int64, [c_int64, I, I, c_uint32]),
    "tt_conv_pointwise": (None, [G, L, P, P, P, P]),
    "tt_conv_pointwise_rows": (None, [G, L, P, P, I, P]),
    "tt_conv_depthwise": (None, [G, L, P, P, P, P]),
    "tt_conv_depthwise_rows": (None, [G, L, P, P, I, I, I, P]),
    "tt_conv_depthwise_inplace": (None, [G, L, P, P, P, P]),
    "tt_conv_generic": (None, [G, L, P, P, P, P]),
    "tt_conv_generic_rows": (None, [G, L, P, P, I, I, I, P]),
    **{f"tt_{k}_scratch_bytes": (I, [G]) for k in SCRATCH_KERNELS},
    "tt_add": (None, [P, P, P, I, P, P]),
    "tt_avgpool": (None, [P, I, I, P, I, I, I, I, P]),
    "tt_save_channels": (None, [P, I, I, I, P]),
    "tt_image_resize": (None, [G, P, I, P, I, I, P]),
    "tt_maxpool": (None, [G, P, P]),
    "tt_maxpool_grad": (I, [G, P, I, P, I, P]),
    "tt_avgpool2d": (None, [G, P, P]),
    "tt_avgpool2d_grad": (I, [G, P, I, P, P, I, I, P]),
    "tt_pad": (None, [G, P, I, P]),
    "tt_pad_grad": (None, [G, P, P]),
    "tt_copy_channels": (None, [P, I, I, P, I, I]),
    "tt_slice_channels16": (None, [P, I, I, I, I, P]),
    "tt_requantize": (None, [P, I, I, I, I, I, P, P]),
    "tt_clamp": (None, [P, I, I, I, P, P]),
    "tt_loss_grad": (I, [P, I, I, P, c_uint32, I, I, I, P]),
    "tt_requant_grad": (I, [P, I, P, I, I, P, P, I, I, P]),
    "tt_broadcast_rows": (None, [P, I, I, P]),
    "tt_input_grad_pointwise": (None, [G, L, P, P, P]),
    "tt_input_grad_depthwise": (None, [G, L, P, P, P]),
    "tt_input_grad_generic": (None, [G, L, P, P]),
    "tt_input_grad_pointwise16": (I, [G, L, P, I, I, P, P]),
    "tt_input_grad_depthwise16": (I, [G, L, P, I, I, P, P]),
    "tt_input_grad_generic16": (I, [G, L, P, I, I, P]),
    "tt_input_grad_depthwise16_inplace": (I, [G, L, P, I, I, P, P]),
    "tt_grad_sum": (I, [P, P, P, I, I, I, P]),
    "tt_weight_update_pointwise": (None, [G, L, P, I, P, I, P, P, P]),
    "tt_weight_update_depthwise": (None, [G, L, P, I, P, I, P, P]),
    "tt_weight_update_generic": (None, [G, L, P, I, P, I, P, P]),
    "tt_bias_update": (None, [G, L, P, I, P, P]),
}


class Kernels:
    """One loaded build of the engine."""

    def __init__(self, variant: str):
        self.variant = variant
        self.lib = ctypes.CDLL(str(build_library(variant)))
        for name, (res, args) in SIGNATURES.items():
            fn = getattr(self.lib, name)
            fn.restype = res
            fn.argtypes = args

    def __repr__(self) -> str:
        return f"Kernels({self.variant})"

    # ------------------------------------------------------------------ fixed point

    def mbqm(self, x: int, m: int, shift: int) -> int:
        return self.lib.tt_mbqm(x, m, shift)

    def mix32(self, x: int) -> int:
        return self.lib.tt_mix32(x)

    def round_shift(self, p: int, e: int, mode: str, r: int) -> int:
        return self.lib.tt_round_shift(p, e, ROUNDING[mode], r)

    # ------------------------------------------------------------------ forward

    def conv_pointwise(self, x, cout, w_lo, w_hi, k_lo, wsum, bias, mult, shift, zx, zy, with_mask):
        x = _i8(x)
        hw, cin = x.shape
        y = np.zeros((hw, cout), dtype=np.int8)
        mask = mask_bytes(hw * cout) if with_mask else None
        g = geom(hw, 1, cin, hw, 1, cout)
        lay = layer(w_lo, w_hi, k_lo, wsum, bias, mult, shift, zx, zy)
        sc = Scratch(self.lib, "conv_pointwise", g)
        self.lib.tt_conv_pointwise(byref(g), byref(lay), _p(x), _p(y), _p(mask), sc.ptr)
        sc.check()
        return y, mask

    def conv_depthwise(self, x, oh, ow, kernel, stride, pad, w_lo, w_hi, c_lo, bias, mult, shift, zx, zy, with_mask,
                       pad_left=None):
        """pad is pad_top; pad_left defaults to it (a whole tensor)."""
        x = _i8(x)
        h, w, c = x.shape
        y = np.zeros((oh, ow, c), dtype=np.int8)
        mask = mask_bytes(oh * ow * c) if with_mask else None
        g = geom(h, w, c, oh, ow, c, kernel, kernel, stride, stride, pad, pad if pad_left is None else pad_left, c)
        lay = layer(w_lo, w_hi, c_lo, None, bias, mult, shift, zx, zy)
        sc = Scratch(self.lib, "conv_depthwise", g)
        self.lib.tt_conv_depthwise(byref(g), byref(lay), _p(x), _p(y), _p(mask), sc.ptr)
        sc.check()
        return y, mask

    def conv_depthwise_inplace(self, x, kernel, w_lo, w_hi, c_lo, bias, mult, shift, zx, zy, with_mask):
        """tt_conv_depthwise_inplace: stride 1, pad k//2, the output over a copy of x
        (the ring scratch guarded by canaries)."""
        xy = _i8(x).copy()
        h, w, c = xy.shape
        pad = kernel // 2
        mask = mask_bytes(h * w * c) if with_mask else None
        ring = np.full((pad + 1) * w * c + 64, 0x5A, dtype=np.uint8)
        g = geom(h, w, c, h, w, c, kernel, kernel, 1, 1, pad, pad, c)
        lay = layer(w_lo, w_hi, c_lo, None, bias, mult, shift, zx, zy)
        sc = Scratch(self.lib, "conv_depthwise_inplace", g)
        self.lib.tt_conv_depthwise_inplace(byref(g), byref(lay), _p(xy), _p(mask), ring.ctypes.data + 32, sc.ptr)
        sc.check()
        assert (ring[:32] == 0x5A).all() and (ring[-32:] == 0x5A).all(), "ring scratch overrun"
        return xy, mask

    def conv_generic(self, x, oh, ow, cout, kernel, stride, pad, groups, weights, bias, mult, shift, zx, zy,
                     with_mask, pad_left=None):
        """pad is pad_top; pad_left defaults to it (a whole tensor)."""
        x = _i8(x)
        h, w, cin = x.shape
        y = np.zeros((oh, ow, cout), dtype=np.int8)
        mask = mask_bytes(oh * ow * cout) if with_mask else None
        g = geom(h, w, cin, oh, ow, cout, kernel, kernel, stride, stride, pad, pad if pad_left is None else pad_left,
                 groups)
        lay = layer(None, weights, 0, None, bias, mult, shift, zx, zy)
        sc = Scratch(self.lib, "conv_generic", g)
        self.lib.tt_conv_generic(byref(g), byref(lay), _p(x), _p(y), _p(mask), sc.ptr)
        sc.check()
        return y, mask

    def add(self, a, b, params: AddParams, with_mask, out=None):
        y = np.zeros(a.size, dtype=np.int8) if out is None else out
        mask = mask_bytes(a.size) if with_mask else None
        self.lib.tt_add(_p(a), _p(b), _p(y), a.size, ctypes.byref(params), _p(mask))
        return y, mask

    def avgpool(self, x, mult, shift, zx, zy, with_mask):
        hw, c = x.shape
        y = np.zeros(c, dtype=np.int8)
        mask = mask_bytes(c) if with_mask else None
        self.lib.tt_avgpool(_p(x), hw, c, _p(y), mult, shift, zx, zy, _p(mask))
        return y, mask

    def save_channels(self, x, k, out=None):
        hw, c = x.shape
        xs = np.zeros((hw, k), dtype=np.int8) if out is None else out
        self.lib.tt_save_channels(_p(x), hw, c, k, _p(xs))
        return xs

    # ------------------------------------------------------------------ loss and backward

    def loss_grad(self, logits, label, table, lr_scale, s_mult, s_shift, bits):
        g = np.zeros(logits.size, dtype=np.int16)
        e = self.lib.tt_loss_grad(_p(logits), logits.size, label, _p(table), lr_scale, s_mult, s_shift, bits, _p(g))
        return g, e

    def requant_grad(self, g, e, mask, mult, shift, bits, out=None):
        hw, c = g.shape
        out = np.zeros_like(g) if out is None else out
        e2 = self.lib.tt_requant_grad(_p(g), e, _p(mask), hw, c, _p(mult), _p(shift), mult.size, bits, _p(out))
        return out, e2

    def broadcast_rows(self, src, hw, c, out):
        self.lib.tt_broadcast_rows(_p(src), hw, c, _p(out))
        return out

    def input_grad_pointwise(self, g, w_lo, w_hi, k_lo, cin):
        hw, cout = g.shape
        gx = np.zeros((hw, cin), dtype=np.int32)
        gm = geom(hw, 1, cin, hw, 1, cout)
        sc = Scratch(self.lib, "input_grad_pointwise", gm)
        self.lib.tt_input_grad_pointwise(byref(gm), byref(layer(w_lo, w_hi, k_lo)), _p(g), _p(gx), sc.ptr)
        sc.check()
        return gx

    def input_grad_depthwise(self, g, kernel, stride, pad, h, w, w_lo, w_hi, c_lo):
        oh, ow, c = g.shape
        gx = np.zeros((h, w, c), dtype=np.int32)
        gm = geom(h, w, c, oh, ow, c, kernel, kernel, stride, stride, pad, pad, c)
        sc = Scratch(self.lib, "input_grad_depthwise", gm)
        self.lib.tt_input_grad_depthwise(byref(gm), byref(layer(w_lo, w_hi, c_lo)), _p(g), _p(gx), sc.ptr)
        sc.check()
        return gx

    def input_grad_generic(self, g, kernel, stride, pad, groups, weights, h, w, cin):
        oh, ow, cout = g.shape
        gx = np.zeros((h, w, cin), dtype=np.int32)
        gm = geom(h, w, cin, oh, ow, cout, kernel, kernel, stride, stride, pad, pad, groups)
        self.lib.tt_input_grad_generic(byref(gm), byref(layer(None, weights)), _p(g), _p(gx))
        return gx

    def input_grad_pointwise16(self, g, e, w_lo, w_hi, k_lo, cin, bits):
        hw, cout = g.shape
        gx = np.full((hw, cin), 0x5A5A, dtype=np.int16)
        gm = geom(hw, 1, cin, hw, 1, cout)
        sc = Scratch(self.lib, "input_grad_pointwise", gm)
        e2 = self.lib.tt_input_grad_pointwise16(byref(gm), byref(layer(w_lo, w_hi, k_lo)), _p(g), e, bits, _p(gx), sc.ptr)
        sc.check()
        return gx, e2

    def input_grad_depthwise16(self, g, e, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, bits):
        oh, ow, c = g.shape
        gx = np.full((h, w, c), 0x5A5A, dtype=np.int16)
        gm = geom(h, w, c, oh, ow, c, kernel, kernel, stride, stride, pad, pad, c)
        sc = Scratch(self.lib, "input_grad_depthwise", gm)
        e2 = self.lib.tt_input_grad_depthwise16(byref(gm), byref(layer(w_lo, w_hi, c_lo)), _p(g), e, bits, _p(gx), sc.ptr)
        sc.check()
        return gx, e2

    def input_grad_depthwise16_inplace(self, g, e, kernel, pad, w_lo, w_hi, c_lo, bits):
        """g is overwritten (returned as gx); the ring is fresh garbage of exactly (pad + 1) rows, checked
        against writes past its end by a guard band."""
        h, w, c = g.shape
        n = (pad + 1) * w * c
        ring = np.full(n + 64, 0x3C3C, dtype=np.int16)
        gm = geom(h, w, c, h, w, c, kernel, kernel, 1, 1, pad, pad, c)
        sc = Scratch(self.lib, "input_grad_depthwise", gm)
        e2 = self.lib.tt_input_grad_depthwise16_inplace(byref(gm), byref(layer(w_lo, w_hi, c_lo)), _p(g), e, bits,
                                                        _p(ring), sc.ptr)
        sc.check()
        assert (ring[n:] == 0x3C3C).all(), "ring written past its (pad + 1) rows"
        return g, e2

    def input_grad_generic16(self, g, e, kernel, stride, pad, groups, weights, h, w, cin, bits):
        oh, ow, cout = g.shape
        gx = np.full((h, w, cin), 0x5A5A, dtype=np.int16)
        gm = geom(h, w, cin, oh, ow, cout, kernel, kernel, stride, stride, pad, pad, groups)
        e2 = self.lib.tt_input_grad_generic16(byref(gm), byref(layer(None, weights)), _p(g), e, bits, _p(gx))
        return gx, e2

    def grad_sum(self, parts: list[np.ndarray], exps: list[int], bits: int, out=None):
        n = parts[0].size
        out = np.zeros(n, dtype=np.int16) if out is None else out
        ptrs = (c_void_p * len(parts))(*[_p(p) for p in parts])
        is32 = np.array([p.dtype == np.int32 for p in parts], dtype=np.uint8)
        ex = np.array(exps, dtype=np.int32)
        e = self.lib.tt_grad_sum(ptrs, _p(is32), _p(ex), len(parts), n, bits, _p(out))
        return out, e

    # ------------------------------------------------------------------ updates

    def weight_update_pointwise(self, g, e, xs, k, zx, w_lo, coef_mult, coef_shift, u: Update, scratch=True):
        """scratch=False: NULL scratch (the DSP path without its packed table)."""
        hw, cout = g.shape
        ctx = u.ctx()
        lay = layer(w_lo, None, k, zx=zx, wcoef_mult=coef_mult, wcoef_shift=coef_shift)
        gm = geom(hw, 1, k, hw, 1, cout)
        sc = Scratch(self.lib, "weight_update_pointwise", gm)
        self.lib.tt_weight_update_pointwise(byref(gm), byref(lay), _p(g), e, _p(xs), xs.shape[-1], _p(w_lo),
                                            byref(ctx), sc.ptr if scratch else None)
        sc.check()
        return w_lo

    def weight_update_depthwise(self, g, e, xs, k, kernel, stride, pad, zx, w_lo, coef_mult, coef_shift, u: Update):
        oh, ow, c = g.shape
        h, w, xs_c = xs.shape
        ctx = u.ctx()
        gm = geom(h, w, c, oh, ow, c, kernel, kernel, stride, stride, pad, pad, c)
        lay = layer(w_lo, None, k, zx=zx, wcoef_mult=coef_mult, wcoef_shift=coef_shift)
        self.lib.tt_weight_update_depthwise(byref(gm), byref(lay), _p(g), e, _p(xs), xs_c, _p(w_lo), byref(ctx))
        return w_lo

    def weight_update_generic(self, g, e, xs, k, kernel, stride, pad, zx, weights, coef_mult, coef_shift, u: Update):
        oh, ow, cout = g.shape
        h, w, xs_c = xs.shape
        ctx = u.ctx()
        gm = geom(h, w, weights.shape[-1], oh, ow, cout, kernel, kernel, stride, stride, pad, pad, 1)
        lay = layer(weights, None, k, zx=zx, wcoef_mult=coef_mult, wcoef_shift=coef_shift)
        self.lib.tt_weight_update_generic(byref(gm), byref(lay), _p(g), e, _p(xs), xs_c, _p(weights), byref(ctx))
        return weights

    def bias_update(self, g, e, bias, coef_mult, coef_shift, u: Update):
        hw, c = g.shape
        ctx = u.ctx()
        lay = layer(bias=bias, bcoef_mult=coef_mult, bcoef_shift=coef_shift)
        self.lib.tt_bias_update(byref(geom(hw, 1, c, hw, 1, c)), byref(lay), _p(g), e, _p(bias), byref(ctx))
        return bias

    # ------------------------------------------------------------------ general geometry (tt_geom as given)

    def conv_generic_geom(self, x, g: Geom, w_lo, w_hi, k_lo, bias, mult, shift, zx, zy, with_mask):
        """tt_conv_generic on any geometry; weights as tt_layer holds them (groups 1: one part; depthwise:
        channels below k_lo in w_lo)."""
        x = _i8(x)
        y = np.zeros((g.oh, g.ow, g.cout), dtype=np.int8)
        mask = mask_bytes(y.size) if with_mask else None
        lay = layer(w_lo, w_hi, k_lo, None, bias, mult, shift, zx, zy)
        sc = Scratch(self.lib, "conv_generic", g)
        self.lib.tt_conv_generic(byref(g), byref(lay), _p(x), _p(y), _p(mask), sc.ptr)
        sc.check()
        return y, mask

    def conv_rows(self, kind: str, x, g: Geom, h, oh, pad_top, w_lo, w_hi, k_lo, wsum, bias, mult, shift, zx, zy):
        """tt_conv_<kind>_rows: the band of `oh` output rows from the `h` rows of x (pointwise: rows = oh)."""
        x = _i8(x)
        y = np.full((oh, g.ow, g.cout), 0x5A, dtype=np.int8)
        lay = layer(w_lo, w_hi, k_lo, wsum, bias, mult, shift, zx, zy)
        sc = Scratch(self.lib, f"conv_{kind}", g)
        if kind == "pointwise":
            self.lib.tt_conv_pointwise_rows(byref(g), byref(lay), _p(x), _p(y), oh, sc.ptr)
        else:
            getattr(self.lib, f"tt_conv_{kind}_rows")(byref(g), byref(lay), _p(x), _p(y), h, oh, pad_top, sc.ptr)
        sc.check()
        return y

    def scratch_bytes(self, kernel: str, g: Geom) -> int:
        return getattr(self.lib, f"tt_{kernel}_scratch_bytes")(byref(g))

    def input_grad_generic_geom(self, gy, g: Geom, w_lo, w_hi, k_lo):
        gx = np.zeros((g.h, g.w, g.cin), dtype=np.int32)
        self.lib.tt_input_grad_generic(byref(g), byref(layer(w_lo, w_hi, k_lo)), _p(gy), _p(gx))
        return gx

    def input_grad_generic16_geom(self, gy, e, g: Geom, w_lo, w_hi, k_lo, bits):
        gx = np.full((g.h, g.w, g.cin), 0x5A5A, dtype=np.int16)
        e2 = self.lib.tt_input_grad_generic16(byref(g), byref(layer(w_lo, w_hi, k_lo)), _p(gy), e, bits, _p(gx))
        return gx, e2

    def weight_update_generic_geom(self, gy, e, xs, g: Geom, k, zx, weights, coef_mult, coef_shift, u: Update):
        ctx = u.ctx()
        lay = layer(weights, None, k, zx=zx, wcoef_mult=coef_mult, wcoef_shift=coef_shift)
        self.lib.tt_weight_update_generic(byref(g), byref(lay), _p(gy), e, _p(xs), xs.shape[-1], _p(weights),
                                          byref(ctx))
        return weights

    # ------------------------------------------------------------------ pooling, padding, concatenation, requantization

    def maxpool(self, x, g: Geom):
        x, y = _i8(x), np.full((g.oh, g.ow, g.cout), 0x5A, dtype=np.int8)
        self.lib.tt_maxpool(byref(g), _p(x), _p(y))
        return y

    def maxpool_grad(self, gy, e, x, g: Geom, bits):
        gy, x, gx = _i16(gy), _i8(x), np.full((g.h, g.w, g.cin), 0x5A5A, dtype=np.int16)
        e2 = self.lib.tt_maxpool_grad(byref(g), _p(gy), e, _p(x), bits, _p(gx))
        return gx, e2

    def avgpool2d(self, x, g: Geom):
        x, y = _i8(x), np.full((g.oh, g.ow, g.cout), 0x5A, dtype=np.int8)
        self.lib.tt_avgpool2d(byref(g), _p(x), _p(y))
        return y

    def avgpool2d_grad(self, gy, e, g: Geom, rm, rsh, eoff, bits):
        gy, rm, rsh = _i16(gy), _i32(rm), _i32(rsh)  # kept alive across the call
        gx = np.full((g.h, g.w, g.cin), 0x5A5A, dtype=np.int16)
        e2 = self.lib.tt_avgpool2d_grad(byref(g), _p(gy), e, _p(rm), _p(rsh), eoff, bits, _p(gx))
        return gx, e2

    def pad(self, x, g: Geom, zx):
        x, y = _i8(x), np.full((g.oh, g.ow, g.cout), 0x5A, dtype=np.int8)
        self.lib.tt_pad(byref(g), _p(x), zx, _p(y))
        return y

    def pad_grad(self, gy, g: Geom, in_place: bool):
        """In place, gx is the start of gy's buffer (returned as a view of it)."""
        gy = _i16(gy).copy()
        if in_place:
            self.lib.tt_pad_grad(byref(g), _p(gy), _p(gy))
            return gy.reshape(-1)[: g.h * g.w * g.cin].reshape(g.h, g.w, g.cin)
        gx = np.full((g.h, g.w, g.cin), 0x5A5A, dtype=np.int16)
        self.lib.tt_pad_grad(byref(g), _p(gy), _p(gx))
        return gx

    def copy_channels(self, x, y, at):
        hw, c = x.shape
        self.lib.tt_copy_channels(_p(x), hw, c, _p(y), y.shape[1], at)
        return y

    def slice_channels16(self, g, at, c):
        hw, ctot = g.shape
        out = np.full((hw, c), 0x5A5A, dtype=np.int16)
        self.lib.tt_slice_channels16(_p(g), hw, ctot, at, c, _p(out))
        return out

    def image_resize(self, pixels, g: Geom, lut, row0: int = 0, rows: int | None = None, src_row0: int = 0):
        """Output rows row0 .. row0 + rows - 1 from source rows src_row0 on."""
        rows = g.oh - row0 if rows is None else rows
        src, lut = np.ascontiguousarray(pixels[src_row0:], dtype=np.uint8), _i8(lut)
        y = np.full((rows, g.ow, g.cout), 0x5A, dtype=np.int8)
        self.lib.tt_image_resize(byref(g), _p(src), src_row0, _p(y), row0, rows, _p(lut))
        return y

    def requantize(self, x, zx, mult, shift, zy, with_mask, in_place):
        x = _i8(x).copy()
        y = x if in_place else np.zeros_like(x)
        mask = mask_bytes(x.size) if with_mask else None
        self.lib.tt_requantize(_p(x), x.size, zx, mult, shift, zy, _p(y), _p(mask))
        return y, mask

    def clamp(self, x, lo, hi, with_mask, in_place):
        x = _i8(x).copy()
        y = x if in_place else np.zeros_like(x)
        mask = mask_bytes(x.size) if with_mask else None
        self.lib.tt_clamp(_p(x), x.size, lo, hi, _p(y), _p(mask))
        return y, mask
