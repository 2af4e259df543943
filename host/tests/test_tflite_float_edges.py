"""The float edges done on the host: quantize_input / dequantize_output against TFLite Micro, bit for bit.

QUANTIZE float32 -> int8 on single-op models over many scales and zero points, with inputs at and next to
rounding ties, signed zeros, denormals and values far outside the int8 range (but inside TFLite's defined
domain |f / scale| < 2**31); DEQUANTIZE of every int8 value, float32 compared by bits. Then whole
float-in/float-out models: TFLite Micro's float output equals dequantize_output of the int8 tflite_kernels
computes from quantize_input of the same floats, bit for bit.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from tinytrain.numerics import tflite_kernels as K
from tinytrain.model.tflite_reader import read_tflite

import tflm_oracle as O
from tflite_models import tflite_model
from tflite_models import maker as M
from tflite_run import differing, run_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

FLOAT_IO_MODELS = ["edge_stride2_pad", "keras_kws_float_io"]


@pytest.fixture(scope="module", autouse=True)
def _need_tflm():
    O.require_tflm()


def hard_floats(rng: np.random.Generator, s: float, n: int = 4096) -> np.ndarray:
    s32 = np.float32(s)
    k = rng.integers(-400, 400, n // 4)
    ties = ((k + 0.5) * s32).astype(np.float32)                     # at (or one ulp off) x.5 after the division
    near = np.concatenate([np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))])
    wide = (rng.normal(0.0, 1.0, n // 4) * s32 * rng.uniform(1, 300)).astype(np.float32)
    special = np.array([0.0, -0.0, 1e-45, -1e-45, 1e-38, -1e-38, s32 / 2, -s32 / 2, 127.5 * s32, -128.5 * s32,
                        2.0**30 * s32, -(2.0**30) * s32, 1e4 * s32, -1e4 * s32], np.float32)
    return np.concatenate([ties, near, wide, special]).astype(np.float32)


def test_quantize_input_matches_tflm():
    rng = np.random.default_rng(11)
    for _ in range(40):
        s = float(np.float32(10 ** rng.uniform(-5, 1.5)))
        z = int(rng.integers(-128, 128))
        f = hard_floats(rng, s)
        tflm = O.run_tflm(M.quantize_model([1, f.size], None, (s, z)), f.reshape(1, -1))[1]
        ours = K.quantize_input(f, s, z)
        assert differing(ours, tflm) == 0, f"scale {s}, zero point {z}: {differing(ours, tflm)} of {f.size} differ"


def test_dequantize_output_matches_tflm_bit_for_bit():
    rng = np.random.default_rng(12)
    q = np.arange(-128, 128, dtype=np.int8).reshape(1, -1)
    for _ in range(40):
        s = float(np.float32(10 ** rng.uniform(-6, 2)))
        z = int(rng.integers(-128, 128))
        tflm = O.run_tflm(M.dequantize_model([1, 256], (s, z)), q)[1]
        assert tflm.dtype == np.float32
        assert differing(K.dequantize_output(q, s, z), tflm) == 0, f"scale {s}, zero point {z}"


def test_outside_tflites_defined_domain():
    """|f / s| >= 2**31 and NaN are undefined behaviour in TFLite's C++ (x86 TFLM answers -128 even for
    +1e30); quantize_input saturates and sends NaN to the zero point, documented in the docstring."""
    f = np.array([1e30, -1e30, np.inf, -np.inf, np.nan, 2.0**31 * 0.05], np.float32)
    assert K.quantize_input(f, 0.05, 3).tolist() == [127, -128, 127, -128, 3, 127]


@pytest.mark.parametrize("name", FLOAT_IO_MODELS)
def test_float_model_output_is_dequantize_of_our_int8(name):
    path = tflite_model(name)
    m = read_tflite(path)
    q_in, deq = m.operators[0], m.operators[-1]
    assert (q_in.op, deq.op) == ("QUANTIZE", "DEQUANTIZE") and m.input.dtype == m.output.dtype == "FLOAT32"
    x_int8, y_int8 = m.tensors[q_in.outputs[0]], m.tensors[deq.inputs[0]]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for i in range(8):
        scale = 4.0 if i % 2 else 1.0  # some inputs saturate the int8 input range
        x = (rng.normal(0.0, scale, m.input.shape)).astype(np.float32)
        tflm = O.run_tflm(path, x)
        ours = run_model(m, x)
        q = K.quantize_input(x, x_int8.scale, x_int8.zero_point)
        assert differing(q, tflm[x_int8.index]) == 0
        assert differing(ours[y_int8.index], tflm[y_int8.index]) == 0
        y = K.dequantize_output(ours[y_int8.index], y_int8.scale, y_int8.zero_point)
        assert differing(y, tflm[m.outputs[0]]) == 0, f"{name}: float output differs from dequantize(our int8)"
