"""Approval's HTTP API: the BVA's decisions, the bestuurder's consent, and where a report stands."""

# No `from __future__ import annotations` here: FastAPI must evaluate the `Depends(...)` in the
# route signatures, which refer to the router function's local `auth`.
from datetime import datetime
from typing import Annotated, NoReturn
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from services.approval.application import Approval
from services.approval.domain import (
    Beoordeling,
    BeoordelingStatus,
    Instemming,
    Uitkomst,
    VierOgen,
    schreef_mee,
)
from shared.platform.auth import Auth, Principal, Role
from shared.platform.model import Clock
from shared.platform.parties import STAND_IN_DOSSIER, DossierParties
from shared.platform.wiring import request_context

HASH_PATTERN = r"^[0-9a-f]{64}$"

Reden = Annotated[str, Field(min_length=1, max_length=2000)]


class Goedkeuring(BaseModel):
    """The version the BVA approves, named by number and content hash."""

    model_config = ConfigDict(extra="forbid")

    versie: int = Field(ge=1, description="The version that was read.")
    inhoud_hash: str = Field(
        pattern=HASH_PATTERN, description="SHA-256 (lowercase hex) of the version that was read."
    )


class Afkeuring(Goedkeuring):
    """The version the BVA rejects, with the reasons for the adviseur."""

    redenen: list[Reden] = Field(
        min_length=1, max_length=20, description="Why the version is rejected (1 to 20 reasons)."
    )


class InstemmingVerzoek(BaseModel):
    """The bestuurder's answer: may the werkgever receive the approved report?"""

    model_config = ConfigDict(extra="forbid")

    instemming: StrictBool = Field(
        description="true: consent, the report is released to the werkgever (final: a refusal "
        "after it is 409); false: refusal, which the bestuurder may still turn into consent."
    )


class StatusView(BaseModel):
    """Where the decisions about a report stand (never its content)."""

    rapport_id: UUID
    aanvraag_id: UUID
    status: BeoordelingStatus
    laatste_versie: int | None = Field(description="The latest version submitted for review.")
    goedgekeurde_versie: int | None
    instemming: Instemming | None
    vrijgegeven_versie: int | None = Field(description="The version the werkgever received.")


class VersieBeoordeling(BaseModel):
    """One submitted version and the decision about it."""

    versie: int
    ingediend_op: datetime
    besluit: Uitkomst | None
    # Only once decided: a reviewer must take the hash from the report they read (assessment),
    # so an approval proves which content was read.
    inhoud_hash: str | None
    besloten_door: str | None
    besloten_op: datetime | None
    redenen: list[str]


class BeoordelingenView(BaseModel):
    """The decisions per submitted version, with the reasons of every rejection."""

    rapport_id: UUID
    aanvraag_id: UUID
    versies: list[VersieBeoordeling]
    vier_ogen: bool = Field(
        default=False,
        description="True when the caller wrote (a version of) this report: four-eyes forbids"
        " them to approve or reject it (the answer would be 403).",
    )


def status_view(beoordeling: Beoordeling) -> StatusView:
    """The status of a review."""
    laatste = beoordeling.laatste
    goedgekeurd = beoordeling.goedgekeurd
    return StatusView(
        rapport_id=beoordeling.id,
        aanvraag_id=beoordeling.aanvraag_id,
        status=beoordeling.status,
        laatste_versie=laatste.versie if laatste else None,
        goedgekeurde_versie=goedgekeurd.versie if goedgekeurd else None,
        instemming=beoordeling.instemming,
        vrijgegeven_versie=goedgekeurd.versie if goedgekeurd and beoordeling.vrijgegeven else None,
    )


def beoordelingen_view(beoordeling: Beoordeling, vier_ogen: bool = False) -> BeoordelingenView:
    """The decisions of a review (``vier_ogen``: the caller wrote a version of it)."""
    return BeoordelingenView(
        rapport_id=beoordeling.id,
        aanvraag_id=beoordeling.aanvraag_id,
        vier_ogen=vier_ogen,
        versies=[
            VersieBeoordeling(
                versie=v.versie,
                ingediend_op=v.ingediend_op,
                besluit=v.besluit,
                inhoud_hash=v.inhoud_hash if v.besluit else None,
                besloten_door=v.besloten_door,
                besloten_op=v.besloten_op,
                redenen=list(v.redenen),
            )
            for v in beoordeling.versies
        ],
    )


