"""Hostile input, table-driven: every generated bad file or argument must end the CLI with exit
status 2 and exactly one `tinytrain: error: ...` line, never a traceback (and nothing a bad .pkl
holds is ever executed). A board is never needed: files and arguments are refused before the
serial line is opened (the --port below has nobody listening)."""

from __future__ import annotations

import io
import json
import pickle
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tinytrain.model import ttm as model_file
from tinytrain.commands.cli import main
from tinytrain.model.synthetic import random_model

NOBODY = "socket://127.0.0.1:9"  # the discard port: nothing answers there


# ---------------------------------------------------------------- generated bad files


def good_ttm(tmp: Path) -> Path:
    path = tmp / "good.ttm"
    if not path.exists():
        model_file.save(random_model(3), path)
    return path


def rewrite_ttm(tmp: Path, name: str, edit: Callable[[dict, dict[str, bytes]], None]) -> Path:
    """A copy of a good model whose model.json (and arrays) `edit` changed."""
    with zipfile.ZipFile(good_ttm(tmp)) as z:
        doc = json.loads(z.read("model.json"))
        arrays = {n: z.read(n) for n in z.namelist() if n != "model.json"}
    edit(doc, arrays)
    path = tmp / f"{name}.ttm"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("model.json", json.dumps(doc))
        for n, data in arrays.items():
            z.writestr(n, data)
    return path


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def first_conv(doc: dict) -> dict:
    return next(op for op in doc["ops"] if op["type"] == "conv2d")


def set_tensor(field: str, value) -> Callable[[dict, dict], None]:
    def edit(doc: dict, arrays: dict) -> None:
        doc["tensors"][1][field] = value
    return edit


def set_conv(field: str, value) -> Callable[[dict, dict], None]:
    def edit(doc: dict, arrays: dict) -> None:
        first_conv(doc)[field] = value
    return edit


def set_array(which: str, value: bytes | Callable[[np.ndarray], np.ndarray]) -> Callable[[dict, dict], None]:
    def edit(doc: dict, arrays: dict) -> None:
        name = f"arrays/{first_conv(doc)[which]}.npy"
        if callable(value):
            arrays[name] = npy(value(np.load(io.BytesIO(arrays[name]))))
        else:
            arrays[name] = value
    return edit


def flipped(tmp: Path, name: str, at: float | int) -> Path:
    data = bytearray(good_ttm(tmp).read_bytes())
    data[at if isinstance(at, int) else int(len(data) * at)] ^= 0x10
    path = tmp / f"{name}.ttm"
    path.write_bytes(bytes(data))
    return path


