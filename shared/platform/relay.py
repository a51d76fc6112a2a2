"""The outbox relay: a service's notification log in PostgreSQL → public CloudEvents on JetStream.

PostgreSQL is the system of record; the stream is derived from it. The relay

- is single-active per service: it holds a PostgreSQL advisory lock for as long as it publishes, and
  a second relay process waits on standby until the lock is free;
- finds where to resume from the stream itself: every message carries the notification id and the
  index of the public event it came from (``Weerbaar-Position: <notification_id>/<index>/<count>``),
  so after a crash, or after the stream lost its tail, it publishes exactly what is missing;
- publishes nothing while that last message is not an event its store holds at that position (a
  database restored from an older backup, the stream kept: ``StreamAhead``,
  ``shared.platform.stream_tail``);
- publishes each message with ``Nats-Msg-Id`` = the CloudEvent ``id``, which is stable (derived from
  the stored event), so a message re-sent after an unacknowledged publish is dropped by the stream's
  duplicate window;
- records its position in PostgreSQL only after the PubAcks of a whole batch (for monitoring the
  lag: see ``shared.platform.telemetry``); while the broker stores one batch it reads, encodes and
  sends the next (at most two batches in flight, acknowledged in order);
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
from typing import TYPE_CHECKING, Any, NoReturn
from uuid import UUID, uuid5

import nats
import psycopg
from eventsourcing.persistence import InterfaceError as ESInterfaceError
from eventsourcing.persistence import OperationalError as ESOperationalError
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NotFoundError
from psycopg.sql import SQL, Composed, Identifier
from pydantic import ValidationError

from shared.contracts.envelope import (
    ACTOR_ROLE_PATTERN,
    OPAQUE_ID_PATTERN,
    TRACEPARENT_PATTERN,
    CloudEvent,
)
from shared.contracts.errors import describe_errors
from shared.contracts.registry import subject_for, to_cloudevent
from shared.platform.errors import NietPubliceerbaar
from shared.platform.eventstore import EVENT_ID_NAMESPACE, PydanticMapper, public_event_id
from shared.platform.model import DomainEvent
from shared.platform.settings import Settings
from shared.platform.telemetry import metrics_for

if TYPE_CHECKING:
    from eventsourcing.persistence import Notification

    from shared.contracts.events import PublicEvent
    from shared.platform.eventstore import ServiceApplication

log = logging.getLogger(__name__)

POSITION_HEADER = "Weerbaar-Position"
#: The header JetStream deduplicates by: the CloudEvent ``id``.
MSG_ID_HEADER = "Nats-Msg-Id"
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
#: How often a relay that found the stream ahead of its store looks again.
STREAM_AHEAD_RETRY_S = 2.0
_TRACEPARENT = re.compile(TRACEPARENT_PATTERN)

#: Maps one private domain event to the public events it announces (often one, sometimes none).
Gateway = Callable[[DomainEvent], Sequence["PublicEvent"]]


class StreamAhead(Exception):
    """The service's last message on the stream is not an event its store holds at that
    position: the stream announces events the database does not have (a restore from an older
    backup with the stream kept). Publishing on would put new events beside them, under ids
    they reuse; the relay publishes nothing until the stream is rebuilt from PostgreSQL."""

    def __init__(self, header: str, store_last: int) -> None:
        super().__init__(f"stream at {header}, event store up to {store_last}")
        self.header = header
        self.store_last = store_last


@dataclass(frozen=True)
class Blocked:
    """A stored event the relay cannot publish (a defect of a release: before commit every
    event was checked): where it is and why, without any of its values."""

    notification_id: int
    event_type: str
    reason: str


@dataclass(frozen=True)
class _InFlight:
    """A published batch whose PubAcks are still to come, and the position after it (at the
    blocked event, when the batch stopped at one)."""

    futures: list[asyncio.Future[PubAck]]
    after: Position
    blocked: Blocked | None = None


@dataclass(frozen=True, order=True)
class Position:
    """How far the stream holds this service's log: the next public event to publish."""

    notification_id: int
    index: int

    @classmethod
    def after_header(cls, value: str) -> Position:
        """The position after the message that carries this header value; ValueError when it
        is not one the relay writes."""
        header = PositionHeader.read(value)
        if header is None:
            raise ValueError("not a Weerbaar-Position header")
        return cls.after(header)

    @classmethod
    def after(cls, header: PositionHeader) -> Position:
        """The position after the message that carries this header."""
        if header.index + 1 < header.count:
            return cls(header.notification_id, header.index + 1)
        return cls(header.notification_id + 1, 0)


