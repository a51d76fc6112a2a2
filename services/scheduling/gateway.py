"""Scheduling's gateway: private domain events → public events (the video link stays here)."""

from __future__ import annotations

from collections.abc import Sequence

from services.scheduling.domain import (
    AfspraakGeannuleerd,
    AfspraakGepland,
    AfspraakVerzet,
    ContactOpgenomen,
    ContacttermijnVerstreken,
    GesprekGevoerd,
    PlanningGeopend,
    ToelichtingAangevraagd,
    WoningscanUitgevoerd,
)
from shared.contracts import events as public
from shared.platform.access import ToegangGeweigerdVastgelegd, refusal_to_public
from shared.platform.model import DomainEvent


def to_public(event: DomainEvent) -> Sequence[public.PublicEvent]:
    """The public events that announce one domain event."""
    for announce in (_contact, _afspraak, _toelichting):
        announced = announce(event)
        if announced is not None:
            return [announced]
    if isinstance(event, ToegangGeweigerdVastgelegd):
        return [refusal_to_public(event, public.Dienst.SCHEDULING)]
    # PlanningGestopt and RapportOntvangen: intake and approval announced their causes.
    return []


def _contact(event: DomainEvent) -> public.PublicEvent | None:
    """The public event of the contact deadline's steps, or None for any other event."""
    if isinstance(event, PlanningGeopend):
        return public.ContacttermijnGesteld(
            aanvraag_id=event.originator_id,
            deadline=event.deadline,
            werkdagen=event.werkdagen,
            kalender=event.kalender,
        )
    if isinstance(event, ContactOpgenomen):
        return public.ContactOpgenomen(
            aanvraag_id=event.originator_id,
            contact_op=event.contact_op,
            binnen_termijn=event.binnen_termijn,
        )
    if isinstance(event, ContacttermijnVerstreken):
        return public.ContacttermijnVerstreken(
            aanvraag_id=event.originator_id,
            deadline=event.deadline,
            vastgesteld_op=event.vastgesteld_op,
        )
    return None


def _toelichting(event: DomainEvent) -> public.PublicEvent | None:
    """The public event of a toelichting request, or None for any other event."""
    if isinstance(event, ToelichtingAangevraagd):
        return public.ToelichtingAangevraagd(
            aanvraag_id=event.originator_id,
            aangevraagd_door=public.Partij(event.partij),
            aangevraagd_op=event.aangevraagd_op,
        )
    return None


def _afspraak(event: DomainEvent) -> public.PublicEvent | None:
    """The public event of an appointment's step, or None for any other event."""
    if isinstance(event, AfspraakGepland):
        return public.AfspraakGepland(
            aanvraag_id=event.originator_id,
            afspraak_id=event.afspraak_id,
            soort=public.AfspraakSoort(event.soort),
            vorm=public.AfspraakVorm(event.vorm),
            gepland_op=event.gepland_op,
            duur_minuten=event.duur_minuten,
            adviseur_id=event.adviseur_id,
        )
    if isinstance(event, AfspraakVerzet):
        return public.AfspraakVerzet(
            aanvraag_id=event.originator_id,
            afspraak_id=event.afspraak_id,
            soort=public.AfspraakSoort(event.soort),
            gepland_op=event.gepland_op,
            vorige_gepland_op=event.vorige_gepland_op,
        )
    if isinstance(event, AfspraakGeannuleerd):
        return public.AfspraakGeannuleerd(
            aanvraag_id=event.originator_id,
            afspraak_id=event.afspraak_id,
            soort=public.AfspraakSoort(event.soort),
        )
    if isinstance(event, GesprekGevoerd):
        return public.GesprekGevoerd(
            aanvraag_id=event.originator_id,
            afspraak_id=event.afspraak_id,
            soort=public.AfspraakSoort(event.soort),
            gevoerd_op=event.gevoerd_op,
        )
    if isinstance(event, WoningscanUitgevoerd):
        return public.WoningscanUitgevoerd(
            aanvraag_id=event.originator_id,
            afspraak_id=event.afspraak_id,
            uitgevoerd_op=event.uitgevoerd_op,
        )
    return None
