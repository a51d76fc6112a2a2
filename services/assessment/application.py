"""Assessment's use cases: draft, revise and submit the report, note approval's decisions, record
every read, keep the PKVW and the measures carried out.

Each change of a research (``Onderzoek``) or a report (``Rapport``) is one ``change``: load, decide
by the domain's rules, record, retried when another writer came first. A report's change records
with it the side writes of its read tables (``ReadModel``, given by the composition root: the
projection's, ``services.assessment.projections``, in PostgreSQL or in memory), so a report or a
measure can be found from its id alone. Every use case runs on PostgreSQL and on the in-memory
store alike (``tests/usecases/test_assessment.py`` runs them on both).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, Literal, Protocol
from uuid import UUID, uuid4

from pydantic import BaseModel

from services.assessment.domain import (
    BesluitPastNiet,
    Betaler,
    Concept,
    Onderzoek,
    Rapport,
    RapportStatus,
    RapportVersie,
    dien_in,
    herzie,
    lees,
    leesbare_versie,
    noteer_afkeuring,
    noteer_gesprek,
    noteer_goedkeuring,
    noteer_instemming,
    noteer_vrijgave,
    noteer_woningscan,
    project_onderzoek,
    project_rapport,
    stel_op,
    vandaag,
    voer_uit,
    wie_betaalt,
    wijzig_pkvw,
)
from services.assessment.gateway import to_public
from shared.contracts import events as public
from shared.platform.auth import Refusal
from shared.platform.errors import Conflict, NietBeschikbaar, NietGevonden
from shared.platform.eventstore import Answered, CommitInDoubt, Once, ServiceApplication
from shared.platform.idempotency import fingerprint, idempotency_ddl, idempotency_keys
from shared.platform.model import Context, DomainEvent
from shared.platform.ports import DossierRegister, DuplicateKey, SideWrite
from shared.platform.register import register_ddl
from shared.platform.relay import PublicationCheck
from shared.platform.throttle import THROTTLE_DDL, Throttle

log = logging.getLogger(__name__)

ONBEKEND_RAPPORT = "Onbekend rapport."
OPSTELLEN = "POST /aanvragen/{aanvraag_id}/rapport"


Besluit = (
    public.RapportGoedgekeurd
    | public.RapportAfgekeurd
    | public.InstemmingGegeven
    | public.InstemmingGeweigerd
    | public.RapportVrijgegeven
)
"""The decisions of approval that move a report's state."""


def _rapport_bestaat_al() -> Conflict:
    return Conflict(
        "Dit dossier heeft al een rapport; herzie dat rapport in plaats van een nieuw op te"
        " stellen.",
        code="rapport_bestaat_al",
    )


class OnbekendBesluit(Exception):
    """An approval decision about a report or version this service never had: never valid."""


# --- answers (ids, enums, counts: never the content) ---------------------------------------------


class MaatregelKort(BaseModel):
    """A measure without its description."""

    maatregel_id: UUID
    domein: public.Domein
    kosten: public.Kosten
    uitvoerder: public.Partij
    prioriteit: public.Prioriteit


class RapportStand(BaseModel):
    """Where a report stands; the measures of its latest version in their order, without text."""

    rapport_id: UUID
    aanvraag_id: UUID
    status: RapportStatus
    versie: int
    inhoud_hash: str
    ingediende_versies: list[int]
    goedgekeurde_versie: int | None
    maatregelen: list[MaatregelKort]


def stand_van(rapport: Rapport) -> RapportStand:
    """The report's state as the write endpoints answer it."""
    huidige = rapport.huidige
    return RapportStand(
        rapport_id=rapport.id,
        aanvraag_id=rapport.aanvraag_id,
        status=rapport.status,
        versie=huidige.versie,
        inhoud_hash=huidige.inhoud_hash,
        ingediende_versies=list(rapport.ingediend),
        goedgekeurde_versie=rapport.goedgekeurde_versie,
        maatregelen=[
            MaatregelKort.model_validate(m.samenvatting().model_dump())
            for m in huidige.inhoud.maatregelen
        ],
    )


@dataclass(frozen=True)
class Opgesteld:
    """The answer to drafting a report."""

    stand: RapportStand
    replayed: bool  # True when an earlier request with the same Idempotency-Key answered


class PkvwStand(BaseModel):
    """The bestuurder's PKVW (never the certificate number)."""

    aanvraag_id: UUID
    status: public.PkvwStatus
    afgegeven_op: date | None
    geldig_tot: date | None
    geldig: bool


