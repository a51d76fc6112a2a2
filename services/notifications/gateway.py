"""Notifications' gateway: private domain events → public events."""

from __future__ import annotations

from collections.abc import Sequence

from services.notifications.domain.notificatie import (
    NotificatieMislukt,
    NotificatieVerzonden,
    Poging,
)
from services.notifications.domain.webhooks import AbonnementFalend, AbonnementHersteld
from shared.contracts import events as public
from shared.platform.access import ToegangGeweigerdVastgelegd, refusal_to_public
from shared.platform.model import DomainEvent


def _common(event: Poging) -> dict[str, object]:
    return {
        "aanvraag_id": event.aanvraag_id,
        "notificatie_id": event.originator_id,
        "soort": event.soort,
        "kanaal": "email",
        "ontvanger_rol": event.ontvanger,
        "oorzaak_event_id": event.oorzaak_event_id,
        "poging": event.poging,
    }


def to_public(event: DomainEvent) -> Sequence[public.PublicEvent]:
    """The public events that announce one domain event."""
    if isinstance(event, NotificatieVerzonden):
        return [public.NotificatieVerzonden.model_validate(_common(event))]
    if isinstance(event, NotificatieMislukt):
        return [
            public.NotificatieMislukt.model_validate(
                _common(event) | {"reden_code": event.reden_code, "definitief": event.definitief}
            )
        ]
    if isinstance(event, AbonnementFalend):
        return [
            public.WebhookAbonnementGefaald(
                abonnement_id=event.originator_id,
                organisatie_code=event.organisatie_code,
                opeenvolgende_fouten=event.opeenvolgende_fouten,
                falend_sinds=event.falend_sinds,
                reden_code=event.reden_code,
            )
        ]
    if isinstance(event, AbonnementHersteld):
        return [
            public.WebhookAbonnementHersteld(
                abonnement_id=event.originator_id,
                organisatie_code=event.organisatie_code,
                hersteld_op=event.timestamp,
            )
        ]
    if isinstance(event, ToegangGeweigerdVastgelegd):
        return [refusal_to_public(event, public.Dienst.NOTIFICATIONS)]
    return []
