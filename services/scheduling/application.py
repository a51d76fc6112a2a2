"""Scheduling's use cases: the planning, contact and its deadline, appointments, toelichting."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID, uuid4

from services.scheduling import domain
from services.scheduling.domain import (
    Afspraak,
    AfspraakVerzoek,
    Partij,
    Planning,
    StopReden,
    Toelichting,
    annuleer_na_stop,
    neem_contact_op,
    open_planning,
    project,
    stel_verstrijken_vast,
)
from services.scheduling.domain.calendar import WorkingDayCalendar
from services.scheduling.gateway import to_public
from shared.platform.errors import NietGevonden
from shared.platform.eventstore import AlreadyProcessed, Answered, Once, ServiceApplication
from shared.platform.idempotency import fingerprint, idempotency_ddl, idempotency_keys
from shared.platform.model import Context, DomainEvent
from shared.platform.ports import SideWrite
from shared.platform.relay import PublicationCheck

log = logging.getLogger(__name__)


class ReadModel(Protocol):
    """The plannings' read model as the use cases write and ask it (its forms:
    ``services.scheduling.projections``, given by the composition root)."""

    @property
    def ddl(self) -> Sequence[str]:
        """Its tables, created at start."""

    def statements(self, before: Planning | None, after: Planning | None) -> Sequence[SideWrite]:
        """The side statements of a change of one planning (in the events' transaction)."""

    def aanvraag_van(self, app: ServiceApplication, afspraak_id: UUID) -> UUID | None:
        """The dossier an appointment belongs to, or None for an unknown appointment."""

    def overdue(self, app: ServiceApplication, now: datetime, limit: int) -> list[UUID]:
        """Open plannings whose deadline has passed, the earliest first."""

    def afspraken_van(
        self, app: ServiceApplication, adviseur_id: str, status: str, limit: int
    ) -> list[tuple[UUID, UUID]]:
        """(dossier, appointment) of an adviseur's appointments with this status, by start
        (the open ones the earliest first, the others the latest first)."""


@dataclass(frozen=True)
class Gepland:
    """The answer to planning an appointment; ``replayed`` when an Idempotency-Key repeated."""

    aanvraag_id: UUID
    afspraak: Afspraak
    replayed: bool


@dataclass(frozen=True)
class Idempotency:
    """An ``Idempotency-Key`` with the scope it is unique in (route template and caller)."""

    scope: str
    key: str


class Scheduling(ServiceApplication):
    """The scheduling service's application."""

    service = "scheduling"
    # The read model's tables come with it (``__init__``); the set is applied as one, as before.
    ddl = ()

    def __init__(
        self,
        env: dict[str, str],
        calendar: WorkingDayCalendar,
        working_days: int = 3,
        *,
        read_model: ReadModel,
    ) -> None:
        super().__init__(env, publication_check=PublicationCheck(self.service, to_public))
        self.create_tables((*read_model.ddl, idempotency_ddl()))
        self.calendar = calendar
        self.working_days = working_days
        self.read_model = read_model
        self.idempotency = idempotency_keys(self)

    # --- queries ---------------------------------------------------------------------------------

    def planning(self, aanvraag_id: UUID) -> Planning:
        """The planning of a dossier."""
        return self.load(aanvraag_id, project, "Onbekend dossier.")

    def aanvraag_van(self, afspraak_id: UUID) -> UUID | None:
        """The dossier an appointment belongs to, or None for an unknown appointment."""
        return self.read_model.aanvraag_van(self, afspraak_id)

    def afspraak(self, afspraak_id: UUID) -> tuple[Planning, Afspraak]:
        """An appointment with the planning it is part of; 404 when unknown."""
        aanvraag_id = self._dossier_van(afspraak_id)
        planning = self.planning(aanvraag_id)
        return planning, planning.afspraak(afspraak_id)

    def afspraken_van(
        self, adviseur_id: str, status: str, limit: int
    ) -> list[tuple[Planning, Afspraak]]:
        """An adviseur's appointments with this status (by pseudonym), each with its planning."""
        plannings: dict[UUID, Planning] = {}
        gevonden = []
        for aanvraag_id, afspraak_id in self.read_model.afspraken_van(
            self, adviseur_id, status, limit
        ):
            if aanvraag_id not in plannings:
                plannings[aanvraag_id] = self.planning(aanvraag_id)
            planning = plannings[aanvraag_id]
            gevonden.append((planning, planning.afspraak(afspraak_id)))
        return gevonden

    def overdue(self, now: datetime, limit: int = 500) -> list[UUID]:
        """Open plannings whose deadline has passed."""
        return self.read_model.overdue(self, now, limit)

    # --- reactions to other services' events -----------------------------------------------------

    def open(
        self, aanvraag_id: UUID, ingediend_op: datetime, ctx: Context, inbox: tuple[str, str]
    ) -> None:
        """Open the planning of a new aanvraag (once, however often the event arrives)."""

        def decide(planning: Planning | None) -> list[DomainEvent]:
            if planning is not None:
                # Opened already (by an earlier delivery of this event, or a re-announcement).
                raise AlreadyProcessed(inbox[1])
            deadline = self.calendar.contact_deadline(ingediend_op, self.working_days)
            return [
                open_planning(
                    aanvraag_id,
                    ingediend_op,
                    deadline,
                    self.working_days,
                    self.calendar.profile.name,
                    ctx,
                )
            ]

        self.change(
            aanvraag_id,
            decide,
            project=project,
            inbox=inbox,
            statements=self.read_model.statements,
        )

    def stop(
        self,
        aanvraag_id: UUID,
        ctx: Context,
        inbox: tuple[str, str],
        reden: StopReden = "ingetrokken",
    ) -> None:
        """Stop the planning of a withdrawn aanvraag or closed dossier; cancel what is planned."""

        def decide(planning: Planning) -> list[DomainEvent]:
            event = domain.stop(planning, ctx, reden)
            if event is None:
                return []
            gestopt = project(planning, [event])
            assert gestopt is not None
            return [event, *annuleer_na_stop(gestopt, ctx)]

        self._change(aanvraag_id, decide, inbox=inbox)

    def noteer_rapport(
        self,
        aanvraag_id: UUID,
        partij: Partij,
        rapport_id: UUID,
        versie: int,
        ctx: Context,
        inbox: tuple[str, str],
    ) -> None:
        """Note that a party received the report (it may ask for a toelichting from now on)."""
        self._change(
            aanvraag_id,
            lambda planning: [domain.noteer_rapport(planning, partij, rapport_id, versie, ctx)],
            inbox=inbox,
        )

    # --- contact and its deadline ----------------------------------------------------------------

    def neem_contact_op(self, aanvraag_id: UUID, ctx: Context) -> Planning:
        """Record that the secretariat made contact."""
        return self._change(aanvraag_id, lambda planning: [neem_contact_op(planning, ctx)])

    def stel_verstrijken_vast(self, aanvraag_id: UUID, ctx: Context) -> bool:
        """Escalate a missed deadline; True when this call recorded it."""
        # What the last (the recorded) attempt decided: a retry after another replica escalated
        # first decides nothing.
        decided: list[DomainEvent] = []

        def decide(planning: Planning) -> list[DomainEvent | None]:
            decided[:] = [e for e in [stel_verstrijken_vast(planning, ctx)] if e is not None]
            return list(decided)

        self._change(aanvraag_id, decide)
        return bool(decided)

    def escalate_overdue(self, now: datetime) -> int:
        """Record ContacttermijnVerstreken for every overdue planning; returns how many."""
        ctx = Context(now=now, actor_id="svc-scheduling", actor_role="systeem")
        return sum(
            self.stel_verstrijken_vast(aanvraag_id, ctx) for aanvraag_id in self.overdue(now)
        )

    # --- appointments ----------------------------------------------------------------------------

    def plan_afspraak(
        self,
        aanvraag_id: UUID,
        verzoek: AfspraakVerzoek,
        ctx: Context,
        idempotency: Idempotency | None = None,
    ) -> Gepland:
        """Plan an appointment; a repeated Idempotency-Key answers with the first appointment."""
        # ``achteraf`` only when set: keys remembered before it existed keep their fingerprint.
        body = verzoek.model_dump(mode="json", exclude=None if verzoek.achteraf else {"achteraf"})
        digest = fingerprint({"aanvraag_id": str(aanvraag_id), **body})
        afspraak_id = uuid4()

        def decide(planning: Planning | None) -> list[DomainEvent]:
            if planning is None:
                raise NietGevonden("Onbekend dossier.")
            return [domain.plan_afspraak(planning, verzoek, afspraak_id, ctx, self.calendar)]

        if idempotency is None:
            after = self.change(
                aanvraag_id, decide, project=project, statements=self.read_model.statements
            )
        else:
            once = Once(
                self.idempotency,
                idempotency.scope,
                idempotency.key,
                digest,
                {"afspraak_id": str(afspraak_id)},
            )
            changed = self.change_once(
                once, aanvraag_id, decide, project=project, statements=self.read_model.statements
            )
            if isinstance(changed, Answered):
                planning, afspraak = self.afspraak(UUID(changed.result["afspraak_id"]))
                return Gepland(planning.id, afspraak, replayed=True)
            after = changed
        assert after is not None
        return Gepland(after.id, after.afspraak(afspraak_id), replayed=False)

    def verzet_afspraak(
        self,
        afspraak_id: UUID,
        gepland_op: datetime,
        duur_minuten: int | None,
        ctx: Context,
        *,
        achteraf: bool = False,
    ) -> tuple[Planning, Afspraak]:
        """Move a planned appointment, or record afterwards that it took place at another time
        (the same time again changes nothing)."""
        return self._change_afspraak(
            afspraak_id,
            lambda planning: [
                domain.verzet_afspraak(
                    planning,
                    afspraak_id,
                    gepland_op,
                    duur_minuten,
                    ctx,
                    self.calendar,
                    achteraf=achteraf,
                )
            ],
        )

    def annuleer_afspraak(self, afspraak_id: UUID, ctx: Context) -> tuple[Planning, Afspraak]:
        """Cancel a planned appointment (cancelling it again changes nothing)."""
        return self._change_afspraak(
            afspraak_id, lambda planning: [domain.annuleer_afspraak(planning, afspraak_id, ctx)]
        )

    def leg_gesprek_vast(
        self, afspraak_id: UUID, woningscan_uitgevoerd: bool, ctx: Context
    ) -> tuple[Planning, Afspraak]:
        """Record that an appointment took place (with the woningscan, when done then)."""
        return self._change_afspraak(
            afspraak_id,
            lambda planning: domain.leg_gesprek_vast(
                planning, afspraak_id, woningscan_uitgevoerd, ctx
            ),
        )

    def leg_woningscan_vast(self, afspraak_id: UUID, ctx: Context) -> tuple[Planning, Afspraak]:
        """Record a woningscan done after the conversation at the bestuurder's home (once)."""
        return self._change_afspraak(
            afspraak_id, lambda planning: [domain.leg_woningscan_vast(planning, afspraak_id, ctx)]
        )

    # --- toelichting -----------------------------------------------------------------------------

    def vraag_toelichting_aan(
        self, aanvraag_id: UUID, partij: Partij, ctx: Context
    ) -> tuple[Planning, Toelichting]:
        """A party asks for a toelichting; its request that is not yet served is the answer."""
        planning = self._change(
            aanvraag_id, lambda planning: [domain.vraag_toelichting_aan(planning, partij, ctx)]
        )
        toelichting = planning.lopende_toelichting(partij)
        assert toelichting is not None
        return planning, toelichting

    # --- internals -------------------------------------------------------------------------------

    def _dossier_van(self, afspraak_id: UUID) -> UUID:
        aanvraag_id = self.aanvraag_van(afspraak_id)
        if aanvraag_id is None:
            raise NietGevonden("Onbekende afspraak.")
        return aanvraag_id

    def _change(
        self,
        aanvraag_id: UUID,
        decide: Callable[[Planning], Sequence[DomainEvent | None]],
        *,
        inbox: tuple[str, str] | None = None,
    ) -> Planning:
        """``change`` on an existing planning (404 when there is none), with the read model's
        rows in the events' transaction; the planning afterwards."""

        def decide_known(planning: Planning | None) -> list[DomainEvent]:
            if planning is None:
                raise NietGevonden("Onbekend dossier.")
            return [event for event in decide(planning) if event is not None]

        after = self.change(
            aanvraag_id,
            decide_known,
            project=project,
            inbox=inbox,
            statements=self.read_model.statements,
        )
        assert after is not None
        return after

    def _change_afspraak(
        self, afspraak_id: UUID, decide: Callable[[Planning], Sequence[DomainEvent | None]]
    ) -> tuple[Planning, Afspraak]:
        planning = self._change(self._dossier_van(afspraak_id), decide)
        return planning, planning.afspraak(afspraak_id)
