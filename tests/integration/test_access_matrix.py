"""The access matrix: every endpoint of every service × every role × the dossier states that matter.

The table below is written by hand from domain.md (roles, HTTP API table) and issue 4 (attribute
rules), not read from the code: it states who may do what, and the test holds the code to it. Each
cell is one request against the five services built in-process by their ``bootstrap`` on real
PostgreSQL, with dossiers taken through the process over the real APIs (``inprocess.py``).

A cell is one of:
- allowed: 2xx with the dossier's data, or a 4xx that is not 401/403 (404/409/422) because the
  role may take the step but the dossier's state does not allow it (no refusal on record);
- refused: 401 without a token, 403 for a role that may not, 404 for a bestuurder or werkgever of
  another dossier (the dossier is not theirs to know about) — each with ToegangGeweigerd on record
  in the service's own store, attributed to the dossier.

Cells where the code disagrees with domain.md are marked ``xfail(strict=True)`` with the reason.
Every endpoint the services serve must have a row: a new endpoint without one fails
``test_every_endpoint_has_a_row``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from httpx import Response

from services.assessment.domain import RapportIngezienVastgelegd
from shared.platform.access import ANY_ROUTE
from shared.platform.auth import Role
from shared.platform.model import utcnow
from tests.integration.inprocess import (
    ADVISEUR_SUB,
    ANDERE_ORGANISATIE,
    BVA_SUB,
    NU,
    ORGANISATIE,
    PUBLIC_ROUTES,
    Dossier,
    Endpoint,
    InProcessSystem,
    aanmelding,
    admitted_roles,
    rapport_inhoud,
)

pytestmark = pytest.mark.integration

# --- who is calling ------------------------------------------------------------------------------

GEEN = "geen"  # no token at all
#: The roles of domain.md, the bestuurder and werkgever both of the dossier and of another one,
#: and `dienst` (a service token for the internal claim-check routes).
PRINCIPALS = (
    GEEN,
    "aanvrager",
    "bestuurder",
    "bestuurder_ander",
    "werkgever",
    "werkgever_ander",
    "secretariaat",
    "adviseur",
    "bva",
    "compliance",
    "dienst",
)
#: A BVA reviewer who wrote the report (four-eyes); only on the rows that name it.
BVA_AUTEUR = "bva_auteur"
PARTIJEN = ("bestuurder", "werkgever")


@dataclass(frozen=True)
class Verwacht:
    """The expected answer of one cell."""

    status: int
    geweigerd: bool  # a refusal: ToegangGeweigerd must be on record

    def __str__(self) -> str:
        return f"{self.status}{' (geweigerd)' if self.geweigerd else ''}"


OK = Verwacht(200, geweigerd=False)
AANGEMAAKT = Verwacht(201, geweigerd=False)
GEEN_TOKEN = Verwacht(401, geweigerd=True)
VERBODEN = Verwacht(403, geweigerd=True)
VERBORGEN = Verwacht(404, geweigerd=True)


def stap(status: int) -> Verwacht:
    """Allowed to call, but the dossier's state does not allow the step (no refusal)."""
    return Verwacht(status, geweigerd=False)


Body = Callable[[Dossier], Any]
Check = Callable[[Dossier, Any], bool]


def _same(d: Dossier, body: Mapping[str, Any]) -> bool:
    """The answer is about the dossier (and its report, where both name one)."""
    if body.get("aanvraag_id") != str(d.aanvraag_id):
        return False
    if "rapport_id" in body and d.rapport_id is not None:
        return bool(body["rapport_id"] == str(d.rapport_id))
    return True


def over_dossier(d: Dossier, body: Any) -> bool:
    """Default check: a dict about the dossier, or a list holding something about it."""
    if isinstance(body, dict):
        return _same(d, body)
    if isinstance(body, list):
        return any(isinstance(item, dict) and _same(d, item) for item in body)
    return False


@dataclass(frozen=True)
class Rij:
    """One endpoint in one dossier state, and who may call it there."""

    service: str
    method: str
    path: str
    stand: str
    #: roles that may call it on any dossier
    rollen: frozenset[str] = frozenset()
    #: bestuurder / werkgever: only on their own dossier (another dossier: 404)
    partijen: frozenset[str] = frozenset()
    publiek: bool = False
    ok: Verwacht = OK
    #: cells where this state answers otherwise than the role rule says
    afwijkend: Mapping[str, Verwacht] = field(default_factory=dict)
    #: principals beyond PRINCIPALS for this row (the author as BVA reviewer)
    extra: Mapping[str, Verwacht] = field(default_factory=dict)
    #: path parameter → attribute of the Dossier (defaults below)
    ids: Mapping[str, str] = field(default_factory=dict)
    body: Body | None = None
    params: Callable[[Dossier], dict[str, Any]] | None = None
    check: Check = over_dossier
    #: an allowed answer is a read of the report's content: RapportIngezien must be on record
    leest_rapport: bool = False
    #: principals who may not (yet) see the report's measures: the answer lists none
    zonder_maatregelen: frozenset[str] = frozenset()
    #: principals whose allowed answer is a list without the dossier (another party's own list)
    zonder_dossier: frozenset[str] = frozenset()
    #: principal → why the code disagrees with domain.md (the cell is xfail(strict=True))
    gaten: Mapping[str, str] = field(default_factory=dict)

    @property
    def endpoint(self) -> Endpoint:
        """The endpoint of this row."""
        return Endpoint(self.service, self.method, self.path)

    def principals(self) -> tuple[str, ...]:
        """Every principal this row has a cell for."""
        return (*PRINCIPALS, *self.extra)

    def verwacht(self, principal: str) -> Verwacht:
        """The expected answer for one principal, from the rule and this state's exceptions."""
        exceptions = {**self.afwijkend, **self.extra}
        if principal in exceptions:
            return exceptions[principal]
        role, _, ander = principal.partition("_")
        if self.publiek or role in self.rollen or (role in self.partijen and not ander):
            return self.ok
        if principal == GEEN:
            return GEEN_TOKEN
        return VERBORGEN if role in self.partijen else VERBODEN


