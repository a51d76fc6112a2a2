"""Dutch e-mail templates: plain functions that return a subject and a text body.

A template receives only ids, dates and statuses, never names or addresses, so what it renders
holds no personal data beyond the recipient's own dossier reference. The appointment templates
also get the appointment as scheduling has it at the moment of sending (time, duration, video
link): practical information, fetched by claim-check, never stored with the notification.

Add a template by writing a function and decorating it with `@template("name")`; `render(name,
...)` finds it by that name, which is also the `template` part of the mail's Message-ID.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime, time, timedelta
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

from services.notifications.domain.afspraak import Afspraak
from services.notifications.domain.ics import CalendarEvent

__all__ = [
    "AFSPRAAK_BEVESTIGING",
    "AFSPRAAK_GEANNULEERD",
    "AFSPRAAK_TEMPLATES",
    "AFSPRAAK_VERZET",
    "AMSTERDAM",
    "BEVESTIGING_AANVRAAG",
    "CONTACTTERMIJN_VERSTREKEN",
    "RAPPORT_BESCHIKBAAR_BESTUURDER",
    "RAPPORT_BESCHIKBAAR_WERKGEVER",
    "TEMPLATES",
    "RenderedMail",
    "UnknownTemplateError",
    "afspraak_bevestiging",
    "afspraak_geannuleerd",
    "afspraak_verzet",
    "bevestiging_aanvraag",
    "calendar_event_for",
    "contacttermijn_verstreken",
    "format_duration",
    "format_dutch_date",
    "format_time",
    "rapport_beschikbaar_bestuurder",
    "rapport_beschikbaar_werkgever",
    "render",
    "template",
]

AMSTERDAM = ZoneInfo("Europe/Amsterdam")

# Our own names: the system locale may not have nl_NL, and setlocale is process-wide.
_DAGEN = ("maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag", "zondag")
_MAANDEN = (
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

_SIGNATURE = (
    "Met vriendelijke groet,\n"
    "\n"
    "Secretariaat Weerbaar bestuur\n"
    "Centrum voor Criminaliteitspreventie en Veiligheid (CCV)\n"
)


class RenderedMail(NamedTuple):
    """A rendered template: the subject line and the plain-text body."""

    subject: str
    text: str


class UnknownTemplateError(KeyError):
    """No template is registered under the requested name."""


TemplateFunction = Callable[..., RenderedMail]
_F = TypeVar("_F", bound=TemplateFunction)

_registry: dict[str, TemplateFunction] = {}
TEMPLATES: Mapping[str, TemplateFunction] = MappingProxyType(_registry)


def template(name: str) -> Callable[[_F], _F]:
    """Register the decorated function as the template called `name`."""

    def register(function: _F) -> _F:
        if name in _registry:
            raise ValueError(f"template {name!r} is already registered")
        _registry[name] = function
        return function

    return register


def render(name: str, /, **params: Any) -> RenderedMail:
    """Render the template registered as `name` with `params`."""
    try:
        function = _registry[name]
    except KeyError:
        raise UnknownTemplateError(name) from None
    return function(**params)


def format_dutch_date(moment: datetime | date) -> str:
    """Format as Dutch prose ("donderdag 3 december 2026"); datetimes in Amsterdam local time."""
    if isinstance(moment, datetime):
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("a datetime must be timezone-aware to know its Amsterdam date")
        moment = moment.astimezone(AMSTERDAM).date()
    return f"{_DAGEN[moment.weekday()]} {moment.day} {_MAANDEN[moment.month - 1]} {moment.year}"


def _dossier_reference(aanvraag_id: str) -> str:
    # Only a UUID may be printed as the reference: this refuses anything else a caller might
    # pass by mistake (a name, an address) without repeating it in the error.
    try:
        return str(uuid.UUID(aanvraag_id))
    except (ValueError, AttributeError, TypeError):
        raise ValueError("aanvraag_id must be a UUID") from None


BEVESTIGING_AANVRAAG = "bevestiging_aanvraag"


@template(BEVESTIGING_AANVRAAG)
def bevestiging_aanvraag(aanvraag_id: str, contact_deadline: datetime | None) -> RenderedMail:
    """Confirm a received aanvraag: contact within three working days, and the dossier reference."""
    reference = _dossier_reference(aanvraag_id)
    if contact_deadline is None:
        contact = (
            "Het secretariaat van het CCV neemt binnen drie werkdagen contact met u op om de "
            "gesprekken in te plannen."
        )
    else:
        contact = (
            "Het secretariaat van het CCV neemt binnen drie werkdagen contact met u op, "
            f"uiterlijk op {format_dutch_date(contact_deadline)}, om de gesprekken in te plannen."
        )
    text = (
        "Geachte heer, mevrouw,\n"
        "\n"
        "Hartelijk dank voor uw aanmelding voor Weerbaar bestuur. Wij hebben uw aanvraag in "
        "goede orde ontvangen.\n"
        "\n"
        f"{contact}\n"
        "\n"
        f"Uw dossiernummer is {reference}. Vermeld dit nummer als u contact met ons opneemt.\n"
        "\n"
        "Is er sprake van acuut gevaar? Bel dan altijd direct 112.\n"
        "\n"
        f"{_SIGNATURE}"
    )
    return RenderedMail(subject=f"Bevestiging van uw aanmelding (dossier {reference})", text=text)


# --- appointments --------------------------------------------------------------------------------

AFSPRAAK_BEVESTIGING = "afspraak_bevestiging"
AFSPRAAK_VERZET = "afspraak_verzet"
AFSPRAAK_GEANNULEERD = "afspraak_geannuleerd"
#: The templates about one appointment: they get the appointment as scheduling has it now.
AFSPRAAK_TEMPLATES = frozenset({AFSPRAAK_BEVESTIGING, AFSPRAAK_VERZET, AFSPRAAK_GEANNULEERD})

_WAT = {
    "gesprek_werkgever": "het gesprek met de beveiligingsadviseur van het CCV",
    "gesprek_bestuurder": "het gesprek met de beveiligingsadviseur van het CCV, met de woningscan",
    "toelichting": "de toelichting op het adviesrapport door de adviseur van het CCV",
}
_SUMMARY = {
    "gesprek_werkgever": "Weerbaar bestuur: gesprek met de adviseur van het CCV",
    "gesprek_bestuurder": "Weerbaar bestuur: gesprek en woningscan",
    "toelichting": "Weerbaar bestuur: toelichting op het adviesrapport",
}
_WONINGSCAN = (
    "Tijdens dit bezoek voert de adviseur ook de woningscan uit. Samen met u loopt de adviseur "
    "door en rond uw woning en bekijkt hoe die beveiligd is: deuren, ramen en sloten, verlichting, "
    "de tuin en de zichtbaarheid van de woning vanaf de straat. Wat de adviseur ziet, gebruikt "
    "hij of zij voor het advies over wonen; er wordt niets aan uw woning veranderd."
)
_THUIS_ZIJN = (
    "Zorg ervoor dat u, of iemand die de adviseur door de hele woning en rond het huis kan "
    "rondleiden, op het afgesproken tijdstip thuis is, voor de hele duur van de afspraak."
)
_VRAGEN = (
    "Kunt u niet op dit tijdstip, of heeft u vragen? Neem dan zo snel mogelijk contact op met het "
    "secretariaat van het CCV en vermeld uw dossiernummer {reference}."
)
_ACUUT = "Is er sprake van acuut gevaar? Bel dan altijd direct 112."


def format_time(moment: datetime) -> str:
    """The Amsterdam wall-clock time of an aware datetime ("09:30")."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a datetime must be timezone-aware to know its Amsterdam time")
    return moment.astimezone(AMSTERDAM).strftime("%H:%M")


