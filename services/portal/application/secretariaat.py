"""Journey 2, the secretariat's werkvoorraad: dossiers by status with their contact deadline in
working days, one dossier with its timeline, contact, and the appointments planned, moved and
cancelled on working days within working hours.

The working days and hours come from scheduling's API (``GET /werktijden``), the calendar that
sets the deadline and refuses other times, never from a copy of its rules here. The list is
paged by the list API's own keyset: a page asks for one more dossier than it shows, to know
whether there is a next one, and nothing ever fetches the whole list.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from services.portal.application.dossierlijst import geldige_keyset
from services.portal.application.ports import Apis
from services.portal.application.teksten import (
    AFSPRAAK_STATUS,
    ROL_IN_TIJDLIJN,
    SOORT_NAMEN,
    STATUS_NAMEN,
    VORM_NAMEN,
    dag_tekst,
    datum_tekst,
    lees_moment,
    moment_tekst,
)
from services.portal.application.uitkomsten import (
    Conflict,
    Gelukt,
    Ongeldig,
    Probleem,
    Uitkomst,
    gelukt,
)

#: Dossiers on one page of the werkvoorraad.
PER_PAGINA = 25
#: How far ahead the picker offers days, and how far the deadline count looks (calendar days).
VOORUIT_DAGEN = 42
#: How far back (calendar days) a conversation that took place can be recorded afterwards.
TERUG_DAGEN = 14
#: The picker's steps within the working hours.
STAP_MINUTEN = 30
#: How long each kind of appointment is planned for (the one at home includes the woningscan).
DUUR: dict[str, int] = {"gesprek_werkgever": 60, "gesprek_bestuurder": 120, "toelichting": 60}
TOELICHTING_STATUS: dict[str, str] = {
    "open": "Wacht op een afspraak",
    "gepland": "Afspraak gepland",
    "gevoerd": "Gevoerd",
}
PARTIJ_NAMEN: dict[str, str] = {"bestuurder": "de bestuurder", "werkgever": "de werkgever"}
#: What the secretariat is told after a step (the session carries the code, never data).
MELDINGEN: dict[str, str] = {
    "contact_vastgelegd": "Het contact is vastgelegd.",
    "afspraak_gepland": "De afspraak is gepland. De betrokkenen krijgen een bevestiging per"
    " e-mail.",
    "afspraak_verzet": "De afspraak is verzet. De betrokkenen krijgen bericht per e-mail.",
    "afspraak_achteraf": "Het gesprek is achteraf vastgelegd op het moment waarop het plaatsvond.",
    "afspraak_geannuleerd": "De afspraak is geannuleerd. De betrokkenen krijgen bericht per"
    " e-mail.",
}


# --- the calendar, as scheduling serves it ------------------------------------------------------


@dataclass(frozen=True)
class Werkkalender:
    """The working days of a period and the working hours, from ``GET /werktijden``."""

    zone: ZoneInfo
    begin: time
    einde: time
    werkdagen: tuple[date, ...]

    @classmethod
    def uit(cls, data: Mapping[str, Any]) -> Werkkalender:
        """The calendar in scheduling's answer."""
        return cls(
            zone=ZoneInfo(str(data["tijdzone"])),
            begin=time.fromisoformat(str(data["begin"])),
            einde=time.fromisoformat(str(data["einde"])),
            werkdagen=tuple(date.fromisoformat(str(d)) for d in data["werkdagen"]),
        )

    @property
    def werktijden(self) -> str:
        """``08:00–18:00``."""
        return f"{self.begin:%H:%M}–{self.einde:%H:%M}"

    def lokaal(self, moment: datetime) -> datetime:
        """A moment in the calendar's zone."""
        return moment.astimezone(self.zone)

    def moment_tekst(self, moment: datetime) -> str:
        """``dinsdag 8 december 2026 om 10:00`` (local time)."""
        return moment_tekst(moment, self.zone)

    def dag_opties(self, vanaf: date) -> list[date]:
        """The working days on or after ``vanaf`` the picker offers."""
        return [dag for dag in self.werkdagen if dag >= vanaf]

    def eerdere_dagen(self, vandaag: date) -> list[date]:
        """The working days up to and including today that a conversation held can be
        recorded on afterwards, the latest first."""
        begin = vandaag - timedelta(days=TERUG_DAGEN)
        return sorted((dag for dag in self.werkdagen if begin <= dag <= vandaag), reverse=True)

    def tijd_opties(self, duur_minuten: int) -> list[time]:
        """The start times within the working hours at which an appointment of this length
        ends by their end, in steps of ``STAP_MINUTEN``."""
        opties: list[time] = []
        dag = date(2000, 1, 3)
        start = datetime.combine(dag, self.begin)
        einde = datetime.combine(dag, self.einde)
        while start + timedelta(minutes=duur_minuten) <= einde:
            opties.append(start.time())
            start += timedelta(minutes=STAP_MINUTEN)
        return opties

    def werkdagen_over(self, laatste_dag: date, vandaag: date) -> int:
        """How many working days from today up to and including ``laatste_dag``."""
        return sum(1 for dag in self.werkdagen if vandaag <= dag <= laatste_dag)


