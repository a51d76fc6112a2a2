"""Journey 7, compliance: find a dossier, read its audit trail as a timeline (who did and saw
what, when, refusals included), see the dossier as it was recorded at a chosen moment, download
the audit export (JSON, CSV, HTML), place and lift a legal hold, and see whether the services'
hash chains verified.

Everything comes from intake's compliance API with the officer's own token: the dossier
projection (now, or ``per`` a moment), its audit trail, the audit export (which verifies the
chains when it is made) and the legal hold. The portal shows what those answers hold and no
more: public events carry no personal data, actors are opaque ids.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from services.portal.application.dossierlijst import geldige_keyset
from services.portal.application.ports import Apis
from services.portal.application.teksten import (
    ROL_IN_TIJDLIJN,
    STATUS_NAMEN,
    ZONE,
    lees_moment,
    tijdstip_tekst,
)
from services.portal.application.uitkomsten import (
    Bestand,
    NietGevonden,
    Ongeldig,
    Probleem,
    Uitkomst,
    gelukt,
)

#: Dossiers on one page of the list.
PER_PAGINA = 25
#: Steps of the audit trail on one page of a dossier.
STAPPEN_PER_PAGINA = 100
#: A position in the audit trail as intake gives it: opaque, base64url, at most 200 characters.
_POSITIE = re.compile(r"[A-Za-z0-9_-]{1,200}")
#: The export's formats: the name offered, and the file's extension.
FORMATEN: dict[str, str] = {"json": "JSON", "csv": "CSV", "html": "HTML"}
#: Why a legal hold is placed (the API's codes), in words.
BEWAARPLICHT_REDENEN: dict[str, str] = {
    "rechtszaak": "Rechtszaak",
    "klacht": "Klacht",
    "onderzoek": "Onderzoek",
    "toezicht": "Toezicht",
}
#: What each event says happened, in the words of the audit export.
HANDELINGEN: dict[str, str] = {
    "AanvraagIngediend": "Aanvraag ingediend",
    "AanvraagBuitenRegeling": "Buiten de regeling vastgesteld",
    "AanvraagIngetrokken": "Aanvraag ingetrokken",
    "DossierAfgesloten": "Dossier afgesloten",
    "PersoonsgegevensVerstrekt": "Persoonsgegevens verstrekt",
    "PersoonsgegevensVergeten": "Persoonsgegevens vergeten",
    "BewaarplichtOpgelegd": "Bewaarplicht opgelegd",
    "BewaarplichtOpgeheven": "Bewaarplicht opgeheven",
    "GegevensVernietigd": "Gegevens vernietigd",
    "ContacttermijnGesteld": "Contacttermijn gesteld",
    "ContactOpgenomen": "Contact opgenomen",
    "ContacttermijnVerstreken": "Contacttermijn verstreken",
    "AfspraakGepland": "Afspraak gepland",
    "AfspraakVerzet": "Afspraak verzet",
    "AfspraakGeannuleerd": "Afspraak geannuleerd",
    "GesprekGevoerd": "Gesprek gevoerd",
    "WoningscanUitgevoerd": "Woningscan uitgevoerd",
    "ToelichtingAangevraagd": "Toelichting aangevraagd",
    "RapportOpgesteld": "Rapport opgesteld",
    "RapportHerzien": "Rapport herzien",
    "RapportTerToetsingAangeboden": "Rapport ter toetsing aangeboden",
    "RapportGoedgekeurd": "Rapport goedgekeurd",
    "RapportAfgekeurd": "Rapport afgekeurd",
    "RapportVerstrektAanBestuurder": "Rapport verstrekt aan de bestuurder",
    "InstemmingGegeven": "Instemming gegeven",
    "InstemmingGeweigerd": "Instemming geweigerd",
    "RapportVrijgegeven": "Rapport vrijgegeven aan de werkgever",
    "RapportIngezien": "Rapport gelezen",
    "PkvwStatusGewijzigd": "PKVW-status gewijzigd",
    "MaatregelUitgevoerd": "Maatregel uitgevoerd",
    "NotificatieVerzonden": "Notificatie verzonden",
    "NotificatieMislukt": "Notificatie mislukt",
    "ToegangGeweigerd": "Toegang geweigerd",
}
#: Fields of an event's data the timeline repeats: ids, versions, codes and counts, never
#: personal data (public events carry none; this keeps the page to what an auditor needs).
DETAILS: dict[str, str] = {
    "versie": "versie",
    "rol": "gelezen als",
    "soort": "soort",
    "gegevens": "gegevens",
    "reden": "reden",
    "actie": "poging",
    "status_code": "antwoord",
    "dienst": "geweigerd door",
    "aantal": "aantal",
    "status": "status",
    "instemming": "instemming",
    "binnen_termijn": "binnen de termijn",
}
#: What the officer is told after a step (the session carries the code, never data).
MELDINGEN: dict[str, str] = {
    **{
        f"bewaarplicht_{code}": f"De bewaarplicht is opgelegd (reden: {naam.lower()}). De"
        " bewaartermijnen van dit dossier zijn opgeschort."
        for code, naam in BEWAARPLICHT_REDENEN.items()
    },
    "bewaarplicht_opgeheven": "De bewaarplicht is opgeheven. De bewaartermijnen gelden weer.",
}


# --- the list ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lijstfilters:
    """The list's status filter and where the page starts (the list API's keyset)."""

    status: str = ""
    na_ingediend_op: str = ""
    na_aanvraag_id: str = ""

    @classmethod
    def uit(cls, invoer: Mapping[str, str]) -> Lijstfilters:
        """The filters in a query string; unknown or malformed values are dropped."""
        status = invoer.get("status", "")
        na_op, na_id = invoer.get("na_ingediend_op", ""), invoer.get("na_aanvraag_id", "")
        geldig_na = geldige_keyset(na_op, na_id)
        return cls(
            status=status if status in STATUS_NAMEN else "",
            na_ingediend_op=na_op if geldig_na else "",
            na_aanvraag_id=na_id if geldig_na else "",
        )

    def api_filters(self) -> dict[str, str | int]:
        """The list API's query: the filter, the keyset, one more than a page."""
        filters: dict[str, str | int] = {"limit": PER_PAGINA + 1}
        if self.status:
            filters["status"] = self.status
        if self.na_aanvraag_id:
            filters["na_ingediend_op"] = self.na_ingediend_op
            filters["na_aanvraag_id"] = self.na_aanvraag_id
        return filters

    def query(self, **na: str) -> str:
        """The list's query string for this filter (and a keyset, if given)."""
        return urlencode({k: v for k, v in {"status": self.status, **na}.items() if v})