def format_duration(minutes: int) -> str:
    """A duration in Dutch prose ("45 minuten", "1 uur", "1 uur en 30 minuten")."""
    if minutes <= 0:
        raise ValueError("a duration must be positive")
    hours, rest = divmod(minutes, 60)
    parts = [f"{hours} uur"] if hours else []
    if rest:
        parts.append(f"{rest} {'minuut' if rest == 1 else 'minuten'}")
    return " en ".join(parts)


def _when(moment: datetime) -> str:
    return f"{format_dutch_date(moment)} om {format_time(moment)} uur"


def _thuis(afspraak: Afspraak, ontvanger: str) -> bool:
    # "Thuis" is the bestuurder's home: only the bestuurder reads "bij u thuis".
    return afspraak.vorm == "thuis" and ontvanger == "bestuurder"


def _plaats(afspraak: Afspraak, ontvanger: str) -> str:
    if afspraak.vorm == "digitaal":
        return "online, via een videoverbinding"
    return "bij u thuis" if _thuis(afspraak, ontvanger) else "op locatie"


def _praktisch(afspraak: Afspraak, ontvanger: str) -> str:
    """The practical information: how to join, or what a visit at home asks of the bestuurder."""
    if afspraak.vorm == "digitaal":
        if afspraak.video_link is None:
            return (
                "Het gesprek vindt digitaal plaats, via een videoverbinding. De link om deel te "
                "nemen ontvangt u vóór de afspraak van het secretariaat van het CCV."
            )
        return (
            "Het gesprek vindt digitaal plaats, via een videoverbinding. U neemt deel via deze "
            f"link:\n{afspraak.video_link}\n\n"
            "Neem een paar minuten voor aanvang deel, op een rustige plek waar u vrijuit kunt "
            "praten. Deel de link niet met anderen."
        )
    if not _thuis(afspraak, ontvanger):
        # Somebody else's home: its address is not ours to mail.
        return "Het secretariaat van het CCV laat u weten waar het gesprek plaatsvindt."
    if afspraak.soort == "gesprek_bestuurder":
        return f"De adviseur komt bij u thuis. {_WONINGSCAN}\n\n{_THUIS_ZIJN}"
    return f"De adviseur komt bij u thuis. {_THUIS_ZIJN}"


