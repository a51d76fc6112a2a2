"""Intake's HTTP API: registration, the dossier, the list, withdrawal and the audit trail."""

# No `from __future__ import annotations` here: FastAPI must evaluate the `Depends(...)` in the
# route signatures, which refer to the router function's local `auth`.
import base64
import logging
import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import AwareDatetime, BaseModel, Field

from services.intake.application import Intake, RegistrationLimits, email_hash
from services.intake.domain import Aanmelding, Adres, BewaarplichtReden
from services.intake.projections.audit import (
    MEDIA_TYPES,
    WACHTENDEN,
    Controle,
    Ketencontrole,
    build,
    render,
)
from services.intake.projections.dossier import (
    Dossier,
    Status,
    TrailPosition,
    audit_counts,
    audit_trail,
    audit_trail_page,
    list_dossiers,
    list_dossiers_json,
    read_dossier,
    read_dossier_per,
)
from shared.platform.auth import Auth, Principal, Role
from shared.platform.errors import NietBeschikbaar, NietGevonden, Ongeldig
from shared.platform.idempotency import IdempotencyKey
from shared.platform.model import Clock
from shared.platform.wiring import request_context

log = logging.getLogger(__name__)

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
STAFF = (Role.secretariaat, Role.adviseur, Role.bva, Role.compliance)


def zoals_partij_het_ziet(found: Dossier, principal: Principal, today: date) -> Dossier:
    """The dossier as its answer shows it to the caller: who pays each measure today, and for a
    werkgever no measures before the bestuurder released the report (one rule for the dossier
    and for the rows of a list)."""
    found = found.met_betalers(today)
    if (
        not principal.has_role(*STAFF)
        and not principal.has_role(Role.bestuurder)
        and (found.rapport is None or found.rapport.vrijgegeven_op is None)
    ):
        # The werkgever learns of the report's measures only once the bestuurder consented.
        found = found.model_copy(update={"maatregelen": ()})
    return found


def _selectie(
    auth: Auth,
    request: Request,
    principal: Principal,
    status: str | None,
    organisatie_code: str | None,
) -> tuple[bool, str | None, str | None]:
    """Whose list the caller may ask for: (a party's list, the organisation filter, the
    bestuurder's e-mail hash); a selection the caller may not make is refused on record."""
    if principal.has_role(Role.secretariaat, Role.compliance):
        return False, organisatie_code, None
    # The BVA's review queue: the dossiers whose report awaits review, and nothing else.
    if principal.has_role(Role.bva) and status == "ter_toetsing":
        return False, organisatie_code, None
    if principal.has_role(Role.werkgever):
        # Always the token's organisation: a filter naming another one is refused on record
        # (stricter than narrowing it away silently: the attempt is visible).
        if not principal.organisatie:
            auth.refuse(request, principal, "geen_organisatie", status=403)
        if organisatie_code is not None and organisatie_code != principal.organisatie:
            auth.refuse(request, principal, "andere_organisatie", status=403)
        return True, principal.organisatie, None
    if principal.has_role(Role.bestuurder):
        # Always the dossiers bound to the token's e-mail hash (the rule of GET /aanvragen/{id}):
        # the other filters can only narrow that.
        if not principal.email:
            auth.refuse(request, principal, "geen_email", status=403)
        return True, organisatie_code, email_hash(principal.email)
    auth.refuse(request, principal, "alleen_ter_toetsing", status=403)


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


class Bewaarplicht(BaseModel):
    """A legal hold: why the dossier's history must be kept (a code, never free text)."""

    reden: BewaarplichtReden


class BewaarplichtStand(BaseModel):
    """The legal hold now in place, if any."""

    bewaarplicht: BewaarplichtReden | None