STAFF = (Role.bva, Role.adviseur, Role.compliance)


def router(approval: Approval, auth: Auth, clock: Clock, parties: DossierParties) -> APIRouter:
    """Approval's routes."""
    api = APIRouter()

    def vier_ogen(request: Request, principal: Principal) -> NoReturn:
        auth.refuse(request, principal, "vier_ogen", status=403)

    @api.post(
        "/rapporten/{rapport_id}/goedkeuren",
        response_model=StatusView,
        summary="Keur precies deze versie goed (BVA, niet de auteur)",
        tags=["toetsing"],
    )
    def goedkeuren(
        rapport_id: UUID,
        body: Goedkeuring,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.bva))],
    ) -> StatusView:
        ctx = request_context(request, principal, clock)
        try:
            beoordeling = approval.keur_goed(rapport_id, body.versie, body.inhoud_hash, ctx)
        except VierOgen:
            vier_ogen(request, principal)
        return status_view(beoordeling)

    @api.post(
        "/rapporten/{rapport_id}/afkeuren",
        response_model=StatusView,
        summary="Keur precies deze versie af, met redenen (BVA, niet de auteur)",
        tags=["toetsing"],
    )
    def afkeuren(
        rapport_id: UUID,
        body: Afkeuring,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.bva))],
    ) -> StatusView:
        ctx = request_context(request, principal, clock)
        try:
            beoordeling = approval.keur_af(
                rapport_id, body.versie, body.inhoud_hash, body.redenen, ctx
            )
        except VierOgen:
            vier_ogen(request, principal)
        return status_view(beoordeling)

    @api.get(
        "/rapporten/{rapport_id}/beoordelingen",
        response_model=BeoordelingenView,
        summary="De besluiten per versie, met de redenen van afkeuring",
        tags=["toetsing"],
    )
    def beoordelingen(
        rapport_id: UUID,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(*STAFF))],
    ) -> BeoordelingenView:
        beoordeling = approval.beoordeling(rapport_id)
        # Tells a reviewer before they try: the same rule the decisions apply (domain).
        ctx = request_context(request, principal, clock)
        return beoordelingen_view(beoordeling, vier_ogen=schreef_mee(beoordeling, ctx))

    @api.post(
        "/rapporten/{rapport_id}/instemming",
        response_model=StatusView,
        summary="Stem in met (of weiger) het delen van het rapport met de werkgever",
        tags=["instemming"],
    )
    def instemming(
        rapport_id: UUID,
        body: InstemmingVerzoek,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.bestuurder))],
    ) -> StatusView:
        # An unknown report takes the same path as someone else's: intake asked, refused.
        beoordeling = approval.find(rapport_id)
        aanvraag_id = STAND_IN_DOSSIER if beoordeling is None else beoordeling.aanvraag_id
        partijen = parties.of(aanvraag_id, principal)
        if beoordeling is None or "bestuurder" not in partijen.partijen:
            auth.refuse(request, principal, "niet_eigen_dossier", status=404)
        assert partijen.organisatie_code is not None  # intake knows a dossier with a party
        ctx = request_context(request, principal, clock)
        return status_view(
            approval.stem_in(rapport_id, body.instemming, partijen.organisatie_code, ctx)
        )

    @api.get(
        "/rapporten/{rapport_id}/status",
        response_model=StatusView,
        summary="Waar de besluiten over het rapport staan (zonder inhoud)",
        tags=["toetsing", "instemming"],
    )
    def status(
        rapport_id: UUID,
        request: Request,
        principal: Annotated[
            Principal, Depends(auth.require(*STAFF, Role.bestuurder, Role.werkgever))
        ],
    ) -> StatusView:
        if principal.has_role(*STAFF):
            return status_view(approval.beoordeling(rapport_id))
        # A party: an unknown report takes the same path as someone else's.
        beoordeling = approval.find(rapport_id)
        aanvraag_id = STAND_IN_DOSSIER if beoordeling is None else beoordeling.aanvraag_id
        partijen = parties.of(aanvraag_id, principal).partijen
        eigen = (principal.has_role(Role.bestuurder) and "bestuurder" in partijen) or (
            principal.has_role(Role.werkgever) and "werkgever" in partijen
        )
        if beoordeling is None or not eigen:
            auth.refuse(request, principal, "niet_eigen_dossier", status=404)
        return status_view(beoordeling)

    return api