def _set(*names: str) -> frozenset[str]:
    return frozenset(names)


STAFF = _set("secretariaat", "adviseur", "bva", "compliance")
BEIDE = _set(*PARTIJEN)


def _status(value: str) -> Check:
    def check(d: Dossier, body: Any) -> bool:
        return isinstance(body, dict) and body.get("status") == value

    return check


def _nieuwe_aanvraag(d: Dossier, body: Any) -> bool:
    return isinstance(body, dict) and UUID(body["aanvraag_id"]) != d.aanvraag_id


def _audit(d: Dossier, body: Any) -> bool:
    return (
        isinstance(body, list)
        and bool(body)
        and all(envelope["subject"] == str(d.aanvraag_id) for envelope in body)
    )


def _audit_telling(d: Dossier, body: Any) -> bool:
    return (
        isinstance(body, dict)
        and body["per_gebeurtenis"].get("AanvraagIngediend") == 1
        and body["gebeurtenissen"] == sum(body["per_gebeurtenis"].values())
    )


def _audit_export(d: Dossier, body: Any) -> bool:
    return (
        isinstance(body, dict)
        and body["reikwijdte"] == {"aanvraag_id": str(d.aanvraag_id)}
        and all(r["aanvraag_id"] == str(d.aanvraag_id) for r in body["gebeurtenissen"])
    )


def _ketenverificatie(d: Dossier, body: Any) -> bool:
    return isinstance(body, dict) and {"uitgevoerd", "in_orde", "diensten", "gestart_op"} <= set(
        body
    )


def _bewaarplicht(reden: str | None) -> Check:
    def check(d: Dossier, body: Any) -> bool:
        return isinstance(body, dict) and body == {"bewaarplicht": reden}

    return check


def _ontvanger(d: Dossier, body: Any) -> bool:
    return bool(body == {"email": d.email})


def _adres(d: Dossier, body: Any) -> bool:
    return isinstance(body, dict) and body.get("postcode") == "3511 AB"


def _partij(d: Dossier, body: Any) -> bool:
    return bool(body == {"partijen": ["bestuurder"], "organisatie_code": d.organisatie})


def _afspraak(d: Dossier, body: Any) -> bool:
    return isinstance(body, dict) and body.get("aanvraag_id") == str(d.aanvraag_id)


def _rapport(d: Dossier, body: Any) -> bool:
    return _same(d, body) and set(body["inhoud"]) == {"bevindingen", "maatregelen"}


def _bezorgingen(d: Dossier, body: Any) -> bool:
    return (
        isinstance(body, list)
        and bool(body)
        and all(b["aanvraag_id"] == str(d.aanvraag_id) for b in body)
    )


def _toelichting(partij: str) -> Check:
    def check(d: Dossier, body: Any) -> bool:
        return _same(d, body) and body["partij"] == partij

    return check


GOEDKEURING: Body = lambda d: {"versie": 1, "inhoud_hash": d.inhoud_hash}  # noqa: E731
AFKEURING: Body = lambda d: {  # noqa: E731
    "versie": 1,
    "inhoud_hash": d.inhoud_hash,
    "redenen": ["Domein verplaatsen is te summier."],
}


