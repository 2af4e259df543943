# PlatformIO `pre:` extra script: writes $BUILD_DIR/generated/build_info.c, which
# defines the build id that INFO reports (git describe + build time, UTC).
#
# It is also the example of the generated-sources hook: any .c a pre: script
# writes into $BUILD_DIR/generated/ is compiled and linked, and that folder is
# on the include path (see tools/platformio/platform-tinytrain/builder/main.py).

import subprocess
import time
from pathlib import Path

Import("env")  # noqa: F821 (provided by SCons)


def git_describe(project_dir):
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=project_dir, capture_output=True, text=True, timeout=10, check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "nogit"


def write_if_changed(path, text):
    # Unchanged files keep their mtime, so SCons does not rebuild them.
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


generated = Path(env.subst("$BUILD_DIR")) / "generated"  # noqa: F821
generated.mkdir(parents=True, exist_ok=True)
build_id = "%s %s" % (git_describe(env.subst("$PROJECT_DIR")), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))  # noqa: F821
write_if_changed(
    generated / "build_info.c",
    "/* Generated at build time by tools/platformio/scripts/build_info.py; do not edit. */\n"
    "const char tt_build_id[] = \"%s\";\n" % build_id,
)
