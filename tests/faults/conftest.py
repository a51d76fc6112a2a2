"""The fault-injection suite: real processes, broken on purpose (``weerbaar faults``)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    """Register the suite's marker (pyproject lists the others)."""
    config.addinivalue_line(
        "markers", "faults: breaks real processes and servers on purpose (weerbaar faults)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this directory carries the marker."""
    for item in items:
        if Path(str(item.fspath)).is_relative_to(HERE):
            item.add_marker(pytest.mark.faults)
