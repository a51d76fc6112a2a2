"""Journey 3, the adviseur: my appointments, a conversation held and the woningscan, and the
report over the four domains with its measures: saved as a draft, submitted, revised after the
BVA's rejection with its reasons beside the text, and the differences between two versions.

The appointments are scheduling's (``GET /afspraken``: only the signed-in adviseur's own), the
report and its versions assessment's, the decisions and their reasons approval's. Every read
of a version is assessment's to record; the portal keeps nothing between pages but the form
the adviseur is filling in.
"""

from __future__ import annotations

import difflib
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
    SOORT_NAMEN,
    UITVOERDER_NAMEN,
    VORM_NAMEN,
    lees_moment,
    moment_tekst,
)
from services.portal.application.uitkomsten import (
    Conflict,
    NietGevonden,
    Ongeldig,
    Probleem,
    Uitkomst,
    gelukt,
)

RAPPORT_STATUS: dict[str, str] = {
    "concept": "Concept: nog niet ingediend",
    "ter_toetsing": "Ter toetsing bij de BVA",
    "afgekeurd": "Afgekeurd door de BVA: herzie het rapport en dien het opnieuw in",
    "goedgekeurd": "Goedgekeurd door de BVA",
    "instemming_geweigerd": "Goedgekeurd; de bestuurder deelt het niet met de werkgever",
    "vrijgegeven": "Goedgekeurd en vrijgegeven aan de werkgever",
}
MAATREGEL_VELDEN: dict[str, str] = {
    "domein": "Domein",
    "omschrijving": "Omschrijving",
    "prioriteit": "Prioriteit",
    "uitvoerder": "Uitvoerder",
    "kosten": "Kosten",
}
#: What the adviseur is told after a step (the session carries the code, never data).
MELDINGEN: dict[str, str] = {
    "gesprek_gevoerd": "Het gesprek is vastgelegd als gevoerd.",
    "gesprek_en_woningscan": "Het gesprek en de woningscan zijn vastgelegd.",
    "woningscan": "De woningscan is vastgelegd.",
    "concept_opgeslagen": "Het rapport is opgeslagen als concept.",
    "ongewijzigd": "Er was niets gewijzigd; het concept is gelijk gebleven.",
    "ingediend": "Het rapport is ter toetsing aangeboden aan de BVA.",
}
#: The most measures one report may have (the API's limit).
MAX_MAATREGELEN = 100


# --- my appointments -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Afspraak:
    """One of my appointments."""

    afspraak_id: str
    aanvraag_id: str
    soort: str
    soort_naam: str
    vorm: str
    wanneer: str
    duur_minuten: int
    video_link: str | None
    begonnen: bool
    woningscan_open: bool = False

    @property
    def thuis(self) -> bool:
        """The conversation at home, where the woningscan is done."""
        return self.soort == "gesprek_bestuurder"


@dataclass(frozen=True)
class MijnAfspraken:
    """My open appointments (the earliest first) and the ones held (the latest first)."""

    open: tuple[Afspraak, ...]
    gevoerd: tuple[Afspraak, ...]


def _afspraak(a: Mapping[str, Any], nu: datetime) -> Afspraak:
    begin = lees_moment(a["gepland_op"]) or nu
    soort = str(a["soort"])
    return Afspraak(
        afspraak_id=str(a["afspraak_id"]),
        aanvraag_id=str(a["aanvraag_id"]),
        soort=soort,
        soort_naam=SOORT_NAMEN.get(soort, soort),
        vorm=VORM_NAMEN.get(str(a["vorm"]), str(a["vorm"])),
        wanneer=moment_tekst(begin),
        duur_minuten=int(a["duur_minuten"]),
        video_link=a.get("video_link"),
        begonnen=begin <= nu,
        woningscan_open=(
            soort == "gesprek_bestuurder"
            and a.get("status") == "gevoerd"
            and not a.get("woningscan_uitgevoerd_op")
        ),
    )


def mijn_afspraken(apis: Apis, nu: datetime) -> MijnAfspraken:
    """My appointments from scheduling (``Probleem`` when it does not answer)."""
    open_ = gelukt(apis.mijn_afspraken("gepland")).lijst
    gevoerd = gelukt(apis.mijn_afspraken("gevoerd")).lijst
    return mijn_afspraken_uit(open_, gevoerd, nu)


def mijn_afspraken_uit(
    open_: Sequence[Mapping[str, Any]], gevoerd: Sequence[Mapping[str, Any]], nu: datetime
) -> MijnAfspraken:
    """The page made of scheduling's two lists."""
    return MijnAfspraken(
        open=tuple(_afspraak(a, nu) for a in open_),
        gevoerd=tuple(_afspraak(a, nu) for a in gevoerd),
    )


