"""Reconciliation: does the stream hold what the event stores hold? ``weerbaar reconcile``.

PostgreSQL is the system of record and the stream is derived from it, so the stream must never
announce an event the database does not hold. After a restore of the database from an older
backup without deleting the stream, it does: the stream holds events committed after the
restore point, and because CloudEvent ids derive from the aggregate and its version, new events
reuse their ids (the stream's duplicate window drops them, or the stream holds two events under
one id). Nothing else notices: ``weerbaar verify`` checks the logs against their own chains.

Per service, the command compares the service's messages on the stream (headers only: the
``Weerbaar-Position`` and ``Nats-Msg-Id`` the relay puts on each) with the public events its log
announces (decoded by the service itself, its ``--export-public 0``: the relay's own ids and
positions, see ``shared.platform.replay``):

- **extra**: on the stream, but the log holds no event at that position with that id;
- **missing**: announced by the log at a position the relay has recorded as published (behind
  its position in ``<svc>.relay_position``), but not on the stream: a gap the relay will not fill;
- **not yet published**: after the relay's position: normal lag.

It reads in an order that makes neither verdict false while the system runs: the relay's
position first (everything before it was acknowledged by the stream), then the stream (every
message on it announces an event committed before), then the logs.

The cheap form of the same question (``shared.platform.stream_tail.tail_check``: is the service's
last message on the stream an event the store holds at that position?) is a readiness detail and
the gauge ``weerbaar_stream_ahead_of_store``. Nothing here prints or logs a payload: ids, positions
and counts only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import nats
import psycopg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from shared.platform.relay import MSG_ID_HEADER, POSITION_HEADER, PositionHeader
from shared.platform.replay import ServiceCommand, StoreExport
from shared.platform.settings import SERVICES, Settings, load_settings
from shared.platform.stream import CONNECT_TIMEOUT_S, Unreachable, connect_nats
from shared.platform.stream_tail import Position

if TYPE_CHECKING:
    from nats.aio.msg import Msg


log = logging.getLogger(__name__)

#: How many ids of extra or missing events a report lists (the counts are always whole).
LISTED: Final = 5
#: Messages fetched per request while reading the stream's headers.
FETCH_BATCH: Final = 2000
RUNBOOK_SECTION: Final = "deploy/RUNBOOK.md, 'Reconcile the stream with the event stores'"


@dataclass(frozen=True)
class OnStream:
    """One of the relay's messages on the stream, as its headers describe it."""

    sequence: int
    position: Position
    msg_id: str


@dataclass
class StreamSide:
    """A service's messages on the stream: the relay's, and how many others (no position)."""

    messages: list[OnStream] = field(default_factory=list)
    foreign: int = 0


@dataclass
class StoreSide:
    """What a service's log announces: the public events' ids by position."""

    stored: int = 0
    announced: dict[Position, str] = field(default_factory=dict)


@dataclass
class ServiceReport:
    """The comparison of one service's stream messages with its log."""

    service: str
    stored: int
    announced: int
    on_stream: int
    foreign: int
    relay_at: Position
    extra: list[OnStream]
    missing: list[tuple[Position, str]]
    not_yet_published: int
    twice: int

    @property
    def consistent(self) -> bool:
        """Nothing extra on the stream and no gap behind the relay."""
        return not self.extra and not self.missing

    def line(self) -> str:
        """One line for the operator: counts, and the first few ids of what disagrees."""
        text = (
            f"{self.service}: {self.stored} events stored ({self.announced} public),"
            f" {self.on_stream} messages on the stream; extra {len(self.extra)},"
            f" missing {len(self.missing)}, not yet published {self.not_yet_published}"
        )
        if self.twice:
            text += f", twice {self.twice}"
        if self.foreign:
            text += f", not the relay's {self.foreign}"
        if self.extra:
            shown = ", ".join(
                f"{m.msg_id} (seq {m.sequence}, at {m.position[0]}/{m.position[1]})"
                for m in self.extra[:LISTED]
            )
            text += f"\n  extra: {shown}{_more(len(self.extra))}"
        if self.missing:
            shown = ", ".join(f"{i} (at {p[0]}/{p[1]})" for p, i in self.missing[:LISTED])
            text += f"\n  missing: {shown}{_more(len(self.missing))}"
        return text