@dataclass(frozen=True)
class Termijn:
    """The contact deadline as the werkvoorraad shows it: in words, never by colour alone."""

    tekst: str
    verstreken: bool = False
    werkdagen_over: int | None = None


def termijn(dossier: Mapping[str, Any], kalender: Werkkalender, nu: datetime) -> Termijn:
    """The contact deadline of a dossier: working days left, passed, or contact made.

    The stored deadline is the first moment after its last working day; the days left count
    the working days from today up to and including that last day.
    """
    contact_op = lees_moment(dossier.get("contact_op"))
    deadline = lees_moment(dossier.get("contact_deadline"))
    if contact_op is not None:
        op_tijd = dossier.get("contact_binnen_termijn") is not False
        wanneer = dag_tekst(contact_op, kalender.zone)
        return Termijn(f"Contact opgenomen op {wanneer}" + ("" if op_tijd else " (te laat)"))
    if dossier.get("status") in {"ingetrokken", "afgesloten"} or deadline is None:
        return Termijn("Geen contacttermijn")
    laatste = (kalender.lokaal(deadline) - timedelta(days=1)).date()
    if dossier.get("deadline_verstreken") or nu >= deadline:
        return Termijn(f"Termijn verstreken op {datum_tekst(laatste)}", verstreken=True)
    over = kalender.werkdagen_over(laatste, kalender.lokaal(nu).date())
    if over <= 1:
        return Termijn("Vandaag is de laatste werkdag", werkdagen_over=over)
    return Termijn(f"Nog {over} werkdagen (tot en met {datum_tekst(laatste)})", werkdagen_over=over)


# --- the werkvoorraad -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """The werkvoorraad's filters and where the page starts (keyset)."""

    status: str = ""
    verstreken: bool = False
    na_ingediend_op: str = ""
    na_aanvraag_id: str = ""

    @classmethod
    def uit(cls, invoer: Mapping[str, str]) -> Filters:
        """The filters in a query string; unknown or malformed values are dropped."""
        status = invoer.get("status", "")
        na_op, na_id = invoer.get("na_ingediend_op", ""), invoer.get("na_aanvraag_id", "")
        geldig_na = geldige_keyset(na_op, na_id)
        return cls(
            status=status if status in STATUS_NAMEN else "",
            verstreken=invoer.get("verstreken") == "ja",
            na_ingediend_op=na_op if geldig_na else "",
            na_aanvraag_id=na_id if geldig_na else "",
        )

    def api_filters(self) -> dict[str, str | int]:
        """The list API's query: the filters, the keyset, one more than a page."""
        filters: dict[str, str | int] = {"limit": PER_PAGINA + 1}
        if self.status:
            filters["status"] = self.status
        if self.verstreken:
            filters["deadline_verstreken"] = "true"
        if self.na_aanvraag_id:
            filters["na_ingediend_op"] = self.na_ingediend_op
            filters["na_aanvraag_id"] = self.na_aanvraag_id
        return filters

    def query(self, **na: str) -> str:
        """The werkvoorraad's query string for these filters (and a keyset, if given)."""
        paren = {"status": self.status, "verstreken": "ja" if self.verstreken else "", **na}
        return urlencode({k: v for k, v in paren.items() if v})


@dataclass(frozen=True)
class Regel:
    """One dossier in the werkvoorraad."""

    aanvraag_id: str
    ingediend_op: str
    status: str
    organisatie_code: str
    buiten_regeling: bool
    termijn: Termijn


@dataclass(frozen=True)
class Werkvoorraad:
    """One page of the werkvoorraad with its filters and paging links."""

    regels: tuple[Regel, ...]
    filters: Filters
    volgende: str | None
    eerste: str | None
    statussen: Mapping[str, str] = field(default_factory=lambda: STATUS_NAMEN)