_POSITION_VALUE = re.compile(r"([0-9]{1,18})/([0-9]{1,9})/([0-9]{1,9})")


def tail_query(service: str) -> Composed:
    """One row, whether or not the log holds an event at the notification id ``%s``: the log's
    last notification id, then that event's aggregate and version (NULLs when there is none)."""
    return SQL(
        "SELECT (SELECT coalesce(max(notification_id), 0) FROM {0}),"
        " e.originator_id, e.originator_version"
        " FROM (SELECT 1) AS one LEFT JOIN {0} AS e ON e.notification_id = %s"
    ).format(Identifier(service, f"{service}_events"))


def tail_held(service: str, row: Sequence[Any], index: int, msg_id: str | None) -> bool:
    """Whether the event of ``tail_query``'s ``row`` is the one a message with this CloudEvent id
    (``msg_id``) and public-event ``index`` announces. Gateway-free: the id derives from the
    stored event's aggregate and version and the index."""
    if row[1] is None or msg_id is None:
        return False
    originator = row[1] if isinstance(row[1], UUID) else UUID(str(row[1]))
    return msg_id == public_event_id(service, originator, int(row[2]), index)


#: Public events per stored event are numbered ``index`` within it; an event's place in its
#: service's log as one number is ``notification_id * POSITION_SCALE + index`` (a stored event
#: announces fewer: the replay's exports refuse more).
POSITION_SCALE = 64
_MAX_NOTIFICATION_ID = (2**63 - 1 - (POSITION_SCALE - 1)) // POSITION_SCALE


