"""The words every journey's pages share: Dutch dates and times, the dossier's statuses, the
measures' domains and priorities, the appointments, and reading a dossier number from a search
box.

Pure functions and tables, no I/O. Where a journey words one of these for its reader on
purpose (the bestuurder's status in plain language, the bestuurder addressed as "u"), that
table sits here too, named for its reader, so a new status or party is added in one module.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

#: The zone of the process: every moment is shown in Dutch time, summer or winter.
ZONE = ZoneInfo("Europe/Amsterdam")

DAGEN = ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag")
MAANDEN = (
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
)


def in_woorden(tabel: Mapping[str, str], code: Any) -> str:
    """A code of an API answer in the words of ``tabel``, or the code itself when the table has
    none (a code a service adds later is still shown, if not in words)."""
    return tabel.get(str(code), str(code))


# --- dates and times -----------------------------------------------------------------------------


def lees_moment(waarde: Any) -> datetime | None:
    """An API moment (RFC 3339, ``Z`` or an offset) or date as a datetime; None when there is
    none. A text that is no moment raises ``ValueError``: an API answer that breaks its
    contract fails loudly rather than showing a wrong time."""
    if not waarde:
        return None
    if isinstance(waarde, datetime):
        return waarde
    return datetime.fromisoformat(str(waarde).replace("Z", "+00:00"))


def _lokaal(gegeven: datetime, zone: ZoneInfo) -> datetime:
    # A moment without an offset (a date, or a time typed in Dutch time) is already local.
    return gegeven.replace(tzinfo=zone) if gegeven.tzinfo is None else gegeven.astimezone(zone)


def datum_tekst(dag: date) -> str:
    """``dinsdag 8 december 2026``."""
    return f"{DAGEN[dag.weekday()]} {dag.day} {MAANDEN[dag.month - 1]} {dag.year}"


def dag_tekst(waarde: date | str | None, zone: ZoneInfo = ZONE) -> str:
    """The day of an API moment in Dutch time, or of a date, in words (``dinsdag 8 december
    2026``): for lists and deadlines, where the day is what matters. Empty when there is none."""
    if isinstance(waarde, date) and not isinstance(waarde, datetime):
        return datum_tekst(waarde)
    gegeven = lees_moment(waarde)
    return datum_tekst(_lokaal(gegeven, zone).date()) if gegeven else ""


def moment_tekst(waarde: datetime | str | None, zone: ZoneInfo = ZONE) -> str:
    """``dinsdag 8 december 2026 om 10:00`` in Dutch time: a moment people plan or read by (an
    appointment, a submission, a decision). Empty when there is none."""
    gegeven = lees_moment(waarde)
    if gegeven is None:
        return ""
    lokaal = _lokaal(gegeven, zone)
    return f"{datum_tekst(lokaal.date())} om {lokaal:%H:%M}"


def tijdstip_tekst(waarde: datetime | str | None, zone: ZoneInfo = ZONE) -> str:
    """``zondag 6 december 2026 om 23:10:05`` in Dutch time, to the second: a step of an audit
    trail (steps are often seconds apart). Empty when there is none."""
    gegeven = lees_moment(waarde)
    if gegeven is None:
        return ""
    lokaal = _lokaal(gegeven, zone)
    return f"{datum_tekst(lokaal.date())} om {lokaal:%H:%M:%S}"


# --- a dossier number typed in a search box ------------------------------------------------------

UUID_PATROON = re.compile(
    r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$"
)


def dossiernummer(invoer: str) -> uuid.UUID | None:
    """The dossier number typed in a search (with or without hyphens, any case), or None."""
    schoon = invoer.strip()
    if not UUID_PATROON.match(schoon):
        return None
    return uuid.UUID(schoon)


# --- the dossier's status ------------------------------------------------------------------------

#: Intake's dossier status in words, for everyone who works on the dossier (secretariat,
#: compliance) and for the werkgever.
STATUS_NAMEN: dict[str, str] = {
    "ingediend": "Ingediend: wacht op contact",
    "contact_opgenomen": "Contact opgenomen",
    "gesprekken_gepland": "Gesprekken gepland",
    "gesprekken_gevoerd": "Gesprekken gevoerd",
    "rapport_in_opstelling": "Rapport in opstelling",
    "ter_toetsing": "Ter toetsing bij de BVA",
    "afgekeurd": "Rapport afgekeurd",
    "goedgekeurd": "Rapport goedgekeurd",
    "vrijgegeven": "Rapport vrijgegeven",
    "instemming_geweigerd": "Instemming geweigerd",
    "in_uitvoering": "In uitvoering",
    "afgesloten": "Afgesloten",
    "ingetrokken": "Ingetrokken",
}

#: The same statuses for the bestuurder: where the dossier stands and what comes next, in plain
#: language and addressed to the bestuurder ("u"). The bestuurder is no professional in the
#: process and reads the dossier about their own safety, so a short label such as "Ter toetsing
#: bij de BVA" would leave them guessing; this wording is on purpose, not a copy.
STATUS_UITLEG: dict[str, tuple[str, str]] = {
    "ingediend": (
        "Uw aanmelding is ontvangen.",
        "Het secretariaat van het CCV neemt binnen drie werkdagen contact met u op.",
    ),
    "contact_opgenomen": (
        "Het secretariaat van het CCV heeft contact met u opgenomen.",
        "Het secretariaat plant twee gesprekken: een digitaal gesprek met uw werkgever en een"
        " gesprek bij u thuis, met de woningscan.",
    ),
    "gesprekken_gepland": (
        "De gesprekken zijn gepland.",
        "De adviseur voert de gesprekken. Bij u thuis bekijkt de adviseur ook de beveiliging"
        " van uw woning (de woningscan).",
    ),
    "gesprekken_gevoerd": (
        "De gesprekken zijn gevoerd.",
        "De adviseur schrijft het adviesrapport.",
    ),
    "rapport_in_opstelling": (
        "De adviseur schrijft het adviesrapport over de vier domeinen Werk, Wonen, Informatie"
        " en Verplaatsen.",
        "De Beveiligingsautoriteit (BVA) toetst het rapport.",
    ),
    "ter_toetsing": (
        "Het rapport ligt ter toetsing bij de Beveiligingsautoriteit (BVA).",
        "Na goedkeuring krijgt u het rapport als eerste, voor uw werkgever.",
    ),
    "afgekeurd": (
        "De Beveiligingsautoriteit heeft gevraagd het rapport aan te passen.",
        "De adviseur past het rapport aan en biedt het opnieuw ter toetsing aan.",
    ),
    "goedgekeurd": (
        "Het rapport is goedgekeurd en staat voor u klaar. Uw werkgever heeft het niet.",
        "Lees het rapport en beslis of uw werkgever het mag ontvangen.",
    ),
    "vrijgegeven": (
        "U hebt ingestemd: uw werkgever heeft het rapport ontvangen.",
        "U en uw werkgever voeren de maatregelen uit en leggen vast wat is gedaan.",
    ),
    "instemming_geweigerd": (
        "U hebt geweigerd het rapport met uw werkgever te delen. Uw werkgever heeft het niet.",
        "U voert uw eigen maatregelen uit. U kunt later alsnog instemmen met delen.",
    ),
    "in_uitvoering": (
        "De maatregelen worden uitgevoerd.",
        "Leg vast welke van uw maatregelen u hebt uitgevoerd. Het dossier wordt afgesloten"
        " als alle maatregelen zijn uitgevoerd.",
    ),
    "afgesloten": ("Het dossier is afgesloten.", "Er komen geen stappen meer."),
    "ingetrokken": (
        "U hebt de aanvraag ingetrokken.",
        "Er gebeurt niets meer met deze aanvraag. Er is niets gewist.",
    ),
}

#: Who took a step on the dossier's timeline (the role the event names).
ROL_IN_TIJDLIJN: dict[str, str] = {
    "secretariaat": "secretariaat",
    "adviseur": "adviseur",
    "bva": "BVA",
    "bestuurder": "bestuurder",
    "werkgever": "werkgever",
    "compliance": "compliance",
    "aanvrager": "aanvrager",
    "dienst": "systeem",
}


# --- the report's measures -----------------------------------------------------------------------

#: The four domains of the report, in the report's order.
DOMEIN_NAMEN: dict[str, str] = {
    "werk": "Werk",
    "wonen": "Wonen",
    "informatie": "Informatie (digitaal)",
    "verplaatsen": "Verplaatsen",
}
PRIORITEIT_NAMEN: dict[str, str] = {"hoog": "Hoog", "middel": "Middel", "laag": "Laag"}
KOSTEN_NAMEN: dict[str, str] = {"kosteloos": "Kosteloos", "met_kosten": "Met kosten"}
UITVOERDER_NAMEN: dict[str, str] = {"bestuurder": "De bestuurder", "werkgever": "De werkgever"}
#: Who carries a measure out, said to the bestuurder reading their own report.
UITVOERDER_VOOR_BESTUURDER: dict[str, str] = {"bestuurder": "u", "werkgever": "uw werkgever"}


# --- appointments --------------------------------------------------------------------------------

SOORT_NAMEN: dict[str, str] = {
    "gesprek_werkgever": "Gesprek met de werkgever",
    "gesprek_bestuurder": "Gesprek met de bestuurder",
    "toelichting": "Toelichting",
}
VORM_NAMEN: dict[str, str] = {
    "digitaal": "digitaal (videoverbinding)",
    "thuis": "bij de bestuurder thuis",
}
AFSPRAAK_STATUS: dict[str, str] = {
    "gepland": "Gepland",
    "gevoerd": "Gevoerd",
    "geannuleerd": "Geannuleerd",
}


# --- a report page opened from another site ------------------------------------------------------

#: The page a link on another site lands on instead of a report: every read of a report is on
#: the audit trail, so the person opens it by their own choice from the portal itself.
RAPPORT_OPENEN_TITEL = "Rapport openen"
RAPPORT_OPENEN_TEKST = (
    "U kwam hier via een link op een andere website. Elke keer dat u een rapport inziet, wordt"
    " dat vastgelegd. Daarom opent het rapport pas als u daar hier zelf voor kiest."
)
RAPPORT_OPENEN_KNOP = "Rapport openen"
