# tinytrain. Quick start: `make demo`, `make test`. Both run the idempotent
# setup first (tools/setup.sh: Debian packages, .venv, PlatformIO offline pieces).

VENV := .venv
PY := $(VENV)/bin/python
PIO := $(VENV)/bin/pio

.PHONY: setup demo test firmware host clean

setup:
	@bash tools/setup.sh

# Until the training demo exists: boot the qemu_m7 image in QEMU, print INFO and STATS.
demo: setup
	$(PIO) run -e qemu_m7 -s
	$(VENV)/bin/tinytrain info --emulate

# Host unit tests (incl. the protocol C code under ASan/UBSan), the HIL tests
# against QEMU, then the HIL tests against the host build of the firmware.
test: setup
	$(PY) -m pytest host/tests hil_tests
	$(PY) -m pytest -q hil_tests --target host

firmware: setup
	$(PIO) run -e qemu_m7 -e disco_f746ng

# The firmware as a Linux process: build/host/tinytrain_host [PORT]
host: setup
	$(PY) -m tinytrain.board_build host

clean:
	rm -rf .pio build