@dataclass(frozen=True)
class PositionHeader:
    """A ``Weerbaar-Position`` header as the relay writes it: the message is public event
    ``index`` of ``count`` announced by stored event ``notification_id``."""

    notification_id: int
    index: int
    count: int

    @property
    def position(self) -> Position:
        """Where the message stands in the log."""
        return Position(self.notification_id, self.index)

    @property
    def log_position(self) -> int | None:
        """The place as one number (see ``POSITION_SCALE``); None for an index beyond it, or a
        notification id so large the number would not fit a PostgreSQL ``bigint`` (no relay
        writes either: a message that is not the relay's keeps no place)."""
        if self.index >= POSITION_SCALE or self.notification_id > _MAX_NOTIFICATION_ID:
            return None
        return self.notification_id * POSITION_SCALE + self.index

    @classmethod
    def read(cls, value: str | None) -> PositionHeader | None:
        """The header of a message, or None when it has none the relay could have written
        (absent, malformed, huge or inconsistent: a message that is not the relay's)."""
        match = _POSITION_VALUE.fullmatch(value) if value else None
        if match is None:
            return None
        notification_id, index, count = (int(group) for group in match.groups())
        if notification_id < 1 or index >= count:
            return None
        return cls(notification_id, index, count)


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg_advisory_lock."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def relay_lock_probe(service: str) -> tuple[str, tuple[int, int]]:
    """SQL and parameters: whether another session holds the relay lock of ``service``.

    Reads ``pg_locks`` rather than trying the lock: a probe that takes the lock answers wrong
    when its own session already holds it (advisory locks are re-entrant), and while it holds
    it a relay that tries at that moment backs off. A bigint key is split into ``classid``
    (high 32 bits) and ``objid`` (low 32 bits), ``objsubid`` 1.
    """
    key = advisory_key(f"weerbaar-relay:{service}") & 0xFFFFFFFFFFFFFFFF
    return (
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        " AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1"
        " AND pid <> pg_backend_pid())",
        (key >> 32, key & 0xFFFFFFFF),
    )


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
        #: Whether the log said the stream is ahead of the store (once, until it is not).
        self.ahead_reported = False

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; survives NATS and PostgreSQL outages by starting over.

        Nothing the relay meets ends the process (its API and consumers go on): an outage starts
        it over after a second; anything else is logged with its traceback and started over
        with a back-off that doubles up to a minute (a defect that repeats shows as a stalled
        relay, its lag alert and these log lines, not as a crash loop).
        """
        failures = 0
        while not stop.is_set():
            try:
                await self._run_once(stop)
                failures = 0
            except OUTAGES as exc:
                self.active.clear()
                log.warning("relay interrupted, restarting", extra={"error": type(exc).__name__})
                await _sleep_or_stop(stop, 1.0)
            except StreamAhead as exc:
                self.active.clear()
                if not self.ahead_reported:
                    log.error(
                        "stream holds events the event store does not; publishing nothing",
                        extra={
                            "service": self.service,
                            "stream_position": exc.header,
                            "event_store_last": exc.store_last,
                            "what_to_do": "weerbaar reconcile; delete the stream, then weerbaar"
                            " stream-rebuild (RUNBOOK: WeerbaarStreamAheadOfStore)",
                        },
                    )
                    self.ahead_reported = True
                # Looked at again (lock, stream, store) every few seconds: a rebuilt stream
                # lets it go on by itself, and ``weerbaar stream-rebuild`` finds it running.
                await _sleep_or_stop(stop, STREAM_AHEAD_RETRY_S)
            except Exception:
                self.active.clear()
                failures += 1
                wait_s = min(60.0, 2.0 ** min(failures, 6))
                log.exception(
                    "relay failed unexpectedly, restarting",
                    extra={"service": self.service, "failures": failures, "retry_in_s": wait_s},
                )
                await _sleep_or_stop(stop, wait_s)

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
                self._mark_active(True)
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True
                ) as listen:
                    # Resync requests (``weerbaar stream-rebuild``) come on the same channel;
                    # notifications that arrive while the relay publishes wait in psycopg's
                    # backlog and are read by the next wait.
                    await listen.execute(SQL("LISTEN {}").format(Identifier(self._channel())))
                    # A request made while this relay was not listening (between connections,
                    # on standby) is on record: read after LISTEN, so none falls in between.
                    requests: list[str] = await self._pending_resync(lock)
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
                            if sent.blocked is not None:
                                in_flight = None
                                requests += await self._halt(lock, listen, sent, reconnected, stop)
                            continue
                        if in_flight is not None:
                            await self._settle(lock, in_flight, reconnected)
                            in_flight = None
                            continue
                        if resyncing:
                            # Caught up with the log after a resync: say so to whoever asked.
                            await self._confirm_resync(lock, resyncing[-1])
                            resyncing.clear()
                        requests += _resyncs(await self._wait_for_notify(listen, stop))
            finally:
                self._mark_active(False)
                await nc.close()

    def _mark_active(self, active: bool) -> None:
        if active:
            self.active.set()
        else:
            self.active.clear()
        self.metrics.relay_active.labels(self.service).set(1 if active else 0)

    async def _halt(
        self,
        conn: psycopg.AsyncConnection[Any],
        listen: psycopg.AsyncConnection[Any],
        sent: _InFlight,
        reconnected: asyncio.Event,
        stop: asyncio.Event,
    ) -> list[str]:
        """Publish what came before the blocked event, then stop at it (``_stopped``); when
        the client reconnected meanwhile, nothing (the loop resumes from the stream)."""
        assert sent.blocked is not None
        if not await self._settle(conn, sent, reconnected):
            return []
        return await self._stopped(conn, listen, sent.blocked, stop)

    async def _stopped(
        self,
        conn: psycopg.AsyncConnection[Any],
        listen: psycopg.AsyncConnection[Any],
        blocked: Blocked,
        stop: asyncio.Event,
    ) -> list[str]:
        """Stay at an event that cannot be published, loudly, until told to resume (``weerbaar
        relay resume``) or stopped; the resync requests that came meanwhile.

        Events after it are not published either: the stream keeps the log's order. The API and
        the consumers of the process go on. A restart (a fixed release) tries again too.
        """
        log.error(
            "relay stopped at an event it cannot publish",
            extra={
                "service": self.service,
                "notification_id": blocked.notification_id,
                "event_type": blocked.event_type,
                "reason": blocked.reason,
                "what_to_do": "deploy a release that can publish it, then `weerbaar relay resume`",
            },
        )
        await conn.execute(
            SQL(
                "INSERT INTO {} (service, notification_id, next_index, gestopt_bij, "
                "gestopt_type, gestopt_reden, gestopt_sinds) "
                "VALUES (%s, %s, 0, %s, %s, %s, now()) ON CONFLICT (service) DO UPDATE SET "
                "gestopt_bij = EXCLUDED.gestopt_bij, gestopt_type = EXCLUDED.gestopt_type, "
                "gestopt_reden = EXCLUDED.gestopt_reden, gestopt_sinds = EXCLUDED.gestopt_sinds"
            ).format(self.position_table),
            (
                self.service,
                blocked.notification_id - 1,
                blocked.notification_id,
                blocked.event_type,
                blocked.reason[:500],
            ),
        )
        resyncs: list[str] = []
        while not stop.is_set():
            payloads = await self._wait_for_notify(listen, stop)
            resyncs += _resyncs(payloads)
            if any(p.startswith(RESUME_PREFIX) for p in payloads):
                break
        else:
            return resyncs
        await conn.execute(
            SQL(
                "UPDATE {} SET gestopt_bij = NULL, gestopt_type = NULL, gestopt_reden = NULL, "
                "gestopt_sinds = NULL WHERE service = %s"
            ).format(self.position_table),
            (self.service,),
        )
        log.warning(
            "relay resumes at the event it stopped at",
            extra={"service": self.service, "notification_id": blocked.notification_id},
        )
        return resyncs

    async def _acquire(self, lock: psycopg.AsyncConnection[Any], stop: asyncio.Event) -> None:
        key = advisory_key(f"weerbaar-relay:{self.service}")
        while not stop.is_set():
            row = await (await lock.execute("SELECT pg_try_advisory_lock(%s)", (key,))).fetchone()
            if row and row[0]:
                return
            await _sleep_or_stop(stop, self.poll_interval_s)

    async def _ensure_position_table(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await ensure_position_table(conn, self.service)

    async def _pending_resync(self, conn: psycopg.AsyncConnection[Any]) -> list[str]:
        """The resync requested (``weerbaar stream-rebuild``) and not yet confirmed, if any."""
        row = await (
            await conn.execute(
                SQL(
                    "SELECT resync_requested FROM {} WHERE service = %s "
                    "AND resync_requested IS DISTINCT FROM resync_token"
                ).format(self.position_table),
                (self.service,),
            )
        ).fetchone()
        return [] if row is None or row[0] is None else [str(row[0])]

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
        on_stream = await self._position_on_stream(js, conn)
        if self.ahead_reported:
            log.info("stream no longer ahead of the event store", extra={"service": self.service})
            self.ahead_reported = False
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
            header = PositionHeader.read((first.headers or {}).get(POSITION_HEADER))
            if header is not None:
                break
            seq = (first.seq or seq) + 1  # not the relay's message: look at the next one
        start = await asyncio.to_thread(self._first_public_position)
        if header is None or start is None:
            return False
        return header.position == start

    def _first_public_position(self) -> Position | None:
        """The position of the log's first public event (blocking: reads and decodes the log,
        as ``_messages`` does: skeletons, no key read)."""
        mapper = self.app.mapper
        assert isinstance(mapper, PydanticMapper)
        start = 1
        while batch := self.app.recorder.select_notifications(start, 100):
            for notification in batch:
                try:
                    (event,) = mapper.to_domain_events([notification], skeleton=True)
                    public = self.gateway(event)
                except OUTAGES:
                    raise
                except Exception:
                    # One it cannot publish: the log's public part starts there at the latest
                    # (publishing stops at it, and says so).
                    return Position(notification.id, 0)
                if public:
                    return Position(notification.id, 0)
            start = batch[-1].id + 1
        return None

    async def _position_on_stream(
        self, js: JetStreamContext, conn: psycopg.AsyncConnection[Any]
    ) -> Position | None:
        """After the service's last message on the stream; None when that is not the relay's.

        Raises ``StreamAhead`` when that message is not an event the store holds at its position
        (the CloudEvent id derives from the stored event at that notification id)."""
        try:
            last = await js.get_last_msg(self.settings.stream_name, f"weerbaar.{self.service}.>")
        except NotFoundError:
            return Position(1, 0)
        headers = last.headers or {}
        header = PositionHeader.read(headers.get(POSITION_HEADER))
        if header is None:
            return None
        notification_id, index = header.notification_id, header.index
        row = await (await conn.execute(tail_query(self.service), (notification_id,))).fetchone()
        assert row is not None  # one row, whether the event is there or not
        if not tail_held(self.service, row, index, headers.get(MSG_ID_HEADER)):
            raise StreamAhead(headers[POSITION_HEADER], int(row[0]))
        return Position.after(header)

    def _messages(
        self, batch: Sequence[Notification], position: Position
    ) -> tuple[list[tuple[str, bytes, dict[str, str]]], Blocked | None]:
        """The batch as NATS messages, up to the first event that cannot be published (blocking:
        it reads stored events' JSON)."""
        messages: list[tuple[str, bytes, dict[str, str]]] = []
        todo = [n for n in batch if n.id >= position.notification_id]
        # The decoded list ends early, with a ``Blocked``, at an event that cannot be decoded.
        for notification, event in zip(todo, self._decode(todo), strict=False):
            try:
                if isinstance(event, Blocked):
                    return messages, event
                public = self.gateway(event)
                envelopes = cloudevents_for(self.service, self.settings, event, public)
                encoded = [
                    (subject_for(public_event), ce.to_json(), ce.id)
                    for public_event, ce in zip(public, envelopes, strict=True)
                ]
            except OUTAGES:
                raise
            except Exception as exc:
                return messages, _blocked(notification.id, type(event).__name__, exc)
            for index, (subject, payload, ce_id) in enumerate(encoded):
                if notification.id == position.notification_id and index < position.index:
                    continue
                headers = {
                    MSG_ID_HEADER: ce_id,
                    POSITION_HEADER: f"{notification.id}/{index}/{len(encoded)}",
                }
                messages.append((subject, payload, headers))
        return messages, None

    def _decode(self, todo: Sequence[Notification]) -> list[DomainEvent | Blocked]:
        """The stored events decoded without their personal values (no key read, nothing
        decrypted: the public events are made from what survives forgetting); one that cannot
        be decoded (a class moved without its old topic, say) as a ``Blocked``."""
        mapper = self.app.mapper
        assert isinstance(mapper, PydanticMapper)
        try:
            return list(mapper.to_domain_events(todo, skeleton=True))
        except OUTAGES:
            raise
        except Exception:
            log.info("a batch did not decode as a whole; decoding it event by event")
        decoded: list[DomainEvent | Blocked] = []
        for notification in todo:
            try:
                (event,) = mapper.to_domain_events([notification], skeleton=True)
            except OUTAGES:
                raise
            except Exception as exc:
                decoded.append(_blocked(notification.id, notification.topic, exc))
                break
            decoded.append(event)
        return decoded

    async def _send(
        self, js: JetStreamContext, batch: Sequence[Notification], position: Position
    ) -> _InFlight:
        """Publish a batch without waiting for its PubAcks."""
        messages, blocked = await asyncio.to_thread(self._messages, batch, position)
        futures = [
            await js.publish_async(
                subject, payload, headers=headers, stream=self.settings.stream_name
            )
            for subject, payload, headers in messages
        ]
        if blocked is not None:
            return _InFlight(futures, max(position, Position(blocked.notification_id, 0)), blocked)
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
        """Wait for the next notification, at most the poll interval; the requests read (new
        events notify without a payload)."""
        payloads: list[str] = []
        try:
            async with asyncio.timeout(self.poll_interval_s):
                async for notify in conn.notifies(stop_after=1):
                    if notify.payload:
                        payloads.append(notify.payload)
        except TimeoutError:
            pass
        return payloads


RESYNC_PREFIX = "resync:"
#: ``weerbaar relay resume``: a relay stopped at an event tries it again.
RESUME_PREFIX = "resume:"


def _resyncs(payloads: Sequence[str]) -> list[str]:
    tokens: list[str] = []
    for payload in payloads:
        _collect_resync(payload, tokens)
    return tokens


def _blocked(notification_id: int, what: str, exc: Exception) -> Blocked:
    """Why an event cannot be published, in words that quote none of its values."""
    if isinstance(exc, ValidationError):
        reason = describe_errors(exc.errors(include_input=False))
    else:
        reason = type(exc).__name__
    return Blocked(notification_id, what.rsplit(":", 1)[-1], reason)


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
            "ADD COLUMN IF NOT EXISTS resync_requested text, "
            "ADD COLUMN IF NOT EXISTS resynced_at timestamptz, "
            "ADD COLUMN IF NOT EXISTS gestopt_bij bigint, "
            "ADD COLUMN IF NOT EXISTS gestopt_type text, "
            "ADD COLUMN IF NOT EXISTS gestopt_reden text, "
            "ADD COLUMN IF NOT EXISTS gestopt_sinds timestamptz"
        ).format(table)
    )


