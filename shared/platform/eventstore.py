"""Event-store wiring shared by every service: the pydantic domain events of
``shared.platform.model`` stored by the eventsourcing library.

Each service is one eventsourcing ``Application`` on PostgreSQL, in its own schema (its use
cases also run on the library's in-memory store, for their tests: see ``ServiceApplication``).
Domain events are frozen pydantic models, validated when they are loaded, evolved with
``class_version`` and ``upcast_vN_vM`` static methods. ``WeerbaarRecorder`` adds two things to
the library's recorder, both written in the same transaction as the events:

- an *inbox* row ``(consumer, message_id)``: a message that was already processed cannot have its
  effect twice, whichever replica handles it (the primary key refuses the second insert);
- *side statements*: rows of the service's own tables (an idempotency key, a deadline index) that
  must commit or fail together with the events.

Personal data is encrypted at rest, field by field, with a key per dossier
(``shared.platform.keys``): an event class names its personal fields in ``personal`` (dotted paths
into its JSON, ``*`` for every item of a list), and the mapper stores each of those values as
``{"enc": <key id>, "ct": <base64 AES-GCM>}``. Everything else (topic, ids, versions, timestamps,
who acted, decisions) stays readable, so the dossier's skeleton survives forgetting and replays
still run. Once the dossier's key is destroyed, decoding puts the field's placeholder in its place
(``VERGETEN``, or leaves the field out when the placeholder is ``OMIT``, for models that must
validate without it) and the event's ``vergeten`` is True.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Final, TypeVar
from uuid import UUID, uuid5

import psycopg
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    IntegrityError,
    InterfaceError,
    Mapper,
    OperationalError,
    StoredEvent,
    Transcoder,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import get_topic, resolve_topic, retry
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier
from psycopg_pool import ConnectionPool
from pydantic_core import from_json

from shared.platform.errors import Conflict, NietGevonden
from shared.platform.keys import (
    DataKeys,
    DossierKeys,
    KeyEncryptionKeys,
    KeyRing,
    KeyStoreError,
    MemoryKeys,
    open_sealed,
    seal,
)
from shared.platform.model import OMIT, VERGETEN, Aggregate, DomainEvent
from shared.platform.telemetry import current_traceparent, metrics_for, watch_event_store
from shared.platform.unitofwork import DuplicateKey, IdempotencyKeys, SideWrite, Statement

log = logging.getLogger(__name__)

EVENT_ID_NAMESPACE = UUID("3b0f6a0e-6c55-4f6e-9a7e-6f0d5b1f2a11")


def public_event_id(service: str, originator_id: UUID, originator_version: int, index: int) -> str:
    """The stable CloudEvent id of the index-th public event mapped from one stored event."""
    return str(uuid5(EVENT_ID_NAMESPACE, f"{service}/{originator_id}/{originator_version}/{index}"))


class PydanticMapper(Mapper[UUID]):
    """Stores ``model_dump(mode="json")`` and rebuilds events with the model (so they validate).

    With a key ring, the personal fields are encrypted with the dossier's data key; without one
    (tests of logic only) they are stored as they are.
    """

    def __init__(self, transcoder: Transcoder, *, keys: KeyRing | None = None, **kwargs: Any):
        super().__init__(transcoder, **kwargs)
        self.keys = keys

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        """Serialise one domain event."""
        assert isinstance(domain_event, DomainEvent)
        state = domain_event.model_dump(mode="json")
        if state.get("traceparent") is None:
            state.pop("traceparent", None)  # events recorded outside any span stay as they were
        if self.keys is not None and domain_event.personal:
            seal_personal(state, domain_event, self.keys)
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
        """Deserialise (decrypting, upcasting old versions) and validate one stored event."""
        return decode_event(stored_event.topic, self._plain(stored_event.state), self.keys)

    def to_domain_events(
        self, stored_events: Sequence[StoredEvent], *, skeleton: bool = False
    ) -> list[DomainEvent]:
        """Deserialise a batch, reading the data keys it needs in one lookup.

        One lookup per event would be one database round trip per dossier; reading a batch's
        keys together makes decoding a batch a single round trip. With ``skeleton`` no key is
        read and nothing decrypted: every personal value reads as its placeholder, as after
        forgetting (the relay's path: a public event carries nothing personal, so the gateways
        map a skeleton to the same public events; ``tests/integration/test_gateway_skeleton.py``
        holds them to that).
        """
        plain = [(stored.topic, self._plain(stored.state)) for stored in stored_events]
        keys: KeyRing | None = self.keys
        if skeleton:
            keys = NO_KEYS
        else:
            prefetch = getattr(keys, "for_reading_many", None)
            if prefetch is not None:
                key_ids = {
                    UUID(m.decode()) for _, data in plain for m in _SEALED_KEY_ID.findall(data)
                }
                keys = prefetch(key_ids)
        return [decode_event(topic, data, keys) for topic, data in plain]

    def _plain(self, data: bytes) -> bytes:
        if self.cipher:
            data = self.cipher.decrypt(data)
        if self.compressor:
            data = self.compressor.decompress(data)
        return data


class _NoKeys:
    """A key ring that has no key: every personal value decodes as its placeholder."""

    def for_writing(self, aanvraag_id: UUID) -> Any:
        raise KeyStoreError("a skeleton key ring cannot write")

    def for_reading(self, key_id: UUID) -> bytes | None:
        return None


NO_KEYS: Final[KeyRing] = _NoKeys()


#: The key id of a sealed personal value in stored JSON (see ``seal_personal``).
_SEALED_KEY_ID = re.compile(rb'"enc":"([0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12})"')


def decode_event(topic: str, data: bytes, keys: KeyRing | None = None) -> DomainEvent:
    """Rebuild a domain event from its topic and stored JSON, upcasting old class versions.

    Encrypted personal fields are decrypted with ``keys``; a field whose key was destroyed gets
    its placeholder and the event is marked ``vergeten``.
    """
    cls = resolve_topic(topic)
    if not (isinstance(cls, type) and issubclass(cls, DomainEvent)):
        raise TypeError(f"topic {topic} is not a domain event")
    state: dict[str, Any] = from_json(data)  # pydantic-core's parser: about half json.loads's time
    forgotten = False
    if b'"enc":' in data:
        forgotten = _open_personal(state, cls, keys)
    version = int(state.pop("class_version", 1))
    while version < cls.class_version:
        upcast: Callable[[dict[str, Any]], dict[str, Any]] = getattr(
            cls, f"upcast_v{version}_v{version + 1}"
        )
        state = upcast(state)
        version += 1
    event = cls.model_validate(state)
    if forgotten:
        event._vergeten = True
    return event


# --- personal fields -----------------------------------------------------------------------------


def _aad(state: Mapping[str, Any], path: str) -> bytes:
    # Binds a ciphertext to its event and field: moved elsewhere it does not decrypt.
    return f"{state['originator_id']}|{state['originator_version']}|{path}".encode()


def _matches(
    node: Any, parts: Sequence[str], path: tuple[str, ...] = ()
) -> Iterator[tuple[Any, str | int, str]]:
    """(container, key, dotted path) of every value a path pattern names."""
    head, rest = parts[0], parts[1:]
    if head == "*":
        keys: Iterable[str | int] = range(len(node)) if isinstance(node, list) else ()
    else:
        keys = (head,) if isinstance(node, dict) and head in node else ()
    for key in keys:
        here = (*path, str(key))
        if rest:
            yield from _matches(node[key], rest, here)
        else:
            yield node, key, ".".join(here)


def seal_personal(state: dict[str, Any], event: DomainEvent, keys: KeyRing) -> None:
    """Replace the event's personal values in its JSON state by their ciphertexts (in place)."""
    found = [
        match
        for pattern in event.personal
        for match in _matches(state, pattern.split("."))
        if match[0][match[1]] is not None
    ]
    if not found:
        return  # nothing personal in this one: no key needed (nor refused)
    data_key = keys.for_writing(event.dossier_id())
    for container, key, path in found:
        plaintext = json.dumps(container[key], separators=(",", ":"), sort_keys=True).encode()
        sealed = seal(data_key.key, plaintext, _aad(state, path))
        container[key] = {
            "enc": str(data_key.key_id),
            "ct": base64.b64encode(sealed).decode("ascii"),
        }