def _more(count: int) -> str:
    return f" and {count - LISTED} more" if count > LISTED else ""


def compare(
    service: str, stream: StreamSide, store: StoreSide, relay_at: Position
) -> ServiceReport:
    """Which of the stream's messages the log holds, and which of the log's events the stream
    lacks: behind the relay's position a gap, from it on lag."""
    held: set[Position] = set()
    extra: list[OnStream] = []
    twice = 0
    for message in stream.messages:
        if store.announced.get(message.position) != message.msg_id:
            extra.append(message)
        elif message.position in held:
            twice += 1
        else:
            held.add(message.position)
    missing: list[tuple[Position, str]] = []
    pending = 0
    for position, msg_id in sorted(store.announced.items()):
        if position in held:
            continue
        if position < relay_at:
            missing.append((position, msg_id))
        else:
            pending += 1
    return ServiceReport(
        service=service,
        stored=store.stored,
        announced=len(store.announced),
        on_stream=len(stream.messages),
        foreign=stream.foreign,
        relay_at=relay_at,
        extra=extra,
        missing=missing,
        not_yet_published=pending,
        twice=twice,
    )


async def read_stream(js: JetStreamContext, stream_name: str, service: str) -> StreamSide:
    """Every message of ``service`` on the stream, headers only (no payload crosses the wire),
    through a throwaway consumer; up to the messages it held when the reading began."""
    info = await js.add_consumer(
        stream_name,
        ConsumerConfig(
            filter_subject=f"weerbaar.{service}.>",
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            headers_only=True,
            inactive_threshold=30.0,
        ),
    )
    assert info.name is not None
    side = StreamSide()
    total = int(info.num_pending or 0)
    try:
        subscription = await js.pull_subscribe_bind(consumer=info.name, stream=stream_name)
        try:
            read = 0
            while read < total:
                batch: list[Msg] = await subscription.fetch(min(FETCH_BATCH, total - read), 5)
                for message in batch:
                    read += 1
                    _collect(side, message)
        finally:
            await subscription.unsubscribe()
    finally:
        await js.delete_consumer(stream_name, info.name)
    return side


def _collect(side: StreamSide, message: Msg) -> None:
    headers = message.headers or {}
    header = PositionHeader.read(headers.get(POSITION_HEADER))
    msg_id = headers.get(MSG_ID_HEADER)
    if header is None or msg_id is None:
        side.foreign += 1
        return
    position = (header.notification_id, header.index)
    side.messages.append(OnStream(message.metadata.sequence.stream, position, msg_id))


def read_store(export: StoreExport) -> StoreSide:
    """What a service's log announces, read from its export (blocking); the export is closed."""
    side = StoreSide()
    try:
        for notification_id, ids in export.ids():
            side.stored += 1
            for index, msg_id in enumerate(ids):
                side.announced[(notification_id, index)] = msg_id
    finally:
        export.close()
    return side


def _tables(conn: psycopg.Connection[Any], service: str) -> tuple[bool, bool]:
    """Whether the service's event table and its relay's position table exist."""
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL, to_regclass(%s) IS NOT NULL",
        (f"{service}.{service}_events", f"{service}.relay_position"),
    ).fetchone()
    assert row is not None
    return bool(row[0]), bool(row[1])


def relay_position(conn: psycopg.Connection[Any], service: str) -> Position:
    """The next position the relay publishes, as it recorded it after the stream acknowledged
    what came before ((1, 0) when it never recorded any)."""
    _, has_position = _tables(conn, service)
    if not has_position:
        return (1, 0)
    row = conn.execute(
        SQL("SELECT notification_id, next_index FROM {} WHERE service = %s").format(
            Identifier(service, "relay_position")
        ),
        (service,),
    ).fetchone()
    return (1, 0) if row is None else (int(row[0]) + 1, int(row[1]))


