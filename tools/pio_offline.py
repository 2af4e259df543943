"""Install the PlatformIO pieces that tinytrain needs without PlatformIO's registry.

Run with the Python of the project venv (tools/setup.sh does):

    .venv/bin/python tools/pio_offline.py          # install if missing, else do nothing
    .venv/bin/python tools/pio_offline.py --check  # exit 1 if something is missing

PlatformIO runs every build through its core package `tool-scons`, which it
downloads from its own registry on first use. That registry is unreachable here,
so this script installs tools/platformio/tool-scons (a `scons.py` that runs the
SCons pip installed from PyPI) as that package, into the core dir PlatformIO
uses ($PLATFORMIO_CORE_DIR or ~/.platformio). It is the same as

    pio pkg install -g -t file://$PWD/tools/platformio/tool-scons

followed by one fix: PlatformIO only accepts a core package whose recorded
spec (`.piopm`) names the owner `platformio`, and a file:// install records no
owner, so the script records it.

The development platform itself needs no install: platformio.ini names the
directory tools/platformio/platform-tinytrain, which PlatformIO reads in place.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from platformio.dependencies import get_core_dependencies
from platformio.package.manager.tool import ToolPackageManager
from platformio.package.meta import PackageItem, PackageSpec
from platformio.package.version import cast_version_to_semver

TOOL_SCONS_DIR = Path(__file__).resolve().parent / "platformio" / "tool-scons"
NAME = "tool-scons"


def wanted_spec() -> PackageSpec:
    """The spec PlatformIO itself resolves before every build."""
    return PackageSpec(owner="platformio", name=NAME, requirements=get_core_dependencies()[NAME])


def find_installed() -> PackageItem | None:
    return ToolPackageManager().get_package(wanted_spec())


def check_version_matches() -> None:
    spec = wanted_spec()
    ours = json.loads((TOOL_SCONS_DIR / "package.json").read_text())["version"]
    if cast_version_to_semver(ours) not in spec.requirements:
        sys.exit(
            f"error: this PlatformIO wants {NAME} {spec.requirements}, but "
            f"{TOOL_SCONS_DIR}/package.json says {ours}; update its version and the SCons pin "
            "in pyproject.toml together."
        )


def claim_platformio_owner() -> int:
    """Record owner `platformio` in every tool-scons we installed from file://."""
    fixed = 0
    for pkg in ToolPackageManager().get_installed():
        meta = pkg.metadata
        if meta is None or meta.name != NAME or meta.spec is None:
            continue
        if (meta.spec.uri or "").startswith("file://") and meta.spec.owner != "platformio":
            meta.spec = PackageSpec(owner="platformio", name=NAME, uri=meta.spec.uri)
            pkg.dump_meta()
            fixed += 1
    return fixed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether it is installed")
    args = parser.parse_args()

    check_version_matches()
    pkg = find_installed()
    if pkg is not None:
        print(f"PlatformIO offline: {NAME} {pkg.metadata.version} present in {pkg.path}")
        return 0
    if args.check:
        print(f"PlatformIO offline: {NAME} missing from {ToolPackageManager().package_dir}", file=sys.stderr)
        return 1

    # A file:// install from an earlier, interrupted run only lacks the owner.
    if not claim_platformio_owner():
        ToolPackageManager().install(f"file://{TOOL_SCONS_DIR}")
        claim_platformio_owner()
    pkg = find_installed()
    if pkg is None:
        print(
            f"error: installed {TOOL_SCONS_DIR} into {ToolPackageManager().package_dir}, "
            "but PlatformIO still does not accept it as its tool-scons.",
            file=sys.stderr,
        )
        return 1
    print(f"PlatformIO offline: installed {NAME} {pkg.metadata.version} into {pkg.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
