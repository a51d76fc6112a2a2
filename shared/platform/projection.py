"""Read-model tables that are a function of one kind of aggregate, kept live and rebuilt alike.

A service declares an ``AggregateProjection``: its tables, the events that start the aggregate,
the aggregate's fold, and ``rows(aggregate)`` — the rows the tables hold for it. The **live**
read model is written by ``statements(before, after)`` in the transaction that records the
events (upserts of the rows that changed, deletes of rows that went); the **rebuild** folds every
aggregate of that kind from the service's own event log and inserts ``rows(aggregate)``. Both
sides go through the one ``rows`` function, so a rebuild can only differ from the live read model
when an event was recorded without its statements — which is what rebuilding is there to find.

A service's ``replay`` command (``weerbaar replay --projection <name>``) runs ``main``, on the
rebuild core (``shared.platform.rebuild``):

1. *Load*: aggregates in the order they were started (the notification id of their first
   event), up to a mark (the log's last notification id when the rebuild began), folded from
   their events up to that mark, a chunk per transaction together with the position reached. An
   interrupted run (Ctrl-C, a crash, ``--max-aggregates``) goes on from the last committed chunk.
2. *Catch up*: every aggregate with events after the mark is folded again (its rows replaced)
   and the mark moves to the log's end; repeated while the log grows.
3. *Switch* (unless ``--no-switch``): with the live tables locked (in the order writers take
   them) and then the event log (writers wait), the last events are folded in, the live tables
   move to ``<service>_previous`` and the rebuilt ones into the service's schema, in one
   transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Composed, Identifier

from shared.platform import rebuild
from shared.platform.chain import events_table
from shared.platform.model import Aggregate, DomainEvent
from shared.platform.rebuild import SWITCH_ROUNDS, hash_contents
from shared.platform.unitofwork import Statement

if TYPE_CHECKING:
    from shared.platform.eventstore import ServiceApplication

TAgg = TypeVar("TAgg", bound=Aggregate)
Row = tuple[Any, ...]

CHUNK = 200


@dataclass(frozen=True)
class Table:
    """One table of a projection: its columns (all written by the projection), primary key,
    the column that names the aggregate a row belongs to, and its DDL (``{schema}``).

    ``carried``: columns of live working state the projection does not write (a sender's claim
    on a row, say); a rebuild cannot know them, so the switch carries them over from the live
    rows, and comparisons leave them out.
    """

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    owner: str
    ddl: tuple[str, ...]
    carried: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not set(self.key) <= set(self.columns) or self.owner not in self.columns:
            raise ValueError(f"{self.name}: key and owner must be among the columns")

    def key_of(self, row: Row) -> Row:
        return tuple(row[self.columns.index(k)] for k in self.key)

    def ident(self, schema: str) -> Identifier:
        return Identifier(schema, self.name)

    def upsert(self, schema: str, rows: Sequence[Row]) -> Statement:
        """One ``INSERT … ON CONFLICT (key) DO UPDATE`` for the rows (the key's row replaced)."""
        values = SQL(", ").join(
            SQL("({})").format(SQL(", ").join(SQL("%s") for _ in self.columns)) for _ in rows
        )
        rest = [c for c in self.columns if c not in self.key]
        on_conflict: SQL | Composed = (
            SQL("DO UPDATE SET {}").format(
                SQL(", ").join(SQL("{c} = EXCLUDED.{c}").format(c=Identifier(c)) for c in rest)
            )
            if rest
            else SQL("DO NOTHING")
        )
        return Statement(
            SQL("INSERT INTO {t} ({cols}) VALUES {values} ON CONFLICT ({key}) {action}").format(
                t=self.ident(schema),
                cols=SQL(", ").join(map(Identifier, self.columns)),
                values=values,
                key=SQL(", ").join(map(Identifier, self.key)),
                action=on_conflict,
            ),
            [value for row in rows for value in row],
        )

    def delete(self, schema: str, key: Row) -> Statement:
        return Statement(
            SQL("DELETE FROM {} WHERE ({}) = ({})").format(
                self.ident(schema),
                SQL(", ").join(map(Identifier, self.key)),
                SQL(", ").join(SQL("%s") for _ in self.key),
            ),
            list(key),
        )


@dataclass(frozen=True)
class AggregateProjection(Generic[TAgg]):
    """Tables whose rows are a function of one kind of aggregate of a service's own log."""

    service: str
    tables: tuple[Table, ...]
    started_by: tuple[type[DomainEvent], ...]
    fold: Callable[[TAgg | None, Iterable[DomainEvent]], TAgg | None]
    rows: Callable[[TAgg], Mapping[str, Iterable[Row]]]
    description: str = ""
    topics: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "topics", tuple(get_topic(c) for c in self.started_by))

    @property
    def ddl(self) -> tuple[str, ...]:
        return tuple(s for table in self.tables for s in table.ddl)

    def keyed(self, aggregate: TAgg | None) -> dict[str, dict[Row, Row]]:
        """The aggregate's rows per table, by key (none for no aggregate)."""
        found: Mapping[str, Iterable[Row]] = {} if aggregate is None else self.rows(aggregate)
        unknown = set(found) - {t.name for t in self.tables}
        if unknown:
            raise ValueError(f"rows for tables the projection does not have: {unknown}")
        return {
            t.name: {t.key_of(tuple(r)): tuple(r) for r in found.get(t.name, ())}
            for t in self.tables
        }

    def statements(
        self, before: TAgg | None, after: TAgg, schema: str | None = None
    ) -> list[Statement]:
        """What changes the live tables from ``before``'s rows to ``after``'s (recorded in the
        events' transaction)."""
        schema = schema or self.service
        old, new = self.keyed(before), self.keyed(after)
        out: list[Statement] = []
        for table in self.tables:
            changed = [
                row for key, row in new[table.name].items() if old[table.name].get(key) != row
            ]
            if changed:
                out.append(table.upsert(schema, changed))
            out.extend(
                table.delete(schema, key) for key in old[table.name] if key not in new[table.name]
            )
        return out