def cloudevents_for(
    service: str,
    settings: Settings | None,
    event: DomainEvent,
    public: Sequence[PublicEvent],
    *,
    source: str | None = None,
    strict: bool = False,
) -> list[CloudEvent]:
    """The CloudEvents that announce one stored event: the one place they are built, so the
    relay, the check before a command commits and a rebuild from the event store (``weerbaar
    replay``) see the same envelopes.

    ``strict`` (the check before commit): the event's metadata must be valid as it is.
    Otherwise (publishing what is stored): metadata an earlier release stored that the contract
    refuses (a caller's correlation text, an empty role) is replaced by a valid form derived from
    the event — the same at every publish, so ids and envelopes stay stable — and a log line says
    so; the event is published, never held back by its metadata.
    """
    meta = _metadata(service, event, strict=strict)
    return [
        to_cloudevent(
            public_event,
            id=public_event_id(service, event.originator_id, event.originator_version, index),
            source=source or _source(settings, service),
            time=event.timestamp,
            traceparent=_valid_traceparent(event.traceparent),
            **meta,
        )
        for index, public_event in enumerate(public)
    ]


class PublicationCheck:
    """The check ``ServiceApplication.record`` makes before it stores an event: the event's
    public form, built as the relay builds it, must be valid as it is (no metadata derived).
    Otherwise nothing is stored and the command answers 500 ``niet_publiceerbaar``: the input
    was checked at the edge, so this is a defect to fix, named in the log without any value."""

    def __init__(self, service: str, gateway: Gateway, source: str | None = None) -> None:
        self.service = service
        self.gateway = gateway
        # The check needs a valid source, not the deployment's own: every configured prefix
        # gives one, so the default prefix stands in.
        self.source = source or f"{Settings.model_fields['source_prefix'].default}:{service}"

    def __call__(self, event: DomainEvent) -> None:
        """Raise ``NietPubliceerbaar`` when ``event`` has no public form the contract accepts."""
        try:
            public = self.gateway(event)
            envelopes = cloudevents_for(
                self.service, None, event, public, source=self.source, strict=True
            )
            for public_event, ce in zip(public, envelopes, strict=True):
                subject_for(public_event)
                ce.to_json()
        except ValidationError as exc:
            self._refuse(event, describe_errors(exc.errors(include_input=False)))
        except Exception as exc:
            self._refuse(event, type(exc).__name__)

    def _refuse(self, event: DomainEvent, reason: str) -> NoReturn:
        name = type(event).__name__
        log.error(
            "event has no valid public form; nothing stored",
            extra={"service": self.service, "event_type": name, "reason": reason},
        )
        raise NietPubliceerbaar(name, reason)


