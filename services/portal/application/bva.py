"""Journey 4, the BVA reviewer: the review queue, one report version with its content hash,
its four domains and its measures, and the decision: approve, or reject with reasons.

The queue is intake's dossier list, which answers a BVA only for the dossiers whose report
awaits review (``status=ter_toetsing``). A version is read from assessment (the read is on
record as RapportIngezien) and the decision names exactly that version and the hash read, so an
approval never covers content the reviewer did not see. Four-eyes is approval's rule: its answer
says whether the signed-in person wrote a version (``vier_ogen``), the page disables the
decision with the reason, and approval refuses a decision posted anyway.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from services.portal.application.ports import Apis
from services.portal.application.teksten import (
    DOMEIN_NAMEN,
    KOSTEN_NAMEN,
    PRIORITEIT_NAMEN,
    UITVOERDER_NAMEN,
    in_woorden,
    lees_moment,
    moment_tekst,
)
from services.portal.application.uitkomsten import (
    Conflict,
    Ongeldig,
    Probleem,
    Uitkomst,
    gelukt,
)

#: The most dossiers the queue shows on one page (the list API's own limit is 500).
PER_PAGINA = 100
#: The most dossiers intake's list gives in one answer.
MAX_UIT_INTAKE = 500
#: What the queue asks of intake's list (its live page asks the same).
WACHTRIJ_VRAAG: Mapping[str, str | int] = {"status": "ter_toetsing", "limit": MAX_UIT_INTAKE}
#: What approval accepts: 1 to 20 reasons of at most 2000 characters each.
MAX_REDENEN = 20
MAX_REDEN = 2000
HASH_PATROON = re.compile(r"^[0-9a-f]{64}$")

BESLUIT: dict[str, str] = {"goedgekeurd": "Goedgekeurd", "afgekeurd": "Afgekeurd"}

#: What the reviewer is told after a decision (the session carries the code, never data).
MELDINGEN: dict[str, str] = {
    "goedgekeurd": "Het rapport is goedgekeurd. De bestuurder ontvangt het als eerste.",
    "afgekeurd": "Het rapport is afgekeurd. De adviseur herziet het met uw redenen en biedt een"
    " nieuwe versie aan.",
}
VIER_OGEN_UITLEG = (
    "U hebt (een versie van) dit rapport zelf geschreven. Volgens het vier-ogenprincipe"
    " beslist een andere toetser van de Beveiligingsautoriteit erover."
)
CONFLICT_UITLEG = (
    "Dit besluit past niet meer bij het rapport: er is intussen al over deze versie beslist,"
    " of er is een nieuwe versie ter toetsing aangeboden. De pagina toont nu de actuele stand."
)


# --- the queue -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wachtend:
    """A report in the queue: which dossier, which version, since when."""

    aanvraag_id: str
    rapport_id: str
    versie: int | None
    ingediend_op: str
    organisatie_code: str


@dataclass(frozen=True)
class Wachtrij:
    """The reports awaiting review, longest waiting first."""

    rapporten: tuple[Wachtend, ...]
    meer: bool


def wachtrij(apis: Apis) -> Wachtrij:
    """The review queue (``Probleem`` when intake does not answer with it)."""
    # Intake lists newest registration first: ask for as many as it gives, so the reports
    # waiting longest are among them, then sort by waiting time and show a page.
    lijst = gelukt(apis.dossiers(dict(WACHTRIJ_VRAAG))).lijst
    return wachtrij_uit(lijst, vol=len(lijst) >= MAX_UIT_INTAKE)


def _ter_toetsing(rapport: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The latest version submitted for review, if any."""
    ingediend = [v for v in rapport.get("versies", ()) if v.get("ter_toetsing_op")]
    return max(ingediend, key=lambda v: int(v["versie"])) if ingediend else None


