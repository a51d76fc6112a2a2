"""Intake's use cases: register, withdraw, hand out contact details to services that need them,
close, legal holds, forget and destroy under the retention periods.

What they write besides their events (who may see a dossier, a destruction's deletes) and what
they ask of the read model (who may see a dossier, the closing policy's count) goes through the
``ReadModel`` the composition root gives the application: PostgreSQL's tables or the in-memory
store's (``services.intake.projections.read_model``).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol
from uuid import UUID, uuid4

from services.intake.domain import (
    Aanmelding,
    Aanvraag,
    AfsluitReden,
    BewaarplichtReden,
    PersoonsgegevensVerstrekt,
    VergeetReden,
    dien_in,
    hef_bewaarplicht_op,
    leg_bewaarplicht_op,
    project,
    sluit_af,
    trek_in,
    vergeet,
    vernietig,
)
from services.intake.gateway import to_public
from shared.platform.access import opaque_actor_id
from shared.platform.consumer import Delivery
from shared.platform.errors import NietGevonden
from shared.platform.eventstore import Answered, Once, ServiceApplication
from shared.platform.idempotency import fingerprint, idempotency_ddl, idempotency_keys
from shared.platform.keys import Vergeten
from shared.platform.model import Context, DomainEvent, first_event
from shared.platform.ports import SideWrite
from shared.platform.relay import PublicationCheck
from shared.platform.throttle import THROTTLE_DDL, Throttle

log = logging.getLogger(__name__)

SCOPE = "POST /aanvragen"
#: Stands in for a forgotten bestuurder's e-mail hash: no e-mail address hashes to it.
VERGETEN_HASH = "vergeten"


def email_hash(email: str) -> str:
    """How a bestuurder's e-mail is matched to a dossier without storing it outside the events."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


@dataclass(frozen=True)
class Ingediend:
    """The answer to a registration."""

    aanvraag_id: UUID
    replayed: bool  # True when an earlier request with the same Idempotency-Key answered this


class RegistrationLimits:
    """The public registration cannot be used as a weapon (to flood the secretariat, or someone's
    mailbox): new registrations are counted per source address and per e-mail address (a keyed
    hash: the address itself is never stored here) in windows; over a limit, 429."""

    def __init__(
        self,
        app: ServiceApplication,
        window_s: float,
        per_source: int,
        per_address: int,
    ) -> None:
        app.create_tables([THROTTLE_DDL])
        self.sources = Throttle(app, "registratie_bron", window_s)
        self.addresses = Throttle(app, "registratie_adres", window_s)
        self.per_source = per_source
        self.per_address = per_address

    def admit(self, source: str, aanmelding: Aanmelding, now: datetime) -> None:
        """Count one registration; raise ``TeVaak`` when its source or an address is over."""
        self.sources.limit(
            source,
            self.per_source,
            now,
            "Te veel aanmeldingen vanaf dit adres; probeer het later opnieuw.",
        )
        addresses = {aanmelding.aanvrager_email.strip().lower()}
        addresses.add(aanmelding.bestuurder.email.strip().lower())
        for address in sorted(addresses):
            self.addresses.limit(
                opaque_actor_id(address),
                self.per_address,
                now,
                "Te veel aanmeldingen met dit e-mailadres; probeer het later opnieuw.",
            )


class ReadModel(Protocol):
    """What the use cases write with their events besides them, and ask of the read model
    (``services.intake.projections.read_model``: ``SqlReadModel`` in PostgreSQL,
    ``MemoryReadModel`` on the in-memory store)."""

    @property
    def ddl(self) -> Sequence[str]:
        """The tables (``{schema}`` is the service's schema)."""

    def registreer_toegang(
        self, aanvraag_id: UUID, bestuurder_email_hash: str, organisatie_code: str
    ) -> SideWrite:
        """What records who may see a new dossier: its bestuurder (by the hash of their e-mail
        address) and its werkgever (by organisatie_code)."""

    def vervang_bestuurder_hash(self, aanvraag_id: UUID, bestuurder_email_hash: str) -> SideWrite:
        """What replaces the bestuurder's e-mail hash of the dossier."""

    def toegang(self, aanvraag_id: UUID) -> tuple[str, str] | None:
        """(bestuurder e-mail hash, organisatie_code) of a dossier, or None when unknown."""

    def vernietig(self, aanvraag_id: UUID, event_ids: Sequence[str]) -> Sequence[SideWrite]:
        """What deletes the dossier's kept public events with these ids."""

    def noteer_uitvoering(self, delivery: Delivery) -> tuple[int, int]:
        """Keep one of the events the closing policy counts (once per event id) and answer
        (measures of the dossier's approved report, how many of them are carried out)."""


