"""The dossier projection's rebuild (``weerbaar replay``, the command in
``services.intake.ops.replay``): rebuild intake's dossier projection from scratch, then switch
over to it.

**Sources.** By default the system of record: every service's event log in PostgreSQL. Each log
is decoded by its own service (``python -m services.<name> --export-public N``, see
``shared.platform.replay``) with the gateway its relay uses, so the rebuild sees the same CloudEvent
ids and envelopes the stream carries, and no service imports another. ``--from stream`` reads the
``WEERBAAR`` stream from sequence 1 instead (what an integrator would see).

**Target.** A fresh schema (``intake_replay``) with the projection's own tables (the same DDL),
plus the rebuild's bookkeeping: ``replay_positions`` (how far each source is read) and
``replay_dirty`` (dossiers with events not folded yet).

**Steps.**

1. *Load*: per source, from its recorded position, in batches; a batch's rows and the source's new
   position commit in one transaction, so an interrupted run (Ctrl-C, a crash, ``--max-events``)
   continues where its last batch committed and never stores an event twice. The logs' exports
   are read side by side (``shared.platform.replay.SideBySide``), their batches committed as they
   arrive: each batch carries its own log's position, so the logs may interleave.
2. *Fold*: every dossier that got events is folded from all its events (the projection's own
   ``fold``) and leaves ``replay_dirty`` in the same transaction.
3. *Switch* (unless ``--no-switch``): with the live tables locked (the live consumer waits), check
   that every source is read to its end; then, in that one transaction, move the live tables to
   ``intake_previous`` (kept for comparison or rollback) and the rebuilt ones to ``intake``.
   When events arrived meanwhile, load and fold again (a few rounds at most); when the rebuild
   still lags, the live read model stays in place and the command says so (exit 3).

Rows rebuilt from the event logs have no stream sequence; their ``stream_sequence`` holds the
event's place in its service's log (``notification_id * 64 + index``), as ``log_position`` does,
which orders events recorded together exactly as the relay published them. Rows rebuilt from the
stream keep their sequence and take the place from the relay's ``Weerbaar-Position`` header.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Generator, Mapping, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from functools import cache, partial
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

import nats
import psycopg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier

from services.intake.projections.dossier import (
    DDL,
    UITVOERING_SUBJECTS,
    copy_dossiers,
    fold_many,
    purge_destroyed,
    store_events,
)
from shared.contracts.envelope import CloudEvent
from shared.contracts.errors import InvalidCloudEvent, InvalidEvent, UnknownEventType
from shared.contracts.registry import from_cloudevent, subject_for
from shared.platform import rebuild
from shared.platform.rebuild import Progress, hash_contents
from shared.platform.relay import POSITION_HEADER, PositionHeader
from shared.platform.replay import Loaded, SideBySide, StoreExport
from shared.platform.settings import SERVICES, Settings

LIVE = "intake"
TARGET = "intake_replay"
PREVIOUS = "intake_previous"
TABLES = ("dossier_events", "dossiers", "uitvoering_events")
LOCK_ORDER = ("dossiers", "dossier_events", "uitvoering_events")
BATCH = 500
FOLD_CHUNK = 500
ROOT = Path(__file__).resolve().parents[3]

Source = Literal["store", "stream"]


@dataclass
class Outcome(rebuild.Outcome):
    """What one run of the rebuild did."""

    loaded: int = 0  # stored events (store) or stream messages (stream) read this run
    events: int = 0  # public events of a dossier added to the rebuilt projection
    folded: int = 0  # dossiers folded
    skipped: int = 0  # stream messages the live projection would not take either (invalid)
    positions: dict[str, int] = field(default_factory=dict)
    load_seconds: float = 0.0  # reading the sources and storing their events
    fold_seconds: float = 0.0  # folding the dossiers that got events

    def summary(self) -> str:
        skipped = f", skipped {self.skipped} invalid messages" if self.skipped else ""
        return (
            f"read {self.loaded} (in {self.load_seconds:.1f}s), added {self.events}"
            f" events, folded {self.folded} dossiers (in {self.fold_seconds:.1f}s){skipped}"
        )


def _ident(schema: str, table: str) -> Identifier:
    return Identifier(schema, table)


def _matches(subject_filters: Sequence[str], subject: str) -> bool:
    """Whether a NATS subject matches one of the filters (``*`` = one token)."""
    tokens = subject.split(".")
    return any(
        len(parts) == len(tokens) and all(p in ("*", t) for p, t in zip(parts, tokens, strict=True))
        for parts in _split_filters(tuple(subject_filters))
    )


@cache
def _split_filters(subject_filters: tuple[str, ...]) -> tuple[tuple[str, ...], ...]:
    # Split once, not once per event of a rebuild.
    return tuple(tuple(pattern.split(".")) for pattern in subject_filters)


def service_command(service: str) -> list[str]:
    """How to start a service's process (each decodes its own log)."""
    return [sys.executable, "-m", f"services.{service}"]


