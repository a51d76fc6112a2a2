"""The raw limits of the servers: what PostgreSQL and NATS do without the product in between.

Each function measures one limit for ``seconds`` (or ``count`` items) and returns a rate. They
run against the same servers as the product measurements of ``bench.system``, in the same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import nats
import psycopg
from psycopg import sql

RAW_SCHEMA = "bench_raw"
RAW_EVENTS = sql.Identifier(RAW_SCHEMA, "raw_events")
RAW_PLAIN = sql.Identifier(RAW_SCHEMA, "plain_rows")


def prepare(url: str) -> None:
    """A table shaped like an event store's (the eventsourcing library's DDL) and a plain one."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(RAW_SCHEMA)))
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(RAW_SCHEMA)))
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (originator_id uuid NOT NULL, originator_version bigint NOT NULL,"
                " topic text, state bytea, notification_id bigserial,"
                " PRIMARY KEY (originator_id, originator_version))"
            ).format(RAW_EVENTS)
        )
        conn.execute(sql.SQL("CREATE UNIQUE INDEX ON {} (notification_id ASC)").format(RAW_EVENTS))
        conn.execute(
            sql.SQL("CREATE TABLE {} (id uuid PRIMARY KEY, body bytea NOT NULL)").format(RAW_PLAIN)
        )


def _on_connections(
    url: str,
    connections: int,
    seconds: float,
    work: Callable[[psycopg.Connection[Any]], None],
    *,
    autocommit: bool = False,
) -> float:
    """Run ``work`` (one commit) in a loop on each connection for ``seconds``: commits/s."""
    counts = [0] * connections
    start = threading.Barrier(connections + 1)
    deadline: list[float] = []

    def loop(n: int) -> None:
        with psycopg.connect(url, autocommit=autocommit) as conn:
            start.wait()
            while time.perf_counter() < deadline[0]:
                work(conn)
                counts[n] += 1

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline.append(began + seconds)
    start.wait()
    for thread in threads:
        thread.join(seconds + 60)
    return sum(counts) / (time.perf_counter() - began)


def append_rate(url: str, connections: int, seconds: float, state_bytes: int) -> float:
    """The event store's own append, as the library sends it: lock, notify, insert, commit."""
    state = os.urandom(state_bytes)
    lock = sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(RAW_EVENTS)
    notify = sql.SQL("NOTIFY {}").format(sql.Identifier("raw_events"))
    insert = sql.SQL(
        "INSERT INTO {} (originator_id, originator_version, topic, state)"
        " VALUES (%s, 1, 'bench:Raw', %s) RETURNING notification_id"
    ).format(RAW_EVENTS)

    def work(conn: psycopg.Connection[Any]) -> None:
        # Pipelined in one transaction, as the library sends it: one round trip to the commit.
        with conn.pipeline(), conn.transaction(), conn.cursor() as curs:
            curs.execute("SET LOCAL lock_timeout = '5s'", prepare=True)
            curs.execute(lock, prepare=True)
            curs.execute(notify)
            curs.execute(insert, (uuid.uuid4(), state), prepare=True)

    return _on_connections(url, connections, seconds, work)


def plain_insert_rate(url: str, connections: int, seconds: float, state_bytes: int) -> float:
    """Single-row INSERT commits: what PostgreSQL commits without the event store's lock."""
    body = os.urandom(state_bytes)
    insert = sql.SQL("INSERT INTO {} (id, body) VALUES (%s, %s)").format(RAW_PLAIN)

    def work(conn: psycopg.Connection[Any]) -> None:
        conn.execute(insert, (uuid.uuid4(), body), prepare=True)  # autocommit: one round trip

    return _on_connections(url, connections, seconds, work, autocommit=True)


def read_decode_rate(url: str, query: sql.SQL | sql.Composed) -> tuple[int, float]:
    """Reading rows of JSON text with psycopg and decoding each: (rows, rows per second)."""
    began = time.perf_counter()
    rows = 0
    with psycopg.connect(url) as conn, conn.cursor(name="bench_read") as curs:
        curs.itersize = 2000
        curs.execute(query)
        for (text,) in curs:
            json.loads(text)
            rows += 1
    return rows, rows / (time.perf_counter() - began)


async def publish_rate(
    nats_url: str, stream: str, count: int, payload_bytes: int, window: int = 500
) -> float:
    """nats-py ``publish_async`` with a unique ``Nats-Msg-Id``, acks awaited per window."""
    payload = os.urandom(payload_bytes // 2).hex().encode()[:payload_bytes]
    nc = await nats.connect(servers=[nats_url], name="bench-raw-publish")
    try:
        js = nc.jetstream(timeout=30)
        began = time.perf_counter()
        sent = 0
        while sent < count:
            batch = min(window, count - sent)
            futures = [
                await js.publish_async(
                    f"weerbaar.bench.Raw.{sent + i}",
                    payload,
                    headers={"Nats-Msg-Id": str(uuid.uuid4())},
                    stream=stream,
                )
                for i in range(batch)
            ]
            await asyncio.wait_for(asyncio.gather(*futures), timeout=60)
            sent += batch
        return count / (time.perf_counter() - began)
    finally:
        await nc.close()