def _details(afspraak: Afspraak, ontvanger: str) -> str:
    return (
        f"Datum: {format_dutch_date(afspraak.gepland_op)}\n"
        f"Tijd: {format_time(afspraak.gepland_op)} tot {format_time(afspraak.einde)} uur "
        "(Nederlandse tijd)\n"
        f"Duur: {format_duration(afspraak.duur_minuten)}\n"
        f"Plaats: {_plaats(afspraak, ontvanger)}\n"
        "\n"
        f"{_praktisch(afspraak, ontvanger)}"
    )


def _mail(*paragraphs: str) -> str:
    body = "\n\n".join(paragraphs)
    return f"Geachte heer, mevrouw,\n\n{body}\n\n{_ACUUT}\n\n{_SIGNATURE}"


@template(AFSPRAAK_BEVESTIGING)
def afspraak_bevestiging(aanvraag_id: str, ontvanger: str, afspraak: Afspraak) -> RenderedMail:
    """Confirm a planned appointment with its practical information."""
    reference = _dossier_reference(aanvraag_id)
    text = _mail(
        f"Hierbij bevestigen wij de afspraak voor {_WAT[afspraak.soort]}, in het kader van "
        "Weerbaar bestuur.",
        _details(afspraak, ontvanger),
        "In de bijlage vindt u een agenda-uitnodiging; daarmee zet u de afspraak in uw agenda.",
        _VRAGEN.format(reference=reference),
    )
    subject = f"Bevestiging van uw afspraak op {_when(afspraak.gepland_op)} (dossier {reference})"
    return RenderedMail(subject=subject, text=text)


@template(AFSPRAAK_VERZET)
def afspraak_verzet(
    aanvraag_id: str, ontvanger: str, afspraak: Afspraak, vorige_gepland_op: datetime | None
) -> RenderedMail:
    """Announce the new time of a moved appointment."""
    reference = _dossier_reference(aanvraag_id)
    verzet = f"Uw afspraak voor {_WAT[afspraak.soort]} is verzet."
    if vorige_gepland_op is not None:
        verzet += (
            f" De afspraak op {_when(vorige_gepland_op)} gaat niet door; hieronder staat het "
            "nieuwe tijdstip."
        )
    text = _mail(
        verzet,
        _details(afspraak, ontvanger),
        "De agenda-uitnodiging in de bijlage vervangt de eerdere uitnodiging in uw agenda.",
        _VRAGEN.format(reference=reference),
    )
    subject = f"Uw afspraak is verzet naar {_when(afspraak.gepland_op)} (dossier {reference})"
    return RenderedMail(subject=subject, text=text)


@template(AFSPRAAK_GEANNULEERD)
def afspraak_geannuleerd(aanvraag_id: str, ontvanger: str, afspraak: Afspraak) -> RenderedMail:
    """Announce that an appointment does not go ahead."""
    reference = _dossier_reference(aanvraag_id)
    text = _mail(
        f"De afspraak voor {_WAT[afspraak.soort]} op {_when(afspraak.gepland_op)} is "
        "geannuleerd en gaat niet door.",
        "Met de agenda-uitnodiging in de bijlage verwijdert u de afspraak uit uw agenda. Het "
        "secretariaat van het CCV neemt contact met u op als er een nieuwe afspraak nodig is.",
        f"Heeft u vragen? Neem dan contact op met het secretariaat van het CCV en vermeld uw "
        f"dossiernummer {reference}.",
    )
    subject = (
        f"Geannuleerd: uw afspraak op {format_dutch_date(afspraak.gepland_op)} "
        f"(dossier {reference})"
    )
    return RenderedMail(subject=subject, text=text)