class Intake(ServiceApplication):
    """The intake service's application."""

    service = "intake"
    ddl: ClassVar[Sequence[str]] = (idempotency_ddl(),)

    def __init__(
        self, env: dict[str, str], *, read_model: Callable[[ServiceApplication], ReadModel]
    ) -> None:
        super().__init__(env, publication_check=PublicationCheck(self.service, to_public))
        self.read_model = read_model(self)
        self.create_tables(self.read_model.ddl)
        self.idempotency = idempotency_keys(self)

    def dien_aanvraag_in(
        self,
        aanmelding: Aanmelding,
        ctx: Context,
        idempotency_key: str | None = None,
        admit: Callable[[Aanmelding], None] | None = None,
    ) -> Ingediend:
        """Register an aanvraag; a repeated request with the same key returns the first answer.
        ``admit`` may refuse a new one (429, ``RegistrationLimits``); a repeat is not counted."""
        digest = fingerprint(aanmelding)
        aanvraag_id = uuid4()

        def decide(_: Aanvraag | None) -> list[DomainEvent]:
            if admit is not None:
                admit(aanmelding)  # only a new registration counts (a repeat was answered)
            return [dien_in(aanvraag_id, aanmelding, ctx)]

        with contextlib.ExitStack() as new_key:
            key_write: list[SideWrite] = []

            def statements(_: Aanvraag | None, __: Aanvraag | None) -> list[SideWrite]:
                # A new dossier: its data key is made here, after the key was looked up and the
                # limits admitted it (a repeat or a refusal makes none), and stored in the same
                # unit of work as its events; while the block lasts, the mapper seals with it.
                if not key_write:
                    key_write.append(new_key.enter_context(self.keys.new_dossier(aanvraag_id)))
                toegang = self.read_model.registreer_toegang(
                    aanvraag_id,
                    email_hash(aanmelding.bestuurder.email),
                    aanmelding.werkgever.organisatie_code,
                )
                return [toegang, *key_write]

            if idempotency_key is None:
                self.change(aanvraag_id, decide, project=project, statements=statements, new=True)
                return Ingediend(aanvraag_id, replayed=False)
            once = Once(
                self.idempotency, SCOPE, idempotency_key, digest, {"aanvraag_id": str(aanvraag_id)}
            )
            changed = self.change_once(
                once, aanvraag_id, decide, project=project, statements=statements, new=True
            )
        if isinstance(changed, Answered):
            return Ingediend(UUID(changed.result["aanvraag_id"]), replayed=True)
        return Ingediend(aanvraag_id, replayed=False)

    def aanvraag(self, aanvraag_id: UUID) -> Aanvraag:
        """The registration with its personal data (for its owner and the claim-check API)."""
        return self.load(aanvraag_id, project, "Onbekend dossier.")

    def persoonsgegevens(self, aanvraag_id: UUID) -> Aanmelding:
        """The registration's personal data; 410 (code persoonsgegevens_vergeten) once forgotten."""
        aanmelding = self.aanvraag(aanvraag_id).aanmelding
        if not isinstance(aanmelding, Aanmelding):
            raise Vergeten(
                "De persoonsgegevens van dit dossier zijn vergeten.",
                code="persoonsgegevens_vergeten",
            )
        return aanmelding

    def verstrek(self, aanvraag_id: UUID, gegevens: str, ctx: Context) -> None:
        """Record that personal data of the dossier were handed out (its own aggregate, so a
        hand-out never contends with the dossier's other writers)."""
        self.record(
            first_event(
                PersoonsgegevensVerstrekt, uuid4(), ctx, aanvraag_id=aanvraag_id, gegevens=gegevens
            )
        )

    def _change(
        self,
        aanvraag_id: UUID,
        decide: Callable[[Aanvraag], DomainEvent | None],
        statements: Callable[[], Sequence[SideWrite]] | None = None,
    ) -> bool:
        """One change of a known dossier (404 for an unknown one): ``decide`` its event, or None
        for nothing to do, and record it with ``statements``; True when this call recorded it.

        When another writer came first it all runs again on what is there now; what this call
        answers is what its last run decided.
        """
        decided = False

        def decide_known(aanvraag: Aanvraag | None) -> list[DomainEvent]:
            nonlocal decided
            if aanvraag is None:
                raise NietGevonden("Onbekend dossier.")
            event = decide(aanvraag)
            decided = event is not None
            return [] if event is None else [event]

        self.change(
            aanvraag_id,
            decide_known,
            project=project,
            statements=None if statements is None else lambda before, after: statements(),
        )
        return decided

    def vergeet_persoonsgegevens(
        self,
        aanvraag_id: UUID,
        reden: VergeetReden,
        diensten: Sequence[str],
        ctx: Context,
    ) -> bool:
        """Destroy intake's key of the dossier and record PersoonsgegevensVergeten, together.

        ``diensten`` are the other services whose key of the dossier was destroyed before. The
        bestuurder's e-mail hash and the registration's idempotency key (a digest of the form)
        go too. True when this call recorded it; False when it was recorded before.
        """
        who = ctx.actor_id or "onbekend"

        def decide(aanvraag: Aanvraag) -> DomainEvent | None:
            status = self.keys.status(aanvraag_id)
            eigen = ("intake",) if status is not None and status.had_key else ()
            return vergeet(aanvraag, reden, (*eigen, *diensten), ctx)

        def statements() -> list[SideWrite]:
            return [
                self.keys.destroying(aanvraag_id, who, reden, ctx.now),
                self.read_model.vervang_bestuurder_hash(aanvraag_id, VERGETEN_HASH),
                self.idempotency.forget(SCOPE, "aanvraag_id", str(aanvraag_id)),
            ]

        return self._change(aanvraag_id, decide, statements)

    def leg_bewaarplicht_op(
        self, aanvraag_id: UUID, reden: BewaarplichtReden, ctx: Context
    ) -> bool:
        """Place a legal hold on the dossier; True when this call placed it."""
        return self._change(aanvraag_id, lambda aanvraag: leg_bewaarplicht_op(aanvraag, reden, ctx))

    def hef_bewaarplicht_op(self, aanvraag_id: UUID, ctx: Context) -> bool:
        """Lift the legal hold; True when this call lifted it."""
        return self._change(aanvraag_id, lambda aanvraag: hef_bewaarplicht_op(aanvraag, ctx))

    def vernietig(
        self,
        aanvraag_id: UUID,
        soort: str,
        event_ids: Sequence[str],
        tot: datetime,
        ctx: Context,
    ) -> None:
        """Destroy read-model entries of one event type and record GegevensVernietigd, together.

        Never a silent delete: the event and the deletes commit in one transaction, and a legal
        hold placed meanwhile makes the command refuse (Conflict) and delete nothing.
        """
        self._change(
            aanvraag_id,
            lambda aanvraag: vernietig(aanvraag, soort, len(event_ids), tot, ctx),
            lambda: self.read_model.vernietig(aanvraag_id, event_ids),
        )

    def trek_aanvraag_in(self, aanvraag_id: UUID, ctx: Context) -> None:
        """Withdraw an aanvraag (a repeated request has no second effect)."""
        self._change(aanvraag_id, lambda aanvraag: trek_in(aanvraag, ctx))

    def sluit_dossier_af(
        self,
        aanvraag_id: UUID,
        reden: AfsluitReden,
        toelichting: str | None,
        totaal: int,
        uitgevoerd: int,
        ctx: Context,
    ) -> bool:
        """Close the dossier; True when this call closed it (False: it was already closed)."""
        return self._change(
            aanvraag_id,
            lambda aanvraag: sluit_af(aanvraag, reden, toelichting, totaal, uitgevoerd, ctx),
        )

    def toegang(self, aanvraag_id: UUID) -> tuple[str, str] | None:
        """(bestuurder e-mail hash, organisatie_code) of a dossier, or None when unknown."""
        return self.read_model.toegang(aanvraag_id)

    def noteer_uitvoering(self, delivery: Delivery) -> tuple[int, int]:
        """Keep one of the events the closing policy counts (assessment's reports and carried-out
        measures, approval's approval; once per event id) and answer (measures of the dossier's
        approved report, how many of them are carried out)."""
        return self.read_model.noteer_uitvoering(delivery)