@dataclass(frozen=True)
class LijstRegel:
    """One dossier in the list."""

    aanvraag_id: str
    ingediend_op: str
    status: str
    organisatie_code: str
    bewaarplicht: str | None


@dataclass(frozen=True)
class Lijst:
    """One page of dossiers with its filter and paging links."""

    regels: tuple[LijstRegel, ...]
    filters: Lijstfilters
    volgende: str | None
    eerste: str | None
    statussen: Mapping[str, str] = field(default_factory=lambda: STATUS_NAMEN)


def lijst(apis: Apis, filters: Lijstfilters) -> Lijst:
    """One page of dossiers (``Probleem`` when the API does not answer with one)."""
    return lijst_uit(gelukt(apis.dossiers(filters.api_filters())).lijst, filters)


def lijst_uit(dossiers: Sequence[Mapping[str, Any]], filters: Lijstfilters) -> Lijst:
    """The page made of the list API's answer (one more than a page when there is a next)."""
    getoond = dossiers[:PER_PAGINA]
    regels = tuple(
        LijstRegel(
            aanvraag_id=str(d["aanvraag_id"]),
            ingediend_op=tijdstip_tekst(d["ingediend_op"]),
            status=STATUS_NAMEN.get(str(d.get("status")), str(d.get("status"))),
            organisatie_code=str(d.get("organisatie_code", "")),
            bewaarplicht=_reden(d.get("bewaarplicht")),
        )
        for d in getoond
    )
    volgende = None
    if len(dossiers) > PER_PAGINA:
        laatste = getoond[-1]
        volgende = filters.query(
            na_ingediend_op=str(laatste["ingediend_op"]),
            na_aanvraag_id=str(laatste["aanvraag_id"]),
        )
    eerste = filters.query() if filters.na_aanvraag_id else None
    return Lijst(regels, filters, volgende, eerste)


