"""Drills: the runbook's procedures on a system under ``./weerbaar up`` (see ``operator.py``)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.drills.operator import Operator


@pytest.fixture(scope="module")
def drill_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A directory of the module's own, traversable by the embedded PostgreSQL's system user
    (pytest's temporary root is private to its user); removed unless a drill failed."""
    path = Path(tempfile.mkdtemp(prefix="weerbaar-drill-"))
    path.chmod(0o755)
    failed_before = request.session.testsfailed
    yield path
    if request.session.testsfailed == failed_before:
        shutil.rmtree(path, ignore_errors=True)
    else:
        print(f"\nthe failed drill's data and logs: {path}")


@pytest.fixture(scope="module")
def operator(drill_dir: Path) -> Iterator[Operator]:
    """One system under ``./weerbaar up`` shared by the drills of a module (in their order)."""
    running = Operator(drill_dir / "data")
    running.up()
    try:
        yield running
    finally:
        if running.is_running():
            running.down()
