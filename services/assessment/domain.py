"""Assessment's domain: the advice report, its versions and measures, the PKVW, and who may read.

Three kinds of aggregate live in assessment's event store:

- ``Onderzoek`` (id = aanvraag_id): what the research of one dossier has done so far (the two
  conversations and the woningscan, noted from scheduling's events) and the bestuurder's PKVW.
- ``Rapport`` (id = rapport_id): every version of the report's content, which versions were
  submitted, approval's decisions about them, and which measures were carried out.
- one ``RapportIngezienVastgelegd`` per read (its own aggregate, so reading never contends with
  the report's writers).

The report's content is personal data: it is held only here, encrypted with the dossier's key,
and served only to those the read rules below allow. Its findings and the measures' descriptions
are the personal part; the measures' ids, domains, costs, executors and priorities, and each
version's content hash, stay readable after the dossier is forgotten, so the process (approval,
execution, closing) and every replay still run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.events import (
    Domein,
    Kosten,
    MaatregelSamenvatting,
    Partij,
    PkvwStatus,
    Prioriteit,
    Rol,
)
from shared.platform.errors import Conflict, FieldError, Ongeldig
from shared.platform.model import VERGETEN, Aggregate, Context, DomainEvent, first_event, next_event

ZONE = ZoneInfo("Europe/Amsterdam")
PKVW_GELDIG_JAREN = 10

# At least one character that is not white space: a blank finding is no finding.
Bevinding = Annotated[str, Field(min_length=1, max_length=20_000, pattern=r"\S")]
Omschrijving = Annotated[str, Field(min_length=1, max_length=2_000, pattern=r"\S")]


# --- the report's content ------------------------------------------------------------------------


class Bevindingen(BaseModel):
    """The findings per security domain."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    werk: Bevinding
    wonen: Bevinding
    informatie: Bevinding
    verplaatsen: Bevinding


class Maatregel(BaseModel):
    """One measure of a report version."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    maatregel_id: UUID
    domein: Domein
    omschrijving: Omschrijving
    kosten: Kosten
    uitvoerder: Partij
    prioriteit: Prioriteit

    def samenvatting(self) -> MaatregelSamenvatting:
        """The measure without its description (what may be published)."""
        return MaatregelSamenvatting(
            maatregel_id=self.maatregel_id,
            domein=self.domein,
            kosten=self.kosten,
            uitvoerder=self.uitvoerder,
            prioriteit=self.prioriteit,
        )


class RapportInhoud(BaseModel):
    """The content of one report version: findings and measures (with their ids)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bevindingen: Bevindingen
    maatregelen: tuple[Maatregel, ...] = Field(min_length=1, max_length=100)


class ConceptMaatregel(BaseModel):
    """A measure as the adviseur writes it; ``maatregel_id`` keeps a measure of an earlier
    version of the same report (without it, an unchanged measure keeps its id too)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    maatregel_id: UUID | None = None
    domein: Domein
    omschrijving: Omschrijving
    kosten: Kosten
    uitvoerder: Partij
    prioriteit: Prioriteit


class Concept(BaseModel):
    """A report version as the adviseur submits it (POST and PUT body)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bevindingen: Bevindingen
    maatregelen: list[ConceptMaatregel] = Field(min_length=1, max_length=100)


