"""Rebuild the NATS stream from PostgreSQL after losing it: ``weerbaar stream-rebuild``.

PostgreSQL is the system of record and the stream is derived from it, so a lost stream (a deleted
store, a broken cluster, a stream deleted by mistake) is rebuilt, not restored:

1. the streams are provisioned again (created empty when missing);
2. every service whose relay is running is asked to resync: a ``resync:<token>`` notification on the
   channel its relay listens on. The relay re-reads where the stream ends for its service (nothing,
   after a loss), publishes its whole log again in order, with the same CloudEvent ids, and
   confirms the token in ``<service>.relay_position`` once it has caught up;
3. a service whose relay is not running needs nothing: a relay resumes from what the stream holds
   when it starts, so it rebuilds its part then. The command says which ones those are.

Consumers recreate their durable consumers on the new stream and receive everything again; each
effect's inbox row makes the repeat a no-op (no second e-mail, no second projection row).
Messages on the dead-letter stream are not in PostgreSQL and are not rebuilt.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import nats
import psycopg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from psycopg.sql import SQL, Identifier

from shared.relay import RESYNC_PREFIX, advisory_key, ensure_position_table, relay_channel
from shared.settings import SERVICES, Settings, load_settings
from shared.stream import provision

_Conn = psycopg.AsyncConnection[tuple[object, ...]]


@dataclass
class RebuildReport:
    """What the rebuild did, per service."""

    resynced: list[str] = field(default_factory=list)
    #: Services whose relay was not running: they rebuild their part when they start.
    not_running: list[str] = field(default_factory=list)
    #: Services whose relay did not confirm within the timeout.
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


async def _relay_is_running(conn: _Conn, service: str) -> bool:
    """A running relay holds its advisory lock; if we can take it, no relay is running."""
    key = advisory_key(f"weerbaar-relay:{service}")
    row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))).fetchone()
    if row is not None and row[0]:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
        return False
    return True


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


async def count_on_stream(settings: Settings, subject: str) -> int:
    """How many messages the stream holds on ``subject`` (a filter), via a throwaway consumer."""
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
        await nc.close()


async def rebuild(
    settings: Settings,
    services: Sequence[str] = SERVICES,
    *,
    timeout_s: float = 600.0,
    say: Callable[[str], None] = lambda line: None,
) -> RebuildReport:
    """Provision the streams, ask every running relay to resync, wait until each confirms."""
    report = RebuildReport()
    for info in await provision(settings):
        say(f"stream {info.config.name}: {info.state.messages} messages before the rebuild")
    token = uuid.uuid4().hex
    async with await psycopg.AsyncConnection.connect(
        settings.database_url, autocommit=True
    ) as conn:
        asked = []
        for service in services:
            if not await _has_schema(conn, service):
                say(f"{service}: no event store yet, nothing to publish")
                continue
            await ensure_position_table(conn, service)
            if not await _relay_is_running(conn, service):
                report.not_running.append(service)
                say(f"{service}: relay not running; it rebuilds its part when the service starts")
                continue
            await conn.execute(
                SQL("SELECT pg_notify(%s, %s)"),
                (relay_channel(service), RESYNC_PREFIX + token),
            )
            asked.append(service)
            say(f"{service}: relay asked to resync")
        deadline = time.monotonic() + timeout_s
        while asked:
            for service in list(asked):
                if await _confirmed(conn, service) == token:
                    asked.remove(service)
                    report.resynced.append(service)
                    say(f"{service}: caught up")
            if asked and time.monotonic() > deadline:
                report.timed_out.extend(asked)
                say(f"not confirmed within {timeout_s:.0f}s: {', '.join(asked)}")
                break
            if asked:
                await asyncio.sleep(0.2)
    for service in services:
        report.on_stream[service] = await count_on_stream(settings, f"weerbaar.{service}.>")
        say(f"{service}: {report.on_stream[service]} messages on the stream")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """``weerbaar stream-rebuild [--timeout S]``."""
    parser = argparse.ArgumentParser(prog="weerbaar stream-rebuild", description=__doc__)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait per run")
    args = parser.parse_args(argv)
    report = asyncio.run(
        rebuild(load_settings(), timeout_s=args.timeout, say=lambda line: print(line, flush=True))
    )
    if not report.complete:
        print(
            "stream-rebuild: not every relay confirmed; see their logs and run again",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
