"""Fixtures shared by all tests: real PostgreSQL and NATS servers (see ``tests/servers.py``)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from types import FrameType

import pytest

from tests import servers

#: The limits per source and per address (``shared.platform.settings``), off unless a test sets
#: them.
UNTHROTTLED = (
    "WEERBAAR_REGISTRATIONS_PER_SOURCE",
    "WEERBAAR_REGISTRATIONS_PER_ADDRESS",
    "WEERBAAR_ANONYMOUS_REQUESTS_PER_MINUTE",
)


def pytest_configure(config: pytest.Config) -> None:
    """Reject an unknown ``WEERBAAR_TEST_SERVERS`` before any test runs; stop on SIGTERM as on
    Ctrl-C, so the session's fixtures stop the servers they started (a run stopped by a CI
    timeout or ``timeout`` would otherwise leave embedded PostgreSQL and NATS running)."""
    servers.server_mode()
    signal.signal(signal.SIGTERM, _interrupt)
    # Every test system's clients come from this one machine, and many tests register hundreds
    # of dossiers or knock without a token: the limits per source and per address are off by
    # default here (every process a test starts inherits this). The tests of the limits, and the
    # hostile-client scenario, switch them on in their own systems.
    for name in UNTHROTTLED:
        os.environ.setdefault(name, "0")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """URL of a PostgreSQL server for this session; tests create their own databases on it."""
    with servers.postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def nats_url() -> Iterator[str]:
    """URL of a NATS server with JetStream for this session."""
    with servers.nats_server() as url:
        yield url


@pytest.fixture
def fresh_database(postgres_server_url: str) -> Iterator[str]:
    """URL of a new, empty database, dropped (with its connections) after the test."""
    url = servers.create_database(postgres_server_url)
    try:
        yield url
    finally:
        servers.drop_database(postgres_server_url, url)
