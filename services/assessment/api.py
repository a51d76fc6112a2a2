"""Assessment's HTTP API: the report (draft, revise, submit, read), the PKVW and the measures."""

# No `from __future__ import annotations` here: FastAPI must evaluate the `Depends(...)` in the
# route signatures, which refer to the router function's local `auth`.
import logging
from datetime import date, datetime
from typing import Annotated, Literal, NoReturn
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from services.assessment.application import (
    OPSTELLEN,
    Assessment,
    Inzagelimiet,
    MaatregelenOverzicht,
    PkvwStand,
    RapportStand,
    stand_van,
)
from services.assessment.domain import (
    LEES_ROLLEN,
    Concept,
    RapportInhoud,
    RapportStatus,
    Weigering,
)
from shared.contracts import events as public
from shared.platform.auth import Auth, Principal, Role
from shared.platform.errors import Conflict, NietGevonden
from shared.platform.idempotency import IdempotencyKey
from shared.platform.model import Clock
from shared.platform.parties import STAND_IN_DOSSIER, DossierParties
from shared.platform.wiring import request_context

log = logging.getLogger(__name__)

STAFF = (Role.adviseur, Role.bva, Role.compliance)


class RapportInzage(BaseModel):
    """One version of the report with its content (every answer is on record as a read)."""

    rapport_id: UUID
    aanvraag_id: UUID
    versie: int
    status: RapportStatus
    inhoud_hash: str = Field(
        description="SHA-256 of the canonical JSON of `inhoud`: keys sorted, no white space,"
        " UTF-8 (non-ASCII characters as themselves)."
    )
    opgesteld_op: datetime
    inhoud: RapportInhoud
    vergeten: bool = Field(
        default=False,
        description="True when the dossier's personal data were forgotten: the findings and the"
        " measures' descriptions read `[vergeten]`; `inhoud_hash` is still the version's own.",
    )


class PkvwMelding(BaseModel):
    """The bestuurder reports the PKVW: a declaration, or a certificate with its issue date."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["verklaring", "certificaat"]
    afgegeven_op: date | None = Field(
        default=None, description="Issue date; required for a certificate, not in the future."
    )
    nummer: str | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 ./-]*$",
        description="Certificate number (certificate only); kept private.",
    )


class MaatregelStand(BaseModel):
    """A measure carried out."""

    maatregel_id: UUID
    rapport_id: UUID
    aanvraag_id: UUID
    status: Literal["uitgevoerd"]
    uitgevoerd_door: public.Partij
    uitgevoerd_op: datetime


def lezer_rol(principal: Principal) -> public.Rol:
    """The role a caller reads under (the widest of its roles)."""
    for rol in LEES_ROLLEN:
        if principal.has_role(Role(rol.value)):
            return rol
    raise AssertionError("auth.require admits only reading roles")


class Toegang:
    """Who may act on which dossier: refusals on record, parties from intake."""

    def __init__(self, auth: Auth, parties: DossierParties) -> None:
        self.auth = auth
        self.parties = parties

    def weiger(self, request: Request, principal: Principal, weigering: Weigering) -> NoReturn:
        """Refuse (403) for a reason of the domain, on record as ToegangGeweigerd."""
        self.auth.refuse(request, principal, weigering.reden, status=403)

    def eigen_partijen(
        self, request: Request, principal: Principal, aanvraag_id: UUID
    ) -> frozenset[public.Partij]:
        """The parties of the dossier the caller is; none: refused as not found (404)."""
        antwoord = self.parties.of(aanvraag_id, principal)
        partijen = frozenset(
            public.Partij(p) for p in antwoord.partijen if principal.has_role(Role(p))
        )
        if not partijen:
            self.auth.refuse(request, principal, "niet_eigen_dossier", status=404)
        return partijen

    def onbekend(self, request: Request, principal: Principal, rol: public.Rol | None) -> NoReturn:
        """A report or measure that does not exist, asked for by a party: the same work as for
        someone else's (intake asked about a dossier, refused as not found, on record), so
        neither the answer nor its time tells whether it exists. Staff: a plain 404."""
        if rol in (public.Rol.BESTUURDER, public.Rol.WERKGEVER):
            self.eigen_partijen(request, principal, STAND_IN_DOSSIER)
            self.auth.refuse(request, principal, "niet_eigen_dossier", status=404)
        raise NietGevonden()

    def als_partij(
        self, request: Request, principal: Principal, aanvraag_id: UUID, rol: public.Rol
    ) -> None:
        """A bestuurder or werkgever acts only on their own dossier (others: 404, on record)."""
        if rol in (public.Rol.BESTUURDER, public.Rol.WERKGEVER):
            partij = public.Partij(rol.value)
            if partij not in self.eigen_partijen(request, principal, aanvraag_id):
                self.auth.refuse(request, principal, "niet_eigen_dossier", status=404)


def router(
    assessment: Assessment,
    auth: Auth,
    parties: DossierParties,
    clock: Clock,
    inzage: Inzagelimiet,
) -> APIRouter:
    """Assessment's routes."""
    api = APIRouter()
    toegang = Toegang(auth, parties)
    _rapport_routes(api, assessment, auth, toegang, clock, inzage)
    _pkvw_routes(api, assessment, auth, toegang, clock)
    _maatregel_routes(api, assessment, auth, toegang, clock)
    return api


