"""Approval's HTTP API."""

# No `from __future__ import annotations` here: FastAPI must evaluate the `Depends(...)` in the
# route signatures, which refer to the router function's local `auth`.
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends

from shared.auth import Auth, Principal, Role
from shared.errors import NietGevonden
from shared.register import DossierRegister


def router(register: DossierRegister, auth: Auth) -> APIRouter:
    """Approval's routes."""
    api = APIRouter()

    @api.get(
        "/aanvragen/{aanvraag_id}/beoordelingen",
        summary="De beoordelingen van een dossier",
        tags=["beoordelingen"],
    )
    def beoordelingen(
        aanvraag_id: UUID,
        _: Annotated[Principal, Depends(auth.require(Role.bva, Role.compliance))],
    ) -> list[dict[str, Any]]:
        if not register.knows(aanvraag_id):
            raise NietGevonden("Onbekend dossier.")
        return []  # no beoordelingen exist before the process issue adds them

    return api
