#!/usr/bin/env python3
"""Pre-trains the shipped IMU model (models/watch-imu) the way a user would make one:

    .venv/bin/python tools/pretrain_imu.py [--out models/watch-imu] [--epochs 60]

1. Data: `watch:train` (tinytrain.learn.datasets): 2 s windows (100 steps at 50 Hz) of the 6 IMU axes
   of seglearn's smartwatch exercise data, as int16 counts of a virtual sensor, from the 7
   pre-training subjects; the held-out subjects (WATCH_HELDOUT) are never seen here.
2. Keras (TensorFlow backend): per-channel standardization of the counts (mean and std of the
   training windows), a 1-D CNN of k x 1 kernels over time (a stem conv, depthwise-separable blocks,
   global average pooling, a dense classifier), BatchNorm and ReLU6; trained with Adam, seeded.
3. TensorFlow's TFLite converter: full int8 (int8 input and output, per-channel conv weights),
   calibrated on training windows -> model.tflite.
4. tinytrain's TFLite importer -> model.ttm, with the per-channel integer scaling of raw counts to
   the int8 input (metadata sensor_to_input: what the board applies to the int16 samples it
   receives) folded from the standardization and the input tensor's quantization.
5. Accuracy per subject: fp32 Keras, and int8 through the NumPy reference (the board's arithmetic);
   pretrain_log.json and the card README.md.

Reproducible: every seed is fixed and TensorFlow runs with op determinism on one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "host"))

from tinytrain.learn import datasets as D  # noqa: E402
from tinytrain.numerics.sensor_input import SensorScaling  # noqa: E402

SEED = 7
NAME = "watch-imu"
# (depthwise kernel, stride, pointwise channels) after a 16-channel stem conv 7x1 stride 2.
STEM = (16, 7, 2)
BLOCKS = ((5, 1, 24), (5, 2, 32), (5, 1, 32), (5, 2, 48))


def keras_model(batch_size: int | None, dropout: float = 0.2):
    import keras

    L = keras.layers
    x = keras.Input((D.WATCH_WINDOW, 1, len(D.WATCH_CHANNELS)), batch_size=batch_size, name="imu")

    def bn_relu6(t):
        return L.ReLU(6.0)(L.BatchNormalization()(t))

    ch, k, s = STEM
    t = bn_relu6(L.Conv2D(ch, (k, 1), strides=(s, 1), padding="same", use_bias=False)(x))
    for k, s, out in BLOCKS:
        # TensorFlow's depthwise conv takes equal strides only; on a width of 1 the second is moot.
        t = bn_relu6(L.DepthwiseConv2D((k, 1), strides=(s, s), padding="same", use_bias=False)(t))
        t = bn_relu6(L.Conv2D(out, 1, use_bias=False)(t))
    t = L.GlobalAveragePooling2D()(t)
    if dropout:
        t = L.Dropout(dropout)(t)
    t = L.Dense(len(D.WATCH_CLASSES))(t)
    y = L.Softmax()(t)
    return keras.Model(x, y)


def augment(rng: np.random.Generator, x: np.ndarray) -> np.ndarray:
    """Standardized windows [N,T,1,C]: a random circular time shift, a per-window gain per channel
    (+-15 %) and a little noise: wearers differ in speed, strength and how the watch sits."""
    n, t = x.shape[:2]
    shifts = rng.integers(0, t, n)
    idx = (np.arange(t)[None, :] + shifts[:, None]) % t
    out = np.take_along_axis(x, idx[:, :, None, None], axis=1)
    out = out * rng.uniform(0.85, 1.15, (n, 1, 1, x.shape[3]))
    return (out + rng.normal(0.0, 0.05, out.shape)).astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "models" / NAME)
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    args = ap.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    t_start = time.monotonic()

    train = D.load_dataset("watch:train")
    counts = train.images.astype(np.float64)
    mean = counts.mean(axis=(0, 1, 2))
    std = counts.std(axis=(0, 1, 2))
    center = np.rint(mean)

    def standardize(windows: np.ndarray) -> np.ndarray:
        return ((windows.astype(np.float64) - center) / std).astype(np.float32)

    x, y = standardize(train.images), train.labels
    model = keras_model(None)
    steps = args.epochs * int(np.ceil(len(y) / args.batch))
    sched = keras.optimizers.schedules.CosineDecay(args.lr, steps)
    model.compile(optimizer=keras.optimizers.Adam(sched), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(SEED)
    history = []
    for epoch in range(args.epochs):
        order = rng.permutation(len(y))
        h = model.fit(augment(rng, x[order]), y[order], batch_size=args.batch, epochs=1, shuffle=False, verbose=0)
        history.append({k: float(v[-1]) for k, v in h.history.items()})
        if epoch % 10 == 9 or epoch == args.epochs - 1:
            print(f"epoch {epoch + 1}: loss {history[-1]['loss']:.4f} accuracy {history[-1]['accuracy']:.4f}", flush=True)
    t_train = time.monotonic() - t_start

    # A batch-1 twin without dropout converts to a graph with no batch dimension to resolve.
    single = keras_model(1, dropout=0.0)
    single.set_weights(model.get_weights())
    calib = x[np.random.default_rng(SEED + 1).permutation(len(y))[:300]]

    def representative():
        for w in calib:
            yield [w[None]]

    conv = tf.lite.TFLiteConverter.from_keras_model(single)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    tflite_bytes = bytes(conv.convert())
    args.out.mkdir(parents=True, exist_ok=True)
    tflite_path = args.out / "model.tflite"
    tflite_path.write_bytes(tflite_bytes)

    from tinytrain.model import ttm
    from tinytrain.model.tflite import import_tflite

    imported = import_tflite(tflite_path)
    imported.name = NAME
    s_in = imported.input_spec.qparams.scale
    scaling = SensorScaling.from_factors(D.WATCH_CHANNELS, center, 1.0 / (std * s_in), D.WATCH_UNITS, D.WATCH_LSB)
    imported.metadata.update({
        "sensor_to_input": scaling.to_json(),
        "class_names": list(D.WATCH_CLASSES),
        "dataset": {"name": "seglearn 1.2.5 load_watch", "train": "watch:train",
                    "heldout_subjects": list(D.WATCH_HELDOUT), "window_steps": D.WATCH_WINDOW,
                    "window_stride": D.WATCH_STRIDE, "hz": D.WATCH_HZ},
    })
    ttm_path = args.out / "model.ttm"
    ttm.save(imported, ttm_path)
    model8 = ttm.load(ttm_path)

    per_subject = evaluate(model8, single, standardize)
    n_params = int(sum(np.prod(w.shape) for w in single.get_weights() if w.ndim > 1)) + 0
    log = {
        "seed": SEED, "epochs": args.epochs, "batch": args.batch, "lr": args.lr,
        "train_windows": int(len(y)), "train_seconds": round(t_train, 1),
        "history": history, "standardize_center": center.tolist(), "standardize_std": std.tolist(),
        "input_scale": s_in, "input_zero_point": imported.input_spec.qparams.zero_point,
        "sensor_to_input": scaling.to_json(), "per_subject": per_subject,
        "tflite_bytes": len(tflite_bytes), "ttm_bytes": ttm_path.stat().st_size, "model_hash": ttm.model_hash(model8),
        "keras_params": int(single.count_params()), "weights_in_convs_and_dense": n_params,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__},
        "seconds": round(time.monotonic() - t_start, 1),
    }
    (args.out / "pretrain_log.json").write_text(json.dumps(log, indent=1))
    print(json.dumps({k: log[k] for k in ("per_subject", "tflite_bytes", "ttm_bytes", "model_hash", "seconds")},
                     indent=1))
    return 0


def evaluate(model8, keras_single, standardize) -> dict:
    """Per subject: fp32 Keras and int8 (NumPy reference) accuracy on all its windows, and on the
    adapt / test halves for the held-out subjects."""
    from tinytrain.compile import scheme as sparse_scheme
    from tinytrain.compile.compiler import compile_model
    from tinytrain.ir.program import CompileOptions
    from tinytrain.learn.sample_input import model_samples
    from tinytrain.reference.executor import NumpyBackend

    backend = NumpyBackend(compile_model(model8, sparse_scheme.load("classifier", model8), CompileOptions()).program,
                           use_arena=False)
    # A float model with batch 1 evaluates one window per call: build a batch-free copy for speed.
    float_model = keras_model(None, dropout=0.0)
    float_model.set_weights(keras_single.get_weights())
    out = {}
    for s in D.WATCH_SUBJECTS:
        specs = [f"watch:subject={s}"]
        if s in D.WATCH_HELDOUT:
            specs += [f"watch:subject={s}:adapt", f"watch:subject={s}:test"]
        for spec in specs:
            data = D.load_dataset(spec)
            xs, ys = model_samples(spec, model8)
            fp32 = float(np.mean(np.argmax(float_model.predict(standardize(data.images), verbose=0), axis=1) == ys))
            int8 = float(np.mean([backend.predict(v) == t for v, t in zip(xs, ys)]))
            key = spec.split(":", 1)[1]
            out[key] = {"heldout": s in D.WATCH_HELDOUT, "windows": int(len(ys)), "fp32": fp32, "int8": int8}
            print(f"{spec:24s} {len(ys):4d} windows  fp32 {100 * fp32:5.1f}%  int8 {100 * int8:5.1f}%", flush=True)
    return out


if __name__ == "__main__":
    sys.exit(main())
