"""tinytrain export: what a board learned, written back into the TFLite file its model came from.

    tinytrain export BASE.tflite learned.npz --out tuned.tflite

`learned.npz` is a `tinytrain pull` (or `tinytrain train --out`) file: besides the learned state it
carries the model the board ran and every layer's learned weights and biases. The tuned file is BASE
with those tensors replaced, in BASE's own quantization (model.tflite_export): a new head's classes,
shapes and quantization, everything else as it was. It loads in TFLite Micro and LiteRT and computes,
op by op, what the board computes (docs/tflite_export.md).
"""

from __future__ import annotations

import argparse
import hashlib
import zipfile
import zlib
from pathlib import Path

import numpy as np

from tinytrain.commands.state_file import BIAS_PREFIX, WEIGHT_PREFIX, load_state
from tinytrain.errors import TinytrainError
from tinytrain.ir.graph import Model
from tinytrain.model import ttm
from tinytrain.model.tflite import hwc
from tinytrain.model.tflite_export import export_tflite
from tinytrain.model.tflite_reader import read_tflite


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a fine-tuned model back into its TFLite file",
                       description="Write what a board learned (a file of `tinytrain pull` or `tinytrain train --out`) "
                                   "into the int8 TFLite file its model was imported from: the trained weights and "
                                   "biases in the file's own quantization, a new head's classes; every other tensor "
                                   "and operator as in BASE. The result runs in TFLite Micro and LiteRT and predicts "
                                   "what the board predicts.")
    p.add_argument("base", type=Path, metavar="BASE.tflite", help="the .tflite file the board's model was imported from")
    p.add_argument("learned", type=Path, metavar="learned.npz", help="a file of `tinytrain pull` or `train --out`")
    p.add_argument("--out", type=Path, required=True, metavar="tuned.tflite", help="the TFLite file to write")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_tflite_out(args.out, args.force)
    print(export_file(args.base, args.learned, args.out, args.force))
    return 0


def check_tflite_out(out: Path, force: bool) -> None:
    """Refuses an output that cannot or should not be written, before any work is done."""
    if out.suffix != ".tflite":
        raise TinytrainError(f"{out} does not end in .tflite; name the TFLite file to write, e.g. tuned.tflite.")
    if out.is_dir():
        raise TinytrainError(f"{out} is a folder; give the file to write, e.g. {out / 'tuned.tflite'}.")
    if not out.parent.is_dir():
        raise TinytrainError(f"the folder {out.parent} of {out} does not exist.")
    if out.exists() and not force:
        raise TinytrainError(f"{out} exists; pass --force to overwrite it.")


