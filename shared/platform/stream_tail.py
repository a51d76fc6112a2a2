"""Is the stream ahead of the event store? The cheap form of ``weerbaar reconcile``
(``tools/reconcile.py``): the readiness detail ``stream`` and the gauge
``weerbaar_stream_ahead_of_store``.

PostgreSQL is the system of record and the stream is derived from it, so the stream must never
announce an event the database does not hold; after a restore of the database from an older
backup without deleting the stream, it does. ``tail_check`` asks whether the service's last
message on the stream is an event its store holds at that position: one NATS request and one
query, ids and positions only (never a payload).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import nats
import psycopg
from nats.js.errors import NotFoundError
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from psycopg.rows import tuple_row

from shared.platform.relay import (
    MSG_ID_HEADER,
    POSITION_HEADER,
    PositionHeader,
    tail_held,
    tail_query,
)
from shared.platform.settings import Settings
from shared.platform.telemetry import metrics_for

if TYPE_CHECKING:
    from shared.platform.eventstore import ServiceApplication

log = logging.getLogger(__name__)

#: The gauge of the cheap check (read at scrape time).
STREAM_AHEAD: Final = "weerbaar_stream_ahead_of_store"

Position = tuple[int, int]  # (notification_id, index), ordered as the relay publishes


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
    and the log's last notification id (the relay's own check, ``tail_query``/``tail_held``)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        row = cur.execute(tail_query(service), (position[0],)).fetchone()
    assert row is not None  # one row, whether the event is there or not
    return tail_held(service, row, position[1], msg_id), int(row[0])


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
