"""How fast ``weerbaar verify`` recomputes a service's hash chain (goal: ≥ 100,000 events/s).

``python -m bench.verify_chain [--events N] [--runs R] [--out FILE]`` starts an embedded PostgreSQL
in a temporary directory, creates intake's event table with the eventsourcing library's own DDL,
bulk-writes N events (default 200,000) of 300–600 bytes of state each (JSON with a base64
"ciphertext", like a stored event with encrypted personal fields), lets the checkpointer chain and
sign them, then times ``verify`` R times and once more after flipping one byte in the middle of
the log (the slower path that locates the damage). It prints the figures and writes them as JSON.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import shutil
import statistics
import struct
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import sql

from shared.platform.chain import ProblemKind, checkpoint, events_table, verify
from shared.platform.signing import generate_signing_key
from tools.embedded import EmbeddedPostgres

SERVICE = "intake"
GOAL = 100_000
TOPICS = [
    "services.intake.domain:AanvraagIngediend",
    "services.intake.domain:AanvraagIngetrokken",
    "services.intake.domain:DossierAfgesloten",
    "services.intake.domain:PersoonsgegevensIngezien",
    "services.intake.domain:ToegangGeweigerd",
]
_ROW = struct.Struct(">hi16siqi")
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)


def _state(rng: random.Random, originator: uuid.UUID, version: int) -> bytes:
    size = rng.randint(300, 600)
    body = {
        "originator_id": str(originator),
        "originator_version": version,
        "timestamp": "2025-03-01T12:00:00+00:00",
        "actor_id": "a1b2c3d4",
        "actor_role": "secretariaat",
        "persoonsgegevens": {"enc": "k1", "ct": ""},
    }
    room = size - len(json.dumps(body, separators=(",", ":")))
    body["persoonsgegevens"] = {"enc": "k1", "ct": base64.b64encode(os.urandom(room))[:room]}
    return json.dumps(
        body, separators=(",", ":"), default=lambda b: b.decode(), sort_keys=True
    ).encode()[:size]


def _copy_rows(count: int, seed: int) -> Iterator[bytes]:
    """The events as binary COPY data (in chunks), about five per aggregate, interleaved."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not a secret
    open_aggregates: list[list[Any]] = []
    parts = [_COPY_HEADER]
    for n in range(count):
        if not open_aggregates or rng.random() < 0.2:
            open_aggregates.append([uuid.uuid4(), 0])
        aggregate = rng.choice(open_aggregates)
        aggregate[1] += 1
        if aggregate[1] >= 8:
            open_aggregates.remove(aggregate)
        topic = TOPICS[0 if aggregate[1] == 1 else rng.randrange(1, len(TOPICS))].encode()
        state = _state(rng, aggregate[0], aggregate[1])
        parts += (
            _ROW.pack(4, 16, aggregate[0].bytes, 8, aggregate[1], len(topic)),
            topic,
            struct.pack(">i", len(state)),
            state,
        )
        if n % 10_000 == 9_999:
            yield b"".join(parts)
            parts = []
    parts.append(b"\xff\xff")
    yield b"".join(parts)


def _create_log(url: str) -> None:
    parts = psycopg.conninfo.conninfo_to_dict(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(SERVICE)))
    datastore = PostgresDatastore(
        str(parts["dbname"]),
        str(parts["host"]),
        str(parts["port"]),
        str(parts["user"]),
        "",
        schema=SERVICE,
    )
    try:
        PostgresApplicationRecorder(datastore, events_table_name=f"{SERVICE}_events").create_table()
    finally:
        datastore.close()


def _write_events(url: str, count: int) -> tuple[float, int]:
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        table = events_table(SERVICE)
        with conn.cursor().copy(
            sql.SQL(
                "COPY {} (originator_id, originator_version, topic, state)"
                " FROM STDIN (FORMAT binary)"
            ).format(table)
        ) as copy:
            for chunk in _copy_rows(count, seed=20250301):
                copy.write(chunk)
        row = conn.execute(
            sql.SQL("SELECT avg(octet_length(state))::int FROM {}").format(table)
        ).fetchone()
    assert row is not None
    return time.perf_counter() - started, int(row[0])


def run(events: int, runs: int, out: Path) -> dict[str, Any]:
    """Set up, measure, print and record; the result as a dict."""
    workdir = Path(tempfile.mkdtemp(prefix="weerbaar-bench-chain-"))
    server = EmbeddedPostgres(workdir / "postgres")
    try:
        server.start()
        url = server.ensure_database("bench")
        with psycopg.connect(url) as conn:
            version = conn.execute("SHOW server_version").fetchone()
        _create_log(url)
        write_s, mean_state = _write_events(url, events)
        print(f"wrote {events:,} events (mean state {mean_state} bytes) in {write_s:.1f}s")

        key = generate_signing_key()
        public_keys = {key.key_id: key.public_key}
        started = time.perf_counter()
        made = 0
        while checkpoint(SERVICE, url, key) is not None:
            made += 1
        checkpoint_s = time.perf_counter() - started
        print(f"chained and signed them in {made} checkpoint(s) in {checkpoint_s:.1f}s")

        timings = []
        for i in range(runs):
            report = verify(SERVICE, url, public_keys)
            if not report.ok or report.events != events:
                raise SystemExit(f"verify failed on a clean log: {report.summary()}")
            timings.append(report.seconds)
            print(
                f"verify run {i + 1}: {report.seconds:.3f}s = {events / report.seconds:,.0f} ev/s"
            )

        with psycopg.connect(url, autocommit=True) as conn:
            target = events // 2
            conn.execute(
                sql.SQL(
                    "UPDATE {} SET state = set_byte(state, 40, get_byte(state, 40) # 1)"
                    " WHERE notification_id = %s"
                ).format(events_table(SERVICE)),
                (target,),
            )
        tampered = verify(SERVICE, url, public_keys)
        first = tampered.first
        located = (
            first is not None
            and first.kind is ProblemKind.MODIFIED
            and first.notification_id == target
        )
        print(f"verify with one flipped byte: {tampered.seconds:.3f}s, located: {located}")
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    median = statistics.median(timings)
    result = {
        "benchmark": "verify_chain",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.verify_chain", *sys.argv[1:]]),
        "events": events,
        "mean_state_bytes": mean_state,
        "checkpoints": made,
        "checkpoint_seconds": round(checkpoint_s, 3),
        "verify_seconds": [round(t, 4) for t in timings],
        "verify_events_per_s_median": round(events / median),
        "verify_events_per_s_best": round(events / min(timings)),
        "verify_events_per_s_worst": round(events / max(timings)),
        "tampered_verify_seconds": round(tampered.seconds, 4),
        "tampered_located": located,
        "goal_events_per_s": GOAL,
        "goal_met": events / median >= GOAL,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "postgres": version[0] if version else None,
        },
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    verdict = "meets" if result["goal_met"] else "MISSES"
    print(
        f"verify: median {result['verify_events_per_s_median']:,} events/s over {runs} runs"
        f" ({verdict} the goal of {GOAL:,}); written to {out}"
    )
    return result


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; exit 1 when the goal is missed."""
    parser = argparse.ArgumentParser(prog="python -m bench.verify_chain", description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "verify_chain.json"
    )
    args = parser.parse_args(argv)
    result = run(args.events, args.runs, args.out)
    return 0 if result["goal_met"] and result["tampered_located"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
