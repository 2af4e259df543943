#!/usr/bin/env bash
# Idempotent setup of a tinytrain checkout on Debian 12 (run by `make setup`,
# hence by `make demo` and `make test`). A second run checks and changes nothing:
#   1. Debian packages: cross compiler, newlib, QEMU, openocd, host gcc, Fashion-MNIST;
#   2. .venv with `pip install -e '.[data,test,tools,fleet]'` (again when pyproject.toml changes);
#   3. PlatformIO's tool-scons from PyPI's SCons (tools/pio_offline.py), so that
#      `pio run` needs no PlatformIO registry.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm openocd gcc libc6-dev make git
              dataset-fashion-mnist clang libclang-rt-14-dev)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
        missing+=("$pkg")
    fi
done
# Debian's python3 needs python3-venv for `python3 -m venv`; other Pythons bring ensurepip.
if ! python3 -c 'import ensurepip' 2>/dev/null; then
    missing+=(python3-venv)
fi
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    python3 -m venv .venv
fi

stamp=.venv/.tinytrain-pip-stamp
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: pip install -e '.[data,test,tools,fleet]'"
    # --no-compile: no .pyc for the ~100k files of torch/TensorFlow up front (Python writes them on import)
    .venv/bin/python -m pip install --quiet --no-compile -e '.[data,test,tools,fleet]'
    echo "$want" > "$stamp"
fi

.venv/bin/python tools/pio_offline.py