class Ketenverificatie(BaseModel):
    """Whether every service's event log verified against its hash chain and signed checkpoints."""

    uitgevoerd: bool = Field(description="false: the logs could not be read (see toelichting)")
    in_orde: bool | None
    diensten: dict[str, str] = Field(description="the outcome per service")
    toelichting: str
    gestart_op: AwareDatetime = Field(description="when this verification started")

    @classmethod
    def van(cls, controle: Controle) -> "Ketenverificatie":
        v = controle.verificatie
        return cls(
            uitgevoerd=v.uitgevoerd,
            in_orde=v.in_orde,
            diensten=dict(v.diensten),
            toelichting=v.toelichting,
            gestart_op=controle.gestart_op,
        )


class AuditTelling(BaseModel):
    """How many events a dossier's audit trail holds, all and per kind."""

    gebeurtenissen: int = Field(description="every event of the trail")
    per_gebeurtenis: dict[str, int] = Field(
        description="per event name (`RapportIngezien`, `ToegangGeweigerd`, …)"
    )
    geweigerde_pogingen: int = Field(
        description="the refused attempts its ToegangGeweigerd events stand for (one each, an"
        " anonymous window's the number it carries, `aantal`)"
    )


#: The largest page of the audit trail, and the page when only its start (`na`) is given.
AUDIT_PAGINA_MAX = 1000
AUDIT_PAGINA = 100
#: A page's start as ``cursor`` writes it, before base64url: the row's time in microseconds
#: since 1970 (UTC), and its event id.
_POSITIE = re.compile(r"(-?[0-9]{1,19})/([A-Za-z0-9._:|-]{1,128})")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _onbekende_positie() -> Ongeldig:
    return Ongeldig(
        [{"field": "query.na", "rule": "audit_position"}],
        "na is geen positie in het audittrail van dit dossier; gebruik de Link van de vorige"
        " pagina, of begin zonder na.",
    )


def cursor(position: TrailPosition) -> str:
    """The opaque ``na`` of the page after ``position`` (base64url, without padding)."""
    micros = (position.time - _EPOCH) // timedelta(microseconds=1)
    return _base64url(f"{micros}/{position.event_id}".encode("ascii"))