def calendar_event_for(
    afspraak: Afspraak,
    ontvanger: str,
    *,
    uid_domain: str,
    sequence: int,
    organizer: str,
    attendee: str | None,
) -> CalendarEvent:
    """The calendar entry of an appointment: no names, and never a street address."""
    if afspraak.vorm == "digitaal":
        location = afspraak.video_link or "Online (videoverbinding)"
    elif afspraak.soort == "gesprek_bestuurder":
        location = "Thuis (woningscan)"
    else:
        location = "Thuis" if _thuis(afspraak, ontvanger) else "Op locatie (zie e-mail)"
    return CalendarEvent(
        uid=f"{afspraak.afspraak_id}@{uid_domain}",
        sequence=sequence,
        start=afspraak.gepland_op,
        duration=afspraak.einde - afspraak.gepland_op,
        summary=_SUMMARY[afspraak.soort],
        location=location,
        description=(
            "Weerbaar bestuur, Centrum voor Criminaliteitspreventie en Veiligheid (CCV). "
            "De praktische informatie staat in de e-mail bij deze uitnodiging."
        ),
        organizer=organizer,
        attendee=attendee,
    )


# --- the report ----------------------------------------------------------------------------------

RAPPORT_BESCHIKBAAR_BESTUURDER = "rapport_beschikbaar_bestuurder"
RAPPORT_BESCHIKBAAR_WERKGEVER = "rapport_beschikbaar_werkgever"

_NIET_PER_MAIL = (
    "Om veiligheidsredenen sturen wij het rapport niet per e-mail mee en staat de inhoud niet "
    "in dit bericht."
)


@template(RAPPORT_BESCHIKBAAR_BESTUURDER)
def rapport_beschikbaar_bestuurder(aanvraag_id: str, rapport_id: str, versie: int) -> RenderedMail:
    """Tell the bestuurder the approved report is ready to read (no content)."""
    reference = _dossier_reference(aanvraag_id)
    text = _mail(
        "Uw adviesrapport van Weerbaar bestuur is goedgekeurd en staat voor u klaar.",
        "U leest het rapport door in te loggen bij Weerbaar bestuur en uw dossier "
        f"{reference} te openen (rapport {_dossier_reference(rapport_id)}, versie {versie}). "
        f"{_NIET_PER_MAIL}",
        "Na het lezen vragen wij u of u ermee instemt dat wij het rapport met uw werkgever "
        "delen. Uw werkgever ontvangt het rapport alleen als u daarmee instemt. Wilt u eerst "
        "een toelichting van de adviseur? Dan kunt u die aanvragen.",
    )
    subject = f"Uw adviesrapport staat klaar (dossier {reference})"
    return RenderedMail(subject=subject, text=text)


@template(RAPPORT_BESCHIKBAAR_WERKGEVER)
def rapport_beschikbaar_werkgever(aanvraag_id: str, rapport_id: str, versie: int) -> RenderedMail:
    """Tell the werkgever the report was released to it, after the bestuurder's consent."""
    reference = _dossier_reference(aanvraag_id)
    text = _mail(
        "De bestuurder heeft ingestemd met het delen van het adviesrapport van Weerbaar bestuur. "
        "Het rapport staat nu voor u klaar.",
        "U leest het rapport door in te loggen bij Weerbaar bestuur en dossier "
        f"{reference} te openen (rapport {_dossier_reference(rapport_id)}, versie {versie}). "
        f"{_NIET_PER_MAIL}",
        "In het rapport staat per maatregel wie die uitvoert. Wilt u een toelichting van de "
        "adviseur? Dan kunt u die aanvragen.",
    )
    subject = f"Het adviesrapport is met u gedeeld (dossier {reference})"
    return RenderedMail(subject=subject, text=text)


# --- escalation ----------------------------------------------------------------------------------

CONTACTTERMIJN_VERSTREKEN = "contacttermijn_verstreken"


@template(CONTACTTERMIJN_VERSTREKEN)
def contacttermijn_verstreken(
    aanvraag_id: str, deadline: datetime, vastgesteld_op: datetime
) -> RenderedMail:
    """Escalate a missed contact deadline to the secretariaat."""
    reference = _dossier_reference(aanvraag_id)
    local = deadline.astimezone(AMSTERDAM)
    if local.time() == time(0, 0):
        # A deadline is the end of a working day: say that day, not the midnight after it.
        afgelopen = f"aan het eind van {format_dutch_date((local - timedelta(days=1)).date())}"
    else:
        afgelopen = f"op {_when(deadline)}"
    text = (
        "Aan het secretariaat van Weerbaar bestuur,\n"
        "\n"
        f"Voor dossier {reference} is de contacttermijn verstreken: de termijn liep af "
        f"{afgelopen} zonder dat contact met de partijen is vastgelegd (vastgesteld op "
        f"{_when(vastgesteld_op)}).\n"
        "\n"
        "Neem zo snel mogelijk contact op met de bestuurder en de werkgever, plan de gesprekken "
        "en leg het contact vast in het dossier.\n"
        "\n"
        "Dit bericht is automatisch verstuurd door Weerbaar bestuur.\n"
    )
    subject = f"Contacttermijn verstreken (dossier {reference})"
    return RenderedMail(subject=subject, text=text)