def _reden(code: Any) -> str | None:
    return None if not code else BEWAARPLICHT_REDENEN.get(str(code), str(code))


# --- the audit trail -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Gebeurtenis:
    """One event of the audit trail: when, what, by whom (role and opaque id), where."""

    wanneer: str
    tijd: str
    naam: str
    wat: str
    dienst: str
    rol: str
    actor: str
    details: tuple[tuple[str, str], ...]

    @property
    def geweigerd(self) -> bool:
        """A refused attempt."""
        return self.naam == "ToegangGeweigerd"

    @property
    def gelezen(self) -> bool:
        """A read of the report's content."""
        return self.naam == "RapportIngezien"


def gebeurtenis(envelope: Mapping[str, Any]) -> Gebeurtenis:
    """One CloudEvent of the trail as the timeline shows it."""
    delen = str(envelope.get("type") or "?").split(".")
    naam = delen[-2] if len(delen) > 1 else delen[0]  # nl.weerbaarbestuur.<Naam>.v<N>
    data = envelope.get("data") or {}
    details = tuple(
        (label, _waarde(data[veld]))
        for veld, label in DETAILS.items()
        if data.get(veld) is not None
    )
    tijd = lees_moment(envelope.get("time"))
    rol = envelope.get("actorrole")
    return Gebeurtenis(
        wanneer=tijdstip_tekst(tijd) if tijd else "onbekend",
        tijd=tijd.isoformat() if tijd else "",
        naam=naam,
        wat=HANDELINGEN.get(naam, naam),
        dienst=str(envelope.get("source", "")).rsplit(":", 1)[-1],
        rol=ROL_IN_TIJDLIJN.get(str(rol), str(rol)) if rol else "systeem",
        actor=str(envelope.get("actorid") or "–"),
        details=details,
    )


def _waarde(waarde: Any) -> str:
    if isinstance(waarde, bool):
        return "ja" if waarde else "nee"
    return str(waarde)


@dataclass(frozen=True)
class Telling:
    """What the whole audit trail holds, counted by intake (not only the page shown)."""

    gebeurtenissen: int = 0
    weigeringen: int = 0
    inzages: int = 0

    @classmethod
    def uit(cls, telling: Mapping[str, Any]) -> Telling:
        """From intake's ``GET /aanvragen/{id}/audit/telling``: every event, the refused
        attempts (an anonymous window's refusal counts the attempts it stands for) and the
        reads of the report."""
        per = telling.get("per_gebeurtenis") or {}
        return cls(
            gebeurtenissen=int(telling.get("gebeurtenissen", 0)),
            weigeringen=int(telling.get("geweigerde_pogingen", 0)),
            inzages=int(per.get("RapportIngezien", 0)),
        )


def trailpositie(waarden: Sequence[str]) -> str:
    """Where the trail's page starts, from the query string's ``na`` values: intake's position
    as it gave it (opaque), or "" (the first page) when there is not exactly one that could be
    one."""
    return waarden[0] if len(waarden) == 1 and _POSITIE.fullmatch(waarden[0]) else ""


def volgende_positie(adres: str | None) -> str | None:
    """The ``na`` in the next page's address intake gave (its ``Link``), if it holds one."""
    if adres is None:
        return None
    return trailpositie(parse_qs(urlsplit(adres).query).get("na", [])) or None


