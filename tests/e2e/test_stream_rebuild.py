"""The runbook's "lost the stream" procedure: ``weerbaar stream-rebuild`` on a running system.

The stream is deleted under the running services; the command provisions it again and has every
relay publish its log anew. Afterwards the stream holds exactly the events it held before (same
CloudEvent ids, each once, in each service's log order), the consumers have read it all again
without a second effect (no second e-mail, no new inbox row), and new dossiers flow as before.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import psycopg
import pytest
from nats.js.errors import NotFoundError
from psycopg.sql import SQL, Identifier

from shared.platform.auth import load_or_create_secret
from shared.platform.relay import POSITION_HEADER
from shared.platform.settings import SERVICES
from tests import servers
from tests.support import StreamMessage, reset_streams, settings_for, stream_messages, wait_until
from tools.cli import main as weerbaar
from tools.demo import Actors, run_demo
from tools.embedded import free_port
from tools.mailcatcher import MailCatcher, list_messages
from tools.system import System

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(
    tmp_path: Path, postgres_server_url: str, nats_url: str
) -> Iterator[tuple[System, MailCatcher]]:
    database = servers.create_database(postgres_server_url)
    reset_streams(settings_for(database, nats_url, tmp_path))
    catcher = MailCatcher(tmp_path / "mail", port=0)
    catcher.start()
    system = System(
        data_dir=tmp_path / "data",
        database_url=database,
        nats_url=nats_url,
        smtp=("127.0.0.1", catcher.port),
        preferred_ports={s: free_port() for s in SERVICES},
    )
    system.data_dir.mkdir()
    system.start_services(timeout=90)
    try:
        yield system, catcher
    finally:
        system.stop()
        catcher.stop()
        servers.drop_database(postgres_server_url, database)


def _inbox_rows(database_url: str) -> dict[str, int]:
    counts = {}
    with psycopg.connect(database_url) as conn:
        for service in SERVICES:
            row = conn.execute(
                SQL("SELECT count(*) FROM {}").format(Identifier(service, "inbox"))
            ).fetchone()
            assert row is not None
            counts[service] = int(row[0])
    return counts


async def _consumers_idle(nats_url: str, stream: str) -> bool:
    """Every durable consumer exists again and has nothing pending or unacknowledged."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        consumers = await js.consumers_info(stream)
        durables = [c for c in consumers if c.config.durable_name]
        return bool(durables) and all(
            c.num_pending == 0 and c.num_ack_pending == 0 for c in durables
        )
    finally:
        await nc.close()


def _settled(system: System, catcher: MailCatcher) -> list[StreamMessage] | None:
    """Nothing planned is unsent and every mail that went out is announced on the stream."""
    actors = Actors(
        secret=load_or_create_secret(system.data_dir / "secrets" / "jwt.key"),
        bestuurder_email="x@example.org",
        organisatie="GM0344",
    )
    with httpx.Client(timeout=10) as client:
        planned = client.get(
            f"{system.url('notifications')}/notificaties",
            params={"status": "gepland"},
            headers=actors.headers("secretariaat"),
        ).json()
    stream = stream_messages(system.nats_url or "")
    announced = [m for m in stream if m.subject.split(".")[2] == "NotificatieVerzonden"]
    caught = list_messages(catcher.directory)
    return stream if not planned and len(caught) == len(announced) else None


def _positions(messages: list[StreamMessage], service: str) -> list[tuple[int, int]]:
    """The (notification id, index) of each of a service's messages, in stream order."""
    positions = []
    for message in messages:
        if message.subject.split(".")[1] == service:
            notification_id, index, _ = message.headers[POSITION_HEADER].split("/")
            positions.append((int(notification_id), int(index)))
    return positions


def test_a_lost_stream_is_rebuilt_from_postgresql_without_a_second_effect(
    world: tuple[System, MailCatcher], monkeypatch: pytest.MonkeyPatch
) -> None:
    system, catcher = world
    urls = {s: system.url(s) for s in SERVICES}
    assert system.database_url and system.nats_url
    for _ in range(2):
        assert run_demo(urls, system.data_dir, out=lambda _: None)["status"] == "afgesloten"
    before = wait_until(lambda: _settled(system, catcher), timeout=60, what="the run at rest")
    # Every consumer (also the webhooks', which reads every event) has handled what is there.
    wait_until(
        lambda: asyncio.run(_consumers_idle(system.nats_url or "", "WEERBAAR")),
        timeout=90,
        what="every durable consumer caught up",
    )
    mails_before = len(list_messages(catcher.directory))
    inbox_before = _inbox_rows(system.database_url)
    assert mails_before > 0 and sum(inbox_before.values()) > 0

    async def delete_stream() -> None:
        nc = await nats.connect(system.nats_url)
        try:
            js = nc.jetstream()
            await js.delete_stream("WEERBAAR")
            with pytest.raises(NotFoundError):
                await js.stream_info("WEERBAAR")
        finally:
            await nc.close()

    asyncio.run(delete_stream())

    # The runbook's command, as an operator runs it against this system.
    monkeypatch.setenv("WEERBAAR_DATA_DIR", str(system.data_dir))
    monkeypatch.setenv("WEERBAAR_DATABASE_URL", system.database_url)
    monkeypatch.setenv("WEERBAAR_NATS_URL", system.nats_url)
    assert weerbaar(["stream-rebuild", "--timeout", "120"]) == 0

    after = stream_messages(system.nats_url)
    ids_before = Counter(m.headers["Nats-Msg-Id"] for m in before)
    ids_after = Counter(m.headers["Nats-Msg-Id"] for m in after)
    assert ids_after == ids_before, "the rebuilt stream differs from the lost one"
    assert max(ids_after.values()) == 1
    for service in SERVICES:
        positions = _positions(after, service)
        assert positions == sorted(positions), f"{service}'s events out of log order"
        assert positions == _positions(before, service)

    # The consumers come back on the new stream, read everything again, and change nothing.
    wait_until(
        lambda: asyncio.run(_consumers_idle(system.nats_url or "", "WEERBAAR")),
        timeout=90,
        what="every durable consumer recreated and caught up",
    )
    assert _inbox_rows(system.database_url) == inbox_before
    assert len(list_messages(catcher.directory)) == mails_before, "an e-mail went out twice"

    # And the system goes on: a new dossier goes through the whole process.
    assert run_demo(urls, system.data_dir, out=lambda _: None)["status"] == "afgesloten"
    final = wait_until(lambda: _settled(system, catcher), timeout=60, what="the run at rest")
    assert max(Counter(m.headers["Nats-Msg-Id"] for m in final).values()) == 1
