"""The one rebuild core: what every ``weerbaar replay`` engine does the same way.

A rebuild writes a read model afresh into a target schema (the live one stays in use), reads
its sources in batches (each batch and the position it reached commit together, so a run that
stops is continued by the next), and, once it has read everything, switches: with the live
tables locked in the order their writers lock them, it checks that it is caught up, moves the
live tables to a ``previous`` schema and the rebuilt ones in, in one transaction. When it is
behind at the switch it reads on and tries again, a few rounds, then leaves the live read model
in place (``Lagging``). One run per target at a time (``Busy``).

The engines (intake's dossier projection, ``shared.platform.projection``,
``shared.platform.register``) subclass ``Rebuild`` with what varies: the target's tables, how to
read the sources (``load``) and what the switch checks (``ready``). ``command`` is their one
command line: the same options, messages and exit codes (0 done or to be continued, 2 usage,
3 lagging, 4 busy, 130 interrupted).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TextIO, TypeVar

import psycopg
from psycopg.sql import SQL, Identifier

from shared.platform.chain import events_table
from shared.platform.relay import advisory_key
from shared.platform.replay import Loaded, SideBySide

#: How often a rebuild that is not caught up at its switch reads on before it gives up.
SWITCH_ROUNDS = 5


class Lagging(RuntimeError):
    """The rebuild did not catch up with its sources: the live read model stays."""


class Busy(RuntimeError):
    """Another run rebuilds into the same target."""


@dataclass
class Outcome:
    """What one run of a rebuild did (each engine adds its own counts)."""

    complete: bool = False  # every source read to its end
    switched: bool = False

    def summary(self) -> str:
        """One line of what the run did, for the command's report."""
        return "done"


TOutcome = TypeVar("TOutcome", bound=Outcome)


class Rebuild(ABC, Generic[TOutcome]):
    """One rebuild of the read model in schema ``live`` (its ``tables``) into ``target``.

    Subclasses give the target's DDL (``ddl``, bookkeeping included), ``load`` (read the sources
    into the target, within a budget) and ``ready`` (at the switch, live tables locked: whether
    the rebuild holds everything, after folding in what it still can).
    """

    #: Raised as ``Lagging``'s reason when the switch keeps finding the rebuild behind.
    lagging = "new events keep arriving faster than the rebuild reads them"

    def __init__(
        self,
        connect: Mapping[str, Any],
        *,
        live: str,
        tables: Sequence[str],
        target: str | None = None,
        previous: str | None = None,
        lock_order: Sequence[str] | None = None,
        progress: bool = True,
    ) -> None:
        self.connect_args = {
            k: v for k, v in connect.items() if k not in {"row_factory", "autocommit"}
        }
        self.live = live
        self.tables = tuple(tables)
        #: The order the live read model's writers lock its tables: the switch takes the same.
        self.lock_order = tuple(lock_order or tables)
        self.target = target or f"{live}_replay"
        self.previous = previous or f"{live}_previous"
        if self.target in {live, self.previous}:
            raise ValueError(f"the target must not be {self.target}")
        self.progress = progress

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(**self.connect_args, autocommit=False)

    # --- what an engine supplies -----------------------------------------------------------

    @abstractmethod
    def ddl(self) -> Sequence[str]:
        """The target's tables (``{schema}`` is the target), the rebuild's bookkeeping included."""

    def prepared(self, conn: psycopg.Connection[Any]) -> None:
        """Check what an earlier run left in the target (after ``ddl``)."""

    @abstractmethod
    def load(self, outcome: TOutcome, budget: int | None) -> bool:
        """Read the sources into the target, at most ``budget`` units; True when caught up."""

    @abstractmethod
    def ready(self, conn: psycopg.Connection[Any], outcome: TOutcome) -> bool:
        """At the switch, the live tables locked: whether the target holds everything."""

    @abstractmethod
    def outcome(self) -> TOutcome:
        """A fresh outcome for one run."""

    # --- the skeleton ----------------------------------------------------------------------

    def prepare(self, *, restart: bool = False) -> None:
        """Create the target (with ``restart``: drop what an earlier run left first)."""
        with self.connect() as conn:
            schema = Identifier(self.target)
            if restart:
                conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
            conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
            for statement in self.ddl():
                conn.execute(statement.replace("{schema}", self.target))
            self.prepared(conn)
            conn.commit()

    def run(self, *, switch: bool = True, budget: int | None = None) -> TOutcome:
        """Load (at most ``budget`` units) and, when caught up, switch over; one run per target
        at a time (their positions would interleave)."""
        outcome = self.outcome()
        with one_run_per_target(self.connect_args, self.target):
            outcome.complete = self.load(outcome, budget)
            if switch and outcome.complete:
                for _ in range(SWITCH_ROUNDS):
                    if self.switch(outcome):
                        return outcome
                    self.load(outcome, None)
                raise Lagging(self.lagging)
        return outcome

    def switch(self, outcome: TOutcome) -> bool:
        """Swap the rebuilt tables in, if the rebuild holds everything; False when it lags."""
        with self.connect() as conn:
            conn.execute(
                SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                    SQL(", ").join(Identifier(self.live, t) for t in self.lock_order)
                )
            )
            if not self.ready(conn, outcome):
                conn.rollback()
                return False
            move_tables(conn, self.tables, self.live, self.target, self.previous)
            conn.commit()
        outcome.switched = True
        return True

    def bar(self, total: int, label: str = "") -> Progress | None:
        """A progress bar, when this rebuild draws one."""
        return Progress(total, label) if self.progress else None


