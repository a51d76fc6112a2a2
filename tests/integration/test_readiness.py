"""Readiness checks PostgreSQL and NATS: an unreachable NATS makes the service not ready."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from services.scheduling.bootstrap import bootstrap
from shared.eventstore import Clock
from shared.settings import Settings

pytestmark = pytest.mark.integration


def test_ready_when_both_servers_answer(settings: Settings) -> None:
    components = bootstrap(settings, Clock())
    with TestClient(components.api) as client:
        response = client.get("/health/ready")
    assert response.status_code == 200


def test_not_ready_without_nats(settings: Settings) -> None:
    unreachable = settings.model_copy(update={"nats_url": "nats://127.0.0.1:9"})
    components = bootstrap(unreachable, Clock())
    with TestClient(components.api) as client:
        live = client.get("/health/live")
        ready = client.get("/health/ready")
    assert live.status_code == 200
    assert ready.status_code == 503
    assert ready.headers["content-type"].startswith("application/problem+json")
    assert "nats" in ready.text
    assert "postgres" not in ready.json().get("detail", "")