@dataclass(frozen=True)
class DossierPagina:
    """A dossier for compliance: where it stands, its legal hold, the counts of its whole audit
    trail and one page of that trail, with its paging links (query strings; ``eerste`` "" is
    the first page, None when this is it)."""

    aanvraag_id: str
    status: str
    ingediend_op: str
    organisatie_code: str
    bewaarplicht: str | None
    bewaarplicht_code: str | None
    gebeurtenissen: tuple[Gebeurtenis, ...]
    telling: Telling = Telling()
    volgende: str | None = None
    eerste: str | None = None

    @property
    def weigeringen(self) -> int:
        """How many refused attempts the whole trail holds."""
        return self.telling.weigeringen

    @property
    def inzages(self) -> int:
        """How many reads of the report the whole trail holds."""
        return self.telling.inzages


def dossier_pagina(apis: Apis, aanvraag_id: uuid.UUID, na: str = "") -> DossierPagina:
    """The dossier, the counts of its audit trail and the page of the trail after ``na``
    (intake's position; "" the first page); ``Probleem`` when they cannot be shown.

    A position intake refuses (not one it gave, or from another dossier) starts at the top.
    """
    dossier = gelukt(apis.dossier(aanvraag_id)).data
    telling = Telling.uit(gelukt(apis.audit_telling(aanvraag_id)).data)
    uitkomst = apis.audit(aanvraag_id, STAPPEN_PER_PAGINA, na or None)
    if na and isinstance(uitkomst, Ongeldig):
        na, uitkomst = "", apis.audit(aanvraag_id, STAPPEN_PER_PAGINA)
    pagina = gelukt(uitkomst)
    return dossier_pagina_uit(
        dossier, pagina.lijst, telling, volgende_positie(pagina.volgende), eerder=bool(na)
    )


def dossier_pagina_uit(
    dossier: Mapping[str, Any],
    trail: Sequence[Mapping[str, Any]],
    telling: Telling | None = None,
    volgende: str | None = None,
    *,
    eerder: bool = False,
) -> DossierPagina:
    """The page from intake's dossier and a page of its audit trail (in the trail's own order:
    time); ``volgende`` the next page's position, ``eerder`` whether pages come before it."""
    code = dossier.get("bewaarplicht")
    return DossierPagina(
        aanvraag_id=str(dossier["aanvraag_id"]),
        status=STATUS_NAMEN.get(str(dossier["status"]), str(dossier["status"])),
        ingediend_op=tijdstip_tekst(dossier["ingediend_op"]),
        organisatie_code=str(dossier.get("organisatie_code", "")),
        bewaarplicht=_reden(code),
        bewaarplicht_code=str(code) if code else None,
        gebeurtenissen=tuple(gebeurtenis(e) for e in trail),
        telling=telling or Telling(),
        volgende=urlencode({"na": volgende}) if volgende else None,
        eerste="" if eerder else None,
    )


# --- the dossier at a moment ---------------------------------------------------------------------


def gekozen_moment(invoer: str) -> datetime | None:
    """The moment typed in the field (``2026-12-06T23:10`` or with seconds, Dutch time), or
    None when it is not one."""
    try:
        moment = datetime.fromisoformat(invoer.strip())
    except ValueError:
        return None
    if moment.tzinfo is not None or not 2000 <= moment.year <= 2999:
        return None
    return moment.replace(tzinfo=ZONE)


def veld_waarde(moment: datetime) -> str:
    """A moment as the date-time field shows it (Dutch time, to the second)."""
    return moment.astimezone(ZONE).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class TijdlijnRegel:
    """A step of the dossier as recorded up to the moment."""

    wanneer: str
    wat: str
    door: str


@dataclass(frozen=True)
class Stand:
    """The dossier as it was recorded at a moment; None: it did not exist yet then."""

    moment: str
    veld: str
    status: str | None = None
    contact_op: str | None = None
    afspraken: int = 0
    rapportversies: int = 0
    bewaarplicht: str | None = None
    tijdlijn: tuple[TijdlijnRegel, ...] = ()

    @property
    def bestond(self) -> bool:
        """Whether the dossier had been submitted by then."""
        return self.status is not None


