"""Reading the public history back from the system of record, for rebuilding read models.

``python -m services.<name> --export-public AFTER`` writes every public event the service's log
announces after notification id AFTER, one JSON line per stored event on stdout::

    {"n": <notification_id>, "e": [<CloudEvent>, ...]}

(``"e"`` is empty when the stored event announces nothing; the line is still there, so a reader
can record that it got past it.) Each service decodes its own log with its own gateway, exactly
as its relay does: the same CloudEvent ids, envelopes and order. That keeps the services'
boundaries (a rebuild in one service never imports another's gateway) and lets a rebuild read the
stores of services that are down.

Also here: the progress bar the rebuild draws on stderr.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import psycopg
from psycopg.sql import SQL, Identifier

from shared.contracts.envelope import CloudEvent
from shared.platform.eventstore import PydanticMapper
from shared.platform.model import DomainEvent
from shared.platform.relay import advisory_key, cloudevents_for
from shared.platform.settings import Settings

if TYPE_CHECKING:
    from shared.platform.relay import Gateway
    from shared.platform.runtime import Components

#: Public events per stored event are numbered ``index`` within it; the rebuild orders events
#: recorded together by ``notification_id * POSITION_SCALE + index``, as the relay published them.
POSITION_SCALE = 64
ROOT = Path(__file__).resolve().parents[2]


def public_envelopes(
    service: str, settings: Settings, event: DomainEvent, gateway: Gateway
) -> list[CloudEvent]:
    """The CloudEvents that announce one stored event, exactly as the relay wraps them."""
    return cloudevents_for(service, settings, event, gateway(event))


def export_public(
    components: Components,
    settings: Settings,
    after: int,
    out: TextIO,
    *,
    batch_size: int = 500,
) -> int:
    """Write the public events of the log after ``after``, up to its end now; the lines written."""
    app = components.app
    mapper = app.mapper
    assert isinstance(mapper, PydanticMapper)
    end = app.recorder.max_notification_id() or 0
    written = 0
    start = after + 1
    # Bounded: every pass moves ``start`` past at least one row, and rows end at ``end``.
    while start <= end:
        batch = app.recorder.select_notifications(start, batch_size, stop=end)
        if not batch:
            break
        # Decoded as the relay decodes them (skeletons: no key read, nothing decrypted), so the
        # rebuild sees exactly the envelopes the relay publishes.
        events = mapper.to_domain_events(batch, skeleton=True)
        for notification, event in zip(batch, events, strict=True):
            envelopes = public_envelopes(app.service, settings, event, components.gateway)
            if len(envelopes) >= POSITION_SCALE:
                raise RuntimeError(f"{len(envelopes)} public events from one stored event")
            public = ",".join(e.to_json().decode() for e in envelopes)
            out.write(f'{{"n":{notification.id},"e":[{public}]}}\n')
            written += 1
        out.flush()
        start = batch[-1].id + 1
    return written


@dataclass(frozen=True)
class Loaded:
    """One unit read from a source: its position and the envelopes (with their order key)."""

    position: int
    envelopes: Sequence[tuple[int, CloudEvent]]


class StoreExport:
    """A service's public history after ``after``, decoded by the service itself (its
    ``--export-public``), in batches. The process starts at once: a rebuild starts the exports
    of every log side by side (each takes about a second to start) and reads them one after
    another; an export not read yet waits on its full pipe."""

    def __init__(
        self, environ: Mapping[str, str], service: str, after: int, batch_size: int = 500
    ) -> None:
        self.service = service
        self.batch_size = batch_size
        self._errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by close()
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", f"services.{service}", "--export-public", str(after)],
            cwd=ROOT,
            env={**environ, "WEERBAAR_LOG_LEVEL": "WARNING"},
            stdout=subprocess.PIPE,
            stderr=self._errors,
            text=True,
        )

    def batches(self) -> Generator[list[Loaded], None, None]:
        """The history's batches; raises when the export failed."""
        assert self.process.stdout is not None
        batch: list[Loaded] = []
        for line in self.process.stdout:
            record = json.loads(line)
            notification_id = int(record["n"])
            batch.append(
                Loaded(
                    notification_id,
                    [
                        (notification_id * POSITION_SCALE + i, CloudEvent.model_validate(e))
                        for i, e in enumerate(record["e"])
                    ],
                )
            )
            if len(batch) >= self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
        self._check_exit()

    def ids(self) -> Generator[tuple[int, list[str]], None, None]:
        """Each stored event's notification id and the ids of the CloudEvents it announces
        (nothing else of them is kept); raises when the export failed."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            record = json.loads(line)
            yield int(record["n"]), [str(e["id"]) for e in record["e"]]
        self._check_exit()

    def _check_exit(self) -> None:
        if self.process.wait() != 0:
            self._errors.seek(0)
            last = self._errors.read()[-2000:]
            raise RuntimeError(
                f"reading {self.service}'s log failed (exit {self.process.returncode}): {last}"
            )

    def close(self) -> None:
        """Stop the export (when it has not ended) and let go of its pipe."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._errors.close()


