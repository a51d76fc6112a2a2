"""Scheduling's gateway: private domain events → public events."""

from __future__ import annotations

from collections.abc import Sequence

from services.scheduling.domain import ContactOpgenomen, ContacttermijnVerstreken, PlanningGeopend
from shared.access import ToegangGeweigerdVastgelegd, refusal_to_public
from shared.contracts import events as public
from shared.eventstore import DomainEvent


def to_public(event: DomainEvent) -> Sequence[public.PublicEvent]:
    """The public events that announce one domain event."""
    if isinstance(event, PlanningGeopend):
        return [
            public.ContacttermijnGesteld(
                aanvraag_id=event.originator_id,
                deadline=event.deadline,
                werkdagen=event.werkdagen,
                kalender=event.kalender,
            )
        ]
    if isinstance(event, ContactOpgenomen):
        return [
            public.ContactOpgenomen(
                aanvraag_id=event.originator_id,
                contact_op=event.contact_op,
                binnen_termijn=event.binnen_termijn,
            )
        ]
    if isinstance(event, ContacttermijnVerstreken):
        return [
            public.ContacttermijnVerstreken(
                aanvraag_id=event.originator_id,
                deadline=event.deadline,
                vastgesteld_op=event.vastgesteld_op,
            )
        ]
    if isinstance(event, ToegangGeweigerdVastgelegd):
        return [refusal_to_public(event, public.Dienst.SCHEDULING)]
    return []
