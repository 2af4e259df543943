"""The firmware's SHA-256 (protocol/sha256.c, which checks a restored learned state) against hashlib,
compiled for the host with ASan and UBSan."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

from tinytrain.board.builds import build_c_test


@pytest.fixture(scope="module")
def driver():
    return build_c_test("sha256_driver", ["tests/sha256_driver.c", "protocol/sha256.c"])


@pytest.mark.parametrize("size", [0, 1, 55, 56, 63, 64, 65, 119, 120, 1000, 47596])
@pytest.mark.parametrize("piece", [1, 7, 64, 4096])
def test_sha256_matches_hashlib(driver, size, piece):
    data = bytes((i * 131 + size) & 0xFF for i in range(size))
    out = subprocess.run([str(driver), str(piece)], input=data, capture_output=True, check=True)
    assert out.stdout.decode().strip() == hashlib.sha256(data).hexdigest()
    assert b"runtime error" not in out.stderr and b"Sanitizer" not in out.stderr
