"""Durable consumers on real NATS and PostgreSQL: one effect per event, poison to dead letters."""

from __future__ import annotations

import asyncio
import signal
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import nats
import psycopg
import pytest
from psycopg.sql import SQL

from services.scheduling.application import Scheduling
from services.scheduling.bootstrap import application
from services.scheduling.domain.calendar import WorkingDayCalendar
from shared.contracts import events as public
from shared.contracts.registry import subject_for, to_cloudevent
from shared.platform import consumer as consumer_module
from shared.platform.consumer import Delivery, DurableConsumer, Subscription
from shared.platform.deadletters import list_deadletters
from shared.platform.eventstore import AlreadyProcessed
from shared.platform.model import Context, utcnow
from shared.platform.relay import POSITION_HEADER, POSITION_SCALE, PositionHeader
from shared.platform.settings import SERVICES, Settings
from tests.support import aanmelding, wait_until
from tools.embedded import free_port
from tools.system import System

pytestmark = pytest.mark.integration


def _count(app: Scheduling, sql: str) -> int:
    with app.datastore.get_connection() as conn:
        row = conn.execute(SQL(sql)).fetchone()  # type: ignore[arg-type]
    assert row is not None
    return int(next(iter(row.values())))


def _plannings(app: Scheduling) -> int:
    return _count(
        app,
        "SELECT count(*) FROM scheduling.scheduling_events WHERE topic LIKE '%:PlanningGeopend'",
    )


