"""Readiness checks PostgreSQL and NATS: an unreachable NATS, or a NATS without the stream,
makes the service not ready."""

from __future__ import annotations

import asyncio

import nats
import pytest
from fastapi.testclient import TestClient

from services.scheduling.bootstrap import bootstrap
from shared.eventstore import Clock
from shared.settings import Settings
from shared.stream import provision

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


async def _delete_stream(settings: Settings) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        await nc.jetstream().delete_stream(settings.stream_name)
    finally:
        await nc.close()


def test_not_ready_while_the_stream_is_missing(settings: Settings) -> None:
    components = bootstrap(settings, Clock())
    with TestClient(components.api) as client:
        asyncio.run(_delete_stream(settings))
        missing = client.get("/health/ready")
        asyncio.run(provision(settings))  # as `weerbaar stream-rebuild` does first
        back = client.get("/health/ready")
    assert missing.status_code == 503
    body = missing.json()
    assert body["code"] == "not_ready"
    assert body["failing"] == ["stream"], "NATS answers; only the stream is missing"
    assert body["checks"]["nats"] == "ok"
    assert back.status_code == 200
    assert back.json()["checks"]["stream"] == "ok"