# --- rebuilding --------------------------------------------------------------------------------


@dataclass
class Outcome(rebuild.Outcome):
    """What one run of a rebuild did."""

    folded: int = 0  # aggregates folded (again, when they changed while it ran)
    mark: int = 0
    position: int = 0

    def summary(self) -> str:
        return f"folded {self.folded} aggregates up to event {self.mark}"


class Rebuild(rebuild.Rebuild[Outcome], Generic[TAgg]):
    """One rebuild of a service's aggregate projection into ``target``."""

    lagging = "new events keep arriving faster than the rebuild folds them"

    def __init__(
        self,
        app: ServiceApplication,
        projection: AggregateProjection[TAgg],
        *,
        target: str | None = None,
        progress: bool = True,
    ) -> None:
        connect = app.datastore.pool.kwargs
        assert isinstance(connect, dict)
        super().__init__(
            connect,
            live=projection.service,
            # Writers touch the read tables before they lock the log: the same order here.
            tables=[t.name for t in projection.tables],
            target=target,
            progress=progress,
        )
        self.app = app
        self.projection = projection
        self.service = projection.service
        self.events = events_table(self.service)
        self.state = Identifier(self.target, "replay_state")

    def outcome(self) -> Outcome:
        return Outcome()

    def ddl(self) -> Sequence[str]:
        return (
            *self.projection.ddl,
            "CREATE TABLE IF NOT EXISTS {schema}.replay_state (one boolean PRIMARY KEY DEFAULT"
            " true CHECK (one), mark bigint NOT NULL, position bigint NOT NULL,"
            " bijgewerkt_op timestamptz NOT NULL DEFAULT now())",
        )

    # --- reading the log ---------------------------------------------------------------------

    def _log_end(self, conn: psycopg.Connection[Any]) -> int:
        return rebuild.log_end(conn, self.service)

    def _started(
        self, conn: psycopg.Connection[Any], after: int, upto: int, limit: int
    ) -> list[tuple[int, UUID]]:
        """Aggregates of this kind started in (after, upto], by the notification id of that."""
        rows = conn.execute(
            SQL(
                "SELECT notification_id, originator_id FROM {} WHERE topic = ANY(%s)"
                " AND notification_id > %s AND notification_id <= %s"
                " ORDER BY notification_id LIMIT %s"
            ).format(self.events),
            (list(self.projection.topics), after, upto, limit),
        ).fetchall()
        return [(int(r[0]), UUID(str(r[1]))) for r in rows]

    def _changed(self, conn: psycopg.Connection[Any], after: int, upto: int) -> list[UUID]:
        """Aggregates of this kind with events in (after, upto]."""
        rows = conn.execute(
            SQL(
                "SELECT DISTINCT e.originator_id FROM {t} e WHERE e.notification_id > %s"
                " AND e.notification_id <= %s AND EXISTS (SELECT 1 FROM {t} s"
                " WHERE s.originator_id = e.originator_id AND s.topic = ANY(%s))"
                " ORDER BY e.originator_id"
            ).format(t=self.events),
            (after, upto, list(self.projection.topics)),
        ).fetchall()
        return [UUID(str(r[0])) for r in rows]

    def _fold(self, conn: psycopg.Connection[Any], ids: Sequence[UUID], upto: int) -> list[TAgg]:
        """The aggregates folded from their events up to notification id ``upto``."""
        rows = conn.execute(
            SQL(
                "SELECT originator_id, originator_version, topic, state FROM {}"
                " WHERE originator_id = ANY(%s) AND notification_id <= %s"
                " ORDER BY originator_id, originator_version"
            ).format(self.events),
            (list(ids), upto),
        ).fetchall()
        per: dict[UUID, list[DomainEvent]] = {}
        for originator_id, version, topic, state in rows:
            event = self.app.mapper.to_domain_event(
                StoredEvent(
                    originator_id=originator_id,
                    originator_version=version,
                    topic=topic,
                    state=bytes(state),
                )
            )
            assert isinstance(event, DomainEvent)
            per.setdefault(UUID(str(originator_id)), []).append(event)
        folded = []
        for aggregate_id in ids:
            aggregate = self.projection.fold(None, per.get(aggregate_id, []))
            if aggregate is not None:
                folded.append(aggregate)
        return folded

    def _write(
        self, conn: psycopg.Connection[Any], ids: Sequence[UUID], aggregates: Sequence[TAgg]
    ) -> None:
        """Replace the rows of ``ids`` in the target by the aggregates' rows."""
        with conn.cursor() as curs:
            for table in self.projection.tables:
                curs.execute(
                    SQL("DELETE FROM {} WHERE {} = ANY(%s)").format(
                        table.ident(self.target), Identifier(table.owner)
                    ),
                    (list(ids),),
                )
            for aggregate in aggregates:
                for statement in self.projection.statements(None, aggregate, self.target):
                    curs.execute(statement.sql, statement.params)

    def _get_state(self, conn: psycopg.Connection[Any]) -> tuple[int, int] | None:
        row = conn.execute(SQL("SELECT mark, position FROM {}").format(self.state)).fetchone()
        return None if row is None else (int(row[0]), int(row[1]))

    def _set_state(self, conn: psycopg.Connection[Any], mark: int, position: int) -> None:
        conn.execute(
            SQL(
                "INSERT INTO {} (mark, position) VALUES (%s, %s) ON CONFLICT (one) DO UPDATE"
                " SET mark = EXCLUDED.mark, position = EXCLUDED.position, bijgewerkt_op = now()"
            ).format(self.state),
            (mark, position),
        )

    # --- the steps ---------------------------------------------------------------------------

    def load(self, outcome: Outcome, budget: int | None) -> bool:
        """Fold the aggregates started up to the mark, then (unless the budget ran out first)
        every aggregate that got events after it; whether caught up."""
        if not self._load(outcome, budget):
            return False
        self.catch_up(outcome)
        return True

    def _load(self, outcome: Outcome, budget: int | None) -> bool:
        """Fold the aggregates started up to the mark; False when the budget ran out first."""
        with self.connect() as conn:
            state = self._get_state(conn)
            if state is None:
                state = (self._log_end(conn), 0)
                self._set_state(conn, *state)
                conn.commit()
            mark, position = state
            total = conn.execute(
                SQL(
                    "SELECT count(*) FROM {} WHERE topic = ANY(%s) AND notification_id > %s"
                    " AND notification_id <= %s"
                ).format(self.events),
                (list(self.projection.topics), position, mark),
            ).fetchone()
            todo = int(total[0]) if total else 0
            bar = self.bar(todo if budget is None else min(todo, budget))
            # Bounded: every chunk moves the position past at least one started aggregate.
            while budget is None or budget > 0:
                size = CHUNK if budget is None else min(CHUNK, budget)
                started = self._started(conn, position, mark, size)
                if not started:
                    break
                ids = [aggregate_id for _, aggregate_id in started]
                # The chunk's rows and the position reached commit together.
                self._write(conn, ids, self._fold(conn, ids, mark))
                position = started[-1][0]
                self._set_state(conn, mark, position)
                conn.commit()
                outcome.folded += len(ids)
                if budget is not None:
                    budget -= len(ids)
                if bar is not None:
                    bar.advance(len(ids), f"{self.service} {position}/{mark}")
            if bar is not None:
                bar.finish()
            outcome.mark, outcome.position = mark, position
            more = self._started(conn, position, mark, 1)
            conn.commit()
        return not more

    def catch_up(self, outcome: Outcome) -> None:
        """Fold again every aggregate that got events after the mark; move the mark."""
        with self.connect() as conn:
            for _ in range(SWITCH_ROUNDS):
                state = self._get_state(conn)
                assert state is not None
                mark = state[0]
                end = self._log_end(conn)
                if end <= mark:
                    break
                self._catch_up(conn, mark, end, outcome)
                conn.commit()

    def _catch_up(
        self, conn: psycopg.Connection[Any], mark: int, end: int, outcome: Outcome
    ) -> None:
        ids = self._changed(conn, mark, end)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            self._write(conn, chunk, self._fold(conn, chunk, end))
            outcome.folded += len(chunk)
        self._set_state(conn, end, end)
        outcome.mark = outcome.position = end

    def ready(self, conn: psycopg.Connection[Any], outcome: Outcome) -> bool:
        """With the log locked too (writers wait): fold in the last events, carry the working
        state over from the live rows; False when too far behind to do that while writers wait."""
        conn.execute(SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(self.events))
        state = self._get_state(conn)
        assert state is not None
        end = self._log_end(conn)
        if end - state[0] > CHUNK * 10:
            return False
        if end > state[0]:
            self._catch_up(conn, state[0], end, outcome)
        for table in self.projection.tables:
            if table.carried:
                conn.execute(
                    SQL("UPDATE {t} AS r SET {sets} FROM {l} AS l WHERE {same}").format(
                        t=table.ident(self.target),
                        l=table.ident(self.service),
                        sets=SQL(", ").join(
                            SQL("{c} = l.{c}").format(c=Identifier(c)) for c in table.carried
                        ),
                        same=SQL(" AND ").join(
                            SQL("r.{k} = l.{k}").format(k=Identifier(k)) for k in table.key
                        ),
                    )
                )
        return True