# The table. Rows are grouped by service in the order of domain.md's HTTP API table; endpoints the
# table does not list (additive extensions) follow their service's listed ones, with the rule the
# role descriptions of domain.md give them.
TABEL: tuple[Rij, ...] = (
    # --- intake ----------------------------------------------------------------------------------
    Rij(
        "intake",
        "POST",
        "/aanvragen",
        "ingediend",
        publiek=True,
        ok=AANGEMAAKT,
        body=lambda d: aanmelding(f"nieuw.{d.aanvraag_id.hex[:8]}@example.org", ORGANISATIE),
        check=_nieuwe_aanvraag,
    ),
    Rij("intake", "GET", "/aanvragen/{aanvraag_id}", "ingediend", STAFF, BEIDE),
    # Withdrawn: nothing is deleted; the parties still see their dossier.
    Rij(
        "intake",
        "GET",
        "/aanvragen/{aanvraag_id}",
        "ingetrokken",
        STAFF,
        BEIDE,
        check=lambda d, body: _same(d, body) and body["status"] == "ingetrokken",
    ),
    # The dossier shows the report's measures (id, domain, cost, who, priority); a party sees
    # them when it may read the report: the bestuurder once approved, the werkgever once released.
    Rij(
        "intake",
        "GET",
        "/aanvragen/{aanvraag_id}",
        "ter_toetsing",
        STAFF,
        BEIDE,
        zonder_maatregelen=BEIDE,
    ),
    Rij(
        "intake",
        "GET",
        "/aanvragen/{aanvraag_id}",
        "goedgekeurd",
        STAFF,
        BEIDE,
        zonder_maatregelen=_set("werkgever"),
    ),
    Rij(
        "intake",
        "GET",
        "/aanvragen/{aanvraag_id}",
        "geweigerd",
        STAFF,
        BEIDE,
        zonder_maatregelen=_set("werkgever"),
    ),
    # The list: every dossier for the secretariat and compliance; a werkgever's list is always
    # its own organisation's (a filter naming another is refused on record), a bestuurder's
    # always the dossiers bound to its e-mail (its filters only narrow that, so another
    # bestuurder gets a list without the dossier).
    Rij(
        "intake",
        "GET",
        "/aanvragen",
        "ingediend",
        _set("secretariaat", "compliance"),
        BEIDE,
        params=lambda d: {"organisatie_code": ORGANISATIE, "limit": 500},
        afwijkend={"werkgever_ander": VERBODEN, "bestuurder_ander": OK},
        zonder_dossier=_set("bestuurder_ander"),
    ),
    # The BVA's review queue: the list, only of the dossiers whose report awaits review.
    Rij(
        "intake",
        "GET",
        "/aanvragen",
        "ter_toetsing",
        _set("secretariaat", "compliance", "bva"),
        BEIDE,
        params=lambda d: {"status": "ter_toetsing", "limit": 500},
        afwijkend={"werkgever_ander": OK, "bestuurder_ander": OK},
        zonder_dossier=_set("werkgever_ander", "bestuurder_ander"),
        zonder_maatregelen=BEIDE,
    ),
    # A party's list row shows what its dossier shows it: a werkgever no measures before the
    # bestuurder released the report.
    Rij(
        "intake",
        "GET",
        "/aanvragen",
        "goedgekeurd",
        _set("secretariaat", "compliance"),
        BEIDE,
        params=lambda d: {"status": "goedgekeurd", "limit": 500},
        afwijkend={"werkgever_ander": OK, "bestuurder_ander": OK},
        zonder_dossier=_set("werkgever_ander", "bestuurder_ander"),
        zonder_maatregelen=_set("werkgever"),
    ),
    Rij(
        "intake",
        "POST",
        "/aanvragen/{aanvraag_id}/intrekken",
        "ingediend",
        _set("secretariaat"),
        _set("bestuurder"),
        check=_status("ingetrokken"),
    ),
    Rij(
        "intake",
        "GET",
        "/aanvragen/{aanvraag_id}/audit",
        "ingediend",
        _set("compliance"),
        check=_audit,
    ),
    # The trail's counts (the portal's totals beside a page of the trail): compliance only.
    Rij(
        "intake",
        "GET",
        "/aanvragen/{aanvraag_id}/audit/telling",
        "ingediend",
        _set("compliance"),
        check=_audit_telling,
    ),
    # Issue #5 (compliance): the audit export, and legal holds that suspend retention.
    Rij(
        "intake",
        "GET",
        "/audit/export",
        "ingediend",
        _set("compliance"),
        params=lambda d: {"aanvraag_id": str(d.aanvraag_id), "verifieer": "false"},
        check=_audit_export,
    ),
    # The chains' verification (system-wide, no dossier's data): compliance only.
    Rij(
        "intake",
        "GET",
        "/audit/verificatie",
        "ingediend",
        _set("compliance"),
        check=_ketenverificatie,
    ),
    Rij(
        "intake",
        "POST",
        "/aanvragen/{aanvraag_id}/bewaarplicht",
        "ingediend",
        _set("compliance"),
        body=lambda d: {"reden": "onderzoek"},
        check=_bewaarplicht("onderzoek"),
    ),
    Rij(
        "intake",
        "DELETE",
        "/aanvragen/{aanvraag_id}/bewaarplicht",
        "ingediend",
        _set("compliance"),
        check=_bewaarplicht(None),
    ),
    # Not in domain.md's table: the secretariat closes a dossier explicitly ("or explicitly
    # closed"); the secretariat runs the process.
    Rij(
        "intake",
        "POST",
        "/aanvragen/{aanvraag_id}/afsluiten",
        "vrijgegeven",
        _set("secretariaat"),
        body=lambda d: {"toelichting": "Afgesloten na overleg met de bestuurder."},
        check=_status("afgesloten"),
    ),
    # The claim-check API (domain.md: "fetches it from the owner over an authenticated internal
    # API"): services only.
    Rij(
        "intake",
        "GET",
        "/internal/aanvragen/{aanvraag_id}/ontvanger",
        "ingediend",
        _set("dienst"),
        check=_ontvanger,
    ),
    Rij(
        "intake",
        "GET",
        "/internal/aanvragen/{aanvraag_id}/adres",
        "ingediend",
        _set("dienst"),
        check=_adres,
    ),
    Rij(
        "intake",
        "POST",
        "/internal/aanvragen/{aanvraag_id}/partij",
        "ingediend",
        _set("dienst"),
        body=lambda d: {"email": d.email},
        check=_partij,
    ),
    # --- scheduling ------------------------------------------------------------------------------
    Rij(
        "scheduling", "POST", "/aanvragen/{aanvraag_id}/contact", "ingediend", _set("secretariaat")
    ),
    Rij(
        "scheduling",
        "POST",
        "/aanvragen/{aanvraag_id}/afspraken",
        "contact",
        _set("secretariaat"),
        ok=AANGEMAAKT,
        body=lambda d: {
            "soort": "gesprek_werkgever",
            "gepland_op": (NU + timedelta(days=7)).isoformat(),
            "duur_minuten": 60,
            "adviseur_id": ADVISEUR_SUB,
            "video_link": "https://video.example.org/kamer-2",
        },
        check=_afspraak,
    ),
    Rij(
        "scheduling",
        "POST",
        "/afspraken/{afspraak_id}/verzetten",
        "gepland",
        _set("secretariaat", "adviseur"),
        body=lambda d: {"gepland_op": (NU + timedelta(days=8)).isoformat()},
        check=_afspraak,
    ),
    Rij(
        "scheduling",
        "POST",
        "/afspraken/{afspraak_id}/annuleren",
        "gepland",
        _set("secretariaat", "adviseur"),
        check=_afspraak,
    ),
    Rij(
        "scheduling",
        "POST",
        "/afspraken/{afspraak_id}/gevoerd",
        "gepland",
        _set("secretariaat", "adviseur"),
        body=lambda d: {"woningscan_uitgevoerd": False},
        check=_afspraak,
    ),
    # The toelichting: each party once it has received the report.
    Rij(
        "scheduling",
        "POST",
        "/aanvragen/{aanvraag_id}/toelichting",
        "ter_toetsing",
        partijen=BEIDE,
        afwijkend={"bestuurder": stap(409), "werkgever": stap(409)},
    ),
    Rij(
        "scheduling",
        "POST",
        "/aanvragen/{aanvraag_id}/toelichting",
        "goedgekeurd",
        partijen=BEIDE,
        afwijkend={"werkgever": stap(409)},
        check=_toelichting("bestuurder"),
    ),
    Rij(
        "scheduling",
        "POST",
        "/aanvragen/{aanvraag_id}/toelichting",
        "geweigerd",
        partijen=BEIDE,
        afwijkend={"werkgever": stap(409)},
        check=_toelichting("bestuurder"),
    ),
    Rij(
        "scheduling",
        "POST",
        "/aanvragen/{aanvraag_id}/toelichting",
        "vrijgegeven",
        partijen=BEIDE,
        check=lambda d, body: _same(d, body) and body["partij"] in PARTIJEN,
    ),
    # Not in domain.md's table. The planning and an appointment: the secretariat plans, the
    # adviseur holds the conversations, compliance reads everything. The parties follow their
    # dossier's progress through intake's dossier.
    Rij(
        "scheduling",
        "GET",
        "/aanvragen/{aanvraag_id}/planning",
        "gepland",
        _set("secretariaat", "adviseur", "compliance"),
    ),
    # The working days and hours appointments may lie on (the portal's date picker): staff.
    Rij(
        "scheduling",
        "GET",
        "/werktijden",
        "ingediend",
        _set("secretariaat", "adviseur", "compliance"),
        check=lambda d, body: isinstance(body, dict) and bool(body["werkdagen"]),
    ),
    Rij(
        "scheduling",
        "GET",
        "/afspraken/{afspraak_id}",
        "gepland",
        _set("secretariaat", "adviseur", "compliance"),
        check=_afspraak,
    ),
    # My appointments: an adviseur's own (those planned for its sub), no one else's list.
    Rij(
        "scheduling",
        "GET",
        "/afspraken",
        "gepland",
        _set("adviseur"),
        params=lambda d: {"status": "gepland", "limit": 200},
    ),
    # The woningscan recorded after the conversation: the adviseur ("hold conversations and the
    # woningscan"). Already recorded in this state: the same answer, nothing new.
    Rij(
        "scheduling",
        "POST",
        "/afspraken/{afspraak_id}/woningscan",
        "onderzocht",
        _set("adviseur"),
        ids={"afspraak_id": "afspraak_bestuurder"},
        check=_afspraak,
    ),
    Rij(
        "scheduling",
        "GET",
        "/internal/afspraken/{afspraak_id}",
        "gepland",
        _set("dienst"),
        check=_afspraak,
    ),
    # --- assessment ------------------------------------------------------------------------------
    Rij(
        "assessment",
        "POST",
        "/aanvragen/{aanvraag_id}/rapport",
        "gepland",
        _set("adviseur"),
        afwijkend={"adviseur": stap(409)},
        body=lambda d: rapport_inhoud(),
    ),
    Rij(
        "assessment",
        "POST",
        "/aanvragen/{aanvraag_id}/rapport",
        "ingetrokken",
        _set("adviseur"),
        afwijkend={"adviseur": stap(409)},
        body=lambda d: rapport_inhoud(),
    ),
    Rij(
        "assessment",
        "POST",
        "/aanvragen/{aanvraag_id}/rapport",
        "onderzocht",
        _set("adviseur"),
        ok=AANGEMAAKT,
        body=lambda d: rapport_inhoud(),
    ),
    Rij(
        "assessment",
        "PUT",
        "/rapporten/{rapport_id}",
        "concept",
        _set("adviseur"),
        body=lambda d: rapport_inhoud("herzien"),
    ),
    Rij(
        "assessment",
        "PUT",
        "/rapporten/{rapport_id}",
        "afgekeurd",
        _set("adviseur"),
        body=lambda d: rapport_inhoud("herzien"),
        check=lambda d, body: _same(d, body) and body["versie"] == 2,
    ),
    Rij(
        "assessment",
        "PUT",
        "/rapporten/{rapport_id}",
        "ter_toetsing",
        _set("adviseur"),
        afwijkend={"adviseur": stap(409)},
        body=lambda d: rapport_inhoud("herzien"),
    ),
    Rij("assessment", "POST", "/rapporten/{rapport_id}/indienen", "concept", _set("adviseur")),
    # Reading the report, by state: adviseur and compliance always; the BVA once submitted; the
    # bestuurder once approved; the werkgever once released. Never the secretariat.
    Rij(
        "assessment",
        "GET",
        "/rapporten/{rapport_id}",
        "concept",
        _set("adviseur", "bva", "compliance"),
        BEIDE,
        afwijkend={"bva": VERBODEN, "bestuurder": VERBODEN, "werkgever": VERBODEN},
        check=_rapport,
        leest_rapport=True,
    ),
    Rij(
        "assessment",
        "GET",
        "/rapporten/{rapport_id}",
        "ter_toetsing",
        _set("adviseur", "bva", "compliance"),
        BEIDE,
        afwijkend={"bestuurder": VERBODEN, "werkgever": VERBODEN},
        check=_rapport,
        leest_rapport=True,
    ),
    Rij(
        "assessment",
        "GET",
        "/rapporten/{rapport_id}",
        "afgekeurd",
        _set("adviseur", "bva", "compliance"),
        BEIDE,
        afwijkend={"bestuurder": VERBODEN, "werkgever": VERBODEN},
        check=_rapport,
        leest_rapport=True,
    ),
    Rij(
        "assessment",
        "GET",
        "/rapporten/{rapport_id}",
        "geweigerd",
        _set("adviseur", "bva", "compliance"),
        BEIDE,
        afwijkend={"werkgever": VERBODEN},
        check=_rapport,
        leest_rapport=True,
    ),
    Rij(
        "assessment",
        "GET",
        "/rapporten/{rapport_id}",
        "goedgekeurd",
        _set("adviseur", "bva", "compliance"),
        BEIDE,
        afwijkend={"werkgever": VERBODEN},
        check=_rapport,
        leest_rapport=True,
    ),
    Rij(
        "assessment",
        "GET",
        "/rapporten/{rapport_id}",
        "vrijgegeven",
        _set("adviseur", "bva", "compliance"),
        BEIDE,
        check=_rapport,
        leest_rapport=True,
    ),
    # PKVW: domain.md's table lists "bestuurder, werkgever" for the PKVW and the measures
    # together; the PKVW is "the bestuurder's own responsibility and cost", so only the
    # bestuurder reports it.
    Rij(
        "assessment",
        "POST",
        "/aanvragen/{aanvraag_id}/pkvw",
        "ingediend",
        partijen=_set("bestuurder"),
        body=lambda d: {"status": "verklaring"},
    ),
    # The measures: each party records the ones it carries out; the werkgever only once the
    # report was released to it.
    Rij(
        "assessment",
        "POST",
        "/maatregelen/{maatregel_id}/uitgevoerd",
        "goedgekeurd",
        partijen=BEIDE,
        afwijkend={"werkgever": VERBODEN},
        ids={"maatregel_id": "maatregel_bestuurder"},
        check=lambda d, body: _same(d, body) and body["status"] == "uitgevoerd",
    ),
    Rij(
        "assessment",
        "POST",
        "/maatregelen/{maatregel_id}/uitgevoerd",
        "vrijgegeven",
        partijen=BEIDE,
        afwijkend={"werkgever": VERBODEN},
        ids={"maatregel_id": "maatregel_bestuurder"},
        check=lambda d, body: _same(d, body) and body["uitgevoerd_door"] == "bestuurder",
    ),
    Rij(
        "assessment",
        "POST",
        "/maatregelen/{maatregel_id}/uitgevoerd",
        "goedgekeurd",
        partijen=BEIDE,
        afwijkend={"bestuurder": VERBODEN, "werkgever": stap(409)},
        ids={"maatregel_id": "maatregel_werkgever"},
    ),
    Rij(
        "assessment",
        "POST",
        "/maatregelen/{maatregel_id}/uitgevoerd",
        "geweigerd",
        partijen=BEIDE,
        afwijkend={"bestuurder": VERBODEN, "werkgever": stap(409)},
        ids={"maatregel_id": "maatregel_werkgever"},
    ),
    Rij(
        "assessment",
        "POST",
        "/maatregelen/{maatregel_id}/uitgevoerd",
        "vrijgegeven",
        partijen=BEIDE,
        afwijkend={"bestuurder": VERBODEN},
        ids={"maatregel_id": "maatregel_werkgever"},
        check=lambda d, body: _same(d, body) and body["uitgevoerd_door"] == "werkgever",
    ),
    # Not in domain.md's table. The report's state without content: the staff who work on it;
    # the PKVW and the measures (who pays): everyone who follows the dossier, the parties on
    # their own dossier, and the measures only once that party may read the report.
    Rij(
        "assessment",
        "GET",
        "/aanvragen/{aanvraag_id}/rapporten",
        "concept",
        _set("adviseur", "bva", "compliance"),
    ),
    Rij("assessment", "GET", "/aanvragen/{aanvraag_id}/pkvw", "ingediend", STAFF, BEIDE),
    Rij(
        "assessment",
        "GET",
        "/aanvragen/{aanvraag_id}/maatregelen",
        "ter_toetsing",
        STAFF,
        BEIDE,
        afwijkend={
            **{role: stap(409) for role in STAFF},
            "bestuurder": VERBODEN,
            "werkgever": VERBODEN,
        },
    ),
    Rij(
        "assessment",
        "GET",
        "/aanvragen/{aanvraag_id}/maatregelen",
        "goedgekeurd",
        STAFF,
        BEIDE,
        afwijkend={"werkgever": VERBODEN},
    ),
    Rij(
        "assessment",
        "GET",
        "/aanvragen/{aanvraag_id}/maatregelen",
        "geweigerd",
        STAFF,
        BEIDE,
        afwijkend={"werkgever": VERBODEN},
    ),
    Rij("assessment", "GET", "/aanvragen/{aanvraag_id}/maatregelen", "vrijgegeven", STAFF, BEIDE),
    # --- approval --------------------------------------------------------------------------------
    Rij(
        "approval",
        "POST",
        "/rapporten/{rapport_id}/goedkeuren",
        "ter_toetsing",
        _set("bva"),
        extra={BVA_AUTEUR: VERBODEN},
        body=GOEDKEURING,
        check=lambda d, body: _same(d, body) and body["status"] == "goedgekeurd",
    ),
    Rij(
        "approval",
        "POST",
        "/rapporten/{rapport_id}/afkeuren",
        "ter_toetsing",
        _set("bva"),
        extra={BVA_AUTEUR: VERBODEN},
        body=AFKEURING,
        check=lambda d, body: _same(d, body) and body["status"] == "afgekeurd",
    ),
    Rij(
        "approval",
        "POST",
        "/rapporten/{rapport_id}/instemming",
        "ter_toetsing",
        partijen=_set("bestuurder"),
        afwijkend={"bestuurder": stap(409)},
        body=lambda d: {"instemming": True},
    ),
    Rij(
        "approval",
        "POST",
        "/rapporten/{rapport_id}/instemming",
        "goedgekeurd",
        partijen=_set("bestuurder"),
        body=lambda d: {"instemming": True},
        check=lambda d, body: _same(d, body) and body["status"] == "vrijgegeven",
    ),
    # Not in domain.md's table. The decisions with the reasons of a rejection: the BVA, the
    # adviseur who revises, compliance. Where the decisions stand (no content, no reasons): also
    # the parties, who follow their dossier.
    Rij(
        "approval",
        "GET",
        "/rapporten/{rapport_id}/beoordelingen",
        "ter_toetsing",
        _set("adviseur", "bva", "compliance"),
    ),
    Rij(
        "approval",
        "GET",
        "/rapporten/{rapport_id}/status",
        "geweigerd",
        _set("adviseur", "bva", "compliance"),
        BEIDE,
        check=lambda d, body: _same(d, body) and body["status"] == "instemming_geweigerd",
    ),
    Rij(
        "approval",
        "GET",
        "/rapporten/{rapport_id}/status",
        "ter_toetsing",
        _set("adviseur", "bva", "compliance"),
        BEIDE,
    ),
    # --- notifications ---------------------------------------------------------------------------
    Rij(
        "notifications",
        "GET",
        "/notificaties",
        "ingediend",
        _set("secretariaat", "compliance"),
        params=lambda d: {"aanvraag_id": str(d.aanvraag_id)},
        check=_bezorgingen,
    ),
    # Not in domain.md's table: webhooks (issue 5). A werkgever manages its own organisation's
    # subscriptions (another organisation's: 404), the secretariaat all; compliance reads.
    Rij(
        "notifications",
        "POST",
        "/webhooks/abonnementen",
        "ingediend",
        _set("secretariaat", "werkgever"),
        ok=AANGEMAAKT,
        body=lambda d: {"callback_url": "https://integrator.example.org/weerbaar"},
        check=lambda d, body: body["secret"].startswith("whsec_"),
    ),
    Rij(
        "notifications",
        "GET",
        "/webhooks/abonnementen",
        "ingediend",
        _set("secretariaat", "compliance", "werkgever"),
        check=lambda d, body: isinstance(body, list),
    ),
    Rij(
        "notifications",
        "GET",
        "/webhooks/abonnementen/{abonnement_id}",
        "abonnement",
        _set("secretariaat", "compliance"),
        _set("werkgever"),
        ids={"abonnement_id": "abonnement_id"},
        check=lambda d, body: body["abonnement_id"] == str(d.abonnement_id),
    ),
    Rij(
        "notifications",
        "DELETE",
        "/webhooks/abonnementen/{abonnement_id}",
        "abonnement",
        _set("secretariaat"),
        _set("werkgever"),
        ids={"abonnement_id": "abonnement_id"},
        check=_status("verwijderd"),
    ),
    Rij(
        "notifications",
        "GET",
        "/webhooks/abonnementen/{abonnement_id}/bezorgingen",
        "abonnement",
        _set("secretariaat", "compliance"),
        _set("werkgever"),
        ids={"abonnement_id": "abonnement_id"},
    ),
    Rij(
        "notifications",
        "POST",
        "/webhooks/bezorgingen/{bezorging_id}/opnieuw",
        "abonnement",
        _set("secretariaat"),
        _set("werkgever"),
        ok=Verwacht(202, geweigerd=False),
        ids={"bezorging_id": "bezorging_id"},
        check=lambda d, body: body["status"] == "gepland",
    ),
    # Not in domain.md's table: sending a failed e-mail again (issue 16). The secretariaat may;
    # this notification has not failed, so the step is out of order.
    Rij(
        "notifications",
        "POST",
        "/notificaties/{notificatie_id}/opnieuw",
        "notificatie",
        _set("secretariaat"),
        ok=stap(409),
        ids={"notificatie_id": "notificatie_id"},
    ),
)

