"""A service process that starts while its tables are being written neither waits nor deadlocks.

The long crash run found it: a restarted process ran its ``CREATE INDEX IF NOT EXISTS``
statements in one transaction; each locks its table (SHARE) even when the index exists, so the
start deadlocked with the live writers of those tables, and the process died.
"""

from __future__ import annotations

import threading
import uuid

import psycopg
from psycopg.sql import SQL, Identifier

from services.scheduling.application import Scheduling
from services.scheduling.bootstrap import application
from services.scheduling.domain.calendar import WorkingDayCalendar
from services.scheduling.projections import SqlReadModel
from shared.platform.settings import Settings


def _start(settings: Settings) -> None:
    application(settings.eventsourcing_env("scheduling"), WorkingDayCalendar()).close()


def test_a_restart_takes_no_lock_on_tables_that_are_being_written(settings: Settings) -> None:
    _start(settings)  # the first process creates the tables and records that it did
    outcome: dict[str, BaseException | None] = {}
    done = threading.Event()

    def restart() -> None:
        try:
            _start(settings)
            outcome["error"] = None
        except BaseException as exc:  # reported below, not swallowed
            outcome["error"] = exc
        done.set()

    with psycopg.connect(settings.database_url) as writer:
        # A live writer of both read tables, its transaction still open (ROW EXCLUSIVE locks).
        writer.execute(
            "INSERT INTO scheduling.contact_deadlines VALUES (%s, now(), 'open')", (uuid.uuid4(),)
        )
        writer.execute(
            "INSERT INTO scheduling.afspraken VALUES (%s, %s, 'toelichting', 'gepland')",
            (uuid.uuid4(), uuid.uuid4()),
        )
        thread = threading.Thread(target=restart, daemon=True)
        thread.start()
        started = done.wait(timeout=30)
        writer.rollback()
    thread.join(timeout=30)
    assert started, "the restart waited for the writers of its tables"
    assert outcome["error"] is None, outcome["error"]


def test_a_new_statement_is_applied_once_and_recorded(settings: Settings) -> None:
    _start(settings)

    class Later(Scheduling):
        ddl = (*Scheduling.ddl, "CREATE TABLE IF NOT EXISTS {schema}.later (x int)")

    Later(
        settings.eventsourcing_env("scheduling"), WorkingDayCalendar(), read_model=SqlReadModel()
    ).close()
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT to_regclass('scheduling.later')").fetchone() != (None,)
        digests = conn.execute(
            SQL("SELECT count(*) FROM {}").format(Identifier("scheduling", "ddl_applied"))
        ).fetchone()
        # Dropped behind the service's back, it stays dropped: the recorded set is not run again.
        conn.execute("DROP TABLE scheduling.later")
    assert digests == (2,)
    Later(
        settings.eventsourcing_env("scheduling"), WorkingDayCalendar(), read_model=SqlReadModel()
    ).close()
    with psycopg.connect(settings.database_url) as conn:
        assert conn.execute("SELECT to_regclass('scheduling.later')").fetchone() == (None,)
