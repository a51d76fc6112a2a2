"""Drill: the runbook's "Upgrade", the checks before a release with a changed public event.

The rolling restart itself is drilled under load in ``test_restarts.py``. Here: the two checks
the runbook names pass on this tree, as an operator runs them (what each refuses is tested in
``tests/contract/test_version_lock.py`` and ``tests/contract/test_asyncapi.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.drills.operator import Operator

pytestmark = pytest.mark.e2e


def test_the_contract_checks_of_a_release_pass(tmp_path: Path) -> None:
    operator = Operator(tmp_path / "data")
    operator.runbook("python -m shared.contracts.generate --check")
    operator.runbook("python -m shared.platform.asyncapi --check")