def wachtrij_uit(lijst: Sequence[Mapping[str, Any]], *, vol: bool = False) -> Wachtrij:
    """The queue made of intake's list: the ``PER_PAGINA`` waiting longest (``vol``: intake's
    list was cut off, so there may be more than it gave)."""
    rapporten: list[tuple[str, Wachtend]] = []
    for dossier in lijst:
        rapport = dossier.get("rapport")
        if not rapport:
            continue  # intake has not yet heard of the report itself
        versie = _ter_toetsing(rapport)
        sinds = str(versie["ter_toetsing_op"]) if versie else str(dossier["ingediend_op"])
        rapporten.append(
            (
                sinds,
                Wachtend(
                    aanvraag_id=str(dossier["aanvraag_id"]),
                    rapport_id=str(rapport["rapport_id"]),
                    versie=int(versie["versie"]) if versie else None,
                    ingediend_op=moment_tekst(sinds),
                    organisatie_code=str(dossier.get("organisatie_code", "")),
                ),
            )
        )
    rapporten.sort(key=lambda paar: lees_moment(paar[0]) or datetime.max)
    return Wachtrij(
        tuple(w for _, w in rapporten[:PER_PAGINA]), meer=vol or len(rapporten) > PER_PAGINA
    )


# --- one report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaatregelRegel:
    """A measure as the review page shows it."""

    domein: str
    omschrijving: str
    kosten: str
    uitvoerder: str
    prioriteit: str


@dataclass(frozen=True)
class DomeinBlok:
    """One of the four domains: the findings and the measures in it."""

    naam: str
    bevinding: str
    maatregelen: tuple[MaatregelRegel, ...]


@dataclass(frozen=True)
class EerderBesluit:
    """A decision about an earlier version (with the reasons of a rejection)."""

    versie: int
    besluit: str
    besloten_op: str
    redenen: tuple[str, ...]


@dataclass(frozen=True)
class Fout:
    """An error at a field of the decision forms."""

    veld: str
    tekst: str


@dataclass
class Besluitfouten:
    """The errors of the posted decision, and what was typed (shown again)."""

    fouten: list[Fout] = field(default_factory=list)
    melding: str | None = None
    redenen: str = ""

    def fout(self, veld: str) -> Fout | None:
        """The error at a field, if any."""
        return next((f for f in self.fouten if f.veld == veld), None)


@dataclass(frozen=True)
class RapportPagina:
    """A report version as the BVA reviews it, and whether they may decide about it."""

    rapport_id: str
    aanvraag_id: str
    versie: int
    inhoud_hash: str
    opgesteld_op: str
    domeinen: tuple[DomeinBlok, ...]
    aantal_maatregelen: int
    te_beoordelen: bool
    vier_ogen: bool
    besluit: str | None
    eerdere: tuple[EerderBesluit, ...]
    vergeten: bool

    @property
    def wacht_op_herziening(self) -> bool:
        """Whether this, the latest version approval knows, was rejected: a revision comes (the
        queue may list it a moment before approval has heard of it)."""
        return self.besluit == BESLUIT["afgekeurd"]

    @property
    def mag_besluiten(self) -> bool:
        """Whether the decision forms are enabled."""
        return self.te_beoordelen and not self.vier_ogen


def rapport_pagina(apis: Apis, rapport_id: UUID) -> RapportPagina:
    """The review page's data: approval's decisions first (they name the version awaiting
    review), then that version's content from assessment."""
    beoordelingen = gelukt(apis.beoordelingen(rapport_id)).data
    versies = list(beoordelingen.get("versies", ()))
    laatste = versies[-1] if versies else None
    gelezen = gelukt(apis.rapport(rapport_id, int(laatste["versie"]) if laatste else None)).data
    return rapport_pagina_uit(beoordelingen, gelezen)


