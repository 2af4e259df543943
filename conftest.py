"""Suite-wide pytest settings: the test files holding a test marked `slow` run first, so that with
pytest-xdist (`make test`, one file per worker at a time) the long ones start at once and short
files fill the end instead of one long file keeping a worker busy after the other is done."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)  # stable: each file keeps its own order
