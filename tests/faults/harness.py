"""The fault-injection harness: a whole system of real processes, dossiers driven through it while
something breaks, and the end state checked against what a fault-free run produces.

A run starts its own embedded PostgreSQL and NATS (so it may stop, kill and wipe them), the mail
catcher and the five services as OS processes (``tools.system.System``), either one process per
service or one per role. ``FaultDriver`` (a ``tools.demo.DossierDriver``) takes a dossier through
the whole process over HTTP and keeps going through the faults: a refused connection or a 503 is
retried, and every attempt is logged with its own ``X-Correlation-Id``, which the service stores
on every event the attempt records. The checks after the run then read the system of record:

- every command answered 2xx has its events in its service's event store; no attempt answered with
  an error left an event anywhere (refusals, which are recorded on purpose, excepted);
- every public event the event stores announce (``--export-public``, read fresh from PostgreSQL) is
  on the stream exactly once (by CloudEvent id = ``Nats-Msg-Id``), and nothing else is;
- the dossier projection equals a fold of the dossier's events as the stream holds them;
- every dossier has the events a fault-free dossier has; every mail went out once (by Message-ID).

Sizes come from the environment (``weerbaar faults`` sets them): ``WEERBAAR_FAULTS_DOSSIERS``
(per scenario, default 120), ``WEERBAAR_FAULTS_WORKERS`` (dossiers driven at once),
``WEERBAAR_FAULTS_REPORT_DIR`` (default ``.data/faults``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import nats
import psycopg
from psycopg.rows import dict_row
from psycopg.sql import SQL, Identifier

from shared.contracts.envelope import CloudEvent
from shared.contracts.registry import from_cloudevent
from shared.platform.auth import load_or_create_secret
from shared.platform.http import COMMIT_IN_DOUBT_CODE
from shared.platform.relay import POSITION_HEADER, PositionHeader
from shared.platform.settings import SERVICES
from tests import servers
from tests.support import StreamMessage, stream_messages
from tools.demo import Actors, DemoError, DossierDriver
from tools.embedded import free_port
from tools.mailcatcher import list_messages
from tools.system import ServiceProcess, System

ROOT = Path(__file__).resolve().parents[2]

DOSSIERS = int(os.environ.get("WEERBAAR_FAULTS_DOSSIERS", "120"))
WORKERS = int(os.environ.get("WEERBAAR_FAULTS_WORKERS", "16"))
REPORT_DIR = Path(os.environ.get("WEERBAAR_FAULTS_REPORT_DIR", str(ROOT / ".data" / "faults")))

#: Short enough that a message held by a dead or stalled consumer comes back within the run.
ACK_WAIT_S = 4.0
#: How long a driver keeps retrying one step before the dossier counts as lost.
STEP_TIMEOUT_S = 180.0
#: Public events whose number depends on timing, not on the process: refusals of reads that came
#: too early, report reads (one per successful read), addresses handed out (one per send attempt).
VARIABLE_EVENTS = frozenset(
    {
        "ToegangGeweigerd",
        "RapportIngezien",
        "PersoonsgegevensVerstrekt",
        "NotificatieMislukt(retry)",
    }
)

SERVICE_ENV = {
    "WEERBAAR_CONSUMER_ACK_WAIT_S": str(ACK_WAIT_S),
    "WEERBAAR_SENDER_INTERVAL_S": "0.5",
    "WEERBAAR_DEADLINE_CHECK_INTERVAL_S": "5",
    "WEERBAAR_LOG_LEVEL": "INFO",
}


def budget_s(dossiers: int = DOSSIERS, per_dossier_s: float = 6.0) -> float:
    """A test's time limit: start-up and checks plus a generous time per dossier."""
    return 240 + dossiers * per_dossier_s


# --- the system ------------------------------------------------------------------------------


@dataclass
class Fault:
    """One fault injected into the run."""

    kind: str
    target: str
    at_s: float
    healed_s: float | None = None
    recovered_s: float | None = None


class World:
    """A whole system on its own servers, with the handles to break it."""

    def __init__(self, system: System, started: float) -> None:
        self.system = system
        self.started = started
        self.faults: list[Fault] = []
        self.lock = threading.Lock()

    @property
    def urls(self) -> dict[str, str]:
        """Each service's API."""
        return {s: self.system.url(s) for s in SERVICES}

    @property
    def database_url(self) -> str:
        """The system's database."""
        assert self.system.database_url is not None
        return self.system.database_url

    @property
    def nats_url(self) -> str:
        """The system's NATS."""
        assert self.system.nats_url is not None
        return self.system.nats_url

    def now(self) -> float:
        """Seconds since the run started."""
        return time.monotonic() - self.started

    def fault(self, kind: str, target: str) -> Fault:
        """Record that a fault starts now."""
        fault = Fault(kind, target, round(self.now(), 3))
        with self.lock:
            self.faults.append(fault)
        return fault

    def healed(self, fault: Fault) -> None:
        """Record that what the fault broke is back."""
        fault.healed_s = round(self.now(), 3)

    def processes(self, *roles: str) -> list[ServiceProcess]:
        """The running service processes with one of these roles (all when none given)."""
        return [p for p in self.system.processes if not roles or set(p.roles) & set(roles)]

    def kill_and_restart(self, proc: ServiceProcess) -> ServiceProcess:
        """SIGKILL a service process and start it again with the same roles."""
        fault = self.fault("sigkill", proc.log_path.stem)
        restarted = self.system.restart_process(proc, signal.SIGKILL)
        self.healed(fault)
        return restarted

    def api_ready(self, service: str, timeout: float = 60) -> None:
        """Wait until a service's API answers its readiness check."""
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as client:
            while time.monotonic() < deadline:
                try:
                    if client.get(f"{self.system.url(service)}/health/live").status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
        raise AssertionError(f"{service} did not come back within {timeout}s")