class MaatregelStatus(BaseModel):
    """A measure of the approved version: who carries it out, who pays, whether it is done."""

    maatregel_id: UUID
    domein: public.Domein
    kosten: public.Kosten
    uitvoerder: public.Partij
    prioriteit: public.Prioriteit
    status: Literal["open", "uitgevoerd"]
    uitgevoerd_door: public.Partij | None
    uitgevoerd_op: datetime | None
    betaalt: Betaler
    toelichting: str


class MaatregelenOverzicht(BaseModel):
    """The measures of a dossier's approved report."""

    aanvraag_id: UUID
    rapport_id: UUID
    versie: int
    pkvw: PkvwStand
    maatregelen: list[MaatregelStatus]


class ReadModel(Protocol):
    """The read tables the use cases find a report or a measure by, and write with a report's
    events (``services.assessment.projections``: ``ReadTables`` in PostgreSQL,
    ``MemoryReadTables`` on the in-memory store)."""

    #: The unique key a second report for one dossier violates (``DuplicateKey``).
    rapport_per_dossier: str

    @property
    def ddl(self) -> Sequence[str]:
        """The tables (``{schema}`` is the service's schema; none in memory)."""

    def statements(self, before: Rapport | None, after: Rapport) -> Sequence[SideWrite]:
        """What brings the tables from the report's rows before a change to those after it."""

    def rapport_van(self, aanvraag_id: UUID) -> UUID | None:
        """The id of the dossier's report, or None."""

    def maatregel_plaats(self, maatregel_id: UUID) -> tuple[UUID, UUID] | None:
        """(rapport_id, aanvraag_id) of a measure, or None when unknown."""

    def dossier_van_rapport(self, rapport_id: UUID) -> UUID | None:
        """The aanvraag_id of a report, or None."""


class Inzagelimiet:
    """A report cannot be read without end: every read is on record, and in the dossier's history
    and its projection, whose fold grows with every event. Reads of one report by one person are
    counted per hour (the person by pseudonym); over the limit, 429 with ``Retry-After``, and
    nothing is read or recorded. A limit of 0, or the in-memory store, counts nothing."""

    WINDOW_S = 3600.0

    def __init__(self, app: ServiceApplication, per_uur: int) -> None:
        self.per_uur = per_uur
        self.throttle: Throttle | None = None
        if per_uur > 0 and not app.in_memory:
            app.create_tables([THROTTLE_DDL])
            self.throttle = Throttle(app, "rapport_inzage", self.WINDOW_S)

    def tel(self, rapport_id: UUID, ctx: Context) -> None:
        """Count one read of the report by the request's person (``ctx.actor_id``, the
        pseudonym of the token's ``sub``); raise ``TeVaak`` when over the limit."""
        if self.throttle is None or ctx.actor_id is None:
            return
        self.throttle.limit(
            f"{ctx.actor_id}/{rapport_id}",
            self.per_uur,
            ctx.now,
            "U hebt dit rapport het afgelopen uur te vaak geopend; probeer het later opnieuw.",
        )