def inhoud_hash(inhoud: RapportInhoud) -> str:
    """SHA-256 (lowercase hex) of the canonical JSON of a version's content.

    Canonical: the content as JSON (ids as strings, enums as their values, measures in their
    order), keys sorted, no white space, non-ASCII characters as themselves, encoded as UTF-8.
    """
    canonical = json.dumps(
        inhoud.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def vandaag(moment: datetime) -> date:
    """The calendar day of a moment in the Netherlands."""
    return moment.astimezone(ZONE).date()


def tien_jaar_na(dag: date) -> date:
    """The same day ten years later (29 February becomes 28 February)."""
    try:
        return dag.replace(year=dag.year + PKVW_GELDIG_JAREN)
    except ValueError:
        return dag.replace(year=dag.year + PKVW_GELDIG_JAREN, day=28)


# --- domain events -------------------------------------------------------------------------------


class GesprekGenoteerd(DomainEvent):
    """Scheduling reported that a conversation of the research took place."""

    soort: Literal["gesprek_werkgever", "gesprek_bestuurder"]
    afspraak_id: UUID
    gevoerd_op: datetime


class WoningscanGenoteerd(DomainEvent):
    """Scheduling reported that the woningscan was carried out."""

    afspraak_id: UUID
    uitgevoerd_op: datetime


class PkvwStatusGewijzigd(DomainEvent):
    """The bestuurder reported a new PKVW status (the certificate number stays private)."""

    personal: ClassVar[Mapping[str, object]] = {"nummer": VERGETEN}

    status: PkvwStatus
    afgegeven_op: date | None = None
    nummer: str | None = None
    geldig_tot: date | None = None


#: The personal part of a version's content (a forgotten text reads as VERGETEN, which fits).
INHOUD_PERSOONLIJK: Mapping[str, object] = {
    "inhoud.bevindingen.werk": VERGETEN,
    "inhoud.bevindingen.wonen": VERGETEN,
    "inhoud.bevindingen.informatie": VERGETEN,
    "inhoud.bevindingen.verplaatsen": VERGETEN,
    "inhoud.maatregelen.*.omschrijving": VERGETEN,
}


class RapportOpgesteld(DomainEvent):
    """The adviseur drafted version 1 of the dossier's report."""

    personal: ClassVar[Mapping[str, object]] = INHOUD_PERSOONLIJK

    aanvraag_id: UUID
    inhoud: RapportInhoud
    # Kept in clear: it still names the version once its text is forgotten (None: older events).
    inhoud_hash: str | None = None


class RapportHerzien(DomainEvent):
    """The adviseur wrote a new version; the earlier ones are kept."""

    personal: ClassVar[Mapping[str, object]] = INHOUD_PERSOONLIJK

    aanvraag_id: UUID
    versie: int
    inhoud: RapportInhoud
    inhoud_hash: str | None = None


class RapportTerToetsingAangeboden(DomainEvent):
    """The adviseur submitted a version to the BVA; the hash names its exact content."""

    aanvraag_id: UUID
    versie: int
    inhoud_hash: str


class GoedkeuringGenoteerd(DomainEvent):
    """Approval reported that the BVA approved this version."""

    aanvraag_id: UUID
    versie: int
    inhoud_hash: str


class AfkeuringGenoteerd(DomainEvent):
    """Approval reported that the BVA rejected this version."""

    aanvraag_id: UUID
    versie: int


class InstemmingGenoteerd(DomainEvent):
    """Approval reported the bestuurder's consent (or refusal) to share the approved version."""

    aanvraag_id: UUID
    versie: int
    gegeven: bool


class VrijgaveGenoteerd(DomainEvent):
    """Approval reported that the approved version was released to the werkgever."""

    aanvraag_id: UUID
    versie: int


class MaatregelUitgevoerd(DomainEvent):
    """A party recorded a measure of the approved version as carried out."""

    aanvraag_id: UUID
    maatregel_id: UUID
    domein: Domein
    kosten: Kosten
    uitgevoerd_door: Partij
    uitgevoerd_op: datetime


class RapportIngezienVastgelegd(DomainEvent):
    """Someone read a report version's content (one aggregate per read)."""

    aanvraag_id: UUID
    rapport_id: UUID
    versie: int
    rol: Rol
    ingezien_op: datetime


# --- aggregates ----------------------------------------------------------------------------------


class Onderzoek(Aggregate):
    """The research of one dossier (id = aanvraag_id) and the bestuurder's PKVW."""

    gesprekken: frozenset[str] = frozenset()
    woningscan: bool = False
    pkvw: PkvwStatus = PkvwStatus.GEEN
    pkvw_afgegeven_op: date | None = None
    pkvw_geldig_tot: date | None = None

    def certificaat_geldig(self, dag: date) -> bool:
        """Whether the bestuurder holds a PKVW certificate that is valid on this day."""
        return (
            self.pkvw is PkvwStatus.CERTIFICAAT
            and self.pkvw_geldig_tot is not None
            and dag <= self.pkvw_geldig_tot
        )


class RapportStatus(StrEnum):
    """Where a report stands."""

    CONCEPT = "concept"
    TER_TOETSING = "ter_toetsing"
    AFGEKEURD = "afgekeurd"
    GOEDGEKEURD = "goedgekeurd"
    INSTEMMING_GEWEIGERD = "instemming_geweigerd"
    VRIJGEGEVEN = "vrijgegeven"


class RapportVersie(BaseModel):
    """One version of the report, as written."""

    model_config = ConfigDict(frozen=True)

    versie: int
    inhoud: RapportInhoud
    inhoud_hash: str
    opgesteld_op: datetime
    opgesteld_door: str | None
    vergeten: bool = False  # the texts were forgotten: the content holds placeholders


class Uitvoering(BaseModel):
    """A measure carried out."""

    model_config = ConfigDict(frozen=True)

    door: Partij
    op: datetime


class Rapport(Aggregate):
    """The report of one dossier with all its versions."""

    aanvraag_id: UUID
    versies: tuple[RapportVersie, ...]
    ingediend: tuple[int, ...] = ()
    afgekeurd: tuple[int, ...] = ()
    goedgekeurde_versie: int | None = None
    instemming: bool | None = None
    vrijgegeven: bool = False
    uitgevoerd: dict[UUID, Uitvoering] = Field(default_factory=dict)

    @property
    def huidige(self) -> RapportVersie:
        """The latest version."""
        return self.versies[-1]

    @property
    def laatst_ingediend(self) -> int | None:
        """The latest submitted version, if any."""
        return self.ingediend[-1] if self.ingediend else None

    @property
    def status(self) -> RapportStatus:
        """The report's state, derived from what happened to it."""
        if self.vrijgegeven:
            return RapportStatus.VRIJGEGEVEN
        if self.goedgekeurde_versie is not None:
            if self.instemming is False:
                return RapportStatus.INSTEMMING_GEWEIGERD
            return RapportStatus.GOEDGEKEURD
        if self.huidige.versie in self.ingediend:
            if self.huidige.versie in self.afgekeurd:
                return RapportStatus.AFGEKEURD
            return RapportStatus.TER_TOETSING
        return RapportStatus.CONCEPT

    def versie(self, nummer: int) -> RapportVersie | None:
        """A version by its number."""
        if 1 <= nummer <= len(self.versies):
            return self.versies[nummer - 1]
        return None

    @property
    def goedgekeurd(self) -> RapportVersie | None:
        """The approved version, if any."""
        if self.goedgekeurde_versie is None:
            return None
        return self.versie(self.goedgekeurde_versie)

    def maatregel_ids(self) -> frozenset[UUID]:
        """Every measure id any version of this report has used."""
        return frozenset(m.maatregel_id for v in self.versies for m in v.inhoud.maatregelen)


# --- preparing the report ------------------------------------------------------------------------


NieuwId = Callable[[], UUID]


def ontbrekend_onderzoek(onderzoek: Onderzoek | None) -> list[str]:
    """What must happen before the report can be drafted (in words), empty when nothing."""
    gesprekken = onderzoek.gesprekken if onderzoek else frozenset()
    ontbreekt = []
    if "gesprek_werkgever" not in gesprekken:
        ontbreekt.append("het gesprek met de werkgever")
    if "gesprek_bestuurder" not in gesprekken:
        ontbreekt.append("het gesprek met de bestuurder")
    if not (onderzoek and onderzoek.woningscan):
        ontbreekt.append("de woningscan")
    return ontbreekt


def noteer_gesprek(
    onderzoek: Onderzoek | None,
    aanvraag_id: UUID,
    soort: Literal["gesprek_werkgever", "gesprek_bestuurder"],
    afspraak_id: UUID,
    gevoerd_op: datetime,
    ctx: Context,
) -> GesprekGenoteerd | None:
    """Note a conversation; None when this kind of conversation was already noted."""
    fields = {"soort": soort, "afspraak_id": afspraak_id, "gevoerd_op": gevoerd_op}
    if onderzoek is None:
        return first_event(GesprekGenoteerd, aanvraag_id, ctx, **fields)
    if soort in onderzoek.gesprekken:
        return None
    return next_event(GesprekGenoteerd, onderzoek, ctx, **fields)


def noteer_woningscan(
    onderzoek: Onderzoek | None,
    aanvraag_id: UUID,
    afspraak_id: UUID,
    uitgevoerd_op: datetime,
    ctx: Context,
) -> WoningscanGenoteerd | None:
    """Note the woningscan; None when it was already noted."""
    fields = {"afspraak_id": afspraak_id, "uitgevoerd_op": uitgevoerd_op}
    if onderzoek is None:
        return first_event(WoningscanGenoteerd, aanvraag_id, ctx, **fields)
    if onderzoek.woningscan:
        return None
    return next_event(WoningscanGenoteerd, onderzoek, ctx, **fields)


def _maatregelen(
    concept: Concept, bekend: frozenset[UUID], huidige: Sequence[Maatregel], nieuw_id: NieuwId
) -> tuple[Maatregel, ...]:
    """The measures of a new version with their ids: kept where named or unchanged, else new."""
    errors: list[FieldError] = []
    genoemd: set[UUID] = set()
    for index, maatregel in enumerate(concept.maatregelen):
        if maatregel.maatregel_id is None:
            continue
        veld = f"body.maatregelen.{index}.maatregel_id"
        if maatregel.maatregel_id not in bekend:
            errors.append({"field": veld, "rule": "onbekende_maatregel"})
        elif maatregel.maatregel_id in genoemd:
            errors.append({"field": veld, "rule": "dubbele_maatregel"})
        genoemd.add(maatregel.maatregel_id)
    if errors:
        raise Ongeldig(errors, "Een maatregel_id hoort niet bij dit rapport of komt dubbel voor.")
    # An unchanged measure keeps its id without the adviseur naming it, so a repeated request
    # (or a client that does not track ids) does not turn kept measures into new ones.
    vrij = [m for m in huidige if m.maatregel_id not in genoemd]
    result = []
    for maatregel in concept.maatregelen:
        maatregel_id = maatregel.maatregel_id
        if maatregel_id is None:
            gelijk = next((m for m in vrij if _wat(m) == _wat(maatregel)), None)
            if gelijk is not None:
                vrij.remove(gelijk)
                maatregel_id = gelijk.maatregel_id
            else:
                maatregel_id = nieuw_id()
        result.append(
            Maatregel(
                maatregel_id=maatregel_id,
                domein=maatregel.domein,
                omschrijving=maatregel.omschrijving,
                kosten=maatregel.kosten,
                uitvoerder=maatregel.uitvoerder,
                prioriteit=maatregel.prioriteit,
            )
        )
    return tuple(result)


def _wat(maatregel: Maatregel | ConceptMaatregel) -> tuple[object, ...]:
    """What a measure says, without its id."""
    return (
        maatregel.domein,
        maatregel.omschrijving,
        maatregel.kosten,
        maatregel.uitvoerder,
        maatregel.prioriteit,
    )


def stel_op(
    rapport_id: UUID,
    aanvraag_id: UUID,
    onderzoek: Onderzoek | None,
    concept: Concept,
    ctx: Context,
    nieuw_id: NieuwId = uuid4,
) -> RapportOpgesteld:
    """Draft version 1; 409 until both conversations were held and the woningscan was done."""
    ontbreekt = ontbrekend_onderzoek(onderzoek)
    if ontbreekt:
        raise Conflict(
            "Het rapport kan pas worden opgesteld na het gesprek met de werkgever, het gesprek"
            " met de bestuurder en de woningscan. Nog niet gedaan: " + ", ".join(ontbreekt) + ".",
            code="onderzoek_niet_afgerond",
        )
    inhoud = RapportInhoud(
        bevindingen=concept.bevindingen,
        maatregelen=_maatregelen(concept, frozenset(), (), nieuw_id),
    )
    return first_event(
        RapportOpgesteld,
        rapport_id,
        ctx,
        aanvraag_id=aanvraag_id,
        inhoud=inhoud,
        inhoud_hash=inhoud_hash(inhoud),
    )


def herzie(
    rapport: Rapport, concept: Concept, ctx: Context, nieuw_id: NieuwId = uuid4
) -> RapportHerzien | None:
    """A new version, only in draft or after rejection; None when it equals the current one."""
    status = rapport.status
    if status is RapportStatus.TER_TOETSING:
        raise Conflict(
            "Het rapport ligt ter toetsing bij de BVA; herzien kan pas na een afkeuring.",
            code="rapport_ter_toetsing",
        )
    if status not in (RapportStatus.CONCEPT, RapportStatus.AFGEKEURD):
        raise Conflict(
            "Het rapport is goedgekeurd en kan niet meer worden herzien.",
            code="rapport_goedgekeurd",
        )
    inhoud = RapportInhoud(
        bevindingen=concept.bevindingen,
        maatregelen=_maatregelen(
            concept, rapport.maatregel_ids(), rapport.huidige.inhoud.maatregelen, nieuw_id
        ),
    )
    if inhoud == rapport.huidige.inhoud:
        return None
    return next_event(
        RapportHerzien,
        rapport,
        ctx,
        aanvraag_id=rapport.aanvraag_id,
        versie=rapport.huidige.versie + 1,
        inhoud=inhoud,
        inhoud_hash=inhoud_hash(inhoud),
    )


def dien_in(rapport: Rapport, ctx: Context) -> RapportTerToetsingAangeboden:
    """Submit the current version to the BVA; 409 when it was submitted before."""
    status = rapport.status
    if status is RapportStatus.TER_TOETSING:
        raise Conflict(
            "Deze versie van het rapport ligt al ter toetsing bij de BVA.",
            code="versie_al_ingediend",
        )
    if status is RapportStatus.AFGEKEURD:
        raise Conflict(
            "Deze versie is afgekeurd; herzie het rapport voordat u het opnieuw indient.",
            code="versie_al_ingediend",
        )
    if status is not RapportStatus.CONCEPT:
        raise Conflict("Het rapport is al goedgekeurd.", code="rapport_goedgekeurd")
    huidige = rapport.huidige
    return next_event(
        RapportTerToetsingAangeboden,
        rapport,
        ctx,
        aanvraag_id=rapport.aanvraag_id,
        versie=huidige.versie,
        inhoud_hash=huidige.inhoud_hash,
    )


# --- approval's decisions ------------------------------------------------------------------------


class BesluitPastNiet(Exception):
    """A decision that names a version or content this report never submitted (never valid)."""


class BesluitTeVroeg(Exception):
    """A decision that presupposes one not yet noted (e.g. a release before the approval)."""


def noteer_goedkeuring(
    rapport: Rapport, versie: int, hash_: str, ctx: Context
) -> GoedkeuringGenoteerd | None:
    """Note an approval of a submitted version; None when already noted."""
    if rapport.goedgekeurde_versie == versie:
        return None
    if versie not in rapport.ingediend or rapport.goedgekeurde_versie is not None:
        raise BesluitPastNiet(f"approval of version {versie} that is not under review")
    if rapport.versies[versie - 1].inhoud_hash != hash_:
        raise BesluitPastNiet(f"approval of version {versie} names another content hash")
    if versie != rapport.laatst_ingediend or versie in rapport.afgekeurd:
        raise BesluitPastNiet(f"approval of version {versie} that is not the one under review")
    return next_event(
        GoedkeuringGenoteerd,
        rapport,
        ctx,
        aanvraag_id=rapport.aanvraag_id,
        versie=versie,
        inhoud_hash=hash_,
    )


def noteer_afkeuring(rapport: Rapport, versie: int, ctx: Context) -> AfkeuringGenoteerd | None:
    """Note a rejection of a submitted version; None when already noted."""
    if versie in rapport.afgekeurd:
        return None
    if versie not in rapport.ingediend or rapport.goedgekeurde_versie == versie:
        raise BesluitPastNiet(f"rejection of version {versie} that is not under review")
    return next_event(
        AfkeuringGenoteerd, rapport, ctx, aanvraag_id=rapport.aanvraag_id, versie=versie
    )


def _goedgekeurde(rapport: Rapport, versie: int, wat: str) -> None:
    if rapport.goedgekeurde_versie is None:
        if versie in rapport.ingediend:
            raise BesluitTeVroeg(f"{wat} of version {versie} before its approval was noted")
        raise BesluitPastNiet(f"{wat} of version {versie} that was never submitted")
    if rapport.goedgekeurde_versie != versie:
        raise BesluitPastNiet(f"{wat} of version {versie}, not the approved version")


def noteer_instemming(
    rapport: Rapport, versie: int, gegeven: bool, ctx: Context
) -> InstemmingGenoteerd | None:
    """Note the bestuurder's consent or refusal; None when it changes nothing."""
    _goedgekeurde(rapport, versie, "consent")
    if rapport.instemming is gegeven:
        return None
    if rapport.vrijgegeven or rapport.instemming is True:
        # Consent is final: a refusal that arrives after it was given is an older message.
        return None
    return next_event(
        InstemmingGenoteerd,
        rapport,
        ctx,
        aanvraag_id=rapport.aanvraag_id,
        versie=versie,
        gegeven=gegeven,
    )


def noteer_vrijgave(rapport: Rapport, versie: int, ctx: Context) -> VrijgaveGenoteerd | None:
    """Note the release to the werkgever; None when already noted."""
    _goedgekeurde(rapport, versie, "release")
    if rapport.vrijgegeven:
        return None
    return next_event(
        VrijgaveGenoteerd, rapport, ctx, aanvraag_id=rapport.aanvraag_id, versie=versie
    )


# --- who may read which version ------------------------------------------------------------------


class Weigering(Exception):
    """The caller may not do this in the report's state (recorded as ToegangGeweigerd, 403)."""

    def __init__(self, reden: str) -> None:
        super().__init__(reden)
        self.reden = reden


LEES_ROLLEN = (Rol.COMPLIANCE, Rol.ADVISEUR, Rol.BVA, Rol.BESTUURDER, Rol.WERKGEVER)


def leesbare_versie(rapport: Rapport, rol: Rol, gevraagd: int | None) -> int:
    """The version this role may read (the asked one, or its default); Weigering otherwise.

    adviseur and compliance: every version (default the latest). bva: the submitted versions, once
    one was submitted (default the latest submitted). bestuurder: the approved version, once
    approved. werkgever: the approved version, once released to the werkgever.
    """
    if rol in (Rol.ADVISEUR, Rol.COMPLIANCE):
        return rapport.huidige.versie if gevraagd is None else gevraagd
    if rol is Rol.BVA:
        if rapport.laatst_ingediend is None:
            raise Weigering("nog_niet_ingediend")
        if gevraagd is None:
            return rapport.laatst_ingediend
        if gevraagd not in rapport.ingediend:
            raise Weigering("versie_niet_ingediend")
        return gevraagd
    if rol is Rol.BESTUURDER:
        toegestaan = rapport.goedgekeurde_versie
        if toegestaan is None:
            raise Weigering("nog_niet_goedgekeurd")
    elif rol is Rol.WERKGEVER:
        toegestaan = rapport.goedgekeurde_versie if rapport.vrijgegeven else None
        if toegestaan is None:
            raise Weigering("nog_niet_vrijgegeven")
    else:
        raise Weigering("rol_ontbreekt")
    if gevraagd is not None and gevraagd != toegestaan:
        raise Weigering("niet_de_goedgekeurde_versie")
    return toegestaan


def lees(rapport: Rapport, versie: int, rol: Rol, ctx: Context) -> RapportIngezienVastgelegd:
    """The record of one read (its own aggregate: a new id, version 1)."""
    return first_event(
        RapportIngezienVastgelegd,
        uuid4(),
        ctx,
        aanvraag_id=rapport.aanvraag_id,
        rapport_id=rapport.id,
        versie=versie,
        rol=rol,
        ingezien_op=ctx.now,
    )


# --- PKVW ----------------------------------------------------------------------------------------

_PKVW_VOLGORDE = (PkvwStatus.GEEN, PkvwStatus.VERKLARING, PkvwStatus.CERTIFICAAT)


def wijzig_pkvw(
    onderzoek: Onderzoek | None,
    aanvraag_id: UUID,
    status: PkvwStatus,
    afgegeven_op: date | None,
    nummer: str | None,
    ctx: Context,
) -> PkvwStatusGewijzigd | None:
    """Move the PKVW forward (geen → verklaring → certificaat); None when nothing changes.

    A certificate needs its issue date (not in the future) and is valid ten years; a new
    certificate issued later than the current one renews it.
    """
    errors: list[FieldError] = []
    if status is PkvwStatus.GEEN:
        errors.append({"field": "body.status", "rule": "niet_terug_naar_geen"})
    if status is PkvwStatus.CERTIFICAAT and afgegeven_op is None:
        errors.append({"field": "body.afgegeven_op", "rule": "verplicht_bij_certificaat"})
    if afgegeven_op is not None and afgegeven_op > vandaag(ctx.now):
        errors.append({"field": "body.afgegeven_op", "rule": "niet_in_de_toekomst"})
    if status is not PkvwStatus.CERTIFICAAT and nummer is not None:
        errors.append({"field": "body.nummer", "rule": "alleen_bij_certificaat"})
    if errors:
        raise Ongeldig(errors)
    huidig = onderzoek.pkvw if onderzoek else PkvwStatus.GEEN
    if _PKVW_VOLGORDE.index(status) < _PKVW_VOLGORDE.index(huidig):
        raise Conflict(
            "De PKVW-status kan niet terug: er is al een certificaat geregistreerd.",
            code="pkvw_terug",
        )
    if status is huidig:
        vernieuwd = (
            status is PkvwStatus.CERTIFICAAT
            and onderzoek is not None
            and onderzoek.pkvw_afgegeven_op is not None
            and afgegeven_op is not None
            and afgegeven_op > onderzoek.pkvw_afgegeven_op
        )
        if not vernieuwd:
            return None
    fields = {
        "status": status,
        "afgegeven_op": afgegeven_op,
        "nummer": nummer,
        "geldig_tot": tien_jaar_na(afgegeven_op)
        if status is PkvwStatus.CERTIFICAAT and afgegeven_op
        else None,
    }
    if onderzoek is None:
        return first_event(PkvwStatusGewijzigd, aanvraag_id, ctx, **fields)
    return next_event(PkvwStatusGewijzigd, onderzoek, ctx, **fields)


# --- measures ------------------------------------------------------------------------------------

Betaler = Literal["direct_uitvoerbaar", "werkgever", "wacht_op_pkvw"]


def wie_betaalt(
    maatregel: Maatregel, onderzoek: Onderzoek | None, dag: date
) -> tuple[Betaler, str]:
    """Who pays a measure today, with a short explanation."""
    if maatregel.kosten is Kosten.KOSTELOOS:
        return "direct_uitvoerbaar", "Deze maatregel kost niets en kan direct worden uitgevoerd."
    if onderzoek is not None and onderzoek.certificaat_geldig(dag):
        return "werkgever", "De bestuurder heeft een geldig PKVW-certificaat: de werkgever betaalt."
    if onderzoek is not None and onderzoek.pkvw is PkvwStatus.CERTIFICAAT:
        return (
            "wacht_op_pkvw",
            "Het PKVW-certificaat van de bestuurder is verlopen; de werkgever betaalt deze"
            " maatregel zodra er weer een geldig certificaat is.",
        )
    return (
        "wacht_op_pkvw",
        "De werkgever betaalt deze maatregel zodra de bestuurder een geldig PKVW-certificaat"
        " heeft (Politiekeurmerk Veilig Wonen).",
    )


def maatregel_in(rapport: Rapport, maatregel_id: UUID) -> Maatregel:
    """A measure of the approved version; 409 before approval or for another version's measure."""
    goedgekeurd = rapport.goedgekeurd
    if goedgekeurd is None:
        raise Conflict("Het rapport is nog niet goedgekeurd.", code="nog_niet_goedgekeurd")
    for maatregel in goedgekeurd.inhoud.maatregelen:
        if maatregel.maatregel_id == maatregel_id:
            return maatregel
    raise Conflict(
        "Deze maatregel hoort niet bij de goedgekeurde versie van het rapport.",
        code="maatregel_niet_goedgekeurd",
    )


def voer_uit(
    rapport: Rapport,
    maatregel_id: UUID,
    partijen: frozenset[Partij],
    onderzoek: Onderzoek | None,
    ctx: Context,
) -> MaatregelUitgevoerd | None:
    """Record a measure as carried out by its uitvoerder; None when it was already recorded."""
    maatregel = maatregel_in(rapport, maatregel_id)
    if maatregel.uitvoerder not in partijen:
        raise Weigering("niet_de_uitvoerder")
    if maatregel.uitvoerder is Partij.WERKGEVER and not rapport.vrijgegeven:
        raise Conflict(
            "Het rapport is nog niet vrijgegeven aan de werkgever.", code="nog_niet_vrijgegeven"
        )
    if maatregel_id in rapport.uitgevoerd:
        return None
    if (
        maatregel.uitvoerder is Partij.WERKGEVER
        and maatregel.kosten is Kosten.MET_KOSTEN
        and not (onderzoek is not None and onderzoek.certificaat_geldig(vandaag(ctx.now)))
    ):
        raise Conflict(
            "Deze maatregel wacht op PKVW: de werkgever betaalt hem pas als de bestuurder een"
            " geldig PKVW-certificaat heeft.",
            code="wacht_op_pkvw",
        )
    return next_event(
        MaatregelUitgevoerd,
        rapport,
        ctx,
        aanvraag_id=rapport.aanvraag_id,
        maatregel_id=maatregel_id,
        domein=maatregel.domein,
        kosten=maatregel.kosten,
        uitgevoerd_door=maatregel.uitvoerder,
        uitgevoerd_op=ctx.now,
    )


# --- projection ----------------------------------------------------------------------------------


def project_onderzoek(
    onderzoek: Onderzoek | None, events: Iterable[DomainEvent]
) -> Onderzoek | None:
    """Rebuild an Onderzoek from its events (any of them may be the first)."""
    for event in events:
        current = onderzoek or Onderzoek(id=event.originator_id, version=0)
        update: dict[str, object] = {"version": event.originator_version}
        if isinstance(event, GesprekGenoteerd):
            update["gesprekken"] = current.gesprekken | {event.soort}
        elif isinstance(event, WoningscanGenoteerd):
            update["woningscan"] = True
        elif isinstance(event, PkvwStatusGewijzigd):
            update["pkvw"] = event.status
            update["pkvw_afgegeven_op"] = event.afgegeven_op
            update["pkvw_geldig_tot"] = event.geldig_tot
        onderzoek = current.model_copy(update=update)
    return onderzoek


def _versie(versie: int, event: RapportOpgesteld | RapportHerzien) -> RapportVersie:
    return RapportVersie(
        versie=versie,
        inhoud=event.inhoud,
        # The hash recorded with the version: a forgotten text would hash to something else.
        inhoud_hash=event.inhoud_hash or inhoud_hash(event.inhoud),
        opgesteld_op=event.timestamp,
        opgesteld_door=event.actor_id,
        vergeten=event.vergeten,
    )


def project_rapport(rapport: Rapport | None, events: Iterable[DomainEvent]) -> Rapport | None:
    """Rebuild a Rapport from its events."""
    for event in events:
        if isinstance(event, RapportOpgesteld):
            rapport = Rapport(
                id=event.originator_id,
                version=event.originator_version,
                aanvraag_id=event.aanvraag_id,
                versies=(_versie(1, event),),
            )
            continue
        assert rapport is not None
        update: dict[str, object] = {"version": event.originator_version}
        if isinstance(event, RapportHerzien):
            update["versies"] = (*rapport.versies, _versie(event.versie, event))
        elif isinstance(event, RapportTerToetsingAangeboden):
            update["ingediend"] = (*rapport.ingediend, event.versie)
        elif isinstance(event, AfkeuringGenoteerd):
            update["afgekeurd"] = (*rapport.afgekeurd, event.versie)
        elif isinstance(event, GoedkeuringGenoteerd):
            update["goedgekeurde_versie"] = event.versie
        elif isinstance(event, InstemmingGenoteerd):
            update["instemming"] = event.gegeven
        elif isinstance(event, VrijgaveGenoteerd):
            update["vrijgegeven"] = True
            update["instemming"] = True
        elif isinstance(event, MaatregelUitgevoerd):
            update["uitgevoerd"] = {
                **rapport.uitgevoerd,
                event.maatregel_id: Uitvoering(door=event.uitgevoerd_door, op=event.uitgevoerd_op),
            }
        rapport = rapport.model_copy(update=update)
    return rapport