#: Framework routes that are not the services' API (documentation, health and metrics).
FRAMEWORK_PATHS = frozenset(
    {
        "/metrics",
        "/openapi.json",
        "/docs",
        "/docs/assets/{name}",
        "/health/live",
        "/health/ready",
        "/contract/asyncapi.json",
        "/contract/schemas",
        "/contract/schemas/{file}",
    }
)

DEFAULT_IDS = {
    "aanvraag_id": "aanvraag_id",
    "afspraak_id": "afspraak_werkgever",
    "rapport_id": "rapport_id",
    "maatregel_id": "maatregel_bestuurder",
}


# --- the system under test -----------------------------------------------------------------------


@dataclass
class Matrix:
    """The system and the dossiers the cells share (one per state), plus another party's."""

    system: InProcessSystem
    gedeeld: dict[str, Dossier] = field(default_factory=dict)
    _ander: Dossier | None = None

    def dossier(self, stand: str, *, vers: bool) -> Dossier:
        """A dossier in ``stand``: a new one for a cell that may change it, else the shared one."""
        if vers:
            return self.system.dossier(stand)
        if stand not in self.gedeeld:
            self.gedeeld[stand] = self.system.dossier(stand)
        return self.gedeeld[stand]

    @property
    def ander(self) -> Dossier:
        """A dossier of another bestuurder at another organisation."""
        if self._ander is None:
            self._ander = self.system.dossier("ingediend", organisatie=ANDERE_ORGANISATIE)
        return self._ander

    def headers(self, principal: str, d: Dossier) -> dict[str, str]:
        """The Authorization header of a principal for a cell on dossier ``d``."""
        s = self.system
        special: dict[str, Callable[[], dict[str, str]]] = {
            GEEN: dict,
            "bestuurder": lambda: s.bestuurder(d),
            "bestuurder_ander": lambda: s.headers("bestuurder", "bst-9", email=self.ander.email),
            "werkgever": lambda: s.headers("werkgever", "wg-1", organisatie=d.organisatie),
            "werkgever_ander": lambda: s.headers(
                "werkgever", "wg-9", organisatie=self.ander.organisatie
            ),
            "adviseur": lambda: s.headers("adviseur", ADVISEUR_SUB),
            "bva": lambda: s.headers("bva", BVA_SUB),
            BVA_AUTEUR: lambda: s.headers("bva", ADVISEUR_SUB),
        }
        return special.get(principal, lambda: s.headers(principal))()


