"""Event-store wiring shared by every service: pydantic domain events on the eventsourcing library.

Each service is one eventsourcing ``Application`` on PostgreSQL, in its own schema. Domain events
are frozen pydantic models, validated when they are loaded, evolved with ``class_version`` and
``upcast_vN_vM`` static methods. ``WeerbaarRecorder`` adds two things to the library's recorder,
both written in the same transaction as the events:

- an *inbox* row ``(consumer, message_id)``: a message that was already processed cannot have its
  effect twice, whichever replica handles it (the primary key refuses the second insert);
- *side statements*: rows of the service's own tables (an idempotency key, a deadline index) that
  must commit or fail together with the events.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Self, TypeVar
from uuid import UUID, uuid5

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, Mapper, StoredEvent, Transcoder
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import get_topic, resolve_topic
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier
from pydantic import BaseModel, ConfigDict

from shared.errors import Conflict

log = logging.getLogger(__name__)

EVENT_ID_NAMESPACE = UUID("3b0f6a0e-6c55-4f6e-9a7e-6f0d5b1f2a11")


class DomainEvent(BaseModel):
    """A private domain event: immutable, validated when loaded, versioned by ``class_version``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    class_version: ClassVar[int] = 1

    originator_id: UUID
    originator_version: int
    timestamp: datetime
    actor_id: str | None = None
    actor_role: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None


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


def public_event_id(service: str, originator_id: UUID, originator_version: int, index: int) -> str:
    """The stable CloudEvent id of the index-th public event mapped from one stored event."""
    return str(uuid5(EVENT_ID_NAMESPACE, f"{service}/{originator_id}/{originator_version}/{index}"))


class PydanticMapper(Mapper[UUID]):
    """Stores ``model_dump(mode="json")`` and rebuilds events with the model (so they validate)."""

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        """Serialise one domain event."""
        assert isinstance(domain_event, DomainEvent)
        state = domain_event.model_dump(mode="json")
        version = type(domain_event).class_version
        if version > 1:
            state["class_version"] = version
        data = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
        if self.compressor:
            data = self.compressor.compress(data)
        if self.cipher:
            data = self.cipher.encrypt(data)
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=get_topic(type(domain_event)),
            state=data,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        """Deserialise (upcasting old versions) and validate one stored event."""
        return decode_event(stored_event.topic, self._plain(stored_event.state))

    def _plain(self, data: bytes) -> bytes:
        if self.cipher:
            data = self.cipher.decrypt(data)
        if self.compressor:
            data = self.compressor.decompress(data)
        return data


def decode_event(topic: str, data: bytes) -> DomainEvent:
    """Rebuild a domain event from its topic and stored JSON, upcasting old class versions."""
    cls = resolve_topic(topic)
    if not (isinstance(cls, type) and issubclass(cls, DomainEvent)):
        raise TypeError(f"topic {topic} is not a domain event")
    state: dict[str, Any] = json.loads(data)
    version = int(state.pop("class_version", 1))
    while version < cls.class_version:
        upcast: Callable[[dict[str, Any]], dict[str, Any]] = getattr(
            cls, f"upcast_v{version}_v{version + 1}"
        )
        state = upcast(state)
        version += 1
    return cls.model_validate(state)


class _NoTranscoder(Transcoder):
    """The pydantic mapper serialises by itself; the library's transcoder is never used."""

    def encode(self, obj: Any) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Statement:
    """A side statement executed in the same transaction as the events it comes with."""

    sql: SQL | Composed
    params: Sequence[Any] | dict[str, Any] = field(default_factory=tuple)


class WeerbaarRecorder(PostgresApplicationRecorder):
    """The library's recorder plus an inbox and side statements in the events' transaction."""

    def __init__(self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"):
        super().__init__(datastore, events_table_name=events_table_name)
        self.schema = datastore.schema
        self.inbox_table = Identifier(self.schema, "inbox")
        self.sql_create_statements.append(
            SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                "consumer text NOT NULL, message_id text NOT NULL, "
                "processed_at timestamptz NOT NULL DEFAULT now(), "
                "PRIMARY KEY (consumer, message_id))"
            ).format(self.inbox_table)
        )
        self._insert_inbox = SQL("INSERT INTO {} (consumer, message_id) VALUES (%s, %s)").format(
            self.inbox_table
        )

    def _insert_events(
        self,
        curs: psycopg.Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> None:
        inbox: tuple[str, str] | None = kwargs.get("inbox")
        if inbox is not None:
            curs.execute(self._insert_inbox, inbox, prepare=True)
        statements: Iterable[Statement] = kwargs.get("statements", ())
        for statement in statements:
            curs.execute(statement.sql, statement.params)
        super()._insert_events(curs, stored_events, **kwargs)

    def has_processed(self, consumer: str, message_id: str) -> bool:
        """Whether the inbox holds this message for this consumer."""
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                SQL("SELECT 1 FROM {} WHERE consumer = %s AND message_id = %s").format(
                    self.inbox_table
                ),
                (consumer, message_id),
            ).fetchone()
        return row is not None