def learned_tensors(path: Path) -> tuple[Model, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The model a pull file was learned by and its learned weights and biases (by node name)."""
    saved = load_state(path)  # one sentence for anything that is not such a file
    try:
        with np.load(path, allow_pickle=False) as z:
            if "model" not in z.files:
                raise TinytrainError(f"{path} holds the learned state but not the model it belongs to (it was saved "
                                     "by `tinytrain fleet` or an older tinytrain); pull it again with `tinytrain pull`.")
            model = ttm.from_bytes(z["model"].tobytes(), f"the model in {path}")
            weights = {n.name: z[WEIGHT_PREFIX + n.name] for n in model.weighted_ops}
            biases = {n.name: z[BIAS_PREFIX + n.name] for n in model.weighted_ops}
    except TinytrainError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
        raise TinytrainError(f"{path} is not a complete file of `tinytrain pull` ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:80] if str(exc) else ''}); pull it again.") from None
    if ttm.model_hash(model) != saved["model_hash"]:
        raise TinytrainError(f"{path} is damaged: the model it carries is not the model {saved['model_hash'][:12]} "
                             "its state was pulled from; pull it again.")
    for n in model.weighted_ops:
        w, b = weights[n.name], biases[n.name]
        if w.dtype != np.int8 or w.shape != n.weight.shape or b.dtype != np.int32 or b.shape != n.bias.shape:
            raise TinytrainError(f"{path} is damaged: the learned tensors of layer {n.name} do not have the layer's "
                                 "shapes and types; pull it again.")
    return model, weights, biases


def check_base(base: Path, model: Model, learned: Path) -> None:
    """One sentence when BASE is not the file the model was imported from (or does not fit it)."""
    meta = model.metadata.get("tflite")
    if not meta or "params" not in meta:
        raise TinytrainError(f"the model in {learned} ({model.name}) was not imported from a TFLite file, so it "
                             "cannot be exported as one (export takes models imported from int8 .tflite files).")
    if not base.is_file():
        raise TinytrainError(f"{base} does not exist." if not base.exists() else f"{base} is not a file.")
    digest = hashlib.sha256(base.read_bytes()).hexdigest()
    if meta.get("sha256") and digest != meta["sha256"]:
        raise TinytrainError(f"{learned} was learned by a model imported from another file than {base}: "
                             f"{meta.get('file', 'its file')} with SHA-256 {meta['sha256'][:12]}, not "
                             f"{digest[:12]}; pass that .tflite file as the base.")
    m = read_tflite(base)  # (one sentence for a file that is not TFLite)
    ours = _tflite_input(model)
    theirs = hwc(m.tensors[meta["tensors"].get(ours, m.inputs[0])].shape) if ours else None
    if ours and model.tensors[ours].shape != theirs:
        raise TinytrainError(f"{learned} was learned at another input size than {base} takes "
                             f"({'x'.join(map(str, model.tensors[ours].shape))}, the file "
                             f"{'x'.join(map(str, theirs))}: the build option resolution); such a model cannot be "
                             "written into the file.")


def _tflite_input(model: Model) -> str | None:
    """The model tensor that stands for the file's (int8) input: the model's input, or the tensor an
    image source's resize makes (model.pixels)."""
    tensors = model.metadata["tflite"].get("tensors", {})
    if model.input in tensors:
        return model.input
    for op in model.ops:
        if op.op_type == "image_resize" and op.output in tensors:
            return op.output
    return None


def base_of(model: Model, model_path: Path) -> Path:
    """The TFLite file a build's model came from: the build's model itself, or the file named in a .ttm's
    metadata, next to it."""
    meta = model.metadata.get("tflite")
    if not meta:
        raise TinytrainError(f"the board's model {model.name} was not imported from a TFLite file, so --tflite has "
                             "no file to write it into.")
    if model_path.suffix == ".tflite":
        return model_path
    folder = model_path if model_path.is_dir() else model_path.parent
    candidate = folder / meta.get("file", "")
    if candidate.is_file() and hashlib.sha256(candidate.read_bytes()).hexdigest() == meta.get("sha256"):
        return candidate
    raise TinytrainError(f"the board's model was imported from {meta.get('file', 'a TFLite file')}, which is not "
                         f"next to {model_path}; pass it with --base.")


def export_file(base: Path, learned: Path, out: Path, force: bool = False) -> str:
    """Writes the tuned file; returns what was written, in one line."""
    check_tflite_out(out, force)
    model, weights, biases = learned_tensors(learned)
    check_base(base, model, learned)
    if out.exists() and out.resolve() == base.resolve():
        raise TinytrainError(f"{out} is the base file itself; write the tuned model to another file.")
    data = export_tflite(base, model, weights, biases)
    try:
        tmp = out.with_name(out.name + ".part")
        tmp.write_bytes(data)
        tmp.replace(out)
    except OSError as exc:
        raise TinytrainError(f"cannot write {out} ({exc.strerror or exc}).") from None
    head = model.metadata.get("head")
    what = f"a new head of {head['classes']} classes" if head else f"{model.num_classes} classes"
    return (f"wrote {out} ({len(data):,} bytes): {base.name} with the learned weights and biases of "
            f"{len(model.weighted_ops)} layers, {what}")