@pytest.fixture(scope="module")
def matrix(inprocess_system: InProcessSystem) -> Matrix:
    """The five services on one database for the whole module (a database per cell is slow)."""
    return Matrix(inprocess_system)


def _cell_id(rij: Rij, principal: str) -> str:
    which = "".join(f" {name}={attribute}" for name, attribute in rij.ids.items())
    return f"{rij.service} {rij.method} {rij.path}{which} [{rij.stand}] {principal}"


def _cells() -> Iterator[Any]:
    for rij in TABEL:
        for principal in rij.principals():
            marks = []
            if principal in rij.gaten:
                marks.append(pytest.mark.xfail(strict=True, reason=rij.gaten[principal]))
            yield pytest.param(rij, principal, id=_cell_id(rij, principal), marks=marks)


def _url(rij: Rij, d: Dossier) -> str:
    values = {}
    for name, attribute in {**DEFAULT_IDS, **rij.ids}.items():
        if "{" + name + "}" in rij.path:
            value = getattr(d, attribute)
            assert value is not None, f"{rij.stand} dossier has no {attribute}"
            values[name] = value
    return rij.path.format(**values)


# --- the matrix ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("rij", "principal"), list(_cells()))
def test_access_matrix(matrix: Matrix, rij: Rij, principal: str) -> None:
    verwacht = rij.verwacht(principal)
    # A call that may change the dossier gets a dossier of its own; refusals change nothing.
    vers = rij.method != "GET" and (not verwacht.geweigerd or principal in rij.gaten)
    d = matrix.dossier(rij.stand, vers=vers and not rij.publiek)
    headers = matrix.headers(principal, d)
    system = matrix.system
    mark = system.mark(rij.service)
    response: Response = system.clients[rij.service].request(
        rij.method,
        _url(rij, d),
        headers=headers,
        json=rij.body(d) if rij.body else None,
        params=rij.params(d) if rij.params else None,
    )

    assert response.status_code == verwacht.status, (
        f"{_cell_id(rij, principal)}: expected {verwacht}, got {response.status_code}"
        f" {response.text[:300]}"
    )
    if principal == GEEN:
        # Attempts without a token are counted per dossier, route and window: the first one at
        # once, the rest when the window has ended. End every window now: this attempt is then
        # on record in one event either way, as one attempt.
        for record_ended in system.components[rij.service].app.pending_records:
            record_ended(utcnow() + timedelta(days=1))
    refusals = system.refusals_since(rij.service, mark)
    if verwacht.geweigerd:
        assert response.headers["content-type"].startswith("application/problem+json")
        route = f"{rij.method} {rij.path}"
        if principal == GEEN:
            # Counted per dossier: recorded with its route when it was the window's first,
            # else among the window's others (any route).
            assert [(r.status_code, r.aantal) for r in refusals] == [(verwacht.status, 1)], (
                "an anonymous attempt must be on record, counted once"
            )
            assert refusals[0].actie in (route, ANY_ROUTE)
        else:
            assert [(r.actie, r.status_code, r.aantal) for r in refusals] == [
                (route, verwacht.status, None)
            ], "a refusal must be on record as ToegangGeweigerd, once"
        (refusal,) = refusals
        if "{" in rij.path and not rij.path.startswith("/webhooks/"):
            # (A webhook subscription belongs to an organisation, not to one dossier.)
            assert refusal.aanvraag_id == d.aanvraag_id, "the refusal belongs to the dossier"
        # Who (an opaque id), in which role, and why.
        assert refusal.reden
        if principal == GEEN:
            assert (refusal.actor_id, refusal.actor_role) == (None, None)
        else:
            assert refusal.actor_id
            assert refusal.actor_role == principal.partition("_")[0]
        if verwacht.status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
        return
    assert refusals == [], "an allowed call records no refusal"
    if verwacht.status < 300:
        _check_answer(rij, principal, d, response.json(), response.text)
        if rij.leest_rapport:
            reads = [
                e
                for e in system.stored_since("assessment", mark)
                if isinstance(e, RapportIngezienVastgelegd)
            ]
            assert [r.rapport_id for r in reads] == [d.rapport_id]


