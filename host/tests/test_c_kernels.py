"""The C kernels of firmware/engine/ against the NumPy reference, byte for byte.

Every kernel of tt_kernels.h runs in two host builds — the portable C path and
the Cortex-M DSP fast path with emulated intrinsics — under AddressSanitizer
and UBSan, on hypothesis-drawn shapes and values, and must equal
kernels_ref / fixed_point (combined as numpy_backend does for the fused
updates) exactly. Inputs must come back unchanged; in-place cases that the
header allows are run in place.

A plain `pytest host/tests` process cannot load ASan libraries, so this module
re-runs itself in a child pytest with the ASan runtime preloaded; a sanitizer
report aborts the child and fails `test_c_kernels_sanitized`.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import c_kernels as C
from tinytrain.numerics import fixed_point as fp
from tinytrain.numerics import kernels as K

SANITIZED = os.environ.get("TT_C_KERNELS_SANITIZED") == "1"
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


# ----------------------------------------------------------------------------------------- builds (parent)


if not SANITIZED:

    def test_engine_compiles_cleanly_for_host() -> None:
        """The portable path at -O2 (the DSP path is compiled, -Werror too, into the emulated test library)."""
        if shutil.which("gcc") is None:
            pytest.skip("gcc not installed")
        C.compile_objects("gcc", ["-O2"])

    def test_engine_compiles_cleanly_for_cortex_m7() -> None:
        if shutil.which("arm-none-eabi-gcc") is None:
            pytest.skip("arm-none-eabi-gcc not installed")
        C.compile_objects("arm-none-eabi-gcc", ["-O2", *C.ARM_FLAGS])
        C.compile_objects("arm-none-eabi-gcc", ["-O2", *C.ARM_FLAGS, "-DTT_NO_DSP"])

    def test_struct_layouts_match_ctypes(tmp_path) -> None:
        """c_kernels.Geom and Layer are tt_geom and tt_layer: every field at the same offset, same size
        (printed by a small C program built against engine/tt_kernels.h)."""
        if shutil.which("gcc") is None:
            pytest.skip("gcc not installed")
        structs = {"tt_geom": C.Geom, "tt_layer": C.Layer, "tt_update_ctx": C.UpdateCtx, "tt_add_params": C.AddParams}
        lines = ['#include <stddef.h>', '#include <stdio.h>', '#include "engine/tt_kernels.h"', "int main(void)", "{"]
        for cname, cls in structs.items():
            lines.append(f'    printf("{cname} sizeof %zu\\n", sizeof({cname}));')
            for field, _ in cls._fields_:
                lines.append(f'    printf("{cname} {field} %zu\\n", offsetof({cname}, {field}));')
        lines += ["    return 0;", "}"]
        src = tmp_path / "layout.c"
        src.write_text("\n".join(lines) + "\n")
        exe = tmp_path / "layout"
        subprocess.run(["gcc", *C.WARNINGS, f"-I{C.FIRMWARE}", str(src), "-o", str(exe)], check=True)
        got = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.splitlines()
        want = []
        for cname, cls in structs.items():
            want.append(f"{cname} sizeof {ctypes.sizeof(cls)}")
            want += [f"{cname} {field} {getattr(cls, field).offset}" for field, _ in cls._fields_]
        assert got == want

    def test_c_kernels_sanitized() -> None:
        env = C.sanitizer_env()
        if env is None:
            pytest.skip("gcc with libasan is needed for the sanitized C kernel tests")
        C.build_libraries()  # here, so that a compile error reads as one
        env["TT_C_KERNELS_SANITIZED"] = "1"
        r = subprocess.run(
            # --capture=sys: a sanitizer writes its report to fd 2 and exits, which must reach us
            [sys.executable, "-m", "pytest", __file__, "-v", "--capture=sys", "-p", "no:cacheprovider", "-x"],
            env=env, cwd=C.ROOT, capture_output=True, text=True, timeout=600,
        )
        assert r.returncode == 0, f"sanitized C kernel tests failed:\n{r.stdout[-20000:]}\n{r.stderr[-20000:]}"


# ----------------------------------------------------------------------------------------- helpers (child)

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def libs() -> list[C.Kernels]:
    return [C.Kernels(v) for v in C.VARIANTS]


def packed(mask: np.ndarray) -> np.ndarray:
    return np.packbits(np.asarray(mask, dtype=np.uint8).reshape(-1), bitorder="little")


def same(got: np.ndarray, want: np.ndarray, what: str) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    bad = np.nonzero(got.reshape(-1).astype(np.int64) != want.reshape(-1).astype(np.int64))[0]
    assert bad.size == 0, f"{what}: {bad.size} elements differ, first at {bad[0]}: {got.reshape(-1)[bad[0]]} != {want.reshape(-1)[bad[0]]}"


class Frozen:
    """Copies of a kernel's inputs, to check that it left them alone."""

    def __init__(self, **arrays: np.ndarray | None):
        self.arrays = {k: (v, None if v is None else v.copy()) for k, v in arrays.items()}

    def check(self) -> None:
        for name, (v, copy) in self.arrays.items():
            if v is not None:
                same(v, copy, f"input {name} modified")


@st.composite
def rng(draw) -> np.random.Generator:
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


@st.composite
def int8_values(draw, shape, lo=-128, hi=127) -> np.ndarray:
    """Uniform, extreme, or narrow int8 tensors (extremes hit the clamps and sums' bounds)."""
    r = draw(rng())
    style = draw(st.sampled_from(["uniform", "uniform", "extreme", "narrow"]))
    if style == "extreme":
        v = r.choice(np.array([lo, hi, lo + 1, hi - 1]), size=shape)
    elif style == "narrow":
        c = int(r.integers(lo, hi + 1))
        v = np.clip(c + r.integers(-3, 4, size=shape), lo, hi)
    else:
        v = r.integers(lo, hi + 1, size=shape)
    return np.ascontiguousarray(v, dtype=np.int8)


@st.composite
def int_values(draw, shape, bits: int, dtype=np.int16) -> np.ndarray:
    r = draw(rng())
    lim = 2 ** (bits - 1)
    style = draw(st.sampled_from(["uniform", "uniform", "extreme", "sparse"]))
    if style == "extreme":
        v = r.choice(np.array([-lim, lim - 1, -lim + 1, 0]), size=shape)
    elif style == "sparse":
        v = r.integers(-lim, lim, size=shape) * (r.random(shape) < 0.2)
    else:
        v = r.integers(-lim, lim, size=shape)
    return np.ascontiguousarray(v, dtype=dtype)


@st.composite
def requant(draw, n: int, acc_max: int = 2**16) -> tuple[np.ndarray, np.ndarray]:
    """(multiplier, shift) per channel. Mostly calibrated (M ~ 2^3..2^9 / max |acc|, so that outputs
    spread over the int8 range and an accumulator off by one tap shows), else raw values or zero."""
    r = draw(rng())
    style = draw(st.sampled_from(["calibrated", "calibrated", "calibrated", "raw", "mixed"]))
    mult, shift = np.zeros(n, dtype=np.int32), np.zeros(n, dtype=np.int32)
    for i in range(n):
        kind = style if style != "mixed" else r.choice(["calibrated", "raw", "zero"])
        if kind == "calibrated":
            mult[i], shift[i] = fp.quantize_multiplier(float(2.0 ** r.uniform(2, 9)) / max(int(acc_max), 1))
        elif kind == "raw":
            mult[i], shift[i] = r.integers(0, 2**31), r.integers(-31, 32)
    return mult, shift


@st.composite
def biases(draw, n: int, acc_max: int = 20000) -> np.ndarray:
    """Biases of the accumulators' size, plus dead channels near -2^31 (the saturating add) and ones near +2^31."""
    r = draw(rng())
    lim = max(int(acc_max), 1)
    b = r.integers(-lim, lim + 1, size=n).astype(np.int64)
    style = draw(st.sampled_from(["small", "small", "small", "dead", "mixed"]))
    if style != "small":
        pick = r.random(n) < (1.0 if style == "dead" else 0.4)
        b[pick] = INT32_MIN + r.integers(0, 4000, size=int(pick.sum()))
        top = (r.random(n) < 0.2) & ~pick
        b[top] = INT32_MAX - r.integers(0, 4000, size=int(top.sum()))
    return b.astype(np.int32)


def acc_max(acc: np.ndarray) -> int:
    return int(np.abs(acc).max()) if acc.size else 1


