"""Scheduling's read model: the contact deadlines and the appointments, rows of one planning each.

``PLANNING`` declares the tables (DDL) and ``rows``, the one function from a planning to its rows:
the use cases write them through ``statements`` in the events' transaction, ``weerbaar replay
--projection scheduling`` rebuilds them from the log. The application is given a read model
(``SqlReadModel`` on PostgreSQL, ``MemoryReadModel`` on the in-memory store) and never imports
this module.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from uuid import UUID

from psycopg.sql import SQL, Identifier

from services.scheduling.domain import Planning, PlanningGeopend, project
from shared.platform.eventstore import ServiceApplication
from shared.platform.ports import Statement
from shared.platform.projection import AggregateProjection, Table

DEADLINES = Identifier("scheduling", "contact_deadlines")
AFSPRAKEN = Identifier("scheduling", "afspraken")


def planning_rows(planning: Planning) -> dict[str, list[tuple[object, ...]]]:
    """What the read tables hold for one planning."""
    return {
        "contact_deadlines": [(planning.id, planning.deadline, planning.contact_status)],
        "afspraken": [
            (a.afspraak_id, planning.id, a.soort, a.status, a.adviseur_id, a.gepland_op)
            for a in planning.afspraken
        ],
    }


#: The read tables: the contact deadlines (for the escalation worker) and afspraak_id → dossier
#: (so the /afspraken/{id} routes find the planning to load), with the adviseur's pseudonym and
#: the start (so an adviseur's own appointments are one indexed query). Rebuilt by ``weerbaar
#: replay --projection scheduling``; the two later columns are added to an older table, whose
#: rows get them at the next change of their planning or by that replay.
PLANNING = AggregateProjection[Planning](
    service="scheduling",
    tables=(
        Table(
            "contact_deadlines",
            columns=("aanvraag_id", "deadline", "status"),
            key=("aanvraag_id",),
            owner="aanvraag_id",
            ddl=(
                "CREATE TABLE IF NOT EXISTS {schema}.contact_deadlines ("
                " aanvraag_id uuid PRIMARY KEY, deadline timestamptz NOT NULL,"
                " status text NOT NULL)",
                "CREATE INDEX IF NOT EXISTS contact_deadlines_open ON {schema}.contact_deadlines"
                " (deadline) WHERE status = 'open'",
            ),
        ),
        Table(
            "afspraken",
            columns=("afspraak_id", "aanvraag_id", "soort", "status", "adviseur_id", "gepland_op"),
            key=("afspraak_id",),
            owner="aanvraag_id",
            ddl=(
                "CREATE TABLE IF NOT EXISTS {schema}.afspraken ("
                " afspraak_id uuid PRIMARY KEY, aanvraag_id uuid NOT NULL, soort text NOT NULL,"
                " status text NOT NULL)",
                "CREATE INDEX IF NOT EXISTS afspraken_aanvraag ON {schema}.afspraken (aanvraag_id)",
                "ALTER TABLE {schema}.afspraken ADD COLUMN IF NOT EXISTS adviseur_id text,"
                " ADD COLUMN IF NOT EXISTS gepland_op timestamptz",
                "CREATE INDEX IF NOT EXISTS afspraken_adviseur ON {schema}.afspraken"
                " (adviseur_id, status, gepland_op)",
            ),
        ),
    ),
    started_by=(PlanningGeopend,),
    fold=project,
    rows=planning_rows,
    description="contact deadlines and appointments",
)


def statements(before: Planning | None, after: Planning | None) -> list[Statement]:
    """What changes the read tables from ``before``'s rows to ``after``'s."""
    assert after is not None, "a planning is never removed"
    return PLANNING.statements(before, after)


class SqlReadModel:
    """The read tables in PostgreSQL, written in the events' transaction."""

    ddl: tuple[str, ...] = PLANNING.ddl

    def statements(self, before: Planning | None, after: Planning | None) -> Sequence[Statement]:
        """The side statements of a change of one planning."""
        return statements(before, after)

    def aanvraag_van(self, app: ServiceApplication, afspraak_id: UUID) -> UUID | None:
        """The dossier an appointment belongs to, or None for an unknown appointment."""
        with app.datastore.get_connection() as conn:
            row = conn.execute(
                SQL("SELECT aanvraag_id FROM {} WHERE afspraak_id = %s").format(AFSPRAKEN),
                (afspraak_id,),
            ).fetchone()
        return None if row is None else UUID(str(row["aanvraag_id"]))

    def afspraken_van(
        self, app: ServiceApplication, adviseur_id: str, status: str, limit: int
    ) -> list[tuple[UUID, UUID]]:
        """(dossier, appointment) of an adviseur's appointments with this status, by start
        (the open ones the earliest first, the others the latest first)."""
        richting = SQL("ASC") if status == "gepland" else SQL("DESC")
        with app.datastore.get_connection() as conn:
            rows = conn.execute(
                SQL(
                    "SELECT aanvraag_id, afspraak_id FROM {} WHERE adviseur_id = %s"
                    " AND status = %s ORDER BY gepland_op {r}, afspraak_id LIMIT %s"
                ).format(AFSPRAKEN, r=richting),
                (adviseur_id, status, limit),
            ).fetchall()
        return [(UUID(str(row["aanvraag_id"])), UUID(str(row["afspraak_id"]))) for row in rows]

    def overdue(self, app: ServiceApplication, now: datetime, limit: int) -> list[UUID]:
        """Open plannings whose deadline has passed, the earliest first."""
        with app.datastore.get_connection() as conn:
            rows = conn.execute(
                SQL(
                    "SELECT aanvraag_id FROM {} WHERE status = 'open' AND deadline <= %s"
                    " ORDER BY deadline LIMIT %s"
                ).format(DEADLINES),
                (now, limit),
            ).fetchall()
        return [row["aanvraag_id"] for row in rows]