def store_batches(
    environ: Mapping[str, str], service: str, after: int, batch_size: int = 500
) -> Generator[list[Loaded], None, None]:
    """``StoreExport``'s batches of one service, the process stopped when they end or the
    caller closes the generator."""
    export = StoreExport(environ, service, after, batch_size)
    try:
        yield from export.batches()
    finally:
        export.close()


# --- what every rebuild shares: one run per target, the switch, the hash, the command ---------


class Lagging(RuntimeError):
    """The rebuild did not catch up with its sources: the live read model stays."""


class Busy(RuntimeError):
    """Another run rebuilds into the same target."""


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


#: How often a rebuild that is not caught up at its switch reads on before it gives up.
SWITCH_ROUNDS = 5


def switch_when_caught_up(switch: Callable[[], bool], again: Callable[[], None], what: str) -> None:
    """Try the switch; while it finds the rebuild behind, read on (``again``) and try again, a
    few rounds; then ``Lagging`` (the live read model stays)."""
    for _ in range(SWITCH_ROUNDS):
        if switch():
            return
        again()
    raise Lagging(what)


def create_target(
    conn: psycopg.Connection[Any], target: str, ddl: Sequence[str], *, restart: bool
) -> None:
    """The target schema with the read model's tables (``{schema}`` in the DDL); with
    ``restart``, what an earlier run left there is dropped first."""
    if restart:
        conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(target)))
    conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(target)))
    for statement in ddl:
        conn.execute(statement.replace("{schema}", target))


def rebuild_arguments(
    parser: argparse.ArgumentParser, default_target: str, unit: str, *, default: str | None = None
) -> None:
    """The options every rebuild command takes (``--max-<unit>``: a budget per run)."""
    parser.add_argument(
        "--target", default=default, help=f"schema to rebuild into ({default_target})"
    )
    parser.add_argument(
        f"--max-{unit}", type=int, help="read at most N this run; run again to continue"
    )
    parser.add_argument("--no-switch", action="store_true", help="rebuild, keep the live one")
    parser.add_argument("--restart", action="store_true", help="drop an interrupted rebuild")
    parser.add_argument(
        "--hash",
        action="store_true",
        help="print the content hash of the live read model: what a rebuild reproduces (equal"
        " before and after a faithful rebuild and switch)",
    )


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


def hash_contents(contents: Mapping[str, Sequence[tuple[str | None, ...]]]) -> str:
    """SHA-256 over a read model's rows, table by table, in the order given."""
    digest = hashlib.sha256()
    for table, rows in contents.items():
        digest.update(f"{table}\n".encode())
        for row in rows:
            digest.update(json.dumps(row).encode() + b"\n")
    return digest.hexdigest()


@dataclass(frozen=True)
class Ran:
    """What a rebuild command reports of its run."""

    summary: str
    complete: bool
    switched: bool


def run_command(
    name: str, run: Callable[[], Ran], target: str, previous: str, out: Callable[[str], None]
) -> int:
    """Run a rebuild and say how it ended: 0 done (or to be continued); 3 lagging; 4 busy; 130
    interrupted."""
    started = time.monotonic()
    try:
        ran = run()
    except KeyboardInterrupt:
        out(f"weerbaar replay: {name}: interrupted; run it again to continue where it stopped")
        return 130
    except Lagging as exc:
        out(f"weerbaar replay: {name}: not switched, the live read model stays: {exc}")
        return 3
    except Busy as exc:
        out(f"weerbaar replay: {name}: {exc}")
        return 4
    out(f"weerbaar replay: {name}: {ran.summary} in {time.monotonic() - started:.1f}s")
    if ran.switched:
        out(f"weerbaar replay: {name}: switched; the previous read model is in schema {previous}")
    elif not ran.complete:
        out(f"weerbaar replay: {name}: not complete yet; run it again to continue")
    else:
        out(f"weerbaar replay: {name}: rebuilt in schema {target} (not switched)")
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
