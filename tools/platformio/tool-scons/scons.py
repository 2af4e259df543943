"""PlatformIO's entry point for SCons (`python scons.py ...`).

PlatformIO normally downloads `tool-scons` from its own registry, which tinytrain
cannot reach. This stand-in runs the SCons that pip installed from PyPI into the
Python running PlatformIO (pyproject.toml pins SCons to the version named in
package.json), so no SCons sources are copied into the repository.
"""

import sys

try:
    import SCons.Script
except ImportError:
    sys.stderr.write(
        "Error: SCons is not installed in %s; run `make setup` in the tinytrain "
        "checkout (it pip-installs SCons from PyPI).\n" % sys.executable
    )
    sys.exit(2)

if __name__ == "__main__":
    SCons.Script.main()
