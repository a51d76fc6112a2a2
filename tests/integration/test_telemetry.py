"""Metrics and trace context of the relay and the consumers, on real PostgreSQL and NATS."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import nats
import pytest

from services.intake.bootstrap import application as intake_application
from services.intake.domain import Aanmelding
from services.intake.gateway import to_public
from shared.contracts import events as public
from shared.contracts.registry import subject_for, to_cloudevent
from shared.platform.consumer import Delivery, DurableConsumer, Subscription
from shared.platform.model import Context, utcnow
from shared.platform.relay import OutboxRelay
from shared.platform.settings import Settings
from shared.platform.stream import provision
from shared.platform.telemetry import (
    LAST_NOTIFICATION_ID,
    LAST_PUBLISHED_AT,
    RELAY_LAG,
    context_from_traceparent,
    current_traceparent,
    metrics_for,
    tracer,
)
from tests.support import aanmelding, stream_messages

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def _sample(service: str, name: str, **labels: str) -> float | None:
    return metrics_for(service).registry.get_sample_value(name, {"service": service, **labels})


async def _until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)
    assert condition(), what


async def test_the_relay_publishes_the_recorded_traceparent_and_its_lag_falls_to_zero(
    settings: Settings,
) -> None:
    intake = intake_application(settings.eventsourcing_env("intake"))
    with tracer("intake").start_as_current_span(
        "request", context=context_from_traceparent(INCOMING)
    ):
        traced = intake.dien_aanvraag_in(
            Aanmelding.model_validate(aanmelding()), Context(now=utcnow())
        ).aanvraag_id
    untraced = intake.dien_aanvraag_in(
        Aanmelding.model_validate(aanmelding()), Context(now=utcnow())
    ).aanvraag_id

    last_id = intake.max_notification_id()
    assert last_id > 0
    assert _sample("intake", RELAY_LAG) == last_id, "nothing published yet: all of it is lag"
    assert _sample("intake", LAST_NOTIFICATION_ID) == last_id
    appended = _sample("intake", "weerbaar_events_appended_total", event_type="AanvraagOntvangen")
    assert appended is not None and appended >= 2

    relay = OutboxRelay(intake, to_public, settings, poll_interval_s=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        await _until(lambda: _sample("intake", RELAY_LAG) == 0, "the lag back to zero")
        assert _sample("intake", "weerbaar_relay_active") == 1
        published = _sample("intake", "weerbaar_relay_published_total")
        assert published is not None and published >= 2
        assert _sample("intake", LAST_PUBLISHED_AT) is not None
    finally:
        stop.set()
        await task
    assert _sample("intake", "weerbaar_relay_active") == 0

    envelopes = {
        m.subject.rsplit(".", 1)[-1]: m.envelope
        for m in await asyncio.to_thread(stream_messages, settings.nats_url)
        if m.subject.startswith("weerbaar.intake.AanvraagIngediend.")
    }
    carried = envelopes[str(traced)]["traceparent"]
    assert carried.split("-")[1] == TRACE_ID, "the request's trace continues on the stream"
    assert carried.split("-")[2] != INCOMING.split("-")[2], "its parent is the request's span"
    assert "traceparent" not in envelopes[str(untraced)], "recorded outside a span: none"


def _ingediend(aanvraag_id: uuid.UUID, traceparent: str | None = None) -> tuple[str, bytes]:
    event = public.AanvraagIngediend(
        aanvraag_id=aanvraag_id,
        ingediend_op=utcnow(),
        ingediend_door=public.Partij.BESTUURDER,
        organisatie_code="GM0363",
        binnen_regeling=True,
        verhuizing_gepland=False,
    )
    envelope = to_cloudevent(
        event,
        id=str(uuid.uuid4()),
        source="urn:nl:weerbaarbestuur:intake",
        time=utcnow(),
        traceparent=traceparent,
    )
    return subject_for(event), envelope.to_json()


async def test_consumer_counts_outcomes_redeliveries_and_dead_letters_and_continues_the_trace(
    settings: Settings,
) -> None:
    service = f"obs{uuid.uuid4().hex[:8]}"
    good, flaky, doomed = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    seen_trace: dict[uuid.UUID, str | None] = {}
    failed_once: set[uuid.UUID] = set()

    def handle(delivery: Delivery) -> None:
        event = delivery.event
        assert isinstance(event, public.AanvraagIngediend)
        if event.aanvraag_id == doomed:
            raise RuntimeError("always fails")
        if event.aanvraag_id == flaky and flaky not in failed_once:
            failed_once.add(flaky)
            raise RuntimeError("fails once")
        seen_trace[event.aanvraag_id] = current_traceparent()

    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await js.publish(
            f"weerbaar.intake.AanvraagIngediend.{uuid.uuid4()}", b"{not json", stream="WEERBAAR"
        )
        for aanvraag_id, traceparent in ((good, INCOMING), (flaky, None), (doomed, None)):
            subject, payload = _ingediend(aanvraag_id, traceparent)
            await js.publish(subject, payload, stream="WEERBAAR")
    finally:
        await nc.close()

    consumer = DurableConsumer(
        service,
        Subscription("test", ["weerbaar.intake.AanvraagIngediend.*"], handle),
        settings,
        stats_interval_s=0.2,
    )
    durable = consumer.durable

    def outcome(name: str) -> float | None:
        return _sample(service, "weerbaar_consumer_messages_total", consumer=durable, outcome=name)

    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await _until(
            lambda: (
                _sample(service, "weerbaar_dead_letters_waiting", consumer=durable) == 2
                and outcome("handled") == 2
                and _sample(service, "weerbaar_consumer_ack_pending_messages", consumer=durable)
                == 0
            ),
            "two handled, two dead letters waiting, nothing unacknowledged",
        )
    finally:
        stop.set()
        await task

    assert outcome("handled") == 2
    assert outcome("deadlettered") == 2
    # doomed fails at attempts 1 and 2 (dead-lettered at 3), flaky at attempt 1.
    assert outcome("failed") == settings.consumer_max_deliver - 1 + 1
    redeliveries = _sample(service, "weerbaar_consumer_redeliveries_total", consumer=durable)
    assert redeliveries == settings.consumer_max_deliver - 1 + 1
    letters = {
        reason: _sample(service, "weerbaar_dead_letters_total", consumer=durable, reason=reason)
        for reason in ("invalid_cloudevent", "handler_failed")
    }
    assert letters == {"invalid_cloudevent": 1, "handler_failed": 1}
    assert _sample(service, "weerbaar_consumer_pending_messages", consumer=durable) == 0

    inside = seen_trace[good]
    assert inside is not None and inside.split("-")[1] == TRACE_ID, "the consumer continues it"
    assert inside.split("-")[2] != INCOMING.split("-")[2], "in a span of its own"
    untraced = seen_trace[flaky]
    assert untraced is not None and untraced.split("-")[1] != TRACE_ID, "no traceparent: new"


async def test_a_consumer_that_cannot_ask_the_broker_shows_its_backlog_as_unknown_not_zero(
    settings: Settings,
) -> None:
    """With the stream gone the last numbers would be stale: the series go away (unknown, for
    Prometheus) and ``weerbaar_consumer_backlog_known`` says why, until the stream is back."""
    service = f"obs{uuid.uuid4().hex[:8]}"
    consumer = DurableConsumer(
        service,
        Subscription("test", ["weerbaar.intake.AanvraagIngediend.*"], lambda delivery: None),
        settings,
        stats_interval_s=0.2,
    )
    durable = consumer.durable

    def known() -> float | None:
        return _sample(service, "weerbaar_consumer_backlog_known", consumer=durable)

    def pending() -> float | None:
        return _sample(service, "weerbaar_consumer_pending_messages", consumer=durable)

    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await _until(lambda: known() == 1 and pending() == 0, "the backlog known: nothing")
        nc = await nats.connect(settings.nats_url)
        try:
            await nc.jetstream().delete_stream(settings.stream_name)
        finally:
            await nc.close()
        await _until(lambda: known() == 0, "the backlog reported unknown")
        assert pending() is None, "no stale backlog while it cannot be asked"
        for name in (
            "weerbaar_consumer_ack_pending_messages",
            "weerbaar_consumer_redelivered_messages",
            "weerbaar_dead_letters_waiting",
        ):
            assert _sample(service, name, consumer=durable) is None, name

        await provision(settings)
        await _until(lambda: known() == 1 and pending() == 0, "the backlog known again")
    finally:
        stop.set()
        await task
