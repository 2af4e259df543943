"""tinytrain train: the engine's C code on the host (the default) and the NumPy reference learn the
same bytes, and both print accuracy before and after."""

from __future__ import annotations

import numpy as np

from tinytrain.commands.cli import main
from tinytrain.commands.state_file import load_state
from tinytrain.model import ttm as model_file
from tinytrain.model.synthetic import random_model


def test_train_backends_learn_the_same_state(tmp_path, capsys) -> None:
    model = tmp_path / "m.ttm"
    model_file.save(random_model(3), model)
    rng = np.random.default_rng(0)
    m = random_model(3)
    h, w, c = m.input_spec.shape
    data = tmp_path / "d.npz"
    np.savez(data, images=rng.integers(0, 256, (24, h, w, c), dtype=np.uint8),
             labels=rng.integers(0, m.num_classes, 24))
    states = {}
    for backend in ("c", "numpy"):
        out = tmp_path / f"{backend}.npz"
        assert main(["train", str(model), "--scheme", "last:2", "--data", str(data), "--samples", "16",
                     "--eval-data", str(data), "--backend", backend, "--out", str(out)]) == 0
        text = capsys.readouterr().out
        assert "accuracy before" in text and "accuracy after" in text
        states[backend] = load_state(out)
        with np.load(out) as z:
            states[backend]["arrays"] = {k: z[k].tobytes() for k in z.files}
    assert states["c"]["state"] == states["numpy"]["state"]
    assert states["c"]["arrays"] == states["numpy"]["arrays"]  # also the model and learned tensors for export
    assert states["c"]["program_hash"] == states["numpy"]["program_hash"]
