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

The cheap form of the same question (``tail_check``: is the service's last message on the stream
an event the store holds at that position?) is a readiness detail and the gauge
``weerbaar_stream_ahead_of_store``. Nothing here prints or logs a payload: ids, positions and
counts only.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from uuid import UUID

import nats
import psycopg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from shared.platform.eventstore import public_event_id
from shared.platform.relay import POSITION_HEADER, PositionHeader
from shared.platform.replay import ServiceCommand, StoreExport
from shared.platform.settings import SERVICES, Settings, load_settings
from shared.platform.stream import CONNECT_TIMEOUT_S, Unreachable, connect_nats
from shared.platform.telemetry import metrics_for

if TYPE_CHECKING:
    from nats.aio.msg import Msg

    from shared.platform.eventstore import ServiceApplication

log = logging.getLogger(__name__)

MSG_ID_HEADER: Final = "Nats-Msg-Id"
#: The gauge of the cheap check (read at scrape time).
STREAM_AHEAD: Final = "weerbaar_stream_ahead_of_store"
#: How many ids of extra or missing events a report lists (the counts are always whole).
LISTED: Final = 5
#: Messages fetched per request while reading the stream's headers.
FETCH_BATCH: Final = 2000
RUNBOOK_SECTION: Final = "deploy/RUNBOOK.md, 'Reconcile the stream with the event stores'"

Position = tuple[int, int]  # (notification_id, index), ordered as the relay publishes


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


@dataclass(frozen=True)
class Tail:
    """The service's last message on the stream, judged against its store."""

    position: Position
    held: bool
    store_last: int

    def detail(self) -> dict[str, Any] | None:
        """The readiness detail: None while the store holds the stream's last message."""
        if self.held:
            return None
        return {
            "voor_op_opslag": True,
            "laatste_bericht_positie": f"{self.position[0]}/{self.position[1]}",
            "opslag_laatste_positie": self.store_last,
            "wat_te_doen": "weerbaar reconcile; zie RUNBOOK, WeerbaarStreamAheadOfStore",
        }


def store_holds(
    conn: psycopg.Connection[Any], service: str, position: Position, msg_id: str
) -> tuple[bool, int]:
    """Whether the log holds, at ``position``, the event whose CloudEvent id is ``msg_id``;
    and the log's last notification id. Gateway-free: the id derives from the stored event's
    aggregate and version and the public event's index."""
    table = Identifier(service, f"{service}_events")
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(
            SQL(
                "SELECT originator_id, originator_version,"
                " (SELECT coalesce(max(notification_id), 0) FROM {0})"
                " FROM {0} WHERE notification_id = %s"
            ).format(table),
            (position[0],),
        ).fetchone()
        if row is None:
            last = cur.execute(
                SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(table)
            ).fetchone()
            return False, int(last[0]) if last else 0
    originator = row[0] if isinstance(row[0], UUID) else UUID(str(row[0]))
    expected = public_event_id(service, originator, int(row[1]), position[1])
    return expected == msg_id, int(row[2])


async def last_relay_message(
    settings: Settings, service: str, timeout_s: float
) -> tuple[Position, str] | None:
    """The position and id of the service's last message on the stream; None when it has none
    or the last one is not the relay's (its headers carry no position)."""

    async def quiet(_: Exception) -> None:
        return None

    nc = await nats.connect(
        servers=settings.nats_servers,
        connect_timeout=timeout_s,
        allow_reconnect=False,
        max_reconnect_attempts=1,
        reconnect_time_wait=0.05,
        error_cb=quiet,
    )
    try:
        js = nc.jetstream(timeout=timeout_s)
        try:
            last = await js.get_last_msg(settings.stream_name, f"weerbaar.{service}.>")
        except NotFoundError:
            return None
    finally:
        await nc.close()
    headers = last.headers or {}
    header = PositionHeader.read(headers.get(POSITION_HEADER))
    msg_id = headers.get(MSG_ID_HEADER)
    if header is None or msg_id is None:
        return None
    return (header.notification_id, header.index), msg_id


async def tail_check(app: ServiceApplication, settings: Settings, timeout_s: float) -> Tail | None:
    """Is the service's last message on the stream an event its store holds at that position?
    None when there is nothing to judge (no message of the relay on the stream). One NATS
    request and one query, each bounded by ``timeout_s``."""
    last = await last_relay_message(settings, app.service, timeout_s)
    if last is None:
        return None
    position, msg_id = last

    def lookup() -> tuple[bool, int]:
        app.datastore.pool.open(wait=False)
        with app.datastore.pool.connection(timeout=timeout_s) as conn:
            return store_holds(conn, app.service, position, msg_id)

    held, store_last = await asyncio.to_thread(lookup)
    return Tail(position, held, store_last)


class _StreamTailCollector(Collector):
    """``weerbaar_stream_ahead_of_store``, judged at scrape time (absent when unknown)."""

    def __init__(self, service: str, settings: Settings, timeout_s: float) -> None:
        self.service = service
        self.settings = settings
        self.timeout_s = timeout_s
        self.app: weakref.ReferenceType[ServiceApplication] | None = None

    def collect(self) -> Iterable[GaugeMetricFamily]:
        app = self.app() if self.app is not None else None
        if app is None:
            return []
        try:
            tail = _run_bounded(
                lambda: tail_check(app, self.settings, self.timeout_s), 2 * self.timeout_s
            )
        except Exception as exc:  # a server is down: the scrape still answers
            log.warning(
                "stream check unavailable",
                extra={"service": self.service, "error": type(exc).__name__},
            )
            return []
        gauge = GaugeMetricFamily(
            STREAM_AHEAD,
            "1 when the service's last message on the stream is not an event its event store "
            "holds at that position (the stream is ahead of the database, e.g. after a restore):"
            " see `weerbaar reconcile`.",
            labels=["service"],
        )
        gauge.add_metric([self.service], 0 if tail is None or tail.held else 1)
        return [gauge]

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # registering must not ask the servers


def _run_bounded(make: Callable[[], Any], timeout_s: float) -> Any:
    """Run a coroutine on an event loop of its own thread (a scrape may come from a thread
    with a running loop, or none), at most ``timeout_s``."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = asyncio.run(asyncio.wait_for(make(), timeout_s))
        except BaseException as exc:  # handed to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="stream-tail-check", daemon=True)
    thread.start()
    thread.join(timeout_s + 0.5)
    if "error" in outcome:
        raise outcome["error"]
    if "value" not in outcome:
        raise TimeoutError("stream check did not end in time")
    return outcome["value"]


_collectors: dict[str, _StreamTailCollector] = {}
_collectors_lock = threading.Lock()


def watch_stream_tail(app: ServiceApplication, settings: Settings, timeout_s: float) -> None:
    """Expose ``weerbaar_stream_ahead_of_store`` for ``app``'s service (the latest wins)."""
    with _collectors_lock:
        collector = _collectors.get(app.service)
        new = collector is None
        if collector is None:
            collector = _collectors[app.service] = _StreamTailCollector(
                app.service, settings, timeout_s
            )
    collector.settings = settings
    collector.app = weakref.ref(app)
    if new:
        metrics_for(app.service).registry.register(collector)


# --- the command --------------------------------------------------------------------------------


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
