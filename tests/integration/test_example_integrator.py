"""The example integrator records every RapportVrijgegeven once, through a crash and re-sends."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import nats
import pytest

from shared.contracts import events as ev
from shared.contracts.envelope import CloudEvent
from shared.contracts.registry import subject_for, to_cloudevent
from shared.platform.settings import Settings
from tests.contract.examples import EXAMPLES
from tests.support import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DURABLE = "werkgever-zaaksysteem"
SOURCE = "urn:nl:weerbaarbestuur:approval"


@dataclass(frozen=True)
class Published:
    envelope: CloudEvent
    subject: str


def released(count: int) -> list[Published]:
    """RapportVrijgegeven CloudEvents as the approval relay publishes them."""
    out = []
    for _ in range(count):
        event = ev.RapportVrijgegeven(
            aanvraag_id=uuid4(), rapport_id=uuid4(), versie=1, organisatie_code="GM0363"
        )
        ce = to_cloudevent(event, id=str(uuid4()), source=SOURCE, time=datetime.now(UTC))
        out.append(Published(ce, subject_for(event)))
    return out


def other_events(count: int) -> list[Published]:
    """Events of another type, which the integrator's filter must keep out."""
    out = []
    for _ in range(count):
        event = EXAMPLES[ev.RapportGoedgekeurd].model_copy(update={"aanvraag_id": uuid4()})
        ce = to_cloudevent(event, id=str(uuid4()), source=SOURCE, time=datetime.now(UTC))
        out.append(Published(ce, subject_for(event)))
    return out


async def _publish(nats_url: str, events: list[Published]) -> list[bool]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        futures = [
            await js.publish_async(
                p.subject, p.envelope.to_json(), headers={"Nats-Msg-Id": p.envelope.id}
            )
            for p in events
        ]
        acks = await asyncio.gather(*futures)
        return [bool(ack.duplicate) for ack in acks]
    finally:
        await nc.close()


def publish(settings: Settings, events: list[Published]) -> list[bool]:
    """Publish with `Nats-Msg-Id` = CloudEvent id; return which the stream dropped as duplicates."""
    return asyncio.run(_publish(settings.nats_url, events))


async def _shorten_duplicate_window(settings: Settings, seconds: float) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        config = (await js.stream_info(settings.stream_name)).config
        config.duplicate_window = seconds
        await js.update_stream(config)
    finally:
        await nc.close()


async def _consumer_done(settings: Settings) -> bool:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        info = await js.consumer_info(settings.stream_name, DURABLE)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)
    finally:
        await nc.close()


def republish_until_stored(settings: Settings, events: list[Published]) -> None:
    """Publish each event again until the stream stores it once more (its window has passed)."""
    pending = list(events)

    def publish_pending() -> bool:
        duplicates = publish(settings, pending)
        pending[:] = [p for p, dropped in zip(pending, duplicates, strict=True) if dropped]
        return not pending

    wait_until(publish_pending, what="the re-sends to be stored")


def recorded(db: Path) -> list[str]:
    """The CloudEvent ids of the case records, one per record."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        if "vrijgegeven_rapporten" not in tables:
            return []  # the integrator has opened the file but not created its tables yet
        return [row[0] for row in conn.execute("SELECT event_id FROM vrijgegeven_rapporten")]


@contextmanager
def integrator(settings: Settings, db: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    command = [
        sys.executable,
        "-m",
        "examples.integrator.rapport_vrijgegeven",
        "--nats",
        settings.nats_url,
        "--durable",
        DURABLE,
        "--db",
        str(db),
        "--ack-wait",
        "2",
    ]
    with log.open("ab") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=output)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_every_event_once_through_a_crash_a_restart_and_re_sends(
    settings: Settings, tmp_path: Path
) -> None:
    db = tmp_path / "zaken.sqlite"
    log = tmp_path / "integrator.log"
    first = released(2000)

    # A backlog before the first start, so the kill lands in the middle of it.
    assert not any(publish(settings, first + other_events(20)))
    with integrator(settings, db, log) as process:
        wait_until(lambda: len(recorded(db)) >= 1, what="the first case record")
        process.send_signal(signal.SIGKILL)
        process.wait()
    at_kill = len(recorded(db))
    assert 0 < at_kill < len(first), f"the crash must interrupt the backlog ({at_kill} recorded)"

    second = released(300)
    again = first[:100]
    with integrator(settings, db, log) as process:
        assert not any(publish(settings, second))
        # Within the duplicate window the stream itself drops a re-send.
        assert all(publish(settings, first[100:110]))
        # After a longer outage the relay re-publishes with the same ids: new stream sequences.
        asyncio.run(_shorten_duplicate_window(settings, 0.5))
        republish_until_stored(settings, again)

        expected = {p.envelope.id for p in first + second}
        wait_until(
            lambda: set(recorded(db)) == expected and asyncio.run(_consumer_done(settings)),
            what="every event recorded and acknowledged",
        )
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0, "SIGTERM stops the integrator cleanly"

    counts = Counter(recorded(db))
    assert set(counts) == expected
    assert [event_id for event_id, n in counts.items() if n != 1] == []
    with sqlite3.connect(db) as conn:
        seen_twice = {
            row[0]
            for row in conn.execute(
                "SELECT event_id FROM ontvangen_events WHERE aantal_ontvangen > 1"
            )
        }
        records = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT event_id, aanvraag_id, rapport_id, versie, organisatie_code "
                "FROM vrijgegeven_rapporten"
            )
        }
        unreadable = conn.execute("SELECT count(*) FROM onverwerkbare_berichten").fetchone()[0]
    assert {p.envelope.id for p in again} <= seen_twice, "re-sends were recognised by id"
    for p in first + second:
        data = p.envelope.data
        assert records[p.envelope.id] == (
            data["aanvraag_id"],
            data["rapport_id"],
            data["versie"],
            data["organisatie_code"],
        )
    assert unreadable == 0