# --- the report: the form ------------------------------------------------------------------------


@dataclass(frozen=True)
class MaatregelInvoer:
    """One measure as the form holds it (empty strings where nothing was chosen)."""

    maatregel_id: str = ""
    domein: str = ""
    omschrijving: str = ""
    prioriteit: str = ""
    uitvoerder: str = ""
    kosten: str = ""

    @property
    def leeg(self) -> bool:
        """A row left blank: no description (it is left out when saved)."""
        return not self.omschrijving.strip()


@dataclass(frozen=True)
class Invoer:
    """The report as the form holds it: a finding per domain and the measures' rows."""

    bevindingen: Mapping[str, str]
    maatregelen: tuple[MaatregelInvoer, ...]

    @classmethod
    def leeg(cls) -> Invoer:
        """A new report: nothing written, one blank measure."""
        return cls({d: "" for d in DOMEIN_NAMEN}, (MaatregelInvoer(),))

    @classmethod
    def uit_inhoud(cls, inhoud: Mapping[str, Any]) -> Invoer:
        """A version's content, as the form shows it (with a blank row to add one more)."""
        bevindingen = inhoud.get("bevindingen", {})
        return cls(
            {d: str(bevindingen.get(d, "")) for d in DOMEIN_NAMEN},
            (
                *(
                    MaatregelInvoer(
                        maatregel_id=str(m.get("maatregel_id", "")),
                        domein=str(m.get("domein", "")),
                        omschrijving=str(m.get("omschrijving", "")),
                        prioriteit=str(m.get("prioriteit", "")),
                        uitvoerder=str(m.get("uitvoerder", "")),
                        kosten=str(m.get("kosten", "")),
                    )
                    for m in inhoud.get("maatregelen", ())
                ),
                MaatregelInvoer(),
            ),
        )

    @classmethod
    def uit_formulier(cls, waarden: Mapping[str, str]) -> Invoer:
        """The form as posted: ``bevinding-<domein>`` and ``m<i>-<veld>`` for each row."""
        try:
            aantal = min(int(waarden.get("aantal", "1")), MAX_MAATREGELEN + 1)
        except ValueError:
            aantal = 1
        rijen = tuple(
            MaatregelInvoer(
                maatregel_id=_id_of_leeg(waarden.get(f"m{i}-id", "")),
                domein=_keuze(waarden.get(f"m{i}-domein", ""), DOMEIN_NAMEN),
                omschrijving=waarden.get(f"m{i}-omschrijving", ""),
                prioriteit=_keuze(waarden.get(f"m{i}-prioriteit", ""), PRIORITEIT_NAMEN),
                uitvoerder=_keuze(waarden.get(f"m{i}-uitvoerder", ""), UITVOERDER_NAMEN),
                kosten=_keuze(waarden.get(f"m{i}-kosten", ""), KOSTEN_NAMEN),
            )
            for i in range(max(aantal, 1))
        )
        return cls({d: waarden.get(f"bevinding-{d}", "") for d in DOMEIN_NAMEN}, rijen)

    def met_extra_rij(self) -> Invoer:
        """The same, with one more blank measure to fill in."""
        if len(self.maatregelen) > MAX_MAATREGELEN:
            return self
        return Invoer(self.bevindingen, (*self.maatregelen, MaatregelInvoer()))

    def ingevuld(self) -> list[tuple[int, MaatregelInvoer]]:
        """The rows that are measures (with a description), each with its row number."""
        return [(i, m) for i, m in enumerate(self.maatregelen) if not m.leeg]


def _keuze(waarde: str, opties: Mapping[str, str]) -> str:
    return waarde if waarde in opties else ""


def _id_of_leeg(waarde: str) -> str:
    try:
        return str(UUID(waarde))
    except ValueError:
        return ""


@dataclass(frozen=True)
class Fout:
    """An error at a field of the report's form (its id on the page) or of a step."""

    veld: str
    tekst: str


@dataclass
class Fouten:
    """What a refused save or step shows: errors at their fields, or one message."""

    fouten: list[Fout] = field(default_factory=list)
    melding: str | None = None

    def bij(self, veld: str) -> Fout | None:
        """The error at a field, if any."""
        return next((f for f in self.fouten if f.veld == veld), None)

    def __bool__(self) -> bool:
        return bool(self.fouten or self.melding)


