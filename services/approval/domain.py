"""Approval's domain: the BVA's decisions about a report and the bestuurder's consent.

Approval never sees a report's content. It knows, from assessment's public events, which versions
were submitted (with the content hash) and who wrote them; it decides about exactly one version,
named by number and hash, so an approval can never cover content the reviewer did not read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from shared.platform.errors import Conflict
from shared.platform.model import VERGETEN, Aggregate, Context, DomainEvent, first_event, next_event

# --- events --------------------------------------------------------------------------------------


class BeoordelingGeopend(DomainEvent):
    """Approval heard of a report (rapport_id = the aggregate id) of a dossier."""

    aanvraag_id: UUID


class AuteurVastgelegd(DomainEvent):
    """Someone wrote (drafted or revised) a version of the report: they may never decide on it."""

    aanvraag_id: UUID
    auteur_id: str
    versie: int


class VersieTerToetsingOntvangen(DomainEvent):
    """A report version was submitted to the BVA (assessment's RapportTerToetsingAangeboden)."""

    aanvraag_id: UUID
    versie: int
    inhoud_hash: str
    auteur_id: str | None
    ingediend_op: datetime


class RapportGoedgekeurd(DomainEvent):
    """The BVA approved exactly this version."""

    aanvraag_id: UUID
    versie: int
    inhoud_hash: str


class RapportVerstrektAanBestuurder(DomainEvent):
    """The approved version was made available to the bestuurder."""

    aanvraag_id: UUID
    versie: int


class RapportAfgekeurd(DomainEvent):
    """The BVA rejected this version; the reasons are for the adviseur and never leave approval.

    The reasons discuss the report's content (the bestuurder's home, threats and measures), so
    they are personal data: encrypted with the dossier's key, ``[vergeten]`` once forgotten.
    """

    personal: ClassVar[Mapping[str, object]] = {"redenen.*": VERGETEN}

    aanvraag_id: UUID
    versie: int
    inhoud_hash: str
    redenen: tuple[str, ...]


class InstemmingGegeven(DomainEvent):
    """The bestuurder consented to sharing the approved version with the werkgever."""

    aanvraag_id: UUID
    versie: int


class InstemmingGeweigerd(DomainEvent):
    """The bestuurder refused to share the approved version with the werkgever."""

    aanvraag_id: UUID
    versie: int


class RapportVrijgegeven(DomainEvent):
    """The approved version was released to the werkgever (after consent; never undone)."""

    aanvraag_id: UUID
    versie: int
    organisatie_code: str


# --- aggregate -----------------------------------------------------------------------------------

Uitkomst = Literal["goedgekeurd", "afgekeurd"]
Instemming = Literal["gegeven", "geweigerd"]
BeoordelingStatus = Literal[
    "in_opstelling",
    "ter_toetsing",
    "afgekeurd",
    "goedgekeurd",
    "vrijgegeven",
    "instemming_geweigerd",
]


class IngediendeVersie(BaseModel):
    """One submitted version and the decision about it, if any."""

    model_config = ConfigDict(frozen=True)

    versie: int
    inhoud_hash: str
    auteur_id: str | None
    ingediend_op: datetime
    besluit: Uitkomst | None = None
    besloten_door: str | None = None
    besloten_op: datetime | None = None
    redenen: tuple[str, ...] = ()


class Beoordeling(Aggregate):
    """The review of one report (id = rapport_id)."""

    aanvraag_id: UUID
    auteurs: frozenset[str] = frozenset()
    versies: tuple[IngediendeVersie, ...] = ()
    instemming: Instemming | None = None
    vrijgegeven: bool = False

    @property
    def laatste(self) -> IngediendeVersie | None:
        """The latest submitted version."""
        return self.versies[-1] if self.versies else None

    @property
    def goedgekeurd(self) -> IngediendeVersie | None:
        """The approved version (at most one: after an approval nothing else is decided)."""
        return next((v for v in self.versies if v.besluit == "goedgekeurd"), None)

    @property
    def status(self) -> BeoordelingStatus:
        """Where the decisions stand."""
        if self.vrijgegeven:
            return "vrijgegeven"
        if self.goedgekeurd is not None:
            return "instemming_geweigerd" if self.instemming == "geweigerd" else "goedgekeurd"
        laatste = self.laatste
        if laatste is None:
            return "in_opstelling"
        return "afgekeurd" if laatste.besluit == "afgekeurd" else "ter_toetsing"

    def versie(self, versie: int) -> IngediendeVersie | None:
        """A submitted version by number."""
        return next((v for v in self.versies if v.versie == versie), None)


# --- rules ---------------------------------------------------------------------------------------


class VierOgen(Exception):
    """The reviewer wrote (a version of) this report: four-eyes forbids their decision."""


def neem_bewerking_op(
    beoordeling: Beoordeling | None,
    rapport_id: UUID,
    aanvraag_id: UUID,
    versie: int,
    auteur_id: str | None,
    ctx: Context,
) -> list[DomainEvent]:
    """A version was drafted or revised: know the report and remember its writer."""
    events: list[DomainEvent] = []
    if beoordeling is None:
        opened = first_event(BeoordelingGeopend, rapport_id, ctx, aanvraag_id=aanvraag_id)
        events.append(opened)
        beoordeling = _fold(None, opened)
    if auteur_id is not None and auteur_id not in beoordeling.auteurs:
        events.append(
            next_event(
                AuteurVastgelegd,
                beoordeling,
                ctx,
                aanvraag_id=beoordeling.aanvraag_id,
                auteur_id=auteur_id,
                versie=versie,
            )
        )
    return events


def ontvang_ter_toetsing(
    beoordeling: Beoordeling | None,
    rapport_id: UUID,
    aanvraag_id: UUID,
    versie: int,
    inhoud_hash: str,
    auteur_id: str | None,
    ingediend_op: datetime,
    ctx: Context,
) -> list[DomainEvent]:
    """A version was submitted for review; an old or repeated submission changes nothing."""
    events: list[DomainEvent] = []
    if beoordeling is None:
        opened = first_event(BeoordelingGeopend, rapport_id, ctx, aanvraag_id=aanvraag_id)
        events.append(opened)
        beoordeling = _fold(None, opened)
    laatste = beoordeling.laatste
    # Deliveries can repeat or overtake each other; versions only ever move forward.
    if laatste is not None and versie <= laatste.versie:
        return events
    events.append(
        next_event(
            VersieTerToetsingOntvangen,
            beoordeling,
            ctx,
            aanvraag_id=beoordeling.aanvraag_id,
            versie=versie,
            inhoud_hash=inhoud_hash,
            auteur_id=auteur_id,
            ingediend_op=ingediend_op,
        )
    )
    return events


def schreef_mee(beoordeling: Beoordeling, ctx: Context) -> bool:
    """Whether four-eyes keeps the context's actor from deciding: they wrote a version of the
    report (or cannot be told apart from its writers)."""
    return ctx.actor_id is None or ctx.is_actor(beoordeling.auteurs)


def _vier_ogen(beoordeling: Beoordeling, ctx: Context) -> None:
    """Four-eyes: nobody who wrote a version of the report decides about it (checked first, so
    a repeated or late request from a writer is refused too)."""
    if schreef_mee(beoordeling, ctx):
        raise VierOgen()


def _te_beoordelen(beoordeling: Beoordeling, versie: int, inhoud_hash: str) -> IngediendeVersie:
    """The version a decision names: the latest submitted one, with the same content hash."""
    laatste = beoordeling.laatste
    if laatste is None:
        raise Conflict(
            "Er is nog geen versie van het rapport ter toetsing aangeboden.",
            code="niet_ter_toetsing",
        )
    if versie != laatste.versie:
        raise Conflict(
            "Dit is niet de laatste versie die ter toetsing is aangeboden.",
            code="niet_laatste_versie",
        )
    if inhoud_hash != laatste.inhoud_hash:
        raise Conflict(
            "De inhoud is gewijzigd: de hash hoort niet bij deze versie.",
            code="inhoud_gewijzigd",
        )
    return laatste


def keur_goed(
    beoordeling: Beoordeling, versie: int, inhoud_hash: str, ctx: Context
) -> list[DomainEvent]:
    """Approve exactly this version and hand it to the bestuurder; [] when already approved."""
    _vier_ogen(beoordeling, ctx)
    goedgekeurd = beoordeling.goedgekeurd
    if goedgekeurd is not None:
        if (goedgekeurd.versie, goedgekeurd.inhoud_hash) == (versie, inhoud_hash):
            return []
        raise Conflict("Het rapport is al goedgekeurd.", code="al_goedgekeurd")
    doel = _te_beoordelen(beoordeling, versie, inhoud_hash)
    if doel.besluit == "afgekeurd":
        raise Conflict(
            "Deze versie is al afgekeurd; een herziene versie moet worden ingediend.",
            code="al_afgekeurd",
        )
    approved = next_event(
        RapportGoedgekeurd,
        beoordeling,
        ctx,
        aanvraag_id=beoordeling.aanvraag_id,
        versie=versie,
        inhoud_hash=inhoud_hash,
    )
    handed = next_event(
        RapportVerstrektAanBestuurder,
        _fold(beoordeling, approved),
        ctx,
        aanvraag_id=beoordeling.aanvraag_id,
        versie=versie,
    )
    return [approved, handed]


def keur_af(
    beoordeling: Beoordeling,
    versie: int,
    inhoud_hash: str,
    redenen: Sequence[str],
    ctx: Context,
) -> list[DomainEvent]:
    """Reject exactly this version with reasons; [] when it was already rejected so."""
    _vier_ogen(beoordeling, ctx)
    if beoordeling.goedgekeurd is not None:
        raise Conflict("Het rapport is al goedgekeurd.", code="al_goedgekeurd")
    doel = _te_beoordelen(beoordeling, versie, inhoud_hash)
    if doel.besluit == "afgekeurd":
        if doel.redenen == tuple(redenen):
            return []
        raise Conflict("Deze versie is al afgekeurd.", code="al_afgekeurd")
    return [
        next_event(
            RapportAfgekeurd,
            beoordeling,
            ctx,
            aanvraag_id=beoordeling.aanvraag_id,
            versie=versie,
            inhoud_hash=inhoud_hash,
            redenen=tuple(redenen),
        )
    ]


def stem_in(
    beoordeling: Beoordeling, instemming: bool, organisatie_code: str, ctx: Context
) -> list[DomainEvent]:
    """The bestuurder's answer: consent releases the report to the werkgever, a refusal does
    not; [] when the answer changes nothing."""
    goedgekeurd = beoordeling.goedgekeurd
    if goedgekeurd is None:
        raise Conflict("Het rapport is nog niet goedgekeurd.", code="niet_goedgekeurd")
    if beoordeling.vrijgegeven:
        if instemming:
            return []
        raise Conflict(
            "Het rapport is al vrijgegeven aan de werkgever; dat kan niet worden teruggedraaid.",
            code="al_vrijgegeven",
        )
    if not instemming:
        if beoordeling.instemming == "geweigerd":
            return []
        return [
            next_event(
                InstemmingGeweigerd,
                beoordeling,
                ctx,
                aanvraag_id=beoordeling.aanvraag_id,
                versie=goedgekeurd.versie,
            )
        ]
    consent = next_event(
        InstemmingGegeven,
        beoordeling,
        ctx,
        aanvraag_id=beoordeling.aanvraag_id,
        versie=goedgekeurd.versie,
    )
    released = next_event(
        RapportVrijgegeven,
        _fold(beoordeling, consent),
        ctx,
        aanvraag_id=beoordeling.aanvraag_id,
        versie=goedgekeurd.versie,
        organisatie_code=organisatie_code,
    )
    return [consent, released]


# --- projection ----------------------------------------------------------------------------------


def _decide(
    beoordeling: Beoordeling, versie: int, **update: object
) -> tuple[IngediendeVersie, ...]:
    return tuple(
        v.model_copy(update=update) if v.versie == versie else v for v in beoordeling.versies
    )


def _fold(beoordeling: Beoordeling | None, event: DomainEvent) -> Beoordeling:
    if isinstance(event, BeoordelingGeopend):
        return Beoordeling(
            id=event.originator_id, version=event.originator_version, aanvraag_id=event.aanvraag_id
        )
    assert beoordeling is not None
    update: dict[str, object] = {"version": event.originator_version}
    if isinstance(event, AuteurVastgelegd):
        update["auteurs"] = beoordeling.auteurs | {event.auteur_id}
    elif isinstance(event, VersieTerToetsingOntvangen):
        update["versies"] = (
            *beoordeling.versies,
            IngediendeVersie(
                versie=event.versie,
                inhoud_hash=event.inhoud_hash,
                auteur_id=event.auteur_id,
                ingediend_op=event.ingediend_op,
            ),
        )
        if event.auteur_id is not None:
            update["auteurs"] = beoordeling.auteurs | {event.auteur_id}
    elif isinstance(event, RapportGoedgekeurd | RapportAfgekeurd):
        update["versies"] = _decide(
            beoordeling,
            event.versie,
            besluit="goedgekeurd" if isinstance(event, RapportGoedgekeurd) else "afgekeurd",
            besloten_door=event.actor_id,
            besloten_op=event.timestamp,
            redenen=event.redenen if isinstance(event, RapportAfgekeurd) else (),
        )
    elif isinstance(event, InstemmingGegeven):
        update["instemming"] = "gegeven"
    elif isinstance(event, InstemmingGeweigerd):
        update["instemming"] = "geweigerd"
    elif isinstance(event, RapportVrijgegeven):
        update["vrijgegeven"] = True
    return beoordeling.model_copy(update=update)


def project(beoordeling: Beoordeling | None, events: Iterable[DomainEvent]) -> Beoordeling | None:
    """Rebuild a Beoordeling from its events."""
    for event in events:
        beoordeling = _fold(beoordeling, event)
    return beoordeling
