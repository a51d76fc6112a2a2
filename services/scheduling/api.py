"""Scheduling's HTTP API: contact, appointments, conversations, woningscan and toelichting."""

# No `from __future__ import annotations` here: FastAPI must evaluate the `Depends(...)` in the
# route signatures, which refer to the router function's local `auth`.
import logging
from datetime import date, datetime, time, timedelta
from typing import Annotated, Protocol
from uuid import UUID

from fastapi import APIRouter, Body, Depends, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from services.scheduling.application import Idempotency, Scheduling
from services.scheduling.domain import (
    MAX_DUUR,
    MIN_DUUR,
    Afspraak,
    AfspraakStatus,
    AfspraakVerzoek,
    ContactStatus,
    Partij,
    Planning,
    Soort,
    StopReden,
    Toelichting,
    ToelichtingStatus,
    Vorm,
)
from shared.contracts.envelope import UtcDatetime
from shared.platform.access import opaque_actor_id
from shared.platform.auth import Auth, Principal, Role
from shared.platform.errors import Ongeldig
from shared.platform.idempotency import IdempotencyKey
from shared.platform.model import Clock
from shared.platform.parties import Partijen
from shared.platform.wiring import request_context

log = logging.getLogger(__name__)

STAFF = (Role.secretariaat, Role.adviseur)


class Parties(Protocol):
    """Which parties of a dossier a caller is (intake knows; see shared.platform.parties)."""

    def of(self, aanvraag_id: UUID, principal: Principal) -> Partijen:
        """The parties this principal is in the dossier (empty when none)."""
        ...


class AfspraakView(BaseModel):
    """An appointment as staff and the services see it (with the video link)."""

    afspraak_id: UUID
    aanvraag_id: UUID
    soort: Soort
    vorm: Vorm
    gepland_op: datetime
    duur_minuten: int
    adviseur_id: str
    video_link: str | None
    status: AfspraakStatus
    partijen: list[Partij] = Field(description="The parties the appointment is with.")
    gevoerd_op: datetime | None
    woningscan_uitgevoerd_op: datetime | None


class ToelichtingView(BaseModel):
    """A party's request for a toelichting."""

    aanvraag_id: UUID
    partij: Partij
    aangevraagd_op: datetime
    status: ToelichtingStatus = Field(
        description="open: waits for an appointment; gepland: has one; gevoerd: served."
    )
    afspraak_id: UUID | None


class PlanningView(BaseModel):
    """The planning of a dossier as the secretariat sees it."""

    aanvraag_id: UUID
    contact_deadline: datetime
    contact_status: ContactStatus
    contact_op: datetime | None
    gestopt: StopReden | None = Field(description="Why nothing more is planned, if so.")
    afspraken: list[AfspraakView]
    rapport_ontvangen: list[Partij] = Field(
        description="The parties that received the report and so may ask for a toelichting."
    )
    toelichtingen: list[ToelichtingView]


class VerzetVerzoek(BaseModel):
    """Move an appointment."""

    model_config = ConfigDict(extra="forbid")

    gepland_op: UtcDatetime = Field(
        description="New start; in the future (in the past with `achteraf`). The whole "
        "appointment lies on a working day within working hours."
    )
    duur_minuten: int | None = Field(default=None, ge=MIN_DUUR, le=MAX_DUUR)
    achteraf: StrictBool = Field(
        default=False,
        description="The appointment took place at the new time already and is recorded "
        "afterwards: the new start must have passed.",
    )


class GevoerdVerzoek(BaseModel):
    """Record that an appointment took place."""

    model_config = ConfigDict(extra="forbid")

    woningscan_uitgevoerd: StrictBool = Field(
        default=False, description="Only in the gesprek_bestuurder: the woningscan was done."
    )


class VrijeDag(BaseModel):
    """A weekday that is no working day: a feestdag of the calendar or one of its extra days."""

    datum: date
    naam: str


class Werktijden(BaseModel):
    """When appointments may lie: the working days of a period and the working hours of each
    (the same calendar that sets the contact deadline and refuses other times with 422)."""

    tijdzone: str = Field(description="The IANA time zone of the days and hours.")
    kalender: str = Field(description="The calendar profile (e.g. algemene_termijnenwet).")
    begin: time = Field(description="Working hours start (local time).")
    einde: time = Field(description="Working hours end (local time); an appointment ends by it.")
    min_duur_minuten: int
    max_duur_minuten: int
    werkdagen: list[date] = Field(description="The working days of the period, in order.")
    vrije_dagen: list[VrijeDag] = Field(description="The period's weekdays that are not.")


def afspraak_view(aanvraag_id: UUID, afspraak: Afspraak) -> AfspraakView:
    """The view of one appointment."""
    return AfspraakView(
        aanvraag_id=aanvraag_id,
        partijen=list(afspraak.partijen),
        **afspraak.model_dump(exclude={"partijen"}),
    )


def _in_dossier(changed: tuple[Planning, Afspraak]) -> AfspraakView:
    planning, afspraak = changed
    return afspraak_view(planning.id, afspraak)


