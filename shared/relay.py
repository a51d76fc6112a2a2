"""The outbox relay: a service's notification log in PostgreSQL → public CloudEvents on JetStream.

PostgreSQL is the system of record; the stream is derived from it. The relay

- is single-active per service: it holds a PostgreSQL advisory lock for as long as it publishes, and
  a second relay process waits on standby until the lock is free;
- finds where to resume from the stream itself: every message carries the notification id and the
  index of the public event it came from (``Weerbaar-Position: <notification_id>/<index>/<count>``),
  so after a crash, or after the stream lost its tail, it publishes exactly what is missing;
- publishes each message with ``Nats-Msg-Id`` = the CloudEvent ``id``, which is stable (derived from
  the stored event), so a message re-sent after an unacknowledged publish is dropped by the stream's
  duplicate window;
- records its position in PostgreSQL only after the PubAcks of a whole batch (for monitoring the
  lag: see ``shared.telemetry``); while the broker stores one batch it reads, encodes and sends
  the next (at most two batches in flight, acknowledged in order);
- puts the ``traceparent`` stored with each domain event on its CloudEvents, so the trace of the
  request that recorded it continues at every consumer.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import nats
import psycopg
from eventsourcing.persistence import InterfaceError as ESInterfaceError
from eventsourcing.persistence import OperationalError as ESOperationalError
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NotFoundError
from psycopg.sql import SQL, Identifier

from shared.contracts.envelope import TRACEPARENT_PATTERN, CloudEvent
from shared.contracts.registry import subject_for, to_cloudevent
from shared.eventstore import DomainEvent, PydanticMapper, public_event_id
from shared.settings import Settings
from shared.telemetry import metrics_for

if TYPE_CHECKING:
    from eventsourcing.persistence import Notification

    from shared.contracts.events import PublicEvent
    from shared.eventstore import ServiceApplication

log = logging.getLogger(__name__)

POSITION_HEADER = "Weerbaar-Position"
#: What an unreachable database or broker raises; the relay starts over (the event store's
#: reads raise the library's own errors, not psycopg's).
OUTAGES: tuple[type[BaseException], ...] = (
    OSError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    ESOperationalError,
    ESInterfaceError,
    nats.errors.Error,
)
#: How long the relay waits for the PubAcks of one batch before it starts over.
PUBLISH_ACK_TIMEOUT_S = 5.0
_TRACEPARENT = re.compile(TRACEPARENT_PATTERN)

#: Maps one private domain event to the public events it announces (often one, sometimes none).
Gateway = Callable[[DomainEvent], Sequence["PublicEvent"]]


@dataclass(frozen=True)
class _InFlight:
    """A published batch whose PubAcks are still to come, and the position after it."""

    futures: list[asyncio.Future[PubAck]]
    after: Position


@dataclass(frozen=True, order=True)
class Position:
    """How far the stream holds this service's log: the next public event to publish."""

    notification_id: int
    index: int

    @classmethod
    def after_header(cls, header: str) -> Position:
        """The position after the message that carries this header value."""
        notification_id, index, count = (int(p) for p in header.split("/"))
        if index + 1 < count:
            return cls(notification_id, index + 1)
        return cls(notification_id + 1, 0)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class OutboxRelay:
    """Publishes one service's events, in log order, onto the WEERBAAR stream."""

    def __init__(
        self,
        app: ServiceApplication,
        gateway: Gateway,
        settings: Settings,
        *,
        poll_interval_s: float = 1.0,
    ) -> None:
        self.app = app
        self.service = app.service
        self.gateway = gateway
        self.settings = settings
        self.poll_interval_s = poll_interval_s
        self.conninfo = settings.database_url
        self.published = 0
        self.position_table = Identifier(self.service, "relay_position")
        self.active = asyncio.Event()
        self.metrics = metrics_for(self.service)
        self.metrics.relay_published.labels(self.service)  # the series exists from the start

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; survives NATS and PostgreSQL outages by starting over."""
        while not stop.is_set():
            try:
                await self._run_once(stop)
            except OUTAGES as exc:
                self.active.clear()
                log.warning("relay interrupted, restarting", extra={"error": type(exc).__name__})
                await _sleep_or_stop(stop, 1.0)

    async def _run_once(self, stop: asyncio.Event) -> None:
        async with await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True) as lock:
            await self._acquire(lock, stop)
            if stop.is_set():
                return
            await self._ensure_position_table(lock)
            reconnected = asyncio.Event()

            async def on_reconnect() -> None:
                reconnected.set()

            nc = await nats.connect(
                servers=self.settings.nats_servers,
                name=f"{self.service}-relay",
                max_reconnect_attempts=5,
                reconnected_cb=on_reconnect,
            )
            try:
                js = nc.jetstream(timeout=10)
                position = await self._resume_position(js, lock)
                log.info(
                    "relay active",
                    extra={"service": self.service, "from": position.notification_id},
                )
                self.active.set()
                self.metrics.relay_active.labels(self.service).set(1)
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True
                ) as listen:
                    # Resync requests (``weerbaar stream-rebuild``) come on the same channel;
                    # notifications that arrive while the relay publishes wait in psycopg's
                    # backlog and are read by the next wait.
                    requests: list[str] = []
                    await listen.execute(SQL("LISTEN {}").format(Identifier(self._channel())))
                    resyncing: list[str] = []
                    # The batch published last, its PubAcks not yet awaited: the next batch is
                    # read, encoded and sent while the broker stores this one.
                    in_flight: _InFlight | None = None
                    while not stop.is_set():
                        await lock.execute("SELECT 1")  # lost the lock's connection → stop
                        if reconnected.is_set() or requests:
                            # The server may have restarted without what it had not yet synced
                            # to disk, or the stream was lost and provisioned again (``weerbaar
                            # stream rebuild`` asks): resume from what the stream really holds.
                            # A batch still in flight is dropped, not awaited: its PubAcks may
                            # never come, and the resume publishes again what the stream lacks.
                            in_flight = None
                            reconnected.clear()
                            resyncing += requests
                            requests.clear()
                            position = await self._resume_position(js, lock)
                        batch = await asyncio.to_thread(
                            self.app.recorder.select_notifications,
                            position.notification_id,
                            self.settings.relay_batch_size,
                        )
                        if batch:
                            sent = await self._send(js, batch, position)
                            if in_flight is not None and not await self._settle(
                                lock, in_flight, reconnected
                            ):
                                in_flight = None  # reconnected meanwhile: resume (above)
                                continue
                            in_flight, position = sent, sent.after
                            continue
                        if in_flight is not None:
                            await self._settle(lock, in_flight, reconnected)
                            in_flight = None
                            continue
                        if resyncing:
                            # Caught up with the log after a resync: say so to whoever asked.
                            await self._confirm_resync(lock, resyncing[-1])
                            resyncing.clear()
                        requests += await self._wait_for_notify(listen, stop)
            finally:
                self.active.clear()
                self.metrics.relay_active.labels(self.service).set(0)
                await nc.close()

    async def _acquire(self, lock: psycopg.AsyncConnection[Any], stop: asyncio.Event) -> None:
        key = advisory_key(f"weerbaar-relay:{self.service}")
        while not stop.is_set():
            row = await (await lock.execute("SELECT pg_try_advisory_lock(%s)", (key,))).fetchone()
            if row and row[0]:
                return
            await _sleep_or_stop(stop, self.poll_interval_s)

    async def _ensure_position_table(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await ensure_position_table(conn, self.service)

    async def _confirm_resync(self, conn: psycopg.AsyncConnection[Any], token: str) -> None:
        await conn.execute(
            SQL(
                "INSERT INTO {} (service, notification_id, next_index, resync_token, resynced_at) "
                "VALUES (%s, 0, 0, %s, now()) ON CONFLICT (service) DO UPDATE SET "
                "resync_token = EXCLUDED.resync_token, resynced_at = EXCLUDED.resynced_at"
            ).format(self.position_table),
            (self.service, token),
        )
        log.info("relay resynced with the stream", extra={"service": self.service})

    async def _resume_position(
        self, js: JetStreamContext, conn: psycopg.AsyncConnection[Any]
    ) -> Position:
        """Where to resume: the earlier of what the stream holds and what was acknowledged.

        The stream's own last message finds a tail the stream lost. The recorded position (moved
        only after every publish of a batch was acknowledged) covers a batch whose later messages
        were stored while an earlier one failed: the whole batch goes out again, and what the
        stream already holds is dropped by its duplicate window.
        """
        row = await (
            await conn.execute(
                SQL("SELECT notification_id, next_index FROM {} WHERE service = %s").format(
                    self.position_table
                ),
                (self.service,),
            )
        ).fetchone()
        recorded = None if row is None else Position(int(row[0]) + 1, int(row[1]))
        on_stream = await self._position_on_stream(js)
        if on_stream is None:
            # Someone else published on this service's subjects (a poison message, a test):
            # it says nothing about the log; the acknowledged position does.
            log.warning("last message on the service's subjects is not the relay's")
            return recorded or Position(1, 0)
        if on_stream > Position(1, 0) and not await self._stream_holds_log_start(js):
            # The stream was lost and made again, and newer events reached it before this relay
            # noticed: its tail says nothing about what it holds. Publish the whole log again;
            # what the new stream already has is dropped by its duplicate window.
            log.warning("stream lacks the start of the log, publishing it all again")
            return Position(1, 0)
        if recorded is None:
            return on_stream
        return min(on_stream, recorded)

    async def _stream_holds_log_start(self, js: JetStreamContext) -> bool:
        """Whether this service's first message on the stream is its log's first public event."""
        header = None
        seq = 1
        for _ in range(_FOREIGN_MESSAGES_SKIPPED):
            try:
                first = await js.get_msg(
                    self.settings.stream_name,
                    seq=seq,
                    subject=f"weerbaar.{self.service}.>",
                    next=True,
                )
            except NotFoundError:
                return False
            header = (first.headers or {}).get(POSITION_HEADER)
            if header is not None:
                break
            seq = (first.seq or seq) + 1  # not the relay's message: look at the next one
        start = await asyncio.to_thread(self._first_public_position)
        if header is None or start is None:
            return False
        notification_id, index, _ = (int(p) for p in header.split("/"))
        return Position(notification_id, index) == start

    def _first_public_position(self) -> Position | None:
        """The position of the log's first public event (blocking: reads and decodes the log,
        as ``_messages`` does: skeletons, no key read)."""
        mapper = self.app.mapper
        assert isinstance(mapper, PydanticMapper)
        start = 1
        while batch := self.app.recorder.select_notifications(start, 100):
            for notification in batch:
                (event,) = mapper.to_domain_events([notification], skeleton=True)
                if self.gateway(event):
                    return Position(notification.id, 0)
            start = batch[-1].id + 1
        return None

    async def _position_on_stream(self, js: JetStreamContext) -> Position | None:
        """After the service's last message on the stream; None when that is not the relay's."""
        try:
            last = await js.get_last_msg(self.settings.stream_name, f"weerbaar.{self.service}.>")
        except NotFoundError:
            return Position(1, 0)
        header = (last.headers or {}).get(POSITION_HEADER)
        if header is None:
            return None
        return Position.after_header(header)

    def _messages(
        self, batch: Sequence[Notification], position: Position
    ) -> list[tuple[str, bytes, dict[str, str]]]:
        """The batch as NATS messages (blocking: it reads stored events' JSON)."""
        messages = []
        todo = [n for n in batch if n.id >= position.notification_id]
        mapper = self.app.mapper
        assert isinstance(mapper, PydanticMapper)
        # Decoded without their personal values (no key read, nothing decrypted): the public
        # events are made from what survives forgetting.
        events = mapper.to_domain_events(todo, skeleton=True)
        for notification, event in zip(todo, events, strict=True):
            public = self.gateway(event)
            envelopes = cloudevents_for(self.service, self.settings, event, public)
            for index, (public_event, ce) in enumerate(zip(public, envelopes, strict=True)):
                if notification.id == position.notification_id and index < position.index:
                    continue
                headers = {
                    "Nats-Msg-Id": ce.id,
                    POSITION_HEADER: f"{notification.id}/{index}/{len(public)}",
                }
                messages.append((subject_for(public_event), ce.to_json(), headers))
        return messages

    async def _send(
        self, js: JetStreamContext, batch: Sequence[Notification], position: Position
    ) -> _InFlight:
        """Publish a batch without waiting for its PubAcks."""
        messages = await asyncio.to_thread(self._messages, batch, position)
        futures = [
            await js.publish_async(
                subject, payload, headers=headers, stream=self.settings.stream_name
            )
            for subject, payload, headers in messages
        ]
        return _InFlight(futures, Position(batch[-1].id + 1, 0))

    async def _settle(
        self, conn: psycopg.AsyncConnection[Any], sent: _InFlight, reconnected: asyncio.Event
    ) -> bool:
        """Await a batch's PubAcks, then record the position after it; False when the client
        reconnected to the broker first (the caller then resumes from what the stream holds).

        Every future must be acked before the position moves; one failure → start over from the
        recorded position (the duplicate window drops what was stored twice). A PubAck lost to a
        broker restart never comes: wait only as long as a healthy batch can take, and not at all
        once the client has reconnected.
        """
        gathered = asyncio.ensure_future(asyncio.gather(*sent.futures))
        lost = asyncio.ensure_future(reconnected.wait())
        waiting: set[asyncio.Future[Any]] = {gathered, lost}
        try:
            done, _ = await asyncio.wait(
                waiting,
                timeout=PUBLISH_ACK_TIMEOUT_S,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            lost.cancel()
        if gathered not in done:
            gathered.cancel()
            if lost in done:
                return False
            raise TimeoutError(f"no PubAcks within {PUBLISH_ACK_TIMEOUT_S} s")
        acks = gathered.result()
        stored = sum(1 for ack in acks if not ack.duplicate)
        self.published += stored
        self.metrics.relay_published.labels(self.service).inc(stored)
        await self._record(conn, sent.after)
        return True

    async def _record(self, conn: psycopg.AsyncConnection[Any], position: Position) -> None:
        await conn.execute(
            SQL(
                "INSERT INTO {} (service, notification_id, next_index) VALUES (%s, %s, %s) "
                "ON CONFLICT (service) DO UPDATE SET notification_id = EXCLUDED.notification_id, "
                "next_index = EXCLUDED.next_index, published_at = now()"
            ).format(self.position_table),
            (self.service, position.notification_id - 1, position.index),
        )

    def _channel(self) -> str:
        return relay_channel(self.service)

    async def _wait_for_notify(
        self, conn: psycopg.AsyncConnection[Any], stop: asyncio.Event
    ) -> list[str]:
        """Wait for the next notification, at most the poll interval; the resync tokens read."""
        tokens: list[str] = []
        try:
            async with asyncio.timeout(self.poll_interval_s):
                async for notify in conn.notifies(stop_after=1):
                    _collect_resync(notify.payload, tokens)
        except TimeoutError:
            pass
        return tokens


RESYNC_PREFIX = "resync:"

#: How many messages without a position header (not the relay's) the start check looks past.
_FOREIGN_MESSAGES_SKIPPED = 100


def _collect_resync(payload: str, requests: list[str]) -> None:
    """Keep the token of a resync request; plain notifications (new events) carry no payload."""
    if payload.startswith(RESYNC_PREFIX):
        requests.append(payload.removeprefix(RESYNC_PREFIX))


def relay_channel(service: str) -> str:
    """The channel the service's event store notifies on (and resync requests are sent on)."""
    return f"{service}_events"


async def ensure_position_table(conn: psycopg.AsyncConnection[Any], service: str) -> None:
    """The relay's bookkeeping: its acknowledged position and the last resync it confirmed."""
    table = Identifier(service, "relay_position")
    await conn.execute(
        SQL(
            "CREATE TABLE IF NOT EXISTS {} (service text PRIMARY KEY, "
            "notification_id bigint NOT NULL, next_index int NOT NULL, "
            "published_at timestamptz NOT NULL DEFAULT now())"
        ).format(table)
    )
    await conn.execute(
        SQL(
            "ALTER TABLE {} ADD COLUMN IF NOT EXISTS resync_token text, "
            "ADD COLUMN IF NOT EXISTS resynced_at timestamptz"
        ).format(table)
    )


def cloudevents_for(
    service: str, settings: Settings, event: DomainEvent, public: Sequence[PublicEvent]
) -> list[CloudEvent]:
    """The CloudEvents that announce one stored event: the one place they are built, so the
    relay and a rebuild from the event store (``weerbaar replay``) see the same envelopes."""
    return [
        to_cloudevent(
            public_event,
            id=public_event_id(service, event.originator_id, event.originator_version, index),
            source=settings.source_for(service),
            time=event.timestamp,
            correlationid=event.correlation_id,
            causationid=event.causation_id,
            actorrole=event.actor_role,
            actorid=event.actor_id,
            traceparent=_valid_traceparent(event.traceparent),
        )
        for index, public_event in enumerate(public)
    ]


def _valid_traceparent(value: str | None) -> str | None:
    # The envelope refuses a malformed one; an event must never be held back by its trace.
    return value if value is not None and _TRACEPARENT.fullmatch(value) else None


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return
