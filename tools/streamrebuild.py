"""Rebuild the NATS stream from PostgreSQL after losing it: ``weerbaar stream-rebuild``.

PostgreSQL is the system of record and the stream is derived from it, so a lost stream (a deleted
store, a broken cluster, a stream deleted by mistake) is rebuilt, not restored:

1. the streams are provisioned again (created empty when missing);
2. every service is asked to resync: the request is recorded in ``<service>.relay_position``
   (``resync_requested``, so a relay between connections or on standby finds it when it takes
   over) and sent as a ``resync:<token>`` notification on the channel its relay listens on. The
   relay re-reads where the stream ends for its service (nothing, after a loss), publishes its
   whole log again in order, with the same CloudEvent ids, and confirms the token in
   ``<service>.relay_position`` once it has caught up;
3. a relay is running when another session holds its advisory lock (read from ``pg_locks``) at
   any moment of a short grace period: a relay restarting after an outage takes it again within
   a second or two. Every running relay must confirm within ``--timeout``, else the command fails;
4. a service whose relay is not running needs nothing: a relay resumes from what the stream holds
   when it starts, so it rebuilds its part then. The command says which ones those are.

The whole command is bounded by ``--timeout``: NATS and PostgreSQL are connected to with a
timeout and without reconnecting, and an unreachable server ends it with one line and exit code 1.

Consumers recreate their durable consumers on the new stream and receive everything again; each
effect's inbox row makes the repeat a no-op (no second e-mail, no second projection row).
Messages on the dead-letter stream are not in PostgreSQL and are not rebuilt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import nats
import psycopg
from nats.aio.client import Client as NatsClient
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from psycopg.sql import SQL, Identifier

from shared.platform.relay import (
    RESYNC_PREFIX,
    ensure_position_table,
    relay_channel,
    relay_lock_probe,
)
from shared.platform.settings import SERVICES, Settings, load_settings
from shared.platform.stream import CONNECT_TIMEOUT_S, Unreachable, connect_nats, provision

log = logging.getLogger(__name__)

_Conn = psycopg.AsyncConnection[tuple[object, ...]]

#: How long a relay that is not holding its lock right now (restarting after an outage, a
#: standby taking over) has to take it again before the command counts it as not running.
RUNNING_GRACE_S = 5.0


@dataclass
class RebuildReport:
    """What the rebuild did, per service."""

    resynced: list[str] = field(default_factory=list)
    #: Services whose relay was not running: they rebuild their part when they start.
    not_running: list[str] = field(default_factory=list)
    #: Services whose relay was running and did not confirm within the timeout.
    timed_out: list[str] = field(default_factory=list)
    on_stream: dict[str, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Every running relay confirmed it has caught up."""
        return not self.timed_out


async def _has_schema(conn: _Conn, service: str) -> bool:
    row = await (
        await conn.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (service,)
        )
    ).fetchone()
    return row is not None


async def relay_is_running(conn: _Conn, service: str) -> bool:
    """Whether another session holds the relay lock of ``service`` right now."""
    query, params = relay_lock_probe(service)
    row = await (await conn.execute(query, params)).fetchone()
    return bool(row is not None and row[0])


async def _confirmed(conn: _Conn, service: str) -> str | None:
    row = await (
        await conn.execute(
            SQL("SELECT resync_token FROM {} WHERE service = %s").format(
                Identifier(service, "relay_position")
            ),
            (service,),
        )
    ).fetchone()
    return None if row is None else (str(row[0]) if row[0] is not None else None)


async def _request(conn: _Conn, service: str, token: str) -> None:
    """Record the request (a relay that starts listening later finds it), then notify."""
    await conn.execute(
        SQL(
            "INSERT INTO {} (service, notification_id, next_index, resync_requested) "
            "VALUES (%s, 0, 0, %s) ON CONFLICT (service) DO UPDATE SET "
            "resync_requested = EXCLUDED.resync_requested"
        ).format(Identifier(service, "relay_position")),
        (service, token),
    )
    await conn.execute(
        SQL("SELECT pg_notify(%s, %s)"), (relay_channel(service), RESYNC_PREFIX + token)
    )


async def count_on_stream(settings: Settings, subject: str, nc: NatsClient | None = None) -> int:
    """How many messages the stream holds on ``subject`` (a filter), via a throwaway consumer."""
    own = nc is None
    if nc is None:
        nc = await nats.connect(servers=settings.nats_servers, name="weerbaar-stream-count")
    try:
        js = nc.jetstream(timeout=10)
        info = await js.add_consumer(
            settings.stream_name,
            ConsumerConfig(
                filter_subject=subject,
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.NONE,
                inactive_threshold=30.0,
            ),
        )
        try:
            return int(info.num_pending or 0)
        finally:
            await js.delete_consumer(settings.stream_name, info.name)
    finally:
        if own:
            await nc.close()


