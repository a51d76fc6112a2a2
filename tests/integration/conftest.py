"""Fixtures for integration tests: settings on a fresh database with fresh streams."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.platform.settings import Settings
from tests.integration.inprocess import InProcessSystem, system_on_new_database
from tests.support import reset_streams, settings_for


@pytest.fixture
def settings(tmp_path: Path, fresh_database: str, nats_url: str) -> Settings:
    """Settings for one test: its own database, freshly provisioned streams, short ack wait."""
    configured = settings_for(
        fresh_database,
        nats_url,
        tmp_path,
        consumer_ack_wait_s=2.0,
        consumer_max_deliver=3,
    )
    reset_streams(configured)
    return configured


@pytest.fixture(scope="module")
def inprocess_system(
    postgres_server_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessSystem]:
    """The five services in one process, on a database of their own, for one test module."""
    with system_on_new_database(
        postgres_server_url, nats_url, tmp_path_factory.mktemp("inprocess")
    ) as built:
        yield built
