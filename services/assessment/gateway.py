"""Assessment's gateway: private domain events → public events (ids, enums, dates, counts only)."""

from __future__ import annotations

from collections.abc import Sequence

from services.assessment.domain import (
    MaatregelUitgevoerd,
    PkvwStatusGewijzigd,
    RapportHerzien,
    RapportIngezienVastgelegd,
    RapportOpgesteld,
    RapportTerToetsingAangeboden,
)
from shared.contracts import events as public
from shared.platform.access import ToegangGeweigerdVastgelegd, refusal_to_public
from shared.platform.model import DomainEvent


def _versie(event: RapportOpgesteld | RapportHerzien) -> public.PublicEvent:
    # The measures travel without their description: that is report content.
    maatregelen = tuple(m.samenvatting() for m in event.inhoud.maatregelen)
    if isinstance(event, RapportOpgesteld):
        return public.RapportOpgesteld(
            aanvraag_id=event.aanvraag_id,
            rapport_id=event.originator_id,
            versie=1,
            aantal_maatregelen=len(maatregelen),
            maatregelen=maatregelen,
        )
    return public.RapportHerzien(
        aanvraag_id=event.aanvraag_id,
        rapport_id=event.originator_id,
        versie=event.versie,
        aantal_maatregelen=len(maatregelen),
        maatregelen=maatregelen,
    )


def to_public(event: DomainEvent) -> Sequence[public.PublicEvent]:
    """The public events that announce one domain event (never the report's text)."""
    announced: public.PublicEvent | None = None
    if isinstance(event, RapportOpgesteld | RapportHerzien):
        announced = _versie(event)
    elif isinstance(event, RapportTerToetsingAangeboden):
        announced = public.RapportTerToetsingAangeboden(
            aanvraag_id=event.aanvraag_id,
            rapport_id=event.originator_id,
            versie=event.versie,
            inhoud_hash=event.inhoud_hash,
        )
    elif isinstance(event, RapportIngezienVastgelegd):
        announced = public.RapportIngezien(
            aanvraag_id=event.aanvraag_id,
            rapport_id=event.rapport_id,
            versie=event.versie,
            rol=event.rol,
            ingezien_op=event.ingezien_op,
        )
    elif isinstance(event, PkvwStatusGewijzigd):
        announced = public.PkvwStatusGewijzigd(
            aanvraag_id=event.originator_id, status=event.status, geldig_tot=event.geldig_tot
        )
    elif isinstance(event, MaatregelUitgevoerd):
        announced = public.MaatregelUitgevoerd(
            aanvraag_id=event.aanvraag_id,
            maatregel_id=event.maatregel_id,
            rapport_id=event.originator_id,
            domein=event.domein,
            kosten=event.kosten,
            uitgevoerd_door=event.uitgevoerd_door,
            uitgevoerd_op=event.uitgevoerd_op,
        )
    elif isinstance(event, ToegangGeweigerdVastgelegd):
        announced = refusal_to_public(event, public.Dienst.ASSESSMENT)
    return [] if announced is None else [announced]
