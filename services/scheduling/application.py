"""Scheduling's use cases: open the planning, record contact, escalate a missed deadline."""

from __future__ import annotations

import logging
from datetime import datetime
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from psycopg.sql import SQL, Identifier

from services.scheduling.domain import (
    Planning,
    neem_contact_op,
    open_planning,
    project,
    stel_verstrijken_vast,
    stop,
)
from shared.calendar import WorkingDayCalendar
from shared.errors import NietGevonden
from shared.eventstore import (
    AlreadyProcessed,
    ConcurrencyConflict,
    Context,
    DomainEvent,
    ServiceApplication,
    Statement,
)

log = logging.getLogger(__name__)

DEADLINES = Identifier("scheduling", "contact_deadlines")


def _deadline_row(planning_id: UUID, deadline: datetime, status: str) -> Statement:
    return Statement(
        SQL(
            "INSERT INTO {} (aanvraag_id, deadline, status) VALUES (%s, %s, %s)"
            " ON CONFLICT (aanvraag_id) DO UPDATE SET status = EXCLUDED.status"
        ).format(DEADLINES),
        (planning_id, deadline, status),
    )


class Scheduling(ServiceApplication):
    """The scheduling service's application."""

    service = "scheduling"
    ddl = (
        "CREATE TABLE IF NOT EXISTS {schema}.contact_deadlines ("
        " aanvraag_id uuid PRIMARY KEY, deadline timestamptz NOT NULL, status text NOT NULL)",
        "CREATE INDEX IF NOT EXISTS contact_deadlines_open ON {schema}.contact_deadlines"
        " (deadline) WHERE status = 'open'",
    )

    def __init__(
        self,
        env: dict[str, str],
        calendar: WorkingDayCalendar,
        working_days: int = 3,
    ) -> None:
        super().__init__(env)
        self.calendar = calendar
        self.working_days = working_days

    def planning(self, aanvraag_id: UUID) -> Planning:
        """The planning of a dossier."""
        try:
            planning: Planning = self.repository.get(aanvraag_id, projector_func=project)
        except AggregateNotFoundError:
            raise NietGevonden("Onbekend dossier.") from None
        return planning

    def open(
        self, aanvraag_id: UUID, ingediend_op: datetime, ctx: Context, inbox: tuple[str, str]
    ) -> None:
        """Open the planning of a new aanvraag (once, however often the event arrives)."""
        deadline = self.calendar.contact_deadline(ingediend_op, self.working_days)
        event = open_planning(
            aanvraag_id,
            ingediend_op,
            deadline,
            self.working_days,
            self.calendar.profile.name,
            ctx,
        )
        try:
            self.record(
                event, inbox=inbox, statements=[_deadline_row(aanvraag_id, deadline, "open")]
            )
        except ConcurrencyConflict:
            raise AlreadyProcessed(inbox[1]) from None

    def neem_contact_op(self, aanvraag_id: UUID, ctx: Context) -> Planning:
        """Record that the secretariat made contact."""

        def command() -> Planning:
            planning = self.planning(aanvraag_id)
            event = neem_contact_op(planning, ctx)
            if event is not None:
                self._record_with_status(planning, event)
                planning = project(planning, [event]) or planning
            return planning

        return self.retrying(command)

    def stop(self, aanvraag_id: UUID, ctx: Context, inbox: tuple[str, str]) -> None:
        """Stop the planning of a withdrawn aanvraag."""

        def command() -> None:
            planning = self.planning(aanvraag_id)
            event = stop(planning, ctx)
            if event is not None:
                self._record_with_status(planning, event, inbox=inbox)

        self.retrying(command)

    def overdue(self, now: datetime, limit: int = 500) -> list[UUID]:
        """Open plannings whose deadline has passed."""
        with self.datastore.get_connection() as conn:
            rows = conn.execute(
                SQL(
                    "SELECT aanvraag_id FROM {} WHERE status = 'open' AND deadline <= %s"
                    " ORDER BY deadline LIMIT %s"
                ).format(DEADLINES),
                (now, limit),
            ).fetchall()
        return [row["aanvraag_id"] for row in rows]

    def stel_verstrijken_vast(self, aanvraag_id: UUID, ctx: Context) -> bool:
        """Escalate a missed deadline; True when this call recorded it."""

        def command() -> bool:
            planning = self.planning(aanvraag_id)
            event = stel_verstrijken_vast(planning, ctx)
            if event is None:
                return False
            self._record_with_status(planning, event)
            return True

        return self.retrying(command)

    def escalate_overdue(self, now: datetime) -> int:
        """Record ContacttermijnVerstreken for every overdue planning; returns how many."""
        ctx = Context(now=now, actor_id="svc-scheduling", actor_role="systeem")
        return sum(
            self.stel_verstrijken_vast(aanvraag_id, ctx) for aanvraag_id in self.overdue(now)
        )

    def _record_with_status(
        self, planning: Planning, event: DomainEvent, inbox: tuple[str, str] | None = None
    ) -> None:
        after = project(planning, [event])
        assert after is not None
        self.record(
            event,
            inbox=inbox,
            statements=[_deadline_row(after.id, after.deadline, after.contact_status)],
        )