def stand_per(apis: Apis, aanvraag_id: uuid.UUID, moment: datetime) -> Stand:
    """The dossier as recorded up to ``moment``.

    The API answers 404 both for a dossier unknown to the caller and for one not yet
    submitted at that moment; the dossier is looked up as it is now first, so a 404 at the
    moment can only mean the latter.
    """
    gelukt(apis.dossier(aanvraag_id))
    uitkomst = apis.dossier_per(aanvraag_id, moment)
    if isinstance(uitkomst, NietGevonden):
        return Stand(tijdstip_tekst(moment), veld_waarde(moment))
    return stand_uit(gelukt(uitkomst).data, moment)


def stand_uit(dossier: Mapping[str, Any], moment: datetime) -> Stand:
    """The page from intake's answer ``per`` the moment."""
    contact = lees_moment(dossier.get("contact_op"))
    rapport = dossier.get("rapport") or {}
    tijdlijn = tuple(
        TijdlijnRegel(
            wanneer=tijdstip_tekst(lees_moment(r["tijd"]) or moment),
            wat=HANDELINGEN.get(str(r["gebeurtenis"]), str(r["gebeurtenis"])),
            door=ROL_IN_TIJDLIJN.get(str(r.get("rol")), "systeem"),
        )
        for r in dossier.get("tijdlijn", ())
    )
    return Stand(
        moment=tijdstip_tekst(moment),
        veld=veld_waarde(moment),
        status=STATUS_NAMEN.get(str(dossier["status"]), str(dossier["status"])),
        contact_op=tijdstip_tekst(contact) if contact else None,
        afspraken=len(dossier.get("afspraken", ())),
        rapportversies=len(rapport.get("versies", ())),
        bewaarplicht=_reden(dossier.get("bewaarplicht")),
        tijdlijn=tijdlijn,
    )


# --- the export and the chains -------------------------------------------------------------------


def export(apis: Apis, aanvraag_id: uuid.UUID, formaat: str) -> Bestand:
    """The audit export of the dossier in a format, as the API made it."""
    if formaat not in FORMATEN:
        raise ValueError(formaat)
    uitkomst = apis.audit_export(aanvraag_id, formaat)
    if isinstance(uitkomst, Bestand):
        return uitkomst
    raise Probleem(uitkomst)


def bestandsnaam(aanvraag_id: uuid.UUID, formaat: str) -> str:
    """The download's file name: ids only."""
    return f"auditverslag-{aanvraag_id}.{formaat}"


@dataclass(frozen=True)
class Verificatie:
    """Whether the services' event logs verified against their hash chains, per service."""

    uitgevoerd: bool
    in_orde: bool | None
    toelichting: str
    diensten: tuple[tuple[str, str], ...]
    gestart_op: str


def verificatie(apis: Apis, *, opnieuw: bool = False) -> Verificatie:
    """The last verification of the chains as intake keeps it, or (``opnieuw``) a new one."""
    v = gelukt(apis.ketenverificatie(opnieuw)).data
    gestart = lees_moment(v.get("gestart_op"))
    diensten = v.get("diensten")
    in_orde = v.get("in_orde")
    return Verificatie(
        uitgevoerd=v.get("uitgevoerd") is True,
        in_orde=in_orde if isinstance(in_orde, bool) else None,
        toelichting=str(v.get("toelichting") or ""),
        diensten=tuple(sorted((str(k), str(w)) for k, w in diensten.items()))
        if isinstance(diensten, dict)
        else (),
        gestart_op=tijdstip_tekst(gestart) if gestart else "",
    )


# --- the legal hold ------------------------------------------------------------------------------


def leg_bewaarplicht_op(apis: Apis, aanvraag_id: uuid.UUID, reden: str) -> Uitkomst | None:
    """Place a legal hold; None when the reason is not one of the codes (nothing is sent)."""
    if reden not in BEWAARPLICHT_REDENEN:
        return None
    return apis.leg_bewaarplicht_op(aanvraag_id, reden)
