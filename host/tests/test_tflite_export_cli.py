"""`tinytrain export` and `tinytrain pull --tflite`: what a board learned, back in its TFLite file.

The board path on the host build of the firmware (the same C as on the MCU): a few training steps
equal to the NumPy reference, `pull --tflite` writes the npz and the tuned file, `export` from that
npz writes the same bytes, and TFLite Micro on the tuned file gives the board's logits (hence its
predictions) byte for byte; LiteRT's reference kernels load it and agree. A new head (`train --out`
on the host, then `export`) gets its classes into the file. Every error a user can cause is one
sentence. (The whole table over every test model in QEMU: tools/tflite_table.py.)
"""

from __future__ import annotations

import numpy as np
import pytest

import tflm_oracle as O
from tflite_models import tflite_model
from tinytrain.board.builds import build_host_firmware
from tinytrain.board.engine_client import EngineClient
from tinytrain.board.host_board import HostBoard
from tinytrain.board.link import Link
from tinytrain.commands.cli import main
from tinytrain.commands.pull import save_state
from tinytrain.compile.build_config import BuildConfig
from tinytrain.compile.compiler import compile_model
from tinytrain.compile.scheme import builtin
from tinytrain.model import ttm
from tinytrain.model.loader import load_model
from tinytrain.model.synthetic import random_model
from tinytrain.model.tflite import outputs_from_logits
from tinytrain.model.tflite_reader import read_tflite
from tinytrain.reference.executor import NumpyBackend

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def tflm_logits(data: bytes, model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the logits tensor, the file's output tensor) of TFLite Micro on the tuned file."""
    meta = model.metadata["tflite"]
    out = O.run_tflm(data, x.reshape(1, *x.shape))
    return np.asarray(out[meta["output"]["logits"]]).reshape(-1), np.asarray(out[O.output_index(data)]).reshape(-1)


def test_board_pull_tflite_equals_export_and_predicts_what_the_board_predicts(tmp_path, capsys):
    """Host build of edge_odd_sizes (conv, depthwise, pools, pad, concat; last:3 trained)."""
    O.require_tflm()
    base = tflite_model("edge_odd_sizes")
    cfg = BuildConfig(str(base), "last:3", lr=0.02)  # the build test_engine_host_build makes too
    exe = build_host_firmware(cfg)
    compiled = cfg.compile()
    ref = NumpyBackend(compiled.program)
    model = compiled.program.model
    rng = np.random.default_rng(21)
    xs = rng.integers(-128, 128, size=(24, *model.input_spec.shape)).astype(np.int8)
    npz, tuned = tmp_path / "learned.npz", tmp_path / "tuned.tflite"
    with HostBoard(exe) as host:
        with Link(host.url) as link:  # (the board serves one connection at a time)
            link.wait_ready(10.0)
            engine = EngineClient(link)
            for i in range(4):
                y = int(rng.integers(0, model.num_classes))
                assert np.array_equal(engine.train(xs[i], y).logits, ref.train_step(xs[i], y)), f"step {i}"
        assert main(["pull", "--port", host.url, "--build", str(exe.parent), "--out", str(npz),
                     "--tflite", str(tuned)]) == 0
        assert f"wrote {tuned}" in capsys.readouterr().out
        with Link(host.url) as link:
            board = [EngineClient(link).infer(x).logits for x in xs]
    assert host.sanitizer_report() is None, host.sanitizer_report()
    data = tuned.read_bytes()
    assert data != base.read_bytes()  # the learned layers changed
    again = tmp_path / "again.tflite"
    assert main(["export", str(base), str(npz), "--out", str(again)]) == 0
    assert again.read_bytes() == data
    for x, logits in zip(xs, board):
        got, output = tflm_logits(data, model, x)
        assert np.array_equal(got, logits)
        assert int(np.argmax(got)) == int(np.argmax(logits))
        assert np.array_equal(output, outputs_from_logits(model, logits)["output"])
    out = O.run_litert_ref(data, xs[0].reshape(1, *xs[0].shape))
    assert np.array_equal(np.asarray(out[O.output_index(data)]).reshape(-1),
                          outputs_from_logits(model, board[0])["output"])


def test_new_head_from_train_out(tmp_path, capsys):
    """`tinytrain train --classes 4 --out` (the NumPy reference) then `export`: the file has 4 classes and
    computes the learned logits; the npz carries what export needs and `push` still reads it."""
    O.require_tflm()
    base = tflite_model("edge_odd_sizes")  # (an image model: 3 channels)
    model = load_model(base, 4, True)
    rng = np.random.default_rng(2)
    h, w, c = model.input_spec.shape
    data_npz = tmp_path / "data.npz"
    np.savez(data_npz, images=rng.integers(0, 256, size=(6, h, w, c)).astype(np.uint8),
             labels=np.arange(6) % 4)
    npz, tuned = tmp_path / "learned.npz", tmp_path / "tuned.tflite"
    assert main(["train", str(base), "--classes", "4", "--scheme", "last:2", "--data", str(data_npz),
                 "--out", str(npz)]) == 0
    assert main(["export", str(base), str(npz), "--out", str(tuned)]) == 0
    assert "a new head of 4 classes" in capsys.readouterr().out
    with np.load(npz) as z:
        learned = ttm.from_bytes(z["model"].tobytes())
        ws = {n.name: z[f"weight.{n.name}"] for n in learned.weighted_ops}
        bs = {n.name: z[f"bias.{n.name}"] for n in learned.weighted_ops}
    tm = read_tflite(tuned)
    assert tm.tensors[tm.outputs[0]].shape[-1] == 4
    ref = NumpyBackend(compile_model(learned, builtin("classifier", len(learned.weighted_ops))).program)
    ref.weights, ref.biases = ws, bs
    data = tuned.read_bytes()
    for _ in range(3):
        x = rng.integers(-128, 128, size=model.input_spec.shape).astype(np.int8)
        assert np.array_equal(tflm_logits(data, learned, x)[0], ref.infer(x))


# ---------------------------------------------------------------- errors: one sentence each


def run_error(capsys, argv: list[str], *words: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tinytrain: error: ") and "\n" not in err and err.endswith("."), err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture(scope="module")
def learned(tmp_path_factory):
    """A pull file of edge_odd_sizes (two reference steps), and one of a model that is no TFLite model."""
    d = tmp_path_factory.mktemp("learned")
    base = tflite_model("edge_odd_sizes")
    files = {}
    for name, model in (("tflite", load_model(base)), ("ttm", random_model(3, size=8, classes=3, width=4))):
        c = compile_model(model, builtin("last:2", len(model.weighted_ops)))
        be = NumpyBackend(c.program, use_arena=False)
        be.train_step(np.zeros(model.input_spec.shape, np.int8), 1)
        files[name] = d / f"{name}.npz"
        save_state(files[name], c.model_hash, model.name, be.state_bytes(), c.state_hash, c.program_hash, "last:2",
                   model=c.program.model, learned=(be.weights, be.biases))
        old = d / f"{name}-old.npz"  # as `tinytrain fleet` and older versions write it: the state alone
        save_state(old, c.model_hash, model.name, be.state_bytes(), c.state_hash, c.program_hash, "last:2")
        files[f"{name}-old"] = old
    return base, files


def test_export_errors_are_one_sentence(tmp_path, capsys, learned):
    base, files = learned
    out = str(tmp_path / "tuned.tflite")
    other = tflite_model("edge_mean_windows")
    run_error(capsys, ["export", str(other), str(files["tflite"]), "--out", out], "another file", str(other),
              "edge_odd_sizes.tflite")
    text = tmp_path / "notes.tflite"
    text.write_text("not a model")
    run_error(capsys, ["export", str(text), str(files["tflite"]), "--out", out], "another file")
    run_error(capsys, ["export", str(tmp_path / "missing.tflite"), str(files["tflite"]), "--out", out],
              "does not exist")
    run_error(capsys, ["export", str(base), str(files["tflite-old"]), "--out", out], "pull it again")
    run_error(capsys, ["export", str(base), str(files["ttm"]), "--out", out], "not imported from a TFLite file")
    run_error(capsys, ["export", str(base), str(text), "--out", out], "not a state saved by `tinytrain pull`")
    run_error(capsys, ["export", str(base), str(tmp_path / "none.npz"), "--out", out], "does not exist")
    run_error(capsys, ["export", str(base), str(files["tflite"]), "--out", str(tmp_path / "tuned.npz")],
              "does not end in .tflite")
    run_error(capsys, ["export", str(base), str(files["tflite"]), "--out", str(tmp_path / "no" / "t.tflite")],
              "does not exist")
    run_error(capsys, ["export", str(base), str(files["tflite"]), "--out", str(text)], "exists", "--force")
    copy = tmp_path / "base.tflite"
    copy.write_bytes(base.read_bytes())
    run_error(capsys, ["export", str(copy), str(files["tflite"]), "--out", str(copy), "--force"], "base file itself")
    damaged = tmp_path / "damaged.npz"
    with np.load(files["tflite"]) as z:
        arrays = {k: z[k] for k in z.files}
    arrays[next(k for k in arrays if k.startswith("weight."))] = np.zeros(3, np.int8)
    np.savez(damaged, **arrays)
    run_error(capsys, ["export", str(base), str(damaged), "--out", out], "damaged")
    assert main(["export", str(base), str(files["tflite"]), "--out", out]) == 0  # and the good case writes
    capsys.readouterr()


def test_pull_option_errors_are_one_sentence(tmp_path, capsys):
    run_error(capsys, ["pull", "--port", "socket://127.0.0.1:9", "--out", str(tmp_path / "l.npz"), "--base",
                       str(tmp_path / "b.tflite")], "--tflite")
    run_error(capsys, ["pull", "--port", "socket://127.0.0.1:9", "--out", str(tmp_path / "l.npz"), "--tflite",
                       str(tmp_path / "t.npz")], "does not end in .tflite")


def test_base_of_a_ttm_is_the_file_beside_it(tmp_path, learned):
    from tinytrain.commands.export import base_of
    from tinytrain.errors import TinytrainError

    base, _ = learned
    model = load_model(base)
    (tmp_path / base.name).write_bytes(base.read_bytes())
    ttm.save(model, tmp_path / "model.ttm")
    assert base_of(model, tmp_path / "model.ttm") == tmp_path / base.name
    assert base_of(model, base) == base
    (tmp_path / base.name).write_bytes(b"changed")
    with pytest.raises(TinytrainError, match="pass it with --base"):
        base_of(model, tmp_path / "model.ttm")
    with pytest.raises(TinytrainError, match="not imported from a TFLite file"):
        base_of(random_model(3, size=8, classes=3, width=4), tmp_path / "model.ttm")
