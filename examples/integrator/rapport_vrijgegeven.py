"""An employer's case system that follows RapportVrijgegeven events: each one recorded exactly once.

    python -m examples.integrator.rapport_vrijgegeven \\
        --nats nats://127.0.0.1:4222 --durable werkgever-zaaksysteem --db zaken.sqlite

It uses only nats-py and the standard library, as an integrator outside this repository would:
the contract is the CloudEvent on the wire (docs/integrating.md), not this project's code.

How it survives restarts without missing or repeating an event:

- a **durable** pull consumer on the stream remembers what was acknowledged, so a restart goes on
  where the last run stopped (the first run starts at sequence 1, or where `--start-sequence` /
  `--start-time` say);
- each event is written to SQLite together with its CloudEvent `id` in one transaction; an `id`
  that is already there is a duplicate (a redelivery after a crash, or the same event published
  again with a new stream sequence) and changes nothing;
- the message is acknowledged only after that transaction committed. A crash in between means a
  redelivery, which the `id` turns into a no-op.

SIGTERM or Ctrl-C stops it after the event in hand; events fetched but not yet handled are handed
back to the stream at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sqlite3
import sys
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

log = logging.getLogger("werkgever.zaaksysteem")

STREAM = "WEERBAAR"
FILTER_SUBJECT = "weerbaar.*.RapportVrijgegeven.*"
EVENT_TYPE = "nl.weerbaarbestuur.RapportVrijgegeven.v1"
DATA_FIELDS = ("aanvraag_id", "rapport_id", "versie", "organisatie_code")

SCHEMA = """
-- Every CloudEvent id this system has seen: the deduplication key.
CREATE TABLE IF NOT EXISTS ontvangen_events (
    event_id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    eerste_stream_sequence INTEGER NOT NULL,
    laatste_stream_sequence INTEGER NOT NULL,
    aantal_ontvangen INTEGER NOT NULL
);
-- The effect: the employer's own case records, with their own key.
CREATE TABLE IF NOT EXISTS vrijgegeven_rapporten (
    zaak_id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    aanvraag_id TEXT NOT NULL,
    rapport_id TEXT NOT NULL,
    versie INTEGER NOT NULL,
    organisatie_code TEXT NOT NULL,
    vrijgegeven_op TEXT NOT NULL
);
-- Messages that are not a CloudEvent we can read: kept for a person to look at, never dropped.
CREATE TABLE IF NOT EXISTS onverwerkbare_berichten (
    stream_sequence INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    reden TEXT NOT NULL
);
"""


class Outcome(Enum):
    """What handling one message did."""

    RECORDED = "recorded"
    DUPLICATE = "duplicate"
    OTHER_TYPE = "other_type"
    UNREADABLE = "unreadable"


class Unreadable(Exception):
    """The message is not a RapportVrijgegeven CloudEvent this system can read."""


def open_database(path: Path) -> sqlite3.Connection:
    """Open (or create) the case system's SQLite file."""
    db = sqlite3.connect(path)
    # Committed must mean on disk before the ack: WAL with a full sync per commit.
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    return db


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        event = json.loads(raw)
    except ValueError:
        raise Unreadable("not_json") from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str) or not event["id"]:
        raise Unreadable("no_cloudevent_id")
    if not isinstance(event.get("type"), str):
        raise Unreadable("no_cloudevent_type")
    return event


def _record(db: sqlite3.Connection, event: dict[str, Any], stream_sequence: int) -> Outcome:
    """Apply one event in the current transaction; the caller commits."""
    inserted = db.execute(
        "INSERT OR IGNORE INTO ontvangen_events VALUES (?, ?, ?, ?, 1)",
        (event["id"], event["type"], stream_sequence, stream_sequence),
    ).rowcount
    if not inserted:
        db.execute(
            "UPDATE ontvangen_events SET aantal_ontvangen = aantal_ontvangen + 1, "
            "laatste_stream_sequence = ? WHERE event_id = ?",
            (stream_sequence, event["id"]),
        )
        return Outcome.DUPLICATE
    if event["type"] != EVENT_TYPE:
        # Another version on the same subject (e.g. a v2 published in parallel): not ours to read.
        return Outcome.OTHER_TYPE
    data = event.get("data")
    if not isinstance(data, dict) or any(name not in data for name in DATA_FIELDS):
        raise Unreadable("data_incomplete")
    db.execute(
        "INSERT INTO vrijgegeven_rapporten "
        "(event_id, aanvraag_id, rapport_id, versie, organisatie_code, vrijgegeven_op) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            event["id"],
            str(data["aanvraag_id"]),
            str(data["rapport_id"]),
            int(data["versie"]),
            str(data["organisatie_code"]),
            str(event.get("time", "")),
        ),
    )
    return Outcome.RECORDED