def _is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and value.keys() == {"enc", "ct"}


@functools.lru_cache(maxsize=4096)
def _placeholder(cls: type[DomainEvent], path: str) -> object:
    # Cached: every forgotten event of a class asks for the same few paths (the relay decodes
    # each event without keys, so it asks for every personal value of every event it publishes).
    parts = path.split(".")
    for pattern, placeholder in cls.personal.items():
        wanted = pattern.split(".")
        if len(wanted) == len(parts) and all(
            w == p or (w == "*" and p.isdigit()) for w, p in zip(wanted, parts, strict=True)
        ):
            return placeholder
    return VERGETEN


def _open_personal(state: dict[str, Any], cls: type[DomainEvent], keys: KeyRing | None) -> bool:
    """Decrypt the sealed values of a stored state in place; True when some key was destroyed."""
    found: dict[str, bytes | None] = {}  # by the stored key id, parsed once per key
    forgotten = False

    def visit(node: Any, path: str) -> None:
        nonlocal forgotten
        items: Iterable[tuple[str | int, Any]]
        items = list(node.items()) if isinstance(node, dict) else list(enumerate(node))
        for key, value in items:
            if isinstance(value, list) or (isinstance(value, dict) and not _is_sealed(value)):
                visit(value, f"{path}{key}.")
                continue
            if not isinstance(value, dict):
                continue  # a plain value (the common case: the walk passes it by)
            if keys is None:
                raise KeyStoreError("an encrypted event was read without a key ring")
            key_id = value["enc"]
            if key_id not in found:
                found[key_id] = keys.for_reading(UUID(key_id))
            data_key = found[key_id]
            dotted = f"{path}{key}"
            if data_key is None:
                forgotten = True
                placeholder = _placeholder(cls, dotted)
                if placeholder is OMIT and isinstance(node, dict):
                    del node[key]
                else:
                    node[key] = VERGETEN if placeholder is OMIT else placeholder
            else:
                sealed = base64.b64decode(value["ct"])
                node[key] = json.loads(open_sealed(data_key, sealed, _aad(state, dotted)))

    visit(state, "")
    return forgotten


