"""Notifications' HTTP API: the delivery log."""

# No `from __future__ import annotations` here: FastAPI must evaluate the `Depends(...)` in the
# route signatures, which refer to the router function's local `auth`.
from typing import Annotated, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from services.notifications.application import Bezorging, Notifications
from shared.auth import Auth, Principal, Role


def router(app: Notifications, auth: Auth) -> APIRouter:
    """Notifications' routes."""
    api = APIRouter()

    @api.get(
        "/notificaties",
        response_model=list[Bezorging],
        summary="Het bezorglogboek (secretariaat, compliance)",
        tags=["notificaties"],
    )
    def notificaties(
        _: Annotated[Principal, Depends(auth.require(Role.secretariaat, Role.compliance))],
        aanvraag_id: UUID | None = None,
        status: Literal["gepland", "verzonden", "mislukt", "vervallen"] | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[Bezorging]:
        return list(app.bezorgingen(aanvraag_id=aanvraag_id, status=status, limit=limit))

    return api
