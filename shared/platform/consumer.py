"""Durable pull consumers: at-least-once delivery from JetStream, exactly-once effect in PostgreSQL.

A consumer is one service's subscription for one purpose (``<service>-<purpose>``), declared in one
place per service. Its handler applies the effect and records the CloudEvent ``id`` in the service's
inbox in the same transaction (see ``shared.platform.eventstore``); a redelivered message (also one
handled by a second replica at the same time) finds its id there and has no second effect.

What happens to a message:
- handled, or already handled (``AlreadyProcessed``) → ack;
- the database or broker is unavailable (``TransientError``, psycopg/eventsourcing operational
  errors) → nak with back-off; it does not count against the application's attempts;
- the handler failed ``max_deliver`` times (its failures, counted apart from the deliveries an
  outage took), or the message is not a valid CloudEvent of a known type
  (poison) → published to the dead-letter stream with the reason, then terminated. Nothing is
  silently dropped.

Each message is handled in a span that continues the CloudEvent's ``traceparent``; the outcome,
redeliveries, dead letters and the consumer's pending counts are metrics
(``shared.platform.telemetry``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import nats
import psycopg
from eventsourcing.persistence import InterfaceError as ESInterfaceError
from eventsourcing.persistence import OperationalError as ESOperationalError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry.trace import SpanKind

from shared.contracts.envelope import CloudEvent
from shared.contracts.events import PublicEvent
from shared.contracts.registry import from_cloudevent
from shared.platform.eventstore import AlreadyProcessed, CommitInDoubt
from shared.platform.relay import POSITION_HEADER, PositionHeader
from shared.platform.settings import Settings
from shared.platform.telemetry import context_from_traceparent, metrics_for, reason_kind, tracer

log = logging.getLogger(__name__)

#: A generous server-side ceiling; the application's own limit (settings) decides dead-lettering.
SERVER_MAX_DELIVER = 1000
#: Messages whose handler failures one consumer keeps count of (the oldest forgotten first).
FAILURE_MEMORY = 10_000


def transient_retry_delay(attempt: int) -> float:
    """Seconds before a message that met an outage (database, broker) is tried again.

    Short for the first two minutes or so, so a message does not sit out a long back-off once a
    brief outage is over; then 30 s, so the server's ceiling of deliveries lasts about 8 hours.
    """
    return min(4.0, 0.5 * 2**attempt) if attempt <= 30 else 30.0


INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    ESOperationalError,
    ESInterfaceError,
    # Redelivered later: the inbox then tells whether the commit in doubt took place.
    CommitInDoubt,
    ConnectionError,
    TimeoutError,
)


class TransientError(Exception):
    """A failure that says nothing about the message (an outage): retry without counting."""


RETRYABLE: tuple[type[BaseException], ...] = (TransientError, *INFRASTRUCTURE_ERRORS)


class Poison(Exception):
    """The message can never be processed; it goes to the dead letters at once."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Delivery:
    """One message as a handler sees it."""

    envelope: CloudEvent
    event: PublicEvent
    stream_sequence: int
    attempt: int
    #: The relay's ``Weerbaar-Position`` header (where the event stands in its service's log);
    #: None when the message has none the relay could have written.
    position: PositionHeader | None = None


Handler = Callable[[Delivery], None]
BatchHandler = Callable[[Sequence[Delivery]], None]


@dataclass(frozen=True)
class Subscription:
    """What a consumer subscribes to and what it does with it.

    ``batch_handler``, when given, takes every message of one fetch at once (e.g. in one
    transaction). It must have the same effect as ``handler`` on each message in turn and be
    all-or-nothing: when it raises, the messages are handled one by one by ``handler``, so one
    bad message or a redelivery is settled as it would be without the batch.
    """

    purpose: str
    subjects: Sequence[str]
    handler: Handler
    description: str = ""
    batch_handler: BatchHandler | None = None


def deadletter_subject(durable: str, stream_sequence: int) -> str:
    """Where a dead letter of this consumer is published."""
    return f"weerbaar-deadletter.{durable}.{stream_sequence}"


def deadletter_filter(durable: str) -> str:
    """The subjects of every dead letter of this consumer."""
    return f"weerbaar-deadletter.{durable}.>"


