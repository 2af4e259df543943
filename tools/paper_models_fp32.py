"""fp32 PyTorch fine-tuning of one of the paper's models, the same layers (a sparse-update scheme), the
same samples in the same order, the same learning rate and schedule as the board (issue 19's
acceptance run): learn.float_finetune on the dequantized model. With --source, the samples are the
source's pixels made into the int8 input exactly as the board does it (numerics.kernels.image_resize),
so fp32 sees the very values the int8 model sees.

    .venv/bin/python tools/paper_models_fp32.py ../shared/models/tiny-training/mcunet-5fps.pkl \
        --scheme ../shared/anchors/sparse_schemes.json:mcunet-5fps/49kb --source 28x28x1 \
        --data fashion-mnist:train --samples 1000 --eval-data fashion-mnist:test --eval-samples 1000
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from tinytrain.compile import scheme as sparse_scheme
from tinytrain.compile.compiler import model_lr
from tinytrain.learn.float_finetune import finetune
from tinytrain.learn.sample_input import model_samples
from tinytrain.model.loader import load_model
from tinytrain.numerics import kernels as K


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--scheme", required=True)
    p.add_argument("--source", help="HxWxC: samples are source pixels, resized as on the board")
    p.add_argument("--data", required=True)
    p.add_argument("--samples", type=int)
    p.add_argument("--eval-data", required=True)
    p.add_argument("--eval-samples", type=int)
    p.add_argument("--schedule", default="linear")
    p.add_argument("--lr", type=float, help="default: the model's own (tinytrain's model_lr)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args()
    model = load_model(args.model, args.classes, new_head=True)
    lr = args.lr if args.lr is not None else model_lr(model)
    scheme = sparse_scheme.load(args.scheme, model)

    def inputs(spec: str, n: int | None) -> tuple[np.ndarray, np.ndarray]:
        if not args.source:
            return model_samples(spec, model, n, resize=True)
        sourced = load_model(args.model, args.classes, new_head=True, source=args.source)
        pixels, ys = model_samples(spec, sourced, n)
        node = sourced.ops[0]
        h, w, c = node.shape
        return K.image_resize(pixels.view(np.uint8), (h, w), c, node.lut), ys

    xs, ys = inputs(args.data, args.samples)
    ex, ey = inputs(args.eval_data, args.eval_samples)
    t0 = time.monotonic()
    r = finetune(model, xs, ys, scheme, lr, 1, args.schedule, ex, ey, threads=args.threads)
    out = {"model": model.name, "scheme": scheme.name, "lr": lr, "schedule": args.schedule, "train": args.data,
           "samples": len(ys), "eval": args.eval_data, "eval_samples": len(ey),
           "fp32_accuracy_before": r["accuracy_before"], "fp32_accuracy_after": r["accuracy_after"],
           "seconds": time.monotonic() - t0}
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
