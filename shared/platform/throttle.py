"""Counting windows in PostgreSQL: limits per source or per address, and aggregated refusals.

A ``Throttle`` counts what happens per key (a source address, a keyed hash of an e-mail address,
a dossier) in fixed windows. The count is one upsert in the service's own schema, so every
process and replica of a service sees the same count and a restart forgets nothing. What is
counted is never the caller's text itself: keys are made by the caller of ``count`` (a pseudonym
for anything personal, see ``shared.platform.access``).
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from fastapi import Request
from psycopg.sql import SQL, Identifier

from shared.platform.errors import TeVaak
from shared.platform.eventstore import ServiceApplication
from shared.platform.unitofwork import Statement

THROTTLE_DDL: Final = (
    "CREATE TABLE IF NOT EXISTS {schema}.throttle ("
    " soort text NOT NULL, sleutel text NOT NULL, venster_start timestamptz NOT NULL,"
    " aantal bigint NOT NULL, vastgelegd bigint NOT NULL DEFAULT 0,"
    " PRIMARY KEY (soort, sleutel, venster_start))"
)


@dataclass(frozen=True)
class Window:
    """One key's window: when it started and ends, and how many it counted so far."""

    start: datetime
    end: datetime
    count: int

    def retry_after_s(self, now: datetime) -> int:
        """Whole seconds until the window ends (at least 1)."""
        return max(1, math.ceil((self.end - now).total_seconds()))


@dataclass(frozen=True)
class EndedWindow:
    """A window that has ended with attempts not yet on record."""

    key: str
    start: datetime
    count: int
    recorded: int  # of ``count``, how many are on record already


def window_start(now: datetime, window_s: float) -> datetime:
    """The start of the fixed window ``now`` falls in (windows are aligned to the epoch)."""
    epoch = now.timestamp()
    return datetime.fromtimestamp(epoch - epoch % window_s, UTC)


class Throttle:
    """Fixed-window counters of one kind (``soort``) in one service's schema."""

    def __init__(self, app: ServiceApplication, soort: str, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError("a window lasts longer than 0 s")
        self.app = app
        self.soort = soort
        self.window_s = window_s
        self.table = Identifier(app.service, "throttle")
        self._upsert = SQL(
            "INSERT INTO {t} AS t (soort, sleutel, venster_start, aantal) VALUES (%s, %s, %s, 1)"
            " ON CONFLICT (soort, sleutel, venster_start) DO UPDATE SET aantal = t.aantal + 1"
            " RETURNING aantal"
        ).format(t=self.table)

    def count(self, key: str, now: datetime) -> Window:
        """Count one more for ``key`` in the window of ``now``; the window with its count."""
        start = window_start(now, self.window_s)
        with self.app.datastore.transaction(commit=True) as curs:
            curs.execute(self._upsert, (self.soort, key, start), prepare=True)
            row = curs.fetchone()
        assert row is not None
        return Window(start, start + timedelta(seconds=self.window_s), int(row["aantal"]))

    def limit(self, key: str, limit: int, now: datetime, detail: str) -> Window:
        """Count one more; raise 429 (``Retry-After`` = the window's end) once over ``limit``.
        A limit of 0 counts nothing and limits nothing (a deployment's choice)."""
        if limit <= 0:
            return Window(now, now, 0)
        window = self.count(key, now)
        if window.count > limit:
            raise TeVaak(detail, retry_after_s=window.retry_after_s(now))
        return window

    def ended(self, now: datetime, batch: int = 100) -> list[EndedWindow]:
        """Windows that have ended with more counted than recorded, oldest first."""
        with self.app.datastore.transaction(commit=False) as curs:
            curs.execute(
                SQL(
                    "SELECT sleutel, venster_start, aantal, vastgelegd FROM {} WHERE soort = %s"
                    " AND venster_start <= %s AND aantal > vastgelegd"
                    " ORDER BY venster_start LIMIT %s"
                ).format(self.table),
                (self.soort, now - timedelta(seconds=self.window_s), batch),
            )
            return [
                EndedWindow(row["sleutel"], row["venster_start"], row["aantal"], row["vastgelegd"])
                for row in curs.fetchall()
            ]

    def recorded_statement(self, key: str, start: datetime, count: int) -> Statement:
        """The side statement that marks ``count`` of a window as recorded (with its event)."""
        return Statement(
            SQL(
                "UPDATE {} SET vastgelegd = %s WHERE soort = %s AND sleutel = %s"
                " AND venster_start = %s"
            ).format(self.table),
            (count, self.soort, key, start),
        )

    def prune(self, now: datetime, keep_s: float = 7 * 86400) -> None:
        """Delete windows that ended long ago and have nothing left to record."""
        with self.app.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "DELETE FROM {} WHERE soort = %s AND venster_start < %s AND aantal = vastgelegd"
                ).format(self.table),
                (self.soort, now - timedelta(seconds=self.window_s + keep_s)),
            )


def client_source(request: Request, trusted_proxies: Sequence[str] = ()) -> str:
    """The address a request came from: the peer, or, when the peer is a trusted proxy, the
    address the proxy put last in ``X-Forwarded-For`` (a client can prepend anything there, so
    only the proxy's own entry counts). A value that is not an IP address counts as the peer."""
    peer = request.client.host if request.client is not None else "onbekend"
    if peer not in trusted_proxies:
        return peer
    forwarded = request.headers.get("X-Forwarded-For", "")
    last = forwarded.rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return peer
