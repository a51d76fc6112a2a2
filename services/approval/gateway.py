"""Approval's gateway: private domain events → public events."""

from __future__ import annotations

from collections.abc import Sequence

from services.approval import domain
from shared.contracts import events as public
from shared.platform.access import ToegangGeweigerdVastgelegd, refusal_to_public
from shared.platform.model import DomainEvent


def to_public(event: DomainEvent) -> Sequence[public.PublicEvent]:
    """The public events that announce one domain event."""
    announced: public.PublicEvent
    rapport_id = event.originator_id
    match event:
        case domain.RapportGoedgekeurd():
            announced = public.RapportGoedgekeurd(
                aanvraag_id=event.aanvraag_id,
                rapport_id=rapport_id,
                versie=event.versie,
                inhoud_hash=event.inhoud_hash,
            )
        case domain.RapportAfgekeurd():
            # The reasons stay here (they may quote the report); integrators get their number.
            announced = public.RapportAfgekeurd(
                aanvraag_id=event.aanvraag_id,
                rapport_id=rapport_id,
                versie=event.versie,
                inhoud_hash=event.inhoud_hash,
                aantal_redenen=len(event.redenen),
            )
        case domain.RapportVerstrektAanBestuurder():
            announced = public.RapportVerstrektAanBestuurder(
                aanvraag_id=event.aanvraag_id, rapport_id=rapport_id, versie=event.versie
            )
        case domain.InstemmingGegeven():
            announced = public.InstemmingGegeven(
                aanvraag_id=event.aanvraag_id, rapport_id=rapport_id, versie=event.versie
            )
        case domain.InstemmingGeweigerd():
            announced = public.InstemmingGeweigerd(
                aanvraag_id=event.aanvraag_id, rapport_id=rapport_id, versie=event.versie
            )
        case domain.RapportVrijgegeven():
            announced = public.RapportVrijgegeven(
                aanvraag_id=event.aanvraag_id,
                rapport_id=rapport_id,
                versie=event.versie,
                organisatie_code=event.organisatie_code,
            )
        case ToegangGeweigerdVastgelegd():
            announced = refusal_to_public(event, public.Dienst.APPROVAL)
        case _:
            # BeoordelingGeopend, AuteurVastgelegd, VersieTerToetsingOntvangen: assessment's
            # own events already announced what they record.
            return []
    return [announced]