def _rapport_routes(
    api: APIRouter,
    assessment: Assessment,
    auth: Auth,
    toegang: Toegang,
    clock: Clock,
    inzage: Inzagelimiet,
) -> None:
    """The report: draft, list, revise, submit, read."""

    @api.post(
        "/aanvragen/{aanvraag_id}/rapport",
        status_code=status.HTTP_201_CREATED,
        response_model=RapportStand,
        summary="Stel het rapport op (versie 1) na beide gesprekken en de woningscan",
        tags=["rapport"],
    )
    def stel_op(
        aanvraag_id: UUID,
        concept: Concept,
        request: Request,
        response: Response,
        principal: Annotated[Principal, Depends(auth.require(Role.adviseur))],
        idempotency_key: IdempotencyKey = None,
    ) -> RapportStand:
        ctx = request_context(request, principal, clock)
        sleutel = (
            None if idempotency_key is None else (f"{OPSTELLEN}|{principal.sub}", idempotency_key)
        )
        result = assessment.stel_rapport_op(aanvraag_id, concept, ctx, sleutel)
        response.headers["Location"] = f"/rapporten/{result.stand.rapport_id}"
        if result.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        return result.stand

    @api.get(
        "/aanvragen/{aanvraag_id}/rapporten",
        response_model=list[RapportStand],
        summary="Het rapport van een dossier: stand en maatregelen, zonder inhoud",
        tags=["rapport"],
    )
    def rapporten(
        aanvraag_id: UUID,
        _: Annotated[Principal, Depends(auth.require(*STAFF))],
    ) -> list[RapportStand]:
        assessment.register.known(aanvraag_id)
        rapport_id = assessment.rapport_van(aanvraag_id)
        return [] if rapport_id is None else [stand_van(assessment.rapport(rapport_id))]

    @api.put(
        "/rapporten/{rapport_id}",
        response_model=RapportStand,
        summary="Herzie het rapport (alleen als concept of na afkeuring): een nieuwe versie",
        tags=["rapport"],
    )
    def herzie(
        rapport_id: UUID,
        concept: Concept,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.adviseur))],
    ) -> RapportStand:
        ctx = request_context(request, principal, clock)
        return stand_van(assessment.herzie_rapport(rapport_id, concept, ctx))

    @api.post(
        "/rapporten/{rapport_id}/indienen",
        response_model=RapportStand,
        summary="Bied de huidige versie ter toetsing aan bij de BVA",
        tags=["rapport"],
    )
    def dien_in(
        rapport_id: UUID,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.adviseur))],
    ) -> RapportStand:
        ctx = request_context(request, principal, clock)
        return stand_van(assessment.dien_rapport_in(rapport_id, ctx))

    @api.get(
        "/rapporten/{rapport_id}",
        response_model=RapportInzage,
        summary="Lees een versie van het rapport (elke inzage wordt vastgelegd)",
        description="Every read is on record. One person reads one report at most"
        " WEERBAAR_REPORT_READS_PER_HOUR times an hour; more get 429 with Retry-After.",
        tags=["rapport"],
        responses={429: {"description": "this person read this report too often this hour"}},
    )
    def lees(
        rapport_id: UUID,
        request: Request,
        response: Response,
        principal: Annotated[
            Principal, Depends(auth.require(*STAFF, Role.bestuurder, Role.werkgever))
        ],
        versie: Annotated[int | None, Query(ge=1, le=100_000)] = None,
    ) -> RapportInzage:
        rol = lezer_rol(principal)
        rapport = assessment.rapport_of_none(rapport_id)
        if rapport is None:
            toegang.onbekend(request, principal, rol)
        toegang.als_partij(request, principal, rapport.aanvraag_id, rol)
        ctx = request_context(request, principal, clock)
        inzage.tel(rapport.id, ctx)
        try:
            gelezen = assessment.lees_rapport(rapport, rol, versie, ctx)
        except Weigering as weigering:
            toegang.weiger(request, principal, weigering)
        response.headers["Cache-Control"] = "no-store"
        return RapportInzage(
            rapport_id=rapport.id,
            aanvraag_id=rapport.aanvraag_id,
            versie=gelezen.versie,
            status=rapport.status,
            inhoud_hash=gelezen.inhoud_hash,
            opgesteld_op=gelezen.opgesteld_op,
            inhoud=gelezen.inhoud,
            vergeten=gelezen.vergeten,
        )


