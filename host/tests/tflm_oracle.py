"""Outside oracles for the int8 kernels: TFLite Micro's Python interpreter (the reference, it is what
runs on the MCU) and LiteRT with its reference op resolver (a second opinion).

Both return the contents of every tensor (intermediates too) after one invoke, keyed by tensor index:
TFLM is created with kPreserveAllTensors so that its arena keeps each intermediate; LiteRT with
experimental_preserve_all_tensors. LiteRT's default (XNNPACK) and optimized kernels are not used: they
differ from the reference kernels by one LSB from the first conv on (docs/tflite_ops.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

DEFAULT_ARENA = 4 << 20  # generous: some models need more than TFLM's default of 10x the model size


def _bytes(model: bytes | str | Path) -> bytes:
    return model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()


def _as_list(inputs) -> list[np.ndarray]:
    return [np.asarray(x) for x in (inputs if isinstance(inputs, (list, tuple)) else [inputs])]


def tflm_available() -> bool:
    try:
        from tflite_micro.python.tflite_micro import runtime  # noqa: F401
    except ImportError:
        return False
    return True


def require_tflm():
    return pytest.importorskip("tflite_micro.python.tflite_micro.runtime",
                               reason="TFLite Micro (PyPI tflite-micro, the `test` extra) is not installed")


def run_tflm(model: bytes | str | Path, inputs, arena_size: int = DEFAULT_ARENA) -> dict[int, np.ndarray]:
    """Every tensor of subgraph 0 after one invoke of TFLite Micro (constants included), by index.
    `inputs`: one array per graph input, shaped as the model's input (batch axis included)."""
    from tflite_micro.python.tflite_micro import runtime

    data = _bytes(model)
    interp = runtime.Interpreter.from_bytes(data, arena_size=arena_size,
                                            intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    for i, x in enumerate(_as_list(inputs)):
        interp.set_input(x, i)
    interp.invoke()
    out: dict[int, np.ndarray] = {}
    for idx in range(_tensor_count(data)):
        t = interp.GetTensor(idx, 0)
        arr = np.asarray(t["tensor_data"])
        out[idx] = arr.reshape(tuple(int(s) for s in t["shape"])) if arr.size == int(np.prod(t["shape"])) else arr
    return out


def run_litert_ref(model: bytes | str | Path, inputs) -> dict[int, np.ndarray]:
    """The same through LiteRT's BUILTIN_REF resolver (reference kernels)."""
    from ai_edge_litert import interpreter as litert

    interp = litert.Interpreter(model_content=_bytes(model),
                                experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
                                experimental_preserve_all_tensors=True)
    interp.allocate_tensors()
    for det, x in zip(interp.get_input_details(), _as_list(inputs)):
        interp.set_tensor(det["index"], x)
    interp.invoke()
    out: dict[int, np.ndarray] = {}
    for det in interp.get_tensor_details():
        try:
            out[det["index"]] = np.array(interp.get_tensor(det["index"]))
        except ValueError:  # a tensor without data (e.g. an optional, absent input)
            pass
    return out


def _tensor_count(data: bytes) -> int:
    import tflite

    return tflite.Model.GetRootAs(data, 0).Subgraphs(0).TensorsLength()


def output_index(model: bytes | str | Path, k: int = 0) -> int:
    import tflite

    return int(tflite.Model.GetRootAs(_bytes(model), 0).Subgraphs(0).Outputs(k))