async def rebuild(
    settings: Settings,
    services: Sequence[str] = SERVICES,
    *,
    timeout_s: float = 600.0,
    running_grace_s: float = RUNNING_GRACE_S,
    say: Callable[[str], None] = lambda line: None,
    delete_first: bool = False,
) -> RebuildReport:
    """Provision the streams, ask every relay to resync, wait until each running one confirms.

    ``delete_first`` deletes the ``WEERBAAR`` stream before: for a stream that holds events the
    stores lack (``weerbaar reconcile``: extra) or has a gap behind a relay (missing); every relay
    then publishes its whole log again, under the same ids.

    Bounded by ``timeout_s`` as a whole; raises ``Unreachable`` when NATS or PostgreSQL does not
    answer, ``TimeoutError`` when the servers answer too slowly.
    """
    deadline = time.monotonic() + timeout_s

    def left() -> float:
        return max(0.1, deadline - time.monotonic())

    async with asyncio.timeout(timeout_s):
        nc = await connect_nats(settings, "weerbaar-stream-rebuild", min(CONNECT_TIMEOUT_S, left()))
        try:
            if delete_first:
                with contextlib.suppress(NotFoundError):
                    await nc.jetstream().delete_stream(settings.stream_name)
                say(f"stream {settings.stream_name} deleted")
            return await _rebuild(settings, services, nc, deadline, running_grace_s, say)
        finally:
            await nc.close()


async def _rebuild(
    settings: Settings,
    services: Sequence[str],
    nc: NatsClient,
    deadline: float,
    running_grace_s: float,
    say: Callable[[str], None],
) -> RebuildReport:
    report = RebuildReport()
    for info in await provision(settings, nc):
        say(f"stream {info.config.name}: {info.state.messages} messages before the rebuild")
    token = uuid.uuid4().hex
    try:
        conn = await psycopg.AsyncConnection.connect(
            settings.database_url,
            autocommit=True,
            connect_timeout=max(1, int(min(CONNECT_TIMEOUT_S, deadline - time.monotonic()))),
        )
    except psycopg.OperationalError as exc:
        raise Unreachable(f"PostgreSQL not reachable: {type(exc).__name__}") from None
    async with conn:
        asked = []
        for service in services:
            if not await _has_schema(conn, service):
                say(f"{service}: no event store yet, nothing to publish")
                continue
            await ensure_position_table(conn, service)
            await _request(conn, service, token)
            asked.append(service)
        await _await_confirmations(conn, asked, token, report, deadline, running_grace_s, say)
    for service in services:
        report.on_stream[service] = await count_on_stream(settings, f"weerbaar.{service}.>", nc)
        say(f"{service}: {report.on_stream[service]} messages on the stream")
    return report


async def _await_confirmations(
    conn: _Conn,
    asked: list[str],
    token: str,
    report: RebuildReport,
    deadline: float,
    running_grace_s: float,
    say: Callable[[str], None],
) -> None:
    """Each asked relay ends up confirmed, or seen running (then it must confirm before the
    deadline), or, once the grace period passed without seeing it, not running."""
    running: set[str] = set()
    # Two seconds are left at the end to count what is on the stream.
    wait_ends = deadline - 2.0
    grace_ends = min(time.monotonic() + running_grace_s, wait_ends)
    while asked:
        for service in list(asked):
            if await _confirmed(conn, service) == token:
                asked.remove(service)
                report.resynced.append(service)
                say(f"{service}: caught up")
            elif service not in running and await relay_is_running(conn, service):
                running.add(service)
                say(f"{service}: relay running, asked to resync")
        if time.monotonic() >= grace_ends:
            for service in [s for s in asked if s not in running]:
                asked.remove(service)
                report.not_running.append(service)
                say(f"{service}: relay not running; it rebuilds its part when the service starts")
        if asked and time.monotonic() >= wait_ends:
            report.timed_out.extend(asked)
            say(f"not confirmed in time: {', '.join(asked)}")
            break
        if asked:
            await asyncio.sleep(0.2)


def main(argv: Sequence[str] | None = None) -> int:
    """``weerbaar stream-rebuild [--timeout S]``: 0 when every running relay confirmed, else 1."""
    parser = argparse.ArgumentParser(prog="weerbaar stream-rebuild", description=__doc__)
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds the whole command may take"
    )
    parser.add_argument(
        "--delete-first",
        action="store_true",
        help="delete the stream first (it holds events the stores lack, or has a gap)",
    )
    args = parser.parse_args(argv)
    try:
        report = asyncio.run(
            rebuild(
                load_settings(),
                timeout_s=args.timeout,
                say=lambda line: print(line, flush=True),
                delete_first=args.delete_first,
            )
        )
    except Unreachable as exc:
        print(f"stream-rebuild: {exc}; no relay was asked to resync", file=sys.stderr)
        return 1
    except TimeoutError:
        print(
            f"stream-rebuild: not done within {args.timeout:.0f}s (a server answered too slowly);"
            " run again",
            file=sys.stderr,
        )
        return 1
    except (OSError, nats.errors.Error, psycopg.Error) as exc:
        # A server went away during the command: the next run starts over where it stands.
        print(
            f"stream-rebuild: lost a server during the rebuild ({type(exc).__name__}); run again",
            file=sys.stderr,
        )
        return 1
    if not report.complete:
        print(
            "stream-rebuild: the running relay of "
            f"{', '.join(report.timed_out)} did not confirm; see its log and run again",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
