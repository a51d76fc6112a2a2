"""Where the product definition is: CI has ``../shared/domain.md`` beside the clone and fails
without it; anyone else's clone reports that the contract was not checked against it, and why."""

from __future__ import annotations

import os

import pytest

from tests.contract.domain import ABSENT, domain_md_present


def test_domain_md_is_beside_the_clone() -> None:
    if domain_md_present():
        return
    if os.environ.get("CI"):
        pytest.fail(ABSENT)
    pytest.skip(ABSENT)