async def reconcile(
    settings: Settings,
    services: Sequence[str] = SERVICES,
    *,
    command: ServiceCommand,
    timeout_s: float = 120.0,
    environ: Mapping[str, str] | None = None,
) -> list[ServiceReport]:
    """Compare every service's messages on the stream with its log; bounded by ``timeout_s``.

    Raises ``Unreachable`` when NATS or PostgreSQL does not answer, ``TimeoutError`` when the
    whole comparison takes longer.
    """
    env = dict(os.environ if environ is None else environ)
    deadline = time.monotonic() + timeout_s
    async with asyncio.timeout(timeout_s):
        try:
            conn = await asyncio.to_thread(
                psycopg.connect,
                settings.database_url,
                autocommit=True,
                row_factory=tuple_row,
                connect_timeout=max(1, int(min(CONNECT_TIMEOUT_S, timeout_s))),
            )
        except psycopg.OperationalError as exc:
            raise Unreachable(f"PostgreSQL not reachable: {type(exc).__name__}") from None
        with conn:
            tables = {s: _tables(conn, s) for s in services}
            # First the relay's position: what it recorded was acknowledged by the stream.
            positions = {s: relay_position(conn, s) for s in services}
        left = max(0.5, deadline - time.monotonic())
        nc = await connect_nats(settings, "weerbaar-reconcile", min(CONNECT_TIMEOUT_S, left))
        try:
            js = nc.jetstream(timeout=10)
            # Then the stream: every message on it announces an event committed before.
            streams = {s: await read_stream(js, settings.stream_name, s) for s in services}
        finally:
            await nc.close()
        # Then the logs, side by side (each export is a process of its own service).
        exports = {s: StoreExport(env, s, 0, command=command) for s in services if tables[s][0]}
        try:
            read = await asyncio.gather(
                *(asyncio.to_thread(read_store, e) for e in exports.values())
            )
        finally:
            # Out of time or failed: end the exports, so their readers end too.
            for export in exports.values():
                if export.process.poll() is None:
                    export.process.kill()
        stores = dict(zip(exports, read, strict=True))
    return [compare(s, streams[s], stores.get(s, StoreSide()), positions[s]) for s in services]


# --- the cheap check: readiness detail and gauge ---------------------------------------------


def main(argv: Sequence[str] | None = None, *, command: ServiceCommand) -> int:
    """``weerbaar reconcile [--timeout S]``: 0 when the stream and the logs agree, else 1
    (``command`` starts a service's process, to read its log)."""
    parser = argparse.ArgumentParser(prog="weerbaar reconcile", description=__doc__)
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds the whole command may take"
    )
    args = parser.parse_args(argv)
    try:
        reports = asyncio.run(reconcile(load_settings(), command=command, timeout_s=args.timeout))
    except Unreachable as exc:
        print(f"reconcile: {exc}; nothing compared", file=sys.stderr)
        return 1
    except TimeoutError:
        print(
            f"reconcile: not done within {args.timeout:.0f}s (a server answered too slowly);"
            " run again, with a longer --timeout for a large stream",
            file=sys.stderr,
        )
        return 1
    except (OSError, nats.errors.Error, psycopg.Error, RuntimeError) as exc:
        # A failed export's message ends with its stderr: only the part before it is shown.
        what = str(exc).split(":", 1)[0] if isinstance(exc, RuntimeError) else type(exc).__name__
        print(
            f"reconcile: could not read a server or a log ({what}); run again",
            file=sys.stderr,
        )
        return 1
    for report in reports:
        print(report.line(), flush=True)
    disagree = [r for r in reports if not r.consistent]
    if not disagree:
        return 0
    what = "; ".join(
        f"{r.service}: {len(r.extra)} extra, {len(r.missing)} missing" for r in disagree
    )
    print(
        f"reconcile: the stream and the event stores disagree ({what}); see {RUNBOOK_SECTION}",
        file=sys.stderr,
    )
    return 1