class Assessment(ServiceApplication):
    """The assessment service's application."""

    service = "assessment"

    def __init__(
        self,
        env: dict[str, str],
        *,
        read_model: Callable[[ServiceApplication], ReadModel],
        register: Callable[[ServiceApplication], DossierRegister],
    ) -> None:
        """On the store ``env`` names, with the read tables and the dossier register their
        factories make on it."""
        super().__init__(env, publication_check=PublicationCheck(self.service, to_public))
        self.read_model = read_model(self)
        #: What assessment knows of the dossiers intake announced (kept by its own consumer).
        self.register = register(self)
        self.idempotency = idempotency_keys(self)
        # One set of statements, in the order earlier releases applied it: a database that has
        # them all (``ddl_applied``, by digest) runs none of them again.
        self.create_tables((*register_ddl(), idempotency_ddl(), *self.read_model.ddl))

    # --- reading aggregates and side tables ------------------------------------------------------

    def onderzoek(self, aanvraag_id: UUID) -> Onderzoek | None:
        """The research of a dossier, or None when nothing was noted yet."""
        return self.load_or_none(aanvraag_id, project_onderzoek)

    def rapport(self, rapport_id: UUID) -> Rapport:
        """A report with all its versions; 404 when unknown."""
        return self.load(rapport_id, project_rapport, ONBEKEND_RAPPORT)

    def rapport_of_none(self, rapport_id: UUID) -> Rapport | None:
        """A report with all its versions, or None when unknown."""
        return self.load_or_none(rapport_id, project_rapport)

    def rapport_van(self, aanvraag_id: UUID) -> UUID | None:
        """The id of the dossier's report, or None."""
        return self.read_model.rapport_van(aanvraag_id)

    def maatregel_plaats(self, maatregel_id: UUID) -> tuple[UUID, UUID] | None:
        """(rapport_id, aanvraag_id) of a measure, or None when unknown."""
        return self.read_model.maatregel_plaats(maatregel_id)

    def dossier_van_rapport(self, rapport_id: UUID) -> UUID | None:
        """The aanvraag_id of a report, or None."""
        return self.read_model.dossier_van_rapport(rapport_id)

    # --- the two aggregates' changes -------------------------------------------------------------

    def _change_onderzoek(
        self,
        aanvraag_id: UUID,
        decide: Callable[[Onderzoek | None], DomainEvent | None],
        inbox: tuple[str, str] | None = None,
    ) -> Onderzoek | None:
        """One change of a dossier's research (it starts with its first event)."""

        def events(onderzoek: Onderzoek | None) -> list[DomainEvent]:
            event = decide(onderzoek)
            return [] if event is None else [event]

        return self.change(aanvraag_id, events, project=project_onderzoek, inbox=inbox)

    def _rows(self, before: Rapport | None, after: Rapport | None) -> Sequence[SideWrite]:
        """The read tables' side writes of a report's change."""
        return () if after is None else self.read_model.statements(before, after)

    def _change_rapport(
        self,
        rapport_id: UUID,
        decide: Callable[[Rapport], DomainEvent | None],
        inbox: tuple[str, str] | None = None,
        onbekend: Callable[[], Exception] = lambda: NietGevonden(ONBEKEND_RAPPORT),
    ) -> Rapport:
        """One change of an existing report (``onbekend`` is raised when there is none), its read
        tables' rows with it."""

        def events(rapport: Rapport | None) -> list[DomainEvent]:
            if rapport is None:
                raise onbekend()
            event = decide(rapport)
            return [] if event is None else [event]

        after = self.change(
            rapport_id, events, project=project_rapport, inbox=inbox, statements=self._rows
        )
        assert after is not None  # ``events`` raised when there was no report
        return after

    # --- scheduling's facts ----------------------------------------------------------------------

    def noteer_gesprek(
        self, gevoerd: public.GesprekGevoerd, ctx: Context, inbox: tuple[str, str]
    ) -> None:
        """Note a conversation of the research (a toelichting is not part of it)."""
        soort = gevoerd.soort
        if soort is public.AfspraakSoort.TOELICHTING:
            return
        wat: Literal["gesprek_werkgever", "gesprek_bestuurder"] = (
            "gesprek_werkgever"
            if soort is public.AfspraakSoort.GESPREK_WERKGEVER
            else "gesprek_bestuurder"
        )
        self._change_onderzoek(
            gevoerd.aanvraag_id,
            lambda onderzoek: noteer_gesprek(
                onderzoek, gevoerd.aanvraag_id, wat, gevoerd.afspraak_id, gevoerd.gevoerd_op, ctx
            ),
            inbox,
        )

    def noteer_woningscan(
        self, scan: public.WoningscanUitgevoerd, ctx: Context, inbox: tuple[str, str]
    ) -> None:
        """Note the woningscan."""
        self._change_onderzoek(
            scan.aanvraag_id,
            lambda onderzoek: noteer_woningscan(
                onderzoek, scan.aanvraag_id, scan.afspraak_id, scan.uitgevoerd_op, ctx
            ),
            inbox,
        )

    # --- the report ------------------------------------------------------------------------------

    def stel_rapport_op(
        self,
        aanvraag_id: UUID,
        concept: Concept,
        ctx: Context,
        sleutel: tuple[str, str] | None = None,
    ) -> Opgesteld:
        """Draft version 1 of the dossier's only report.

        ``sleutel`` is (scope, Idempotency-Key): a repeated request gets the first answer. A
        second report for the dossier is refused (409), also when two requests come at the same
        moment: the read tables' unique key refuses the second.
        """
        stand = self.register.known(aanvraag_id)
        # The dossier is part of what was asked: one key reused for another dossier is refused.
        digest = fingerprint(
            {"aanvraag_id": str(aanvraag_id), "concept": concept.model_dump(mode="json")}
        )
        rapport_id = uuid4()

        def decide(_: Rapport | None) -> list[DomainEvent]:
            stand.require_open()
            if self.rapport_van(aanvraag_id) is not None:
                raise _rapport_bestaat_al()
            event = stel_op(rapport_id, aanvraag_id, self.onderzoek(aanvraag_id), concept, ctx)
            return [event]

        def antwoord(rapport: Rapport) -> dict[str, Any]:
            # The answer remembered with the key: the drafted report's stand.
            return stand_van(rapport).model_dump(mode="json")

        # A new report: a fresh id, nothing to load and no other writer of it to lose to.
        try:
            if sleutel is None:
                rapport = self.change(
                    rapport_id, decide, project=project_rapport, statements=self._rows, new=True
                )
            else:
                once = Once(self.idempotency, *sleutel, digest, antwoord)
                changed = self.change_once(
                    once,
                    rapport_id,
                    decide,
                    project=project_rapport,
                    statements=self._rows,
                    new=True,
                )
                if isinstance(changed, Answered):
                    return Opgesteld(RapportStand.model_validate(changed.result), replayed=True)
                rapport = changed
        except DuplicateKey as exc:
            if exc.constraint != self.read_model.rapport_per_dossier:
                raise
            # Another request for this dossier came first.
            raise _rapport_bestaat_al() from None
        assert rapport is not None  # ``decide`` decides an event or raises
        return Opgesteld(stand_van(rapport), replayed=False)

    def herzie_rapport(self, rapport_id: UUID, concept: Concept, ctx: Context) -> Rapport:
        """Write a new version (draft or rejected only); the same content again changes nothing."""

        def decide(rapport: Rapport) -> DomainEvent | None:
            self.register.known(rapport.aanvraag_id).require_open()
            return herzie(rapport, concept, ctx)

        return self._change_rapport(rapport_id, decide)

    def dien_rapport_in(self, rapport_id: UUID, ctx: Context) -> Rapport:
        """Submit the current version to the BVA."""

        def decide(rapport: Rapport) -> DomainEvent:
            self.register.known(rapport.aanvraag_id).require_open()
            return dien_in(rapport, ctx)

        return self._change_rapport(rapport_id, decide)

    def noteer_besluit(self, besluit: Besluit, ctx: Context, inbox: tuple[str, str]) -> None:
        """Note one of approval's decisions about a report version (matched by id and version).

        Raises OnbekendBesluit for a report or version this service never submitted, and
        BesluitTeVroeg when a decision presupposes one that was not noted yet (retried later).
        """
        versie = besluit.versie

        def decide(rapport: Rapport) -> DomainEvent | None:
            try:
                if isinstance(besluit, public.RapportGoedgekeurd):
                    return noteer_goedkeuring(rapport, versie, besluit.inhoud_hash, ctx)
                if isinstance(besluit, public.RapportAfgekeurd):
                    return noteer_afkeuring(rapport, versie, ctx)
                if isinstance(besluit, public.InstemmingGegeven | public.InstemmingGeweigerd):
                    gegeven = isinstance(besluit, public.InstemmingGegeven)
                    return noteer_instemming(rapport, versie, gegeven, ctx)
                return noteer_vrijgave(rapport, versie, ctx)
            except BesluitPastNiet as exc:
                raise OnbekendBesluit(str(exc)) from None

        self._change_rapport(
            besluit.rapport_id,
            decide,
            inbox,
            onbekend=lambda: OnbekendBesluit("decision about an unknown report"),
        )

    # --- reading the content ---------------------------------------------------------------------

    def lees_rapport(
        self, rapport: Rapport, rol: public.Rol, gevraagd: int | None, ctx: Context
    ) -> RapportVersie:
        """The version this role may read, after the read is on record (503 when it cannot be).

        Raises Weigering when the role may not read (this version) in the report's state.
        """
        nummer = leesbare_versie(rapport, rol, gevraagd)
        versie = rapport.versie(nummer)
        if versie is None:
            raise NietGevonden("Deze versie van het rapport bestaat niet.")
        try:
            self.record(lees(rapport, nummer, rol, ctx))
        except CommitInDoubt:
            # The read may be on record: the client is told the outcome is unknown (503
            # uitkomst_onbekend), never that it was not recorded. The content is not shown.
            raise
        except Exception as exc:
            # Content shown without its read on record would be a hole in the audit trail.
            log.exception("recording a read failed", extra={"rapport_id": str(rapport.id)})
            raise NietBeschikbaar(
                "De inzage kon niet worden vastgelegd; het rapport wordt niet getoond.",
                code="inzage_niet_vastgelegd",
            ) from exc
        return versie

    # --- PKVW ------------------------------------------------------------------------------------

    def pkvw(self, aanvraag_id: UUID, ctx: Context) -> PkvwStand:
        """The bestuurder's PKVW as of the context's day."""
        return self._pkvw_stand(aanvraag_id, self.onderzoek(aanvraag_id), ctx)

    def _pkvw_stand(
        self, aanvraag_id: UUID, onderzoek: Onderzoek | None, ctx: Context
    ) -> PkvwStand:
        if onderzoek is None:
            return PkvwStand(
                aanvraag_id=aanvraag_id,
                status=public.PkvwStatus.GEEN,
                afgegeven_op=None,
                geldig_tot=None,
                geldig=False,
            )
        return PkvwStand(
            aanvraag_id=aanvraag_id,
            status=onderzoek.pkvw,
            afgegeven_op=onderzoek.pkvw_afgegeven_op,
            geldig_tot=onderzoek.pkvw_geldig_tot,
            geldig=onderzoek.certificaat_geldig(vandaag(ctx.now)),
        )

    def wijzig_pkvw(
        self,
        aanvraag_id: UUID,
        status: public.PkvwStatus,
        afgegeven_op: date | None,
        nummer: str | None,
        ctx: Context,
    ) -> PkvwStand:
        """Record the bestuurder's new PKVW status (forward only; the same again: no change)."""

        def decide(onderzoek: Onderzoek | None) -> DomainEvent | None:
            self.register.known(aanvraag_id).require_open()
            return wijzig_pkvw(onderzoek, aanvraag_id, status, afgegeven_op, nummer, ctx)

        return self._pkvw_stand(aanvraag_id, self._change_onderzoek(aanvraag_id, decide), ctx)

    # --- measures --------------------------------------------------------------------------------

    def goedgekeurd_rapport(self, aanvraag_id: UUID) -> Rapport | None:
        """The dossier's report once a version was approved, else None."""
        rapport_id = self.rapport_van(aanvraag_id)
        if rapport_id is None:
            return None
        rapport = self.rapport(rapport_id)
        return rapport if rapport.goedgekeurd is not None else None

    def maatregelen(self, rapport: Rapport, ctx: Context) -> MaatregelenOverzicht:
        """The measures of the approved version with their status and who pays (as of today)."""
        goedgekeurd = rapport.goedgekeurd
        assert goedgekeurd is not None
        onderzoek = self.onderzoek(rapport.aanvraag_id)
        dag = vandaag(ctx.now)
        regels = []
        for maatregel in goedgekeurd.inhoud.maatregelen:
            betaalt, toelichting = wie_betaalt(maatregel, onderzoek, dag)
            uitvoering = rapport.uitgevoerd.get(maatregel.maatregel_id)
            regels.append(
                MaatregelStatus(
                    maatregel_id=maatregel.maatregel_id,
                    domein=maatregel.domein,
                    kosten=maatregel.kosten,
                    uitvoerder=maatregel.uitvoerder,
                    prioriteit=maatregel.prioriteit,
                    status="uitgevoerd" if uitvoering else "open",
                    uitgevoerd_door=uitvoering.door if uitvoering else None,
                    uitgevoerd_op=uitvoering.op if uitvoering else None,
                    betaalt=betaalt,
                    toelichting=toelichting,
                )
            )
        return MaatregelenOverzicht(
            aanvraag_id=rapport.aanvraag_id,
            rapport_id=rapport.id,
            versie=goedgekeurd.versie,
            pkvw=self.pkvw(rapport.aanvraag_id, ctx),
            maatregelen=regels,
        )

    def voer_maatregel_uit(
        self, rapport_id: UUID, maatregel_id: UUID, partijen: frozenset[public.Partij], ctx: Context
    ) -> Rapport:
        """Record a measure of the approved version as carried out by its uitvoerder."""

        def decide(rapport: Rapport) -> DomainEvent | None:
            self.register.known(rapport.aanvraag_id).require_open()
            onderzoek = self.onderzoek(rapport.aanvraag_id)
            return voer_uit(rapport, maatregel_id, partijen, onderzoek, ctx)

        return self._change_rapport(rapport_id, decide)

    # --- refusals --------------------------------------------------------------------------------

    def with_dossier(self, refusal: Refusal) -> Refusal:
        """The refusal with the dossier found from a rapport or measure id."""
        if refusal.aanvraag_id is None:
            aanvraag_id: UUID | None = None
            if "rapport_id" in refusal.ids:
                aanvraag_id = self.dossier_van_rapport(refusal.ids["rapport_id"])
            elif "maatregel_id" in refusal.ids:
                plaats = self.maatregel_plaats(refusal.ids["maatregel_id"])
                aanvraag_id = plaats[1] if plaats else None
            refusal = replace(refusal, aanvraag_id=aanvraag_id)
        return refusal