class Rebuild(rebuild.Rebuild[Outcome]):
    """One rebuild of the dossier projection into ``target``."""

    def __init__(
        self,
        settings: Settings,
        *,
        source: Source = "store",
        target: str = TARGET,
        progress: bool = True,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            {"conninfo": settings.database_url},
            live=LIVE,
            tables=TABLES,
            lock_order=LOCK_ORDER,  # the live consumer's order (dossiers first): no deadlock
            target=target,
            previous=PREVIOUS,
            progress=progress,
        )
        self.settings = settings
        self.env = dict(os.environ if env is None else env)
        self.source = source

    def outcome(self) -> Outcome:
        return Outcome()

    # --- bookkeeping ---------------------------------------------------------------------

    def ddl(self) -> Sequence[str]:
        return (
            *DDL,
            rebuild.POSITIONS_DDL,
            "CREATE TABLE IF NOT EXISTS {schema}.replay_dirty (aanvraag_id uuid PRIMARY KEY)",
        )

    def prepared(self, conn: psycopg.Connection[Any]) -> None:
        rows = conn.execute(
            SQL("SELECT source FROM {}").format(_ident(self.target, "replay_positions"))
        ).fetchall()
        others = {r[0] for r in rows} - set(self.sources())
        if others:
            raise SystemExit(
                f"weerbaar replay: {self.target} holds a rebuild from other sources "
                f"({', '.join(sorted(others))}); finish it with the same --from, or --restart"
            )

    def sources(self) -> tuple[str, ...]:
        return SERVICES if self.source == "store" else ("stream",)

    def positions(self, conn: psycopg.Connection[Any]) -> dict[str, int]:
        return rebuild.positions(conn, self.target, self.sources())

    def ends(self, conn: psycopg.Connection[Any]) -> dict[str, int]:
        """Where each source ends now."""
        if self.source == "stream":
            return {"stream": asyncio.run(_stream_last_sequence(self.settings))}
        return {service: rebuild.log_end(conn, service) for service in SERVICES}

    def remaining(
        self, conn: psycopg.Connection[Any], positions: dict[str, int], ends: dict[str, int]
    ) -> int:
        """How many stored events (or stream messages) are still to read."""
        if self.source == "stream":
            return max(ends["stream"] - positions["stream"], 0)
        return sum(rebuild.log_remaining(conn, s, positions[s], e) for s, e in ends.items())

    # --- the steps -----------------------------------------------------------------------

    def load(self, outcome: Outcome, budget: int | None) -> bool:
        """Read every source from its position (at most ``budget`` units), fold the dossiers
        that got events; whether every source is read to its end."""
        began = time.perf_counter()
        with self.connect() as conn:
            positions = self.positions(conn)
            ends = self.ends(conn)
            total = self.remaining(conn, positions, ends)
        bar = self.bar(total if budget is None else min(total, budget))
        # Only sources with something new get a reader; the services' exports start together.
        todo = [s for s in self.sources() if positions[s] < ends[s]]
        if self.source == "store" and todo:
            # Every export decodes its log while this process stores what came first; a
            # batch commits with its own log's position, so the logs interleave freely.
            started: list[StoreExport] = []
            try:
                for source in todo:
                    started.append(
                        StoreExport(
                            self.env, source, positions[source], BATCH, command=service_command
                        )
                    )
            except BaseException:
                for export in started:
                    export.close()
                raise
            exports = SideBySide(started, BATCH)
            try:
                with self.connect() as conn:
                    rebuild.read_side_by_side(
                        exports,
                        partial(self._commit_batch, outcome=outcome, conn=conn),
                        bar,
                        budget,
                    )
            finally:
                exports.close()  # stops the exports a budget left unread
        for source in todo if self.source == "stream" else ():
            if budget is not None and budget <= 0:
                break
            read = rebuild.read_batches(
                source,
                _stream_batches(self.settings, positions[source]),
                partial(self._commit_batch, source, outcome=outcome),
                bar,
                budget,
            )
            if budget is not None:
                budget -= read
        if bar is not None:
            bar.finish()
        folding = time.perf_counter()
        outcome.load_seconds += folding - began
        self._fold(outcome)
        outcome.fold_seconds += time.perf_counter() - folding
        with self.connect() as conn:
            positions = self.positions(conn)
            ends = self.ends(conn)
        outcome.positions = positions
        outcome.complete = all(positions[s] >= ends[s] for s in self.sources())
        return outcome.complete

    def _commit_batch(
        self,
        source: str,
        batch: Sequence[Loaded],
        outcome: Outcome,
        conn: psycopg.Connection[Any] | None = None,
    ) -> None:
        """A batch's events, the dossiers they dirty and the source's new position, in one
        transaction and a few statements (not a few per event); on ``conn`` when given (a
        connection for the whole load), else on a connection of its own."""
        rows: list[tuple[Any, ...]] = []
        execution: list[tuple[str, UUID, str]] = []
        for loaded in batch:
            outcome.loaded += 1
            for sequence, envelope in loaded.envelopes:
                try:
                    event = from_cloudevent(envelope)
                except (UnknownEventType, InvalidEvent):
                    outcome.skipped += 1  # the live consumer dead-letters it
                    continue
                if event.aanvraag_id is None:
                    continue  # concerns no one dossier: the projection keeps none
                text = envelope.to_json().decode()
                place = loaded.log_position if self.source == "stream" else sequence
                rows.append(
                    (
                        envelope.id,
                        event.aanvraag_id,
                        envelope.type,
                        envelope.time,
                        sequence,
                        place,
                        text,
                    )
                )
                if _matches(UITVOERING_SUBJECTS, subject_for(event)):
                    execution.append((envelope.id, event.aanvraag_id, text))
        with (
            nullcontext(conn) if conn is not None else self.connect() as db,
            db.transaction(),
            db.cursor(row_factory=dict_row) as curs,
        ):
            if rows:
                stored = store_events(curs, _ident(self.target, "dossier_events"), rows)
                outcome.events += len(stored)
                curs.execute(
                    SQL("INSERT INTO {} SELECT unnest(%b::uuid[]) ON CONFLICT DO NOTHING").format(
                        _ident(self.target, "replay_dirty")
                    ),
                    (sorted({row[1] for row in rows}),),
                )
            if execution:
                curs.execute(
                    SQL(
                        "INSERT INTO {} (event_id, aanvraag_id, envelope)"
                        " SELECT * FROM unnest(%b::text[], %b::uuid[], %b::text[]::jsonb[])"
                        " ON CONFLICT (event_id) DO NOTHING"
                    ).format(_ident(self.target, "uitvoering_events")),
                    [list(column) for column in zip(*execution, strict=True)],
                )
            rebuild.set_position(curs, self.target, source, batch[-1].position)

    def _fold(self, outcome: Outcome) -> None:
        """Fold every dirty dossier from all its events, a chunk per transaction: the chunk's
        events read in one query, its old rows (an interrupted run's, or an earlier round's)
        replaced by one ``COPY`` of the new ones, and the chunk off the dirty list together."""
        events = _ident(self.target, "dossier_events")
        dossiers = _ident(self.target, "dossiers")
        dirty = _ident(self.target, "replay_dirty")
        uitvoering = _ident(self.target, "uitvoering_events")
        with self.connect() as conn:
            ids = [
                UUID(str(r[0]))
                for r in conn.execute(
                    SQL("SELECT aanvraag_id FROM {} ORDER BY aanvraag_id").format(dirty)
                ).fetchall()
            ]
        bar = Progress(len(ids), "dossiers") if self.progress and ids else None
        with self.connect() as conn:
            for start in range(0, len(ids), FOLD_CHUNK):
                chunk = ids[start : start + FOLD_CHUNK]
                with conn.transaction(), conn.cursor(row_factory=dict_row) as curs:
                    purge_destroyed(curs, chunk, events, uitvoering)
                    folded = fold_many(curs, chunk, events)
                    curs.execute(
                        SQL("DELETE FROM {} WHERE aanvraag_id = ANY(%s)").format(dossiers),
                        (chunk,),
                    )
                    row = curs.execute("SELECT now() AS now").fetchone()
                    assert row is not None
                    copy_dossiers(curs, folded, dossiers, row["now"])
                    curs.execute(
                        SQL("DELETE FROM {} WHERE aanvraag_id = ANY(%s)").format(dirty), (chunk,)
                    )
                outcome.folded += len(chunk)
                if bar is not None:
                    bar.advance(len(chunk))
        if bar is not None:
            bar.finish()

    def ready(self, conn: psycopg.Connection[Any], outcome: Outcome) -> bool:
        """Every source read to its end and every dossier folded."""
        positions = self.positions(conn)
        ends = self.ends(conn)
        dirty = conn.execute(
            SQL("SELECT count(*) FROM {}").format(_ident(self.target, "replay_dirty"))
        ).fetchone()
        if any(positions[s] < ends[s] for s in self.sources()) or (dirty and dirty[0]):
            return False
        outcome.positions = positions
        return True