class MemoryReadModel:
    """The same rows on the in-memory store, which has no tables: each query folds every planning
    of the log and asks ``planning_rows`` (use-case tests; a handful of plannings)."""

    ddl: tuple[str, ...] = ()

    def statements(self, before: Planning | None, after: Planning | None) -> Sequence[Statement]:
        """Nothing to write: the rows are read from the log itself."""
        return ()

    def aanvraag_van(self, app: ServiceApplication, afspraak_id: UUID) -> UUID | None:
        """The dossier an appointment belongs to, or None for an unknown appointment."""
        for planning in _plannings(app):
            for row in planning_rows(planning)["afspraken"]:
                if row[0] == afspraak_id:
                    return planning.id
        return None

    def afspraken_van(
        self, app: ServiceApplication, adviseur_id: str, status: str, limit: int
    ) -> list[tuple[UUID, UUID]]:
        """(dossier, appointment) of an adviseur's appointments with this status, by start."""
        gevonden = sorted(
            (a.gepland_op, a.afspraak_id, planning.id)
            for planning in _plannings(app)
            for a in planning.afspraken
            if a.adviseur_id == adviseur_id and a.status == status
        )
        if status != "gepland":
            gevonden.reverse()
        return [(aanvraag_id, afspraak_id) for _, afspraak_id, aanvraag_id in gevonden[:limit]]

    def overdue(self, app: ServiceApplication, now: datetime, limit: int) -> list[UUID]:
        """Open plannings whose deadline has passed, the earliest first."""
        due = sorted(
            (deadline, aanvraag_id)
            for planning in _plannings(app)
            for aanvraag_id, deadline, status in planning_rows(planning)["contact_deadlines"]
            if status == "open" and isinstance(deadline, datetime) and deadline <= now
        )
        return [aanvraag_id for _, aanvraag_id in due[:limit] if isinstance(aanvraag_id, UUID)]


def _plannings(app: ServiceApplication) -> Iterator[Planning]:
    """Every planning of the application's log, in the order they were opened."""
    start, page = 1, 1000
    while True:
        started = app.recorder.select_notifications(start, page, topics=PLANNING.topics)
        for notification in started:
            planning = app.load_or_none(UUID(str(notification.originator_id)), project)
            if planning is not None:
                yield planning
        if len(started) < page:
            return
        start = started[-1].id + 1
