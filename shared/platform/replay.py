"""Reading the public history back from the system of record, for rebuilding read models.

A service process started with ``--export-public AFTER`` writes every public event its log
announces after notification id AFTER, one JSON line per stored event on stdout::

    {"n": <notification_id>, "e": [<CloudEvent>, ...]}

(``"e"`` is empty when the stored event announces nothing; the line is still there, so a reader
can record that it got past it.) Each service decodes its own log with its own gateway, exactly
as its relay does: the same CloudEvent ids, envelopes and order. That keeps the services'
boundaries (a rebuild in one service never imports another's gateway) and lets a rebuild read the
stores of services that are down.

The export is started by a ``ServiceCommand`` the caller passes: the platform never names a
service's module.
"""

from __future__ import annotations

import argparse
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Generator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TextIO

from pydantic import BaseModel, ConfigDict
from pydantic_core import from_json

from shared.contracts.envelope import CloudEvent
from shared.platform.eventstore import PydanticMapper, ServiceApplication
from shared.platform.logging import configure_logging
from shared.platform.model import DomainEvent
from shared.platform.relay import POSITION_SCALE, Gateway, PublicationCheck, cloudevents_for
from shared.platform.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]

#: The command line that starts a service's process (``python -m <its package>``), given by a
#: caller that may name services: ``StoreExport`` appends ``--export-public AFTER``.
ServiceCommand = Callable[[str], Sequence[str]]


def public_envelopes(
    service: str, settings: Settings, event: DomainEvent, gateway: Gateway
) -> list[CloudEvent]:
    """The CloudEvents that announce one stored event, exactly as the relay wraps them."""
    return cloudevents_for(service, settings, event, gateway(event))


def export_public(
    app: ServiceApplication,
    gateway: Gateway,
    settings: Settings,
    after: int,
    out: TextIO,
    *,
    batch_size: int = 500,
) -> int:
    """Write the public events of the log after ``after``, up to its end now; the lines written."""
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
            envelopes = public_envelopes(app.service, settings, event, gateway)
            if len(envelopes) >= POSITION_SCALE:
                raise RuntimeError(f"{len(envelopes)} public events from one stored event")
            public = ",".join(e.to_json().decode() for e in envelopes)
            out.write(f'{{"n":{notification.id},"e":[{public}]}}\n')
            written += 1
        out.flush()
        start = batch[-1].id + 1
    return written


def export_main(
    application: type[ServiceApplication], gateway: Gateway, argv: Sequence[str] | None = None
) -> None:
    """``python -m services.<name> --export-public AFTER``: the log's public events on stdout.

    A service's ``__main__`` calls this instead of its bootstrap when asked to export: reading the
    log and mapping it with the gateway needs neither the service's API, consumers and read
    models nor their imports, which were a third of each export's CPU (a rebuild starts one per
    log). The caller has imported the service's ``application`` module (passing its class), so
    the stored topics it registers resolve as in the service; the log is read through the
    platform's ``ServiceApplication`` on the service's schema, with the same mapper.
    """
    service = application.service
    # The service's package, as ``python -m`` runs it (its application module's parent).
    parser = argparse.ArgumentParser(prog=f"python -m {application.__module__.rpartition('.')[0]}")
    parser.add_argument("--export-public", type=int, metavar="AFTER", required=True)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    settings = load_settings()
    configure_logging(service, settings.log_level)
    log = type(f"{application.__name__}Log", (ServiceApplication,), {"service": service})
    app = log(
        settings.eventsourcing_env(service), publication_check=PublicationCheck(service, gateway)
    )
    try:
        export_public(app, gateway, settings, args.export_public, sys.stdout)
    finally:
        app.close()


@dataclass(frozen=True)
class Loaded:
    """One unit read from a source: its position and the envelopes (with their order key).

    ``log_position``: where the unit's one envelope stands in its service's log when the source is
    the stream (the relay's header; None without one). From an export of a log, the order key
    is that place already.
    """

    position: int
    envelopes: Sequence[tuple[int, CloudEvent]]
    log_position: int | None = None


class _Line(BaseModel):
    """One line of an export, as read: another process's output, so validated, never trusted."""

    model_config = ConfigDict(extra="forbid")

    n: int
    e: list[CloudEvent]


