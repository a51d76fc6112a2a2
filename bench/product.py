"""The product's figures: what the running system does, measured from outside and inside.

``bench.system`` calls these in order against servers and service processes it started itself.
This module may import services (``bench`` is not ``shared``); it measures intake, whose
registration, relay and dossier projection are the paths every dossier takes.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import random
import re
import secrets
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import nats
import psycopg
from psycopg import sql

from services.intake.bootstrap import application as intake_application
from services.intake.domain import Aanmelding, dien_in
from services.intake.gateway import to_public
from services.intake.projections.rebuild import Rebuild
from shared.platform.auth import load_or_create_secret
from shared.platform.chain import events_table
from shared.platform.eventstore import PydanticMapper
from shared.platform.model import Context, utcnow
from shared.platform.relay import OutboxRelay, cloudevents_for
from shared.platform.settings import Settings
from tools.demo import Actors, DossierDriver, aanmelding_voor


def unthrottled() -> dict[str, str]:
    """The limits a measurement must not run into, as the system's environment: the ones that
    keep one source from flooding the public registration off (every registration comes from
    one address), and the report reads per person and hour high enough that no page timed a
    hundred times is refused, still counted (its cost stays in the figures; the environment's
    own value, e.g. 0 for a run without the limit, is kept)."""
    return {
        "WEERBAAR_REGISTRATIONS_PER_SOURCE": "0",
        "WEERBAAR_REGISTRATIONS_PER_ADDRESS": "0",
        "WEERBAAR_REPORT_READS_PER_HOUR": os.environ.get(
            "WEERBAAR_REPORT_READS_PER_HOUR", "1000000"
        ),
    }


ORGANISATIES = [f"GM{n:04d}" for n in range(300, 400, 2)]  # 50 municipalities
STATUSES = [
    ("ingediend", 10),
    ("contact_opgenomen", 10),
    ("gesprekken_gepland", 10),
    ("gesprekken_gevoerd", 8),
    ("rapport_in_opstelling", 8),
    ("ter_toetsing", 5),
    ("afgekeurd", 3),
    ("goedgekeurd", 4),
    ("vrijgegeven", 6),
    ("in_uitvoering", 10),
    ("afgesloten", 22),
    ("ingetrokken", 4),
]


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def registration(email: str | None = None) -> dict[str, Any]:
    """A registration body (made-up person) for a random municipality."""
    organisatie = random.choice(ORGANISATIES)  # noqa: S311 - test data, not a secret
    return aanmelding_voor(email or f"b.{secrets.token_hex(5)}@example.org", organisatie)


# --- commands ------------------------------------------------------------------------------------


@dataclass
class Rate:
    """A rate with what went wrong while measuring it."""

    per_s: float
    done: int
    failed: int


async def command_rate(intake_url: str, clients: int, seconds: float) -> Rate:
    """POST /aanvragen answered 201, per second, from ``clients`` concurrent clients."""
    done = failed = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=intake_url, timeout=30, limits=limits) as client:
        deadline = time.perf_counter() + seconds

        async def one_client() -> None:
            nonlocal done, failed
            while time.perf_counter() < deadline:
                response = await client.post(
                    "/aanvragen",
                    json=registration(),
                    headers={"Idempotency-Key": secrets.token_hex(8)},
                )
                if response.status_code == 201:
                    done += 1
                else:
                    failed += 1

        began = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(clients)))
        elapsed = time.perf_counter() - began
    return Rate(done / elapsed, done, failed)


async def wait_quiet(nats_url: str, stream: str, timeout_s: float = 600) -> float:
    """Wait until every consumer of the stream has taken and acked everything: seconds waited.

    A burst of commands leaves work behind in the other services (the events each registration
    causes); the next measurement starts on a system at rest.
    """
    began = time.perf_counter()
    nc = await nats.connect(servers=[nats_url], name="bench-quiet")
    try:
        js = nc.jetstream(timeout=10)
        quiet_since: float | None = None
        while time.perf_counter() - began < timeout_s:
            infos = await js.consumers_info(stream)
            busy = any((i.num_pending or 0) + (i.num_ack_pending or 0) for i in infos)
            now = time.perf_counter()
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= 1.0:  # quiet for a second: relays had time to publish
                return quiet_since - began
            await asyncio.sleep(0.1)
        raise TimeoutError(f"consumers still busy after {timeout_s:.0f}s")
    finally:
        await nc.close()


# --- commit → visible ----------------------------------------------------------------------------


async def commit_to_visible(
    intake_url: str,
    database_url: str,
    nats_url: str,
    stream: str,
    per_s: float,
    count: int,
    poll_s: float = 0.005,
) -> dict[str, Any]:
    """At a fixed rate of registrations: ms from each 201 until the dossier projection shows it.

    A poller asks PostgreSQL every ``poll_s`` which of the answered dossiers are visible (the
    projection's committed row), so the figures include up to ``poll_s`` of polling delay.
    """
    answered: dict[uuid.UUID, float] = {}
    visible: dict[uuid.UUID, float] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def poll() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            query = (
                "SELECT aanvraag_id FROM intake.dossiers WHERE zichtbaar AND aanvraag_id = ANY(%s)"
            )
            while not stop.is_set():
                with lock:
                    pending = [a for a in answered if a not in visible]
                if pending:
                    seen = time.perf_counter()
                    for (aanvraag_id,) in conn.execute(query, (pending,), prepare=True):
                        visible[aanvraag_id] = seen
                stop.wait(poll_s)

    poller = threading.Thread(target=poll)
    poller.start()
    failed = 0
    backlog: dict[str, int] = {}
    sampler = asyncio.create_task(_sample_backlog(nats_url, stream, backlog))
    try:
        async with httpx.AsyncClient(base_url=intake_url, timeout=30) as client:

            async def register(at: float) -> None:
                nonlocal failed
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                response = await client.post("/aanvragen", json=registration())
                if response.status_code != 201:
                    failed += 1
                    return
                with lock:
                    answered[uuid.UUID(response.json()["aanvraag_id"])] = time.perf_counter()

            began = time.perf_counter()
            await asyncio.gather(*(register(began + i / per_s) for i in range(count)))
        deadline = time.monotonic() + 60
        while len(visible) < len(answered) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    finally:
        sampler.cancel()
        stop.set()
        poller.join(10)
    latencies = [max(0.0, visible[a] - t) * 1000 for a, t in answered.items() if a in visible]
    return {
        "commands": count,
        "per_s": per_s,
        "failed": failed,
        "never_visible_within_60s": len(answered) - len(latencies),
        "p50_ms": round(percentile(latencies, 50), 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 99), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "poll_ms": poll_s * 1000,
        # Where work queued up: the most messages each consumer had waiting or unacked.
        "max_backlog_per_consumer": dict(sorted(backlog.items(), key=lambda kv: -kv[1])),
    }


async def _sample_backlog(nats_url: str, stream: str, peak: dict[str, int]) -> None:
    """Per consumer, the most messages it had pending or unacknowledged (until cancelled)."""
    nc = await nats.connect(servers=[nats_url], name="bench-backlog")
    try:
        js = nc.jetstream(timeout=10)
        while True:
            for info in await js.consumers_info(stream):
                waiting = (info.num_pending or 0) + (info.num_ack_pending or 0)
                name = info.name or "?"
                peak[name] = max(peak.get(name, 0), waiting)
            await asyncio.sleep(0.25)
    finally:
        await nc.close()


# --- the whole process ---------------------------------------------------------------------------


def drive_one(
    urls: dict[str, str],
    secret: bytes,
    client: httpx.Client,
    *,
    email: str | None = None,
    organisatie: str | None = None,
) -> tuple[str, str]:
    """One dossier through every step (as ``weerbaar demo`` does) until it is closed: its id
    and its report's."""
    actors = Actors(
        secret=secret,
        bestuurder_email=email or f"b.{secrets.token_hex(5)}@example.org",
        organisatie=organisatie or random.choice(ORGANISATIES),  # noqa: S311 - test data
    )
    d = DossierDriver(urls, actors, client)
    d.volledig_proces()
    return d.aanvraag_id, d.rapport_id


def lifecycle(
    urls: dict[str, str], data_dir: Path, dossiers: int, concurrency: int
) -> dict[str, Any]:
    """Dossiers per second taken through the whole process by ``concurrency`` drivers."""
    secret = load_or_create_secret(data_dir / "secrets" / "jwt.key")
    errors: list[str] = []
    durations: list[float] = []

    def one(_: int) -> None:
        began = time.perf_counter()
        try:
            with httpx.Client(timeout=30) as client:
                drive_one(urls, secret, client)
            durations.append(time.perf_counter() - began)
        except Exception as exc:  # a failed dossier is reported, not hidden
            errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")

    began = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(dossiers)))
    elapsed = time.perf_counter() - began
    return {
        "dossiers": dossiers,
        "concurrency": concurrency,
        "completed": len(durations),
        "errors": errors[:5],
        "failed": len(errors),
        "seconds": round(elapsed, 2),
        "per_s": round(len(durations) / elapsed, 2),
        "dossier_seconds_p50": round(statistics.median(durations), 2) if durations else None,
    }