TTM_CASES: dict[str, Callable[[Path], Path]] = {
    "empty": lambda t: _write(t / "empty.ttm", b""),
    "truncated": lambda t: _write(t / "trunc.ttm", good_ttm(t).read_bytes()[: len(good_ttm(t).read_bytes()) // 2]),
    "bit-flipped-early": lambda t: flipped(t, "flip1", 0.05),
    "bit-flipped-middle": lambda t: flipped(t, "flip2", 0.5),
    "bit-flipped-end-record": lambda t: flipped(t, "flip3", -22),
    "not-a-zip": lambda t: _write(t / "text.ttm", b"hello, I am not a model\n"),
    "no-model-json": lambda t: _zip(t / "nojson.ttm", {"other.txt": b"x"}),
    "model-json-not-json": lambda t: _zip(t / "badjson.ttm", {"model.json": b"{not json"}),
    "model-json-a-list": lambda t: _zip(t / "list.ttm", {"model.json": b"[1, 2]"}),
    "model-json-not-utf8": lambda t: _zip(t / "latin.ttm", {"model.json": b'{"format": "\xff\xfe"}'}),
    "tensors-wrong-type": lambda t: rewrite_ttm(t, "tensors", lambda d, a: d.update(tensors=5)),
    "ops-a-dict": lambda t: rewrite_ttm(t, "opsdict", lambda d, a: d.update(ops={"a": 1})),
    "shape-a-string": lambda t: rewrite_ttm(t, "shape", set_tensor("shape", "abc")),
    "shape-two-dims": lambda t: rewrite_ttm(t, "shape2", set_tensor("shape", [4, 4])),
    "shape-negative": lambda t: rewrite_ttm(t, "shapeneg", set_tensor("shape", [-6, 6, 8])),
    "scale-a-string": lambda t: rewrite_ttm(t, "scale", set_tensor("scale", "x")),
    "scale-nan": lambda t: rewrite_ttm(t, "nan", set_tensor("scale", float("nan"))),
    "scale-zero": lambda t: rewrite_ttm(t, "scale0", set_tensor("scale", 0.0)),
    "zero-point-out-of-range": lambda t: rewrite_ttm(t, "zp", set_tensor("zero_point", 1000)),
    "stride-0": lambda t: rewrite_ttm(t, "stride0", set_conv("stride", 0)),
    "stride-a-list": lambda t: rewrite_ttm(t, "stridelist", set_conv("stride", [1])),
    "groups-0": lambda t: rewrite_ttm(t, "groups0", set_conv("groups", 0)),
    "padding-negative": lambda t: rewrite_ttm(t, "padneg", set_conv("padding", -3)),
    "unknown-op": lambda t: rewrite_ttm(t, "op", set_conv("type", "lstm")),
    "array-missing": lambda t: rewrite_ttm(t, "arrmiss", set_conv("weight", "nowhere")),
    "array-not-npy": lambda t: rewrite_ttm(t, "arrtext", set_array("weight", b"not an npy file")),
    "array-object-dtype": lambda t: rewrite_ttm(t, "arrobj", set_array("weight", _object_npy())),
    "weights-float": lambda t: rewrite_ttm(t, "wfloat", set_array("weight", lambda w: w.astype(np.float32))),
    "weights-wrong-shape": lambda t: rewrite_ttm(t, "wshape", set_array("weight", lambda w: w.reshape(-1))),
    "bias-wrong-length": lambda t: rewrite_ttm(t, "blen", set_array("bias", lambda b: b[:-1])),
    "weight-scales-nan": lambda t: rewrite_ttm(t, "wsnan", set_array("weight_scales", lambda s: s * np.nan)),
    "weight-scales-wrong-length": lambda t: rewrite_ttm(t, "wslen", set_array("weight_scales", lambda s: s[:1])),
}


def _object_npy() -> bytes:
    # A header claiming object dtype: np.load refuses it with allow_pickle=False.
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (63 - len(header) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\x00" * 8


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _zip(path: Path, members: dict[str, bytes], stored: bool = False) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def torch_zip(path: Path, pickled: bytes) -> Path:
    return _zip(path, {"archive/data.pkl": pickled, "archive/version": b"3\n"}, stored=True)


class _Codecs:
    """Pickles as _codecs.encode('...', 'rot13'): an allowed global called with a codec a model never needs."""

    def __reduce__(self):
        import _codecs

        return (_codecs.encode, ("payload", "rot13"))


class _System:
    """Pickles as os.system('...'): must be refused without running anything."""

    def __reduce__(self):
        import os

        return (os.system, ("touch /tmp/tinytrain-pwned",))


def flipped_pkl(tmp: Path, offset: int) -> Path:
    good = pickle.dumps({"first_conv": {"params": {"weight": np.zeros((2, 2), np.int8)}}, "blocks": []}, protocol=2)
    data = bytearray(good)
    data[offset % len(data)] ^= 0x41
    return torch_zip(tmp / f"flip{offset}.pkl", bytes(data))


PKL_CASES: dict[str, Callable[[Path], Path]] = {
    "empty-file": lambda t: _write(t / "empty.pkl", b""),
    "not-a-zip": lambda t: _write(t / "text.pkl", b"just text"),
    "zip-without-data-pkl": lambda t: _zip(t / "nodata.pkl", {"x": b"1"}),
    "empty-dict": lambda t: torch_zip(t / "dict.pkl", pickle.dumps({}, protocol=2)),
    "an-int": lambda t: torch_zip(t / "int.pkl", pickle.dumps(7, protocol=2)),
    "a-list": lambda t: torch_zip(t / "list.pkl", pickle.dumps([1, 2], protocol=2)),
    "codecs-payload": lambda t: torch_zip(t / "codecs.pkl", pickle.dumps(_Codecs(), protocol=2)),
    "os-system-payload": lambda t: torch_zip(t / "system.pkl", pickle.dumps(_System(), protocol=2)),
    "truncated-pickle": lambda t: torch_zip(t / "trunc.pkl", pickle.dumps({"a": list(range(100))}, protocol=2)[:40]),
    "bit-flipped-1": lambda t: flipped_pkl(t, 3),
    "bit-flipped-2": lambda t: flipped_pkl(t, 30),
    "bit-flipped-3": lambda t: flipped_pkl(t, 120),
    "bit-flipped-4": lambda t: flipped_pkl(t, -3),
    "partial-model-dict": lambda t: torch_zip(t / "partial.pkl", pickle.dumps(
        {"first_conv": {"params": {}, "in_shape": 8}, "blocks": [None], "classifier": 1}, protocol=2)),
}


# ---------------------------------------------------------------- datasets, states, images


def npz(path: Path, **arrays) -> Path:
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def bomb_png(path: Path, side: int = 30000) -> Path:
    """A tiny PNG that claims side x side pixels (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))
    return path


def bomb_folder(tmp: Path) -> Path:
    folder = tmp / "bombdata"
    (folder / "a").mkdir(parents=True, exist_ok=True)
    bomb_png(folder / "a" / "x.png")
    return folder


DATA_CASES: dict[str, Callable[[Path], Path]] = {
    "empty-file": lambda t: _write(t / "empty.npz", b""),
    "truncated": lambda t: _write(t / "trunc.npz", npz(t / "full.npz", images=np.zeros((4, 12, 12, 3), np.uint8),
                                                       labels=np.zeros(4, np.int64)).read_bytes()[:300]),
    "garbage": lambda t: _write(t / "garbage.npz", b"PK\x03\x04" + b"\x00" * 100),
    "no-samples": lambda t: npz(t / "none.npz", images=np.zeros((0, 12, 12, 3), np.uint8), labels=np.zeros(0, np.int64)),
    "images-float": lambda t: npz(t / "float.npz", images=np.zeros((2, 12, 12, 3), np.float32), labels=np.zeros(2, np.int64)),
    "labels-too-few": lambda t: npz(t / "few.npz", images=np.zeros((2, 12, 12, 3), np.uint8), labels=np.zeros(1, np.int64)),
    "single-array-npy": lambda t: _write(t / "single.npz", npy(np.zeros(3))),
    "decompression-bomb-folder": bomb_folder,
}

STATE_CASES: dict[str, Callable[[Path], Path]] = {
    "empty-file": lambda t: _write(t / "empty-state.npz", b""),
    "garbage": lambda t: _write(t / "garbage-state.npz", b"\x00\x01garbage" * 10),
    "truncated": lambda t: _write(t / "trunc-state.npz", npz(t / "s.npz", state=np.zeros(100, np.uint8)).read_bytes()[:200]),
    "no-keys": lambda t: npz(t / "nokeys.npz", other=np.zeros(3)),
    "state-float": lambda t: npz(t / "sfloat.npz", model_hash=np.array("a" * 64), state_hash=np.array("b" * 64),
                                 state=np.zeros(8, np.float32)),
    "hash-not-hex": lambda t: npz(t / "shex.npz", model_hash=np.array("zz"), state_hash=np.array("b" * 64),
                                  state=np.zeros(8, np.uint8)),
    "older-format": lambda t: npz(t / "old.npz", model_hash=np.array("a" * 64), model_name=np.array("m"),
                                  state=np.zeros(8, np.uint8)),
    "a-folder": lambda t: (t / "statedir").mkdir(exist_ok=True) or (t / "statedir"),
    "missing": lambda t: t / "does-not-exist.npz",
}

SCHEME_CASES: dict[str, object] = {
    "missing-keys": {"n_bias_update": 2},
    "duplicate-layer": {"n_bias_update": 1, "manual_weight_idx": [3, 3], "weight_update_ratio": [1, 0.5]},
    "fractional-layer": {"n_bias_update": 1, "manual_weight_idx": [1.5], "weight_update_ratio": [1]},
    "fractional-bias-count": {"n_bias_update": 1.5, "manual_weight_idx": [], "weight_update_ratio": []},
    "string-bias-count": {"n_bias_update": "3", "manual_weight_idx": [], "weight_update_ratio": []},
    "bool-layer": {"n_bias_update": 1, "manual_weight_idx": [True], "weight_update_ratio": [1]},
    "ratio-nan": {"n_bias_update": 1, "manual_weight_idx": [2], "weight_update_ratio": [float("nan")]},
    "ratio-string": {"n_bias_update": 1, "manual_weight_idx": [2], "weight_update_ratio": ["half"]},
    "lengths-differ": {"n_bias_update": 1, "manual_weight_idx": [1, 2], "weight_update_ratio": [1]},
    "layer-out-of-range": {"n_bias_update": 1, "manual_weight_idx": [99], "weight_update_ratio": [1]},
    "a-list": [1, 2, 3],
    "extra-key": {"n_bias_update": 1, "manual_weight_idx": [], "weight_update_ratio": [], "n_weight_update": 3},
}


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


def scheme_file(tmp: Path, name: str) -> Path:
    path = tmp / f"scheme-{name}.json"
    path.write_text(json.dumps(SCHEME_CASES[name]))
    return path


# ---------------------------------------------------------------- the table


def _cases() -> list[tuple[str, Callable[[Path], list[str]]]]:
    out: list[tuple[str, Callable[[Path], list[str]]]] = []
    for name, make in TTM_CASES.items():
        out.append((f"ttm-{name}", lambda t, make=make: ["compile", str(make(t)), "--out", str(t / "out")]))
    for name, make in PKL_CASES.items():
        out.append((f"pkl-{name}", lambda t, make=make: ["compile", str(make(t)), "--out", str(t / "out")]))
    for name, make in DATA_CASES.items():
        out.append((f"data-{name}", lambda t, make=make: ["train", str(good_ttm(t)), "--data", str(make(t))]))
    for name, make in STATE_CASES.items():
        out.append((f"push-{name}", lambda t, make=make: ["push", "--port", NOBODY, str(make(t))]))
        out.append((f"export-{name}", lambda t, make=make: ["export", str(t / "base.tflite"), str(make(t)),
                                                            "--out", str(t / "tuned.tflite")]))
    for name in SCHEME_CASES:
        out.append((f"scheme-{name}", lambda t, name=name: ["compile", str(good_ttm(t)), "--scheme",
                                                            str(scheme_file(t, name)), "--out", str(t / "out")]))
    out += [
        ("scheme-empty-string", lambda t: ["compile", str(good_ttm(t)), "--scheme", "", "--out", str(t / "o")]),
        ("scheme-a-folder", lambda t: ["compile", str(good_ttm(t)), "--scheme", str(t), "--out", str(t / "o")]),
        ("scheme-not-utf8", lambda t: ["compile", str(good_ttm(t)), "--scheme", str(_write(t / "s.json", b"\xff\xfe{")),
                                       "--out", str(t / "o")]),
        ("compile-out-is-a-file", lambda t: ["compile", str(good_ttm(t)), "--out", str(_write(t / "afile", b"x"))]),
        ("contrib-out-is-a-file", lambda t: ["contrib", str(good_ttm(t)), "--budget", "64KB",
                                             "--out", str(_write(t / "bfile", b"x"))]),
        ("classes-0", lambda t: ["compile", str(good_ttm(t)), "--classes", "0", "--out", str(t / "o")]),
        ("classes-huge", lambda t: ["compile", str(good_ttm(t)), "--classes", "70000", "--out", str(t / "o")]),
        ("lr-negative", lambda t: ["compile", str(good_ttm(t)), "--lr", "-1", "--out", str(t / "o")]),
        ("lr-nan", lambda t: ["compile", str(good_ttm(t)), "--lr", "nan", "--out", str(t / "o")]),
        ("budget-garbage", lambda t: ["compile", str(good_ttm(t)), "--budget", "lots", "--out", str(t / "o")]),
        ("model-missing", lambda t: ["compile", str(t / "nothing.ttm"), "--out", str(t / "o")]),
        ("model-wrong-suffix", lambda t: ["compile", str(_write(t / "m.onnx", b"x")), "--out", str(t / "o")]),
        ("predict-decompression-bomb", lambda t: ["predict", str(good_ttm(t)), str(bomb_png(t / "bomb.png"))]),
        ("predict-not-an-image", lambda t: ["predict", str(good_ttm(t)), str(_write(t / "x.png", b"nope"))]),
        ("predict-missing-image", lambda t: ["predict", str(good_ttm(t)), str(t / "none.png")]),
        ("train-samples-negative", lambda t: ["train", str(good_ttm(t)), "--data", "mnist:train", "--samples", "-5"]),
        ("train-samples-0", lambda t: ["train", str(good_ttm(t)), "--data", "mnist:train", "--samples", "0"]),
        ("train-epochs-0", lambda t: ["train", str(good_ttm(t)), "--data", "mnist:train", "--epochs", "0"]),
        ("train-out-folder-missing", lambda t: ["train", str(good_ttm(t)), "--data", "x.npz",
                                                "--out", str(t / "no" / "such" / "dir" / "s.npz")]),
        ("stream-samples-negative", lambda t: ["stream", "--port", NOBODY, "--data", "mnist:train", "--samples", "-5"]),
        ("stream-samples-0", lambda t: ["stream", "--port", NOBODY, "--data", "mnist:train", "--samples", "0"]),
        ("stream-epochs-0", lambda t: ["stream", "--port", NOBODY, "--data", "mnist:train", "--epochs", "0"]),
        ("stream-epochs-negative", lambda t: ["stream", "--port", NOBODY, "--data", "mnist:train", "--epochs", "-1"]),
        ("check-eval-samples-0", lambda t: ["check", "--port", NOBODY, "--data", "mnist:train", "--eval-samples", "0"]),
        ("eval-samples-abc", lambda t: ["eval", "--port", NOBODY, "--data", "mnist:test", "--samples", "abc"]),
        ("pull-out-folder-missing", lambda t: ["pull", "--port", NOBODY, "--out", str(t / "no" / "such" / "x.npz")]),
        ("pull-out-is-a-folder", lambda t: ["pull", "--port", NOBODY, "--out", str(t)]),
        ("pull-tflite-not-tflite", lambda t: ["pull", "--port", NOBODY, "--out", str(t / "l.npz"),
                                              "--tflite", str(t / "tuned.onnx")]),
        ("pull-base-without-tflite", lambda t: ["pull", "--port", NOBODY, "--out", str(t / "l.npz"),
                                                "--base", str(t / "m.tflite")]),
        ("export-no-out", lambda t: ["export", str(t / "m.tflite"), str(t / "l.npz")]),
        ("export-out-folder-missing", lambda t: ["export", str(t / "m.tflite"), str(t / "l.npz"),
                                                 "--out", str(t / "no" / "such" / "t.tflite")]),
        ("export-out-is-a-folder", lambda t: ["export", str(t / "m.tflite"), str(t / "l.npz"),
                                              "--out", str(_folder(t / "x.tflite"))]),
        ("export-npz-missing", lambda t: ["export", str(t / "m.tflite"), str(t / "l.npz"),
                                          "--out", str(t / "t.tflite")]),
        ("dataset-bad-slice", lambda t: ["train", str(good_ttm(t)), "--data", "mnist:train[5:2]"]),
        ("dataset-unknown", lambda t: ["train", str(good_ttm(t)), "--data", "cifar:train"]),
        ("no-command", lambda t: []),
        ("unknown-command", lambda t: ["frobnicate"]),
    ]
    return out


CASES = _cases()


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code if isinstance(exc.code, int) else 2
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name,argv", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_sentence(name, argv, tmp_path, capsys):
    args = argv(tmp_path)
    code, err = run_cli(args, capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("tinytrain: error: "), err
    assert "Traceback" not in err
    assert not Path("/tmp/tinytrain-pwned").exists()


def test_the_table_is_large(capsys):
    print(f"{len(CASES)} bad inputs")
    assert len(CASES) >= 100


def test_a_bad_file_through_the_real_command(tmp_path):
    """The same, as a user runs it: a separate process, stderr as the terminal shows it."""
    bad = _write(tmp_path / "empty.ttm", b"")
    exe = Path(sys.executable).with_name("tinytrain")
    out = subprocess.run([str(exe), "compile", str(bad), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("tinytrain: error: ") and "Traceback" not in out.stderr
