"""Test models made by the suite itself (tools/make_tflite_models.py), cached under
build/tflite-models/<hash of the generating code>/.

`tflite_model(name)` returns the path of a cached model, building it if needed; Keras-converted models skip
the test with a clear message when TensorFlow (the `tools` extra) is not installed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load_maker():
    name = "make_tflite_models"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / "make_tflite_models.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


maker = _load_maker()
EDGE_MODELS = tuple(maker.EDGE_MODELS)
KERAS_MODELS = tuple(maker.KERAS_MODELS)


def tflite_model(name: str) -> Path:
    """Path of the cached model `name`; skips when it needs the converter and TensorFlow is missing."""
    if name in maker.KERAS_MODELS and not maker.converter_available():
        pytest.skip(f"{name} is converted from Keras: TensorFlow (the `tools` extra, tensorflow-cpu) is not "
                    "installed; `pip install -e '.[tools]'` or `make setup` installs it")
    return maker.model_path(name)
