"""tflite_kernels.softmax_int8 against TFLite Micro, bit for bit.

Single-SOFTMAX models (written with ModelWriter) with many rows of random logits, over input scales from
1e-7 to 1e6 (including the region where TFLite caps the multiplier at 2**31 - 1), random betas, and logit
patterns that exercise every branch: uniform, bunched near the row maximum, rows straddling diff_min, all
equal. The bar is 0 differing bytes; LiteRT's reference kernel is checked too. Then every test model is run
whole by tflite_kernels alone (SOFTMAX no longer borrowed from TFLM) and compared tensor by tensor.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

from tinytrain.numerics import tflite_kernels as K
from tinytrain.model.tflite_reader import read_tflite

import tflm_oracle as O
from tflite_models import EDGE_MODELS, KERAS_MODELS, tflite_model
from tflite_models import maker as M
from tflite_run import differing, model_input, run_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module", autouse=True)
def _need_tflm():
    O.require_tflm()


def softmax_model(shape, s_in: float, z_in: int, beta: float = 1.0, s_out: float = 1 / 256,
                  z_out: int = -128) -> bytes:
    mw = M.ModelWriter()
    x = mw.tensor(shape, scale=s_in, zero_point=z_in, name="logits")
    y = mw.tensor(shape, scale=s_out, zero_point=z_out, name="probs")
    mw.op("SOFTMAX", [x], [y], M.options("SoftmaxOptions", Beta=beta))
    return mw.finish([x], [y])


def logits(rng: np.random.Generator, pattern: str, rows: int, n: int, diff_min: int) -> np.ndarray:
    if pattern == "uniform":
        return rng.integers(-128, 128, (rows, n)).astype(np.int8)
    if pattern == "bunched":  # many entries close to the maximum: large sums, fine differences
        top = rng.integers(-60, 128, (rows, 1))
        return np.clip(top - rng.integers(0, 12, (rows, n)), -128, 127).astype(np.int8)
    if pattern == "diff_min":  # entries at diff_min, one below, one above (when int8 can reach them)
        d, top = max(diff_min, -254), 127
        row = np.clip([top, top + d, top + d - 1, top + d + 1, *(top + rng.integers(d - 3, 1, n - 4))], -128, 127)
        return np.tile(row, (rows, 1)).astype(np.int8)
    if pattern == "equal":
        return np.tile(rng.integers(-128, 128, (rows, 1)), (1, n)).astype(np.int8)
    raise AssertionError(pattern)


def random_case(rng: np.random.Generator, lo: float, hi: float):
    s_in = float(np.float32(10 ** rng.uniform(lo, hi)))
    beta = 1.0 if rng.random() < 0.6 else float(np.float32(rng.uniform(0.25, 4.0)))
    return s_in, int(rng.integers(-128, 128)), beta, int(rng.choice([2, 3, 5, 10, 12, 37, 100, 300, 511]))


@pytest.mark.parametrize("lo,hi", [
    (-7.0, -4.0),   # tiny scales: every difference is in range, exp() of small arguments
    (-3.0, -1.5),   # typical logits (0.001 .. 0.03)
    (-1.5, 0.0),    # coarse logits (0.03 .. 1): diff_min masks part of int8
    (0.0, 6.0),     # huge scales: the multiplier is capped at 2**31 - 1, only the maximum survives
])
@pytest.mark.parametrize("pattern", ["uniform", "bunched", "diff_min", "equal"])
def test_softmax_int8_matches_tflm(lo, hi, pattern):
    rng = np.random.default_rng(zlib.crc32(f"{lo}{hi}{pattern}".encode()))
    for _ in range(12):
        s_in, z_in, beta, n = random_case(rng, lo, hi)
        if pattern == "equal" and n >= 512:
            n = 300
        p = K.softmax_params(s_in, beta)
        x = logits(rng, pattern, 16, max(n, 4) if pattern == "diff_min" else n, p.diff_min)
        model = softmax_model(list(x.shape), s_in, z_in, beta)
        tflm = O.run_tflm(model, x)[1]
        ours = K.softmax_int8(x, s_in, z_in, beta=beta)
        assert differing(ours, tflm) == 0, (f"s_in={s_in} beta={beta} n={x.shape[1]}: "
                                            f"{differing(ours, tflm)} of {tflm.size} bytes differ from TFLM")
        assert differing(O.run_litert_ref(model, x)[1], tflm) == 0, "LiteRT's reference kernel disagrees with TFLM"


def test_softmax_params_as_tflite_computes_them():
    # s_in = 1/16: real = 2**22 exactly -> m = 2**30, shift 23, radius = floor(31 * 2**26 / 2**23) = 248
    assert K.softmax_params(1 / 16) == K.SoftmaxParams(1 << 30, 23, -248)
    # capped: real = min(1000 * 2**26, 2**31 - 1); only differences of 0 count
    assert K.softmax_params(1000.0) == K.SoftmaxParams((1 << 31) - 1, 31, 0)
    x = np.array([[5, 1, -3, 5]], np.int8)
    assert K.softmax_int8(x, 0.1, 0).tolist() == K.softmax_int8(x, 0.1, 77).tolist()  # z_in cancels


def test_what_tflite_refuses_is_refused():
    x = np.zeros((1, 4), np.int8)
    for s_out, z_out in ((1 / 255, -128), (1 / 256, 0)):
        with pytest.raises(ValueError, match="1/256"):
            K.softmax_int8(x, 0.1, 0, s_out, z_out)
        with pytest.raises(RuntimeError):  # TFLM's Prepare fails
            O.run_tflm(softmax_model([1, 4], 0.1, 0, s_out=s_out, z_out=z_out), x)
    with pytest.raises(ValueError, match="QuantizeMultiplierGreaterThanOne"):
        K.softmax_int8(x, 2.0**-26, 0)  # TFLM aborts the process here (TFLITE_CHECK)
    with pytest.raises(ValueError, match="512"):
        K.softmax_int8(np.full((2, 512), 7, np.int8), 0.05, 0)
    ok = np.full((1, 511), 7, np.int8)
    assert differing(K.softmax_int8(ok, 0.05, 0), O.run_tflm(softmax_model([1, 511], 0.05, 0), ok)[1]) == 0


def test_tflm_aborts_where_softmax_int8_raises(tmp_path):
    """A row whose exps sum to 512 or more makes gemmlowp's RoundingDivideByPOT shift by 32: TFLite Micro's
    kernel asserts and takes the process down. (Why softmax_int8 raises instead of returning bytes.)"""
    path = tmp_path / "softmax512.tflite"
    path.write_bytes(softmax_model([1, 512], 0.05, 0))
    code = textwrap.dedent(f"""
        import numpy as np
        from tflite_micro.python.tflite_micro import runtime
        it = runtime.Interpreter.from_file({str(path)!r})
        it.set_input(np.full((1, 512), 7, np.int8), 0)
        it.invoke()
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert run.returncode != 0


@pytest.mark.parametrize("name", [*EDGE_MODELS, *KERAS_MODELS])
def test_whole_models_by_tflite_kernels_alone(name):
    """Every test model run by tflite_kernels only (softmax_int8 included) equals TFLM tensor by tensor."""
    path = tflite_model(name)
    m = read_tflite(path)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for _ in range(3):
        x = model_input(m, rng)
        tflm, ours = O.run_tflm(path, x), run_model(m, x)
        for op in m.operators:
            idx = op.outputs[0]
            assert differing(ours[idx], tflm[idx]) == 0, f"{name}: operator {op.index} ({op.op}) differs from TFLM"