# --- memory --------------------------------------------------------------------------------------


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB (None when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class MemorySampler:
    """Samples the RSS of processes every ``interval_s`` and keeps the peak of each."""

    pids: dict[str, int]
    interval_s: float = 0.5
    peak: dict[str, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        for name, pid in self.pids.items():
            mb = rss_mb(pid)
            if mb is not None:
                self.peak[name] = max(self.peak.get(name, 0.0), mb)

    def __enter__(self) -> MemorySampler:
        def loop() -> None:
            while not self._stop.wait(self.interval_s):
                self.sample()

        self.sample()
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.sample()


class LockWaits:
    """How often PostgreSQL's backends of one database wait for a lock, sampled every
    ``interval_s`` while the block runs (``pg_stat_activity``): whether the event store's table
    lock is what limits a command rate."""

    def __init__(self, database_url: str, interval_s: float = 0.02) -> None:
        self.database_url = database_url
        self.interval_s = interval_s
        self.samples = 0
        self.with_waiter = 0
        self.waiters = 0
        self.active = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _loop(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self._stop.wait(self.interval_s):
                row = conn.execute(
                    "SELECT count(*) FILTER (WHERE wait_event_type = 'Lock'),"
                    " count(*) FILTER (WHERE state = 'active')"
                    " FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                ).fetchone()
                assert row is not None
                self.samples += 1
                self.waiters += row[0]
                self.active += row[1]
                self.with_waiter += row[0] > 0

    def __enter__(self) -> LockWaits:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def summary(self) -> dict[str, Any]:
        n = max(self.samples, 1)
        return {
            "samples": self.samples,
            "share_with_a_lock_waiter": round(self.with_waiter / n, 3),
            "mean_lock_waiters": round(self.waiters / n, 2),
            "mean_active_backends": round(self.active / n, 2),
        }


@dataclass(frozen=True)
class CpuMeter:
    """CPU seconds (user + system) used by processes, read from ``/proc`` (Linux).

    ``processes`` are counted on their own (every thread); ``trees`` are counted whole: the
    process, its live descendants and what it has reaped (PostgreSQL's backends are children of
    its postmaster, each in a session of its own). Where ``/proc`` is missing every reading is 0.
    """

    processes: dict[str, int]
    trees: dict[str, int]

    def read(self) -> dict[str, float]:
        tick = os.sysconf("SC_CLK_TCK")
        stats = _proc_stats()
        used = {name: _cpu_ticks(stats.get(pid)) for name, pid in self.processes.items()}
        children: dict[int, list[int]] = {}
        for pid, stat in stats.items():
            children.setdefault(int(stat[1]), []).append(pid)
        for name, root in self.trees.items():
            tree, todo = [], [root]
            while todo:
                pid = todo.pop()
                tree.append(pid)
                todo.extend(children.get(pid, []))
            fields = stats.get(root)
            reaped = int(fields[13]) + int(fields[14]) if fields else 0
            used[name] = reaped + sum(_cpu_ticks(stats.get(pid)) for pid in tree)
        return {name: ticks / tick for name, ticks in used.items()}


def _proc_stats() -> dict[int, list[str]]:
    """``/proc/<pid>/stat`` of every process, the fields after the command name (state first)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            stats[int(entry.name)] = raw[raw.rfind(")") + 2 :].split()
    return stats


def _cpu_ticks(fields: list[str] | None) -> int:
    return int(fields[11]) + int(fields[12]) if fields else 0


def cpu_per(before: dict[str, float], after: dict[str, float], count: int) -> dict[str, Any]:
    """CPU seconds per unit of work (a registration, a dossier) of each process (tree) and in
    all, between two readings."""
    per = {name: (after[name] - before.get(name, 0.0)) / max(count, 1) for name in after}
    return {
        "per_process_s": {name: round(value, 4) for name, value in per.items()},
        "total_s": round(sum(per.values()), 4),
    }


# --- relay ---------------------------------------------------------------------------------------


def seed_intake_log(settings: Settings, events: int, per_save: int = 100) -> dict[str, Any]:
    """Registrations written through intake's own application (batched saves) into a log."""
    app = intake_application(settings.eventsourcing_env("intake"))
    try:
        ctx = Context(now=utcnow(), actor_role="aanvrager", correlation_id="bench")
        public = 0
        began = time.perf_counter()
        for start in range(0, events, per_save):
            batch = [
                dien_in(uuid.uuid4(), Aanmelding.model_validate(registration()), ctx)
                for _ in range(min(per_save, events - start))
            ]
            public += sum(len(to_public(event)) for event in batch)
            app.record(*batch)
        seconds = time.perf_counter() - began
        with app.datastore.transaction(commit=False) as curs:
            curs.execute("SELECT avg(octet_length(state))::int AS size FROM intake.intake_events")
            row = curs.fetchone()
        assert row is not None
        return {
            "events": events,
            "public_events": public,
            "seconds": round(seconds, 2),
            "state_bytes": int(row["size"]),
        }
    finally:
        app.close()


async def relay_rate(settings: Settings, expected: int, timeout_s: float = 300) -> dict[str, Any]:
    """Intake's outbox relay publishing a seeded log onto the stream: acked events per second."""
    app = intake_application(settings.eventsourcing_env("intake"))
    relay = OutboxRelay(app, to_public, settings)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        async with asyncio.timeout(30):
            await relay.active.wait()
        began = time.perf_counter()
        deadline = began + timeout_s
        while relay.published < expected and time.perf_counter() < deadline:
            if task.done():
                task.result()
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - began
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        app.close()
    nc = await nats.connect(servers=settings.nats_servers)
    try:
        js = nc.jetstream()
        last = await js.get_last_msg(settings.stream_name, "weerbaar.intake.>")
        payload_bytes = len(last.data or b"")
    finally:
        await nc.close()
    return {
        "published": relay.published,
        "expected": expected,
        "seconds": round(elapsed, 3),
        "per_s": relay.published / elapsed,
        "payload_bytes": payload_bytes,
    }


def cloudevent_bytes(settings: Settings) -> int:
    """The size of the CloudEvent the relay publishes for the first stored registration."""
    app = intake_application(settings.eventsourcing_env("intake"))
    try:
        (first,) = app.recorder.select_notifications(1, 1)
        mapper = app.mapper
        assert isinstance(mapper, PydanticMapper)
        (event,) = mapper.to_domain_events([first])
        envelope = cloudevents_for("intake", settings, event, to_public(event))[0]
        return len(envelope.to_json())
    finally:
        app.close()


async def purge_stream(settings: Settings) -> None:
    """Empty the stream again, so the services start on a clean one."""
    nc = await nats.connect(servers=settings.nats_servers)
    try:
        await nc.jetstream().purge_stream(settings.stream_name)
    finally:
        await nc.close()


# --- projection rebuild --------------------------------------------------------------------------


def replay_projection(settings: Settings, env: dict[str, str], target: str) -> dict[str, Any]:
    """``weerbaar replay --no-switch`` (the product's ``Rebuild``) from every service's log into a
    fresh schema ``target``: the stored events read per second, and the fold step apart.

    The live projection stays as it is; the target is dropped afterwards.
    """
    rebuild = Rebuild(settings, target=target, progress=False, env=env)
    rebuild.prepare(restart=True)
    try:
        began = time.perf_counter()
        outcome = rebuild.run(switch=False)
        elapsed = time.perf_counter() - began
        assert outcome.complete, "the rebuild did not read every log to its end"
        return {
            "stored_events": outcome.loaded,
            "public_events": outcome.events,
            "dossiers": outcome.folded,
            "seconds": round(elapsed, 3),
            "load_seconds": round(outcome.load_seconds, 3),
            "fold_seconds": round(outcome.fold_seconds, 3),
            "per_s": outcome.loaded / elapsed,
            "fold_per_s": outcome.events / outcome.fold_seconds,
        }
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(target)))


def stored_events_query(settings: Settings) -> sql.Composed:
    """Every service's stored events (their JSON ``state``): the logs the rebuild reads, as it
    finds them (``Rebuild.ends``)."""
    rebuild = Rebuild(settings, progress=False)
    with rebuild.connect() as conn:
        ends = rebuild.ends(conn)
    return sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT state FROM {}").format(events_table(service))
        for service, end in ends.items()
        if end
    )


# --- the dossier list ----------------------------------------------------------------------------


def seed_dossiers(database_url: str, total: int) -> dict[str, Any]:
    """Fill intake's dossier projection up to ``total`` dossiers, directly in its table.

    The views are copies of real ones (from the dossiers the benchmark drove), each with its own
    id, a status drawn from a plausible spread, one of 50 municipalities, a submission moment in the
    last year and 10% past the contact deadline; column values and view agree.
    """
    rng = random.Random(8)  # noqa: S311 - reproducible test data
    with psycopg.connect(database_url) as conn:
        templates = [
            row[0]
            for row in conn.execute(
                "SELECT view::text FROM intake.dossiers WHERE zichtbaar ORDER BY random() LIMIT 200"
            )
        ]
        have = conn.execute("SELECT count(*) FROM intake.dossiers").fetchone()
        assert have is not None
        missing = max(0, total - int(have[0]))
        if not templates:
            raise RuntimeError("no dossier to copy: the projection is empty")
        names = [s for s, _ in STATUSES]
        weights = [w for _, w in STATUSES]
        now = datetime.now(UTC)
        began = time.perf_counter()
        with conn.cursor().copy(
            "COPY intake.dossiers (aanvraag_id, zichtbaar, status, organisatie_code,"
            " contact_deadline, deadline_verstreken, ingediend_op, bijgewerkt_op, view)"
            " FROM STDIN"
        ) as copy:
            for n in range(missing):
                aanvraag_id = uuid.uuid4()
                status = rng.choices(names, weights)[0]
                organisatie = rng.choice(ORGANISATIES)
                ingediend = now - timedelta(seconds=rng.uniform(0, 365 * 86400))
                verstreken = rng.random() < 0.1
                deadline = ingediend + timedelta(days=5)
                view = json.loads(templates[n % len(templates)])
                view.update(
                    aanvraag_id=str(aanvraag_id),
                    status=status,
                    organisatie_code=organisatie,
                    ingediend_op=ingediend.isoformat(),
                    contact_deadline=deadline.isoformat(),
                    deadline_verstreken=verstreken,
                )
                copy.write_row(
                    (
                        aanvraag_id,
                        True,
                        status,
                        organisatie,
                        deadline,
                        verstreken,
                        ingediend,
                        now,
                        json.dumps(view),
                    )
                )
        conn.execute("ANALYZE intake.dossiers")
        conn.commit()
    return {
        "seeded": missing,
        "total": total,
        "seconds": round(time.perf_counter() - began, 2),
        "how": "COPY into intake.dossiers (copies of real views)",
    }


LIST_FILTERS: list[dict[str, Any]] = [
    {"status": "ingediend"},
    {"status": "in_uitvoering", "organisatie_code": "GM0344"},
    {"deadline_verstreken": "true"},
    {"organisatie_code": "GM0362"},
    {"status": "contact_opgenomen", "deadline_verstreken": "false"},
    {},
]


def list_latency(intake_url: str, headers: dict[str, str], requests: int) -> dict[str, Any]:
    """p50/p99 of GET /aanvragen with filters (default page size), one request at a time."""
    timings: list[float] = []
    per_filter: dict[str, list[float]] = {}
    with httpx.Client(base_url=intake_url, timeout=30, headers=headers) as client:
        for n in range(requests):
            params = LIST_FILTERS[n % len(LIST_FILTERS)]
            began = time.perf_counter()
            response = client.get("/aanvragen", params=params)
            ms = (time.perf_counter() - began) * 1000
            response.raise_for_status()
            timings.append(ms)
            per_filter.setdefault(json.dumps(params), []).append(ms)
    return {
        "requests": requests,
        "p50_ms": round(percentile(timings, 50), 1),
        "p99_ms": round(percentile(timings, 99), 1),
        "p99_ms_per_filter": {k: round(percentile(v, 99), 1) for k, v in per_filter.items()},
    }


def explain_list(database_url: str) -> dict[str, str]:
    """EXPLAIN ANALYZE of the list's query for each filter (what the database does)."""
    plans: dict[str, str] = {}
    with psycopg.connect(database_url) as conn:
        for params in LIST_FILTERS:
            clauses: list[sql.Composable] = [sql.SQL("zichtbaar")]
            values: list[Any] = []
            for key, value in params.items():
                clauses.append(sql.SQL("{} = %s").format(sql.Identifier(key)))
                values.append(value == "true" if key == "deadline_verstreken" else value)
            query = sql.SQL(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) SELECT view FROM intake.dossiers"
                " WHERE {} ORDER BY ingediend_op DESC LIMIT 100"
            ).format(sql.SQL(" AND ").join(clauses))
            rows = conn.execute(query, values).fetchall()
            plans[json.dumps(params)] = "\n".join(r[0] for r in rows)
    return plans


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """fn's result and how long it took."""
    began = time.perf_counter()
    return fn(), time.perf_counter() - began


