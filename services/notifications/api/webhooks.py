"""Webhook subscriptions over HTTP: make, list, show, remove; the delivery log; send again.

A werkgever manages the subscriptions of its own organisation (another organisation's read as
404, on record as ToegangGeweigerd); the secretariaat manages all; compliance reads.
"""

# No `from __future__ import annotations` here: FastAPI must evaluate the `Depends(...)` in the
# route signatures, which refer to the router function's local `auth`.
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from services.notifications.application import Webhooks
from services.notifications.domain.webhooks import (
    Abonnement,
    Eigenaar,
    WebhookBezorging,
    secret_text,
)
from shared.platform.auth import Auth, Principal, Role
from shared.platform.idempotency import IdempotencyKey
from shared.platform.model import Clock
from shared.platform.wiring import request_context

ORGANISATIE_PATTERN = r"^(GM[0-9]{4}|PV[0-9]{2}|WS[0-9]{4})$"

#: The route an ``Idempotency-Key`` of a new subscription is unique in (with its caller).
MAKEN = "POST /webhooks/abonnementen"


class NieuwAbonnement(BaseModel):
    """What a subscription asks for."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    callback_url: str = Field(
        min_length=1, max_length=2000, description="Where deliveries are POSTed (http or https)."
    )
    event_types: list[Annotated[str, Field(pattern=r"^[A-Z][A-Za-z0-9]{0,63}$")]] | None = Field(
        default=None,
        max_length=64,
        description="Event names (e.g. `RapportVrijgegeven`); none: every event you may receive.",
    )
    organisatie_code: str | None = Field(
        default=None,
        pattern=ORGANISATIE_PATTERN,
        description="Only dossiers of this organisation (a werkgever: always its own).",
    )
    aanvraag_id: UUID | None = Field(default=None, description="Only this dossier.")


class AangemaaktAbonnement(Abonnement):
    """A new subscription with its secret: shown this once, keep it safe."""

    secret: str = Field(description="`whsec_<base64>`: the HMAC key is the base64-decoded part.")


def router(webhooks: Webhooks, auth: Auth, clock: Clock) -> APIRouter:
    """The webhook routes."""
    api = APIRouter(prefix="/webhooks", tags=["webhooks"])

    def zichtbaar(request: Request, principal: Principal, abonnement: Abonnement) -> None:
        """A werkgever sees only its organisation's werkgever subscriptions (others: 404, on
        record); the secretariaat's may carry the audit trail."""
        if principal.has_role(Role.secretariaat, Role.compliance):
            return
        if (
            principal.organisatie is None
            or abonnement.eigenaar != "werkgever"
            or abonnement.organisatie_code != principal.organisatie
        ):
            auth.refuse(request, principal, "ander_abonnement", status=404)

    @api.post(
        "/abonnementen",
        status_code=201,
        response_model=AangemaaktAbonnement,
        summary=(
            "Een webhook-abonnement aanmaken (werkgever, secretariaat; Idempotency-Key gehonoreerd)"
        ),
    )
    def maak(
        body: NieuwAbonnement,
        request: Request,
        response: Response,
        principal: Annotated[Principal, Depends(auth.require(Role.werkgever, Role.secretariaat))],
        idempotency_key: IdempotencyKey = None,
    ) -> AangemaaktAbonnement:
        eigenaar: Eigenaar = "secretariaat"
        organisatie = body.organisatie_code
        if not principal.has_role(Role.secretariaat):
            eigenaar = "werkgever"
            if principal.organisatie is None:
                auth.refuse(request, principal, "organisatie_ontbreekt")
            if organisatie is not None and organisatie != principal.organisatie:
                auth.refuse(request, principal, "andere_organisatie")
            organisatie = principal.organisatie
        # A key is the caller's and the party's it acts for: a werkgever's is its organisation's,
        # so one sub acting for another organisation never gets the first one's subscription.
        partij = "secretariaat" if eigenaar == "secretariaat" else f"werkgever:{organisatie}"
        sleutel = (
            None
            if idempotency_key is None
            else (f"{MAKEN}|{principal.sub}|{partij}", idempotency_key)
        )
        # The subscription's rules (URL, event types) are the use case's: ``Webhooks.maak``.
        gemaakt = webhooks.maak(
            body.callback_url,
            eigenaar,
            body.event_types,
            organisatie,
            body.aanvraag_id,
            request_context(request, principal, clock),
            sleutel,
        )
        abonnement = gemaakt.abonnement
        response.headers["Location"] = f"/webhooks/abonnementen/{abonnement.abonnement_id}"
        if gemaakt.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return AangemaaktAbonnement(**abonnement.model_dump(), secret=secret_text(gemaakt.secret))

    @api.get(
        "/abonnementen",
        response_model=list[Abonnement],
        summary="Webhook-abonnementen (werkgever: van de eigen organisatie)",
    )
    def abonnementen(
        principal: Annotated[
            Principal, Depends(auth.require(Role.werkgever, Role.secretariaat, Role.compliance))
        ],
        status: Literal["actief", "falend", "verwijderd"] | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[Abonnement]:
        if principal.has_role(Role.secretariaat, Role.compliance):
            return webhooks.abonnementen(status=status, limit=limit)
        if principal.organisatie is None:
            return []
        return webhooks.abonnementen(werkgever=principal.organisatie, status=status, limit=limit)

    @api.get(
        "/abonnementen/{abonnement_id}",
        response_model=Abonnement,
        summary="Een webhook-abonnement",
    )
    def abonnement(
        abonnement_id: UUID,
        request: Request,
        principal: Annotated[
            Principal, Depends(auth.require(Role.werkgever, Role.secretariaat, Role.compliance))
        ],
    ) -> Abonnement:
        found = webhooks.abonnement(abonnement_id)
        zichtbaar(request, principal, found)
        return found

    @api.delete(
        "/abonnementen/{abonnement_id}",
        response_model=Abonnement,
        summary="Een webhook-abonnement verwijderen (geheim vernietigd, niets meer bezorgd)",
    )
    def verwijder(
        abonnement_id: UUID,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.werkgever, Role.secretariaat))],
    ) -> Abonnement:
        zichtbaar(request, principal, webhooks.abonnement(abonnement_id))
        return webhooks.verwijder(abonnement_id, request_context(request, principal, clock))

    @api.get(
        "/abonnementen/{abonnement_id}/bezorgingen",
        response_model=list[WebhookBezorging],
        summary="Het bezorglogboek van een abonnement, met elke poging",
    )
    def bezorgingen(
        abonnement_id: UUID,
        request: Request,
        principal: Annotated[
            Principal, Depends(auth.require(Role.werkgever, Role.secretariaat, Role.compliance))
        ],
        status: Literal["gepland", "afgeleverd", "opgegeven", "vervallen"] | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[WebhookBezorging]:
        zichtbaar(request, principal, webhooks.abonnement(abonnement_id))
        return webhooks.bezorgingen(abonnement_id, status=status, limit=limit)

    @api.post(
        "/bezorgingen/{bezorging_id}/opnieuw",
        status_code=202,
        response_model=WebhookBezorging,
        summary="Een bezorging nu opnieuw versturen (met een nieuw schema van pogingen)",
    )
    def opnieuw(
        bezorging_id: UUID,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.werkgever, Role.secretariaat))],
    ) -> WebhookBezorging:
        zichtbaar(request, principal, webhooks.abonnement_van(bezorging_id))
        return webhooks.opnieuw(bezorging_id, clock.now())

    return api