class _NoTranscoder(Transcoder):
    """The pydantic mapper serialises by itself; the library's transcoder is never used."""

    def encode(self, obj: Any) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Once:
    """An ``Idempotency-Key`` of a command: the first answer (``result``) is remembered with its
    events; a repeat with the same body gets it back (``Answered``)."""

    keys: IdempotencyKeys
    scope: str
    key: str
    digest: str
    #: The answer to remember: as it is, or made from the aggregate the command left.
    result: dict[str, Any] | Callable[[Any], dict[str, Any]]

    def answer(self, after: Any) -> dict[str, Any]:
        """The answer remembered for a command that left ``after``."""
        return self.result(after) if callable(self.result) else self.result

    def earlier(self) -> dict[str, Any] | None:
        """The first answer to this key, or None (422 when it came with another body)."""
        return self.keys.earlier(self.scope, self.key, self.digest)


@dataclass(frozen=True)
class Answered:
    """A command that was answered before under the same ``Idempotency-Key``: its first answer."""

    result: dict[str, Any]


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
        self._current_xid = SQL("SELECT pg_current_xact_id()::text AS xid")

    # Fewer attempts than the library's ten: while the database is down a command should soon
    # answer 503 (the client retries), not hold its request for ten connection timeouts. A
    # commit in doubt is not among the retried errors: repeating it could apply it twice.
    @retry((InterfaceError, OperationalError), max_attempts=3, wait=0.2)
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Insert in one pipelined transaction; a constraint violation is raised as itself.

        The library's version catches the violation and then commits; when psycopg hands the
        violation back before the sync point (it reads results while it is still sending), the
        pipeline is still aborted at that commit and a "pipeline aborted" error replaces the
        violation, which the library then retries ten times. Here the pipeline is synced after a
        failure, so the transaction ends as a rollback and the violation itself is raised; the
        connection is then closed, so no stale prepared-statement state outlives the failure.

        When the connection is lost after COMMIT was sent, the transaction may or may not have
        committed. Its id, read in the same pipeline, is then looked up on a new connection
        (``pg_xact_status``): committed is a success, aborted is retried, and when the database
        cannot tell (it is down) ``CommitInDoubt`` is raised, never a blind retry.
        """
        failure: psycopg.Error | None = None
        notification_ids: Sequence[int] | None = None
        xid: str | None = None
        committing = False
        try:
            with self.datastore.get_connection() as conn:
                with conn.pipeline() as pipeline, conn.transaction():
                    try:
                        with conn.cursor() as xid_curs, conn.cursor() as curs:
                            xid_curs.execute(self._current_xid, prepare=True)
                            self._insert_events(curs, stored_events, **kwargs)
                            if stored_events:
                                self._insert_stored_events(curs, stored_events, **kwargs)
                                pipeline.sync()
                                notification_ids = self._fetch_ids_after_insert_events(
                                    curs, stored_events, **kwargs
                                )
                            row = xid_curs.fetchone()
                            xid = None if row is None else str(row["xid"])
                    except psycopg.Error as exc:
                        failure = exc
                        # The statements queued behind the failed one report "pipeline
                        # aborted" at this sync; what matters is the failure already in hand.
                        with contextlib.suppress(psycopg.Error):
                            pipeline.sync()
                    committing = failure is None
                if failure is not None:
                    # Statements the server skipped in the aborted pipeline may be counted as
                    # prepared on this connection ("prepared statement … does not exist" on
                    # its next use): it goes back to the pool closed, and the pool makes a
                    # fresh one.
                    conn.close()
                    raise failure
        except (InterfaceError, OperationalError) as exc:
            if not committing or xid is None:
                raise  # lost before COMMIT was sent: the server rolled it back
            outcome = self.transaction_outcome(xid)
            log.warning(
                "connection lost while committing",
                extra={"schema": self.schema, "outcome": outcome or "unknown"},
            )
            if outcome == "committed":
                return notification_ids
            if outcome == "aborted":
                raise
            raise CommitInDoubt(xid) from exc
        return notification_ids

    def transaction_outcome(
        self, xid: str, *, attempts: int = 5, wait_s: float = 0.2
    ) -> str | None:
        """``committed``, ``aborted`` or None when the database cannot tell (unreachable, or
        the transaction still in progress after a few looks)."""
        connect = self.datastore.pool.kwargs
        assert isinstance(connect, dict)
        for attempt in range(attempts):
            if attempt:
                time.sleep(wait_s)
            try:
                with psycopg.connect(**connect, autocommit=True, connect_timeout=2) as conn:
                    row = conn.execute(
                        "SELECT pg_xact_status(%s::xid8) AS status", (xid,)
                    ).fetchone()
            except psycopg.Error:
                continue
            status = None if row is None else row["status"]
            if status in ("committed", "aborted"):
                return str(status)
        return None

    def _insert_events(
        self,
        curs: psycopg.Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> None:
        inbox: tuple[str, str] | None = kwargs.get("inbox")
        if inbox is not None:
            curs.execute(self._insert_inbox, inbox, prepare=True)
        statements: Iterable[SideWrite] = kwargs.get("statements", ())
        for statement in statements:
            if not isinstance(statement, Statement):
                raise TypeError(f"not a SQL statement: {statement!r} (an in-memory write?)")
            curs.execute(statement.sql, statement.params)
        super()._insert_events(curs, stored_events, **kwargs)


@dataclass
class RequestWrites:
    """Whether the request being served has committed events (set by ``ServiceApplication.record``;
    one object per request, shared with the worker thread a sync endpoint runs in)."""

    recorded: bool = False


#: The current request's writes (``shared.platform.http`` sets one per request; None outside
#: requests).
request_writes: ContextVar[RequestWrites | None] = ContextVar(
    "weerbaar_request_writes", default=None
)


def note_recorded() -> None:
    """Mark the current request as having committed events: a later database failure of the
    same request then answers "outcome unknown", not "nothing happened"."""
    if (writes := request_writes.get()) is not None:
        writes.recorded = True


class CommitInDoubt(Exception):
    """The connection was lost after COMMIT was sent and the database could not yet say whether
    the transaction committed. Not retried blindly (that could apply a command twice): an API
    answers 503 ``uitkomst_onbekend``, a consumer leaves the message to be redelivered (the
    inbox then tells whether it was applied)."""

    def __init__(self, xid: str):
        super().__init__(f"commit of transaction {xid} in doubt")
        self.xid = xid


class AlreadyProcessed(Exception):
    """The inbox already holds this message: its effect was applied before."""


class ConcurrencyConflict(Exception):
    """Another writer changed the aggregate first; the command can be retried."""


def _constraint_of(exc: BaseException) -> str | None:
    cause = exc.__cause__
    diag = getattr(cause, "diag", None)
    return getattr(diag, "constraint_name", None)


TResult = TypeVar("TResult")
TAgg = TypeVar("TAgg", bound=Aggregate)


#: The in-memory store (the library's, with an inbox): ``PERSISTENCE_MODULE`` for use-case tests
#: without a server. Named, not imported: the in-memory forms build on this module.
IN_MEMORY: Final = "shared.platform.memory:MemoryFactory"

#: Rebuilds an aggregate from its events (None before its first), as the library's repository
#: calls it.
Projector = Callable[[TAgg | None, Iterable[Any]], TAgg | None]


class ServiceApplication(Application[UUID]):
    """One service's event-sourced application: its use cases, on the store the environment names.

    In every process that store is PostgreSQL (schema = service name), with the parts the library
    has not (``PostgresParts``: the data keys of personal fields, the service's own tables). With
    ``PERSISTENCE_MODULE`` = ``IN_MEMORY`` the same use cases run on the library's in-memory
    store (``shared.platform.memory.MemoryRecorder``: the inbox and the concurrency check as
    PostgreSQL has them), which is how their tests run in milliseconds; personal fields are then
    kept as they are (there is no key store) and nothing else of PostgreSQL is there.
    """

    service: ClassVar[str]
    #: The service's own tables (read models, indexes), created at start when missing.
    ddl: ClassVar[Sequence[str]] = ()

    def __init__(
        self, env: dict[str, str], *, publication_check: Callable[[DomainEvent], None]
    ) -> None:
        #: Builds and validates the public form of an event, raising when it has none the
        #: contract accepts (``shared.platform.relay.PublicationCheck`` with the service's gateway):
        #: ``record`` calls it on every event before anything is stored, so every committed
        #: event can be published. Required, so no way of building an application (the
        #: runtime, a command-line tool, a test) records without it.
        self.publication_check = publication_check
        #: Steps that record what was counted and is due (the anonymous refusals of ended
        #: windows, ``shared.platform.access.Refusals``): the runtime's workers run them
        #: periodically.
        self.pending_records: list[Callable[..., object]] = []
        self._postgres: PostgresParts | None = None
        if env.get("PERSISTENCE_MODULE") == IN_MEMORY:
            super().__init__(env)
            # Personal fields sealed as in PostgreSQL, with keys that live as long as the store.
            self._memory_keys = MemoryKeys()
            assert isinstance(self.mapper, PydanticMapper)
            self.mapper.keys = self._memory_keys
            return
        # Several processes of one service (roles, replicas) start at once: the library's
        # CREATE TABLE IF NOT EXISTS races with itself in PostgreSQL (a unique violation in the
        # catalog), so the creating is done one process at a time.
        with _creating_tables(env):
            super().__init__(env)
            recorder = self.recorder
            assert isinstance(recorder, WeerbaarRecorder)
            self._postgres = PostgresParts(self.service, recorder, env)
            assert isinstance(self.mapper, PydanticMapper)
            self.mapper.keys = self._postgres.keys
            if self.ddl:
                self._postgres.apply_ddl(self.ddl, locked=True)
        watch_event_store(self)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The application's name decides its table names: every subclass of a service's
        # application (e.g. one with extra read-model tables) must use the service's tables.
        if hasattr(cls, "service"):
            cls.name = cls.service

    # --- the store -------------------------------------------------------------------------------

    @property
    def in_memory(self) -> bool:
        """Whether this application runs on the in-memory store (use-case tests)."""
        return self._postgres is None

    @property
    def postgres(self) -> PostgresParts:
        """The PostgreSQL parts; an error on the in-memory store, which has none."""
        if self._postgres is None:
            raise RuntimeError(f"{self.service} runs on the in-memory store: no PostgreSQL here")
        return self._postgres

    @property
    def store(self) -> WeerbaarRecorder:
        """The PostgreSQL recorder (inbox, side statements, commit-in-doubt handling)."""
        return self.postgres.recorder

    @property
    def datastore(self) -> PostgresDatastore:
        """The service's connection pool and schema."""
        return self.postgres.recorder.datastore

    @property
    def keys(self) -> DataKeys:
        """The data keys of personal fields (in memory: ``MemoryKeys``)."""
        if self._postgres is None:
            return self._memory_keys
        return self._postgres.keys

    def construct_mapper(self) -> Mapper[UUID]:
        """Use the pydantic mapper."""
        return PydanticMapper(transcoder=_NoTranscoder())

    def create_tables(self, statements: Sequence[str]) -> None:
        """Run ``CREATE … IF NOT EXISTS`` statements (``{schema}`` = the service) under the
        service's DDL lock: processes that start at once would otherwise collide. Nothing to do
        on the in-memory store (it has no tables)."""
        if self._postgres is not None:
            self._postgres.apply_ddl(statements, locked=False)

    # --- use cases -------------------------------------------------------------------------------

    def record(
        self,
        *events: DomainEvent,
        inbox: tuple[str, str] | None = None,
        statements: Sequence[SideWrite] = (),
    ) -> None:
        """Append events atomically with the unit of work's other writes: an ``inbox`` entry
        ``(consumer, message_id)`` (idempotency: ``AlreadyProcessed`` when it is there already)
        and the read model's side ``statements``.

        Each event gets the ``traceparent`` of the current span, unless it carries one already.
        """
        traceparent = current_traceparent()
        if traceparent is not None:
            update = {"traceparent": traceparent}
            events = tuple(
                event if event.traceparent else event.model_copy(update=update) for event in events
            )
        for event in events:
            self.publication_check(event)
        try:
            self.save(*events, inbox=inbox, statements=statements)
        except IntegrityError as exc:
            constraint = _constraint_of(exc)
            if inbox is not None and constraint == "inbox_pkey":
                raise AlreadyProcessed(inbox[1]) from None
            if constraint is not None and constraint.endswith("_events_pkey"):
                raise ConcurrencyConflict(str(events[0].originator_id)) from None
            raise DuplicateKey(constraint) from exc
        note_recorded()
        appended = metrics_for(self.service).events_appended
        for event in events:
            appended.labels(self.service, type(event).__name__).inc()

    def change(
        self,
        aggregate_id: UUID,
        decide: Callable[[TAgg | None], Sequence[DomainEvent]],
        *,
        project: Projector[TAgg],
        inbox: tuple[str, str] | None = None,
        statements: Callable[[TAgg | None, TAgg | None], Sequence[SideWrite]] | None = None,
        new: bool = False,
    ) -> TAgg | None:
        """One use case: load the aggregate, ``decide`` its new events, record them (with the
        ``inbox`` entry and the ``statements`` of the change, from the states before and after)
        and return the new state; the aggregate as it was when nothing is decided (then the
        inbox entry is not recorded either: a redelivery decides the same nothing). ``new``: the
        id was just made, there is nothing to load.

        When another writer came first the whole of it runs again on what is there now, so
        ``decide`` must have no effect but its events.
        """
        changed = self._changing(aggregate_id, decide, project, inbox, statements, None, new)
        assert not isinstance(changed, Answered)
        return changed

    def change_once(
        self,
        once: Once,
        aggregate_id: UUID,
        decide: Callable[[TAgg | None], Sequence[DomainEvent]],
        *,
        project: Projector[TAgg],
        statements: Callable[[TAgg | None, TAgg | None], Sequence[SideWrite]] | None = None,
        new: bool = False,
    ) -> TAgg | Answered | None:
        """``change`` under an ``Idempotency-Key``: the first answer is remembered with the
        events; a repeat with the same body is ``Answered`` with it, whether it comes after the
        first (looked up on every attempt: after a conflict the winner may have been this key)
        or at the same moment (the key's constraint refuses the second, which then reads the
        first's answer). Nothing decided, nothing remembered: a repeat decides again.
        """
        try:
            return self._changing(aggregate_id, decide, project, None, statements, once, new)
        except DuplicateKey as exc:
            if exc.constraint != once.keys.constraint:
                raise
            earlier = once.earlier()
            if earlier is None:
                raise
            return Answered(earlier)

    def _changing(
        self,
        aggregate_id: UUID,
        decide: Callable[[TAgg | None], Sequence[DomainEvent]],
        project: Projector[TAgg],
        inbox: tuple[str, str] | None,
        statements: Callable[[TAgg | None, TAgg | None], Sequence[SideWrite]] | None,
        once: Once | None,
        new: bool,
    ) -> TAgg | Answered | None:
        def command() -> TAgg | Answered | None:
            if once is not None and (earlier := once.earlier()) is not None:
                return Answered(earlier)
            before = None if new else self.load_or_none(aggregate_id, project)
            events = list(decide(before))
            if not events:
                return before
            after = project(before, events)
            writes = [] if statements is None else list(statements(before, after))
            if once is not None:
                answer = once.answer(after)
                writes.insert(0, once.keys.remember(once.scope, once.key, once.digest, answer))
            self.record(*events, inbox=inbox, statements=writes)
            return after

        return self.retrying(command)

    def retrying(self, command: Callable[[], TResult], attempts: int = 5) -> TResult:
        """Run a get → decide → record command, retrying when another writer came first."""
        return retry_on_conflict(command, attempts)

    def load_or_none(self, aggregate_id: UUID, projector: Projector[TAgg]) -> TAgg | None:
        """An aggregate rebuilt from its events, or None when it has none."""
        try:
            aggregate: TAgg = self.repository.get(aggregate_id, projector_func=projector)
        except AggregateNotFoundError:
            return None
        return aggregate

    def load(self, aggregate_id: UUID, projector: Projector[TAgg], not_found: str) -> TAgg:
        """An aggregate rebuilt from its events; 404 (with ``not_found``) when it has none."""
        aggregate = self.load_or_none(aggregate_id, projector)
        if aggregate is None:
            raise NietGevonden(not_found)
        return aggregate

    def max_notification_id(self) -> int:
        """The id of the last event in this service's log (0 when empty)."""
        return self.recorder.max_notification_id() or 0

    def close(self) -> None:
        """Close the event store's connections and the key lookups'."""
        if self._postgres is not None:
            self._postgres.close()
        super().close()


class PostgresParts:
    """What a service's application has in PostgreSQL besides the library's recorder: the data
    keys of personal fields (in the service's schema, apart from the events) and the service's
    own tables."""

    def __init__(self, service: str, recorder: WeerbaarRecorder, env: Mapping[str, str]) -> None:
        self.service = service
        self.recorder = recorder
        datastore = recorder.datastore
        # The data keys are looked up on every read (never cached, so forgetting takes effect at
        # once): on autocommit connections of their own, one round trip each.
        connect = datastore.pool.kwargs
        assert isinstance(connect, dict)
        self._key_reads: ConnectionPool[psycopg.Connection[DictRow]] = ConnectionPool(
            kwargs={**connect, "autocommit": True},
            connection_class=psycopg.Connection[DictRow],
            min_size=0,  # connections are made on first use
            max_size=4,
            name=f"{service}-keys",
            open=True,
        )
        self.keys = DossierKeys(
            lambda: datastore.transaction(commit=True),
            service,
            KeyEncryptionKeys(Path(env.get("WEERBAAR_KEK_DIR") or ".data/secrets")),
            read=self._key_reads.connection,
        )
        try:
            self.keys.create_table()
        except Exception:
            self._key_reads.close()
            raise

    def apply_ddl(self, statements: Sequence[str], *, locked: bool) -> None:
        """Apply the service's own DDL once per version of it.

        A process that finds this set of statements recorded (``ddl_applied``, by digest) runs
        none of them: ``CREATE INDEX IF NOT EXISTS`` locks its table even when the index is
        there, and a restarted process that ran several in one transaction deadlocked with the
        live writers of those tables and died (found by the long crash run). A new set is applied
        one statement per transaction, so no lock is held across statements; ``locked``: the
        caller holds the service's DDL lock already (otherwise each statement takes it).
        """
        datastore = self.recorder.datastore
        rendered = [statement.replace("{schema}", self.service) for statement in statements]
        digest = hashlib.sha256("\n".join(rendered).encode()).hexdigest()
        marker = Identifier(self.service, "ddl_applied")
        with datastore.transaction(commit=True) as curs:
            if not locked:
                curs.execute("SELECT pg_advisory_xact_lock(%s)", (ddl_lock_key(self.service),))
            curs.execute(
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} (digest text PRIMARY KEY,"
                    " applied_at timestamptz NOT NULL DEFAULT now())"
                ).format(marker)
            )
            curs.execute(SQL("SELECT 1 FROM {} WHERE digest = %s").format(marker), (digest,))
            if curs.fetchone() is not None:
                return
        for statement in rendered:
            with datastore.transaction(commit=True) as curs:
                if not locked:
                    curs.execute("SELECT pg_advisory_xact_lock(%s)", (ddl_lock_key(self.service),))
                curs.execute(statement)
        with datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL("INSERT INTO {} (digest) VALUES (%s) ON CONFLICT DO NOTHING").format(marker),
                (digest,),
            )

    def close(self) -> None:
        """Close the key lookups' connections."""
        self._key_reads.close()


