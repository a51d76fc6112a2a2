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

import json
import subprocess
import tempfile
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from shared.contracts.envelope import CloudEvent
from shared.platform.eventstore import PydanticMapper
from shared.platform.model import DomainEvent
from shared.platform.relay import cloudevents_for
from shared.platform.settings import Settings

if TYPE_CHECKING:
    from shared.platform.eventstore import ServiceApplication
    from shared.platform.relay import Gateway

#: Public events per stored event are numbered ``index`` within it; the rebuild orders events
#: recorded together by ``notification_id * POSITION_SCALE + index``, as the relay published them.
POSITION_SCALE = 64
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