def _check_answer(rij: Rij, principal: str, d: Dossier, body: Any, text: str) -> None:
    """An allowed answer is about the dossier, with no more than the principal may see."""
    if principal in rij.zonder_dossier:
        assert isinstance(body, list), text[:300]
        assert not over_dossier(d, body), f"the {principal} lists another's dossier"
        return
    assert rij.check(d, body), f"not the dossier's data: {text[:300]}"
    if principal in rij.zonder_maatregelen:
        (gezien,) = [
            item for item in (body if isinstance(body, list) else [body]) if _same(d, item)
        ]
        assert gezien["maatregelen"] == [], f"the {principal} sees the report's measures"


# --- the table itself ----------------------------------------------------------------------------


def test_every_endpoint_has_a_row(matrix: Matrix) -> None:
    served = {
        endpoint
        for endpoint in admitted_roles(matrix.system.apps)
        if endpoint.path not in FRAMEWORK_PATHS
    }
    in_table = {rij.endpoint for rij in TABEL}
    assert sorted(map(str, served - in_table)) == [], "endpoints without a row in the matrix"
    assert sorted(map(str, in_table - served)) == [], "rows for endpoints that do not exist"


def test_public_rows_are_the_public_routes() -> None:
    public = {(r.service, r.method, r.path) for r in TABEL if r.publiek}
    assert public == {p for p in PUBLIC_ROUTES if p[2] not in FRAMEWORK_PATHS}