@st.composite
def conv_geometry(draw, h: int, w: int, kernel: int, stride: int, same_pad: bool):
    """(pad_top, pad_left, oh, ow): a whole tensor (symmetric padding) or a band of rows as a patch
    stage runs it (pad_top in 0..k//2, bottom padding up to k//2, fewer output rows, any pad_left)."""
    if draw(st.booleans()):
        pad = kernel // 2 if same_pad else 0
        return pad, pad, K.out_size(h, kernel, stride, pad), K.out_size(w, kernel, stride, pad)
    pt = draw(st.integers(0, kernel // 2))
    pl = draw(st.one_of(st.sampled_from([0, kernel // 2]), st.integers(0, kernel // 2)))
    oh_full = (h + pt + kernel // 2 - kernel) // stride + 1
    ow_full = (w + pl + kernel // 2 - kernel) // stride + 1
    assume(oh_full >= 1 and ow_full >= 1)
    oh = draw(st.integers(1, oh_full))
    ow = draw(st.one_of(st.just(ow_full), st.integers(1, ow_full)))
    return pt, pl, oh, ow


zero_points = st.integers(-128, 127)
kernels = st.sampled_from([1, 3, 5, 7])
strides = st.sampled_from([1, 2])
modes = st.sampled_from(list(C.ROUNDING))


def split_count(total: int):
    """k_lo / c_lo: all the edge cases (0, full, multiples of 4 and not) and anything between."""
    return st.one_of(st.sampled_from(sorted({0, total, total // 2, min(total, 4), max(total - 1, 0)})), st.integers(0, total))


@st.composite
def updates(draw) -> C.Update:
    return C.Update(draw(modes), draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)),
                    draw(st.one_of(st.integers(0, 2**32 - 1), st.integers(2**32 - 40, 2**32 - 1))))


@st.composite
def coefficients(draw, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Update coefficients lr / s^2 as quantize_multiplier pairs (or raw), exponents from tiny to huge."""
    r = draw(rng())
    if draw(st.booleans()):
        pairs = [fp.quantize_multiplier(float(2.0 ** r.uniform(-30, 30))) for _ in range(n)]
        return np.array([m for m, _ in pairs], dtype=np.int32), np.array([s for _, s in pairs], dtype=np.int32)
    return r.integers(0, 2**31, size=n).astype(np.int32), r.integers(-31, 32, size=n).astype(np.int32)


grad_exponents = st.one_of(st.integers(-45, 10), st.sampled_from([-60, -40, 20, 40]))


@st.composite
def update_exponent(draw, grad: np.ndarray, mult: np.ndarray, shift: np.ndarray) -> int:
    """Mostly an exponent that makes the largest step ~2^-3..2^7 int8 units, where rounding and
    the random bits decide the result; otherwise anything (saturation, the E >= 0 and n > 62 branches)."""
    if draw(st.integers(0, 3)) == 0:
        return draw(grad_exponents)
    p = int(np.abs(grad).max(initial=0)) * int(np.abs(mult).max(initial=0))
    target = draw(st.integers(-3, 7))
    # step ~ p 2^(e + max shift - 31)
    return target - max(p, 1).bit_length() - int(np.max(shift)) + 31


def expected_sgd(param, grad, e, mult, shift, u: C.Update, count: int, lo: int, hi: int, rand_shape=None):
    rand = fp.random_bits(u.seed, u.step, u.elem_offset, count)
    if rand_shape is not None:
        rand = rand.reshape(rand_shape)
    return K.sgd_update(param, grad, e, np.asarray(mult, dtype=np.int64), np.asarray(shift, dtype=np.int64), u.mode,
                        rand, lo, hi)


if SANITIZED:

    # ------------------------------------------------------------------------------------- fixed point

    @FAST
    @given(st.lists(st.tuples(st.integers(INT32_MIN, INT32_MAX), st.one_of(st.integers(0, INT32_MAX),
                                                                         st.integers(INT32_MIN, INT32_MAX),
                                                                         st.just(INT32_MIN)),
                              st.integers(-31, 31)), min_size=1, max_size=30))
    def test_mbqm(libs, cases) -> None:
        for x, m, s in cases + [(INT32_MIN, INT32_MIN, 0), (INT32_MIN, INT32_MIN, -5), (-(2**30), 2**30, 0)]:
            want = int(fp.multiply_by_quantized_multiplier(np.array([x]), m, s)[0])
            for lib in libs:
                assert lib.mbqm(x, m, s) == want, (lib, x, m, s)

    @FAST
    @given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=30))
    def test_mix32(libs, xs) -> None:
        want = fp.mix32(np.array(xs, dtype=np.uint32))
        for lib in libs:
            assert [lib.mix32(x) for x in xs] == [int(v) for v in want]

    @FAST
    @given(st.lists(st.tuples(st.integers(-(2**62) + 1, 2**62 - 1), st.integers(-140, 60), st.integers(0, 2**32 - 1)),
                    min_size=1, max_size=20), modes)
    def test_round_shift(libs, cases, mode) -> None:
        cases = cases + [(5, -1, 2**31), (-5, -1, 2**31), (2**61, -62, 0), (-(2**61), -63, 7), (3, 0, 0), (-(2**30), 45, 0),
                         (-1, -200, 2**32 - 1), (2**40 + 1, -33, 12345)]
        for p, e, r in cases:
            want = int(fp.round_shift(np.array([p], dtype=np.int64), e, mode, np.array([r], dtype=np.uint32))[0])
            for lib in libs:
                assert lib.round_shift(p, e, mode, r) == want, (lib, p, e, mode, r)

    # ------------------------------------------------------------------------------------- forward

    @FAST
    @given(st.data(), st.integers(1, 9), st.integers(1, 21), st.integers(1, 7), zero_points, zero_points,
           st.booleans(), st.booleans())
    def test_conv_pointwise(libs, data, hw, cin, cout, zx, zy, use_wsum, with_mask) -> None:
        k_lo = data.draw(split_count(cin))
        x = data.draw(int8_values((hw, cin)))
        w = data.draw(int8_values((cout, cin), -127, 127))
        amax = acc_max(K.conv_accumulate(x.reshape(hw, 1, cin), zx, w.reshape(cout, 1, 1, cin), np.zeros(cout), 1, 1, 0))
        bias = data.draw(biases(cout, amax))
        mult, shift = data.draw(requant(cout, amax))
        w_lo = np.ascontiguousarray(w[:, :k_lo]) if k_lo else None
        w_hi = np.ascontiguousarray(w[:, k_lo:]) if k_lo < cin else None
        wsum = w.astype(np.int32).sum(axis=1).astype(np.int32) if use_wsum else None
        acc = K.conv_accumulate(x.reshape(hw, 1, cin), zx, w.reshape(cout, 1, 1, cin), bias, 1, 1, 0)
        y_ref, m_ref = K.Requant(mult.astype(np.int64), shift.astype(np.int64), zy).apply(acc)
        frozen = Frozen(x=x, w_lo=w_lo, w_hi=w_hi, wsum=wsum, bias=bias, mult=mult, shift=shift)
        for lib in libs:
            y, m = lib.conv_pointwise(x, cout, w_lo, w_hi, k_lo, wsum, bias, mult, shift, zx, zy, with_mask)
            same(y, y_ref.reshape(hw, cout), f"{lib} y")
            if with_mask:
                same(m, packed(m_ref), f"{lib} mask")
        frozen.check()

    def check_depthwise(libs, data, h, w, c, kernel, stride, same_pad, zx, zy, with_mask, whole_reference) -> None:
        """Both libraries' depthwise conv against NumPy on a drawn case; with whole_reference, geometries
        that are whole tensors are checked against conv_accumulate (else conv_accumulate_rows)."""
        pt, pl, oh, ow = data.draw(conv_geometry(h, w, kernel, stride, same_pad))
        assume(oh >= 1 and ow >= 1)
        c_lo = data.draw(split_count(c))
        x = data.draw(int8_values((h, w, c)))
        wt = data.draw(int8_values((c, kernel, kernel, 1), -127, 127))
        amax = acc_max(K.conv_accumulate_rows(x, zx, wt, np.zeros(c), stride, c, pt, pl, oh, ow))
        bias = data.draw(biases(c, amax))
        mult, shift = data.draw(requant(c, amax))
        w_lo = np.ascontiguousarray(wt[:c_lo, :, :, 0]) if c_lo else None
        w_hi = np.ascontiguousarray(wt[c_lo:, :, :, 0]) if c_lo < c else None
        whole = pt == pl and (oh, ow) == (K.out_size(h, kernel, stride, pt), K.out_size(w, kernel, stride, pt))
        if whole_reference and whole:
            acc = K.conv_accumulate(x, zx, wt, bias, stride, c, pt)
        else:
            acc = K.conv_accumulate_rows(x, zx, wt, bias, stride, c, pt, pl, oh, ow)
        y_ref, m_ref = K.Requant(mult.astype(np.int64), shift.astype(np.int64), zy).apply(acc)
        frozen = Frozen(x=x, w_lo=w_lo, w_hi=w_hi, bias=bias, mult=mult, shift=shift)
        for lib in libs:
            y, m = lib.conv_depthwise(x, oh, ow, kernel, stride, pt, w_lo, w_hi, c_lo, bias, mult, shift, zx, zy,
                                      with_mask, pad_left=pl)
            same(y, y_ref, f"{lib} y")
            if with_mask:
                same(m, packed(m_ref), f"{lib} mask")
        frozen.check()

    @FAST
    @given(st.data(), st.integers(1, 9), st.integers(1, 9), st.integers(1, 11), kernels, strides, st.booleans(),
           zero_points, zero_points, st.booleans())
    def test_conv_depthwise(libs, data, h, w, c, kernel, stride, same_pad, zx, zy, with_mask) -> None:
        check_depthwise(libs, data, h, w, c, kernel, stride, same_pad, zx, zy, with_mask, whole_reference=True)

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data(), st.integers(1, 5), st.integers(1, 6), st.integers(30, 80), st.sampled_from([1, 3, 5, 7, 9]), strides,
           st.booleans(), zero_points, zero_points, st.booleans())
    def test_conv_depthwise_many_channels(libs, data, h, w, c, kernel, stride, same_pad, zx, zy, with_mask) -> None:
        """More channels than the portable path's 32-channel blocks (a partial last one), and a kernel
        larger than its transposed-weight buffer (9x9: one channel at a time)."""
        check_depthwise(libs, data, h, w, c, kernel, stride, same_pad, zx, zy, with_mask, whole_reference=True)

    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data(), st.integers(1, 6), st.integers(8, 40), st.integers(1, 9), st.sampled_from([3, 5, 7]), strides,
           zero_points, zero_points, st.booleans())
    def test_conv_depthwise_wide(libs, data, h, w, c, kernel, stride, zx, zy, with_mask) -> None:
        """Rows 8 to 40 wide (the DSP path's expanded rows run outputs 8 and more wide, in column tiles
        past 37 for 7x7), whole tensors and bands of rows."""
        check_depthwise(libs, data, h, w, c, kernel, stride, True, zx, zy, with_mask, whole_reference=False)

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data(), st.integers(1, 5), st.integers(88, 200), st.integers(4, 9), strides, zero_points, zero_points,
           st.booleans())
    def test_conv_depthwise_3x3_column_tiles(libs, data, h, w, c, stride, zx, zy, with_mask) -> None:
        """3x3 rows wider than one column tile of the planar path (92 outputs at stride 1, 46 at stride 2),
        whole tensors and bands of rows, channel tails included."""
        check_depthwise(libs, data, h, w, c, 3, stride, True, zx, zy, with_mask, whole_reference=False)

    @FAST
    @given(st.data(), st.integers(1, 10), st.integers(1, 20), st.integers(1, 11), st.sampled_from([1, 3, 5, 7]),
           zero_points, zero_points, st.booleans())
    def test_conv_depthwise_inplace(libs, data, h, w, c, kernel, zx, zy, with_mask) -> None:
        """The in-place stride-1 depthwise (ring or direct form) equals the out-of-place reference."""
        if with_mask:
            assume((w * c) % 8 == 0)  # the ring form's row masks must be byte-aligned
        c_lo = data.draw(split_count(c))
        x = data.draw(int8_values((h, w, c)))
        wt = data.draw(int8_values((c, kernel, kernel, 1), -127, 127))
        pad = kernel // 2
        amax = acc_max(K.conv_accumulate(x, zx, wt, np.zeros(c), 1, c, pad))
        bias = data.draw(biases(c, amax))
        mult, shift = data.draw(requant(c, amax))
        w_lo = np.ascontiguousarray(wt[:c_lo, :, :, 0]) if c_lo else None
        w_hi = np.ascontiguousarray(wt[c_lo:, :, :, 0]) if c_lo < c else None
        y_ref, m_ref = K.Requant(mult.astype(np.int64), shift.astype(np.int64), zy).apply(
            K.conv_accumulate(x, zx, wt, bias, 1, c, pad))
        for lib in libs:
            y, m = lib.conv_depthwise_inplace(x, kernel, w_lo, w_hi, c_lo, bias, mult, shift, zx, zy, with_mask)
            same(y, y_ref, f"{lib} y")
            if with_mask:
                same(m, packed(m_ref), f"{lib} mask")

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data(), st.integers(3, 19), st.integers(3, 19), st.integers(1, 24), strides, st.booleans(),
           zero_points, zero_points, st.booleans())
    def test_conv_first_layer(libs, data, h, w, cout, stride, same_pad, zx, zy, with_mask) -> None:
        """The commonest first layer, 3x3 over 3 channels (the DSP path reads the windows inside the input
        straight from their rows), on images large enough to have inside and border windows."""
        pt, pl, oh, ow = data.draw(conv_geometry(h, w, 3, stride, same_pad))
        assume(oh >= 1 and ow >= 1)
        x = data.draw(int8_values((h, w, 3)))
        wt = data.draw(int8_values((cout, 3, 3, 3), -127, 127))
        amax = acc_max(K.conv_accumulate_rows(x, zx, wt, np.zeros(cout), stride, 1, pt, pl, oh, ow))
        bias = data.draw(biases(cout, amax))
        mult, shift = data.draw(requant(cout, amax))
        acc = K.conv_accumulate_rows(x, zx, wt, bias, stride, 1, pt, pl, oh, ow)
        y_ref, m_ref = K.Requant(mult.astype(np.int64), shift.astype(np.int64), zy).apply(acc)
        for lib in libs:
            y, m = lib.conv_generic(x, oh, ow, cout, 3, stride, pt, 1, wt, bias, mult, shift, zx, zy, with_mask,
                                    pad_left=pl)
            same(y, y_ref, f"{lib} y")
            if with_mask:
                same(m, packed(m_ref), f"{lib} mask")

    @FAST
    @given(st.data(), st.integers(1, 7), st.integers(1, 7), st.integers(1, 6), st.integers(1, 3),
           st.sampled_from([1, 3, 5]), strides, st.booleans(), zero_points, zero_points, st.booleans())
    def test_conv_generic(libs, data, h, w, cin, og, kernel, stride, same_pad, zx, zy, with_mask) -> None:
        groups = data.draw(st.sampled_from([g for g in range(1, cin + 1) if cin % g == 0]))
        cout = groups * og
        pt, pl, oh, ow = data.draw(conv_geometry(h, w, kernel, stride, same_pad))
        assume(oh >= 1 and ow >= 1)
        x = data.draw(int8_values((h, w, cin)))
        wt = data.draw(int8_values((cout, kernel, kernel, cin // groups), -127, 127))
        amax = acc_max(K.conv_accumulate_rows(x, zx, wt, np.zeros(cout), stride, groups, pt, pl, oh, ow))
        bias = data.draw(biases(cout, amax))
        mult, shift = data.draw(requant(cout, amax))
        if pt == pl and (oh, ow) == (K.out_size(h, kernel, stride, pt), K.out_size(w, kernel, stride, pt)):
            acc = K.conv_accumulate(x, zx, wt, bias, stride, groups, pt)
        else:
            acc = K.conv_accumulate_rows(x, zx, wt, bias, stride, groups, pt, pl, oh, ow)
        y_ref, m_ref = K.Requant(mult.astype(np.int64), shift.astype(np.int64), zy).apply(acc)
        frozen = Frozen(x=x, wt=wt, bias=bias, mult=mult, shift=shift)
        for lib in libs:
            y, m = lib.conv_generic(x, oh, ow, cout, kernel, stride, pt, groups, wt, bias, mult, shift, zx, zy, with_mask,
                                    pad_left=pl)
            same(y, y_ref, f"{lib} y")
            if with_mask:
                same(m, packed(m_ref), f"{lib} mask")
        frozen.check()

    @FAST
    @given(st.data(), st.integers(1, 40), st.floats(0.002, 0.2), st.floats(0.002, 0.2), st.floats(0.002, 0.4),
           zero_points, zero_points, zero_points, st.booleans(), st.booleans())
    def test_add(libs, data, n, s1, s2, so, z1, z2, zo, raw, with_mask) -> None:
        a, b = data.draw(int8_values(n)), data.draw(int8_values(n))
        p = K.make_add_params(s1, z1, s2, z2, so, zo)
        if raw:  # any multipliers: the reference's int64 sum then wraps like the C int32 sum
            r = data.draw(rng())
            p = K.AddParams(int(r.integers(0, 23)), (z1, int(r.integers(0, 2**31)), int(r.integers(-31, 8))),
                            (z2, int(r.integers(0, 2**31)), int(r.integers(-31, 8))),
                            (zo, int(r.integers(0, 2**31)), int(r.integers(-31, 8))))
        y_ref, m_ref = K.add_forward(a, b, p)
        params = C.AddParams(p.left_shift, *p.in1, *p.in2, *p.out)
        frozen = Frozen(a=a, b=b)
        for lib in libs:
            y, m = lib.add(a, b, params, with_mask)
            same(y, y_ref, f"{lib} y")
            if with_mask:
                same(m, packed(m_ref), f"{lib} mask")
            a2 = a.copy()  # element-wise, so the output may overwrite an input
            same(lib.add(a2, b, params, False, out=a2)[0], y_ref, f"{lib} y in place")
        frozen.check()

    @FAST
    @given(st.data(), st.integers(1, 40), st.integers(1, 12), zero_points, zero_points, st.booleans(), st.booleans())
    def test_avgpool(libs, data, hw, c, zx, zy, raw, with_mask) -> None:
        x = data.draw(int8_values((hw, c)))
        r = data.draw(rng())
        if raw:
            mult, shift = int(r.integers(0, 2**31)), int(r.integers(-31, 10))
        else:
            mult, shift = fp.quantize_multiplier(float(r.uniform(0.2, 3.0)) / hw)
        acc = K.avgpool_accumulate(x.reshape(hw, 1, c), zx)
        y_ref, m_ref = K.Requant(np.array([mult]), np.array([shift]), zy).apply(acc)
        frozen = Frozen(x=x)
        for lib in libs:
            y, m = lib.avgpool(x, mult, shift, zx, zy, with_mask)
            same(y, y_ref.reshape(-1), f"{lib} y")
            if with_mask:
                same(m, packed(m_ref), f"{lib} mask")
        frozen.check()

    @FAST
    @given(st.data(), st.integers(1, 20), st.integers(1, 12), st.booleans())
    def test_save_channels(libs, data, hw, c, in_place) -> None:
        k = data.draw(st.integers(1, c))
        x = data.draw(int8_values((hw, c)))
        want = x[:, :k].copy()
        for lib in libs:
            if in_place:
                buf = x.copy()
                lib.save_channels(buf, k, out=buf.reshape(-1)[: hw * k].reshape(hw, k))
                same(buf.reshape(-1)[: hw * k].reshape(hw, k), want, f"{lib} in place")
            else:
                same(lib.save_channels(x, k), want, f"{lib}")

    # ------------------------------------------------------------------------------------- loss

    @FAST
    @given(st.data(), st.integers(1, 60), st.floats(0.005, 0.6), st.one_of(st.integers(0, 2**20), st.integers(0, 2**32 - 1)),
           st.integers(4, 16))
    def test_loss_grad(libs, data, n, scale, lr_scale, bits) -> None:
        logits = data.draw(int8_values(n))
        label = data.draw(st.integers(0, n - 1))
        table = K.softmax_table(scale)
        s_mult, s_shift = fp.quantize_multiplier(scale)
        g_ref, e_ref = K.loss_backward(logits, label, table, lr_scale, (s_mult, s_shift), bits)
        frozen = Frozen(logits=logits, table=table)
        for lib in libs:
            g, e = lib.loss_grad(logits, label, table, lr_scale, s_mult, s_shift, bits)
            same(g, g_ref, f"{lib} g")
            assert e == e_ref, (lib, e, e_ref)
        frozen.check()

    # ------------------------------------------------------------------------------------- backward

    @FAST
    @given(st.data(), st.integers(1, 12), st.integers(1, 10), st.integers(-60, 10), st.booleans(), st.booleans(),
           st.integers(2, 16), st.booleans())
    def test_requant_grad(libs, data, hw, c, e, per_channel, with_mask, bits, in_place) -> None:
        g = data.draw(int_values((hw, c), 16))
        mult, shift = data.draw(requant(c if per_channel else 1))
        r = data.draw(rng())
        mask_bool = r.random((hw, c)) < 0.7 if with_mask else None
        mask = packed(mask_bool) if with_mask else None
        out_ref, e_ref = K.requant_backward(g, e, mask_bool, mult.astype(np.int64), shift.astype(np.int64), bits)
        for lib in libs:
            gin = g.copy()
            frozen = Frozen(mask=mask, mult=mult, shift=shift) if in_place else Frozen(g=gin, mask=mask, mult=mult, shift=shift)
            out, e2 = lib.requant_grad(gin, e, mask, mult, shift, bits, out=gin if in_place else None)
            same(out, out_ref, f"{lib} out")
            assert e2 == e_ref, (lib, e2, e_ref)
            frozen.check()

    @FAST
    @given(st.data(), st.integers(1, 12), st.integers(1, 10), st.booleans())
    def test_broadcast_rows(libs, data, hw, c, in_place) -> None:
        src = data.draw(int_values(c, 16))
        want = np.broadcast_to(src, (hw, c))
        for lib in libs:
            out = np.full((hw, c), 0x5A5A, dtype=np.int16)
            if in_place:
                out[0] = src
                lib.broadcast_rows(out, hw, c, out)
            else:
                lib.broadcast_rows(src.copy(), hw, c, out)
            same(out, want, f"{lib}")

    def check_input_grad16(got: tuple[np.ndarray, int], want32: np.ndarray, e: int, bits: int, what: str) -> None:
        """The int16 form equals the int32 input gradient renormalized as grad_sum does it."""
        want, e_ref = K.grad_sum([(want32.astype(np.int64), e)], bits)
        gx, e2 = got
        same(gx, want.reshape(gx.shape), f"{what} int16 (bits {bits})")
        assert e2 == e_ref, (what, e2, e_ref)

    grad_bits = st.one_of(st.just(16), st.integers(2, 16))

    @FAST
    @given(st.data(), st.integers(1, 9), st.integers(1, 21), st.integers(1, 21))
    def test_input_grad_pointwise(libs, data, hw, cout, cin) -> None:
        check_input_grad_pointwise(libs, data, hw, cout, cin)

    @FAST
    @given(st.data(), st.integers(1, 3), st.integers(1, 5), st.integers(60, 140))
    def test_input_grad_pointwise_wide_rows(libs, data, hw, cout, cin) -> None:
        """Rows longer than the portable path's 64-column accumulator (several blocks, a partial last one)."""
        check_input_grad_pointwise(libs, data, hw, cout, cin)

    def check_input_grad_pointwise(libs, data, hw: int, cout: int, cin: int) -> None:
        k_lo = data.draw(split_count(cin))
        g = data.draw(int_values((hw, cout), 16))
        w = data.draw(int8_values((cout, cin), -127, 127))
        w_lo = np.ascontiguousarray(w[:, :k_lo]) if k_lo else None
        w_hi = np.ascontiguousarray(w[:, k_lo:]) if k_lo < cin else None
        want = K.conv_backward_input(g.reshape(hw, 1, cout), w.reshape(cout, 1, 1, cin), 1, 1, 0, (hw, 1, cin))
        e, bits = data.draw(grad_exponents), data.draw(grad_bits)
        frozen = Frozen(g=g, w_lo=w_lo, w_hi=w_hi)
        for lib in libs:
            same(lib.input_grad_pointwise(g, w_lo, w_hi, k_lo, cin), want.reshape(hw, cin), f"{lib}")
            check_input_grad16(lib.input_grad_pointwise16(g, e, w_lo, w_hi, k_lo, cin, bits), want, e, bits, f"{lib}")
        frozen.check()

    @FAST
    @given(st.data(), st.integers(1, 9), st.integers(1, 9), st.integers(1, 11), kernels, strides, st.booleans())
    def test_input_grad_depthwise(libs, data, h, w, c, kernel, stride, same_pad) -> None:
        pad = kernel // 2 if same_pad else 0
        oh, ow = K.out_size(h, kernel, stride, pad), K.out_size(w, kernel, stride, pad)
        assume(oh >= 1 and ow >= 1)
        c_lo = data.draw(split_count(c))
        g = data.draw(int_values((oh, ow, c), 16))
        wt = data.draw(int8_values((c, kernel, kernel, 1), -127, 127))
        w_lo = np.ascontiguousarray(wt[:c_lo, :, :, 0]) if c_lo else None
        w_hi = np.ascontiguousarray(wt[c_lo:, :, :, 0]) if c_lo < c else None
        want = K.conv_backward_input(g, wt, stride, c, pad, (h, w, c))
        e, bits = data.draw(grad_exponents), data.draw(grad_bits)
        frozen = Frozen(g=g, w_lo=w_lo, w_hi=w_hi)
        for lib in libs:
            same(lib.input_grad_depthwise(g, kernel, stride, pad, h, w, w_lo, w_hi, c_lo), want, f"{lib}")
            check_input_grad16(lib.input_grad_depthwise16(g, e, kernel, stride, pad, h, w, w_lo, w_hi, c_lo, bits),
                               want, e, bits, f"{lib}")
        frozen.check()

    @FAST
    @given(st.data(), st.integers(1, 9), st.integers(1, 9), st.integers(1, 11), st.sampled_from([1, 3, 5, 7]))
    def test_input_grad_depthwise16_inplace(libs, data, h, w, c, kernel) -> None:
        """In place (g overwritten by gx through the (pad + 1)-row ring) equals the reference, i.e. the
        out-of-place int16 form; odd and even sizes, tiny h (h < pad + 1 too), every channel split."""
        pad = kernel // 2
        c_lo = data.draw(split_count(c))
        g = data.draw(int_values((h, w, c), 16))
        wt = data.draw(int8_values((c, kernel, kernel, 1), -127, 127))
        w_lo = np.ascontiguousarray(wt[:c_lo, :, :, 0]) if c_lo else None
        w_hi = np.ascontiguousarray(wt[c_lo:, :, :, 0]) if c_lo < c else None
        want32 = K.conv_backward_input(g, wt, 1, c, pad, (h, w, c))
        e, bits = data.draw(grad_exponents), data.draw(grad_bits)
        want, e_ref = K.grad_sum([(want32.astype(np.int64), e)], bits)
        frozen = Frozen(w_lo=w_lo, w_hi=w_hi)
        for lib in libs:
            gx, e2 = lib.input_grad_depthwise16_inplace(g.copy(), e, kernel, pad, w_lo, w_hi, c_lo, bits)
            same(gx, want.reshape(gx.shape), f"{lib} in place (bits {bits})")
            assert e2 == e_ref, (lib, e2, e_ref)
        frozen.check()

    @pytest.mark.parametrize("bits", [16, 12, 5])
    def test_input_grad_depthwise16_max_at_thresholds(libs, bits) -> None:
        """Maxima |v| one below, at and one above each renormalization threshold, reached by a positive or
        only by a negative value: the fast first pass knows max |v| only up to one (max of v ^ (v >> 31))
        and must settle such ties exactly."""
        thresholds = [2 ** (bits - 1)] + [2 ** (bits - 1 + t) - 2 ** (t - 1) for t in range(1, 4)]
        for thr in thresholds:
            for target in (thr - 1, thr, thr + 1):
                for sign in (1, -1):
                    t = sign * target
                    m = max(1, -(-abs(t) // 30000))
                    q = int(np.fix(t / m))
                    rem = t - q * m
                    g = np.zeros((2, 4, 2), dtype=np.int16)
                    g[0, 0, :] = q
                    g[0, 1, :] = rem
                    g[1, 3, 1] = -q // 3
                    wt = np.zeros((2, 3, 3, 1), dtype=np.int8)
                    wt[:, 1, 1, 0] = m
                    wt[:, 1, 0, 0] = 1
                    want32 = K.conv_backward_input(g, wt, 1, 2, 1, (2, 4, 2))
                    assert abs(int(want32[0, 0, 0])) == target
                    want, e_ref = K.grad_sum([(want32.astype(np.int64), -3)], bits)
                    w_hi = np.ascontiguousarray(wt[:, :, :, 0])
                    for lib in libs:
                        what = f"{lib} bits={bits} v={t}"
                        gx, e2 = lib.input_grad_depthwise16(g, -3, 3, 1, 1, 2, 4, None, w_hi, 0, bits)
                        same(gx, want.reshape(gx.shape), what)
                        assert e2 == e_ref, what
                        gx, e2 = lib.input_grad_depthwise16_inplace(g.copy(), -3, 3, 1, None, w_hi, 0, bits)
                        same(gx, want.reshape(gx.shape), what + " in place")
                        assert e2 == e_ref, what

    @pytest.mark.parametrize("kernel", [3, 5, 7])
    def test_input_grad_depthwise16_inplace_layers(libs, kernel) -> None:
        """Layer-sized in-place cases (the planes in the ring; planes too large for it and for the stack
        take the row-by-row ring), against the out-of-place kernel and the reference."""
        r = np.random.default_rng(kernel)
        for h, w, c, c_lo in [(4, 4, 96, 0), (8, 8, 40, 8), (7, 7, 24, 24), (5, 9, 9, 4), (20, 20, 6, 2), (1, 6, 10, 3)]:
            pad = kernel // 2
            g = r.integers(-(2**15), 2**15, (h, w, c)).astype(np.int16)
            wt = r.integers(-127, 128, (c, kernel, kernel, 1)).astype(np.int8)
            w_lo = np.ascontiguousarray(wt[:c_lo, :, :, 0]) if c_lo else None
            w_hi = np.ascontiguousarray(wt[c_lo:, :, :, 0]) if c_lo < c else None
            want32 = K.conv_backward_input(g, wt, 1, c, pad, (h, w, c))
            for bits in (16, 11):
                want, e_ref = K.grad_sum([(want32.astype(np.int64), -9)], bits)
                for lib in libs:
                    gx, e2 = lib.input_grad_depthwise16_inplace(g.copy(), -9, kernel, pad, w_lo, w_hi, c_lo, bits)
                    what = f"{lib} {h}x{w}x{c} k={kernel} bits={bits}"
                    same(gx, want.reshape(gx.shape), what)
                    assert e2 == e_ref, what
                    gx2, e3 = lib.input_grad_depthwise16(g, -9, kernel, 1, pad, h, w, w_lo, w_hi, c_lo, bits)
                    same(gx2, gx, what + " (out of place)")
                    assert e3 == e2

    @FAST
    @given(st.data(), st.integers(1, 7), st.integers(1, 7), st.integers(1, 6), st.integers(1, 3),
           st.sampled_from([1, 3, 5]), strides, st.booleans())
    def test_input_grad_generic(libs, data, h, w, cin, og, kernel, stride, same_pad) -> None:
        groups = data.draw(st.sampled_from([g for g in range(1, cin + 1) if cin % g == 0]))
        cout = groups * og
        pad = kernel // 2 if same_pad else 0
        oh, ow = K.out_size(h, kernel, stride, pad), K.out_size(w, kernel, stride, pad)
        assume(oh >= 1 and ow >= 1)
        g = data.draw(int_values((oh, ow, cout), 16))
        wt = data.draw(int8_values((cout, kernel, kernel, cin // groups), -127, 127))
        want = K.conv_backward_input(g, wt, stride, groups, pad, (h, w, cin))
        e, bits = data.draw(grad_exponents), data.draw(grad_bits)
        frozen = Frozen(g=g, wt=wt)
        for lib in libs:
            same(lib.input_grad_generic(g, kernel, stride, pad, groups, wt, h, w, cin), want, f"{lib}")
            check_input_grad16(lib.input_grad_generic16(g, e, kernel, stride, pad, groups, wt, h, w, cin, bits),
                               want, e, bits, f"{lib}")
        frozen.check()

    @FAST
    @given(st.data(), st.integers(1, 40), st.lists(st.booleans(), min_size=1, max_size=3), st.integers(2, 16),
           st.booleans())
    def test_grad_sum(libs, data, n, is32, bits, in_place) -> None:
        parts = [data.draw(int_values(n, 32, np.int32) if wide else int_values(n, 16)) for wide in is32]
        spread = data.draw(st.sampled_from([0, 3, 24, 25, 40, 62, 80]))
        base = data.draw(st.integers(-60, 20))
        exps = [base + data.draw(st.integers(0, spread)) for _ in parts]
        want, e_ref = K.grad_sum([(p.astype(np.int64), e) for p, e in zip(parts, exps)], bits)
        for lib in libs:
            ps = [p.copy() for p in parts]
            out = ps[0].view(np.int16)[:n] if in_place else None
            frozen = Frozen(**{f"part{i}": p for i, p in enumerate(ps) if not (in_place and i == 0)})
            got, e = lib.grad_sum(ps, exps, bits, out=out)
            same(got, want, f"{lib} out (exps {exps})")
            assert e == e_ref, (lib, e, e_ref)
            frozen.check()

    # ------------------------------------------------------------------------------------- fused updates

    @FAST
    @given(st.data(), st.integers(1, 12), st.integers(1, 9), st.integers(1, 21), zero_points, updates())
    def test_weight_update_pointwise(libs, data, hw, cout, cin, zx, u) -> None:
        """Pointwise (and dense: hw = 1) weights [cout][k]: conv_weight_grad + sgd_update as _apply_weight does."""
        k = data.draw(st.integers(1, cin))
        xs_c = data.draw(st.sampled_from([k, cin]))
        g = data.draw(int_values((hw, cout), 16))
        xs = data.draw(int8_values((hw, xs_c)))
        w_lo = data.draw(int8_values((cout, k), -127, 127))
        mult, shift = data.draw(coefficients(cout))
        if hw == 1 and data.draw(st.booleans()):
            gw = K.dense_weight_grad(g, xs, zx, k)
        else:
            gw = K.conv_weight_grad(g.reshape(hw, 1, cout), xs.reshape(hw, 1, xs_c), zx, 1, 1, 1, 0, k).reshape(cout, k)
        e = data.draw(update_exponent(gw, mult, shift))
        want = expected_sgd(w_lo, gw, e, mult, shift, u, cout * k, K.WMIN, K.WMAX, (cout, k))
        frozen = Frozen(g=g, xs=xs, mult=mult, shift=shift)
        for lib in libs:
            got = lib.weight_update_pointwise(g, e, xs, k, zx, w_lo.copy(), mult, shift, u)
            same(got, want, f"{lib} ({u.mode})")
            got = lib.weight_update_pointwise(g, e, xs, k, zx, w_lo.copy(), mult, shift, u, scratch=False)
            same(got, want, f"{lib} ({u.mode}, no scratch)")
        frozen.check()

    @pytest.mark.parametrize("hw, cout, k, xs_c", [(256, 6, 5, 9), (257, 5, 3, 3), (255, 9, 7, 8), (2, 4, 2, 2)])
    def test_weight_update_pointwise_positions(libs, hw, cout, k, xs_c) -> None:
        """The packed path's limits: the most positions it takes (odd and even), one past them (the path
        without the table), the fewest; output channels past a block of 4, odd inputs of a wider row."""
        r = np.random.default_rng(hw)
        g = r.integers(-(2**15), 2**15, (hw, cout)).astype(np.int16)
        xs = r.integers(-128, 128, (hw, xs_c)).astype(np.int8)
        w_lo = r.integers(-127, 128, (cout, k)).astype(np.int8)
        cm, cs = (np.array(v, dtype=np.int32) for v in zip(*[fp.quantize_multiplier(float(2.0 ** r.uniform(-2, 8)))
                                                              for _ in range(cout)]))
        gw = K.conv_weight_grad(g.reshape(hw, 1, cout), xs.reshape(hw, 1, xs_c), 17, 1, 1, 1, 0, k).reshape(cout, k)
        e0 = -int(np.abs(gw).max()).bit_length() - int(cs.max()) + 4
        # right shifts of the update about 55 (m < 32), 67 and more (m >= 32), about 30 (the element-wise path)
        for e, mode in itertools.product((e0, e0 - 12, e0 - 40, e0 + 25), ("stochastic", "nearest", "truncate")):
            u = C.Update(mode, 3, 9, 40)
            want = expected_sgd(w_lo, gw, e, cm, cs, u, cout * k, K.WMIN, K.WMAX, (cout, k))
            for lib in libs:
                same(lib.weight_update_pointwise(g, e, xs, k, 17, w_lo.copy(), cm, cs, u), want, f"{lib} {mode} e {e}")

    @FAST
    @given(st.data(), st.integers(1, 9), st.integers(1, 9), st.integers(1, 11), kernels, strides, st.booleans(),
           zero_points, updates())
    def test_weight_update_depthwise(libs, data, h, w, c, kernel, stride, same_pad, zx, u) -> None:
        pad = kernel // 2 if same_pad else 0
        oh, ow = K.out_size(h, kernel, stride, pad), K.out_size(w, kernel, stride, pad)
        assume(oh >= 1 and ow >= 1)
        k = data.draw(st.integers(1, c))
        xs_c = data.draw(st.sampled_from([k, c]))
        g = data.draw(int_values((oh, ow, c), 16))
        xs = data.draw(int8_values((h, w, xs_c)))
        w_lo = data.draw(int8_values((k, kernel, kernel), -127, 127))
        mult, shift = data.draw(coefficients(c))
        gw = K.conv_weight_grad(g, xs, zx, kernel, stride, c, pad, k).reshape(k, kernel, kernel)
        e = data.draw(update_exponent(gw, mult[:k], shift[:k]))
        want = expected_sgd(w_lo, gw, e, mult[:k], shift[:k], u, w_lo.size, K.WMIN, K.WMAX, w_lo.shape)
        frozen = Frozen(g=g, xs=xs, mult=mult, shift=shift)
        for lib in libs:
            got = lib.weight_update_depthwise(g, e, xs, k, kernel, stride, pad, zx, w_lo.copy(), mult, shift, u)
            same(got, want, f"{lib} ({u.mode})")
        frozen.check()

    @FAST
    @given(st.data(), st.integers(1, 7), st.integers(1, 7), st.integers(1, 5), st.integers(1, 5),
           st.sampled_from([1, 3, 5]), strides, st.booleans(), zero_points, updates())
    def test_weight_update_generic(libs, data, h, w, cin, cout, kernel, stride, same_pad, zx, u) -> None:
        """Full conv, whole tensor in SRAM, input channels [0, k) updated, PRNG index over the whole tensor."""
        pad = kernel // 2 if same_pad else 0
        oh, ow = K.out_size(h, kernel, stride, pad), K.out_size(w, kernel, stride, pad)
        assume(oh >= 1 and ow >= 1)
        k = data.draw(st.integers(1, cin))
        xs_c = data.draw(st.sampled_from([k, cin]))
        g = data.draw(int_values((oh, ow, cout), 16))
        xs = data.draw(int8_values((h, w, xs_c)))
        wt = data.draw(int8_values((cout, kernel, kernel, cin), -127, 127))
        mult, shift = data.draw(coefficients(cout))
        gw = K.conv_weight_grad(g, xs, zx, kernel, stride, 1, pad, k)
        e = data.draw(update_exponent(gw, mult, shift))
        rand = fp.random_bits(u.seed, u.step, u.elem_offset, wt.size).reshape(wt.shape)[..., :k]
        want = wt.copy()
        want[..., :k] = K.sgd_update(wt[..., :k], gw, e, mult.astype(np.int64), shift.astype(np.int64), u.mode, rand,
                                     K.WMIN, K.WMAX)
        frozen = Frozen(g=g, xs=xs, mult=mult, shift=shift)
        for lib in libs:
            got = lib.weight_update_generic(g, e, xs, k, kernel, stride, pad, zx, wt.copy(), mult, shift, u)
            same(got, want, f"{lib} ({u.mode})")
        frozen.check()

    @FAST
    @given(st.data(), st.integers(1, 30), st.integers(1, 10), updates())
    def test_bias_update(libs, data, hw, c, u) -> None:
        g = data.draw(int_values((hw, c), 16))
        bias = data.draw(biases(c))
        mult, shift = data.draw(coefficients(c))
        e = data.draw(update_exponent(K.bias_grad(g), mult, shift))
        want = expected_sgd(bias, K.bias_grad(g), e, mult, shift, u, c, INT32_MIN, INT32_MAX)
        frozen = Frozen(g=g, mult=mult, shift=shift)
        for lib in libs:
            got = lib.bias_update(g, e, bias.copy(), mult, shift, u)
            same(got, want, f"{lib} ({u.mode})")
        frozen.check()

    # ------------------------------------------------------------------------------------- layer-sized cases

    @pytest.mark.parametrize("seed", range(3))
    def test_layer_sized_shapes(libs, seed) -> None:
        """Shapes like the paper's layers (long unrolled loops, many channel groups), fixed seeds."""
        r = np.random.default_rng(seed)
        hw, cin, cout, k_lo, zx, zy = 64, 64, 48, 24, -7, 11
        x = r.integers(-128, 128, (hw, cin)).astype(np.int8)
        w = r.integers(-127, 128, (cout, cin)).astype(np.int8)
        acc0 = K.conv_accumulate(x.reshape(8, 8, cin), zx, w.reshape(cout, 1, 1, cin), np.zeros(cout), 1, 1, 0)
        bias = r.integers(-acc_max(acc0), acc_max(acc0), cout).astype(np.int32)
        bias[0] = INT32_MIN + 3
        pairs = [fp.quantize_multiplier(float(2.0 ** r.uniform(4, 8)) / acc_max(acc0)) for _ in range(cout)]
        mult, shift = (np.array(v, dtype=np.int32) for v in zip(*pairs))
        y_ref, m_ref = K.Requant(mult.astype(np.int64), shift.astype(np.int64), zy).apply(
            K.conv_accumulate(x.reshape(8, 8, cin), zx, w.reshape(cout, 1, 1, cin), bias, 1, 1, 0))
        g = r.integers(-(2**15), 2**15, (hw, cout)).astype(np.int16)
        u = C.Update("stochastic", 5, 77, 1000)
        cm, cs = (np.array(v, dtype=np.int32) for v in zip(*[fp.quantize_multiplier(float(2.0 ** r.uniform(-2, 8)))
                                                              for _ in range(cout)]))
        gw = K.conv_weight_grad(g.reshape(8, 8, cout), x.reshape(8, 8, cin), zx, 1, 1, 1, 0, k_lo).reshape(cout, k_lo)
        e = -31 - int(np.abs(gw).max()).bit_length() - int(cs.max()) + 31 + 4
        w_want = expected_sgd(w[:, :k_lo].copy(), gw, e, cm, cs, u, cout * k_lo, K.WMIN, K.WMAX, (cout, k_lo))
        gx_want = K.conv_backward_input(g.reshape(hw, 1, cout), w.reshape(cout, 1, 1, cin), 1, 1, 0, (hw, 1, cin))
        for lib in libs:
            w_lo, w_hi = np.ascontiguousarray(w[:, :k_lo]), np.ascontiguousarray(w[:, k_lo:])
            y, m = lib.conv_pointwise(x, cout, w_lo, w_hi, k_lo, None, bias, mult, shift, zx, zy, True)
            same(y, y_ref.reshape(hw, cout), f"{lib} pointwise y")
            same(m, packed(m_ref), f"{lib} pointwise mask")
            y, _ = lib.conv_pointwise(x, cout, np.ascontiguousarray(w), None, cin, None, bias, mult, shift, zx, zy, False)
            same(y, y_ref.reshape(hw, cout), f"{lib} pointwise y (one part)")
            same(lib.input_grad_pointwise(g, w_lo, w_hi, k_lo, cin), gx_want.reshape(hw, cin), f"{lib} input grad")
            same(lib.weight_update_pointwise(g, e, x, k_lo, zx, w_lo.copy(), cm, cs, u), w_want, f"{lib} update")
            same(lib.weight_update_pointwise(g, e, x, k_lo, zx, w_lo.copy(), cm, cs, u, scratch=False), w_want,
                 f"{lib} update (no scratch)")
        for kernel, stride in [(3, 1), (3, 2), (5, 1), (7, 2)]:
            h, c, c_lo = 10, 36, 13
            pad = kernel // 2
            oh = K.out_size(h, kernel, stride, pad)
            x = r.integers(-128, 128, (h, h, c)).astype(np.int8)
            wt = r.integers(-127, 128, (c, kernel, kernel, 1)).astype(np.int8)
            amax = acc_max(K.conv_accumulate(x, zx, wt, np.zeros(c), stride, c, pad))
            mult = np.full(c, fp.quantize_multiplier(64.0 / amax)[0], dtype=np.int32)
            shift = np.full(c, fp.quantize_multiplier(64.0 / amax)[1], dtype=np.int32)
            bias = r.integers(-amax, amax, c).astype(np.int32)
            y_ref, m_ref = K.Requant(mult.astype(np.int64), shift.astype(np.int64), zy).apply(
                K.conv_accumulate(x, zx, wt, bias, stride, c, pad))
            g = r.integers(-(2**15), 2**15, (oh, oh, c)).astype(np.int16)
            gx_want = K.conv_backward_input(g, wt, stride, c, pad, (h, h, c))
            gw = K.conv_weight_grad(g, x, zx, kernel, stride, c, pad, c_lo).reshape(c_lo, kernel, kernel)
            cm = np.full(c, 2**30, dtype=np.int32)
            cs = np.zeros(c, dtype=np.int32)
            e = -int(np.abs(gw).max()).bit_length() + 1 + 4
            w_lo = np.ascontiguousarray(wt[:c_lo, :, :, 0])
            w_want = expected_sgd(w_lo.copy(), gw, e, cm[:c_lo], cs[:c_lo], u, w_lo.size, K.WMIN, K.WMAX, w_lo.shape)
            for lib in libs:
                w_hi = np.ascontiguousarray(wt[c_lo:, :, :, 0])
                y, m = lib.conv_depthwise(x, oh, oh, kernel, stride, pad, w_lo, w_hi, c_lo, bias, mult, shift, zx, zy, True)
                same(y, y_ref, f"{lib} depthwise {kernel}x{kernel}/{stride} y")
                same(m, packed(m_ref), f"{lib} depthwise {kernel}x{kernel}/{stride} mask")
                same(lib.input_grad_depthwise(g, kernel, stride, pad, h, h, w_lo, w_hi, c_lo), gx_want,
                     f"{lib} depthwise {kernel}x{kernel}/{stride} input grad")
                same(lib.weight_update_depthwise(g, e, x, c_lo, kernel, stride, pad, zx, w_lo.copy(), cm, cs, u), w_want,
                     f"{lib} depthwise {kernel}x{kernel}/{stride} update")

    # ------------------------------------------------------------------------------------- rounding edges

    @pytest.mark.parametrize("bits", [2, 4, 9, 15, 16])
    def test_normalize_boundaries(libs, bits) -> None:
        """Maxima just below, at and above 2^(bits-1) and the values that round up onto it: the
        renormalization shift's bit-length and round-up cases (through requant_grad with M = 1)."""
        lim = 2 ** (bits - 1)
        mult, shift = np.array([1], dtype=np.int32), np.array([0], dtype=np.int32)
        for top in sorted({lim - 1, lim, lim + 1, 2 * lim - 1, 2 * lim + 1, 4 * lim - 2, 4 * lim - 3, 32767, 1}):
            if top > 32767:
                continue
            g = np.array([[top, -top, top // 2, -(top // 2) - 1, 1, 0, -1]], dtype=np.int16)
            want, e_ref = K.requant_backward(g, -5, None, mult.astype(np.int64), shift.astype(np.int64), bits)
            for lib in libs:
                out, e = lib.requant_grad(g, -5, None, mult, shift, bits)
                same(out, want, f"{lib} bits={bits} top={top}")
                assert e == e_ref

    @pytest.mark.parametrize("gap", [22, 23, 24, 25, 26, 40])
    def test_grad_sum_double_rounding(libs, gap) -> None:
        """Every low part value against a large part `gap` binades up: the common exponent (24-bit
        cap) and the two roundings decide ties, so any other choice shows."""
        low = np.arange(-4096, 4096, dtype=np.int32)
        high = np.zeros_like(low, dtype=np.int16)
        high[::7] = 1
        high[3::7] = -1
        for bits in (16, 12):
            want, e_ref = K.grad_sum([(low.astype(np.int64), -10), (high.astype(np.int64), -10 + gap)], bits)
            for lib in libs:
                got, e = lib.grad_sum([low.copy(), high.copy()], [-10, -10 + gap], bits)
                same(got, want, f"{lib} gap={gap} bits={bits}")
                assert e == e_ref

    @pytest.mark.parametrize("bits", [16, 6])
    def test_requant_grad_first_rounding_ties(libs, bits) -> None:
        """Tiny multipliers and per-channel shifts, so that both roundings (to the common shift,
        then to `bits`) meet exact ties."""
        g = np.repeat(np.arange(-40, 40, dtype=np.int16)[:, None], 4, axis=1)
        mult = np.array([1, 3, 5, 7], dtype=np.int32)
        shift = np.array([0, -1, -3, -6], dtype=np.int32)
        mask = np.ones(g.shape, dtype=bool)
        mask[::5, 1] = False
        want, e_ref = K.requant_backward(g, -3, mask, mult.astype(np.int64), shift.astype(np.int64), bits)
        for lib in libs:
            out, e = lib.requant_grad(g, -3, packed(mask), mult, shift, bits)
            same(out, want, f"{lib} bits={bits}")
            assert e == e_ref

    @pytest.mark.parametrize("bits", [16, 12])
    def test_requant_grad_small_total_shift(libs, bits) -> None:
        """Large multipliers on tiny gradients, so that the total right shift n + s falls below 16 (the
        fast form's small-shift variant), per channel and per tensor, masked, in place and not."""
        r = np.random.default_rng(bits)
        g = r.integers(-1, 2, (24, 8)).astype(np.int16)
        mult = np.array([2**29 + 12345, 2**30 - 1, 2**29 + 2**28 + 77, 2**30 - 999, 2**29, 1 << 28, 2**30 - 7, 3 << 28],
                        dtype=np.int32)
        shift = np.zeros(8, dtype=np.int32)
        mask = r.random(g.shape) < 0.8
        for per_channel, sh1 in ((True, 0), (False, 0), (True, -1)):
            shift[5:] = sh1
            m, sh = (mult, shift) if per_channel else (mult[:1], shift[:1])
            want, e_ref = K.requant_backward(g, -3, mask, m.astype(np.int64), sh.astype(np.int64), bits)
            for lib in libs:
                for in_place in (False, True):
                    gin = g.copy()
                    out, e = lib.requant_grad(gin, -3, packed(mask), m, sh, bits, out=gin if in_place else None)
                    same(out, want, f"{lib} per_channel={per_channel} in_place={in_place}")
                    assert e == e_ref

    @pytest.mark.parametrize("bits", [2, 9, 15, 16])
    def test_grad_sum_one_int32_part(libs, bits) -> None:
        """The single-int32-part renormalization (an input gradient's): maxima of every bit length,
        the int32 extremes, and every rounding tie below the maximum, out of place and in place."""
        for top in [0, 1, 2**(bits - 1) - 1, 2**(bits - 1), 2**15 + 1, 2**20 - 3, 2**30 + 7, 2**31 - 1, 2**31]:
            step = max(top // 700, 1)
            v = np.concatenate([[top, -top, top // 2, -(top // 2)], np.arange(-350, 350) * step + (top & 7)])
            v = np.clip(v, INT32_MIN, INT32_MAX).astype(np.int32)
            want, e_ref = K.grad_sum([(v.astype(np.int64), -7)], bits)
            for lib in libs:
                got, e = lib.grad_sum([v.copy()], [-7], bits)
                same(got, want, f"{lib} top={top} bits={bits}")
                assert e == e_ref
                buf = v.copy()
                got, e = lib.grad_sum([buf], [-7], bits, out=buf.view(np.int16)[: v.size])
                same(got, want, f"{lib} in place top={top} bits={bits}")
                assert e == e_ref

    @pytest.mark.parametrize("bits", [16, 12, 5])
    def test_grad_sum_max_at_thresholds(libs, bits) -> None:
        """Sums whose max |v| sits one below, at or one above a threshold of the shift and is reached by a
        positive value or only by a negative one: the first passes know max |v| only up to one (max of
        v ^ (v >> 31)) and settle such ties exactly; one int32 part, and two parts shifted left."""
        thresholds = [2 ** (bits - 1)] + [2 ** (bits - 1 + t) - 2 ** (t - 1) for t in range(1, 6)]
        for thr in thresholds:
            for target in (thr - 1, thr, thr + 1):
                for sign in (1, -1):
                    v = np.array([sign * target, -sign * (target // 3), 5, -7, 0], dtype=np.int32)
                    want, e_ref = K.grad_sum([(v.astype(np.int64), -4)], bits)
                    # two parts: an int16 part 3 binades up (shifted left by 3) plus an int32 remainder
                    hi = np.clip(v >> 3, -(2**15), 2**15 - 1).astype(np.int16)
                    lo = (v - (hi.astype(np.int64) << 3)).astype(np.int32)
                    want2, e_ref2 = K.grad_sum([(hi.astype(np.int64), -1), (lo.astype(np.int64), -4)], bits)
                    for lib in libs:
                        what = f"{lib} bits={bits} v={sign * target}"
                        got, e = lib.grad_sum([v.copy()], [-4], bits)
                        same(got, want, what)
                        assert e == e_ref, what
                        got, e = lib.grad_sum([hi.copy(), lo.copy()], [-1, -4], bits)
                        same(got, want2, what + " (two parts)")
                        assert e == e_ref2, what

    @pytest.mark.parametrize("seed", range(2))
    def test_layer_sized_strips(libs, seed) -> None:
        """Bands of rows of layer-sized depthwise and first-layer convs (pad_top 0 or k//2, bottom padding
        or none), and whole first-layer convs."""
        r = np.random.default_rng(100 + seed)
        zx, zy = -3, 5
        cases = [("dw", 36, k, s, pt) for k in (3, 5, 7) for s in (1, 2) for pt in (0, k // 2)]
        cases += [("conv", 3, 3, 2, pt) for pt in (0, 1)] + [("conv", 8, 3, 1, 1), ("conv", 3, 5, 2, 2)]
        for kind, c, kernel, stride, pt in cases:
            h, w = 7 + seed, 20 + seed
            cout = c if kind == "dw" else 16
            groups = c if kind == "dw" else 1
            pl = kernel // 2
            oh_full = (h + pt + kernel // 2 - kernel) // stride + 1
            ow = (w + pl + kernel // 2 - kernel) // stride + 1
            for oh in sorted({oh_full, max(1, oh_full - 2)}):
                x = r.integers(-128, 128, (h, w, c)).astype(np.int8)
                wt = r.integers(-127, 128, (cout, kernel, kernel, 1 if kind == "dw" else c)).astype(np.int8)
                amax = acc_max(K.conv_accumulate_rows(x, zx, wt, np.zeros(cout), stride, groups, pt, pl, oh, ow))
                pairs = [fp.quantize_multiplier(float(2.0 ** r.uniform(4, 8)) / amax) for _ in range(cout)]
                mult, shift = (np.array(v, dtype=np.int32) for v in zip(*pairs))
                bias = r.integers(-amax, amax, cout).astype(np.int32)
                bias[1] = INT32_MIN + 5
                acc = K.conv_accumulate_rows(x, zx, wt, bias, stride, groups, pt, pl, oh, ow)
                y_ref, m_ref = K.Requant(mult.astype(np.int64), shift.astype(np.int64), zy).apply(acc)
                what = f"{kind} c={c} k={kernel} s={stride} pad_top={pt} oh={oh}"
                for lib in libs:
                    if kind == "dw":
                        c_lo = 13
                        y, m = lib.conv_depthwise(x, oh, ow, kernel, stride, pt, np.ascontiguousarray(wt[:c_lo, :, :, 0]),
                                                  np.ascontiguousarray(wt[c_lo:, :, :, 0]), c_lo, bias, mult, shift, zx,
                                                  zy, True, pad_left=pl)
                    else:
                        y, m = lib.conv_generic(x, oh, ow, cout, kernel, stride, pt, 1, wt, bias, mult, shift, zx, zy,
                                                True, pad_left=pl)
                    same(y, y_ref, f"{lib} {what} y")
                    same(m, packed(m_ref), f"{lib} {what} mask")
        # a whole first layer: 32x32x3 -> 16, 3x3 stride 2
        x = r.integers(-128, 128, (32, 32, 3)).astype(np.int8)
        wt = r.integers(-127, 128, (16, 3, 3, 3)).astype(np.int8)
        amax = acc_max(K.conv_accumulate(x, zx, wt, np.zeros(16), 2, 1, 1))
        mult = np.full(16, fp.quantize_multiplier(100.0 / amax)[0], dtype=np.int32)
        shift = np.full(16, fp.quantize_multiplier(100.0 / amax)[1], dtype=np.int32)
        bias = r.integers(-amax, amax, 16).astype(np.int32)
        y_ref, m_ref = K.Requant(mult.astype(np.int64), shift.astype(np.int64), zy).apply(
            K.conv_accumulate(x, zx, wt, bias, 2, 1, 1))
        for lib in libs:
            y, m = lib.conv_generic(x, 16, 16, 16, 3, 2, 1, 1, wt, bias, mult, shift, zx, zy, True)
            same(y, y_ref, f"{lib} first layer y")
            same(m, packed(m_ref), f"{lib} first layer mask")

    @pytest.mark.parametrize("cin", [3, 8, 16, 24, 32, 40, 96, 161])
    def test_layer_sized_pointwise(libs, cin) -> None:
        """Pointwise layers with few input channels (their own fast paths) and many (inputs in chunks),
        even and odd positions and output channels, one part and two, with and without masks; input
        gradients in both forms."""
        r = np.random.default_rng(cin)
        zx, zy = 9, -4
        for hw, cout, k_lo in [(64, 32, cin), (63, 48, cin // 2), (65, 7, 0), (16, 8, 3 if cin > 3 else cin)]:
            x = r.integers(-128, 128, (hw, cin)).astype(np.int8)
            w = r.integers(-127, 128, (cout, cin)).astype(np.int8)
            amax = acc_max(K.conv_accumulate(x.reshape(hw, 1, cin), zx, w.reshape(cout, 1, 1, cin), np.zeros(cout), 1, 1, 0))
            pairs = [fp.quantize_multiplier(float(2.0 ** r.uniform(4, 8)) / amax) for _ in range(cout)]
            mult, shift = (np.array(v, dtype=np.int32) for v in zip(*pairs))
            bias = r.integers(-amax, amax, cout).astype(np.int32)
            acc = K.conv_accumulate(x.reshape(hw, 1, cin), zx, w.reshape(cout, 1, 1, cin), bias, 1, 1, 0)
            y_ref, m_ref = K.Requant(mult.astype(np.int64), shift.astype(np.int64), zy).apply(acc)
            w_lo = np.ascontiguousarray(w[:, :k_lo]) if k_lo else None
            w_hi = np.ascontiguousarray(w[:, k_lo:]) if k_lo < cin else None
            wsum = w.astype(np.int32).sum(axis=1).astype(np.int32)
            g = r.integers(-(2**15), 2**15, (hw, cout)).astype(np.int16)
            gx_want = K.conv_backward_input(g.reshape(hw, 1, cout), w.reshape(cout, 1, 1, cin), 1, 1, 0, (hw, 1, cin))
            what = f"hw={hw} cin={cin} cout={cout} k_lo={k_lo}"
            for lib in libs:
                for ws, with_mask in ((None, True), (wsum, False)):
                    y, m = lib.conv_pointwise(x, cout, w_lo, w_hi, k_lo, ws, bias, mult, shift, zx, zy, with_mask)
                    same(y, y_ref.reshape(hw, cout), f"{lib} {what} y")
                    if with_mask:
                        same(m, packed(m_ref), f"{lib} {what} mask")
                same(lib.input_grad_pointwise(g, w_lo, w_hi, k_lo, cin), gx_want.reshape(hw, cin), f"{lib} {what} gx")
                check_input_grad16(lib.input_grad_pointwise16(g, -20, w_lo, w_hi, k_lo, cin, 16), gx_want, -20, 16,
                                   f"{lib} {what}")

    # ------------------------------------------------------------------------------------- general conv geometry

    GEO = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

    @st.composite
    def general_conv(draw, max_hw: int = 9, max_k: int = 5, max_c: int = 6):
        """A conv of any geometry: kh x kw window, a stride per axis, (top, bottom, left, right) padding each
        below the window (TFLite SAME's asymmetric pads among them), W = 1 or H = 1 inputs, groups 1 or
        depthwise. Returns (tt_geom, pads, cin, cout, groups)."""
        kh, kw = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
        sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        h = draw(st.one_of(st.just(1), st.integers(1, max_hw)))
        w = draw(st.one_of(st.just(1), st.integers(1, max_hw)))
        t, left = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
        b, r = draw(st.integers(0, kh - 1 - t)), draw(st.integers(0, kw - 1 - left))  # at most k - 1 in all
        oh, ow = K.out_hw(h, w, (kh, kw), (sh, sw), (t, b, left, r))
        assume(oh >= 1 and ow >= 1)
        cin = draw(st.integers(1, max_c))
        depthwise = draw(st.booleans())
        groups, cout = (cin, cin) if depthwise else (1, draw(st.integers(1, max_c)))
        return C.geom(h, w, cin, oh, ow, cout, kh, kw, sh, sw, t, left, groups), (t, b, left, r), cin, cout, groups

    def split_weights(wt: np.ndarray, groups: int, k_lo: int):
        """(w_lo, w_hi) as tt_layer holds them: depthwise split by channel, groups 1 in one part (w_lo when
        k_lo > 0)."""
        if groups > 1:
            return (np.ascontiguousarray(wt[:k_lo]) if k_lo else None,
                    np.ascontiguousarray(wt[k_lo:]) if k_lo < wt.shape[0] else None)
        return (wt, None) if k_lo else (None, wt)

    @GEO
    @given(st.data(), general_conv(), zero_points, zero_points, st.booleans())
    def test_conv_generic_any_geometry(libs, data, conv, zx, zy, with_mask) -> None:
        g, pads, cin, cout, groups = conv
        x = data.draw(int8_values((g.h, g.w, cin)))
        wt = data.draw(int8_values((cout, g.kh, g.kw, cin // groups), -127, 127))
        amax = acc_max(K.conv_accumulate(x, zx, wt, np.zeros(cout), (g.sh, g.sw), groups, pads))
        bias = data.draw(biases(cout, amax))
        mult, shift = data.draw(requant(cout, amax))
        acc = K.conv_accumulate(x, zx, wt, bias, (g.sh, g.sw), groups, pads)
        y_ref, m_ref = K.Requant(mult.astype(np.int64), shift.astype(np.int64), zy).apply(acc)
        k_lo = data.draw(split_count(cout)) if groups > 1 else data.draw(st.sampled_from([0, cin]))
        w_lo, w_hi = split_weights(wt, groups, k_lo)
        frozen = Frozen(x=x, wt=wt, bias=bias, mult=mult, shift=shift)
        for lib in libs:
            y, m = lib.conv_generic_geom(x, g, w_lo, w_hi, k_lo, bias, mult, shift, zx, zy, with_mask)
            same(y, y_ref, f"{lib} y")
            if with_mask:
                same(m, packed(m_ref), f"{lib} mask")
            # a band of output rows [a, b) from the input rows it starts at (a patch stage's strip)
            a = data.draw(st.integers(0, g.oh - 1))
            b = data.draw(st.integers(a + 1, g.oh))
            first = a * g.sh - g.pad_top
            start = max(first, 0)
            band = lib.conv_rows("generic", np.ascontiguousarray(x[start:]), g, g.h - start, b - a, start - first,
                                 w_lo, w_hi, k_lo, None, bias, mult, shift, zx, zy)
            same(band, y_ref[a:b], f"{lib} rows [{a}, {b})")
        frozen.check()

    @GEO
    @given(st.data(), general_conv(), st.booleans())
    def test_input_grad_generic_any_geometry(libs, data, conv, frozen_whole) -> None:
        g, pads, cin, cout, groups = conv
        gy = data.draw(int_values((g.oh, g.ow, cout), 16))
        wt = data.draw(int8_values((cout, g.kh, g.kw, cin // groups), -127, 127))
        want = K.conv_backward_input(gy, wt, (g.sh, g.sw), groups, pads, (g.h, g.w, cin))
        k_lo = 0 if frozen_whole else data.draw(split_count(cout)) if groups > 1 else cin
        w_lo, w_hi = split_weights(wt, groups, k_lo)
        e, bits = data.draw(grad_exponents), data.draw(grad_bits)
        frozen = Frozen(gy=gy, wt=wt)
        for lib in libs:
            same(lib.input_grad_generic_geom(gy, g, w_lo, w_hi, k_lo), want, f"{lib}")
            check_input_grad16(lib.input_grad_generic16_geom(gy, e, g, w_lo, w_hi, k_lo, bits), want, e, bits, f"{lib}")
        frozen.check()

    @GEO
    @given(st.data(), general_conv(), zero_points, updates())
    def test_weight_update_generic_any_geometry(libs, data, conv, zx, u) -> None:
        """Groups 1: the whole tensor in SRAM, input channels [0, k) updated; depthwise: channels [0, k) of
        [k][kh][kw] (the depthwise update, any window)."""
        g, pads, cin, cout, groups = conv
        gy = data.draw(int_values((g.oh, g.ow, cout), 12))
        k = data.draw(st.integers(1, cin if groups == 1 else cout))
        xs_c = data.draw(st.sampled_from([k, cin]))
        x = data.draw(int8_values((g.h, g.w, cin)))
        xs = np.ascontiguousarray(x[:, :, :xs_c])
        wt = data.draw(int8_values((cout, g.kh, g.kw, cin // groups), -127, 127))
        mult, shift = data.draw(coefficients(cout))
        grad = K.conv_weight_grad(gy, xs, zx, (g.kh, g.kw), (g.sh, g.sw), groups, pads, k)
        e = data.draw(update_exponent(grad, mult, shift))
        if groups > 1:
            w_lo = np.ascontiguousarray(wt[:k])
            want = expected_sgd(w_lo, grad, e, mult[:k], shift[:k], u, w_lo.size, -127, 127)
        else:
            w_lo = wt.copy()
            rand = fp.random_bits(u.seed, u.step, u.elem_offset, wt.size).reshape(wt.shape)[..., :k]
            part = K.sgd_update(np.ascontiguousarray(wt[..., :k]), grad, e, mult.astype(np.int64),
                                shift.astype(np.int64), u.mode, rand, -127, 127)
            want = wt.copy()
            want[..., :k] = part
        frozen = Frozen(gy=gy, xs=xs, mult=mult, shift=shift)
        for lib in libs:
            got = lib.weight_update_generic_geom(gy, e, xs, g, k, zx, w_lo.copy(), mult, shift, u)
            same(got, want, f"{lib} ({u.mode})")
        frozen.check()

    def test_conv_shapes_of_the_imported_models(libs) -> None:
        """The geometries of the TFLite models (KWS 10x4 stride 2 with asymmetric SAME padding, k x 1 time
        kernels, W = 1 with many channels, 1-D windows), forward and both backward directions."""
        r = np.random.default_rng(5)
        cases = [  # h, w, cin, cout, (kh, kw), (sh, sw), (t, b, l, r), depthwise
            (49, 10, 1, 8, (10, 4), (2, 2), (4, 5, 1, 2), False),
            (98, 1, 104, 8, (3, 1), (1, 1), (1, 1, 0, 0), False),
            (128, 3, 1, 4, (9, 1), (2, 1), (3, 4, 0, 0), False),
            (100, 1, 6, 6, (5, 1), (1, 1), (2, 2, 0, 0), True),
            (25, 5, 8, 8, (4, 3), (2, 1), (1, 1, 1, 1), True),
            (13, 7, 5, 3, (3, 1), (3, 1), (0, 0, 0, 0), False),
        ]
        for h, w, cin, cout, (kh, kw), (sh, sw), pads, dw in cases:
            groups = cin if dw else 1
            oh, ow = K.out_hw(h, w, (kh, kw), (sh, sw), pads)
            g = C.geom(h, w, cin, oh, ow, cout, kh, kw, sh, sw, pads[0], pads[2], groups)
            x = r.integers(-128, 128, (h, w, cin)).astype(np.int8)
            wt = r.integers(-127, 128, (cout, kh, kw, cin // groups)).astype(np.int8)
            acc = K.conv_accumulate(x, 3, wt, np.zeros(cout, np.int32), (sh, sw), groups, pads)
            amax = acc_max(acc)
            pairs = [fp.quantize_multiplier(float(2.0 ** r.uniform(4, 8)) / amax) for _ in range(cout)]
            mult, shift = (np.array(v, dtype=np.int32) for v in zip(*pairs))
            bias = np.zeros(cout, np.int32)
            y_ref, m_ref = K.Requant(mult.astype(np.int64), shift.astype(np.int64), -5).apply(acc)
            gy = r.integers(-(2**11), 2**11, (oh, ow, cout)).astype(np.int16)
            gx_want = K.conv_backward_input(gy, wt, (sh, sw), groups, pads, (h, w, cin))
            what = f"{h}x{w}x{cin} -> {cout} k{kh}x{kw} s{sh}x{sw} pads {pads}"
            for lib in libs:
                y, m = lib.conv_generic_geom(x, g, None, wt, 0, bias, mult, shift, 3, -5, True)
                same(y, y_ref, f"{lib} {what} y")
                same(m, packed(m_ref), f"{lib} {what} mask")
                same(lib.input_grad_generic_geom(gy, g, None, wt, 0), gx_want, f"{lib} {what} gx")
                check_input_grad16(lib.input_grad_generic16_geom(gy, -9, g, None, wt, 0, 16), gx_want, -9, 16,
                                   f"{lib} {what}")

    # ------------------------------------------------------------------------------------- pooling, pad, concat

    @st.composite
    def pool_geometry(draw, max_hw: int = 8):
        """A pooling window: any kh x kw, strides (overlapping windows or not), padding below the window,
        W = 1, 1x1 windows. Returns (tt_geom, pads, c)."""
        kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
        sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        h = draw(st.one_of(st.just(1), st.integers(1, max_hw)))
        w = draw(st.one_of(st.just(1), st.integers(1, max_hw)))
        padded = draw(st.booleans())
        t, b = (draw(st.integers(0, kh - 1)), draw(st.integers(0, kh - 1))) if padded else (0, 0)
        left, r = (draw(st.integers(0, kw - 1)), draw(st.integers(0, kw - 1))) if padded else (0, 0)
        oh, ow = K.out_hw(h, w, (kh, kw), (sh, sw), (t, b, left, r))
        assume(oh >= 1 and ow >= 1)
        c = draw(st.integers(1, 9))
        return C.geom(h, w, c, oh, ow, c, kh, kw, sh, sw, t, left, 1), (t, b, left, r), c

    @GEO
    @given(st.data(), pool_geometry(), grad_bits)
    def test_maxpool(libs, data, pool, bits) -> None:
        g, pads, c = pool
        x = data.draw(int8_values((g.h, g.w, c)))
        if data.draw(st.booleans()):  # ties: the first maximum of a window takes its gradient
            x = np.ascontiguousarray(x // 64, dtype=np.int8)
        gy = data.draw(int_values((g.oh, g.ow, c), 16))
        e = data.draw(grad_exponents)
        y_ref = K.maxpool_forward(x, (g.kh, g.kw), (g.sh, g.sw), pads)
        gx_ref, e_ref = K.maxpool_backward(gy, e, x, (g.kh, g.kw), (g.sh, g.sw), pads, bits)
        frozen = Frozen(x=x, gy=gy)
        for lib in libs:
            same(lib.maxpool(x, g), y_ref, f"{lib} y")
            gx, e2 = lib.maxpool_grad(gy, e, x, g, bits)
            same(gx, gx_ref, f"{lib} gx")
            assert e2 == e_ref, (lib, e2, e_ref)
        frozen.check()

    @GEO
    @given(st.data(), st.integers(1, 40), st.integers(1, 40), st.sampled_from([1, 3]), st.integers(1, 40),
           st.integers(1, 40), st.sampled_from([1, 3]))
    def test_image_resize(libs, data, h, w, c, oh, ow, oc) -> None:
        """Source pixels to the model's input: up and down, gray and RGB both ways, whole and in row bands
        (the streaming stage hands it the source rows its output rows read)."""
        pixels = (data.draw(int8_values((h, w, c))).view(np.uint8)).copy()
        lut = data.draw(int8_values((256,)))
        want = K.image_resize(pixels, (oh, ow), oc, lut)
        g = C.geom(h, w, c, oh, ow, oc, 2, 2)
        a = data.draw(st.integers(0, oh - 1))
        b = data.draw(st.integers(a + 1, oh))
        y0, y1, _ = K.resize_coords(h, oh)
        first = int(y0[a])
        assert int(y1[b - 1]) >= first
        frozen = Frozen(pixels=pixels, lut=lut)
        for lib in libs:
            same(lib.image_resize(pixels, g, lut), want, f"{lib} whole")
            same(lib.image_resize(pixels, g, lut, a, b - a, first), want[a:b], f"{lib} rows {a}..{b}")
        frozen.check()

    @GEO
    @given(st.data(), pool_geometry(), grad_bits)
    def test_avgpool2d(libs, data, pool, bits) -> None:
        g, pads, c = pool
        x = data.draw(int8_values((g.h, g.w, c)))
        gy = data.draw(int_values((g.oh, g.ow, c), 16))
        e = data.draw(grad_exponents)
        y_ref = K.avgpool2d_forward(x, (g.kh, g.kw), (g.sh, g.sw), pads)
        gx_ref, e_ref = K.avgpool2d_backward(gy, e, (g.h, g.w, c), (g.kh, g.kw), (g.sh, g.sw), pads, bits)
        rm, rsh, eoff = K.pool_reciprocals((g.kh, g.kw))
        frozen = Frozen(x=x, gy=gy)
        for lib in libs:
            same(lib.avgpool2d(x, g), y_ref, f"{lib} y")
            gx, e2 = lib.avgpool2d_grad(gy, e, g, rm, rsh, eoff, bits)
            same(gx, gx_ref, f"{lib} gx")
            assert e2 == e_ref, (lib, e2, e_ref)
        frozen.check()

    @FAST
    @given(st.data(), st.integers(1, 6), st.integers(1, 6), st.integers(1, 5), st.tuples(*[st.integers(0, 3)] * 4),
           zero_points, st.booleans())
    def test_pad(libs, data, h, w, c, pads, zx, in_place) -> None:
        t, b, left, r = pads
        g = C.geom(h, w, c, h + t + b, w + left + r, c, 1, 1, 1, 1, t, left, 1)
        x = data.draw(int8_values((h, w, c)))
        gy = data.draw(int_values((g.oh, g.ow, c), 16))
        frozen = Frozen(x=x, gy=gy)
        for lib in libs:
            same(lib.pad(x, g, zx), K.pad_forward(x, pads, zx), f"{lib} y")
            same(lib.pad_grad(gy, g, in_place), K.pad_backward(gy, pads), f"{lib} gx (in place: {in_place})")
        frozen.check()

    @FAST
    @given(st.data(), st.integers(1, 12), st.lists(st.integers(1, 7), min_size=1, max_size=4))
    def test_concat_channels(libs, data, hw, widths) -> None:
        xs = [data.draw(int8_values((hw, c))) for c in widths]
        ctot = sum(widths)
        gy = data.draw(int_values((hw, ctot), 16))
        frozen = Frozen(gy=gy, **{f"x{i}": x for i, x in enumerate(xs)})
        for lib in libs:
            y = np.full((hw, ctot), 0x5A, dtype=np.int8)
            at = 0
            for x in xs:
                lib.copy_channels(x, y, at)
                same(lib.slice_channels16(gy, at, x.shape[1]), gy[:, at : at + x.shape[1]], f"{lib} slice at {at}")
                at += x.shape[1]
            same(y, np.concatenate(xs, axis=1), f"{lib} y")
        frozen.check()

    @FAST
    @given(st.data(), st.integers(1, 70), zero_points, zero_points, st.booleans(), st.booleans(), st.booleans())
    def test_requantize(libs, data, n, zx, zy, raw, with_mask, in_place) -> None:
        x = data.draw(int8_values(n))
        if raw:
            m, s = data.draw(st.integers(0, 2**31 - 1)), data.draw(st.integers(-31, 8))
        else:
            m, s = fp.quantize_multiplier(data.draw(st.floats(0.05, 20.0)))
        y_ref, m_ref = K.requantize_forward(x, zx, m, s, zy)
        for lib in libs:
            y, mask = lib.requantize(x, zx, m, s, zy, with_mask, in_place)
            same(y, y_ref, f"{lib} y")
            if with_mask:
                same(mask, packed(m_ref), f"{lib} mask")

    @FAST
    @given(st.data(), st.integers(1, 70), st.integers(-128, 127), st.integers(-128, 127), st.booleans(), st.booleans())
    def test_clamp(libs, data, n, lo, hi, with_mask, in_place) -> None:
        lo, hi = min(lo, hi), max(lo, hi)
        x = data.draw(int8_values(n))
        y_ref, m_ref = K.clamp_forward(x, lo, hi)
        for lib in libs:
            y, mask = lib.clamp(x, lo, hi, with_mask, in_place)
            same(y, y_ref, f"{lib} y")
            if with_mask:
                same(mask, packed(m_ref), f"{lib} mask")

    # ------------------------------------------------------------------------------------- scratch sizes

    @settings(max_examples=150, deadline=None)
    @given(st.integers(1, 130), st.integers(1, 130), st.integers(1, 300), st.integers(1, 300), st.integers(1, 9),
           st.integers(1, 9), st.integers(1, 3), st.integers(1, 3), st.booleans())
    def test_scratch_sizes_match_the_python_twins(libs, h, w, cin, cout, kh, kw, sh, sw, depthwise) -> None:
        """tt_<kernel>_scratch_bytes (C) equals its twin in tinytrain.ops.scratch, which the compiler plans."""
        from tinytrain.ops import scratch

        if depthwise:
            cout = cin
        fields = dict(h=h, w=w, cin=cin, oh=max(h // sh, 1), ow=max(w // sw, 1), cout=cout, kh=kh, kw=kw, sh=sh,
                      sw=sw, pad_top=kh // 2, pad_left=kw // 2, groups=cin if depthwise else 1)
        g = C.Geom(*fields.values())
        assert list(fields) == list(C.GEOM_FIELDS)
        assert set(scratch.SIZES) == set(C.SCRATCH_KERNELS)
        for lib in libs:
            for kernel, twin in scratch.SIZES.items():
                assert lib.scratch_bytes(kernel, g) == twin(fields), (lib, kernel, fields)