def parse_line(line: bytes | str) -> Loaded:
    """One export line as a ``Loaded``; raises (``ValidationError``) on a malformed line.

    The line is parsed and its envelopes validated in one pass (pydantic-core's JSON parser
    straight into the models), not ``json.loads`` and then the models over the dicts: a third
    of the rebuild's cost per event was that second walk over the same data."""
    record = _Line.model_validate_json(line)
    if len(record.e) >= POSITION_SCALE:
        raise ValueError(f"{len(record.e)} public events from one stored event")
    return Loaded(
        record.n,
        [(record.n * POSITION_SCALE + i, envelope) for i, envelope in enumerate(record.e)],
    )


#: Lines an export's reader hands over at once, and chunks waiting per export at most (the
#: export blocks on its pipe beyond that, until the rebuild catches up).
CHUNK_LINES = 500
QUEUED_CHUNKS = 4


class StoreExport:
    """A service's public history after ``after``, decoded by the service itself (its
    ``--export-public``), in batches. The process starts at once: a rebuild starts the exports
    of every log side by side (each takes about a second to start); ``SideBySide`` reads
    them together, as they come."""

    def __init__(
        self,
        environ: Mapping[str, str],
        service: str,
        after: int,
        batch_size: int = 500,
        *,
        command: ServiceCommand,
    ) -> None:
        self.service = service
        self.batch_size = batch_size
        self._errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by close()
        self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [*command(service), "--export-public", str(after)],
            cwd=ROOT,
            env={**environ, "WEERBAAR_LOG_LEVEL": "WARNING"},
            stdout=subprocess.PIPE,
            stderr=self._errors,
        )

    @property
    def _stdout(self) -> IO[bytes]:
        assert self.process.stdout is not None
        return self.process.stdout

    def batches(self) -> Generator[list[Loaded], None, None]:
        """The history's batches; raises when the export failed or wrote a malformed line."""
        batch: list[Loaded] = []
        for line in self._stdout:
            batch.append(parse_line(line))
            if len(batch) >= self.batch_size:
                yield batch
                batch = []
        if batch:
            yield batch
        self.check_exit()

    def ids(self) -> Generator[tuple[int, list[str]], None, None]:
        """Each stored event's notification id and the ids of the CloudEvents it announces
        (nothing else of them is kept); raises when the export failed."""
        for line in self._stdout:
            record = from_json(line)
            yield int(record["n"]), [str(e["id"]) for e in record["e"]]
        self.check_exit()

    def check_exit(self) -> None:
        """Raise when the export ended with an error (its last words in the message)."""
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


class SideBySide:
    """Several exports read at once: each export's pipe is emptied by a thread of its own into a
    short queue, so every export decodes its log while the rebuild stores what came first (one
    after another, each export waited on its full pipe while an earlier one was read, and the
    rebuild waited for each in turn). Yields ``(service, batch)`` in the order batches arrive;
    one export's batches stay in its log's order. ``close`` stops the exports and the readers.
    """

    def __init__(self, exports: Sequence[StoreExport], batch_size: int = CHUNK_LINES) -> None:
        self.exports = list(exports)
        self.batch_size = batch_size
        self._ready: queue.Queue[tuple[StoreExport, list[bytes] | None]] = queue.Queue(
            QUEUED_CHUNKS * max(len(self.exports), 1)
        )
        self._stop = threading.Event()
        self._readers = [
            threading.Thread(target=self._read, args=(export,), daemon=True)
            for export in self.exports
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, export: StoreExport) -> None:
        chunk: list[bytes] = []
        try:
            for line in export._stdout:
                if self._stop.is_set():
                    return
                chunk.append(line)
                if len(chunk) >= self.batch_size:
                    self._ready.put((export, chunk))
                    chunk = []
        except (OSError, ValueError):
            if self._stop.is_set():
                return  # the pipe was closed under the reader: stopped on purpose
            raise
        finally:
            if not self._stop.is_set():
                if chunk:
                    self._ready.put((export, chunk))
                self._ready.put((export, None))  # the end of this export

    def __iter__(self) -> Generator[tuple[str, list[Loaded]], None, None]:
        """Batches as they arrive; raises when an export failed or wrote a malformed line."""
        running = len(self.exports)
        while running:
            export, chunk = self._ready.get()
            if chunk is None:
                export.check_exit()
                running -= 1
                continue
            yield export.service, [parse_line(line) for line in chunk]

    def close(self) -> None:
        """Stop every export and its reader."""
        self._stop.set()
        for export in self.exports:
            if export.process.poll() is None:
                export.process.kill()
        # A reader may wait to hand over a chunk: empty the queue until every reader is gone.
        for reader in self._readers:
            while reader.is_alive():
                with suppress(queue.Empty):
                    while True:
                        self._ready.get_nowait()
                reader.join(0.05)
        for export in self.exports:
            export.close()