def werkvoorraad(apis: Apis, filters: Filters, nu: datetime) -> Werkvoorraad:
    """One page of dossiers with their deadlines (``Probleem`` when the APIs do not answer)."""
    lijst = gelukt(apis.dossiers(filters.api_filters())).lijst
    kalender = kalender_van(apis, nu)
    return werkvoorraad_uit(lijst, kalender, filters, nu)


def kalender_van(apis: Apis, nu: datetime) -> Werkkalender:
    """Scheduling's working days from ``TERUG_DAGEN`` before today (a day more, so that no
    zone's today is left out) as far ahead as the picker offers."""
    van = nu.astimezone(UTC).date() - timedelta(days=TERUG_DAGEN + 1)
    return Werkkalender.uit(gelukt(apis.werktijden(van, TERUG_DAGEN + 1 + VOORUIT_DAGEN)).data)


def werkvoorraad_uit(
    lijst: Sequence[Mapping[str, Any]], kalender: Werkkalender, filters: Filters, nu: datetime
) -> Werkvoorraad:
    """The page made of the list API's answer (one more than a page when there is a next)."""
    getoond = lijst[:PER_PAGINA]
    regels = tuple(
        Regel(
            aanvraag_id=str(d["aanvraag_id"]),
            ingediend_op=dag_tekst(lees_moment(d["ingediend_op"]) or nu, kalender.zone),
            status=STATUS_NAMEN.get(str(d.get("status")), str(d.get("status"))),
            organisatie_code=str(d.get("organisatie_code", "")),
            buiten_regeling=not d.get("binnen_regeling", True),
            termijn=termijn(d, kalender, nu),
        )
        for d in getoond
    )
    volgende = None
    if len(lijst) > PER_PAGINA:
        laatste = getoond[-1]
        volgende = filters.query(
            na_ingediend_op=str(laatste["ingediend_op"]),
            na_aanvraag_id=str(laatste["aanvraag_id"]),
        )
    eerste = filters.query() if filters.na_aanvraag_id else None
    return Werkvoorraad(regels, filters, volgende, eerste)


# --- one dossier ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TijdlijnRegel:
    """One line of the timeline: when, what, by which role."""

    wanneer: str
    wat: str
    door: str


@dataclass(frozen=True)
class AfspraakRegel:
    """An appointment as the dossier page shows it."""

    afspraak_id: str
    soort: str
    soort_naam: str
    vorm: str
    wanneer: str
    duur_minuten: int
    status: str
    status_naam: str
    video_link: str | None
    keer_verzet: int = 0

    @property
    def gepland(self) -> bool:
        """Whether it can still be moved or cancelled."""
        return self.status == "gepland"


@dataclass(frozen=True)
class ToelichtingRegel:
    """A party's request for a toelichting."""

    partij: str
    partij_naam: str
    aangevraagd_op: str
    status: str
    status_naam: str


@dataclass(frozen=True)
class Fout:
    """An error at a field of one of the page's forms."""

    veld: str
    tekst: str


@dataclass
class Formulierfouten:
    """The errors of the form that was posted (the others are shown clean)."""

    formulier: str = ""
    fouten: list[Fout] = field(default_factory=list)
    melding: str | None = None
    waarden: dict[str, str] = field(default_factory=dict)

    def fout(self, formulier: str, veld: str) -> Fout | None:
        """The error at a field of a form, if any."""
        if formulier != self.formulier:
            return None
        return next((f for f in self.fouten if f.veld == veld), None)


@dataclass(frozen=True)
class DossierPagina:
    """A dossier with its planning, timeline and the steps the secretariat can take."""

    aanvraag_id: str
    status: str
    ingediend_op: str
    organisatie_code: str
    buiten_regeling: bool
    verhuizing_gepland: bool
    termijn: Termijn
    contact_open: bool
    plannen_mogelijk: bool
    gestopt: bool
    afspraken: tuple[AfspraakRegel, ...]
    toelichtingen: tuple[ToelichtingRegel, ...]
    te_plannen: tuple[str, ...]
    open_toelichtingen: tuple[str, ...]
    tijdlijn: tuple[TijdlijnRegel, ...]
    dagen: tuple[date, ...]
    #: The days a conversation held can be recorded on afterwards (``achteraf``).
    eerdere_dagen: tuple[date, ...]
    tijden: Mapping[str, tuple[time, ...]]
    werktijden: str
    planning_bekend: bool