def controleer(invoer: Invoer) -> Fouten:
    """What the form lacks before the API is asked (the API checks again)."""
    fouten = Fouten()
    for domein, naam in DOMEIN_NAMEN.items():
        if not invoer.bevindingen.get(domein, "").strip():
            fouten.fouten.append(
                Fout(f"bevinding-{domein}", f"Vul de bevindingen voor het domein {naam} in.")
            )
    ingevuld = invoer.ingevuld()
    if not ingevuld:
        fouten.fouten.append(Fout("m0-omschrijving", "Beschrijf ten minste één maatregel."))
    for i, maatregel in ingevuld:
        for veld, naam in MAATREGEL_VELDEN.items():
            if veld != "omschrijving" and not getattr(maatregel, veld):
                fouten.fouten.append(
                    Fout(f"m{i}-{veld}", f"Kies bij maatregel {i + 1}: {naam.lower()}.")
                )
    if len(ingevuld) > MAX_MAATREGELEN:
        fouten.melding = f"Een rapport heeft ten hoogste {MAX_MAATREGELEN} maatregelen."
    return fouten


def concept(invoer: Invoer) -> dict[str, Any]:
    """The body of ``POST /aanvragen/{id}/rapport`` and ``PUT /rapporten/{id}``: the
    measures with a description, each keeping its id when it had one."""
    maatregelen = []
    for _, m in invoer.ingevuld():
        maatregel: dict[str, Any] = {
            "domein": m.domein,
            "omschrijving": m.omschrijving.strip(),
            "prioriteit": m.prioriteit,
            "uitvoerder": m.uitvoerder,
            "kosten": m.kosten,
        }
        if m.maatregel_id:
            maatregel["maatregel_id"] = m.maatregel_id
        maatregelen.append(maatregel)
    return {
        "bevindingen": {d: invoer.bevindingen[d].strip() for d in DOMEIN_NAMEN},
        "maatregelen": maatregelen,
    }


VELD_REGEL = re.compile(r"^body\.maatregelen\.(\d+)\.(\w+)$")


def fouten_uit(invoer: Invoer, uitkomst: Uitkomst) -> Fouten:
    """A refused save: the API's 422 at the form's fields, a 409 in the API's own words."""
    match uitkomst:
        case Ongeldig(fouten=velden):
            fouten = Fouten()
            rijen = [i for i, _ in invoer.ingevuld()]
            for veld in velden:
                if veld.veld.startswith("body.bevindingen."):
                    domein = veld.veld.rsplit(".", 1)[-1]
                    if domein in DOMEIN_NAMEN:
                        fouten.fouten.append(
                            Fout(
                                f"bevinding-{domein}",
                                f"De bevindingen voor {DOMEIN_NAMEN[domein]} zijn niet aangenomen"
                                " (leeg of te lang).",
                            )
                        )
                elif (gevonden := VELD_REGEL.match(veld.veld)) is not None:
                    index, naam = int(gevonden.group(1)), gevonden.group(2)
                    rij = rijen[index] if index < len(rijen) else 0
                    naam = "omschrijving" if naam not in MAATREGEL_VELDEN else naam
                    fouten.fouten.append(
                        Fout(
                            f"m{rij}-{naam}",
                            f"Maatregel {rij + 1}: {MAATREGEL_VELDEN[naam].lower()} is niet"
                            " aangenomen.",
                        )
                    )
            if not fouten.fouten:
                fouten.melding = "Het rapport is niet aangenomen. Controleer de gegevens."
            return fouten
        case _:
            return stap_fout(uitkomst)


def stap_fout(uitkomst: Uitkomst) -> Fouten:
    """A refused step (409: the API says why, in Dutch); any other answer ends the page."""
    if isinstance(uitkomst, Conflict):
        return Fouten(
            melding=uitkomst.detail
            or "Deze stap past nu niet in het proces. De pagina toont de actuele stand."
        )
    raise Probleem(uitkomst)


# --- the report: the page ------------------------------------------------------------------------


@dataclass(frozen=True)
class Afkeuring:
    """A rejected version with the BVA's reasons."""

    versie: int
    op: str
    redenen: tuple[str, ...]


@dataclass(frozen=True)
class RapportPagina:
    """The report of a dossier as the adviseur works on it."""

    aanvraag_id: str
    rapport_id: str | None
    status: str | None
    status_naam: str
    versie: int | None
    ingediende_versies: tuple[int, ...]
    invoer: Invoer
    afkeuringen: tuple[Afkeuring, ...]

    @property
    def bewerkbaar(self) -> bool:
        """Whether the adviseur may save a version now (new, draft, or rejected)."""
        return self.status in (None, "concept", "afgekeurd")

    @property
    def indienbaar(self) -> bool:
        """Whether the current version can be submitted (a draft)."""
        return self.status == "concept"

    @property
    def laatste_afkeuring(self) -> Afkeuring | None:
        """The latest rejection, whose reasons are shown beside the text."""
        return self.afkeuringen[-1] if self.afkeuringen else None


