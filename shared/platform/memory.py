"""The in-memory forms of the unit-of-work ports (``shared.platform.ports``), for use-case tests.

They keep the promises of their PostgreSQL forms that a use case relies on: an inbox entry and
the side writes (``MemoryWrite``) are recorded with the events or not at all (``AlreadyProcessed``
the second time, ``DuplicateKey`` for a key taken), a version taken by another writer is a
``ConcurrencyConflict``, a register takes each of intake's events once. The data keys and the
idempotency keys have their memory forms beside their SQL ones (``shared.platform.keys.MemoryKeys``,
``shared.platform.idempotency.MemoryIdempotencyKeys``). What only PostgreSQL has (SQL, the
relay, the windows of anonymous refusals) is not pretended here: the in-memory recorder refuses a
SQL ``Statement``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from uuid import UUID

from eventsourcing.persistence import ApplicationRecorder, IntegrityError, StoredEvent
from eventsourcing.popo import POPOApplicationRecorder, POPOFactory

from shared.contracts import events as public
from shared.platform.access import record_refusal
from shared.platform.auth import Refusal
from shared.platform.consumer import Delivery
from shared.platform.errors import NietGevonden
from shared.platform.eventstore import (
    AlreadyProcessed,
    ConcurrencyConflict,
    ServiceApplication,
)
from shared.platform.register import DossierStand
from shared.platform.unitofwork import MemoryWrite


class MemoryRecorder(POPOApplicationRecorder):
    """The library's in-memory recorder plus the inbox, checked and written under its lock."""

    def __init__(self) -> None:
        super().__init__()
        self.inbox: set[tuple[str, str]] = set()

    def _insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        inbox: tuple[str, str] | None = kwargs.get("inbox")
        writes: list[MemoryWrite] = []
        for write in kwargs.get("statements", ()):
            if not isinstance(write, MemoryWrite):
                raise NotImplementedError(f"a SQL statement on the in-memory store: {write!r}")
            writes.append(write)
        with self._database_lock:
            if inbox is not None and inbox in self.inbox:
                raise AlreadyProcessed(inbox[1])
            for write in writes:
                write.check()
            try:
                self._assert_uniqueness(stored_events, **kwargs)
            except IntegrityError:
                raise ConcurrencyConflict(str(stored_events[0].originator_id)) from None
            # Every refusal was checked above; the writes are made before the events are stored,
            # so a write that failed all the same (a defect: ``apply`` must not raise) stores no
            # event and no inbox entry with it.
            for write in writes:
                write.apply()
            notification_ids = self._update_table(stored_events, **kwargs)
            if inbox is not None:
                self.inbox.add(inbox)
            return notification_ids


class MemoryFactory(POPOFactory):
    """The library's in-memory infrastructure with ``MemoryRecorder`` as the application's
    recorder (``PERSISTENCE_MODULE`` = ``shared.platform.eventstore.IN_MEMORY``)."""

    def application_recorder(self) -> ApplicationRecorder:
        """A recorder with an inbox."""
        return MemoryRecorder()


class MemoryDossierRegister:
    """A service's dossier register in memory (``shared.platform.register.DossierRegister``)."""

    def __init__(self) -> None:
        self.events: set[str] = set()
        self.dossiers: dict[UUID, DossierStand] = {}

    def handle(self, delivery: Delivery) -> None:
        """Take one of intake's public events in (once per event id)."""
        event = delivery.event
        if delivery.envelope.id in self.events:
            return
        aanvraag_id: UUID = getattr(event, "aanvraag_id")  # noqa: B009 - every intake event has it
        self.events.add(delivery.envelope.id)
        stand = self.dossiers.get(aanvraag_id) or DossierStand(aanvraag_id, "", False, False)
        if isinstance(event, public.AanvraagIngediend):
            stand = replace(stand, organisatie_code=event.organisatie_code)
        elif isinstance(event, public.AanvraagIngetrokken):
            stand = replace(stand, ingetrokken=True)
        elif isinstance(event, public.DossierAfgesloten):
            stand = replace(stand, afgesloten=True)
        self.dossiers[aanvraag_id] = stand

    def stand(self, aanvraag_id: UUID) -> DossierStand | None:
        """The dossier as this service knows it (once registered), or None."""
        stand = self.dossiers.get(aanvraag_id)
        return stand if stand is not None and stand.organisatie_code else None

    def known(self, aanvraag_id: UUID) -> DossierStand:
        """The dossier, or 404 when this service has not heard of it (yet)."""
        stand = self.stand(aanvraag_id)
        if stand is None:
            raise NietGevonden("Onbekend dossier.")
        return stand


class MemoryAccessLog:
    """Every refusal on record in the application's event store, one by one (no windows of
    anonymous attempts: those are counted in PostgreSQL tables)."""

    def __init__(self, app: ServiceApplication) -> None:
        self.app = app

    def __call__(self, refusal: Refusal) -> None:
        """Record one refusal."""
        record_refusal(self.app, refusal)