#: What compliance may change (issue #5): a legal hold changes no data of the dossier; it only
#: suspends the destruction of its history by retention, and only compliance may place or lift it.
COMPLIANCE_MAY = frozenset(
    Endpoint("intake", method, "/aanvragen/{aanvraag_id}/bewaarplicht")
    for method in ("POST", "DELETE")
)


def test_compliance_changes_nothing_in_the_table() -> None:
    changing = [
        r for r in TABEL if r.method != "GET" and not r.publiek and r.endpoint not in COMPLIANCE_MAY
    ]
    assert changing
    for rij in changing:
        assert rij.verwacht("compliance") == VERBODEN, rij.endpoint
    for rij in TABEL:
        if rij.endpoint in COMPLIANCE_MAY:
            assert rij.rollen == {"compliance"} and not rij.partijen, rij.endpoint


def test_the_table_and_the_declared_rules_agree(matrix: Matrix) -> None:
    """The roles a route's ``Auth.require`` admits are those the table lets through its rule.

    A cheap, whole-system view of the same question the cells answer one by one: it names every
    route where the declared roles and domain.md differ.
    """
    declared = admitted_roles(matrix.system.apps)
    differences = []
    for endpoint in sorted({r.endpoint for r in TABEL if not r.publiek}, key=str):
        rows = [r for r in TABEL if r.endpoint == endpoint]
        # A role the table lets call the endpoint in some state (else it is refused by role).
        wanted = {
            Role(principal.partition("_")[0])
            for r in rows
            for principal in PRINCIPALS
            if principal != GEEN and r.verwacht(principal) != VERBODEN
        }
        got = declared[endpoint]
        if got is None or set(got) != wanted:
            differences.append(
                f"{endpoint}: table {sorted(wanted)}, code {sorted(got) if got else got}"
            )
    assert differences == []


