"""Dead letters on real NATS and PostgreSQL: a fixed cause, a re-drive, one effect.

The runbook's procedure: a handler fails until its cause is fixed, the message goes to the dead
letters; after the fix ``redrive`` hands it to the handler once more, the effect is applied once
and the letter is gone. A letter that is not a valid event can only be removed.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import ClassVar

import nats
import pytest
from psycopg.sql import SQL

from shared.contracts import events as public
from shared.contracts.envelope import CloudEvent
from shared.contracts.registry import from_cloudevent, subject_for, to_cloudevent
from shared.platform.consumer import Delivery, DurableConsumer, Subscription
from shared.platform.deadletters import (
    RedriveError,
    list_deadletters,
    redrive,
    remove_deadletter,
)
from shared.platform.eventstore import ServiceApplication
from shared.platform.model import Context, DomainEvent, utcnow
from shared.platform.settings import Settings
from tests.support import private_events_only

pytestmark = pytest.mark.integration

SERVICE = "ontvanger"


class Ontvangen(DomainEvent):
    """The effect of the test's handler: one event per message."""

    bericht_id: str


class Ontvanger(ServiceApplication):
    service: ClassVar[str] = SERVICE

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env, publication_check=private_events_only(self.service))


class Handler:
    """Applies one event per message, with the message's id in the inbox; broken until fixed."""

    def __init__(self, app: Ontvanger) -> None:
        self.app = app
        self.broken = True
        self.calls = 0

    def __call__(self, delivery: Delivery) -> None:
        self.calls += 1
        if self.broken:
            raise RuntimeError("the cause an operator fixes")
        ctx = Context(now=utcnow())
        event = Ontvangen(
            originator_id=uuid.uuid4(),
            originator_version=1,
            **ctx.event_fields(),
            bericht_id=delivery.envelope.id,
        )
        self.app.record(event, inbox=(f"{SERVICE}-test", delivery.envelope.id))

    def effects(self) -> int:
        with self.app.datastore.get_connection() as conn:
            row = conn.execute(
                SQL("SELECT count(*) AS n FROM ontvanger.ontvanger_events")
            ).fetchone()
        assert row is not None
        return int(row["n"])


def _ingediend() -> tuple[str, bytes]:
    event = public.AanvraagIngediend(
        aanvraag_id=uuid.uuid4(),
        ingediend_op=utcnow(),
        ingediend_door=public.Partij.BESTUURDER,
        organisatie_code="GM0363",
        binnen_regeling=True,
        verhuizing_gepland=False,
    )
    envelope = to_cloudevent(
        event, id=str(uuid.uuid4()), source="urn:nl:weerbaarbestuur:intake", time=utcnow()
    )
    return subject_for(event), envelope.to_json()


async def _publish(settings: Settings, subject: str, payload: bytes) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        await nc.jetstream().publish(subject, payload, stream=settings.stream_name)
    finally:
        await nc.close()


async def _until_deadlettered(consumer: DurableConsumer, count: int) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        async with asyncio.timeout(60):
            while consumer.deadlettered < count:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task


def test_a_fixed_cause_is_redriven_once_and_the_letter_is_gone(settings: Settings) -> None:
    app = Ontvanger(settings.eventsourcing_env(SERVICE))
    handler = Handler(app)
    subscription = Subscription("test", ["weerbaar.intake.AanvraagIngediend.*"], handler)
    consumer = DurableConsumer(SERVICE, subscription, settings, fetch_timeout_s=0.2)
    subject, payload = _ingediend()
    asyncio.run(_publish(settings, subject, payload))
    asyncio.run(_until_deadlettered(consumer, 1))
    assert handler.calls == settings.consumer_max_deliver
    [letter] = asyncio.run(list_deadletters(settings))
    assert letter["consumer"] == f"{SERVICE}-test"
    assert letter["reason"] == "handler_failed:RuntimeError"
    assert handler.effects() == 0

    # Still broken: the re-drive fails and the letter stays.
    with pytest.raises(RedriveError, match=r"the handler failed again \(RuntimeError\)"):
        asyncio.run(redrive(settings, SERVICE, [subscription], letter["sequence"]))
    assert len(asyncio.run(list_deadletters(settings))) == 1

    handler.broken = False
    outcome = asyncio.run(redrive(settings, SERVICE, [subscription], letter["sequence"]))
    assert outcome == "applied"
    assert handler.effects() == 1
    assert asyncio.run(list_deadletters(settings)) == []
    with pytest.raises(RedriveError, match="no dead letter"):
        asyncio.run(redrive(settings, SERVICE, [subscription], letter["sequence"]))
    assert handler.effects() == 1


def test_a_letter_whose_effect_was_applied_meanwhile_is_not_applied_twice(
    settings: Settings,
) -> None:
    app = Ontvanger(settings.eventsourcing_env(SERVICE))
    handler = Handler(app)
    subscription = Subscription("test", ["weerbaar.intake.AanvraagIngediend.*"], handler)
    consumer = DurableConsumer(SERVICE, subscription, settings, fetch_timeout_s=0.2)
    subject, payload = _ingediend()
    asyncio.run(_publish(settings, subject, payload))
    asyncio.run(_until_deadlettered(consumer, 1))
    [letter] = asyncio.run(list_deadletters(settings))
    handler.broken = False
    # Meanwhile the same message reached the handler another way (e.g. from a rebuilt stream).
    envelope = CloudEvent.from_json(payload)
    handler(Delivery(envelope, from_cloudevent(envelope), stream_sequence=1, attempt=1))
    assert handler.effects() == 1
    outcome = asyncio.run(redrive(settings, SERVICE, [subscription], letter["sequence"]))
    assert outcome == "already_applied"
    assert handler.effects() == 1
    assert asyncio.run(list_deadletters(settings)) == []


def test_a_letter_that_is_no_event_can_only_be_removed(settings: Settings) -> None:
    app = Ontvanger(settings.eventsourcing_env(SERVICE))
    subscription = Subscription("test", ["weerbaar.intake.AanvraagIngediend.*"], Handler(app))
    consumer = DurableConsumer(SERVICE, subscription, settings, fetch_timeout_s=0.2)
    asyncio.run(_publish(settings, f"weerbaar.intake.AanvraagIngediend.{uuid.uuid4()}", b"{"))
    asyncio.run(_until_deadlettered(consumer, 1))
    [letter] = asyncio.run(list_deadletters(settings))
    assert letter["reason"] == "invalid_cloudevent"
    with pytest.raises(RedriveError, match="can only be removed"):
        asyncio.run(redrive(settings, SERVICE, [subscription], letter["sequence"]))
    assert len(asyncio.run(list_deadletters(settings))) == 1
    removed = asyncio.run(remove_deadletter(settings, letter["sequence"]))
    assert removed.consumer == f"{SERVICE}-test"
    assert asyncio.run(list_deadletters(settings)) == []
