"""Drills: the runbook's procedures on a system under ``./weerbaar up`` (see ``operator.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.drills.operator import Operator


@pytest.fixture(scope="module")
def operator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """One system under ``./weerbaar up`` shared by the drills of a module (in their order)."""
    running = Operator(tmp_path_factory.mktemp("drill") / "data")
    running.up()
    try:
        yield running
    finally:
        if running.is_running():
            running.down()