def rapport_pagina_uit(
    beoordelingen: Mapping[str, Any], gelezen: Mapping[str, Any]
) -> RapportPagina:
    """The page from approval's decisions and assessment's version."""
    versies = list(beoordelingen.get("versies", ()))
    versie = int(gelezen["versie"])
    deze = next((v for v in versies if int(v["versie"]) == versie), None)
    inhoud = gelezen.get("inhoud", {})
    bevindingen = inhoud.get("bevindingen", {})
    maatregelen = list(inhoud.get("maatregelen", ()))
    domeinen = tuple(
        DomeinBlok(
            naam=naam,
            bevinding=str(bevindingen.get(sleutel, "")),
            maatregelen=tuple(
                MaatregelRegel(
                    domein=naam,
                    omschrijving=str(m.get("omschrijving", "")),
                    kosten=in_woorden(KOSTEN_NAMEN, m.get("kosten")),
                    uitvoerder=in_woorden(UITVOERDER_NAMEN, m.get("uitvoerder")),
                    prioriteit=in_woorden(PRIORITEIT_NAMEN, m.get("prioriteit")),
                )
                for m in maatregelen
                if m.get("domein") == sleutel
            ),
        )
        for sleutel, naam in DOMEIN_NAMEN.items()
    )
    besluit = deze.get("besluit") if deze else None
    goedgekeurd = any(v.get("besluit") == "goedgekeurd" for v in versies)
    return RapportPagina(
        rapport_id=str(gelezen["rapport_id"]),
        aanvraag_id=str(gelezen["aanvraag_id"]),
        versie=versie,
        inhoud_hash=str(gelezen["inhoud_hash"]),
        opgesteld_op=moment_tekst(gelezen.get("opgesteld_op")),
        domeinen=domeinen,
        aantal_maatregelen=len(maatregelen),
        te_beoordelen=deze is not None and besluit is None and not goedgekeurd,
        vier_ogen=bool(beoordelingen.get("vier_ogen")),
        besluit=BESLUIT.get(str(besluit)) if besluit else None,
        eerdere=tuple(
            EerderBesluit(
                versie=int(v["versie"]),
                besluit=BESLUIT.get(str(v["besluit"]), str(v["besluit"])),
                besloten_op=moment_tekst(v.get("besloten_op")),
                redenen=tuple(str(r) for r in v.get("redenen", ())),
            )
            for v in versies
            if v.get("besluit") and int(v["versie"]) != versie
        ),
        vergeten=bool(gelezen.get("vergeten")),
    )


# --- the decision --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Besluit:
    """A decision as posted: the version and hash read, and the reasons (for a rejection)."""

    versie: int
    inhoud_hash: str
    redenen: tuple[str, ...] = ()


def besluit_uit(invoer: Mapping[str, str]) -> Besluit | None:
    """The version and hash a form names (None when they are not a version and a hash)."""
    versie = invoer.get("versie", "")
    inhoud_hash = invoer.get("inhoud_hash", "")
    if not versie.isdigit() or not 1 <= int(versie) <= 100_000:
        return None
    if not HASH_PATROON.match(inhoud_hash):
        return None
    return Besluit(int(versie), inhoud_hash)


def redenen_uit(tekst: str) -> tuple[tuple[str, ...], Fout | None]:
    """The reasons typed, one per line (blank lines dropped), or the error at the field."""
    redenen = tuple(regel.strip() for regel in tekst.splitlines() if regel.strip())
    if not redenen:
        return (), Fout(
            "redenen", "Vul ten minste één reden in: de adviseur herziet het rapport ermee."
        )
    if len(redenen) > MAX_REDENEN:
        return (), Fout("redenen", f"Geef ten hoogste {MAX_REDENEN} redenen, één per regel.")
    if any(len(reden) > MAX_REDEN for reden in redenen):
        return (), Fout(
            "redenen", f"Een reden is te lang: ten hoogste {MAX_REDEN} tekens per regel."
        )
    return redenen, None


def fouten_uit(uitkomst: Uitkomst, redenen: str) -> Besluitfouten:
    """What a refused decision shows: a 422 at the reasons, a 409 explained in Dutch."""
    fouten = Besluitfouten(redenen=redenen)
    match uitkomst:
        case Ongeldig(fouten=velden):
            if any("redenen" in veld.veld for veld in velden):
                fouten.fouten.append(
                    Fout(
                        "redenen",
                        f"Geef 1 tot {MAX_REDENEN} redenen van ten hoogste"
                        f" {MAX_REDEN} tekens, één per regel.",
                    )
                )
            else:
                fouten.melding = "Het besluit is niet aangenomen. Open het rapport opnieuw."
        case Conflict():
            fouten.melding = CONFLICT_UITLEG
        case _:
            raise Probleem(uitkomst)
    return fouten
