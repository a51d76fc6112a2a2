"""The unit-of-work ports of the use cases, each with a PostgreSQL and an in-memory form.

A use case changes one aggregate and, in the same unit of work, what must change with it:

- **idempotency**: an inbox entry ``(consumer, message_id)`` recorded with the events of a
  reaction to another service's event, so a redelivery has no second effect
  (``ServiceApplication.record(..., inbox=...)``; PostgreSQL: the ``inbox`` table in the events'
  transaction; in memory: ``shared.platform.memory.MemoryRecorder``);
- **read-model statements**: rows of the service's own tables written in the events' transaction
  (``record(..., statements=...)``; PostgreSQL only: the in-memory store refuses them);
- **the access log**: every refused attempt on record (``AccessLog``; PostgreSQL:
  ``shared.platform.access.Refusals``, anonymous attempts counted per window in tables;
  in memory: ``shared.platform.memory.MemoryAccessLog``, each one on record);
- **the dossier register**: the dossiers a service heard of from intake, its read model of them
  (``DossierRegister``; PostgreSQL: ``shared.platform.register.DossierRegister``; in memory:
  ``shared.platform.memory.MemoryDossierRegister``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol
from uuid import UUID

if TYPE_CHECKING:
    from shared.platform.auth import Refusal
    from shared.platform.consumer import Delivery
    from shared.platform.register import DossierStand

#: An inbox entry: (consumer, message id).
InboxEntry = tuple[str, str]


class AccessLog(Protocol):
    """Puts a refused attempt on record before it is answered (raises when it cannot)."""

    def __call__(self, refusal: Refusal) -> None:
        """Record one refusal."""


class DossierRegister(Protocol):
    """What a service knows of the dossiers intake announced."""

    def handle(self, delivery: Delivery) -> None:
        """Take one of intake's public events in (once per event id)."""

    def stand(self, aanvraag_id: UUID) -> DossierStand | None:
        """The dossier as this service knows it, or None when it has not heard of it."""

    def known(self, aanvraag_id: UUID) -> DossierStand:
        """The dossier, or 404 when this service has not heard of it (yet)."""
