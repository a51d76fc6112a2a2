"""The unit-of-work ports of the use cases, each with a PostgreSQL and an in-memory form.

A use case changes one aggregate and, in the same unit of work, what must change with it:

- **idempotency**: an inbox entry ``(consumer, message_id)`` recorded with the events of a
  reaction to another service's event, so a redelivery has no second effect
  (``ServiceApplication.record(..., inbox=...)``; PostgreSQL: the ``inbox`` table in the events'
  transaction; in memory: ``shared.platform.memory.MemoryRecorder``);
- **idempotency keys**: a retried command (same ``Idempotency-Key``, same body) gets the first
  answer (``IdempotencyKeys``; PostgreSQL: ``shared.platform.idempotency.SqlIdempotencyKeys``, a
  table written in the events' transaction; in memory: ``MemoryIdempotencyKeys``), and
  ``ServiceApplication.change_once`` is the one place that checks and remembers them;
- **read-model statements**: rows of the service's own tables written in the events' transaction
  (``record(..., statements=...)``): a ``SideWrite``, either a ``Statement`` (SQL, PostgreSQL's
  recorder runs it in the events' transaction) or a ``MemoryWrite`` (the in-memory recorder
  checks and applies it under its lock with the events). Each service's ``ReadModel`` port makes
  them, in its SQL form or its memory form, and answers the service's queries from them;
- **the data keys** of personal fields (``DataKeys``; PostgreSQL:
  ``shared.platform.keys.DossierKeys``; in memory: ``shared.platform.keys.MemoryKeys``, with which
  the in-memory store seals personal fields as PostgreSQL's does), a new dossier's key written
  with its first events;
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

# The unit of work's own parts are where the event store can import them without a cycle.
from shared.platform.keys import DataKeys
from shared.platform.unitofwork import (
    DuplicateKey,
    IdempotencyKeys,
    MemoryWrite,
    SideWrite,
    Statement,
)

if TYPE_CHECKING:
    from shared.platform.auth import Refusal
    from shared.platform.consumer import Delivery
    from shared.platform.register import DossierStand

__all__ = [
    "AccessLog",
    "DataKeys",
    "DossierRegister",
    "DuplicateKey",
    "IdempotencyKeys",
    "MemoryWrite",
    "SideWrite",
    "Statement",
]


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
