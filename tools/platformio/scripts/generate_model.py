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
#   TINYTRAIN_RESOLUTION (input size, to run a model at another resolution),
#   TINYTRAIN_CHECKPOINTS (1/0: two checkpoint slots in the last 512 KB of flash; 0 gives the image all of it)
# Nothing generated is committed; an unchanged configuration is not regenerated.

import json
import sys
from pathlib import Path

Import("env")  # noqa: F821 (provided by SCons)


def fail(message):
    sys.stderr.write("tinytrain: error: %s\n" % message)
    env.Exit(1)  # noqa: F821


def auto_scheme(model, budget):  # `scheme = auto`: the contribution search (slow; its runs are cached)
    from tinytrain.board.host_runs import backend
    from tinytrain.learn.scheme_search import auto_scheme

    return auto_scheme(model, budget, backend=backend("c"))


project = Path(env.subst("$PROJECT_DIR"))  # noqa: F821
generated = Path(env.subst("$BUILD_DIR")) / "generated"  # noqa: F821
generated.mkdir(parents=True, exist_ok=True)

sys.path.insert(0, str(project / "host"))
try:
    from tinytrain.compile.build_config import build_key, compile_for_build, resolve
    from tinytrain.errors import TinytrainError
except ImportError as exc:  # pragma: no cover - setup problem
    fail("cannot import the tinytrain package (%s); run `make setup` first." % exc)

try:
    # The options, their defaults and the overrides are tinytrain's (compile/build_config.py); PlatformIO
    # gives the env's values (its [env] defaults and `extends` applied).
    cfg = resolve(lambda option: env.GetProjectOption(option, None), project)  # noqa: F821
    key = build_key(cfg)
    key_file = generated / "tinytrain.key"
    if not (key_file.exists() and key_file.read_text() == key and (generated / "tt_model_gen.c").exists()):
        info = compile_for_build(cfg, generated, auto=auto_scheme)
        key_file.write_text(key)
        budget = info.get("budget_bytes")
        print("tinytrain: generated %s for %s / %s: planned peak SRAM %.1f KB of a %s budget, lr %g" % (
            generated / "tt_model_gen.c", info["model"], info["scheme"], info["planned_peak_sram_bytes"] / 1024,
            "%.0f KB" % (budget / 1024) if budget else "no", info["options"]["lr"]))
        print("tinytrain: options: %s" % cfg.describe())
except TinytrainError as exc:
    fail(str(exc))

info = json.loads((generated / "tinytrain.json").read_text())
# Samples arrive zero-copy in the arena, so only the largest payload grows with the input.
# TRAIN's prefix is 12 bytes (label, reserved, lr_scale, step).
env.Append(CPPDEFINES=[("TT_MAX_PAYLOAD", "%du" % max(4096, info.get("sample_bytes", info["input_bytes"]) + 12)),  # noqa: F821
                       ("TT_RX_BUFFER_BYTES", "4096u"),
                       ("TT_MODEL_CLASSES", "%du" % info["classes"])])
if not cfg.checkpoints:
    # No checkpoint slots: the linker scripts give the image the whole flash.
    env.Append(LINKFLAGS=["-Wl,--defsym=__tt_nv_bytes__=0"])  # noqa: F821