# --- the portal's pages --------------------------------------------------------------------------

#: The portal's pages as the people of the process open them: (name, demo person, path, the
#: status it answers). ``{dossier}`` is a dossier the benchmark drove (``{rapport}`` its report,
#: ``{nu}`` a moment after it closed); ``{pagina10}`` the
#: werkvoorraad's tenth page, reached by following "Volgende pagina" (keyset paging). A journey
#: adds its pages here.
PORTAL_PAGES: list[tuple[str, str, str, int]] = [
    ("home", "", "/", 200),
    ("aanmelden", "", "/aanmelden", 200),
    ("start", "sec-demo", "/start", 200),
    ("werkvoorraad", "sec-demo", "/secretariaat/werkvoorraad", 200),
    ("werkvoorraad, status", "sec-demo", "/secretariaat/werkvoorraad?status=ingediend", 200),
    ("werkvoorraad, verstreken", "sec-demo", "/secretariaat/werkvoorraad?verstreken=ja", 200),
    ("werkvoorraad, pagina 10", "sec-demo", "{pagina10}", 200),
    ("zoeken op nummer", "sec-demo", "/secretariaat/zoeken", 303),
    ("dossier (secretariaat)", "sec-demo", "/secretariaat/dossiers/{dossier}", 200),
    ("afspraken (adviseur)", "adv-demo", "/adviseur/afspraken", 200),
    ("rapport (adviseur)", "adv-demo", "/adviseur/dossiers/{dossier}/rapport", 200),
    ("verschillen (adviseur)", "adv-demo", "/adviseur/dossiers/{dossier}/rapport/verschillen", 200),
    ("toetsing (BVA)", "bva-demo", "/bva/toetsing", 200),
    ("rapport (BVA)", "bva-demo", "/bva/rapporten/{rapport}", 200),
    ("dossier (bestuurder)", "bst-demo", "/bestuurder/dossiers/{dossier}", 200),
    ("rapport (bestuurder)", "bst-demo", "/bestuurder/dossiers/{dossier}/rapport", 200),
    ("instemming (bestuurder)", "bst-demo", "/bestuurder/dossiers/{dossier}/instemming", 200),
    ("maatregelen (bestuurder)", "bst-demo", "/bestuurder/dossiers/{dossier}/maatregelen", 200),
    ("dossiers (werkgever)", "wg-demo", "/werkgever/dossiers", 200),
    ("dossier (werkgever)", "wg-demo", "/werkgever/dossiers/{dossier}", 200),
    ("webhooks (werkgever)", "wg-demo", "/werkgever/webhooks", 200),
    ("dossiers (compliance)", "cmp-demo", "/compliance/dossiers", 200),
    ("dossier (compliance)", "cmp-demo", "/compliance/dossiers/{dossier}", 200),
    ("per moment (compliance)", "cmp-demo", "/compliance/dossiers/{dossier}/per?moment={nu}", 200),
    ("verificatie (compliance)", "cmp-demo", "/compliance/verificatie", 200),
]
#: The pages of ``PORTAL_PAGES`` that are form posts, and the fields each sends beside the
#: person's CSRF token (``{dossier}`` as above): a search keeps what is typed out of the URL.
PORTAL_FORM_POSTS: dict[str, dict[str, str]] = {"zoeken op nummer": {"nummer": "{dossier}"}}
#: Actions behind a GET that do work in proportion to the whole history, not to a page: timed
#: like the pages, fewer times, and reported beside them (not held to the pages' goal).
PORTAL_ACTIONS: list[tuple[str, str, str, int]] = [
    (
        "verificatie opnieuw (compliance)",
        "cmp-demo",
        "/compliance/verificatie?opnieuw=true",
        200,
    ),
]
#: The demo bestuurder's address and the demo werkgever's organisation: the dossier the pages
#: show is theirs (``services/portal/adapters/inloggen.py``).
DEMO_BESTUURDER = "bestuurder@example.org"
DEMO_ORGANISATIE = "GM0344"
_VOLGENDE = re.compile(r'href="(/secretariaat/werkvoorraad\?[^"]+)">Volgende pagina<')