def retry_on_conflict(command: Callable[[], TResult], attempts: int = 5) -> TResult:
    """Run a command again while it loses a concurrency conflict; 409 when it keeps losing."""
    for attempt in range(attempts):
        try:
            return command()
        except ConcurrencyConflict:
            log.info("concurrency conflict, retrying", extra={"attempt": attempt + 1})
            time.sleep(0.005 * (2**attempt))
    raise Conflict("Het dossier werd tegelijk door iemand anders gewijzigd; probeer opnieuw.")


def ddl_lock_key(schema: str) -> int:
    """The advisory lock that lets one process at a time create a service's tables."""
    digest = hashlib.sha256(f"weerbaar-ddl:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def _creating_tables(env: dict[str, str]) -> Iterator[None]:
    """Hold the service's DDL lock (one process at a time) and create its schema when missing
    (the library creates tables, not schemas)."""
    schema = env["POSTGRES_SCHEMA"]
    key = ddl_lock_key(schema)
    with psycopg.connect(
        host=env["POSTGRES_HOST"],
        port=int(env["POSTGRES_PORT"]),
        user=env["POSTGRES_USER"],
        password=env.get("POSTGRES_PASSWORD") or None,
        dbname=env["POSTGRES_DBNAME"],
        autocommit=True,
        connect_timeout=10,
    ) as conn:
        # A session lock: released when this connection closes, also if the process dies.
        conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
        if not exists:
            # Another replica may create it at the same moment.
            with contextlib.suppress(psycopg.errors.UniqueViolation):
                conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))
        yield
