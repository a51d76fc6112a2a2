"""The operator's side of a drill: `./weerbaar up` in a terminal, the runbook's commands, load.

A drill runs the system exactly as an operator does on one machine: ``./weerbaar up`` as its own
process in a data directory of its own (its terminal output goes to ``up.log``), and every
procedure step as the command the runbook gives, typed from the repository's root with
``WEERBAAR_DATA_DIR`` set (``Operator.runbook``; it refuses a command the runbook does not hold
word for word, so the runbook and the drills cannot drift apart: ``test_runbook_commands.py``).

``Operator.account`` is the check every drill ends with: once the system is at rest, nothing is
lost and nothing is doubled, in the stores, on the stream, in the read model and in the mail.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import nats
import psycopg

from shared.platform.settings import SERVICES
from tests.conftest import UNTHROTTLED
from tests.support import StreamMessage, aanmelding, stream_messages, token, wait_until
from tools.embedded import pid_is_running
from tools.mailcatcher import list_messages
from tools.system import read_state

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "deploy" / "RUNBOOK.md"


def runbook_text() -> str:
    """The runbook with its line breaks and indentation folded into single spaces."""
    return re.sub(r"\s+", " ", RUNBOOK.read_text())


def in_runbook(command: str) -> bool:
    """Whether the runbook gives ``command`` word for word (in backticks or a code block)."""
    text = runbook_text()
    return f"`{command}`" in text or f" {command} " in _code_block_lines()


def runbook_argv(command: str, **fill: str) -> list[str]:
    """The argument vector of a command the runbook gives word for word (``fill``: the values of
    its placeholders). ``weerbaar`` is typed ``./weerbaar``, ``python`` is this interpreter."""
    assert in_runbook(command), f"the runbook does not give the command {command!r}"
    argv = [fill.get(word, word) for word in shlex.split(command)]
    if argv[0] == "weerbaar":
        argv[0] = "./weerbaar"
    elif argv[0] == "python":
        argv[0] = sys.executable
    return argv


def _code_block_lines() -> str:
    lines = []
    inside = False
    for line in RUNBOOK.read_text().splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        if inside:
            lines.append(line.split("  #", 1)[0].strip())
    return " " + " ".join(f"{line} " for line in lines)


def operator_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The operator's shell: no ``WEERBAAR_*`` of the test session but the data directory (and
    the limits per source, off: every registration of a drill comes from this one machine)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEERBAAR_") or k in UNTHROTTLED}
    env["WEERBAAR_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


@dataclass
class Registration:
    """One registration a client made: the key it retried with, and the dossier it got."""

    key: str
    aanvraag_id: str | None = None
    refusals: list[str] = field(default_factory=list)


@dataclass
class Account:
    """What the accounting counted."""

    #: The public events (CloudEvents) the services' event logs announce: what the relays publish.
    events: int
    on_stream: int
    dossiers: int
    mails: int
    announced_mails: int
    #: Mails received a second time under their Message-ID (only where the drill allows it).
    mails_twice: int = 0

    def __str__(self) -> str:
        return (
            f"{self.events} public events in the stores' logs, {self.on_stream} on the stream,"
            f" {self.dossiers} dossiers, {self.mails} mails ({self.announced_mails} announced,"
            f" {self.mails_twice} received twice)"
        )


class Operator:
    """One system under ``./weerbaar up`` and the operator who runs it."""

    def __init__(
        self, data_dir: Path, *, env: dict[str, str] | None = None, mail_dir: Path | None = None
    ) -> None:
        self.data_dir = data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        #: What ``up`` prints on its terminal.
        self.terminal = data_dir.parent / f"{data_dir.name}-up.log"
        self.extra_env = dict(env or {})
        #: Where the mail the system sends ends up (the embedded mail catcher's, unless the drill
        #: gives its own SMTP server).
        self.mail_dir = mail_dir or data_dir / "mail"
        self.process: subprocess.Popen[bytes] | None = None
        self.state: dict[str, Any] = {}
        #: Every registration that got a 2xx from intake in this system's lifetime.
        self.registered: list[str] = []
        #: What was registered, per dossier.
        self.bodies: dict[str, dict[str, Any]] = {}
        #: Messages a drill itself put on the stream (no service's log announces them).
        self.foreign: set[str] = set()
        #: Mails an earlier drill saw twice where that is allowed (and how often).
        self.tolerated_twice: dict[str | None, int] = {}
        #: Why the system was not at rest when the accounting last looked.
        self.unrest = ""
        #: How long the last accounting waited for the system to come to rest.
        self.settled_in_s = 0.0

    # -- up and down ---------------------------------------------------------------------------

    def up(self, timeout: float = 90) -> dict[str, Any]:
        """``./weerbaar up``, in the background, until it says the system runs."""
        assert self.process is None, "already up"
        argv = runbook_argv("./weerbaar up")
        (self.data_dir / "state.json").unlink(missing_ok=True)
        self.process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env(),
            stdout=self.terminal.open("ab"),
            stderr=subprocess.STDOUT,
        )
        process = self.process
        try:
            # Running means supervised: ``up`` writes its state as it starts each part, and the
            # processes it keeps running (``processes``) once the last part is up.
            wait_until(
                lambda: (
                    "processes" in (read_state(self.data_dir) or {}) or process.poll() is not None
                ),
                timeout=timeout,
                what="./weerbaar up to report the system running",
            )
            assert process.poll() is None, self.terminal.read_text()[-3000:]
        except BaseException:
            # Whatever it started, it stops on SIGTERM; nothing is left running for the next.
            self.process = None
            process.send_signal(signal.SIGTERM)
            process.wait(60)
            raise
        self.state = self.read_state()
        return self.state

    def down(self, timeout: float = 60) -> None:
        """Ctrl-C: SIGTERM to ``up``; it stops every process and server it started."""
        process, self.process = self.process, None
        assert process is not None, "not up"
        pids = self.read_state().get("pids", {}) if self.is_running() else {}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout) == 0, self.terminal.read_text()[-3000:]
        leftovers = [name for name, pid in pids.items() if pid and pid_is_running(pid)]
        assert leftovers == [], f"still running after SIGTERM: {leftovers}"

    def is_running(self) -> bool:
        """Whether ``up`` runs."""
        return self.process is not None and self.process.poll() is None

    def env(self) -> dict[str, str]:
        """The operator's environment for ``up`` and for every command."""
        return operator_env(self.data_dir, **self.extra_env)

    def read_state(self) -> dict[str, Any]:
        """``.data/state.json`` as ``up`` wrote it last."""
        state = read_state(self.data_dir)
        assert state is not None, "no state.json: up does not run"
        return state

    def pid(self, name: str) -> int:
        """The pid ``up`` has for a process or server now."""
        pid = self.read_state()["processes"][name]["pid"]
        assert pid, f"{name} does not run"
        return int(pid)

    def url(self, service: str) -> str:
        """A service's base URL."""
        return str(self.state["services"][service])

    @property
    def nats_url(self) -> str:
        """The embedded NATS server's URL."""
        return str(self.state["nats_url"])

    @property
    def database_url(self) -> str:
        """The embedded PostgreSQL's URL."""
        return str(self.state["database_url"])

    def headers(self, role: str, **claims: Any) -> dict[str, str]:
        """An Authorization header of the system's own signing secret."""
        return token(self.data_dir, role, **claims)

    def terminal_lines(self) -> list[str]:
        """What ``up`` printed so far."""
        return self.terminal.read_text(errors="replace").splitlines()

    def ready(self, service: str) -> httpx.Response:
        """The service's ``/health/ready`` answer."""
        return httpx.get(f"{self.url(service)}/health/ready", timeout=5)

    def wait_ready(self, services: tuple[str, ...] = SERVICES, timeout: float = 60) -> None:
        """Until every listed service answers ``/health/ready`` with 200."""

        def all_ready() -> bool:
            for service in services:
                try:
                    if self.ready(service).status_code != 200:
                        return False
                except httpx.HTTPError:
                    return False
            return True

        wait_until(all_ready, timeout=timeout, what=f"{', '.join(services)} ready")

    # -- the runbook's commands ----------------------------------------------------------------

    def runbook(
        self, command: str, *, check: bool = True, timeout: float = 180, **fill: str
    ) -> subprocess.CompletedProcess[str]:
        """Run a command exactly as the runbook gives it, from the repository's root.

        ``command`` must appear in the runbook word for word; words named in ``fill`` are the
        placeholders (``SEQ``, ``N``, ``<notificatie_id>``) and are replaced by their values.
        ``weerbaar`` is typed ``./weerbaar`` (the runbook's note on commands).
        """
        result = subprocess.run(
            runbook_argv(command, **fill),
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert result.returncode == 0, (
                f"{command}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
            )
        return result

    def runbook_sql(self, query: str) -> list[tuple[Any, ...]]:
        """Run a query the runbook gives, as given, on the system's database (``psql``)."""
        assert in_runbook(query), f"the runbook does not give the query {query!r}"
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return conn.execute(query.encode()).fetchall()

    # -- load ------------------------------------------------------------------------------------

    def register(self, client: httpx.Client, deadline_s: float = 90) -> Registration:
        """Register a dossier as a careful client does: retry with the same Idempotency-Key
        until intake answers 2xx (or give up after ``deadline_s``: then the drill fails)."""
        registration = Registration(key=str(uuid.uuid4()))
        body = aanmelding()
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            try:
                response = client.post(
                    f"{self.url('intake')}/aanvragen",
                    json=body,
                    headers={"Idempotency-Key": registration.key},
                )
            except httpx.HTTPError as exc:
                registration.refusals.append(type(exc).__name__)
            else:
                if response.is_success:
                    registration.aanvraag_id = str(response.json()["aanvraag_id"])
                    self.registered.append(registration.aanvraag_id)
                    self.bodies[registration.aanvraag_id] = body
                    return registration
                registration.refusals.append(str(response.status_code))
            time.sleep(0.1)  # a client's back-off between retries
        raise AssertionError(
            f"a registration got no 2xx within {deadline_s}s: {registration.refusals[-5:]}"
        )

    def register_many(self, count: int) -> list[str]:
        """``count`` registrations, one after another."""
        with httpx.Client(timeout=10) as client:
            return [str(self.register(client).aanvraag_id) for _ in range(count)]

    def load(self, clients: int = 2, interval_s: float = 0.25) -> Load:
        """Registrations flowing from ``clients`` clients while the drill does its step, each
        client starting one every ``interval_s`` (a steady trickle, not a benchmark)."""
        return Load(self, clients, interval_s)

    # -- the accounting --------------------------------------------------------------------------

    def logged_public_ids(self) -> dict[str, list[str]]:
        """Per service, every CloudEvent id its event log announces (read from PostgreSQL by the
        service's own code, as the relay reads it)."""
        env = {
            **self.env(),
            "WEERBAAR_DATABASE_URL": self.database_url,
            "WEERBAAR_NATS_URL": self.nats_url,
        }

        def export(service: str) -> list[str]:
            out = subprocess.run(
                [sys.executable, "-m", f"services.{service}", "--export-public", "0"],
                env=env,
                cwd=ROOT,
                capture_output=True,
                check=True,
                timeout=120,
            ).stdout
            return [e["id"] for line in out.splitlines() for e in json.loads(line)["e"]]

        with ThreadPoolExecutor(len(SERVICES)) as pool:
            return dict(zip(SERVICES, pool.map(export, SERVICES), strict=True))

    def _at_rest(self) -> tuple[dict[str, list[str]], list[StreamMessage]] | None:
        """The logs and the stream once everything logged is published, every consumer has
        handled it, no mail waits and every mail sent is announced; else None."""
        with httpx.Client(timeout=10) as client:
            planned = client.get(
                f"{self.url('notifications')}/notificaties",
                params={"status": "gepland"},
                headers=self.headers("secretariaat"),
            )
        if planned.status_code != 200 or planned.json():
            self.unrest = f"mail planned: {planned.status_code} {planned.text[:200]}"
            return None
        if not asyncio.run(_consumers_idle(self.nats_url)):
            self.unrest = "a consumer has messages pending or unacknowledged"
            return None
        logged = self.logged_public_ids()
        messages = stream_messages(self.nats_url)
        on_stream = {m.headers.get("Nats-Msg-Id") for m in messages}
        unpublished = {i for ids in logged.values() for i in ids} - on_stream
        if unpublished:
            self.unrest = f"{len(unpublished)} logged events not on the stream"
            return None
        announced = sum(1 for m in messages if _event_type(m) == "NotificatieVerzonden")
        received = {m.message_id for m in list_messages(self.mail_dir)}
        if len(received) < announced:
            self.unrest = f"{announced} mails announced, {len(received)} received"
            return None
        return logged, messages

    def account(self, timeout: float = 120, *, mail_at_least_once: bool = False) -> Account:
        """Wait until the system is at rest, then check that nothing is lost or doubled.

        - every event in every service's store is on the stream exactly once (CloudEvent id =
          ``Nats-Msg-Id``), and the stream holds nothing else (but what the drill itself put
          there, ``foreign``);
        - every registration that got a 2xx is one dossier: its ``AanvraagIngediend`` once on
          the stream, readable through intake's API, once in the dossier list, and the list has
          no other dossier;
        - every mail announced (``NotificatieVerzonden``) was received, each Message-ID once;
          with ``mail_at_least_once``, a second copy under the same Message-ID is counted, not
          refused: the runbook's one effect that is at least once (a mail the SMTP server accepted
          while PostgreSQL could not record it goes out again after its claim expires).
        """
        started = time.monotonic()
        self.unrest = ""
        try:
            logged, messages = wait_until(self._at_rest, timeout=timeout, what="the system at rest")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen: {self.unrest}") from None
        self.settled_in_s = time.monotonic() - started
        all_logged = [i for ids in logged.values() for i in ids]
        assert len(all_logged) == len(set(all_logged)), "two stored events with one CloudEvent id"
        ids = Counter(m.headers.get("Nats-Msg-Id") for m in messages)
        doubled = {i: n for i, n in ids.items() if n > 1}
        assert not doubled, f"on the stream more than once: {doubled}"
        extra = set(ids) - set(all_logged) - self.foreign
        assert not extra, f"on the stream, in no store: {len(extra)}, e.g. {sorted(extra)[:3]}"

        ours = [m for m in messages if m.headers.get("Nats-Msg-Id") not in self.foreign]
        ingediend = Counter(
            m.subject.split(".")[3] for m in ours if _event_type(m) == "AanvraagIngediend"
        )
        assert len(self.registered) == len(set(self.registered)), "one dossier answered twice"
        assert ingediend == Counter(self.registered), (
            "AanvraagIngediend on the stream differs from the 2xx'd registrations: "
            f"{len(ingediend)} dossiers, {sum(ingediend.values())} events, "
            f"{len(self.registered)} registrations"
        )
        secretariaat = self.headers("secretariaat")
        with httpx.Client(timeout=15) as client:
            in_list: Counter[str] = Counter()
            while True:
                page = client.get(
                    f"{self.url('intake')}/aanvragen",
                    params={"limit": 500, "offset": sum(in_list.values())},
                    headers=secretariaat,
                )
                assert page.status_code == 200, page.text
                in_list.update(d["aanvraag_id"] for d in page.json())
                if len(page.json()) < 500:
                    break
            assert in_list == Counter(self.registered), "the dossier list differs"
            for aanvraag_id in self.registered:
                one = client.get(
                    f"{self.url('intake')}/aanvragen/{aanvraag_id}", headers=secretariaat
                )
                assert one.status_code == 200, f"{aanvraag_id}: {one.status_code}"

        mails = Counter(m.message_id for m in list_messages(self.mail_dir))
        twice = {i: n for i, n in mails.items() if n > 1}
        if mail_at_least_once:
            self.tolerated_twice.update(twice)
        new_twice = {i: n for i, n in twice.items() if n > self.tolerated_twice.get(i, 1)}
        assert not new_twice, f"received more than once: {new_twice}"
        announced = sum(1 for m in messages if _event_type(m) == "NotificatieVerzonden")
        assert len(mails) == announced, f"{len(mails)} mails received, {announced} announced"
        return Account(
            events=len(all_logged),
            on_stream=len(messages),
            dossiers=len(self.registered),
            mails=len(mails),
            announced_mails=announced,
            mails_twice=sum(n - 1 for n in twice.values()),
        )


class Load:
    """Clients registering dossiers, one after another each, until the block ends; each
    registration retries with its Idempotency-Key until it gets a 2xx."""

    def __init__(self, operator: Operator, clients: int, interval_s: float) -> None:
        self.operator = operator
        self.clients = clients
        self.interval_s = interval_s
        self.stop = threading.Event()
        self.registrations: list[Registration] = []
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []

    def _client(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                try:
                    self.registrations.append(self.operator.register(client))
                except BaseException as exc:  # reported by __exit__
                    self.errors.append(exc)
                    return
                self.stop.wait(self.interval_s)

    def __enter__(self) -> Load:
        for _ in range(self.clients):
            thread = threading.Thread(target=self._client, daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(120)
        if kind is None:
            assert not self.errors, self.errors
            assert all(not t.is_alive() for t in self.threads), "a client still waits"

    def wait_for(self, count: int, timeout: float = 60) -> None:
        """Until ``count`` more registrations were answered 2xx."""
        target = len(self.registrations) + count
        wait_until(
            lambda: len(self.registrations) >= target or self.errors,
            timeout=timeout,
            what=f"{count} registrations",
        )
        assert not self.errors, self.errors

    @property
    def refused(self) -> int:
        """Attempts answered with something other than 2xx (retried)."""
        return sum(len(r.refusals) for r in self.registrations)


def _event_type(message: StreamMessage) -> str:
    return message.subject.split(".")[2]


async def _consumers_idle(nats_url: str, stream: str = "WEERBAAR") -> bool:
    """Every durable consumer of the stream exists and has nothing pending or unacknowledged."""
    try:
        nc = await nats.connect(nats_url, allow_reconnect=False)
    except (OSError, nats.errors.Error):
        return False
    try:
        consumers = await nc.jetstream().consumers_info(stream)
        durables = [c for c in consumers if c.config.durable_name]
        return bool(durables) and all(
            c.num_pending == 0 and c.num_ack_pending == 0 for c in durables
        )
    except nats.errors.Error:  # the stream is not there (yet): not at rest
        return False
    finally:
        await nc.close()