def _pkvw_routes(
    api: APIRouter, assessment: Assessment, auth: Auth, toegang: Toegang, clock: Clock
) -> None:
    """The bestuurder's PKVW."""

    @api.post(
        "/aanvragen/{aanvraag_id}/pkvw",
        response_model=PkvwStand,
        summary="Meld de PKVW-status (bestuurder): verklaring, dan certificaat",
        tags=["pkvw"],
    )
    def meld_pkvw(
        aanvraag_id: UUID,
        melding: PkvwMelding,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.bestuurder))],
    ) -> PkvwStand:
        # The party check first: an unknown dossier is then refused as someone else's is.
        toegang.als_partij(request, principal, aanvraag_id, public.Rol.BESTUURDER)
        assessment.register.known(aanvraag_id)
        ctx = request_context(request, principal, clock)
        return assessment.wijzig_pkvw(
            aanvraag_id,
            public.PkvwStatus(melding.status),
            melding.afgegeven_op,
            melding.nummer,
            ctx,
        )

    @api.get(
        "/aanvragen/{aanvraag_id}/pkvw",
        response_model=PkvwStand,
        summary="De PKVW-status van de bestuurder",
        tags=["pkvw"],
    )
    def pkvw(
        aanvraag_id: UUID,
        request: Request,
        principal: Annotated[
            Principal,
            Depends(auth.require(*STAFF, Role.secretariaat, Role.bestuurder, Role.werkgever)),
        ],
    ) -> PkvwStand:
        if not principal.has_role(*STAFF, Role.secretariaat):
            toegang.eigen_partijen(request, principal, aanvraag_id)
        assessment.register.known(aanvraag_id)
        return assessment.pkvw(aanvraag_id, request_context(request, principal, clock))


def _maatregel_routes(
    api: APIRouter, assessment: Assessment, auth: Auth, toegang: Toegang, clock: Clock
) -> None:
    """The measures of the approved report."""

    @api.get(
        "/aanvragen/{aanvraag_id}/maatregelen",
        response_model=MaatregelenOverzicht,
        summary="De maatregelen van het goedgekeurde rapport: status en wie betaalt",
        tags=["maatregelen"],
    )
    def maatregelen(
        aanvraag_id: UUID,
        request: Request,
        principal: Annotated[
            Principal,
            Depends(auth.require(*STAFF, Role.secretariaat, Role.bestuurder, Role.werkgever)),
        ],
    ) -> MaatregelenOverzicht:
        # Staff (and the secretariat, who sees every dossier) see the measures without their
        # descriptions once approved; the parties see them when they may read the report.
        rol: public.Rol | None = None
        if not principal.has_role(*STAFF, Role.secretariaat):
            rol = lezer_rol(principal)
            toegang.als_partij(request, principal, aanvraag_id, rol)
        assessment.register.known(aanvraag_id)
        rapport = assessment.goedgekeurd_rapport(aanvraag_id)
        if rol is public.Rol.BESTUURDER and rapport is None:
            toegang.weiger(request, principal, Weigering("nog_niet_goedgekeurd"))
        if rol is public.Rol.WERKGEVER and (rapport is None or not rapport.vrijgegeven):
            toegang.weiger(request, principal, Weigering("nog_niet_vrijgegeven"))
        if rapport is None:
            raise Conflict(
                "Dit dossier heeft nog geen goedgekeurd rapport.", code="nog_niet_goedgekeurd"
            )
        return assessment.maatregelen(rapport, request_context(request, principal, clock))

    @api.post(
        "/maatregelen/{maatregel_id}/uitgevoerd",
        response_model=MaatregelStand,
        summary="Leg vast dat een maatregel is uitgevoerd (door de uitvoerder)",
        tags=["maatregelen"],
    )
    def uitgevoerd(
        maatregel_id: UUID,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.bestuurder, Role.werkgever))],
    ) -> MaatregelStand:
        plaats = assessment.maatregel_plaats(maatregel_id)
        if plaats is None:
            toegang.onbekend(request, principal, lezer_rol(principal))
        rapport_id, aanvraag_id = plaats
        partijen = toegang.eigen_partijen(request, principal, aanvraag_id)
        ctx = request_context(request, principal, clock)
        try:
            rapport = assessment.voer_maatregel_uit(rapport_id, maatregel_id, partijen, ctx)
        except Weigering as weigering:
            toegang.weiger(request, principal, weigering)
        uitvoering = rapport.uitgevoerd[maatregel_id]
        return MaatregelStand(
            maatregel_id=maatregel_id,
            rapport_id=rapport_id,
            aanvraag_id=aanvraag_id,
            status="uitgevoerd",
            uitgevoerd_door=uitvoering.door,
            uitgevoerd_op=uitvoering.op,
        )