def positie(na: str) -> TrailPosition:
    """The position a ``na`` stands for; ``Ongeldig`` unless ``cursor`` could have written it
    (its one encoding: padding, stray bits or other characters are refused too)."""
    try:
        raw = base64.urlsafe_b64decode(na + "=" * (-len(na) % 4))
        match = _POSITIE.fullmatch(raw.decode("ascii"))
        if match is None or _base64url(raw) != na:
            raise _onbekende_positie()
        time = _EPOCH + timedelta(microseconds=int(match[1]))
    except (ValueError, OverflowError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise _onbekende_positie() from None
    return TrailPosition(time, match[2])


def _base64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def eenmaal(request: Request, *names: str) -> None:
    """Refuse a query that gives one of ``names`` more than once (which one would count is
    not the caller's to guess)."""
    twice = [name for name in names if len(request.query_params.getlist(name)) > 1]
    if twice:
        raise Ongeldig(
            [{"field": f"query.{name}", "rule": "once"} for name in twice],
            "Geef elke parameter hoogstens één keer.",
        )


class Ontvanger(BaseModel):
    """Claim-check answer: the address a notification goes to."""

    email: str


def router(
    intake: Intake,
    auth: Auth,
    clock: Clock,
    limits: RegistrationLimits | None = None,
) -> APIRouter:
    """Intake's routes (``limits``: how often the public registration may be used)."""
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
        idempotency_key: IdempotencyKey = None,
    ) -> AanvraagAangemaakt:
        ctx = request_context(request, None, clock)
        source = auth.source_of(request)

        def admit(checked: Aanmelding) -> None:
            if limits is not None:
                limits.admit(source, checked, ctx.now)

        result = intake.dien_aanvraag_in(aanmelding, ctx, idempotency_key, admit)
        response.headers["Location"] = f"/aanvragen/{result.aanvraag_id}"
        if result.replayed:
            response.headers["Idempotent-Replayed"] = "true"
        log.info("aanvraag ingediend", extra={"aanvraag_id": str(result.aanvraag_id)})
        return AanvraagAangemaakt(aanvraag_id=result.aanvraag_id)

    @api.get(
        "/aanvragen/{aanvraag_id}",
        response_model=Dossier,
        summary="Het dossier (de projectie over alle diensten), nu of zoals vastgelegd op `per`",
        tags=["aanvragen"],
    )
    def dossier(
        aanvraag_id: UUID,
        request: Request,
        principal: Annotated[
            Principal, Depends(auth.require(*STAFF, Role.bestuurder, Role.werkgever))
        ],
        per: Annotated[
            AwareDatetime | None,
            Query(
                description="RFC 3339 time with offset: the dossier as it was recorded then "
                "(only the events recorded up to that moment)."
            ),
        ] = None,
    ) -> Dossier:
        check_dossier_access(request, principal, aanvraag_id)
        found = (
            read_dossier(intake, aanvraag_id)
            if per is None
            else read_dossier_per(intake, aanvraag_id, per)
        )
        if found is None:
            raise NietGevonden("Onbekend dossier.")
        return zoals_partij_het_ziet(
            found, principal, (per or clock.now()).astimezone(AMSTERDAM).date()
        )

    @api.get(
        "/aanvragen",
        response_model=list[Dossier],
        summary="Dossiers met filters (secretariaat, compliance; de BVA alleen ter_toetsing; "
        "een werkgever die van de eigen organisatie, een bestuurder de eigen)",
        tags=["aanvragen"],
    )
    def dossiers(
        request: Request,
        principal: Annotated[
            Principal,
            Depends(
                auth.require(
                    Role.secretariaat, Role.compliance, Role.bva, Role.werkgever, Role.bestuurder
                )
            ),
        ],
        status: Status | None = None,
        deadline_verstreken: bool | None = None,
        organisatie_code: Annotated[
            str | None, Query(pattern=r"^(GM[0-9]{4}|PV[0-9]{2}|WS[0-9]{4})$")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
        na_ingediend_op: Annotated[
            AwareDatetime | None,
            Query(
                description="Keyset paging: the `ingediend_op` of the last dossier of the "
                "previous page (with `na_aanvraag_id`); as fast deep in the list as at its top."
            ),
        ] = None,
        na_aanvraag_id: Annotated[
            UUID | None,
            Query(description="Keyset paging: the `aanvraag_id` of that last dossier."),
        ] = None,
    ) -> Response:
        party, organisatie_code, bestuurder_hash = _selectie(
            auth, request, principal, status, organisatie_code
        )
        if offset and (na_ingediend_op is not None or na_aanvraag_id is not None):
            # A keyset page starts where the last one ended; skipping rows past it would bring
            # back the cost of a deep offset that the keyset is there to avoid.
            raise Ongeldig(
                [{"field": "query.offset", "rule": "not_with_keyset"}],
                "Gebruik offset niet samen met na_ingediend_op en na_aanvraag_id.",
            )
        if (na_ingediend_op is None) != (na_aanvraag_id is None):
            raise Ongeldig(
                [{"field": "query.na_aanvraag_id", "rule": "na_ingediend_op and na_aanvraag_id"}],
                "Geef voor de volgende pagina zowel na_ingediend_op als na_aanvraag_id.",
            )
        na = (
            (na_ingediend_op, na_aanvraag_id)
            if na_ingediend_op is not None and na_aanvraag_id is not None
            else None
        )
        if party:
            # A party's rows are what its GET /aanvragen/{id} shows it, row by row.
            today = clock.now().astimezone(AMSTERDAM).date()
            rows = list_dossiers(
                intake,
                status=status,
                deadline_verstreken=deadline_verstreken,
                organisatie_code=organisatie_code,
                bestuurder_email_hash=bestuurder_hash,
                limit=limit,
                offset=offset,
                na=na,
            )
            body = (
                "["
                + ",".join(
                    zoals_partij_het_ziet(row, principal, today).model_dump_json() for row in rows
                )
                + "]"
            )
            return Response(body.encode(), media_type="application/json")
        # The stored views as they are (each written from a validated Dossier): the model
        # above documents the answer.
        return Response(
            list_dossiers_json(
                intake,
                status=status,
                deadline_verstreken=deadline_verstreken,
                organisatie_code=organisatie_code,
                limit=limit,
                offset=offset,
                na=na,
            ),
            media_type="application/json",
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

    return api


def compliance_router(
    intake: Intake,
    auth: Auth,
    clock: Clock,
    ketencontrole: Ketencontrole | None = None,
) -> APIRouter:
    """Compliance's routes: a dossier's audit trail (whole or by page) and its counts, legal
    holds, the audit export and the chains' verification (``ketencontrole``: how the event logs
    are verified; None: they are not)."""
    api = APIRouter()

    @api.get(
        "/aanvragen/{aanvraag_id}/audit",
        summary="Alle gebeurtenissen van het dossier, over alle diensten (compliance)",
        description="Every event of the dossier in the order recorded (oldest first), or with"
        " `limit` and/or `na` one page of it. A page that has a next carries its address in"
        ' the `Link` header (`</aanvragen/{id}/audit?limit=…&na=…>; rel="next"`); the last'
        " page has none. `na` is opaque: use it as given. The order is by time, and a page"
        " continues after the last row of the one before: the pages hold every event once,"
        " those recorded while reading at the end. An event that reaches intake late with a"
        " time before a page's start (a service's relay held up) is in the next reading from"
        " the first page.",
        tags=["audit"],
        responses={
            200: {
                "headers": {
                    "Link": {
                        "description": 'The next page (`rel="next"`), when there is one.',
                        "schema": {"type": "string"},
                    }
                }
            }
        },
    )
    def audit(
        aanvraag_id: UUID,
        request: Request,
        response: Response,
        _: Annotated[Principal, Depends(auth.require(Role.compliance))],
        limit: Annotated[
            int | None,
            Query(
                ge=1,
                le=AUDIT_PAGINA_MAX,
                description=f"At most this many events (a page; {AUDIT_PAGINA} with `na` alone).",
            ),
        ] = None,
        na: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=200,
                pattern=r"^[A-Za-z0-9_-]+$",
                description="Where the page starts: the `na` of the previous page's `Link`.",
            ),
        ] = None,
    ) -> list[dict[str, Any]]:
        eenmaal(request, "limit", "na")
        if limit is None and na is None:
            trail = audit_trail(intake, aanvraag_id)
            if not trail:
                raise NietGevonden("Onbekend dossier.")
            return trail
        limit = limit or AUDIT_PAGINA
        page = audit_trail_page(intake, aanvraag_id, limit, None if na is None else positie(na))
        if page is None:
            raise _onbekende_positie()
        if na is None and not page.events:
            raise NietGevonden("Onbekend dossier.")
        if page.next is not None:
            volgende = f"/aanvragen/{aanvraag_id}/audit?limit={limit}&na={cursor(page.next)}"
            response.headers["Link"] = f'<{volgende}>; rel="next"'
        return page.events

    @api.get(
        "/aanvragen/{aanvraag_id}/audit/telling",
        response_model=AuditTelling,
        summary="Hoeveel gebeurtenissen het audittrail van het dossier heeft, per soort"
        " (compliance)",
        tags=["audit"],
    )
    def audit_telling(
        aanvraag_id: UUID,
        _: Annotated[Principal, Depends(auth.require(Role.compliance))],
    ) -> AuditTelling:
        per_gebeurtenis, pogingen = audit_counts(intake, aanvraag_id)
        if not per_gebeurtenis:
            raise NietGevonden("Onbekend dossier.")
        return AuditTelling(
            gebeurtenissen=sum(per_gebeurtenis.values()),
            per_gebeurtenis=per_gebeurtenis,
            geweigerde_pogingen=pogingen,
        )

    @api.post(
        "/aanvragen/{aanvraag_id}/bewaarplicht",
        response_model=BewaarplichtStand,
        summary="Leg een bewaarplicht op: de bewaartermijnen worden opgeschort (compliance)",
        tags=["audit"],
    )
    def leg_bewaarplicht_op(
        aanvraag_id: UUID,
        body: Bewaarplicht,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.compliance))],
    ) -> BewaarplichtStand:
        ctx = request_context(request, principal, clock)
        intake.leg_bewaarplicht_op(aanvraag_id, body.reden, ctx)
        return BewaarplichtStand(bewaarplicht=body.reden)

    @api.delete(
        "/aanvragen/{aanvraag_id}/bewaarplicht",
        response_model=BewaarplichtStand,
        summary="Hef de bewaarplicht op: de bewaartermijnen gelden weer (compliance)",
        tags=["audit"],
    )
    def hef_bewaarplicht_op(
        aanvraag_id: UUID,
        request: Request,
        principal: Annotated[Principal, Depends(auth.require(Role.compliance))],
    ) -> BewaarplichtStand:
        intake.hef_bewaarplicht_op(aanvraag_id, request_context(request, principal, clock))
        return BewaarplichtStand(bewaarplicht=None)

    @api.get(
        "/audit/export",
        summary="Auditverslag van een dossier of een periode: JSON, CSV of HTML (compliance)",
        tags=["audit"],
        response_class=Response,
        responses={
            200: {
                "description": "The export; HTML and JSON state the chain verification.",
                "content": {media: {} for media in MEDIA_TYPES.values()},
            }
        },
    )
    def audit_export(
        _: Annotated[Principal, Depends(auth.require(Role.compliance))],
        aanvraag_id: UUID | None = None,
        van: Annotated[AwareDatetime | None, Query(description="from (RFC 3339)")] = None,
        tot: Annotated[AwareDatetime | None, Query(description="until, exclusive")] = None,
        formaat: Literal["json", "csv", "html"] = "json",
        verifieer: Annotated[
            bool, Query(description="verify the event logs against their hash chains")
        ] = True,
    ) -> Response:
        if aanvraag_id is None and (van is None or tot is None):
            raise Ongeldig(
                [{"field": "query.aanvraag_id", "rule": "aanvraag_id, or van and tot"}],
                "Geef een dossier (aanvraag_id) of een periode (van en tot).",
            )
        verificatie = ketencontrole.nu().verificatie if verifieer and ketencontrole else None
        with intake.datastore.get_connection() as conn:
            export = build(
                conn,
                aanvraag_id=aanvraag_id,
                van=van,
                tot=tot,
                verificatie=verificatie,
                now=clock.now(),
            )
        if export is None:
            raise NietGevonden("Onbekend dossier.")
        return Response(render(export, formaat), media_type=MEDIA_TYPES[formaat])

    @api.get(
        "/audit/verificatie",
        response_model=Ketenverificatie,
        summary="Kloppen de hash-ketens van alle diensten? De laatste controle (compliance)",
        description="Every service's event log recomputed against its hash chain and signed"
        " checkpoints. The answer is a verification started at most"
        " WEERBAAR_CHAIN_VERIFICATION_MAX_AGE_S ago (its start in `gestart_op`); with"
        " `opnieuw=true`, one started after the request. One runs at a time; requests that"
        f" arrive meanwhile share it. At most {WACHTENDEN} wait for a running one; more get 429"
        " with Retry-After.",
        tags=["audit"],
        responses={
            429: {"description": "a verification runs and enough requests wait for it"},
            503: {"description": "the chains are not verified by this process"},
        },
    )
    def ketenverificatie(
        _: Annotated[Principal, Depends(auth.require(Role.compliance))],
        opnieuw: Annotated[
            bool, Query(description="a verification started after this request")
        ] = False,
    ) -> Ketenverificatie:
        if ketencontrole is None:
            raise NietBeschikbaar("De hash-ketens worden hier niet gecontroleerd.")
        return Ketenverificatie.van(ketencontrole.nu() if opnieuw else ketencontrole.recent())

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