@contextmanager
def one_run_per_target(connect: Mapping[str, Any], target: str) -> Iterator[None]:
    """Hold the target's advisory lock for the run (``Busy`` when another run holds it)."""
    with psycopg.connect(**connect, autocommit=True) as lock:
        row = lock.execute(
            "SELECT pg_try_advisory_lock(%s)", (advisory_key(f"weerbaar-replay:{target}"),)
        ).fetchone()
        if not (row and row[0]):
            raise Busy(f"another rebuild into {target} is running")
        yield


def move_tables(
    conn: psycopg.Connection[Any], tables: Sequence[str], live: str, target: str, previous: str
) -> None:
    """In the caller's transaction: the live tables to ``previous`` (emptied first), the rebuilt
    ones from ``target`` to ``live``, and ``target`` dropped."""
    conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(previous)))
    conn.execute(SQL("CREATE SCHEMA {}").format(Identifier(previous)))
    for table in tables:
        conn.execute(
            SQL("ALTER TABLE {} SET SCHEMA {}").format(
                Identifier(live, table), Identifier(previous)
            )
        )
    for table in tables:
        conn.execute(
            SQL("ALTER TABLE {} SET SCHEMA {}").format(Identifier(target, table), Identifier(live))
        )
    conn.execute(SQL("DROP SCHEMA {} CASCADE").format(Identifier(target)))


# --- sources read by position: service logs (and the stream) --------------------------------

#: The table that keeps how far each source is read (``{schema}`` is the target).
POSITIONS_DDL = (
    "CREATE TABLE IF NOT EXISTS {schema}.replay_positions (source text PRIMARY KEY,"
    " position bigint NOT NULL, bijgewerkt_op timestamptz NOT NULL DEFAULT now())"
)


def positions(conn: Any, target: str, sources: Sequence[str]) -> dict[str, int]:
    """How far each source is read into ``target`` (0: not yet)."""
    rows = conn.execute(
        SQL("SELECT source, position FROM {}").format(Identifier(target, "replay_positions"))
    ).fetchall()
    known = {str(r[0]): int(r[1]) for r in rows}
    return {s: known.get(s, 0) for s in sources}


def set_position(curs: Any, target: str, source: str, position: int) -> None:
    """Record how far ``source`` is read (in the transaction that stores what was read)."""
    curs.execute(
        SQL(
            "INSERT INTO {} (source, position) VALUES (%s, %s) ON CONFLICT (source)"
            " DO UPDATE SET position = EXCLUDED.position, bijgewerkt_op = now()"
        ).format(Identifier(target, "replay_positions")),
        (source, position),
    )


def log_end(conn: psycopg.Connection[Any], service: str) -> int:
    """The last notification id of a service's log (0 when it has none yet)."""
    exists = conn.execute("SELECT to_regclass(%s)", (f"{service}.{service}_events",)).fetchone()
    if exists is None or exists[0] is None:
        return 0
    row = conn.execute(
        SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(events_table(service))
    ).fetchone()
    return int(row[0]) if row else 0


def log_remaining(conn: psycopg.Connection[Any], service: str, after: int, end: int) -> int:
    """How many stored events of a service's log come after ``after`` (none past ``end``)."""
    if end <= after:
        return 0
    row = conn.execute(
        SQL("SELECT count(*) FROM {} WHERE notification_id > %s").format(events_table(service)),
        (after,),
    ).fetchone()
    return int(row[0]) if row else 0


def read_batches(
    source: str,
    batches: Generator[list[Loaded], None, None],
    commit: Callable[[Sequence[Loaded]], None],
    bar: Progress | None,
    budget: int | None,
) -> int:
    """Commit a source's batches one by one (``commit`` stores a batch with its position), at
    most ``budget`` units; the units read."""
    try:
        return _read(((source, batch) for batch in batches), lambda _, b: commit(b), bar, budget)
    finally:
        batches.close()  # stops reading (an export, the stream) when the budget ends early


def read_side_by_side(
    exports: SideBySide,
    commit: Callable[[str, Sequence[Loaded]], None],
    bar: Progress | None,
    budget: int | None,
) -> int:
    """Commit the batches of several exports as they arrive (``commit`` stores a batch with its
    source's position), at most ``budget`` units; the units read. The caller closes ``exports``
    (which stops what a budget left unread)."""
    return _read(iter(exports), commit, bar, budget)


