"""Intake's HTTP API: registration, the dossier, the list, withdrawal and the audit trail."""

# No `from __future__ import annotations` here: FastAPI must evaluate the `Depends(...)` in the
# route signatures, which refer to the router function's local `auth`.
import logging
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from pydantic import BaseModel, Field

from services.intake.application import Intake, email_hash
from services.intake.domain import Aanmelding, Adres
from services.intake.projections import Dossier, Status, audit_trail, list_dossiers, read_dossier
from shared.auth import Auth, Principal, Role
from shared.errors import NietGevonden
from shared.eventstore import Clock
from shared.wiring import request_context

log = logging.getLogger(__name__)

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
STAFF = (Role.secretariaat, Role.adviseur, Role.bva, Role.compliance)


class AanvraagAangemaakt(BaseModel):
    """The answer to a registration."""

    aanvraag_id: UUID


class PartijVraag(BaseModel):
    """Claim-check of identity: the caller's claims that can match a dossier."""

    email: str | None = Field(default=None, max_length=254)
    organisatie: str | None = Field(default=None, max_length=20)


class PartijAntwoord(BaseModel):
    """Which parties of the dossier the claims belong to."""

    partijen: list[Literal["bestuurder", "werkgever"]]
    organisatie_code: str


class Afsluiten(BaseModel):
    """Why the secretariat closes the dossier (kept in intake, never published)."""

    toelichting: str = Field(min_length=1, max_length=2000)


class Ontvanger(BaseModel):
    """Claim-check answer: the address a notification goes to."""

    email: str


def router(intake: Intake, auth: Auth, clock: Clock) -> APIRouter:
    """Intake's routes."""
    api = APIRouter()

    def check_dossier_access(request: Request, principal: Principal, aanvraag_id: UUID) -> None:
        """Staff see every dossier; a bestuurder or werkgever only their own (others: 404)."""
        if principal.has_role(*STAFF):
            return
        toegang = intake.toegang(aanvraag_id)
        if toegang is not None:
            bestuurder_hash, organisatie_code = toegang
            if (
                principal.has_role(Role.bestuurder)
                and principal.email
                and email_hash(principal.email) == bestuurder_hash
            ):
                return
            if principal.has_role(Role.werkgever) and principal.organisatie == organisatie_code:
                return
        auth.refuse(request, principal, "niet_eigen_dossier", status=404)

    @api.post(
        "/aanvragen",
        status_code=status.HTTP_201_CREATED,
        response_model=AanvraagAangemaakt,
        summary="Dien een aanvraag in (openbaar)",
        tags=["aanvragen"],
    )
    def dien_in(
        aanmelding: Aanmelding,
        request: Request,
        response: Response,
        idempotency_key: Annotated[
            str | None,
            Header(
                alias="Idempotency-Key",
                min_length=1,
                max_length=200,
                pattern=r"^[A-Za-z0-9._:-]+$",
            ),
        ] = None,
    ) -> AanvraagAangemaakt:
        ctx = request_context(request, None, clock)
        result = intake.dien_aanvraag_in(aanmelding, ctx, idempotency_key)
        response.headers["Location"] = f"/aanvragen/{result.aanvraag_id}"
        if result.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        log.info("aanvraag ingediend", extra={"aanvraag_id": str(result.aanvraag_id)})
        return AanvraagAangemaakt(aanvraag_id=result.aanvraag_id)

    @api.get(
        "/aanvragen/{aanvraag_id}",
        response_model=Dossier,
        summary="Het dossier (de projectie over alle diensten)",
        tags=["aanvragen"],
    )
    def dossier(
        aanvraag_id: UUID,
        request: Request,
        principal: Annotated[
            Principal, Depends(auth.require(*STAFF, Role.bestuurder, Role.werkgever))
        ],
    ) -> Dossier:
        check_dossier_access(request, principal, aanvraag_id)
        found = read_dossier(intake, aanvraag_id)
        if found is None:
            raise NietGevonden("Onbekend dossier.")
        found = found.met_betalers(clock.now().astimezone(AMSTERDAM).date())
        if (
            not principal.has_role(*STAFF)
            and not principal.has_role(Role.bestuurder)
            and (found.rapport is None or found.rapport.vrijgegeven_op is None)
        ):
            # The werkgever learns of the report's measures only once the bestuurder consented.
            found = found.model_copy(update={"maatregelen": ()})
        return found

    @api.get(
        "/aanvragen",
        response_model=list[Dossier],
        summary="Dossiers met filters (secretariaat, compliance)",
        tags=["aanvragen"],
    )
    def dossiers(
        _: Annotated[Principal, Depends(auth.require(Role.secretariaat, Role.compliance))],
        status: Status | None = None,
        deadline_verstreken: bool | None = None,
        organisatie_code: Annotated[
            str | None, Query(pattern=r"^(GM[0-9]{4}|PV[0-9]{2}|WS[0-9]{4})$")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> list[Dossier]:
        return list(
            list_dossiers(
                intake,
                status=status,
                deadline_verstreken=deadline_verstreken,
                organisatie_code=organisatie_code,
                limit=limit,
                offset=offset,
            )
        )

    @api.post(
        "/aanvragen/{aanvraag_id}/intrekken",
        summary="Trek de aanvraag in (bestuurder, secretariaat)",
        tags=["aanvragen"],
    )
    def trek_in(
        aanvraag_id: UUID,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.bestuurder, Role.secretariaat))],
    ) -> dict[str, str]:
        if not principal.has_role(Role.secretariaat):
            check_dossier_access(request, principal, aanvraag_id)
        intake.trek_aanvraag_in(aanvraag_id, request_context(request, principal, clock))
        return {"status": "ingetrokken"}

    @api.post(
        "/aanvragen/{aanvraag_id}/afsluiten",
        summary="Sluit het dossier af met een reden (secretariaat)",
        tags=["aanvragen"],
    )
    def sluit_af(
        aanvraag_id: UUID,
        body: Afsluiten,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.secretariaat))],
    ) -> dict[str, str]:
        dossier = read_dossier(intake, aanvraag_id)
        maatregelen = dossier.maatregelen if dossier else ()
        intake.sluit_dossier_af(
            aanvraag_id,
            "gesloten_door_secretariaat",
            body.toelichting,
            len(maatregelen),
            sum(1 for m in maatregelen if m.uitgevoerd_op is not None),
            request_context(request, principal, clock),
        )
        return {"status": "afgesloten"}

    @api.get(
        "/aanvragen/{aanvraag_id}/audit",
        summary="Alle gebeurtenissen van het dossier, over alle diensten (compliance)",
        tags=["audit"],
    )
    def audit(
        aanvraag_id: UUID,
        _: Annotated[Principal, Depends(auth.require(Role.compliance))],
    ) -> list[dict[str, Any]]:
        trail = audit_trail(intake, aanvraag_id)
        if not trail:
            raise NietGevonden("Onbekend dossier.")
        return trail

    return api


