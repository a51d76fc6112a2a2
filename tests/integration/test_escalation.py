"""A missed contact deadline on real servers: ContacttermijnVerstreken on its NATS subject as a
valid CloudEvent, once, and the secretariat mailed about it, once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.notifications.bootstrap import bootstrap as notifications
from services.scheduling.application import Scheduling
from services.scheduling.bootstrap import bootstrap as scheduling
from shared.contracts.envelope import CloudEvent
from shared.contracts.registry import from_cloudevent
from shared.platform.consumer import DurableConsumer
from shared.platform.model import Context, FixedClock
from shared.platform.relay import OutboxRelay
from shared.platform.settings import Settings
from tests.support import mail_catcher, stream_messages
from tools.mailcatcher import list_messages

pytestmark = pytest.mark.integration

SUBMITTED = datetime(2026, 4, 24, 14, 0, tzinfo=UTC)  # Friday; Koningsdag follows on Monday
AFTER_DEADLINE = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


async def test_a_missed_deadline_is_an_event_on_nats_and_a_mail_to_the_secretariat(
    settings: Settings, tmp_path: Path
) -> None:
    clock = FixedClock(SUBMITTED)
    planning = scheduling(settings, clock)
    app = planning.app
    assert isinstance(app, Scheduling)
    aanvraag_id = uuid.uuid4()
    app.open(aanvraag_id, SUBMITTED, Context(now=SUBMITTED), ("test", str(aanvraag_id)))
    clock.advance_to(AFTER_DEADLINE)
    assert app.escalate_overdue(clock.now()) == 1
    assert app.escalate_overdue(clock.now()) == 0  # once, however often the checker runs

    subject = f"weerbaar.scheduling.ContacttermijnVerstreken.{aanvraag_id}"
    with mail_catcher(tmp_path / "mail") as catcher:
        mailing = settings.model_copy(
            update={"smtp_port": catcher.port, "secretariaat_email": "secretariaat@example.org"}
        )
        mail = notifications(mailing, clock)
        escalatie = next(s for s in mail.subscriptions if s.purpose == "escalatie")
        consumer = DurableConsumer("notifications", escalatie, settings)
        relay = OutboxRelay(planning.app, planning.gateway, settings)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(relay.run(stop)), asyncio.create_task(consumer.run(stop))]
        try:
            async with asyncio.timeout(30):
                while consumer.handled < 1:
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        await asyncio.to_thread(mail.sender.run_once)
        mails = list_messages(catcher.directory)

    messages = await asyncio.to_thread(stream_messages, settings.nats_url)
    on_stream = [m for m in messages if m.subject == subject]
    assert len(on_stream) == 1
    envelope = CloudEvent.from_json(on_stream[0].data)
    event = from_cloudevent(envelope)
    assert envelope.type == "nl.weerbaarbestuur.ContacttermijnVerstreken.v1"
    assert event.deadline == datetime(2026, 4, 30, 22, 0, tzinfo=UTC)  # type: ignore[attr-defined]
    assert [m.to for m in mails] == [("secretariaat@example.org",)]
    assert str(aanvraag_id) in mails[0].message().get_body(("plain",)).get_content()  # type: ignore[union-attr]