def handle(db: sqlite3.Connection, raw: bytes, subject: str, stream_sequence: int) -> Outcome:
    """Record one message exactly once; return what happened. Commits before it returns."""
    try:
        with db:  # one transaction: the effect and its id, or neither
            return _record(db, _parse(raw), stream_sequence)
    except Unreadable as exc:
        with db:
            db.execute(
                "INSERT OR IGNORE INTO onverwerkbare_berichten VALUES (?, ?, ?)",
                (stream_sequence, subject, str(exc)),
            )
        return Outcome.UNREADABLE


async def ensure_consumer(
    js: JetStreamContext,
    stream: str,
    durable: str,
    *,
    ack_wait_s: float,
    start_sequence: int | None = None,
    start_time: datetime | None = None,
) -> None:
    """Create the durable consumer on first use; later runs continue where it is."""
    try:
        await js.consumer_info(stream, durable)
    except NotFoundError:
        pass
    else:
        if start_sequence is not None or start_time is not None:
            log.warning("durable consumer exists; it continues where it was (start ignored)")
        return
    deliver_policy = DeliverPolicy.ALL
    if start_sequence is not None:
        deliver_policy = DeliverPolicy.BY_START_SEQUENCE
    elif start_time is not None:
        deliver_policy = DeliverPolicy.BY_START_TIME
    await js.add_consumer(
        stream,
        ConsumerConfig(
            durable_name=durable,
            description="Werkgever case system: RapportVrijgegeven",
            filter_subject=FILTER_SUBJECT,
            deliver_policy=deliver_policy,
            opt_start_seq=start_sequence,
            opt_start_time=start_time,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=ack_wait_s,
            max_ack_pending=1000,
        ),
    )
    log.info("durable consumer %s created", durable)


async def follow(
    nats_url: str,
    durable: str,
    db_path: Path,
    stop: asyncio.Event,
    *,
    stream: str = STREAM,
    ack_wait_s: float = 30.0,
    batch: int = 100,
    start_sequence: int | None = None,
    start_time: datetime | None = None,
) -> None:
    """Follow RapportVrijgegeven events into the SQLite file until `stop` is set."""
    db = open_database(db_path)
    nc = await nats.connect(servers=nats_url.split(","), name=durable)
    try:
        js = nc.jetstream()
        await ensure_consumer(
            js,
            stream,
            durable,
            ack_wait_s=ack_wait_s,
            start_sequence=start_sequence,
            start_time=start_time,
        )
        sub = await js.pull_subscribe_bind(durable=durable, stream=stream)
        log.info("following %s on %s", FILTER_SUBJECT, stream)
        while not stop.is_set():
            try:
                messages = await sub.fetch(batch, timeout=1.0)
            except (nats.errors.TimeoutError, TimeoutError):
                continue  # nothing new within a second; look at `stop` again
            await _handle_batch(db, messages, stop)
    finally:
        # close() sends the acks still buffered. Not drain(): it waits for the subscription's
        # queue to empty, and a pull subscription can hold late messages that nobody fetches.
        await nc.close()
        db.close()


async def _handle_batch(db: sqlite3.Connection, messages: list[Msg], stop: asyncio.Event) -> None:
    for index, msg in enumerate(messages):
        if stop.is_set():
            for unhandled in messages[index:]:
                await unhandled.nak()  # back to the stream now, not after ack_wait
            return
        sequence = msg.metadata.sequence.stream
        # SQLite is quick and local; a slower store would run in a thread.
        outcome = handle(db, msg.data, msg.subject, sequence)
        await msg.ack()  # only after the commit
        log.info("%s stream_sequence=%d", outcome.value, sequence)


def _aware_time(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give the time with its offset, e.g. 2025-03-01T00:00Z")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: follow the events until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.integrator.rapport_vrijgegeven",
        description="Record every RapportVrijgegeven event once in a SQLite file.",
    )
    parser.add_argument("--nats", required=True, help="nats://host:port[,nats://...]")
    parser.add_argument("--durable", required=True, help="name of the durable consumer")
    parser.add_argument("--db", required=True, type=Path, help="the SQLite file")
    parser.add_argument("--stream", default=STREAM, help=f"stream name (default {STREAM})")
    parser.add_argument(
        "--ack-wait", type=float, default=30.0, help="seconds before an unacked event comes back"
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--start-sequence", type=int, help="first run only: begin at this stream sequence"
    )
    start.add_argument(
        "--start-time",
        type=_aware_time,
        help="first run only: begin at events stored from this time (ISO 8601 with offset)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await follow(
            args.nats,
            args.durable,
            args.db,
            stop,
            stream=args.stream,
            ack_wait_s=args.ack_wait,
            start_sequence=args.start_sequence,
            start_time=args.start_time,
        )

    asyncio.run(run())
    log.info("stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