def internal_router(intake: Intake, auth: Auth, clock: Clock) -> APIRouter:
    """Intake's internal routes for the other services (service tokens only)."""
    api = APIRouter()

    @api.get(
        "/internal/aanvragen/{aanvraag_id}/ontvanger",
        response_model=Ontvanger,
        summary="Claim-check: het adres voor een notificatie (alleen diensten)",
        tags=["intern"],
    )
    def ontvanger(
        aanvraag_id: UUID,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.dienst))],
        rol: Literal["aanvrager", "bestuurder", "werkgever"] = "aanvrager",
    ) -> Ontvanger:
        # Forgotten: 410 Gone with code persoonsgegevens_vergeten (the dossier exists, the
        # address no longer does).
        aanmelding = intake.persoonsgegevens(aanvraag_id)
        email = {
            "aanvrager": aanmelding.aanvrager_email,
            "bestuurder": aanmelding.bestuurder.email,
            "werkgever": aanmelding.werkgever.email,
        }[rol]
        # Every hand-out is on record (who, which dossier, what, when, the trace id) before
        # the data leave: if it cannot be recorded, nothing is handed out.
        intake.verstrek(aanvraag_id, f"email_{rol}", request_context(request, principal, clock))
        return Ontvanger(email=email)

    @api.get(
        "/internal/aanvragen/{aanvraag_id}/adres",
        response_model=Adres,
        summary="Claim-check: het huisadres van de bestuurder, voor diens eigen post (diensten)",
        tags=["intern"],
    )
    def adres(
        aanvraag_id: UUID,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.dienst))],
    ) -> Adres:
        found = intake.persoonsgegevens(aanvraag_id).bestuurder.adres
        intake.verstrek(aanvraag_id, "adres_bestuurder", request_context(request, principal, clock))
        return found

    @api.post(
        "/internal/aanvragen/{aanvraag_id}/partij",
        response_model=PartijAntwoord,
        summary="Welke partij van het dossier is deze gebruiker? (alleen diensten)",
        tags=["intern"],
    )
    def partij(
        aanvraag_id: UUID,
        vraag: PartijVraag,
        _: Annotated[Principal, Depends(auth.require(Role.dienst))],
    ) -> PartijAntwoord:
        toegang = intake.toegang(aanvraag_id)
        if toegang is None:
            raise NietGevonden("Onbekend dossier.")
        bestuurder_hash, organisatie_code = toegang
        partijen: list[Literal["bestuurder", "werkgever"]] = []
        if vraag.email and email_hash(vraag.email) == bestuurder_hash:
            partijen.append("bestuurder")
        if vraag.organisatie and vraag.organisatie == organisatie_code:
            partijen.append("werkgever")
        return PartijAntwoord(partijen=partijen, organisatie_code=organisatie_code)

    return api
