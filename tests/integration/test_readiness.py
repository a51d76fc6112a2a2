"""Readiness checks PostgreSQL, NATS and the stream: an unreachable one, or a NATS without the
stream, makes the service not ready, and readiness says so within about a second (the checks are
bounded)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import nats
import pytest
from fastapi.testclient import TestClient

from services.scheduling.bootstrap import bootstrap
from shared.platform.model import Clock
from shared.platform.settings import Settings
from shared.platform.stream import provision
from tests import servers
from tools.embedded import EmbeddedPostgres

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


@contextlib.contextmanager
def silent_server(port: int = 0) -> Iterator[int]:
    """A port where connections are taken (by the kernel's backlog) but nothing ever answers,
    as with a server that hangs or a network that drops the packets."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # The port's last connections may still wait in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen(64)
        yield sock.getsockname()[1]


def timed_ready(client: TestClient) -> tuple[float, Any]:
    started = time.monotonic()
    response = client.get("/health/ready")
    return time.monotonic() - started, response


@pytest.mark.parametrize("how", ["refused", "silent"])
def test_not_ready_within_about_a_second_when_nats_is_unreachable(
    settings: Settings, how: str
) -> None:
    with contextlib.ExitStack() as stack:
        port = 9 if how == "refused" else stack.enter_context(silent_server())
        unreachable = settings.model_copy(update={"nats_url": f"nats://127.0.0.1:{port}"})
        components = bootstrap(unreachable, Clock())
        client = stack.enter_context(TestClient(components.api))
        took, ready = timed_ready(client)
    assert ready.status_code == 503
    # The stream cannot be asked for either: both say so; PostgreSQL is not blamed.
    assert ready.json()["failing"] == ["nats", "stream"]
    assert took < 1.5


@pytest.mark.parametrize("how", ["refused", "silent"])
def test_not_ready_within_about_a_second_when_postgres_is_down(
    settings: Settings, how: str
) -> None:
    with (
        servers.scratch_dir("ready") as scratch,
        EmbeddedPostgres(scratch / "pg") as postgres,
        contextlib.ExitStack() as stack,
    ):
        # A pool that waits long for a connection (as a production setting may): readiness
        # must not wait with it.
        own = settings.model_copy(
            update={
                "database_url": postgres.ensure_database("weerbaar"),
                "postgres_connect_timeout_s": 5,
            }
        )
        components = bootstrap(own, Clock())
        client = stack.enter_context(TestClient(components.api))
        assert client.get("/health/ready").status_code == 200
        postgres.kill()  # our own server: a crash, as an operator would meet it
        if how == "silent":
            # Its address no longer answers at all: new connections hang in the handshake.
            stack.enter_context(silent_server(postgres.port))
        # More probes than the pool holds connections: the first ones may meet a broken idle
        # connection (fails at once), the later ones wait for a new one that does not come.
        probes = [timed_ready(client) for _ in range(12)]
    assert [ready.status_code for _, ready in probes] == [503] * 12
    assert all(ready.json()["failing"] == ["postgres"] for _, ready in probes)
    assert max(took for took, _ in probes) < 1.5
