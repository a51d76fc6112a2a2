"""The pure base types of every service's domain: events, aggregates, the context of a change, time.

Nothing here touches a database, a broker or telemetry: a service's ``domain`` builds on this
module, pydantic and the standard library alone, so its rules load and run without any server
(``tests/unit/test_pure_domain.py`` holds every domain to that). How events are stored, encrypted
and published is ``shared.platform.eventstore``'s business.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Final, Self, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, PrivateAttr

VERGETEN: Final = "[vergeten]"
"""What a forgotten text reads as."""


class _Omit:
    def __repr__(self) -> str:
        return "OMIT"


OMIT: Final = _Omit()
"""Placeholder that leaves a forgotten field out (its model has a form without it)."""


class DomainEvent(BaseModel):
    """A private domain event: immutable, validated when loaded, versioned by ``class_version``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    class_version: ClassVar[int] = 1
    #: The personal fields: dotted path (``*`` = every list item) → placeholder once forgotten.
    personal: ClassVar[Mapping[str, object]] = {}

    _vergeten: bool = PrivateAttr(default=False)

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    actor_id: str | None = None
    actor_role: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    #: W3C trace context of the span that recorded the event (set by ``record``): the relay puts
    #: it on the CloudEvent, so consumers continue the trace however late it is published.
    traceparent: str | None = None

    @property
    def vergeten(self) -> bool:
        """Whether this event was loaded after its dossier's personal data were forgotten."""
        return self._vergeten

    def dossier_id(self) -> UUID:
        """The dossier whose key encrypts this event's personal data."""
        aanvraag_id = getattr(self, "aanvraag_id", None)
        return aanvraag_id if isinstance(aanvraag_id, UUID) else self.originator_id


class Aggregate(BaseModel):
    """An immutable aggregate state, rebuilt by a projector function from its events."""

    model_config = ConfigDict(frozen=True)

    id: UUID
    version: int


@dataclass(frozen=True)
class Context:
    """Who asks for a change, and why: carried into every event the change records."""

    now: datetime
    actor_id: str | None = None
    actor_role: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    #: Other ids the same actor was recorded under by earlier releases (never written): a rule
    #: that compares actors across history (four-eyes) checks these too.
    actor_aliases: tuple[str, ...] = ()

    def is_actor(self, recorded: Iterable[str]) -> bool:
        """Whether any of ``recorded`` (actor ids from history) is this context's actor."""
        known = set(recorded)
        return self.actor_id in known or any(alias in known for alias in self.actor_aliases)

    def event_fields(self) -> dict[str, Any]:
        """The metadata fields every domain event takes from its context."""
        return {
            "timestamp": self.now,
            "actor_id": self.actor_id,
            "actor_role": self.actor_role,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
        }


TEvent = TypeVar("TEvent", bound=DomainEvent)


def first_event(cls: type[TEvent], originator_id: UUID, ctx: Context, **fields: Any) -> TEvent:
    """The event that creates an aggregate (version 1)."""
    return cls(originator_id=originator_id, originator_version=1, **ctx.event_fields(), **fields)


def next_event(cls: type[TEvent], aggregate: Aggregate, ctx: Context, **fields: Any) -> TEvent:
    """The event that follows the aggregate's current version."""
    return cls(
        originator_id=aggregate.id,
        originator_version=aggregate.version + 1,
        **ctx.event_fields(),
        **fields,
    )


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class Clock:
    """The time source of a service; tests replace it to move time forward."""

    def now(self) -> datetime:
        """The current time (UTC)."""
        return utcnow()


class FixedClock(Clock):
    """A clock that stands still until told to move (tests and replays)."""

    def __init__(self, start: datetime) -> None:
        self._now = start

    def now(self) -> datetime:
        """The clock's time."""
        return self._now

    def advance_to(self, moment: datetime) -> Self:
        """Move the clock forward."""
        self._now = moment
        return self
