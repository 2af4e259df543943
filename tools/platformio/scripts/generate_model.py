# PlatformIO `pre:` extra script: compiles the model's training step and writes
# $BUILD_DIR/generated/tt_model_gen.c (plus tinytrain.json, the compile report
# and options the host tools use to check the board against the reference).
#
# Options come from platformio.ini (custom_tinytrain_*) and can be overridden for
# one build by environment variables:
#   TINYTRAIN_MODEL    model file (.ttm, or one of the paper's .pkl)
#   TINYTRAIN_SCHEME   classifier | bias-only | last:K | full | FILE.json[:model/budget]
#   TINYTRAIN_CLASSES  number of classes (a different number gets a new head)
#   TINYTRAIN_BUDGET   total SRAM budget, e.g. 256KB (the build fails if the plan exceeds it)
#   TINYTRAIN_LR, TINYTRAIN_ROUNDING, TINYTRAIN_SEED, TINYTRAIN_QAS (1/0), TINYTRAIN_NEW_HEAD (1/0),
#   TINYTRAIN_RESOLUTION (input size, to run a model at another resolution)
# Nothing generated is committed; an unchanged configuration is not regenerated.

import hashlib
import json
import os
import sys
from pathlib import Path

Import("env")  # noqa: F821 (provided by SCons)

OPTIONS = {
    # name: (platformio.ini option, environment variable, default)
    "model": ("custom_tinytrain_model", "TINYTRAIN_MODEL", "models/fmnist-mbv2/model.ttm"),
    "scheme": ("custom_tinytrain_scheme", "TINYTRAIN_SCHEME", "classifier"),
    "classes": ("custom_tinytrain_classes", "TINYTRAIN_CLASSES", ""),
    "budget": ("custom_tinytrain_budget", "TINYTRAIN_BUDGET", ""),
    "lr": ("custom_tinytrain_lr", "TINYTRAIN_LR", "0.05"),
    "rounding": ("custom_tinytrain_rounding", "TINYTRAIN_ROUNDING", "stochastic"),
    "seed": ("custom_tinytrain_seed", "TINYTRAIN_SEED", "1"),
    "qas": ("custom_tinytrain_qas", "TINYTRAIN_QAS", "1"),
    "new_head": ("custom_tinytrain_new_head", "TINYTRAIN_NEW_HEAD", "0"),
    "head_seed": ("custom_tinytrain_head_seed", "TINYTRAIN_HEAD_SEED", "0"),
    "resolution": ("custom_tinytrain_resolution", "TINYTRAIN_RESOLUTION", ""),
}


def option(name):
    ini, var, default = OPTIONS[name]
    value = os.environ.get(var)
    if value is None:
        value = env.GetProjectOption(ini, default)  # noqa: F821
    return str(value).strip()


def fail(message):
    sys.stderr.write("tinytrain: error: %s\n" % message)
    env.Exit(1)  # noqa: F821


project = Path(env.subst("$PROJECT_DIR"))  # noqa: F821
generated = Path(env.subst("$BUILD_DIR")) / "generated"  # noqa: F821
generated.mkdir(parents=True, exist_ok=True)
config = {name: option(name) for name in OPTIONS}
model_path = Path(config["model"])
if not model_path.is_absolute():
    model_path = project / model_path
if not model_path.exists():
    fail("the model %s (custom_tinytrain_model / TINYTRAIN_MODEL) does not exist." % model_path)

sys.path.insert(0, str(project / "host"))
try:
    import tinytrain
    from tinytrain.build_config import BuildConfig, compile_for_build
    from tinytrain.errors import TinytrainError
except ImportError as exc:  # pragma: no cover - setup problem
    fail("cannot import the tinytrain package (%s); run `make setup` first." % exc)

cfg = BuildConfig.from_strings(config, model_path, project)
# Any change of the compiler (every module of the package) regenerates the code.
package = Path(tinytrain.__file__).parent
key = hashlib.sha256(json.dumps(cfg.to_json(), sort_keys=True).encode() + model_path.read_bytes()
                     + b"".join(p.read_bytes() for p in sorted(package.rglob("*.py")))).hexdigest()
key_file = generated / "tinytrain.key"
if not (key_file.exists() and key_file.read_text() == key and (generated / "tt_model_gen.c").exists()):
    try:
        info = compile_for_build(cfg, generated)
    except TinytrainError as exc:
        fail(str(exc))
    key_file.write_text(key)
    print("tinytrain: generated %s for %s / %s (planned peak SRAM %.1f KB)" % (
        generated / "tt_model_gen.c", info["model"], info["scheme"], info["planned_peak_sram_bytes"] / 1024))

info = json.loads((generated / "tinytrain.json").read_text())
# Samples arrive zero-copy in the arena, so only the largest payload grows with the input.
env.Append(CPPDEFINES=[("TT_MAX_PAYLOAD", "%du" % max(4096, info["input_bytes"] + 8)),  # noqa: F821
                       ("TT_RX_BUFFER_BYTES", "4096u")])