def _read(
    batches: Generator[tuple[str, list[Loaded]], None, None],
    commit: Callable[[str, Sequence[Loaded]], None],
    bar: Progress | None,
    budget: int | None,
) -> int:
    """Commit ``(source, batch)`` pairs as they come, at most ``budget`` units; the units read."""
    read = 0
    try:
        for source, whole in batches:
            batch = whole if budget is None else whole[: budget - read]
            if not batch:
                break
            commit(source, batch)
            read += len(batch)
            if bar is not None:
                bar.advance(len(batch), f"{source} {batch[-1].position}")
            if budget is not None and read >= budget:
                break
    finally:
        batches.close()
    return read


# --- comparing read models ------------------------------------------------------------------


def hash_contents(contents: Mapping[str, Sequence[tuple[str | None, ...]]]) -> str:
    """SHA-256 over a read model's rows, table by table, in the order given."""
    digest = hashlib.sha256()
    for table, rows in contents.items():
        digest.update(f"{table}\n".encode())
        for row in rows:
            digest.update(json.dumps(row).encode() + b"\n")
    return digest.hexdigest()


# --- the command ----------------------------------------------------------------------------


def parser(prog: str, description: str, default_target: str, unit: str) -> argparse.ArgumentParser:
    """The command line every rebuild takes (``--max-<unit>``: a budget per run); an engine adds
    what selects its source or read model."""
    parsed = argparse.ArgumentParser(prog=prog, description=description)
    parsed.add_argument("--target", help=f"schema to rebuild into ({default_target})")
    parsed.add_argument(
        f"--max-{unit}",
        dest="budget",
        type=int,
        help="read at most N this run; run again to continue",
    )
    parsed.add_argument("--no-switch", action="store_true", help="rebuild, keep the live one")
    parsed.add_argument("--restart", action="store_true", help="drop an interrupted rebuild")
    parsed.add_argument(
        "--hash",
        action="store_true",
        help="print the content hash of the live read model: what a rebuild reproduces (equal"
        " before and after a faithful rebuild and switch)",
    )
    return parsed


def command(
    parsed: argparse.ArgumentParser,
    args: argparse.Namespace,
    name: str,
    *,
    live_hash: Callable[[], str],
    build: Callable[[], Rebuild[Any]],
    out: Callable[[str], None],
) -> int:
    """Run a rebuild command and say how it ended: ``--hash`` prints the live read model's hash;
    otherwise 0 done (or to be continued), 2 a wrong target, 3 lagging, 4 busy, 130 interrupted."""
    if args.hash:
        out(live_hash())
        return 0
    try:
        rebuild = build()
    except ValueError as exc:
        parsed.error(str(exc))
    rebuild.prepare(restart=args.restart)
    started = time.monotonic()
    try:
        ran = rebuild.run(switch=not args.no_switch, budget=args.budget)
    except KeyboardInterrupt:
        out(f"weerbaar replay: {name}: interrupted; run it again to continue where it stopped")
        return 130
    except Lagging as exc:
        out(f"weerbaar replay: {name}: not switched, the live read model stays: {exc}")
        return 3
    except Busy as exc:
        out(f"weerbaar replay: {name}: {exc}")
        return 4
    out(f"weerbaar replay: {name}: {ran.summary()} in {time.monotonic() - started:.1f}s")
    if ran.switched:
        out(
            f"weerbaar replay: {name}: switched; the previous read model is in schema"
            f" {rebuild.previous}"
        )
    elif not ran.complete:
        out(f"weerbaar replay: {name}: not complete yet; run it again to continue")
    else:
        out(f"weerbaar replay: {name}: rebuilt in schema {rebuild.target} (not switched)")
    return 0


class Progress:
    """A progress bar on stderr (one line, redrawn at most a few times a second)."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = max(total, 0)
        self.done = 0
        self.label = label
        self.stream = stream or sys.stderr
        self._drawn = 0.0
        self._shown = -1

    def advance(self, count: int, label: str | None = None) -> None:
        """Count ``count`` more items done."""
        self.done += count
        if label is not None:
            self.label = label
        now = time.monotonic()
        if now - self._drawn >= 0.2 or self.done >= self.total:
            self._drawn = now
            self.draw()

    def draw(self) -> None:
        """Draw the bar now."""
        self._shown = self.done
        width = 30
        fraction = 1.0 if self.total == 0 else min(self.done / self.total, 1.0)
        filled = int(fraction * width)
        bar = "#" * filled + "." * (width - filled)
        self.stream.write(
            f"\r[{bar}] {fraction:6.1%}  {self.done}/{self.total}  {self.label:<40}"[:120]
        )
        self.stream.flush()

    def finish(self) -> None:
        """End the bar's line."""
        if self._shown != self.done:
            self.draw()
        self.stream.write("\n")
        self.stream.flush()