# --- 404 hides the dossier -----------------------------------------------------------------------

#: What a 404 may differ in between two requests: the trace of the occurrence.
PER_REQUEST = ("trace_id", "instance")


def _without_trace(response: Response) -> tuple[int, dict[str, Any]]:
    body = {k: v for k, v in response.json().items() if k not in PER_REQUEST}
    return response.status_code, body


def _hidden_cells() -> Iterator[Any]:
    for rij in TABEL:
        for principal in ("bestuurder_ander", "werkgever_ander"):
            if rij.verwacht(principal) == VERBORGEN:
                yield pytest.param(rij, principal, id=_cell_id(rij, principal))


@pytest.mark.parametrize(("rij", "principal"), list(_hidden_cells()))
def test_another_partys_dossier_looks_like_no_dossier(
    matrix: Matrix, rij: Rij, principal: str
) -> None:
    """The 404 for someone else's dossier is the 404 for a dossier that does not exist.

    Otherwise the answer tells a bestuurder or werkgever that the id is a real dossier (or report,
    or measure) of somebody else, which is what answering 404 instead of 403 is meant to hide.
    """
    d = matrix.dossier(rij.stand, vers=False)
    nergens = Dossier(
        aanvraag_id=UUID(int=1),
        email=d.email,
        organisatie=d.organisatie,
        afspraak_werkgever=UUID(int=2),
        afspraak_bestuurder=UUID(int=3),
        rapport_id=UUID(int=4),
        inhoud_hash=d.inhoud_hash,
        maatregel_bestuurder=UUID(int=5),
        maatregel_werkgever=UUID(int=6),
        abonnement_id=UUID(int=7),
        bezorging_id=UUID(int=8),
    )
    client = matrix.system.clients[rij.service]
    headers = matrix.headers(principal, d)
    answers = [
        client.request(
            rij.method,
            _url(rij, target),
            headers=headers,
            json=rij.body(d) if rij.body else None,
            params=rij.params(d) if rij.params else None,
        )
        for target in (d, nergens)
    ]
    assert _without_trace(answers[0]) == _without_trace(answers[1])
