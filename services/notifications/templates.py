"""Dutch e-mail templates: plain functions that return a subject and a text body.

A template receives only ids, dates and statuses, never names or addresses, so what it renders
holds no personal data beyond the recipient's own dossier reference. Add a template by writing a
function and decorating it with `@template("name")`; `render(name, ...)` finds it by that name,
which is also the `template` part of the mail's Message-ID.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

__all__ = [
    "AMSTERDAM",
    "BEVESTIGING_AANVRAAG",
    "TEMPLATES",
    "RenderedMail",
    "UnknownTemplateError",
    "bevestiging_aanvraag",
    "format_dutch_date",
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