def test_two_replicas_one_killed_mid_burst_apply_each_effect_once(
    settings: Settings, tmp_path: Path
) -> None:
    system = System(
        data_dir=tmp_path / "data",
        database_url=settings.database_url,
        nats_url=settings.nats_url,
        smtp=("127.0.0.1", 1),
        extra_env={"WEERBAAR_CONSUMER_ACK_WAIT_S": "2"},
        preferred_ports={s: free_port() for s in SERVICES},
    )
    scheduling = application(settings.eventsourcing_env("scheduling"), WorkingDayCalendar())
    burst = 200
    try:
        system.spawn("intake")
        system.spawn("scheduling", roles=("consumers",), name="scheduling-a")
        replica_b = system.spawn("scheduling", roles=("consumers",), name="scheduling-b")
        system.wait_ready()

        def submit(_: int) -> str:
            with httpx.Client(timeout=10) as client:
                response = client.post(f"{system.url('intake')}/aanvragen", json=aanmelding())
                assert response.status_code == 201
                aanvraag_id: str = response.json()["aanvraag_id"]
                return aanvraag_id

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(submit, i) for i in range(burst)]
            wait_until(lambda: _plannings(scheduling) >= burst // 4, what="a quarter applied")
            replica_b.process.send_signal(signal.SIGKILL)
            replica_b.process.wait(10)
            killed_at = _plannings(scheduling)
            system.processes.remove(replica_b)
            system.spawn("scheduling", roles=("consumers",), name="scheduling-b2")
            submitted = {f.result() for f in futures}
        wait_until(lambda: _plannings(scheduling) >= burst, timeout=90, what="every planning")
        # Let redeliveries of what the killed replica held run their course: its ack wait is 2 s,
        # so everything it held is redelivered and handled once the consumer has nothing pending.
        wait_until(lambda: _pending(settings) == 0, timeout=60, what="nothing pending")
    finally:
        system.stop()
    assert killed_at < burst
    assert _plannings(scheduling) == burst, "exactly one planning per aanvraag"
    inbox = _count(
        scheduling,
        "SELECT count(*) FROM scheduling.inbox WHERE consumer = 'scheduling-planning'",
    )
    assert inbox == burst, "each message's effect recorded once"
    planned = {
        str(r["aanvraag_id"])
        for r in scheduling.datastore.get_connection()
        .__enter__()
        .execute("SELECT aanvraag_id FROM scheduling.contact_deadlines")
    }
    assert planned == submitted


def _pending(settings: Settings) -> int:
    async def info() -> int:
        nc = await nats.connect(settings.nats_url)
        try:
            consumer = await nc.jetstream().consumer_info(
                settings.stream_name, "scheduling-planning"
            )
            return int(consumer.num_pending or 0) + int(consumer.num_ack_pending or 0)
        finally:
            await nc.close()

    return asyncio.run(info())


async def _publish(
    settings: Settings, subject: str, payload: bytes, headers: dict[str, str] | None = None
) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        await nc.jetstream().publish(subject, payload, stream=settings.stream_name, headers=headers)
    finally:
        await nc.close()


def _ingediend(aanvraag_id: uuid.UUID) -> tuple[str, bytes]:
    event = public.AanvraagIngediend(
        aanvraag_id=aanvraag_id,
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


async def _run_consumers(
    consumers: list[DurableConsumer], until: Callable[[], bool], timeout: float = 30
) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(c.run(stop)) for c in consumers]
    try:
        async with asyncio.timeout(timeout):
            while not until():
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_a_redelivered_message_has_a_single_effect_across_replicas(
    settings: Settings,
) -> None:
    """Replica A applies the effect and dies before acking; replica B gets it again: no effect."""
    scheduling = application(settings.eventsourcing_env("scheduling"), WorkingDayCalendar())
    seen: list[tuple[str, int]] = []
    outcomes: list[str] = []
    crashed = threading.Event()

    def handler(name: str) -> Callable[[Delivery], None]:
        def handle(delivery: Delivery) -> None:
            seen.append((name, delivery.attempt))
            event = delivery.event
            assert isinstance(event, public.AanvraagIngediend)
            ctx = Context(now=utcnow(), causation_id=delivery.envelope.id)
            try:
                scheduling.open(
                    event.aanvraag_id,
                    event.ingediend_op,
                    ctx,
                    ("scheduling-planning", delivery.envelope.id),
                )
            except AlreadyProcessed:
                outcomes.append(f"{name}:already")
                raise
            outcomes.append(f"{name}:applied")
            if not crashed.is_set():
                crashed.set()
                raise ConnectionError("simulated crash after commit, before ack")

        return handle

    subjects = ["weerbaar.intake.AanvraagIngediend.*"]
    a = DurableConsumer("scheduling", Subscription("planning", subjects, handler("a")), settings)
    b = DurableConsumer("scheduling", Subscription("planning", subjects, handler("b")), settings)
    aanvraag_id = uuid.uuid4()
    subject, payload = _ingediend(aanvraag_id)
    await _publish(settings, subject, payload)
    await _run_consumers([a, b], until=lambda: len(outcomes) >= 2)

    assert len(seen) == 2 and seen[1][1] == 2, "the message was delivered twice"
    assert outcomes[0].endswith(":applied") and outcomes[1].endswith(":already")
    assert _plannings(scheduling) == 1, "one effect"


async def test_poison_and_failing_messages_go_to_the_dead_letters(settings: Settings) -> None:
    scheduling = application(settings.eventsourcing_env("scheduling"), WorkingDayCalendar())
    good = uuid.uuid4()
    doomed = uuid.uuid4()

    def handle(delivery: Delivery) -> None:
        event = delivery.event
        assert isinstance(event, public.AanvraagIngediend)
        if event.aanvraag_id == doomed:
            raise RuntimeError("this handler always fails for this dossier")
        scheduling.open(
            event.aanvraag_id,
            event.ingediend_op,
            Context(now=utcnow()),
            ("scheduling-planning", delivery.envelope.id),
        )

    await _publish(settings, f"weerbaar.intake.AanvraagIngediend.{uuid.uuid4()}", b"{not json")
    subject, payload = _ingediend(uuid.uuid4())
    broken = payload.replace(b'"GM0363"', b'"not a code"')
    await _publish(settings, subject, broken)
    for aanvraag_id in (doomed, good):
        subject, payload = _ingediend(aanvraag_id)
        await _publish(settings, subject, payload)

    consumer = DurableConsumer(
        "scheduling",
        Subscription("planning", ["weerbaar.intake.AanvraagIngediend.*"], handle),
        settings,
    )
    await _run_consumers(
        [consumer], until=lambda: consumer.deadlettered >= 3 and consumer.handled >= 1
    )
    letters = await list_deadletters(settings)
    reasons = sorted(str(letter["reason"]) for letter in letters)
    assert reasons == [
        "handler_failed:RuntimeError",
        "invalid_cloudevent",
        "invalid_event:InvalidEvent",
    ]
    failed = next(x for x in letters if x["reason"] == "handler_failed:RuntimeError")
    assert failed["attempts"] == str(settings.consumer_max_deliver)
    assert all(x["consumer"] == "scheduling-planning" for x in letters)
    assert scheduling.planning(good).deadline is not None, "good messages keep flowing"
    text = repr(letters)
    assert "not a code" not in text, "a dead letter's listing does not echo the payload"


async def test_outage_redeliveries_do_not_count_against_the_handlers_attempts(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message that met a long outage (more deliveries than the application's attempts) and
    then one real failure is tried again, not dead-lettered: only failures count."""
    monkeypatch.setattr(consumer_module, "transient_retry_delay", lambda attempt: 0.0)
    outages = settings.consumer_max_deliver + 2
    attempts: list[int] = []

    def handle(delivery: Delivery) -> None:
        attempts.append(delivery.attempt)
        if len(attempts) <= outages:
            raise psycopg.OperationalError("the database is down")
        if len(attempts) == outages + 1:
            raise RuntimeError("one real failure")

    subject, payload = _ingediend(uuid.uuid4())
    await _publish(settings, subject, payload)
    consumer = DurableConsumer(
        "scheduling",
        Subscription("outage", ["weerbaar.intake.AanvraagIngediend.*"], handle),
        settings,
    )
    await _run_consumers([consumer], until=lambda: consumer.handled + consumer.deadlettered >= 1)
    assert consumer.deadlettered == 0
    assert consumer.handled == 1
    assert attempts == list(range(1, outages + 3)), "one delivery per try, in order"


def test_failures_are_counted_per_message_and_forgotten_oldest_first(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumer_module, "FAILURE_MEMORY", 3)
    consumer = DurableConsumer(
        "scheduling", Subscription("count", ["weerbaar.x.>"], lambda delivery: None), settings
    )
    assert [consumer._failed(7), consumer._failed(7), consumer._failed(8)] == [1, 2, 1]
    for sequence in (9, 10):
        consumer._failed(sequence)
    assert consumer._failed(7) == 1, "the oldest count was forgotten: more attempts, never fewer"
    assert consumer._failed(10) == 2


async def test_a_batch_handler_takes_whole_fetches_and_falls_back_one_by_one(
    settings: Settings,
) -> None:
    """Messages published before the consumer starts come in fetches of several: the batch
    handler gets them together and they are acked. A batch that raises is handled again one by
    one (the failing message dead-lettered, the others applied); a poison message in a fetch
    goes to the dead letters without reaching either handler."""
    doomed = uuid.uuid4()
    batches: list[list[uuid.UUID]] = []
    singles: list[uuid.UUID] = []

    def ids(deliveries: list[Delivery]) -> list[uuid.UUID]:
        out = []
        for d in deliveries:
            assert isinstance(d.event, public.AanvraagIngediend)
            out.append(d.event.aanvraag_id)
        return out

    def handle_batch(deliveries: list[Delivery]) -> None:
        got = ids(deliveries)
        if doomed in got:
            raise RuntimeError("one message of this batch always fails")
        batches.append(got)

    def handle(delivery: Delivery) -> None:
        (aanvraag_id,) = ids([delivery])
        if aanvraag_id == doomed:
            raise RuntimeError("this message always fails")
        singles.append(aanvraag_id)

    first = [uuid.uuid4() for _ in range(10)]
    for aanvraag_id in first:
        await _publish(settings, *_ingediend(aanvraag_id))
    await _publish(settings, f"weerbaar.intake.AanvraagIngediend.{uuid.uuid4()}", b"{not json")
    subjects = ["weerbaar.intake.AanvraagIngediend.*"]
    subscription = Subscription("planning", subjects, handle, batch_handler=handle_batch)
    consumer = DurableConsumer("scheduling", subscription, settings)
    await _run_consumers(
        [consumer], until=lambda: consumer.handled >= 10 and consumer.deadlettered >= 1
    )
    assert sorted(x for batch in batches for x in batch) == sorted(first)
    assert max(len(batch) for batch in batches) > 1, "fetches of several came as one batch"
    assert singles == []
    async with asyncio.timeout(10):  # the acks reach the server after the consumer stops
        while await _pending_of(settings, "scheduling-planning"):
            await asyncio.sleep(0.05)

    second = [uuid.uuid4() for _ in range(4)]
    for aanvraag_id in (*second[:2], doomed, *second[2:]):
        await _publish(settings, *_ingediend(aanvraag_id))
    batches.clear()
    again = DurableConsumer("scheduling", subscription, settings)

    def applied() -> list[uuid.UUID]:
        return [x for batch in batches for x in batch] + singles

    await _run_consumers([again], until=lambda: len(applied()) >= 4 and again.deadlettered >= 1)
    assert sorted(applied()) == sorted(second), "each applied once, batch or one by one"
    assert singles, "the batch with the failing message was handled again one by one"
    letters = await list_deadletters(settings)
    assert sorted(str(x["reason"]) for x in letters) == [
        "handler_failed:RuntimeError",
        "invalid_cloudevent",
    ]


async def _pending_of(settings: Settings, durable: str) -> int:
    nc = await nats.connect(settings.nats_url)
    try:
        consumer = await nc.jetstream().consumer_info(settings.stream_name, durable)
        return int(consumer.num_pending or 0) + int(consumer.num_ack_pending or 0)
    finally:
        await nc.close()


async def test_a_delivery_carries_the_relays_log_place_and_only_a_well_formed_one(
    settings: Settings,
) -> None:
    """The projection orders events of one moment by their place in their service's log: the
    consumer reads it from the relay's header; a header the relay could not have written is no
    place at all."""
    got: dict[uuid.UUID, PositionHeader | None] = {}

    def handle(delivery: Delivery) -> None:
        assert isinstance(delivery.event, public.AanvraagIngediend)
        got[delivery.event.aanvraag_id] = delivery.position

    placed, malformed, bare = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await _publish(settings, *_ingediend(placed), {POSITION_HEADER: "12/1/3"})
    await _publish(settings, *_ingediend(malformed), {POSITION_HEADER: "12/5/3"})
    await _publish(settings, *_ingediend(bare))
    subjects = ["weerbaar.intake.AanvraagIngediend.*"]
    consumer = DurableConsumer("scheduling", Subscription("places", subjects, handle), settings)
    await _run_consumers([consumer], until=lambda: len(got) >= 3)
    assert got == {placed: PositionHeader(12, 1, 3), malformed: None, bare: None}
    assert got[placed] is not None and got[placed].log_position == 12 * POSITION_SCALE + 1