class DurableConsumer:
    """Runs one subscription as a durable pull consumer (several replicas may run at once)."""

    def __init__(
        self,
        service: str,
        subscription: Subscription,
        settings: Settings,
        *,
        batch_size: int = 50,
        fetch_timeout_s: float = 1.0,
        stats_interval_s: float = 5.0,
    ) -> None:
        self.service = service
        self.subscription = subscription
        self.settings = settings
        self.durable = f"{service}-{subscription.purpose}"
        self.batch_size = batch_size
        self.fetch_timeout_s = fetch_timeout_s
        self.handled = 0
        self.deadlettered = 0
        self.redelivered = 0
        #: Handler failures per stream sequence, apart from the deliveries an outage took (the
        #: server's ``num_delivered`` counts those too). Kept in this process only: a restart or
        #: another replica starts again from nothing, so a message gets more attempts, never fewer.
        self._failures: OrderedDict[int, int] = OrderedDict()
        self.ready = asyncio.Event()
        self.stats_interval_s = stats_interval_s
        self.metrics = metrics_for(service)
        self.tracer = tracer(service)
        self.metrics.consumer_redeliveries.labels(service, self.durable)  # exists from the start

    def consumer_config(self) -> ConsumerConfig:
        """The durable consumer's configuration."""
        subjects = list(self.subscription.subjects)
        return ConsumerConfig(
            durable_name=self.durable,
            description=self.subscription.description or None,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.settings.consumer_ack_wait_s,
            max_deliver=SERVER_MAX_DELIVER,
            max_ack_pending=1000,
            filter_subject=subjects[0] if len(subjects) == 1 else None,
            filter_subjects=subjects if len(subjects) > 1 else None,
        )

    async def ensure(self, js: JetStreamContext) -> None:
        """Create the durable consumer, or bring its configuration up to date."""
        # The server updates an existing durable consumer's editable fields on a repeated create.
        await js.add_consumer(self.settings.stream_name, self.consumer_config())

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, reconnecting after outages."""
        while not stop.is_set():
            try:
                await self._run_once(stop)
            except (OSError, nats.errors.Error) as exc:
                self.ready.clear()
                self._backlog_unknown()
                log.warning(
                    "consumer interrupted, reconnecting",
                    extra={"consumer": self.durable, "error": type(exc).__name__},
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=1.0)

    async def _run_once(self, stop: asyncio.Event) -> None:
        nc = await nats.connect(
            servers=self.settings.nats_servers,
            name=self.durable,
            max_reconnect_attempts=5,
        )
        try:
            js = nc.jetstream(timeout=10)
            await self.ensure(js)
            sub = await js.pull_subscribe_bind(
                durable=self.durable, stream=self.settings.stream_name
            )
            self.ready.set()
            stats_due = 0.0
            # How many to ask for: as many as the server said were waiting behind the last
            # message (up to the batch size), else one. nats-py's fetch of n, when fewer are
            # waiting, holds the first message until n arrived or the timeout passed: asking
            # for one when nothing is known to wait hands each message over as it arrives.
            wanted = 1
            while not stop.is_set():
                if time.monotonic() >= stats_due:
                    await self._report_stats(js)
                    stats_due = time.monotonic() + self.stats_interval_s
                try:
                    messages = await sub.fetch(wanted, timeout=self.fetch_timeout_s)
                except (nats.errors.TimeoutError, TimeoutError):
                    wanted = 1
                    continue  # nothing to fetch within the timeout
                waiting = messages[-1].metadata.num_pending if messages else 0
                wanted = max(1, min(self.batch_size, waiting))
                if self.subscription.batch_handler is not None:
                    messages = await self._process_batch(js, messages)
                for msg in messages:
                    if stop.is_set():
                        return  # unacked messages come back after ack_wait
                    await self._process(js, msg)
        finally:
            self.ready.clear()
            await nc.close()

    async def _process_batch(self, js: JetStreamContext, messages: list[Msg]) -> list[Msg]:
        """Hand first deliveries to the batch handler in one go and ack them; what is left to
        handle one by one: redeliveries, and everything when the batch handler failed."""
        batch: list[tuple[Msg, Delivery]] = []
        rest: list[Msg] = []
        for msg in messages:
            if msg.metadata.num_delivered > 1:
                rest.append(msg)  # counted and handled as a redelivery, one by one
                continue
            try:
                batch.append((msg, self._decode(msg, 1)))
            except Poison as poison:
                await self._deadletter(js, msg, poison.reason, 1)
                self.metrics.consumer_messages.labels(
                    self.service, self.durable, "deadlettered"
                ).inc()
        if not batch:
            return rest
        handler = self.subscription.batch_handler
        assert handler is not None
        # One span per message, each in its own trace (as one by one), around the batch.
        spans = [
            self.tracer.start_span(**self._span(delivery, 1, batch_size=len(batch)))
            for _, delivery in batch
        ]
        try:
            await asyncio.to_thread(handler, [delivery for _, delivery in batch])
        except Exception as exc:
            log.warning(
                "batch failed, handling its messages one by one",
                extra={"consumer": self.durable, "error": type(exc).__name__, "size": len(batch)},
            )
            for span in spans:
                span.end()
            return [msg for msg, _ in batch] + rest
        for (msg, _), span in zip(batch, spans, strict=True):
            await msg.ack()
            span.end()
        self.handled += len(batch)
        self.metrics.consumer_messages.labels(self.service, self.durable, "handled").inc(len(batch))
        return rest

    def _span(self, delivery: Delivery, attempt: int, batch_size: int = 0) -> dict[str, Any]:
        """The consumer span of one message: a child of the span that recorded the event."""
        attributes: dict[str, Any] = {
            "messaging.system": "nats",
            "messaging.consumer.group.name": self.durable,
            "messaging.message.id": delivery.envelope.id,
            "cloudevents.event_type": delivery.envelope.type,
            "weerbaar.attempt": attempt,
        }
        if batch_size:
            attributes["messaging.batch.message_count"] = batch_size
        return {
            "name": f"consume {self.durable}",
            "context": context_from_traceparent(delivery.envelope.traceparent),
            "kind": SpanKind.CONSUMER,
            "attributes": attributes,
            "record_exception": False,  # exception texts may quote data; the log has the type
        }

    async def _process(self, js: JetStreamContext, msg: Msg) -> None:
        meta = msg.metadata
        attempt = meta.num_delivered
        if attempt > 1:
            self.redelivered += 1
            # One line per redelivery: the fault tests count them across killed processes.
            log.info(
                "message redelivered",
                extra={
                    "consumer": self.durable,
                    "attempt": attempt,
                    "stream_sequence": meta.sequence.stream,
                },
            )
            self.metrics.consumer_redeliveries.labels(self.service, self.durable).inc()
        try:
            delivery = self._decode(msg, attempt)
        except Poison as poison:
            await self._deadletter(js, msg, poison.reason, attempt)
            self.metrics.consumer_messages.labels(self.service, self.durable, "deadlettered").inc()
            return
        # A child of the span that recorded the event; the handler's events carry this one on.
        with self.tracer.start_as_current_span(**self._span(delivery, attempt)):
            outcome = await self._handle(js, msg, delivery, attempt)
        self.metrics.consumer_messages.labels(self.service, self.durable, outcome).inc()

    async def _handle(
        self, js: JetStreamContext, msg: Msg, delivery: Delivery, attempt: int
    ) -> str:
        """Run the handler and settle the message; returns the outcome (a metrics label)."""
        outcome = "handled"
        try:
            await asyncio.to_thread(self.subscription.handler, delivery)
        except AlreadyProcessed:
            outcome = "duplicate"
            # One line per message the inbox refused: the fault tests count them (a republished
            # stream, a redelivery after a lost ack) as proof that deduplication ran.
            log.info(
                "message already processed",
                extra={"consumer": self.durable, "attempt": attempt},
            )
        except RETRYABLE as exc:
            log.warning(
                "transient failure, will retry",
                extra={"consumer": self.durable, "error": type(exc).__name__, "attempt": attempt},
            )
            await msg.nak(delay=transient_retry_delay(attempt))
            return "retry"
        except Poison as poison:
            await self._deadletter(js, msg, poison.reason, attempt)
            return "deadlettered"
        except Exception as exc:
            log.exception(
                "handler failed",
                extra={
                    "consumer": self.durable,
                    "type": delivery.envelope.type,
                    "attempt": attempt,
                },
            )
            failures = self._failed(msg.metadata.sequence.stream)
            if failures >= self.settings.consumer_max_deliver:
                await self._deadletter(js, msg, f"handler_failed:{type(exc).__name__}", attempt)
                return "deadlettered"
            await msg.nak(delay=min(10.0, 0.2 * 2**failures))
            return "failed"
        self._failures.pop(msg.metadata.sequence.stream, None)
        await msg.ack()
        self.handled += 1
        return outcome

    def _failed(self, sequence: int) -> int:
        """Count one more handler failure of the message at ``sequence``; the count."""
        failures = self._failures.pop(sequence, 0) + 1
        self._failures[sequence] = failures
        while len(self._failures) > FAILURE_MEMORY:
            self._failures.popitem(last=False)
        return failures

    async def _report_stats(self, js: JetStreamContext) -> None:
        """Pending, unacked and redelivered messages (consumer info); waiting dead letters."""
        labels = (self.service, self.durable)
        try:
            info = await js.consumer_info(self.settings.stream_name, self.durable)
            letters = await js.stream_info(
                self.settings.deadletter_stream_name,
                subjects_filter=deadletter_filter(self.durable),
            )
        except nats.errors.Error as exc:  # the numbers wait for the next round; work goes on
            log.debug("consumer stats unavailable", extra={"error": type(exc).__name__})
            self._backlog_unknown()
            return
        self.metrics.consumer_backlog_known.labels(*labels).set(1)
        self.metrics.consumer_pending.labels(*labels).set(info.num_pending or 0)
        self.metrics.consumer_ack_pending.labels(*labels).set(info.num_ack_pending or 0)
        self.metrics.consumer_redelivered.labels(*labels).set(info.num_redelivered or 0)
        waiting = sum((letters.state.subjects or {}).values())
        self.metrics.dead_letters_waiting.labels(*labels).set(waiting)

    def _backlog_unknown(self) -> None:
        """The broker cannot be asked: drop the numbers rather than show stale ones (an absent
        series is Prometheus's "unknown"), and say so."""
        labels = (self.service, self.durable)
        self.metrics.consumer_backlog_known.labels(*labels).set(0)
        for gauge in (
            self.metrics.consumer_pending,
            self.metrics.consumer_ack_pending,
            self.metrics.consumer_redelivered,
            self.metrics.dead_letters_waiting,
        ):
            with contextlib.suppress(KeyError):  # not reported yet
                gauge.remove(*labels)

    def _decode(self, msg: Msg, attempt: int) -> Delivery:
        try:
            envelope = CloudEvent.from_json(msg.data)
        except Exception:
            raise Poison("invalid_cloudevent") from None
        try:
            event = from_cloudevent(envelope)
        except Exception as exc:
            raise Poison(f"invalid_event:{type(exc).__name__}") from None
        return Delivery(
            envelope=envelope,
            event=event,
            stream_sequence=msg.metadata.sequence.stream,
            attempt=attempt,
            position=PositionHeader.read((msg.headers or {}).get(POSITION_HEADER)),
        )

    async def _deadletter(self, js: JetStreamContext, msg: Msg, reason: str, attempt: int) -> None:
        seq = msg.metadata.sequence.stream
        self._failures.pop(seq, None)
        headers = {
            "Nats-Msg-Id": f"{self.durable}:{seq}",
            "Weerbaar-Reason": reason,
            "Weerbaar-Consumer": self.durable,
            "Weerbaar-Original-Subject": msg.subject,
            "Weerbaar-Stream-Sequence": str(seq),
            "Weerbaar-Attempts": str(attempt),
            "Weerbaar-Failed-At": datetime.now(UTC).isoformat(),
        }
        await js.publish(
            deadletter_subject(self.durable, seq),
            msg.data,
            headers=headers,
            stream=self.settings.deadletter_stream_name,
        )
        await msg.term()
        self.deadlettered += 1
        self.metrics.dead_letters.labels(self.service, self.durable, reason_kind(reason)).inc()
        log.error(
            "message dead-lettered",
            extra={"consumer": self.durable, "reason": reason, "stream_sequence": seq},
        )