def _spawn_split(system: System) -> None:
    for service in SERVICES:
        system.spawn(service, ("api",), name=f"{service}-api")
        system.spawn(service, ("relay",), name=f"{service}-relay")
        system.spawn(service, ("consumers",), name=f"{service}-consumers")
        system.spawn(service, ("workers", "checkpointer"), name=f"{service}-workers")


@contextmanager
def world(
    name: str,
    *,
    split: bool = False,
    extra: Callable[[System], None] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[World]:
    """A fresh system on its own embedded servers: one process per service, or per role;
    ``env`` adds to (or overrides) the services' environment."""
    with servers.scratch_dir(f"faults-{name}") as base:
        system = System(
            data_dir=base / "data",
            extra_env={**SERVICE_ENV, **(env or {})},
            preferred_ports={s: free_port() for s in SERVICES},
        )
        try:
            system.start_servers()
            if split:
                _spawn_split(system)
            else:
                for service in SERVICES:
                    system.spawn(service)
            if extra is not None:
                extra(system)
            system.wait_ready(timeout=120)
            yield World(system, time.monotonic())
        finally:
            system.stop()
            # The scratch directory goes; the run's service logs stay with its report.
            kept = REPORT_DIR / f"logs-{name}"
            shutil.rmtree(kept, ignore_errors=True)
            if (system.data_dir / "logs").exists():
                shutil.copytree(system.data_dir / "logs", kept)


# --- driving dossiers ------------------------------------------------------------------------


@dataclass
class Attempt:
    """One HTTP attempt of a command or read."""

    call: int
    dossier: str
    method: str
    service: str
    path: str
    correlation: str
    started_s: float
    elapsed_s: float
    status: int | None  # None: no answer (connection refused or cut)
    body: str = ""
    content_type: str = ""
    #: Why there was no answer: the client's exception (ConnectError, ReadTimeout, …).
    error: str = ""

    @property
    def kind(self) -> str:
        """How the attempt ended, for the report: ``201``, ``503 database_bezet``,
        ``no_answer RemoteProtocolError``."""
        if self.status is None:
            return f"no_answer {self.error}".rstrip()
        if self.status >= 500 and self.content_type.startswith("application/problem+json"):
            with suppress(ValueError, AttributeError):
                return f"{self.status} {json.loads(self.body).get('code')}"
        return str(self.status)

    @property
    def outcome_unknown(self) -> bool:
        """No answer, or the 503 that says the commit is in doubt: the command may have been
        recorded under this attempt."""
        return self.status is None or (
            self.status == 503 and f'"{COMMIT_IN_DOUBT_CODE}"' in self.body
        )


@dataclass
class RunLog:
    """Everything the drivers did, for the checks and the report."""

    world: World
    attempts: list[Attempt] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    lost: list[tuple[str, str]] = field(default_factory=list)
    durations: list[float] = field(default_factory=list)
    #: (start, end, what, dossier) of every wait for another service to hear of a step.
    waits: list[tuple[float, float, str, str]] = field(default_factory=list)
    calls: Iterator[int] = field(default_factory=itertools.count)
    #: Set (with the reason) when the run cannot succeed any more, e.g. a service process
    #: exited: the drivers stop at their next attempt instead of retrying until their timeout.
    aborted: threading.Event = field(default_factory=threading.Event)
    abort_reason: str = ""

    def abort(self, reason: str) -> None:
        """End the run early: every driver gives up its dossier at its next attempt."""
        self.abort_reason = self.abort_reason or reason
        self.aborted.set()

    def progress(self) -> int:
        """Dossiers finished (through the whole process, or lost)."""
        return len(self.completed) + len(self.lost)


class FaultDriver(DossierDriver):
    """A DossierDriver that keeps going through faults and logs every attempt.

    No answer (the API process is down or was killed mid-request) and 502/503/504 are retried
    with the same request; the outcome of an unanswered attempt is unknown, so the checks accept
    its effect under any attempt of the same call. Every other status is handled as the process
    says (the parent's ``expect``).
    """

    wait_timeout_s = STEP_TIMEOUT_S
    poll_s = 0.25

    def __init__(self, log: RunLog, actors: Actors, client: httpx.Client) -> None:
        super().__init__(log.world.urls, actors, client)
        self.log = log
        self.unanswered = False

    def call(
        self,
        method: str,
        service: str,
        path: str,
        role: str | None,
        *,
        expect: int | tuple[int, ...] = (200, 201),
        sub: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One call, retried while there is no answer or the service is unavailable."""
        wanted = (expect,) if isinstance(expect, int) else expect
        headers = dict(kwargs.pop("headers", {}))
        call = next(self.log.calls)
        deadline = time.monotonic() + STEP_TIMEOUT_S
        self.unanswered = False
        backoff = 0.1
        while True:
            if self.log.aborted.is_set():
                raise DemoError(f"run aborted: {self.log.abort_reason}")
            correlation = uuid.uuid4().hex
            started = time.monotonic()
            try:
                response = super().call(
                    method,
                    service,
                    path,
                    role,
                    expect=tuple(range(100, 600)),
                    sub=sub,
                    headers={**headers, "X-Correlation-Id": correlation},
                    **kwargs,
                )
            except httpx.TransportError as exc:
                response = None
                error = type(exc).__name__
            else:
                error = ""
            self.log.attempts.append(
                Attempt(
                    call=call,
                    dossier=self.aanvraag_id,
                    method=method,
                    service=service,
                    path=path,
                    correlation=correlation,
                    started_s=started - self.log.world.started,
                    elapsed_s=time.monotonic() - started,
                    status=None if response is None else response.status_code,
                    body="" if response is None or response.status_code < 400 else response.text,
                    content_type=""
                    if response is None
                    else response.headers.get("content-type", ""),
                    error=error,
                )
            )
            retry = response is None or (
                response.status_code in (502, 503, 504) and response.status_code not in wanted
            )
            if not retry:
                assert response is not None
                if response.status_code not in wanted:
                    raise DemoError(f"{method} {path} as {role}: {response.status_code}")
                return response
            self.unanswered = self.unanswered or self.log.attempts[-1].outcome_unknown
            if time.monotonic() > deadline:
                raise DemoError(f"{method} {path}: no answer for {STEP_TIMEOUT_S:.0f}s")
            time.sleep(backoff)  # back-off between retries, not a wait for a condition
            backoff = min(1.0, backoff * 2)

    def eventually(self, *args: Any, **kwargs: Any) -> httpx.Response:
        """The parent's, timed (for the time to recover)."""
        started = self.log.world.now()
        response = super().eventually(*args, **kwargs)
        what = f"{args[0]} {args[1]} {args[2].replace(self.aanvraag_id, '{id}')}"
        self.log.waits.append((started, self.log.world.now(), what, self.aanvraag_id))
        return response

    def wait_for_status(self, *statuses: str) -> dict[str, Any]:
        """The parent's, timed (for the time to recover)."""
        started = self.log.world.now()
        dossier = super().wait_for_status(*statuses)
        what = f"status {'/'.join(statuses)}"
        self.log.waits.append((started, self.log.world.now(), what, self.aanvraag_id))
        return dossier

    def dien_in(self) -> dict[str, Any]:
        """Submit; when a lost answer's submission did happen, read what was submitted."""
        path = f"/rapporten/{self.rapport_id}/indienen"
        response = self.call("POST", "assessment", path, "adviseur", expect=(200, 409))
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        if not self.unanswered:
            raise DemoError(f"POST {path}: 409 without a lost answer before it")
        rapport = self.call("GET", "assessment", f"/rapporten/{self.rapport_id}", "adviseur")
        read: dict[str, Any] = rapport.json()
        return {"versie": read["versie"], "inhoud_hash": read["inhoud_hash"]}


def full_process(d: DossierDriver) -> None:
    """One dossier through every step: the demo's path (with a rejection and a revision)."""
    d.volledig_proces()


def driver_source(index: int) -> str:
    """The source address of the ``index``-th dossier's client: one in 127.1.0.0/16 (the whole
    of 127/8 is this machine)."""
    return f"127.1.{index // 250 % 250}.{index % 250 + 1}"


def drive_one(log: RunLog, index: int) -> None:
    """Drive one dossier; record it as completed or lost."""
    world = log.world
    actors = Actors(
        secret=load_or_create_secret(world.system.data_dir / "secrets" / "jwt.key"),
        bestuurder_email=f"bestuurder.{index}.{uuid.uuid4().hex[:8]}@example.org",
        organisatie="GM0363",
    )
    started = time.monotonic()
    # Each dossier's people on a machine of their own (a loopback address of their own), as
    # the limits per source address see them.
    transport = httpx.HTTPTransport(local_address=driver_source(index))
    with httpx.Client(timeout=30, transport=transport) as client:
        driver = FaultDriver(log, actors, client)
        try:
            full_process(driver)
        except (DemoError, httpx.HTTPError) as exc:
            log.lost.append((driver.aanvraag_id, f"{type(exc).__name__}: {str(exc)[:200]}"))
            return
    log.durations.append(time.monotonic() - started)
    log.completed.append(driver.aanvraag_id)


def drive(
    world: World,
    dossiers: int,
    *,
    workers: int = WORKERS,
    fault: Callable[[RunLog, threading.Event], None] | None = None,
    rate_per_s: float | None = None,
) -> RunLog:
    """Drive ``dossiers`` dossiers through the process, ``workers`` at a time, while ``fault``
    runs in its own thread (until every dossier is done). With ``rate_per_s`` new dossiers start
    at that rate (open loop) instead of as soon as a worker is free."""
    log = RunLog(world)
    done = threading.Event()
    injector: threading.Thread | None = None
    failure: list[BaseException] = []
    if fault is not None:

        def run_fault() -> None:
            try:
                fault(log, done)
            except BaseException as exc:  # reported after the run
                failure.append(exc)

        injector = threading.Thread(target=run_fault, name="fault", daemon=True)
        injector.start()
    try:
        with ThreadPoolExecutor(workers) as pool:
            futures = []
            begin = time.monotonic()
            for index in range(dossiers):
                if rate_per_s is not None:
                    due = begin + index / rate_per_s
                    if (delay := due - time.monotonic()) > 0:
                        time.sleep(delay)  # the arrival schedule of the load test
                futures.append(pool.submit(drive_one, log, index))
            for future in as_completed(futures):
                future.result()
    finally:
        done.set()
        if injector is not None:
            injector.join(timeout=120)
    if failure:
        raise failure[0]
    return log


def wait_progress(log: RunLog, fraction: float, done: threading.Event, total: int) -> bool:
    """Wait until this fraction of the dossiers is done; False when the run ended first."""
    while log.progress() < total * fraction:
        if done.wait(0.2):
            return False
    return True


# --- reading the end state -------------------------------------------------------------------


def events_table(service: str) -> Identifier:
    """A service's event store table (the library names it after the application)."""
    return Identifier(service, f"{service}_events")


#: How long the system must look at rest, reading after reading, before the end state is read.
#: "Nothing waiting" already covers every hand-over (an event is stored before its relay
#: publishes it, a message stays pending or unacknowledged until its handler has stored what it
#: does, a message held by a dead or stalled consumer stays unacknowledged until it was delivered
#: again and acknowledged, a planned mail stays planned until its sent event is stored); the
#: window only keeps one reading, taken in parts, from missing a hand-over between its parts.
QUIET_S = 2.0
#: Time between readings while settling.
SETTLE_POLL_S = 0.25


def settle(world: World, stalled_s: float = 180, cap_s: float = 1800) -> float:
    """Wait until the run came to rest (nothing left to relay, acknowledge or send, and the API
    says no mail is planned, for ``QUIET_S`` of readings in a row): seconds.

    A backlog may take longer than ``stalled_s`` to drain after a long run (the services share
    the machine's cores with the drivers until the last dossier): the wait goes on while the work
    still waiting keeps shrinking, and fails once it has not shrunk for ``stalled_s`` (or after
    ``cap_s`` in all)."""
    started = time.monotonic()
    quiet_since: float | None = None
    least, progress_at = float("inf"), started
    while True:
        waiting = _work_waiting(world)
        now = time.monotonic()
        if waiting == 0 and _mails_announced(world):
            quiet_since = quiet_since or now
            if now - quiet_since >= QUIET_S:
                return round(now - started, 2)
        else:
            quiet_since = None
            if waiting < least:
                least, progress_at = waiting, now
        if now - progress_at > stalled_s or now - started > cap_s:
            raise AssertionError(
                f"the system did not come to rest: {waiting} items of work still waiting,"
                f" none done in the last {now - progress_at:.0f}s ({now - started:.0f}s in all)"
            )
        time.sleep(SETTLE_POLL_S)  # the interval between readings of the wait above


def _work_waiting(world: World) -> int:
    """Events not yet relayed, mails not yet sent, and messages not yet acknowledged (a stream
    without consumers yet counts as one item: they are still to come)."""
    with psycopg.connect(world.database_url, autocommit=True) as conn:
        waiting = 0
        for service in SERVICES:
            row = conn.execute(
                SQL(
                    "SELECT (SELECT coalesce(max(notification_id), 0) FROM {}) -"
                    " coalesce((SELECT notification_id FROM {} WHERE service = %s), 0)"
                ).format(events_table(service), Identifier(service, "relay_position")),
                (service,),
            ).fetchone()
            waiting += max(0, row[0]) if row else 0
        row = conn.execute(
            "SELECT count(*) FROM notifications.deliveries WHERE status = 'gepland'"
        ).fetchone()
        waiting += row[0] if row else 0
    return waiting + asyncio.run(_messages_waiting(world.nats_url, "WEERBAAR"))


async def _messages_waiting(nats_url: str, stream: str) -> int:
    nc = await nats.connect(nats_url, max_reconnect_attempts=1, connect_timeout=2)
    try:
        infos = await nc.jetstream(timeout=5).consumers_info(stream)
        if not infos:
            return 1
        return sum((i.num_pending or 0) + (i.num_ack_pending or 0) for i in infos)
    finally:
        await nc.close()


def _mails_announced(world: World) -> bool:
    """No notification waits to be sent (the delivery log has nothing planned)."""
    secret = load_or_create_secret(world.system.data_dir / "secrets" / "jwt.key")
    headers = Actors(secret, "-", "-").headers("secretariaat")
    try:
        with httpx.Client(timeout=10) as client:
            response = client.get(
                f"{world.system.url('notifications')}/notificaties",
                params={"status": "gepland", "limit": 1},
                headers=headers,
            )
    except httpx.TransportError:
        return False  # the API is restarting (the last kill may have just hit it)
    return response.status_code == 200 and response.json() == []


def exported_envelopes(world: World) -> dict[str, list[CloudEvent]]:
    """Per service: the public events its event store announces, read fresh from PostgreSQL.

    The five exports run side by side (each is a process of its own that mostly starts up)."""

    def export(service: str) -> list[CloudEvent]:
        done = subprocess.run(
            [sys.executable, "-m", f"services.{service}", "--export-public", "0"],
            env={**world.system.env(), "WEERBAAR_LOG_LEVEL": "WARNING"},
            capture_output=True,
            timeout=300,
            check=True,
            cwd=ROOT,
        )
        envelopes = []
        for line in done.stdout.splitlines():
            if line.strip():
                envelopes += [CloudEvent.model_validate(e) for e in json.loads(line)["e"]]
        return envelopes

    with ThreadPoolExecutor(len(SERVICES)) as pool:
        exports = {service: pool.submit(export, service) for service in SERVICES}
        return {service: future.result() for service, future in exports.items()}


def stored_correlations(world: World) -> dict[str, Counter[str]]:
    """Per service: how many stored events carry each correlation id (refusals left out)."""
    out: dict[str, Counter[str]] = {}
    with psycopg.connect(world.database_url, autocommit=True) as conn:
        for service in SERVICES:
            counts: Counter[str] = Counter()
            rows = conn.execute(SQL("SELECT topic, state FROM {}").format(events_table(service)))
            for topic, state in rows:
                if "ToegangGeweigerd" in topic:
                    continue  # a refusal is recorded on purpose, whatever the answer
                correlation = json.loads(bytes(state)).get("correlation_id")
                if correlation:
                    counts[correlation] += 1
            out[service] = counts
    return out


def count_events(world: World) -> dict[str, int]:
    """Stored events per service."""
    with psycopg.connect(world.database_url, autocommit=True) as conn:
        return {
            s: int(
                conn.execute(SQL("SELECT count(*) FROM {}").format(events_table(s))).fetchone()[0]  # type: ignore[index]
            )
            for s in SERVICES
        }


def log_lines(world: World, message: str) -> int:
    """How many lines of the service logs carry this message."""
    needle = json.dumps(message)
    total = 0
    for path in (world.system.data_dir / "logs").glob("*.log"):
        with path.open(errors="replace") as handle:
            total += sum(1 for line in handle if f'"message": {needle}' in line)
    return total


# --- the checks ------------------------------------------------------------------------------


@dataclass
class Findings:
    """What the end state shows; every list must be empty for the run to pass."""

    dossiers: int = 0
    completed: int = 0
    lost_dossiers: list[str] = field(default_factory=list)
    stored_events: dict[str, int] = field(default_factory=dict)
    public_events: int = 0
    missing_on_stream: list[str] = field(default_factory=list)
    twice_on_stream: list[str] = field(default_factory=list)
    unknown_on_stream: list[str] = field(default_factory=list)
    projection_mismatches: list[str] = field(default_factory=list)
    model_mismatches: list[str] = field(default_factory=list)
    commands_2xx: int = 0
    commands_2xx_without_events: list[str] = field(default_factory=list)
    errors_with_events: list[str] = field(default_factory=list)
    answers_500: list[str] = field(default_factory=list)
    unanswered_attempts: int = 0
    #: Attempts answered 503 ``uitkomst_onbekend`` (the connection was lost at COMMIT).
    commits_in_doubt: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    #: The 5xx answers by problem code and the attempts without an answer by the client's error.
    unusual_answers: Counter[str] = field(default_factory=Counter)
    mails: int = 0
    mails_distinct: int = 0
    mail_duplicates: int = 0
    mails_announced: int = 0
    redeliveries: int = 0
    #: Messages an inbox refused as already processed (deduplication ran).
    duplicates_refused: int = 0
    #: Consumers and relays that lost NATS and connected again.
    reconnects: int = 0
    #: Handler attempts that met a transient failure (the database away) and were put back.
    transient_retries: int = 0
    settle_s: float = 0.0

    def problems(self) -> dict[str, Any]:
        """Every finding that breaks a promise (empty when the run passed)."""
        found: dict[str, Any] = {}
        for name in (
            "lost_dossiers",
            "missing_on_stream",
            "twice_on_stream",
            "unknown_on_stream",
            "projection_mismatches",
            "model_mismatches",
            "commands_2xx_without_events",
            "errors_with_events",
            "answers_500",
        ):
            if value := getattr(self, name):
                found[name] = value[:10]
        if self.mails_distinct != self.mails_announced:
            found["mails"] = {"distinct": self.mails_distinct, "announced": self.mails_announced}
        return found


def by_dossier(messages: Iterable[StreamMessage]) -> dict[str, list[tuple[CloudEvent, int]]]:
    """The stream's events per dossier, with their stream sequences."""
    out: dict[str, list[tuple[CloudEvent, int]]] = {}
    for m in messages:
        envelope = CloudEvent.from_json(m.data)
        aanvraag_id = getattr(from_cloudevent(envelope), "aanvraag_id", None)
        if aanvraag_id is not None:
            out.setdefault(str(aanvraag_id), []).append((envelope, m.sequence))
    return out


def event_name(envelope: CloudEvent) -> str:
    """The event's name; a failed delivery attempt that will be retried is told apart from a
    final failure (the first depends on timing, the second would be a lost mail)."""
    name = envelope.type.split(".")[-2]
    if name == "NotificatieMislukt" and not envelope.data.get("definitief"):
        return "NotificatieMislukt(retry)"
    return name


#: How many of each event a dossier has (the events whose number depends on timing left out).
Signature = tuple[tuple[str, int], ...]


def _signature(names: list[str]) -> Signature:
    return tuple(sorted(Counter(n for n in names if n not in VARIABLE_EVENTS).items()))


def check(
    world: World,
    log: RunLog,
    model: Signature,
    *,
    ignore_subjects: frozenset[str] = frozenset(),
) -> Findings:
    """Read the end state and compare it with the promises (and with a fault-free dossier)."""
    findings = Findings(dossiers=log.progress(), completed=len(log.completed))
    findings.settle_s = settle(world)
    findings.lost_dossiers = [f"{d or '-'}: {why}" for d, why in log.lost]
    findings.stored_events = count_events(world)
    messages = [m for m in stream_messages(world.nats_url) if m.subject not in ignore_subjects]
    expected = _check_stream(world, messages, findings)
    per_dossier = by_dossier(m for m in messages if m.headers.get("Nats-Msg-Id") in expected)
    log_positions = {
        m.headers.get("Nats-Msg-Id", ""): getattr(
            PositionHeader.read(m.headers.get(POSITION_HEADER)), "log_position", None
        )
        for m in messages
    }
    _check_projection(world, per_dossier, log_positions, findings)
    # Every completed dossier has the events of a fault-free one.
    names = {d: [event_name(e) for e, _ in per_dossier.get(d, [])] for d in log.completed}
    findings.model_mismatches = [
        f"{d}: {dict(Counter(n for n in ns if n not in VARIABLE_EVENTS))}"
        for d, ns in names.items()
        if _signature(ns) != model
    ]
    _check_commands(world, log, findings)
    # Mails: one per announced notification, counted by Message-ID at the SMTP server.
    mails = list_messages(world.system.mail_dir)
    per_id = Counter(m.message_id for m in mails)
    findings.mails = len(mails)
    findings.mails_distinct = len(per_id)
    findings.mail_duplicates = len(mails) - len(per_id)
    findings.mails_announced = sum(
        1 for m in messages if m.subject.split(".")[2] == "NotificatieVerzonden"
    )
    findings.redeliveries = log_lines(world, "message redelivered")
    findings.duplicates_refused = log_lines(world, "message already processed")
    findings.reconnects = log_lines(world, "consumer interrupted, reconnecting") + log_lines(
        world, "relay interrupted, restarting"
    )
    findings.transient_retries = log_lines(world, "transient failure, will retry")
    return findings


def _check_stream(
    world: World, messages: list[StreamMessage], findings: Findings
) -> dict[str, CloudEvent]:
    """Every public event the event stores announce is on the stream once; nothing else is."""
    expected = {e.id: e for envelopes in exported_envelopes(world).values() for e in envelopes}
    ids = Counter(m.headers.get("Nats-Msg-Id", "") for m in messages)
    findings.public_events = len(expected)
    findings.missing_on_stream = sorted(set(expected) - set(ids))
    findings.twice_on_stream = sorted(i for i, n in ids.items() if n > 1)
    findings.unknown_on_stream = sorted(
        m.headers.get("Nats-Msg-Id", f"seq {m.sequence}")
        for m in messages
        if m.headers.get("Nats-Msg-Id") not in expected or POSITION_HEADER not in m.headers
    )
    return expected


def _check_projection(
    world: World,
    per_dossier: dict[str, list[tuple[CloudEvent, int]]],
    log_positions: dict[str, int | None],
    findings: Findings,
) -> None:
    """The dossier projection equals a fold of each dossier's events as the stream holds them,
    in the order recorded: within a service, the log's order as the stream's headers give it."""
    from services.intake.projections.dossier import (
        Dossier,
        Place,
        fold,
    )  # the test reads a service's model

    with psycopg.connect(world.database_url, autocommit=True, row_factory=dict_row) as conn:
        views = {
            str(r["aanvraag_id"]): r["view"]
            for r in conn.execute("SELECT aanvraag_id, view FROM intake.dossiers WHERE zichtbaar")
        }
        held: dict[str, set[str]] = {}
        received: dict[str, int] = {}
        misplaced: set[str] = set()
        for r in conn.execute(
            "SELECT aanvraag_id, event_id, stream_sequence, log_position FROM intake.dossier_events"
        ):
            held.setdefault(str(r["aanvraag_id"]), set()).add(r["event_id"])
            received[r["event_id"]] = r["stream_sequence"] or 0
            if r["log_position"] != log_positions.get(r["event_id"]):
                misplaced.add(str(r["aanvraag_id"]))
    for aanvraag_id, pairs in per_dossier.items():
        envelopes = [e for e, _ in pairs]
        # Events of one moment of one service fold in their log's order (the stream's position
        # headers, not the projection's column); the services' events of one moment interleave
        # in the order the projection received them (the stream sequence it kept: after the
        # broker lost its store and the relays refilled the stream, the stream's sequences are
        # new while the projection keeps those of the first arrival).
        folded = fold(
            envelopes,
            {e.id: Place(received.get(e.id, seq), log_positions.get(e.id)) for e, seq in pairs},
        )
        view = views.get(aanvraag_id)
        if folded is None or view is None or Dossier.model_validate(view) != folded:
            findings.projection_mismatches.append(f"{aanvraag_id}: view differs from the fold")
        if held.get(aanvraag_id, set()) != {e.id for e in envelopes}:
            findings.projection_mismatches.append(f"{aanvraag_id}: events differ from the stream")
        if aanvraag_id in misplaced:
            findings.projection_mismatches.append(
                f"{aanvraag_id}: log places differ from the stream's headers"
            )


def _check_commands(world: World, log: RunLog, findings: Findings) -> None:
    """A 2xx command has its events in its service's store (under one of its attempts, when an
    earlier attempt got no answer); an attempt answered with an error left none anywhere."""
    correlations = stored_correlations(world)
    everywhere: Counter[str] = Counter()
    for counts in correlations.values():
        everywhere.update(counts)
    by_call: dict[int, list[Attempt]] = {}
    for attempt in log.attempts:
        by_call.setdefault(attempt.call, []).append(attempt)
    status_counts: Counter[str] = Counter()
    for attempts in by_call.values():
        for a in attempts:
            status_counts[str(a.status) if a.status is not None else "no_answer"] += 1
            if a.status is None or a.status >= 500:
                findings.unusual_answers[a.kind] += 1
            where = f"{a.status} {a.method} {a.service} {a.path}"
            if a.status == 500:
                findings.answers_500.append(where)
            if a.outcome_unknown and a.status is not None:
                findings.commits_in_doubt += 1
            elif a.status is not None and a.status >= 400 and everywhere[a.correlation]:
                findings.errors_with_events.append(where)
        last = attempts[-1]
        if last.method == "GET" or last.status is None or not 200 <= last.status < 300:
            continue
        findings.commands_2xx += 1
        own = correlations[last.service]
        if not any(own[a.correlation] for a in attempts if a.outcome_unknown or a is last):
            findings.commands_2xx_without_events.append(f"{last.method} {last.service} {last.path}")
    findings.status_counts = dict(sorted(status_counts.items()))
    findings.unanswered_attempts = status_counts.get("no_answer", 0)


def fault_free_model(world: World, count: int = 2) -> Signature:
    """Drive a few dossiers with nothing breaking; their events are the model for the others."""
    log = drive(world, count, workers=count)
    assert not log.lost, log.lost
    settle(world)
    per = by_dossier(stream_messages(world.nats_url))
    signatures = {_signature([event_name(e) for e, _ in per.get(d, [])]) for d in log.completed}
    assert len(signatures) == 1, f"fault-free dossiers differ: {signatures}"
    return signatures.pop()


# --- the report ------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float]:
    """p50, p95, p99 and max, in milliseconds."""
    if not values:
        return {}
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive") if len(ordered) > 1 else []

    def at(p: int) -> float:
        return round(1000 * (cuts[p - 1] if cuts else ordered[0]), 1)

    return {"p50": at(50), "p95": at(95), "p99": at(99), "max": round(1000 * ordered[-1], 1)}


def recovery_times(world: World, log: RunLog) -> None:
    """Per fault: seconds from its healing until the first step that was waiting for another
    service at that moment got through (or, when none was, until the first 2xx answer after it):
    when work flows again. The slowest waits of the run are in the report apart."""
    answered = sorted(
        (a.started_s + a.elapsed_s, a.started_s)
        for a in log.attempts
        if a.status is not None and 200 <= a.status < 300
    )
    for fault in world.faults:
        healed = fault.healed_s
        if healed is None:
            continue
        stuck = [end - healed for start, end, _, _ in log.waits if start <= healed <= end]
        later = [end - healed for end, start in answered if start >= healed]
        if stuck or later:
            fault.recovered_s = round(min(stuck) if stuck else min(later), 3)


def report(
    scenario: str, world: World, log: RunLog, findings: Findings, **extra: Any
) -> dict[str, Any]:
    """Write the run's report (JSON and a text summary) and return it."""
    recovery_times(world, log)
    ok = [a.elapsed_s for a in log.attempts if a.status is not None and 200 <= a.status < 300]
    recovered = [f.recovered_s for f in world.faults if f.recovered_s is not None]
    body: dict[str, Any] = {
        "scenario": scenario,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dossiers": findings.dossiers,
        "completed": findings.completed,
        "run_s": round(world.now(), 1),
        "events_stored": sum(findings.stored_events.values()),
        "events_public": findings.public_events,
        "faults_injected": len(world.faults),
        "fault_kinds": dict(Counter(f.kind for f in world.faults)),
        "redeliveries": findings.redeliveries,
        "duplicates_refused": findings.duplicates_refused,
        "reconnects": findings.reconnects,
        "transient_retries": findings.transient_retries,
        "duplicates": {
            "on_stream": len(findings.twice_on_stream),
            "mails_same_message_id": findings.mail_duplicates,
        },
        "losses": {
            "dossiers": len(findings.lost_dossiers),
            "public_events_missing": len(findings.missing_on_stream),
            "commands_2xx_without_events": len(findings.commands_2xx_without_events),
            "mails_missing": max(0, findings.mails_announced - findings.mails_distinct),
        },
        "mails": {"received": findings.mails, "distinct": findings.mails_distinct},
        "commands_2xx": findings.commands_2xx,
        "answers": findings.status_counts,
        "answers_5xx_and_unanswered": dict(sorted(findings.unusual_answers.items())),
        "commits_in_doubt": findings.commits_in_doubt,
        "recovery_s": {
            "max": max(recovered) if recovered else None,
            "mean": round(statistics.fmean(recovered), 3) if recovered else None,
        },
        "settle_s": findings.settle_s,
        "latency_ms": {"command": percentiles(ok), "dossier": percentiles(log.durations)},
        "problems": findings.problems(),
        "slowest_waits": [
            {"what": w[2], "dossier": w[3], "from_s": round(w[0], 2), "to_s": round(w[1], 2)}
            for w in sorted(log.waits, key=lambda w: w[0] - w[1])[:10]
        ],
        "faults": [asdict(f) for f in world.faults],
        **extra,
    }
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    (REPORT_DIR / f"{scenario}.json").write_text(json.dumps(body, indent=2, default=str))
    (REPORT_DIR / f"{scenario}.txt").write_text(summary(body) + "\n")
    return body


def summary(body: dict[str, Any]) -> str:
    """A few lines for people."""
    lat = body["latency_ms"]
    losses = body["losses"]
    dups = body["duplicates"]
    lines = [
        f"{body['scenario']}: {body['completed']}/{body['dossiers']} dossiers in {body['run_s']}s,"
        f" {body['events_stored']} events stored, {body['events_public']} public",
        f"  faults {body['faults_injected']} {body['fault_kinds']}, redeliveries"
        f" {body['redeliveries']}, refused as duplicates {body['duplicates_refused']},"
        f" reconnects {body['reconnects']}, transient retries {body['transient_retries']},"
        f" recovery max {body['recovery_s']['max']}s"
        f" mean {body['recovery_s']['mean']}s, at rest {body['settle_s']}s after the last step",
        f"  lost: {losses['dossiers']} dossiers, {losses['public_events_missing']} events,"
        f" {losses['commands_2xx_without_events']} acknowledged commands,"
        f" {losses['mails_missing']} mails; twice: {dups['on_stream']} events,"
        f" {dups['mails_same_message_id']} mails (same Message-ID)",
        f"  latency command {lat['command']} ms; dossier {lat['dossier']} ms",
        f"  answers {body['answers']}; 5xx and unanswered {body['answers_5xx_and_unanswered']}",
    ]
    if body["problems"]:
        lines.append(f"  PROBLEMS {json.dumps(body['problems'])[:2000]}")
    return "\n".join(lines)


def random_choice(items: list[ServiceProcess], rng: random.Random) -> ServiceProcess:
    """A random process (the injector's own generator, so a run can be repeated)."""
    return items[rng.randrange(len(items))]