# --- sources ---------------------------------------------------------------------------------


async def _stream_last_sequence(settings: Settings) -> int:
    nc = await nats.connect(servers=settings.nats_servers, name="weerbaar-replay")
    try:
        info = await nc.jetstream().stream_info(settings.stream_name)
        return int(info.state.last_seq)
    finally:
        await nc.close()


def _stream_batches(settings: Settings, after: int) -> Generator[list[Loaded], None, None]:
    """The WEERBAAR stream after sequence ``after``, up to its last message now."""
    loop = asyncio.new_event_loop()
    try:
        reader = loop.run_until_complete(_StreamReader.open(settings, after))
        try:
            while True:
                batch = loop.run_until_complete(reader.next_batch())
                if not batch:
                    return
                yield batch
        finally:
            loop.run_until_complete(reader.close())
    finally:
        loop.close()


class _StreamReader:
    """An ephemeral, unacknowledged pull consumer over the whole stream."""

    def __init__(self, nc: Any, sub: Any, end: int, after: int) -> None:
        self.nc = nc
        self.sub = sub
        self.end = end
        self.position = after

    @classmethod
    async def open(cls, settings: Settings, after: int) -> _StreamReader:
        nc = await nats.connect(servers=settings.nats_servers, name="weerbaar-replay")
        js = nc.jetstream()
        info = await js.stream_info(settings.stream_name)
        end = int(info.state.last_seq)
        sub = await js.pull_subscribe(
            "weerbaar.>",
            durable=None,
            stream=settings.stream_name,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                opt_start_seq=after + 1,
                ack_policy=AckPolicy.NONE,
                inactive_threshold=60.0,
            ),
        )
        return cls(nc, sub, end, after)

    async def next_batch(self) -> list[Loaded]:
        if self.position >= self.end:
            return []
        try:
            msgs = await self.sub.fetch(min(BATCH, self.end - self.position), timeout=5)
        except NatsTimeout:
            raise RuntimeError(f"the stream ends before sequence {self.end}") from None
        batch = []
        for msg in msgs:
            sequence = int(msg.metadata.sequence.stream)
            if sequence > self.end:
                break
            try:
                envelopes: list[tuple[int, CloudEvent]] = [
                    (sequence, CloudEvent.from_json(msg.data))
                ]
            except InvalidCloudEvent:
                envelopes = []  # the live consumer dead-letters it; nothing to project
            header = PositionHeader.read((msg.headers or {}).get(POSITION_HEADER))
            place = None if header is None else header.log_position
            batch.append(Loaded(sequence, envelopes, log_position=place))
            self.position = sequence
        return batch

    async def close(self) -> None:
        with suppress(Exception):
            await self.sub.unsubscribe()
        await self.nc.close()


