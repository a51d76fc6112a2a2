"""Journey 1, the public registration: the form, its fields and what the API's answer means.

Nothing here knows HTTP, HTML or a service's code: ``adapters`` speaks to the APIs, ``api``
renders the pages.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from services.portal.application.ports import Apis
from services.portal.application.uitkomsten import Gelukt, Ongeldig, TeVaak


@dataclass(frozen=True)
class Functie:
    """An office the form offers, and whether the regeling covers it (domain.md)."""

    waarde: str
    label: str
    binnen_regeling: bool


FUNCTIES: tuple[Functie, ...] = (
    Functie("burgemeester", "Burgemeester", True),
    Functie("wethouder", "Wethouder", True),
    Functie("gedeputeerde", "Gedeputeerde", True),
    Functie("commissaris_van_de_koning", "Commissaris van de Koning", True),
    Functie("dijkgraaf", "Dijkgraaf", True),
    Functie("voorzitter_waterschap", "Voorzitter van een waterschap", True),
    Functie("dagelijks_bestuurslid_waterschap", "Dagelijks bestuurslid van een waterschap", True),
    Functie("raadslid", "Gemeenteraadslid", False),
    Functie("statenlid", "Statenlid", False),
    Functie("overig", "Andere functie", False),
)
_FUNCTIE_WAARDEN = {functie.waarde: functie for functie in FUNCTIES}


@dataclass(frozen=True)
class Veld:
    """A field of the form: its name, label, the longest value accepted and its hint."""

    naam: str
    label: str
    max_lengte: int
    hint: str = ""
    #: What the field needs when the API refuses it (shown at the field).
    uitleg: str = ""


#: The text fields, in the form's order; the name is also the API's field path with ``.``.
VELDEN: tuple[Veld, ...] = (
    Veld("bestuurder.naam", "Naam", 200, uitleg="Vul de naam van de bestuurder in."),
    Veld("bestuurder.email", "E-mailadres", 254, uitleg="Vul een geldig e-mailadres in."),
    Veld(
        "bestuurder.telefoon",
        "Telefoonnummer",
        21,
        hint="Bijvoorbeeld 06 12345678.",
        uitleg="Vul een telefoonnummer in van 6 tot 21 tekens, met ten minste één cijfer.",
    ),
    Veld("bestuurder.adres.straat", "Straat", 200, uitleg="Vul de straat in."),
    Veld("bestuurder.adres.huisnummer", "Huisnummer", 10, uitleg="Vul het huisnummer in."),
    Veld(
        "bestuurder.adres.postcode",
        "Postcode",
        7,
        hint="Bijvoorbeeld 1234 AB.",
        uitleg="Vul een postcode in zoals 1234 AB.",
    ),
    Veld("bestuurder.adres.woonplaats", "Woonplaats", 200, uitleg="Vul de woonplaats in."),
    Veld(
        "werkgever.organisatie",
        "Organisatie",
        200,
        hint="De gemeente, provincie of het waterschap.",
        uitleg="Vul de naam van de organisatie in.",
    ),
    Veld(
        "werkgever.organisatie_code",
        "CBS-code van de organisatie",
        6,
        hint="Bijvoorbeeld GM0363 (gemeente), PV27 (provincie) of WS0155 (waterschap).",
        uitleg="Vul een CBS-code in: GM en vier cijfers, PV en twee cijfers, of WS en vier"
        " cijfers.",
    ),
    Veld("werkgever.contactpersoon", "Contactpersoon", 200, uitleg="Vul een contactpersoon in."),
    Veld("werkgever.email", "E-mailadres", 254, uitleg="Vul een geldig e-mailadres in."),
    Veld(
        "werkgever.telefoon",
        "Telefoonnummer",
        21,
        uitleg="Vul een telefoonnummer in van 6 tot 21 tekens, met ten minste één cijfer.",
    ),
    Veld(
        "reden",
        "Waarom vraagt u het advies aan?",
        5000,
        hint="Bijvoorbeeld bedreigingen, intimidatie of een verhuizing naar een nieuwe woning.",
        uitleg="Beschrijf kort waarom u het advies aanvraagt.",
    ),
)
VELD: dict[str, Veld] = {veld.naam: veld for veld in VELDEN}
#: The choice fields, with what they need when refused.
KEUZES: dict[str, str] = {
    "ingediend_door": "Kies wie deze aanmelding doet.",
    "bestuurder.functie": "Kies de functie van de bestuurder.",
    "toestemming": "Geef toestemming om de gegevens te verwerken; zonder kan het CCV u niet"
    " adviseren.",
}
#: The labels of the choice fields (for the error summary).
KEUZE_LABELS: dict[str, str] = {
    "ingediend_door": "Wie meldt aan",
    "bestuurder.functie": "Functie",
    "toestemming": "Toestemming",
}
#: Any form value longer than this is refused before anything else (hostile input).
MAX_WAARDE = 5000


@dataclass(frozen=True)
class Fout:
    """An error shown at a field and in the summary at the top."""

    veld: str
    label: str
    tekst: str


@dataclass
class Formulier:
    """The registration form as the person filled it in, and its errors."""

    waarden: dict[str, str] = field(default_factory=dict)
    fouten: list[Fout] = field(default_factory=list)
    #: Sent along as Idempotency-Key: posting the same form twice registers once.
    sleutel: str = field(default_factory=lambda: str(uuid.uuid4()))
    #: A problem that belongs to no field (the service unavailable, too many attempts).
    melding: str | None = None

    def fout(self, veld: str) -> Fout | None:
        """The error at a field, if any."""
        return next((f for f in self.fouten if f.veld == veld), None)


@dataclass(frozen=True)
class Ontvangen:
    """What the confirmation page says: whether the function falls outside the regeling."""

    buiten_regeling: bool


def _label(veld: str) -> str:
    if veld in VELD:
        soort = "bestuurder" if veld.startswith("bestuurder.") else "werkgever"
        label = VELD[veld].label
        return f"{label} ({soort})" if veld.startswith(("bestuurder.", "werkgever.")) else label
    return KEUZE_LABELS.get(veld, veld)


def _uitleg(veld: str) -> str:
    if veld in VELD:
        return VELD[veld].uitleg
    return KEUZES.get(veld, "Controleer dit veld.")


def formulier_uit(invoer: Mapping[str, str]) -> Formulier:
    """The form as posted (unknown fields dropped; too-long values refused at their field)."""
    bekend = set(VELD) | set(KEUZES) | {"verhuizing_gepland", "sleutel"}
    waarden = {naam: waarde for naam, waarde in invoer.items() if naam in bekend}
    formulier = Formulier(waarden=waarden)
    sleutel = waarden.pop("sleutel", "")
    if _geldige_sleutel(sleutel):
        formulier.sleutel = sleutel
    for naam, waarde in waarden.items():
        grens = VELD[naam].max_lengte if naam in VELD else 100
        if len(waarde) > grens:
            formulier.fouten.append(
                Fout(naam, _label(naam), f"Dit is te lang: ten hoogste {grens} tekens.")
            )
    return formulier


def _geldige_sleutel(sleutel: str) -> bool:
    try:
        return str(uuid.UUID(sleutel)) == sleutel
    except ValueError:
        return False


def _zet(doel: dict[str, Any], pad: str, waarde: object) -> None:
    *boven, laatste = pad.split(".")
    for deel in boven:
        doel = doel.setdefault(deel, {})
    doel[laatste] = waarde


def aanvraag_uit(formulier: Formulier) -> dict[str, Any]:
    """The body of ``POST /aanvragen`` made from the form (the API checks every rule)."""
    body: dict[str, Any] = {}
    for veld in VELDEN:
        _zet(body, veld.naam, formulier.waarden.get(veld.naam, ""))
    body["ingediend_door"] = formulier.waarden.get("ingediend_door", "")
    _zet(body, "bestuurder.functie", formulier.waarden.get("bestuurder.functie", ""))
    body["verhuizing_gepland"] = formulier.waarden.get("verhuizing_gepland") == "ja"
    body["toestemming"] = formulier.waarden.get("toestemming") == "ja"
    return body


def _veld_van(pad: str) -> str:
    """The form field an API error path names (``body.bestuurder.adres.postcode``)."""
    delen = pad.split(".")
    if delen and delen[0] == "body":
        delen = delen[1:]
    veld = ".".join(delen)
    if veld in VELD or veld in KEUZES:
        return veld
    # An error about a whole part (a missing object) belongs to its first field.
    return next((naam for naam in [*VELD, *KEUZES] if naam.startswith(veld + ".")), "")


def meld_aan(apis: Apis, formulier: Formulier) -> Ontvangen | Formulier:
    """Submit the registration: what the confirmation says, or the form with its errors."""
    if formulier.fouten:
        return formulier
    uitkomst = apis.dien_aanvraag_in(aanvraag_uit(formulier), formulier.sleutel)
    match uitkomst:
        case Gelukt():
            functie = _FUNCTIE_WAARDEN.get(formulier.waarden.get("bestuurder.functie", ""))
            return Ontvangen(buiten_regeling=functie is not None and not functie.binnen_regeling)
        case Ongeldig(fouten=fouten):
            gezien: set[str] = set()
            for fout in fouten:
                veld = _veld_van(fout.veld)
                if veld and veld not in gezien:
                    gezien.add(veld)
                    formulier.fouten.append(Fout(veld, _label(veld), _uitleg(veld)))
            volgorde = [*KEUZES, *VELD]
            formulier.fouten.sort(key=lambda f: volgorde.index(f.veld))
            if not formulier.fouten:
                formulier.melding = "De aanmelding is niet aangenomen. Controleer de gegevens."
        case TeVaak():
            formulier.melding = (
                "Er zijn te veel aanmeldingen gedaan in korte tijd. Probeer het over een uur"
                " opnieuw, of bel het CCV."
            )
        case _:
            formulier.melding = (
                "De aanmelding kon nu niet worden verwerkt. Probeer het over enkele minuten"
                " opnieuw; uw gegevens staan nog in het formulier."
            )
    return formulier