class AlreadyProcessed(Exception):
    """The inbox already holds this message: its effect was applied before."""


class ConcurrencyConflict(Exception):
    """Another writer changed the aggregate first; the command can be retried."""


class DuplicateKey(Exception):
    """A side statement hit a unique constraint (e.g. an idempotency key)."""

    def __init__(self, constraint: str | None):
        super().__init__(constraint or "unique constraint")
        self.constraint = constraint


def _constraint_of(exc: BaseException) -> str | None:
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    return getattr(diag, "constraint_name", None)


TResult = TypeVar("TResult")


class ServiceApplication(Application[UUID]):
    """One service's event-sourced application on PostgreSQL (schema = service name)."""

    service: ClassVar[str]
    #: The service's own tables (read models, indexes), created at start when missing.
    ddl: ClassVar[Sequence[str]] = ()

    def __init__(self, env: dict[str, str]) -> None:
        _ensure_schema(env)
        super().__init__(env)
        recorder = self.recorder
        assert isinstance(recorder, WeerbaarRecorder)
        self.store: WeerbaarRecorder = recorder
        self.datastore: PostgresDatastore = recorder.datastore
        if self.ddl:
            with self.datastore.transaction(commit=True) as curs:
                for statement in self.ddl:
                    curs.execute(statement.replace("{schema}", self.service))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The application's name decides its table names: every subclass of a service's
        # application (e.g. one with extra read-model tables) must use the service's tables.
        if hasattr(cls, "service"):
            cls.name = cls.service

    def construct_mapper(self) -> Mapper[UUID]:
        """Use the pydantic mapper."""
        return PydanticMapper(transcoder=_NoTranscoder())

    def record(
        self,
        *events: DomainEvent,
        inbox: tuple[str, str] | None = None,
        statements: Sequence[Statement] = (),
    ) -> None:
        """Append events atomically with an optional inbox row and side statements."""
        try:
            self.save(*events, inbox=inbox, statements=statements)
        except IntegrityError as exc:
            constraint = _constraint_of(exc)
            if inbox is not None and constraint == "inbox_pkey":
                raise AlreadyProcessed(inbox[1]) from None
            if constraint is not None and constraint.endswith("_events_pkey"):
                raise ConcurrencyConflict(str(events[0].originator_id)) from None
            raise DuplicateKey(constraint) from exc

    def retrying(self, command: Callable[[], TResult], attempts: int = 5) -> TResult:
        """Run a get → decide → record command, retrying when another writer came first."""
        return retry_on_conflict(command, attempts)

    def max_notification_id(self) -> int:
        """The id of the last event in this service's log (0 when empty)."""
        return self.recorder.max_notification_id() or 0


def retry_on_conflict(command: Callable[[], TResult], attempts: int = 5) -> TResult:
    """Run a command again while it loses a concurrency conflict; 409 when it keeps losing."""
    for attempt in range(attempts):
        try:
            return command()
        except ConcurrencyConflict:
            log.info("concurrency conflict, retrying", extra={"attempt": attempt + 1})
            time.sleep(0.005 * (2**attempt))
    raise Conflict("Het dossier werd tegelijk door iemand anders gewijzigd; probeer opnieuw.")


def _ensure_schema(env: dict[str, str]) -> None:
    """Create the service's schema when missing (the library creates tables, not schemas)."""
    with psycopg.connect(
        host=env["POSTGRES_HOST"],
        port=int(env["POSTGRES_PORT"]),
        user=env["POSTGRES_USER"],
        password=env.get("POSTGRES_PASSWORD") or None,
        dbname=env["POSTGRES_DBNAME"],
        autocommit=True,
        connect_timeout=10,
    ) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_namespace WHERE nspname = %s", (env["POSTGRES_SCHEMA"],)
        ).fetchone()
        if not exists:
            # Another replica may create it at the same moment.
            with contextlib.suppress(psycopg.errors.UniqueViolation):
                conn.execute(
                    SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(env["POSTGRES_SCHEMA"]))
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
