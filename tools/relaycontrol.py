"""``weerbaar relay status`` and ``weerbaar relay resume``: the operator's view of the relays.

A relay that meets a stored event it cannot publish (a defect of a release: every event is
checked before it is committed) stops at it, keeps the rest of its process running and records
where it stopped in ``<service>.relay_position``. ``status`` shows, per service, what the relay
has published, whether one is running, and where and why it stopped. ``resume`` tells a stopped
relay to try again (after a release that can publish the event is deployed; restarting the
service does the same) and waits for its answer: exit 0 when it went past the event, 1 when it
stopped there again or did not answer in time.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier

from shared.platform.relay import RESUME_PREFIX, relay_channel, relay_lock_probe
from shared.platform.settings import SERVICES, load_settings


@dataclass(frozen=True)
class RelayView:
    """One service's relay as ``relay_position`` and its lock show it."""

    service: str
    running: bool
    last_id: int
    published_id: int | None
    stopped_at: int | None
    stopped_type: str | None
    stopped_reason: str | None
    stopped_since: str | None


def read(conn: psycopg.Connection[dict[str, object]], service: str) -> RelayView | None:
    """The relay of ``service``, or None when the service has no schema in this database."""
    exists = conn.execute(
        "SELECT to_regclass(%s) AS events, to_regclass(%s) AS position",
        (f"{service}.{service}_events", f"{service}.relay_position"),
    ).fetchone()
    if exists is None or exists["events"] is None:
        return None
    last = conn.execute(
        SQL("SELECT coalesce(max(notification_id), 0) AS last FROM {}").format(
            Identifier(service, f"{service}_events")
        )
    ).fetchone()
    row = None
    if exists["position"] is not None:
        row = conn.execute(
            SQL("SELECT notification_id, to_jsonb(p) AS rest FROM {} p WHERE service = %s").format(
                Identifier(service, "relay_position")
            ),
            (service,),
        ).fetchone()
    rest = row["rest"] if row is not None and isinstance(row["rest"], dict) else {}
    return RelayView(
        service=service,
        running=_locked(conn, service),
        last_id=int(str(last["last"])) if last else 0,
        published_id=int(str(row["notification_id"])) if row is not None else None,
        stopped_at=rest.get("gestopt_bij"),
        stopped_type=rest.get("gestopt_type"),
        stopped_reason=rest.get("gestopt_reden"),
        stopped_since=rest.get("gestopt_sinds"),
    )


def _locked(conn: psycopg.Connection[dict[str, object]], service: str) -> bool:
    """A running relay holds its advisory lock (seen in ``pg_locks``, not by taking it)."""
    query, params = relay_lock_probe(service)
    found = conn.execute(query + " AS held", params).fetchone()
    return bool(found is not None and found["held"])


def status(conninfo: str, out: Callable[[str], None] = print) -> int:
    """Print every relay's state; 0 when none is stopped at an event, else 1."""
    stopped = 0
    with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row) as conn:
        for service in SERVICES:
            view = read(conn, service)
            if view is None:
                out(f"{service}: geen gebeurtenissen")
                continue
            published = "-" if view.published_id is None else str(view.published_id)
            state = "draait" if view.running else "draait niet"
            out(f"{service}: {state}, gepubliceerd t/m {published} van {view.last_id}")
            if view.stopped_at is not None:
                stopped += 1
                out(
                    f"  GESTOPT bij gebeurtenis {view.stopped_at} ({view.stopped_type}) sinds"
                    f" {view.stopped_since}: {view.stopped_reason}"
                )
                out(
                    "  Wat te doen: zet een release neer die deze gebeurtenis kan publiceren, dan"
                    f" `weerbaar relay resume {service}` (of herstart de dienst)."
                )
    return 1 if stopped else 0


def resume(
    conninfo: str, service: str, timeout_s: float, out: Callable[[str], None] = print
) -> int:
    """Tell the stopped relay of ``service`` to try again; 0 when it went past the event."""
    with psycopg.connect(conninfo, autocommit=True, row_factory=dict_row) as conn:
        before = read(conn, service)
        if before is None or before.stopped_at is None:
            out(f"{service}: de relay staat niet stil; er is niets te hervatten")
            return 0
        if not before.running:
            out(f"{service}: er draait geen relay; start de dienst, dan probeert die het opnieuw")
            return 1
        conn.execute(
            "SELECT pg_notify(%s, %s)", (relay_channel(service), RESUME_PREFIX + uuid.uuid4().hex)
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            now = read(conn, service)
            assert now is not None
            if now.published_id is not None and now.published_id >= before.stopped_at:
                out(f"{service}: hervat; gepubliceerd t/m {now.published_id}")
                return 0
            # A relay that stops again records the new moment it stopped.
            if now.stopped_at is not None and now.stopped_since != before.stopped_since:
                out(f"{service}: opnieuw gestopt bij {now.stopped_at}: {now.stopped_reason}")
                return 1
            time.sleep(0.2)  # polling the relay's own record of its progress
    out(f"{service}: geen antwoord van de relay binnen {timeout_s:.0f} s")
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """``weerbaar relay status|resume SERVICE``."""
    parser = argparse.ArgumentParser(prog="weerbaar relay")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("status", help="where every relay is, and where one stopped")
    again = sub.add_parser("resume", help="let a relay stopped at an event try it again")
    again.add_argument("service", choices=SERVICES)
    again.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.action == "status":
        return status(settings.database_url)
    return resume(settings.database_url, args.service, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