# --- comparing read models ---------------------------------------------------------------------


def contents(
    conninfo: Mapping[str, Any] | str, projection: AggregateProjection[Any], schema: str
) -> dict[str, list[tuple[str | None, ...]]]:
    """The projection's rows per table as text, ordered by key."""
    kwargs = {"conninfo": conninfo} if isinstance(conninfo, str) else dict(conninfo)
    kwargs.pop("row_factory", None)
    tables: dict[str, list[tuple[str | None, ...]]] = {}
    with psycopg.connect(**kwargs) as conn:
        for table in projection.tables:
            tables[table.name] = [
                tuple(row)
                for row in conn.execute(
                    SQL("SELECT {} FROM {} ORDER BY {}").format(
                        SQL(", ").join(
                            SQL("{}::text").format(Identifier(c)) for c in table.columns
                        ),
                        table.ident(schema),
                        SQL(", ").join(map(Identifier, table.key)),
                    )
                )
            ]
    return tables


def content_hash(
    conninfo: Mapping[str, Any] | str, projection: AggregateProjection[Any], schema: str
) -> str:
    """SHA-256 over the projection's ``contents`` in ``schema``."""
    return hash_contents(contents(conninfo, projection, schema))


# --- the command -------------------------------------------------------------------------------


def main(
    app: ServiceApplication,
    projection: AggregateProjection[Any],
    argv: Sequence[str],
    *,
    out: Callable[[str], None] = print,
) -> int:
    """``python -m <service> replay``: 0 done; 3 lagging; 4 busy; 130 interrupted."""
    service = projection.service
    parser = rebuild.parser(
        f"weerbaar replay --projection {service}",
        f"Rebuild {service}'s read model ({projection.description}) from its event"
        " log and switch over to it.",
        f"{service}_replay",
        "aggregates",
    )
    args = parser.parse_args(argv)
    connect = app.datastore.pool.kwargs
    assert isinstance(connect, dict)
    return rebuild.command(
        parser,
        args,
        service,
        live_hash=lambda: content_hash(connect, projection, service),
        build=lambda: Rebuild(app, projection, target=args.target),
        out=out,
    )