# --- comparing read models -------------------------------------------------------------------

#: Per table: the columns that are content (wall-clock columns like received_at are not).
CONTENT = {
    "dossier_events": (
        "event_id",
        "aanvraag_id",
        "type",
        "time",
        "stream_sequence",
        "log_position",
        "envelope",
    ),
    "dossiers": (
        "aanvraag_id",
        "zichtbaar",
        "status",
        "organisatie_code",
        "contact_deadline",
        "deadline_verstreken",
        "ingediend_op",
        "view",
    ),
    "uitvoering_events": ("event_id", "aanvraag_id", "envelope"),
}


def contents(
    database_url: str, schema: str = LIVE, *, with_sequence: bool = True
) -> dict[str, list[tuple[str | None, ...]]]:
    """The projection's rows per table, as text, in a fixed order (wall-clock columns left out).

    ``with_sequence=False`` leaves out ``stream_sequence`` too, to compare a rebuild from the
    event logs (which has no stream sequences) with the live projection.
    """
    tables = {}
    with psycopg.connect(database_url) as conn:
        for table, columns in CONTENT.items():
            chosen = [c for c in columns if with_sequence or c != "stream_sequence"]
            tables[table] = [
                tuple(row)
                for row in conn.execute(
                    SQL("SELECT {} FROM {} ORDER BY {}").format(
                        SQL(", ").join(SQL("{}::text").format(Identifier(c)) for c in chosen),
                        _ident(schema, table),
                        Identifier(chosen[0]),
                    )
                )
            ]
    return tables


def content_hash(database_url: str, schema: str = LIVE, *, with_sequence: bool = True) -> str:
    """SHA-256 over the projection's ``contents``."""
    return hash_contents(contents(database_url, schema, with_sequence=with_sequence))
