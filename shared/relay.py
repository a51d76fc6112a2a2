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
- records its position in PostgreSQL only after the PubAck (for monitoring the lag).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import nats
import psycopg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from psycopg.sql import SQL, Identifier

from shared.contracts.registry import subject_for, to_cloudevent
from shared.eventstore import DomainEvent, public_event_id
from shared.settings import Settings

if TYPE_CHECKING:
    from eventsourcing.persistence import Notification

    from shared.contracts.events import PublicEvent
    from shared.eventstore import ServiceApplication

log = logging.getLogger(__name__)

POSITION_HEADER = "Weerbaar-Position"

#: Maps one private domain event to the public events it announces (often one, sometimes none).
Gateway = Callable[[DomainEvent], Sequence["PublicEvent"]]


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

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop`` is set; survives NATS and PostgreSQL outages by starting over."""
        while not stop.is_set():
            try:
                await self._run_once(stop)
            except (OSError, psycopg.OperationalError, nats.errors.Error) as exc:
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
                async with await psycopg.AsyncConnection.connect(
                    self.conninfo, autocommit=True
                ) as listen:
                    await listen.execute(SQL("LISTEN {}").format(Identifier(self._channel())))
                    while not stop.is_set():
                        await lock.execute("SELECT 1")  # lost the lock's connection → stop
                        if reconnected.is_set():
                            # The server may have restarted without what it had not yet synced
                            # to disk: resume from what the stream really holds.
                            reconnected.clear()
                            position = await self._resume_position(js, lock)
                        batch = await asyncio.to_thread(
                            self.app.recorder.select_notifications,
                            position.notification_id,
                            self.settings.relay_batch_size,
                        )
                        if batch:
                            position = await self._publish(js, batch, position)
                            await self._record(lock, position)
                            continue
                        await self._wait_for_notify(listen, stop)
            finally:
                self.active.clear()
                await nc.close()

    async def _acquire(self, lock: psycopg.AsyncConnection[Any], stop: asyncio.Event) -> None:
        key = advisory_key(f"weerbaar-relay:{self.service}")
        while not stop.is_set():
            row = await (await lock.execute("SELECT pg_try_advisory_lock(%s)", (key,))).fetchone()
            if row and row[0]:
                return
            await _sleep_or_stop(stop, self.poll_interval_s)

    async def _ensure_position_table(self, conn: psycopg.AsyncConnection[Any]) -> None:
        await conn.execute(
            SQL(
                "CREATE TABLE IF NOT EXISTS {} (service text PRIMARY KEY, "
                "notification_id bigint NOT NULL, next_index int NOT NULL, "
                "published_at timestamptz NOT NULL DEFAULT now())"
            ).format(self.position_table)
        )

    async def _resume_position(
        self, js: JetStreamContext, conn: psycopg.AsyncConnection[Any]
    ) -> Position:
        """Where to resume: the earlier of what the stream holds and what was acknowledged.

        The stream's own last message finds a tail the stream lost. The recorded position (moved
        only after every publish of a batch was acknowledged) covers a batch whose later messages
        were stored while an earlier one failed: the whole batch goes out again, and what the
        stream already holds is dropped by its duplicate window.
        """
        on_stream = await self._position_on_stream(js)
        row = await (
            await conn.execute(
                SQL("SELECT notification_id, next_index FROM {} WHERE service = %s").format(
                    self.position_table
                ),
                (self.service,),
            )
        ).fetchone()
        if row is None:
            return on_stream
        return min(on_stream, Position(int(row[0]) + 1, int(row[1])))

    async def _position_on_stream(self, js: JetStreamContext) -> Position:
        try:
            last = await js.get_last_msg(self.settings.stream_name, f"weerbaar.{self.service}.>")
        except NotFoundError:
            return Position(1, 0)
        header = (last.headers or {}).get(POSITION_HEADER)
        if header is None:
            raise RuntimeError(f"last message of {self.service} on the stream has no position")
        return Position.after_header(header)

    def _messages(
        self, batch: Sequence[Notification], position: Position
    ) -> list[tuple[str, bytes, dict[str, str]]]:
        """The batch as NATS messages (blocking: decoding may read a dossier's key)."""
        messages = []
        for notification in batch:
            if notification.id < position.notification_id:
                continue
            event = self.app.mapper.to_domain_event(notification)
            assert isinstance(event, DomainEvent)
            public = self.gateway(event)
            for index, public_event in enumerate(public):
                if notification.id == position.notification_id and index < position.index:
                    continue
                ce = to_cloudevent(
                    public_event,
                    id=public_event_id(
                        self.service, event.originator_id, event.originator_version, index
                    ),
                    source=self.settings.source_for(self.service),
                    time=event.timestamp,
                    correlationid=event.correlation_id,
                    causationid=event.causation_id,
                    actorrole=event.actor_role,
                    actorid=event.actor_id,
                )
                headers = {
                    "Nats-Msg-Id": ce.id,
                    POSITION_HEADER: f"{notification.id}/{index}/{len(public)}",
                }
                messages.append((subject_for(public_event), ce.to_json(), headers))
        return messages

    async def _publish(
        self, js: JetStreamContext, batch: Sequence[Notification], position: Position
    ) -> Position:
        messages = await asyncio.to_thread(self._messages, batch, position)
        futures = [
            await js.publish_async(
                subject, payload, headers=headers, stream=self.settings.stream_name
            )
            for subject, payload, headers in messages
        ]
        # Every future must be acked before the position moves; one failure → start over from
        # the recorded position (the duplicate window drops what was stored twice).
        acks = await asyncio.wait_for(asyncio.gather(*futures), timeout=30)
        self.published += sum(1 for ack in acks if not ack.duplicate)
        return Position(batch[-1].id + 1, 0)

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
        return f"{self.service}_events"

    async def _wait_for_notify(
        self, conn: psycopg.AsyncConnection[Any], stop: asyncio.Event
    ) -> None:
        try:
            async with asyncio.timeout(self.poll_interval_s):
                async for _ in conn.notifies(stop_after=1):
                    return
        except TimeoutError:
            return


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return