def _csrf(client: httpx.Client, path: str) -> str:
    """The CSRF token of ``client``'s session, from the form on the page at ``path``."""
    page = client.get(path)
    page.raise_for_status()
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    if found is None:
        raise RuntimeError(f"no CSRF field on {path}")
    return found.group(1)


def _portal_session(client: httpx.Client, persoon: str) -> None:
    """Sign ``client`` in as a demo person through the development sign-in."""
    csrf = _csrf(client, "/inloggen/demo")
    answer = client.post("/inloggen/demo", data={"csrf": csrf, "persoon": persoon})
    if answer.status_code not in (200, 303):
        raise RuntimeError(f"sign-in as {persoon} answered {answer.status_code}")


def _pagina(client: httpx.Client, nummer: int) -> str:
    """The werkvoorraad's page ``nummer``, by following its "Volgende pagina" links."""
    url = "/secretariaat/werkvoorraad"
    for _ in range(nummer - 1):
        found = _VOLGENDE.search(client.get(url).text)
        if found is None:
            raise RuntimeError(f"the werkvoorraad has fewer than {nummer} pages")
        url = html.unescape(found.group(1))
    return url


def portal_page_times(portal_url: str, dossier: str, rapport: str, requests: int) -> dict[str, Any]:
    """p50/p95 of each portal page, one request at a time, each page as its person opens it;
    then the same of each action (``PORTAL_ACTIONS``), a tenth as often.

    Timed from the request's start to the last byte of the page over loopback: the portal's
    server time plus what the services' APIs it calls take (an upper bound of its own time).
    """
    clients: dict[str, httpx.Client] = {}

    def client_of(persoon: str) -> httpx.Client:
        client = clients.get(persoon)
        if client is None:
            client = httpx.Client(base_url=portal_url, timeout=30, follow_redirects=False)
            if persoon:
                _portal_session(client, persoon)
            clients[persoon] = client
        return client

    def times(lijst: list[tuple[str, str, str, int]], aantal: int) -> dict[str, dict[str, Any]]:
        gemeten: dict[str, dict[str, Any]] = {}
        for name, persoon, path, status in lijst:
            client = client_of(persoon)
            nu = datetime.now(ZoneInfo("Europe/Amsterdam")).strftime("%Y-%m-%dT%H:%M:%S")
            url = (
                _pagina(client, 10)
                if path == "{pagina10}"
                else path.format(dossier=dossier, rapport=rapport, nu=nu)
            )
            velden = PORTAL_FORM_POSTS.get(name)
            formulier = None
            if velden is not None:
                formulier = {k: v.format(dossier=dossier) for k, v in velden.items()}
                formulier["csrf"] = _csrf(client, "/start")
            timings: list[float] = []
            for _ in range(aantal):
                began = time.perf_counter()
                if formulier is None:
                    response = client.get(url)
                else:
                    response = client.post(url, data=formulier)
                timings.append((time.perf_counter() - began) * 1000)
                if response.status_code != status:
                    raise RuntimeError(f"{name}: {path} answered {response.status_code}")
                if formulier is not None and dossier not in response.headers.get("location", ""):
                    raise RuntimeError(f"{name}: {path} did not lead to the dossier")
            gemeten[name] = {
                "path": path,
                "p50_ms": round(percentile(timings, 50), 1),
                "p95_ms": round(percentile(timings, 95), 1),
            }
        return gemeten

    try:
        pages = times(PORTAL_PAGES, requests)
        acties = times(PORTAL_ACTIONS, max(3, requests // 10))
    finally:
        for client in clients.values():
            client.close()
    slowest = max(pages, key=lambda n: pages[n]["p95_ms"])
    return {
        "requests_per_page": requests,
        "pages": pages,
        "slowest": slowest,
        "max_p95_ms": pages[slowest]["p95_ms"],
        "actions": acties,
    }
