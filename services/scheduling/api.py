"""Scheduling's HTTP API: contact with the parties (appointments follow with the process issue)."""

# No `from __future__ import annotations` here: FastAPI must evaluate the `Depends(...)` in the
# route signatures, which refer to the router function's local `auth`.
from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from services.scheduling.application import Scheduling
from services.scheduling.domain import ContactStatus, Planning
from shared.auth import Auth, Principal, Role
from shared.eventstore import Clock
from shared.wiring import request_context


class PlanningView(BaseModel):
    """The planning of a dossier as the secretariat sees it."""

    aanvraag_id: UUID
    contact_deadline: datetime
    contact_status: ContactStatus
    contact_op: datetime | None


def _view(planning: Planning) -> PlanningView:
    return PlanningView(
        aanvraag_id=planning.id,
        contact_deadline=planning.deadline,
        contact_status=planning.contact_status,
        contact_op=planning.contact_op,
    )


def router(scheduling: Scheduling, auth: Auth, clock: Clock) -> APIRouter:
    """Scheduling's routes."""
    api = APIRouter()

    @api.post(
        "/aanvragen/{aanvraag_id}/contact",
        response_model=PlanningView,
        summary="Leg vast dat het secretariaat contact heeft opgenomen",
        tags=["planning"],
    )
    def contact(
        aanvraag_id: UUID,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.secretariaat))],
    ) -> PlanningView:
        ctx = request_context(request, principal, clock)
        return _view(scheduling.neem_contact_op(aanvraag_id, ctx))

    @api.get(
        "/aanvragen/{aanvraag_id}/planning",
        response_model=PlanningView,
        summary="De planning van een dossier",
        tags=["planning"],
    )
    def planning(
        aanvraag_id: UUID,
        _: Annotated[
            Principal, Depends(auth.require(Role.secretariaat, Role.adviseur, Role.compliance))
        ],
    ) -> PlanningView:
        return _view(scheduling.planning(aanvraag_id))

    return api