def _gebeurtenis(naam: str) -> str:
    """``AfspraakGepland`` → ``Afspraak gepland``."""
    return re.sub(r"(?<!^)([A-Z])", lambda m: " " + m.group(1).lower(), naam)


def dossier_pagina(apis: Apis, aanvraag_id: uuid.UUID, nu: datetime) -> DossierPagina:
    """The dossier page's data (``Probleem`` when the dossier cannot be shown)."""
    dossier = gelukt(apis.dossier(aanvraag_id)).data
    planning_uitkomst = apis.planning(aanvraag_id)
    planning = planning_uitkomst.data if isinstance(planning_uitkomst, Gelukt) else None
    kalender = kalender_van(apis, nu)
    return dossier_pagina_uit(dossier, planning, kalender, nu)


def dossier_pagina_uit(
    dossier: Mapping[str, Any],
    planning: Mapping[str, Any] | None,
    kalender: Werkkalender,
    nu: datetime,
) -> DossierPagina:
    """The page from intake's dossier and scheduling's planning (None: scheduling has not heard
    of the dossier yet, moments after its registration)."""
    # How often each was moved: intake's projection counts it; scheduling's view does not.
    verzet = {
        str(a["afspraak_id"]): int(a.get("keer_verzet", 0)) for a in dossier.get("afspraken", ())
    }
    afspraken = tuple(
        AfspraakRegel(
            afspraak_id=str(a["afspraak_id"]),
            soort=str(a["soort"]),
            soort_naam=SOORT_NAMEN.get(str(a["soort"]), str(a["soort"])),
            vorm=VORM_NAMEN.get(str(a["vorm"]), str(a["vorm"])),
            wanneer=kalender.moment_tekst(lees_moment(a["gepland_op"]) or nu),
            duur_minuten=int(a["duur_minuten"]),
            status=str(a["status"]),
            status_naam=AFSPRAAK_STATUS.get(str(a["status"]), str(a["status"])),
            video_link=a.get("video_link"),
            keer_verzet=verzet.get(str(a["afspraak_id"]), 0),
        )
        for a in (planning or {}).get("afspraken", ())
    )
    toelichtingen = tuple(
        ToelichtingRegel(
            partij=str(t["partij"]),
            partij_naam=PARTIJ_NAMEN.get(str(t["partij"]), str(t["partij"])),
            aangevraagd_op=dag_tekst(lees_moment(t["aangevraagd_op"]) or nu, kalender.zone),
            status=str(t["status"]),
            status_naam=TOELICHTING_STATUS.get(str(t["status"]), str(t["status"])),
        )
        for t in (planning or {}).get("toelichtingen", ())
    )
    gestopt = bool(planning and planning.get("gestopt"))
    contact = (planning or {}).get("contact_status")
    plannen = planning is not None and not gestopt and contact == "opgenomen"
    actief = {a.soort for a in afspraken if a.status in {"gepland", "gevoerd"}}
    te_plannen = tuple(
        soort for soort in ("gesprek_werkgever", "gesprek_bestuurder") if soort not in actief
    )
    open_toelichtingen = tuple(t.partij for t in toelichtingen if t.status == "open")
    samen = {**dossier}
    if planning is not None:
        samen |= {
            "contact_op": planning.get("contact_op"),
            "contact_deadline": planning.get("contact_deadline"),
        }
    morgen = kalender.lokaal(nu).date() + timedelta(days=1)
    tijdlijn = tuple(
        TijdlijnRegel(
            wanneer=kalender.moment_tekst(lees_moment(r["tijd"]) or nu),
            wat=_gebeurtenis(str(r["gebeurtenis"])),
            door=ROL_IN_TIJDLIJN.get(str(r.get("rol")), "systeem"),
        )
        for r in dossier.get("tijdlijn", ())
    )
    return DossierPagina(
        aanvraag_id=str(dossier["aanvraag_id"]),
        status=STATUS_NAMEN.get(str(dossier["status"]), str(dossier["status"])),
        ingediend_op=kalender.moment_tekst(lees_moment(dossier["ingediend_op"]) or nu),
        organisatie_code=str(dossier.get("organisatie_code", "")),
        buiten_regeling=not dossier.get("binnen_regeling", True),
        verhuizing_gepland=bool(dossier.get("verhuizing_gepland")),
        termijn=termijn(samen, kalender, nu),
        contact_open=planning is not None and not gestopt and contact in {"open", "verstreken"},
        plannen_mogelijk=plannen,
        gestopt=gestopt,
        afspraken=afspraken,
        toelichtingen=toelichtingen,
        te_plannen=te_plannen if plannen else (),
        open_toelichtingen=open_toelichtingen if planning is not None and not gestopt else (),
        tijdlijn=tuple(reversed(tijdlijn)),
        dagen=tuple(kalender.dag_opties(morgen)),
        eerdere_dagen=tuple(kalender.eerdere_dagen(morgen - timedelta(days=1))),
        tijden={soort: tuple(kalender.tijd_opties(duur)) for soort, duur in DUUR.items()},
        werktijden=kalender.werktijden,
        planning_bekend=planning is not None,
    )