_OPAQUE = re.compile(OPAQUE_ID_PATTERN)
_ACTOR_ROLE = re.compile(ACTOR_ROLE_PATTERN)


def _metadata(service: str, event: DomainEvent, *, strict: bool) -> dict[str, str | None]:
    meta: dict[str, str | None] = {
        "correlationid": event.correlation_id,
        "causationid": event.causation_id,
        "actorrole": event.actor_role,
        "actorid": event.actor_id,
    }
    if strict:
        return meta
    replaced = []
    for name in ("correlationid", "causationid", "actorid"):
        value = meta[name]
        if value is not None and not _OPAQUE.fullmatch(value):
            # Derived from the event (not from the value, which may be personal): stable.
            meta[name] = str(uuid5(EVENT_ID_NAMESPACE, f"{name}/{service}/{event.originator_id}"))
            replaced.append(name)
    role = meta["actorrole"]
    if role is not None and not _ACTOR_ROLE.fullmatch(role):
        meta["actorrole"] = None  # "no role": the attribute is left out
        replaced.append("actorrole")
    if replaced:
        log.warning(
            "stored event published with derived metadata",
            extra={
                "service": service,
                "originator_id": str(event.originator_id),
                "originator_version": event.originator_version,
                "event_type": type(event).__name__,
                "replaced": replaced,
            },
        )
    return meta


def _source(settings: Settings | None, service: str) -> str:
    if settings is None:
        raise ValueError("a CloudEvent needs a source: give settings or the source")
    return settings.source_for(service)


def _valid_traceparent(value: str | None) -> str | None:
    # The envelope refuses a malformed one; an event must never be held back by its trace.
    return value if value is not None and _TRACEPARENT.fullmatch(value) else None


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return
