"""Notifications' HTTP API: the delivery log, and sending a failed notification again."""

# No `from __future__ import annotations` here: FastAPI must evaluate the `Depends(...)` in the
# route signatures, which refer to the router function's local `auth`.
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from services.notifications.application import Notifications
from services.notifications.domain.notificatie import NotificatieBezorging
from shared.platform.auth import Auth, Principal, Role
from shared.platform.model import Clock
from shared.platform.wiring import request_context


def router(app: Notifications, auth: Auth, clock: Clock) -> APIRouter:
    """Notifications' routes."""
    api = APIRouter()

    @api.get(
        "/notificaties",
        response_model=list[NotificatieBezorging],
        summary="Het bezorglogboek (secretariaat, compliance), met de redencode van de laatste"
        " mislukte poging",
        tags=["notificaties"],
    )
    def notificaties(
        _: Annotated[Principal, Depends(auth.require(Role.secretariaat, Role.compliance))],
        aanvraag_id: UUID | None = None,
        status: Literal["gepland", "verzonden", "mislukt", "vervallen"] | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[NotificatieBezorging]:
        return app.bezorgingen(aanvraag_id=aanvraag_id, status=status, limit=limit)

    @api.post(
        "/notificaties/{notificatie_id}/opnieuw",
        status_code=202,
        response_model=NotificatieBezorging,
        summary="Een mislukte notificatie nu opnieuw versturen (met een nieuw schema van"
        " pogingen en dezelfde Message-ID); 409 als ze niet mislukt is",
        tags=["notificaties"],
    )
    def opnieuw(
        notificatie_id: UUID,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.secretariaat))],
    ) -> NotificatieBezorging:
        app.opnieuw(notificatie_id, request_context(request, principal, clock))
        return app.bezorging(notificatie_id)

    return api