# --- the steps -----------------------------------------------------------------------------------

#: What each of the API's field rules means for the person choosing a moment.
TIJDSTIP_UITLEG: dict[str, str] = {
    "must_be_in_future": "Kies een moment in de toekomst.",
    "must_be_in_past": "Kies een moment dat al voorbij is: achteraf vastleggen is voor een"
    " gesprek dat al heeft plaatsgevonden.",
    "must_be_on_working_day": "Kies een werkdag: geen weekend of feestdag.",
    "must_be_within_working_hours": "Het hele gesprek moet binnen de werktijden vallen.",
    "outside_calendar_years": "Kies een datum in de komende maanden.",
}
VELD_UITLEG: dict[str, str] = {
    "video_link": "Vul een https-link naar de videoverbinding in, zonder spaties.",
    "adviseur_id": "Kies de adviseur die het gesprek voert.",
    "duur_minuten": "De duur van het gesprek is niet toegestaan.",
    "partij": "Kies voor wie de toelichting is.",
}
CONFLICT_UITLEG = (
    "Deze stap past nu niet in het proces. Misschien is het contact nog niet vastgelegd, is"
    " het gesprek al gepland of gevoerd, of is de aanvraag ingetrokken. De pagina toont nu de"
    " actuele stand."
)


def fouten_uit(formulier: str, uitkomst: Uitkomst, werktijden: str) -> Formulierfouten:
    """What a refused step shows: the API's 422 at its fields, a 409 explained in Dutch."""
    fouten = Formulierfouten(formulier=formulier)
    match uitkomst:
        case Ongeldig(fouten=velden):
            for veld in velden:
                naam = veld.veld.rsplit(".", 1)[-1]
                if naam == "gepland_op":
                    tekst = TIJDSTIP_UITLEG.get(veld.regel, "Kies een ander moment.")
                    if veld.regel == "must_be_within_working_hours":
                        tekst += f" De werktijden zijn {werktijden}."
                    fouten.fouten.append(Fout("datum", tekst))
                elif naam in VELD_UITLEG:
                    veldnaam = "adviseur" if naam == "adviseur_id" else naam
                    fouten.fouten.append(Fout(veldnaam, VELD_UITLEG[naam]))
            if not fouten.fouten:
                fouten.melding = "Het verzoek is niet aangenomen. Controleer de gegevens."
        case Conflict(detail=detail):
            fouten.melding = CONFLICT_UITLEG + (f" De dienst meldt: {detail}" if detail else "")
        case _:
            raise Probleem(uitkomst)
    return fouten


def gepland_op(invoer: Mapping[str, str], zone: ZoneInfo) -> datetime | None:
    """The moment chosen in the picker (a day and a time, local), or None when it is not one."""
    try:
        dag = date.fromisoformat(invoer.get("datum", ""))
        tijd = time.fromisoformat(invoer.get("tijd", ""))
    except ValueError:
        return None
    return datetime.combine(dag, tijd, tzinfo=zone)


def afspraak_verzoek(soort: str, moment: datetime, invoer: Mapping[str, str]) -> dict[str, Any]:
    """The body of ``POST /aanvragen/{id}/afspraken`` for a conversation or a toelichting."""
    verzoek: dict[str, Any] = {
        "soort": soort,
        "gepland_op": moment.isoformat(),
        "duur_minuten": DUUR[soort],
        "adviseur_id": invoer.get("adviseur", "").strip(),
    }
    if soort in {"gesprek_werkgever", "toelichting"}:
        verzoek["video_link"] = invoer.get("video_link", "").strip()
    if soort == "toelichting" and invoer.get("partij") in PARTIJ_NAMEN:
        verzoek["partij"] = invoer["partij"]
    return verzoek


def geldige_sleutel(sleutel: str) -> bool:
    """Whether a form's idempotency key is one the portal made (a UUID)."""
    try:
        return str(uuid.UUID(sleutel)) == sleutel
    except ValueError:
        return False
