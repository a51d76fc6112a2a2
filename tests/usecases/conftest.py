"""The stores every service's use-case tests run on: the in-memory store, and a fresh PostgreSQL
database of the session's test server (the same tests, twice)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.platform.eventstore import IN_MEMORY
from tests.support import settings_for

#: The ``store`` parameters: memory always; PostgreSQL with the integration tests.
STORES: list[Any] = ["memory", pytest.param("postgres", marks=pytest.mark.integration)]


def store_env(
    kind: str, service: str, request: pytest.FixtureRequest, tmp_path: Path
) -> dict[str, str]:
    """The environment of ``service``'s event store on ``kind`` (``memory`` or ``postgres``)."""
    if kind == "memory":
        return {"PERSISTENCE_MODULE": IN_MEMORY}
    database = request.getfixturevalue("fresh_database")
    # The use cases talk to no broker: the NATS URL is a required setting, never dialled here.
    return settings_for(database, "nats://127.0.0.1:4222", tmp_path).eventsourcing_env(service)