def _toelichting_view(planning: Planning, toelichting: Toelichting) -> ToelichtingView:
    return ToelichtingView(
        aanvraag_id=planning.id,
        partij=toelichting.partij,
        aangevraagd_op=toelichting.aangevraagd_op,
        status=planning.toelichting_status(toelichting),
        afspraak_id=toelichting.afspraak_id,
    )


def planning_view(planning: Planning) -> PlanningView:
    """The view of a planning."""
    return PlanningView(
        aanvraag_id=planning.id,
        contact_deadline=planning.deadline,
        contact_status=planning.contact_status,
        contact_op=planning.contact_op,
        gestopt=planning.gestopt_reden if planning.gestopt else None,
        afspraken=[afspraak_view(planning.id, a) for a in planning.afspraken],
        rapport_ontvangen=sorted(planning.rapport_ontvangen),
        toelichtingen=[_toelichting_view(planning, t) for t in planning.toelichtingen],
    )


def router(scheduling: Scheduling, auth: Auth, clock: Clock, parties: Parties) -> APIRouter:
    """Scheduling's routes."""
    api = APIRouter()

    @api.get(
        "/werktijden",
        response_model=Werktijden,
        summary="Werkdagen en werktijden van een periode: wanneer afspraken mogen liggen",
        tags=["planning"],
    )
    def werktijden(
        _: Annotated[Principal, Depends(auth.require(*STAFF, Role.compliance))],
        van: Annotated[
            date | None, Query(description="First day (default: today, in the calendar's zone).")
        ] = None,
        dagen: Annotated[int, Query(ge=1, le=366, description="Calendar days from `van`.")] = 31,
    ) -> Werktijden:
        kalender = scheduling.calendar
        eerste = van or kalender.local(clock.now()).date()
        werkdagen: list[date] = []
        vrij: list[VrijeDag] = []
        try:
            for index in range(dagen):
                dag = eerste + timedelta(days=index)
                if kalender.is_working_day(dag):
                    werkdagen.append(dag)
                elif dag.weekday() < 5:
                    vrij.append(VrijeDag(datum=dag, naam=kalender.holiday_name(dag) or "Vrij"))
        except ValueError:
            raise Ongeldig(
                [{"field": "query.van", "rule": "outside_calendar_years"}],
                "De kalender kent deze jaren niet.",
            ) from None
        return Werktijden(
            tijdzone=kalender.profile.timezone,
            kalender=kalender.profile.name,
            begin=kalender.hours.start,
            einde=kalender.hours.end,
            min_duur_minuten=MIN_DUUR,
            max_duur_minuten=MAX_DUUR,
            werkdagen=werkdagen,
            vrije_dagen=vrij,
        )

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
        return planning_view(scheduling.neem_contact_op(aanvraag_id, ctx))

    @api.get(
        "/aanvragen/{aanvraag_id}/planning",
        response_model=PlanningView,
        summary="De planning van een dossier, met de afspraken",
        tags=["planning"],
    )
    def planning(
        aanvraag_id: UUID,
        _: Annotated[Principal, Depends(auth.require(*STAFF, Role.compliance))],
    ) -> PlanningView:
        return planning_view(scheduling.planning(aanvraag_id))

    @api.post(
        "/aanvragen/{aanvraag_id}/afspraken",
        status_code=status.HTTP_201_CREATED,
        response_model=AfspraakView,
        summary="Plan een afspraak (secretariaat; Idempotency-Key gehonoreerd)",
        tags=["afspraken"],
    )
    def plan(
        aanvraag_id: UUID,
        verzoek: AfspraakVerzoek,
        request: Request,
        response: Response,
        principal: Annotated[Principal, Depends(auth.require(Role.secretariaat))],
        idempotency_key: IdempotencyKey = None,
    ) -> AfspraakView:
        ctx = request_context(request, principal, clock)
        key = (
            None
            if idempotency_key is None
            else Idempotency(
                f"POST /aanvragen/{{aanvraag_id}}/afspraken|{principal.sub}", idempotency_key
            )
        )
        # The adviseur is named by a pseudonym, like every person in an event: the same one
        # their own actions carry (the id given is their sub).
        verzoek = verzoek.model_copy(update={"adviseur_id": opaque_actor_id(verzoek.adviseur_id)})
        result = scheduling.plan_afspraak(aanvraag_id, verzoek, ctx, key)
        afspraak_id = result.afspraak.afspraak_id
        response.headers["Location"] = f"/afspraken/{afspraak_id}"
        if result.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        log.info(
            "afspraak gepland",
            extra={"aanvraag_id": str(aanvraag_id), "afspraak_id": str(afspraak_id)},
        )
        return afspraak_view(result.aanvraag_id, result.afspraak)

    @api.get(
        "/afspraken",
        response_model=list[AfspraakView],
        summary="Mijn afspraken (adviseur): de afspraken die ik voer, met deze status",
        tags=["afspraken"],
    )
    def mijn_afspraken(
        principal: Annotated[Principal, Depends(auth.require(Role.adviseur))],
        afspraak_status: Annotated[
            AfspraakStatus,
            Query(
                alias="status",
                description="gepland: the earliest first (also those whose start has passed"
                " and that are still to be recorded as held); gevoerd, geannuleerd: the latest"
                " first.",
            ),
        ] = "gepland",
        limit: Annotated[int, Query(ge=1, le=200)] = 100,
    ) -> list[AfspraakView]:
        # Only the caller's own: the appointments name the adviseur by the pseudonym of the
        # sub they were planned for, which is the caller's own sub here.
        return [
            afspraak_view(planning.id, afspraak)
            for planning, afspraak in scheduling.afspraken_van(
                opaque_actor_id(principal.sub), afspraak_status, limit
            )
        ]

    @api.get(
        "/afspraken/{afspraak_id}",
        response_model=AfspraakView,
        summary="Een afspraak (waar de Location van het plannen naar wijst)",
        tags=["afspraken"],
    )
    def afspraak(
        afspraak_id: UUID,
        _: Annotated[Principal, Depends(auth.require(*STAFF, Role.compliance))],
    ) -> AfspraakView:
        return _in_dossier(scheduling.afspraak(afspraak_id))

    @api.post(
        "/afspraken/{afspraak_id}/verzetten",
        response_model=AfspraakView,
        summary="Verzet een geplande afspraak",
        tags=["afspraken"],
    )
    def verzet(
        afspraak_id: UUID,
        verzoek: VerzetVerzoek,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(*STAFF))],
    ) -> AfspraakView:
        ctx = request_context(request, principal, clock)
        return _in_dossier(
            scheduling.verzet_afspraak(
                afspraak_id,
                verzoek.gepland_op,
                verzoek.duur_minuten,
                ctx,
                achteraf=verzoek.achteraf,
            )
        )

    @api.post(
        "/afspraken/{afspraak_id}/annuleren",
        response_model=AfspraakView,
        summary="Annuleer een geplande afspraak",
        tags=["afspraken"],
    )
    def annuleer(
        afspraak_id: UUID,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(*STAFF))],
    ) -> AfspraakView:
        ctx = request_context(request, principal, clock)
        return _in_dossier(scheduling.annuleer_afspraak(afspraak_id, ctx))

    @api.post(
        "/afspraken/{afspraak_id}/gevoerd",
        response_model=AfspraakView,
        summary="Leg vast dat het gesprek is gevoerd (met de woningscan, als die toen is gedaan)",
        tags=["afspraken"],
    )
    def gevoerd(
        afspraak_id: UUID,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(*STAFF))],
        verzoek: Annotated[GevoerdVerzoek | None, Body()] = None,
    ) -> AfspraakView:
        ctx = request_context(request, principal, clock)
        woningscan = verzoek.woningscan_uitgevoerd if verzoek is not None else False
        return _in_dossier(scheduling.leg_gesprek_vast(afspraak_id, woningscan, ctx))

    @api.post(
        "/afspraken/{afspraak_id}/woningscan",
        response_model=AfspraakView,
        summary="Leg een woningscan vast die na het gesprek met de bestuurder is gedaan",
        tags=["afspraken"],
    )
    def woningscan(
        afspraak_id: UUID,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.adviseur))],
    ) -> AfspraakView:
        ctx = request_context(request, principal, clock)
        return _in_dossier(scheduling.leg_woningscan_vast(afspraak_id, ctx))

    @api.post(
        "/aanvragen/{aanvraag_id}/toelichting",
        response_model=ToelichtingView,
        summary="Vraag een toelichting aan (bestuurder of werkgever van het dossier)",
        tags=["toelichting"],
    )
    def toelichting(
        aanvraag_id: UUID,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.bestuurder, Role.werkgever))],
    ) -> ToelichtingView:
        partij = _partij_van(parties.of(aanvraag_id, principal), principal)
        if partij is None:
            auth.refuse(request, principal, "niet_eigen_dossier", status=404)
        ctx = request_context(request, principal, clock)
        return _toelichting_view(*scheduling.vraag_toelichting_aan(aanvraag_id, partij, ctx))

    @api.get(
        "/internal/afspraken/{afspraak_id}",
        response_model=AfspraakView,
        summary="Claim-check: een afspraak met de videolink (alleen diensten)",
        tags=["intern"],
    )
    def intern(
        afspraak_id: UUID,
        principal: Annotated[Principal, Depends(auth.require(Role.dienst))],
    ) -> AfspraakView:
        planning, afspraak = scheduling.afspraak(afspraak_id)
        # The owner logs every hand-out of data it keeps private: who, which dossier, which field.
        log.info(
            "private data handed out",
            extra={
                "aanvraag_id": str(planning.id),
                "afspraak_id": str(afspraak_id),
                # A service (only they reach this route), named as itself: no person's id.
                "to": principal.sub,
                "field": "afspraak.video_link",
            },
        )
        return afspraak_view(planning.id, afspraak)

    return api


def _partij_van(partijen: Partijen, principal: Principal) -> Partij | None:
    """The party a caller acts as: a role it holds that intake confirms for this dossier."""
    if principal.has_role(Role.bestuurder) and "bestuurder" in partijen.partijen:
        return "bestuurder"
    if principal.has_role(Role.werkgever) and "werkgever" in partijen.partijen:
        return "werkgever"
    return None
