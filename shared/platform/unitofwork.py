"""The parts of a unit of work that every store shares: what it writes besides its events.

A use case records its events with side writes that commit or fail with them: a ``Statement``
(SQL, run by PostgreSQL's recorder in the events' transaction) or a ``MemoryWrite`` (checked and
applied by the in-memory recorder under its lock). Each recorder refuses the other's. The ports
that make them are named in ``shared.platform.ports``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from psycopg.sql import SQL, Composed


class DuplicateKey(Exception):
    """A side write hit a unique constraint (e.g. an idempotency key taken at the same moment)."""

    def __init__(self, constraint: str | None):
        super().__init__(constraint or "unique constraint")
        self.constraint = constraint


@dataclass(frozen=True)
class Statement:
    """A side statement executed in the same transaction as the events it comes with."""

    sql: SQL | Composed
    params: Sequence[Any] | dict[str, Any] = field(default_factory=tuple)


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class MemoryWrite:
    """A side write of the in-memory store, the memory form of a ``Statement``.

    The recorder runs every ``check`` of a unit of work under its lock before anything changes
    (a check raises, e.g. ``DuplicateKey`` for a key taken, as PostgreSQL's constraint would),
    then runs every ``apply``, then stores the events: all of it happens or none of it. So every
    refusal belongs in ``check``; an ``apply`` must not raise.
    """

    apply: Callable[[], None]
    check: Callable[[], None] = _nothing


#: What a unit of work writes besides its events: SQL for PostgreSQL's recorder, a
#: ``MemoryWrite`` for the in-memory one (each refuses the other's).
SideWrite = Statement | MemoryWrite


class IdempotencyKeys(Protocol):
    r"""The first answers to ``Idempotency-Key``\ s, stored with the events of that answer."""

    #: The name of the constraint a key taken at the same moment violates (``DuplicateKey``).
    constraint: str

    def earlier(self, scope: str, key: str, digest: str) -> dict[str, Any] | None:
        """The first answer to this key, or None; 422 when the key came with another body."""

    def remember(self, scope: str, key: str, digest: str, result: dict[str, Any]) -> SideWrite:
        """The side write that stores the answer with the command's events."""

    def forget(self, scope: str, field: str, value: str) -> SideWrite:
        """The side write that drops the keys of ``scope`` whose answer has ``field`` = ``value``
        (their digests are of personal data: forgetting a dossier takes them too)."""
