# tinytrain. Quick start: `make demo`, `make test`. Both run the idempotent
# setup first (tools/setup.sh: Debian packages, .venv, PlatformIO offline pieces).

VENV := .venv
PY := $(VENV)/bin/python
PIO := $(VENV)/bin/pio

.PHONY: setup demo demo-imu test fuzz firmware host clean

setup:
	@bash tools/setup.sh

# The main job: build the default model for qemu_m7, boot QEMU, evaluate on held-out
# MNIST digits, train on the board, evaluate again; writes demo.json and demo.png.
demo: setup
	$(VENV)/bin/tinytrain demo
	$(VENV)/bin/tinytrain info --emulate

# Personalization of a motion model: the shipped IMU model (models/watch-imu) adapts on the board to
# each held-out wearer of the smartwatch data, against fp32 PyTorch; writes demo-imu.json and demo-imu.png.
demo-imu: setup
	$(VENV)/bin/tinytrain demo --task imu

# Host unit tests (incl. the protocol C code under ASan/UBSan), the HIL tests
# against QEMU, then the HIL tests against the host build of the firmware.
# TEST_JOBS pytest-xdist workers (default: one per core), one test file per worker at a time.
TEST_JOBS ?= auto
test: setup
	$(PY) -m pytest -n $(TEST_JOBS) --dist loadfile host/tests hil_tests
	$(PY) -m pytest -q -n $(TEST_JOBS) --dist loadfile hil_tests --target host

# libFuzzer targets of the firmware's host build (frame receiver, every message handler, the main loop,
# restore at boot) under ASan/UBSan, FUZZ_SECONDS each; ends with `fuzz: N targets, M executions, K crashes`
# and fails on any crash (docs/fuzzing.md). `make test` runs them briefly.
FUZZ_SECONDS ?= 60
fuzz: setup
	$(PY) -m tinytrain.board.fuzzing --seconds $(FUZZ_SECONDS)

firmware: setup
	$(PIO) run -e qemu_m7 -e disco_f746ng

# The firmware as a Linux process: build/host/engine-*/tinytrain_host [PORT]
host: setup
	$(PY) -m tinytrain.board.builds host

clean:
	rm -rf .pio build
