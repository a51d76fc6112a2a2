"""The outbox relay on real PostgreSQL and NATS: killed mid-burst, it loses and doubles nothing."""

from __future__ import annotations

import asyncio
import signal
import threading
from collections import Counter
from pathlib import Path
from uuid import uuid4

import nats
import pytest

from services.intake.application import Intake
from services.intake.bootstrap import application as intake_application
from services.intake.domain import Aanmelding
from shared.platform.model import Context, utcnow
from shared.platform.settings import Settings
from tests.support import aanmelding, reset_streams, stream_count, stream_messages, wait_until
from tools.system import System

pytestmark = pytest.mark.integration

BURST = 1500


def _system(settings: Settings, tmp_path: Path) -> System:
    return System(
        data_dir=tmp_path / "data",
        database_url=settings.database_url,
        nats_url=settings.nats_url,
        smtp=("127.0.0.1", 1),  # no service here sends mail
        # The relay decodes the events this test's Intake writes: it needs the same KEK.
        extra_env={"WEERBAAR_RELAY_BATCH_SIZE": "20", "WEERBAAR_KEK_DIR": str(settings.kek_path)},
    )


def _submit(intake: Intake, count: int) -> list[str]:
    ids = []
    for _ in range(count):
        result = intake.dien_aanvraag_in(
            Aanmelding.model_validate(aanmelding()), Context(now=utcnow())
        )
        ids.append(str(result.aanvraag_id))
    return ids


def _published(settings: Settings) -> list[str]:
    return [
        m.subject.rsplit(".", 1)[-1]
        for m in stream_messages(settings.nats_url)
        if m.subject.startswith("weerbaar.intake.AanvraagIngediend.")
    ]


def _count(settings: Settings) -> int:
    return stream_count(settings.nats_url, "weerbaar.intake.AanvraagIngediend.*")


def test_relay_killed_mid_burst_publishes_every_event_exactly_once(
    settings: Settings, tmp_path: Path
) -> None:
    intake = intake_application(settings.eventsourcing_env("intake"))
    system = _system(settings, tmp_path)
    relay = system.spawn("intake", roles=("relay",), name="relay-1")
    submitted: list[str] = []
    writer = threading.Thread(target=lambda: submitted.extend(_submit(intake, BURST)))
    writer.start()
    try:
        # Kill the relay while it is in the middle of publishing the burst.
        wait_until(lambda: _count(settings) >= 100, what="the relay publishing")
        relay.process.send_signal(signal.SIGKILL)
        relay.process.wait(10)
        killed_at = _count(settings)
        writer.join()
        system.processes.remove(relay)
        system.spawn("intake", roles=("relay",), name="relay-2")
        wait_until(lambda: _count(settings) >= BURST, timeout=90, what="all published")
        published = _published(settings)
    finally:
        writer.join()
        system.stop()
    assert killed_at < BURST, "the kill must land in the middle of the burst"
    counts = Counter(published)
    assert sorted(counts) == sorted(submitted), "every event is on the stream"
    assert set(counts.values()) == {1}, "no event is on the stream twice"
    messages = [m for m in stream_messages(settings.nats_url) if "intake" in m.subject]
    positions = [int(m.headers["Weerbaar-Position"].split("/")[0]) for m in messages]
    assert positions == sorted(positions), "the stream holds the log in order"


def test_only_one_relay_per_service_is_active(settings: Settings, tmp_path: Path) -> None:
    intake = intake_application(settings.eventsourcing_env("intake"))
    system = _system(settings, tmp_path)
    first = system.spawn("intake", roles=("relay",), name="relay-a")
    try:
        wait_until(lambda: "relay active" in first.log_path.read_text(), what="relay a active")
        second = system.spawn("intake", roles=("relay",), name="relay-b")
        ids = _submit(intake, 20)
        wait_until(lambda: len(_published(settings)) == 20, what="20 published")
        assert "relay active" not in second.log_path.read_text(), "the standby must not publish"
        system.stop_process(first, signal.SIGKILL)
        wait_until(
            lambda: "relay active" in second.log_path.read_text(),
            what="the standby taking over",
        )
        more = _submit(intake, 20)
        wait_until(lambda: len(_published(settings)) == 40, what="40 published")
    finally:
        system.stop()
    assert sorted(_published(settings)) == sorted(ids + more)


def test_a_stream_lost_and_made_again_is_refilled_even_after_newer_events_reached_it(
    settings: Settings, tmp_path: Path
) -> None:
    """The new stream's tail is a newer event than the ones it lacks: the relay that starts next
    publishes the whole log again, not only what follows that tail."""
    intake = intake_application(settings.eventsourcing_env("intake"))
    system = _system(settings, tmp_path)
    first = system.spawn("intake", roles=("relay",), name="relay-1")
    try:
        before = _submit(intake, 20)
        wait_until(lambda: _count(settings) == 20, what="the first events published")
        reset_streams(settings)  # the stream is lost and provisioned again, empty
        after = _submit(intake, 1)  # a newer event reaches the new stream first
        wait_until(lambda: _count(settings) == 1, what="the newer event published")
        system.stop_process(first)
        system.spawn("intake", roles=("relay",), name="relay-2")
        wait_until(lambda: _count(settings) == 21, timeout=60, what="the log published again")
        published = _published(settings)
    finally:
        system.stop()
    assert Counter(published) == Counter(before + after)


def test_a_foreign_message_on_the_services_subjects_neither_stops_nor_rewinds_the_relay(
    settings: Settings, tmp_path: Path
) -> None:
    """A message without the relay's position header (a poison message, another publisher) is
    the last, and also the first, on intake's subjects: a relay that starts next resumes from
    its acknowledged position, publishing only what is new."""
    intake = intake_application(settings.eventsourcing_env("intake"))
    system = _system(settings, tmp_path)

    async def publish_foreign(subject: str) -> None:
        nc = await nats.connect(settings.nats_url)
        try:
            await nc.jetstream().publish(subject, b"{", stream=settings.stream_name)
        finally:
            await nc.close()

    asyncio.run(publish_foreign(f"weerbaar.intake.AanvraagIngediend.{uuid4()}"))
    first = system.spawn("intake", roles=("relay",), name="relay-1")
    try:
        before = _submit(intake, 10)
        wait_until(lambda: _count(settings) == 11, what="the first events published")
        system.stop_process(first)
        asyncio.run(publish_foreign(f"weerbaar.intake.AanvraagIngediend.{uuid4()}"))
        after = _submit(intake, 5)
        second = system.spawn("intake", roles=("relay",), name="relay-2")
        wait_until(lambda: _count(settings) == 17, timeout=60, what="the new events published")
        published = [m for m in stream_messages(settings.nats_url) if "Nats-Msg-Id" in m.headers]
        assert second.process.poll() is None, "the relay keeps running"
    finally:
        system.stop()
    ids = Counter(m.headers["Nats-Msg-Id"] for m in published)
    assert max(ids.values()) == 1
    assert sorted(m.subject.rsplit(".", 1)[-1] for m in published) == sorted(before + after)