def rapport_stand(apis: Apis, aanvraag_id: UUID) -> Mapping[str, Any] | None:
    """The report's state (None: none drafted yet)."""
    lijst = gelukt(apis.rapporten(aanvraag_id)).lijst
    return lijst[0] if lijst else None


def afkeuringen(apis: Apis, rapport_id: UUID) -> tuple[Afkeuring, ...]:
    """The rejected versions with their reasons (none while approval has not heard of the
    report)."""
    uitkomst = apis.beoordelingen(rapport_id)
    if isinstance(uitkomst, NietGevonden):
        return ()
    return afkeuringen_uit(gelukt(uitkomst).data)


def afkeuringen_uit(beoordelingen: Mapping[str, Any]) -> tuple[Afkeuring, ...]:
    """The rejections in approval's decisions per version."""
    gevonden = []
    for v in beoordelingen.get("versies", ()):
        if v.get("besluit") != "afgekeurd":
            continue
        gevonden.append(
            Afkeuring(
                versie=int(v["versie"]),
                op=moment_tekst(v.get("besloten_op")),
                redenen=tuple(str(r) for r in v.get("redenen", ())),
            )
        )
    return tuple(gevonden)


def rapport_pagina(apis: Apis, aanvraag_id: UUID, invoer: Invoer | None = None) -> RapportPagina:
    """The report page: the current version in the form (or ``invoer``, the form as posted),
    the rejections' reasons beside it (``Probleem`` when the APIs refuse or do not answer)."""
    stand = rapport_stand(apis, aanvraag_id)
    if stand is None:
        return RapportPagina(
            aanvraag_id=str(aanvraag_id),
            rapport_id=None,
            status=None,
            status_naam="Nog niet opgesteld",
            versie=None,
            ingediende_versies=(),
            invoer=invoer or Invoer.leeg(),
            afkeuringen=(),
        )
    rapport_id = UUID(str(stand["rapport_id"]))
    if invoer is None:
        inhoud = gelukt(apis.rapport(rapport_id)).data.get("inhoud", {})
        invoer = Invoer.uit_inhoud(inhoud)
    status = str(stand["status"])
    return RapportPagina(
        aanvraag_id=str(aanvraag_id),
        rapport_id=str(rapport_id),
        status=status,
        status_naam=RAPPORT_STATUS.get(status, status),
        versie=int(stand["versie"]),
        ingediende_versies=tuple(int(v) for v in stand.get("ingediende_versies", ())),
        invoer=invoer,
        afkeuringen=afkeuringen(apis, rapport_id),
    )


# --- the differences between two versions --------------------------------------------------------


@dataclass(frozen=True)
class Stuk:
    """A piece of a text compared: kept, removed (``weg``) or added (``nieuw``)."""

    soort: str
    tekst: str


@dataclass(frozen=True)
class BevindingVerschil:
    """A domain's findings in both versions, word by word."""

    domein: str
    naam: str
    gewijzigd: bool
    stukken: tuple[Stuk, ...]


@dataclass(frozen=True)
class VeldWijziging:
    """One field of a measure that changed."""

    veld: str
    was: str
    wordt: str


@dataclass(frozen=True)
class MaatregelVerschil:
    """A measure added, removed, changed or kept between the versions."""

    soort: str  # nieuw, vervallen, gewijzigd, gelijk
    domein: str
    omschrijving: str
    wijzigingen: tuple[VeldWijziging, ...] = ()
    stukken: tuple[Stuk, ...] = ()


@dataclass(frozen=True)
class Verschillen:
    """What changed from version ``van`` to version ``naar``."""

    aanvraag_id: str
    van: int
    naar: int
    versies: tuple[int, ...]
    bevindingen: tuple[BevindingVerschil, ...]
    maatregelen: tuple[MaatregelVerschil, ...]

    @property
    def aantal_gewijzigd(self) -> int:
        """How many findings and measures differ."""
        return sum(b.gewijzigd for b in self.bevindingen) + sum(
            m.soort != "gelijk" for m in self.maatregelen
        )


