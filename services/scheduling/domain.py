"""Scheduling's domain: the planning of a dossier, starting with the contact deadline."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal
from uuid import UUID

from shared.errors import Conflict
from shared.eventstore import Aggregate, Context, DomainEvent, first_event, next_event


class PlanningGeopend(DomainEvent):
    """A new aanvraag arrived; the contact deadline runs from here."""

    ingediend_op: datetime
    deadline: datetime
    werkdagen: int
    kalender: str


class ContactOpgenomen(DomainEvent):
    """The secretariat made contact."""

    contact_op: datetime
    binnen_termijn: bool


class ContacttermijnVerstreken(DomainEvent):
    """The deadline passed without contact (recorded once, by whichever checker saw it first)."""

    deadline: datetime
    vastgesteld_op: datetime


class PlanningGestopt(DomainEvent):
    """The aanvraag was withdrawn: nothing more is planned or escalated."""


ContactStatus = Literal["open", "opgenomen", "verstreken", "gestopt"]


class Planning(Aggregate):
    """The planning of one dossier (id = aanvraag_id)."""

    deadline: datetime
    contact_op: datetime | None = None
    verstreken: bool = False
    gestopt: bool = False

    @property
    def contact_status(self) -> ContactStatus:
        """Where the contact stands."""
        if self.gestopt:
            return "gestopt"
        if self.contact_op is not None:
            return "opgenomen"
        return "verstreken" if self.verstreken else "open"


def open_planning(
    aanvraag_id: UUID,
    ingediend_op: datetime,
    deadline: datetime,
    werkdagen: int,
    kalender: str,
    ctx: Context,
) -> PlanningGeopend:
    """Open the planning of a new aanvraag with its contact deadline."""
    return first_event(
        PlanningGeopend,
        aanvraag_id,
        ctx,
        ingediend_op=ingediend_op,
        deadline=deadline,
        werkdagen=werkdagen,
        kalender=kalender,
    )


def neem_contact_op(planning: Planning, ctx: Context) -> ContactOpgenomen | None:
    """Record contact; None when it was already recorded (a retried request has one effect)."""
    if planning.gestopt:
        raise Conflict("De aanvraag is ingetrokken; er wordt geen contact meer opgenomen.")
    if planning.contact_op is not None:
        return None
    return next_event(
        ContactOpgenomen,
        planning,
        ctx,
        contact_op=ctx.now,
        binnen_termijn=ctx.now < planning.deadline,
    )


def stel_verstrijken_vast(planning: Planning, ctx: Context) -> ContacttermijnVerstreken | None:
    """The deadline passed without contact: escalate once; None when there is nothing to do."""
    if planning.contact_status != "open" or ctx.now < planning.deadline:
        return None
    return next_event(
        ContacttermijnVerstreken,
        planning,
        ctx,
        deadline=planning.deadline,
        vastgesteld_op=ctx.now,
    )


def stop(planning: Planning, ctx: Context) -> PlanningGestopt | None:
    """Stop the planning of a withdrawn aanvraag."""
    if planning.gestopt:
        return None
    return next_event(PlanningGestopt, planning, ctx)


def project(planning: Planning | None, events: Iterable[DomainEvent]) -> Planning | None:
    """Rebuild a Planning from its events."""
    for event in events:
        if isinstance(event, PlanningGeopend):
            planning = Planning(
                id=event.originator_id, version=event.originator_version, deadline=event.deadline
            )
            continue
        assert planning is not None
        update: dict[str, object] = {"version": event.originator_version}
        if isinstance(event, ContactOpgenomen):
            update["contact_op"] = event.contact_op
        elif isinstance(event, ContacttermijnVerstreken):
            update["verstreken"] = True
        elif isinstance(event, PlanningGestopt):
            update["gestopt"] = True
        planning = planning.model_copy(update=update)
    return planning
