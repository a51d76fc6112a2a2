"""Intake's gateway: private domain events → public events of the contract (no personal data)."""

from __future__ import annotations

from collections.abc import Sequence

from services.intake.domain import (
    AanvraagIngetrokken,
    AanvraagOntvangen,
    BewaarplichtOpgeheven,
    BewaarplichtOpgelegd,
    DossierAfgesloten,
    GegevensVernietigd,
    PersoonsgegevensVergeten,
    PersoonsgegevensVerstrekt,
    buiten_regeling_reden,
)
from shared.contracts import events as public
from shared.platform.access import ToegangGeweigerdVastgelegd, refusal_to_public
from shared.platform.model import DomainEvent


def to_public(event: DomainEvent) -> Sequence[public.PublicEvent]:
    """The public events that announce one domain event."""
    if isinstance(event, AanvraagOntvangen):
        aanmelding = event.aanmelding
        reden = buiten_regeling_reden(aanmelding.bestuurder.functie)
        ingediend = public.AanvraagIngediend(
            aanvraag_id=event.originator_id,
            ingediend_op=event.timestamp,
            ingediend_door=public.Partij(aanmelding.ingediend_door),
            organisatie_code=aanmelding.werkgever.organisatie_code,
            binnen_regeling=reden is None,
            verhuizing_gepland=aanmelding.verhuizing_gepland,
        )
        if reden is None:
            return [ingediend]
        return [
            ingediend,
            public.AanvraagBuitenRegeling(
                aanvraag_id=event.originator_id, reden=public.BuitenRegelingReden(reden)
            ),
        ]
    if isinstance(event, AanvraagIngetrokken):
        return [
            public.AanvraagIngetrokken(
                aanvraag_id=event.originator_id,
                ingetrokken_op=event.timestamp,
                door_rol=public.Rol.SECRETARIAAT
                if "secretariaat" in (event.actor_role or "").split(",")
                else public.Rol.BESTUURDER,
            )
        ]
    if isinstance(event, DossierAfgesloten):
        return [
            public.DossierAfgesloten(
                aanvraag_id=event.originator_id,
                afgesloten_op=event.timestamp,
                reden=public.AfsluitReden(event.reden),
                maatregelen_totaal=event.maatregelen_totaal,
                maatregelen_uitgevoerd=event.maatregelen_uitgevoerd,
            )
        ]
    return _announce(event)


def _announce(event: DomainEvent) -> Sequence[public.PublicEvent]:
    if isinstance(event, PersoonsgegevensVergeten):
        return [
            public.PersoonsgegevensVergeten(
                aanvraag_id=event.originator_id,
                vergeten_op=event.timestamp,
                reden=public.VergeetReden(event.reden),
            )
        ]
    if isinstance(event, PersoonsgegevensVerstrekt):
        return [
            public.PersoonsgegevensVerstrekt(
                aanvraag_id=event.aanvraag_id,
                gegevens=public.Persoonsgegeven(event.gegevens),
                verstrekt_op=event.timestamp,
            )
        ]
    if isinstance(event, ToegangGeweigerdVastgelegd):
        return [refusal_to_public(event, public.Dienst.INTAKE)]
    return _retention(event)


def _retention(event: DomainEvent) -> Sequence[public.PublicEvent]:
    """Legal holds and destructions."""
    if isinstance(event, BewaarplichtOpgelegd):
        return [
            public.BewaarplichtOpgelegd(
                aanvraag_id=event.originator_id,
                reden=public.BewaarplichtReden(event.reden),
                opgelegd_op=event.timestamp,
            )
        ]
    if isinstance(event, BewaarplichtOpgeheven):
        return [
            public.BewaarplichtOpgeheven(
                aanvraag_id=event.originator_id, opgeheven_op=event.timestamp
            )
        ]
    if isinstance(event, GegevensVernietigd):
        return [
            public.GegevensVernietigd(
                aanvraag_id=event.originator_id,
                soort=event.soort,
                aantal=event.aantal,
                tot=event.tot,
                vernietigd_op=event.timestamp,
            )
        ]
    return []