def woorden_verschil(was: str, wordt: str) -> tuple[Stuk, ...]:
    """Two texts compared word by word (white space kept with its word)."""
    oud, nieuw = re.findall(r"\S+\s*", was), re.findall(r"\S+\s*", wordt)
    stukken: list[Stuk] = []
    matcher = difflib.SequenceMatcher(a=oud, b=nieuw, autojunk=False)
    for actie, a1, a2, b1, b2 in matcher.get_opcodes():
        if actie == "equal":
            stukken.append(Stuk("gelijk", "".join(oud[a1:a2])))
            continue
        if a2 > a1:
            stukken.append(Stuk("weg", "".join(oud[a1:a2])))
        if b2 > b1:
            stukken.append(Stuk("nieuw", "".join(nieuw[b1:b2])))
    return tuple(stukken)


def _naam(veld: str, waarde: str) -> str:
    namen = {"domein": DOMEIN_NAMEN, "prioriteit": PRIORITEIT_NAMEN, "uitvoerder": UITVOERDER_NAMEN}
    return {**namen, "kosten": KOSTEN_NAMEN}.get(veld, {}).get(waarde, waarde)


def verschillen_uit(
    aanvraag_id: str,
    van: Mapping[str, Any],
    naar: Mapping[str, Any],
    versies: tuple[int, ...],
) -> Verschillen:
    """The differences between two versions as assessment served them (``versie``,
    ``inhoud``); measures are matched by their id, which a revision keeps."""
    oud, nieuw = van["inhoud"], naar["inhoud"]
    bevindingen = tuple(
        BevindingVerschil(
            domein=d,
            naam=naam,
            gewijzigd=oud["bevindingen"][d] != nieuw["bevindingen"][d],
            stukken=woorden_verschil(oud["bevindingen"][d], nieuw["bevindingen"][d]),
        )
        for d, naam in DOMEIN_NAMEN.items()
    )
    oude = {str(m["maatregel_id"]): m for m in oud["maatregelen"]}
    nieuwe = {str(m["maatregel_id"]): m for m in nieuw["maatregelen"]}
    maatregelen: list[MaatregelVerschil] = []
    for maatregel_id, m in nieuwe.items():
        vorige = oude.get(maatregel_id)
        domein = _naam("domein", str(m["domein"]))
        if vorige is None:
            maatregelen.append(MaatregelVerschil("nieuw", domein, str(m["omschrijving"])))
            continue
        wijzigingen = tuple(
            VeldWijziging(naam, _naam(veld, str(vorige[veld])), _naam(veld, str(m[veld])))
            for veld, naam in MAATREGEL_VELDEN.items()
            if veld != "omschrijving" and vorige[veld] != m[veld]
        )
        tekst_anders = vorige["omschrijving"] != m["omschrijving"]
        maatregelen.append(
            MaatregelVerschil(
                "gewijzigd" if wijzigingen or tekst_anders else "gelijk",
                domein,
                str(m["omschrijving"]),
                wijzigingen,
                woorden_verschil(str(vorige["omschrijving"]), str(m["omschrijving"]))
                if tekst_anders
                else (),
            )
        )
    for maatregel_id, m in oude.items():
        if maatregel_id not in nieuwe:
            maatregelen.append(
                MaatregelVerschil(
                    "vervallen", _naam("domein", str(m["domein"])), str(m["omschrijving"])
                )
            )
    return Verschillen(
        aanvraag_id=aanvraag_id,
        van=int(van["versie"]),
        naar=int(naar["versie"]),
        versies=versies,
        bevindingen=bevindingen,
        maatregelen=tuple(maatregelen),
    )


def standaard_versies(stand: Mapping[str, Any]) -> tuple[int, int]:
    """Which versions to compare by default: the latest submitted before the current one
    (the one the BVA judged) against the current, else the one before the current."""
    huidige = int(stand["versie"])
    eerder = [int(v) for v in stand.get("ingediende_versies", ()) if int(v) < huidige]
    return (eerder[-1] if eerder else max(huidige - 1, 1)), huidige


def verschillen(
    apis: Apis, aanvraag_id: UUID, van: int | None, naar: int | None
) -> Verschillen | None:
    """The differences between two versions of the dossier's report (None: no report, or
    only one version)."""
    stand = rapport_stand(apis, aanvraag_id)
    if stand is None or int(stand["versie"]) < 2:
        return None
    huidige = int(stand["versie"])
    standaard_van, standaard_naar = standaard_versies(stand)
    van = van if van is not None and 1 <= van <= huidige else standaard_van
    naar = naar if naar is not None and 1 <= naar <= huidige else standaard_naar
    rapport_id = UUID(str(stand["rapport_id"]))
    oud = gelukt(apis.rapport(rapport_id, van)).data
    nieuw = gelukt(apis.rapport(rapport_id, naar)).data
    return verschillen_uit(str(aanvraag_id), oud, nieuw, tuple(range(1, huidige + 1)))
