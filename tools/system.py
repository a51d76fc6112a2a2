"""The whole system on one machine: servers, streams and the five services as OS processes.

Used by ``weerbaar up``, by the end-to-end tests and by the benchmarks, so all three run the system
the same way. Embedded PostgreSQL and NATS are started unless URLs of external servers are given;
the mail catcher is started unless an SMTP server is given. What was started, and where, is written
to ``<data_dir>/state.json`` (replaced atomically) so other commands (``weerbaar mail``, the demo)
find it. A ``Supervisor`` keeps what was started running: the service processes and the embedded
servers, each restarted on its own port.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx

from shared.platform.settings import DEFAULT_PORTS, SERVICES, load_settings
from shared.platform.stream import provision
from tools.embedded import (
    EmbeddedNats,
    EmbeddedPostgres,
    EmbeddedServerError,
    free_port,
    port_is_free,
    write_file_atomically,
)
from tools.mailcatcher import MailCatcher

log = logging.getLogger(__name__)

DATABASE_NAME = "weerbaar"


#: The portal: started like a service (``python -m services.portal``), but no service.
PORTAL = "portal"
PORTAL_PORT = 8000
#: The loopback address the portal's calls to the services leave from, so that the services
#: can trust it, and it alone, to name the visitor in X-Forwarded-For (their per-source limits
#: then count each visitor, not the portal). Linux answers on all of 127.0.0.0/8.
PORTAL_SOURCE = "127.0.0.2"


def portal_source_address() -> str | None:
    """``PORTAL_SOURCE`` where this machine can send from it, else None (macOS answers only on
    127.0.0.1 unless told otherwise: the portal then calls from there)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((PORTAL_SOURCE, 0))
    except OSError:
        return None
    return PORTAL_SOURCE


def _port_or_free(preferred: int) -> int:
    # Probed as a server binds (SO_REUSEADDR, as uvicorn does): a port whose last connections are
    # in TIME_WAIT is free to it. A plain bind counted such a port as taken, so a quick second
    # `weerbaar up` moved the services other services call (intake, scheduling) elsewhere.
    return preferred if port_is_free(preferred) else free_port()


@dataclass
class ServiceProcess:
    """One running service process."""

    service: str
    port: int | None
    roles: tuple[str, ...]
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        """The service's base URL."""
        return f"http://127.0.0.1:{self.port}"


def service_command(service: str) -> list[str]:
    """The command line that starts a service's process (``--role``, ``--export-public`` …
    follow)."""
    return [sys.executable, "-m", f"services.{service}"]


@dataclass
class System:
    """Starts and stops the whole system."""

    data_dir: Path
    database_url: str | None = None
    nats_url: str | None = None
    smtp: tuple[str, int] | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    preferred_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_PORTS))

    postgres: EmbeddedPostgres | None = None
    nats: EmbeddedNats | None = None
    mailcatcher: MailCatcher | None = None
    processes: list[ServiceProcess] = field(default_factory=list)
    ports: dict[str, int] = field(default_factory=dict)
    #: Set by a ``Supervisor``: how its processes fare, written into the state file.
    supervision: Callable[[], dict[str, Any]] | None = None

    @property
    def mail_dir(self) -> Path:
        """Where the mail catcher keeps what it received."""
        return self.data_dir / "mail"

    @property
    def state_path(self) -> Path:
        """The state file of a running system."""
        return self.data_dir / "state.json"

    def start_servers(self) -> None:
        """Start (or connect to) PostgreSQL, NATS and the mail catcher, then provision."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.database_url is None:
            # Every service process keeps a pool; with roles or replicas as separate processes
            # PostgreSQL's default of 100 connections is soon used up.
            self.postgres = EmbeddedPostgres(
                self.data_dir / "postgres", settings={"max_connections": "400"}
            )
            self.postgres.start()
            self.database_url = self.postgres.ensure_database(DATABASE_NAME)
        if self.nats_url is None:
            # JetStream's fsync policy: unset keeps the server default (every two minutes); the
            # relays refill from PostgreSQL what a crashed server had not yet synced.
            self.nats = EmbeddedNats(
                self.data_dir / "nats",
                sync_interval=os.environ.get("WEERBAAR_NATS_SYNC_INTERVAL") or None,
            )
            self.nats.start()
            self.nats_url = self.nats.url
        if self.smtp is None:
            self.mailcatcher = MailCatcher(self.mail_dir, port=0)
            self.mailcatcher.start()
            self.smtp = ("127.0.0.1", self.mailcatcher.port)
        self.provision()

    def _settings_overrides(self) -> dict[str, Any]:
        assert self.database_url and self.nats_url
        return {
            "database_url": self.database_url,
            "nats_url": self.nats_url,
            "data_dir": self.data_dir,
        }

    def env(self) -> dict[str, str]:
        """The environment every service process gets."""
        assert self.database_url and self.nats_url and self.smtp
        env = {
            **os.environ,
            "WEERBAAR_DATA_DIR": str(self.data_dir),
            "WEERBAAR_DATABASE_URL": self.database_url,
            "WEERBAAR_NATS_URL": self.nats_url,
            "WEERBAAR_SMTP_HOST": self.smtp[0],
            "WEERBAAR_SMTP_PORT": str(self.smtp[1]),
            # Every service's URL: the portal calls all five, some services call others.
            **{
                f"WEERBAAR_{service.upper()}_URL": f"http://127.0.0.1:{port}"
                for service, port in (DEFAULT_PORTS | self.ports).items()
                if service in DEFAULT_PORTS
            },
            "PYTHONUNBUFFERED": "1",
        }
        env.update(self._portal_as_proxy(env))
        env.update(self.extra_env)
        return env

    @staticmethod
    def _portal_as_proxy(env: dict[str, str]) -> dict[str, str]:
        """The services trust the portal's address to name the visitor (X-Forwarded-For), and
        the portal calls from it. An operator's own WEERBAAR_TRUSTED_PROXIES is left as set.
        Without a loopback address of its own the portal calls from 127.0.0.1, which is then
        trusted: on this one machine any local client could name its own source."""
        if "WEERBAAR_TRUSTED_PROXIES" in env:
            return {}
        source = portal_source_address()
        if source is None:
            return {"WEERBAAR_TRUSTED_PROXIES": json.dumps(["127.0.0.1"])}
        return {
            "WEERBAAR_TRUSTED_PROXIES": json.dumps([source]),
            "WEERBAAR_PORTAL_SOURCE_ADDRESS": source,
        }

    def allocate_ports(self) -> None:
        """Use the default ports where free, other free ports otherwise."""
        for service in SERVICES:
            if service not in self.ports:
                self.ports[service] = _port_or_free(self.preferred_ports[service])

    def spawn(
        self,
        service: str,
        roles: Sequence[str] = ("all",),
        name: str | None = None,
        metrics_port: int | None = None,
        port: int | None = None,
    ) -> ServiceProcess:
        """Start one service process (all roles, or some of them).

        ``metrics_port``: where a process without the API role serves its ``/metrics``.
        ``port``: the API's port when not the service's usual one (a second replica).
        """
        self.allocate_ports()
        log_dir = self.data_dir / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        log_path = log_dir / f"{name or service}.log"
        args = service_command(service)
        for role in roles:
            args += ["--role", role]
        has_api = "all" in roles or "api" in roles
        if not has_api:
            port = None
        elif port is None:
            port = self.ports[service]
        if port is not None:
            args += ["--port", str(port)]
        if metrics_port is not None:
            args += ["--metrics-port", str(metrics_port)]
        with log_path.open("ab") as out:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                args,
                env=self.env(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        running = ServiceProcess(service, port, tuple(roles), process, log_path)
        self.processes.append(running)
        return running

    def start_services(self, timeout: float = 60) -> None:
        """Start the five services and wait until each is ready (or stop them all again)."""
        try:
            for service in SERVICES:
                self.spawn(service)
            self.wait_ready(timeout)
        except BaseException:
            # A service that did not come up must not leave the others running unattended.
            for proc in list(self.processes):
                self.stop_process(proc)
            raise
        self.write_state()

    def start_portal(self, timeout: float = 60, port: int | None = None) -> ServiceProcess:
        """Start the portal (a client of the services' APIs) and wait until it is ready
        (on ``port``, else its usual port when free, else a free one)."""
        if port is not None:
            self.ports[PORTAL] = port
        elif PORTAL not in self.ports:
            self.ports[PORTAL] = _port_or_free(PORTAL_PORT)
        portal = self.spawn(PORTAL)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop_process(portal)
            raise
        self.write_state()
        return portal

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until every API process answers its readiness check."""
        deadline = time.monotonic() + timeout
        pending = [p for p in self.processes if p.port is not None]
        with httpx.Client(timeout=2) as client:
            while pending:
                for proc in list(pending):
                    if proc.process.poll() is not None:
                        raise RuntimeError(
                            f"{proc.service} exited with {proc.process.returncode}; "
                            f"see {proc.log_path}"
                        )
                    try:
                        if client.get(f"{proc.url}/health/ready").status_code == 200:
                            pending.remove(proc)
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    names = ", ".join(p.service for p in pending)
                    raise TimeoutError(f"not ready within {timeout}s: {names}")
                if pending:
                    time.sleep(0.2)

    def url(self, service: str) -> str:
        """Base URL of a service's API."""
        return f"http://127.0.0.1:{self.ports[service]}"

    def write_state(self) -> None:
        """Record what runs where, for the other commands."""
        state = {
            "started_at": datetime.now(UTC).isoformat(),
            "database_url": self.database_url,
            "nats_url": self.nats_url,
            "smtp": list(self.smtp) if self.smtp else None,
            "mail_dir": str(self.mail_dir) if self.mailcatcher else None,
            "services": {s: self.url(s) for s in SERVICES if s in self.ports},
            "portal": self.url(PORTAL) if PORTAL in self.ports else None,
            "pids": {
                "postgres": self.postgres.pid if self.postgres else None,
                "nats": self.nats.pid if self.nats else None,
                **{p.service: p.process.pid for p in self.processes},
            },
            "supervisor_pid": os.getpid(),
        }
        if self.supervision is not None:
            state["processes"] = self.supervision()
        # Rewritten while other commands read it: they see the old state or the new, never half.
        write_file_atomically(self.state_path, json.dumps(state, indent=2))

    def stop_process(
        self, proc: ServiceProcess, sig: int = signal.SIGTERM, timeout: float = 15
    ) -> None:
        """Stop one service process (SIGKILL for a crash)."""
        if proc.process.poll() is None:
            proc.process.send_signal(sig)
            try:
                proc.process.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.process.kill()
                proc.process.wait(5)
        if proc in self.processes:
            self.processes.remove(proc)

    def restart_process(
        self, proc: ServiceProcess, sig: int = signal.SIGKILL, timeout: float = 15
    ) -> ServiceProcess:
        """Stop one service process (SIGKILL: a crash) and start it again with the same roles."""
        self.stop_process(proc, sig, timeout)
        return self.spawn(proc.service, proc.roles, name=proc.log_path.stem, port=proc.port)

    def provision(self) -> None:
        """Create the streams, or bring them to the declared configuration."""
        asyncio.run(provision(load_settings(**self._settings_overrides())))

    def stop(self) -> None:
        """Stop everything this System started, services first."""
        for proc in list(self.processes):
            if proc.process.poll() is None:
                proc.process.send_signal(signal.SIGTERM)
        for proc in list(self.processes):
            self.stop_process(proc)
        if self.mailcatcher is not None:
            self.mailcatcher.stop()
        if self.nats is not None:
            self.nats.stop()
        if self.postgres is not None:
            self.postgres.stop()
        self.state_path.unlink(missing_ok=True)

    @contextmanager
    def running(self) -> Iterator[System]:
        """Start everything; stop it again on exit."""
        try:
            self.start_servers()
            self.start_services()
            yield self
        finally:
            self.stop()


@dataclass(frozen=True)
class RestartPolicy:
    """How a supervisor restarts a process that exited."""

    #: The wait before the first restart; it doubles with every exit that follows quickly.
    initial_delay_s: float = 1.0
    max_delay_s: float = 60.0
    #: A process that stayed up this long counts as healthy: its next exit waits
    #: ``initial_delay_s`` again.
    healthy_after_s: float = 60.0
    #: So many exits within ``loop_window_s`` make a crash loop (shown on the terminal and in
    #: the state file).
    loop_exits: int = 5
    loop_window_s: float = 120.0
    #: A restart waits (from the end of its back-off) so long for its port to be free: a process
    #: comes back on its own port, where its clients look for it, never on another. After that it
    #: is started anyway; if the port is still taken it fails, which counts as another exit.
    port_wait_s: float = 30.0


class _Child(Protocol):
    """Something a supervisor keeps running: a service process or an embedded server."""

    #: What it is, for people: "service process" or "server".
    kind: str

    @property
    def log_path(self) -> Path:
        """Where its own output goes."""

    def title(self, name: str) -> str:
        """How the terminal line names it."""

    def exit_code(self) -> int | None:
        """How it exited, or None while it runs."""

    def pid(self) -> int | None:
        """Its pid while it runs."""

    def ports(self) -> tuple[int, ...]:
        """The ports it listens on: they must be free before it starts again."""

    def forget(self) -> None:
        """After an exit: let go of what is left of it."""

    def start(self) -> None:
        """Start it again, on the same ports (raises when that fails)."""


class _ServiceChild:
    """A service process of the system."""

    kind = "service process"

    def __init__(self, system: System, proc: ServiceProcess) -> None:
        self.system = system
        self.proc = proc

    @property
    def log_path(self) -> Path:
        return self.proc.log_path

    def title(self, name: str) -> str:
        return name

    def exit_code(self) -> int | None:
        return self.proc.process.poll()

    def pid(self) -> int | None:
        return self.proc.process.pid

    def ports(self) -> tuple[int, ...]:
        return () if self.proc.port is None else (self.proc.port,)

    def forget(self) -> None:
        if self.proc in self.system.processes:
            self.system.processes.remove(self.proc)

    def start(self) -> None:
        old = self.proc
        self.proc = self.system.spawn(old.service, old.roles, name=old.log_path.stem, port=old.port)


class _ServerChild:
    """An embedded server (PostgreSQL, NATS) the system started."""

    kind = "server"

    def __init__(self, server: EmbeddedPostgres | EmbeddedNats, what: str) -> None:
        self.server = server
        self.what = what

    @property
    def log_path(self) -> Path:
        return self.server.log_path

    def title(self, name: str) -> str:
        ports = self.server.listen_ports
        listed = ", ".join(str(port) for port in ports)
        return f"{name} (the embedded {self.what} on port{'s' if len(ports) > 1 else ''} {listed})"

    def exit_code(self) -> int | None:
        return self.server.exit_code()

    def pid(self) -> int | None:
        return self.server.pid

    def ports(self) -> tuple[int, ...]:
        return self.server.listen_ports

    def forget(self) -> None:
        # What the dead server left in its process group (PostgreSQL's backends outlive a killed
        # postmaster for a moment and hold its shared memory: a new one would refuse to start).
        try:
            self.server.kill()
        except EmbeddedServerError:
            log.exception("could not clear what the exited server left", extra={"of": self.what})

    def start(self) -> None:
        # Every service was given these ports: the server comes back there or not at all.
        self.server.pin_ports()
        self.server.start()


@dataclass
class _Watch:
    """What a supervisor knows of one process (by name; it outlives each pid)."""

    child: _Child
    started_at: float
    delay_s: float = 0.0
    exits: deque[float] = field(default_factory=deque)
    restarts: int = 0
    last_exit_code: int | None = None
    #: When the exited process is started again (None while it runs).
    restart_at: float | None = None
    #: Whether the wait for its port has been said already (once per restart).
    port_wait_said: bool = False

    @property
    def proc(self) -> ServiceProcess:
        """The service process watched (for a service; a server has none)."""
        if not isinstance(self.child, _ServiceChild):
            raise TypeError(f"a {self.child.kind} has no service process")
        return self.child.proc


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _minutes(seconds: float) -> str:
    minutes = seconds / 60
    return f"{minutes:g} minute" + ("" if minutes == 1 else "s")


class Supervisor:
    """Keeps a system running: its service processes and the embedded servers it started.

    Restarts one that exited after a back-off that doubles while it keeps exiting (up to a cap;
    reset once it stayed up a while), on the ports it had (waiting for them to be free, never
    moving), says so loudly each time, and makes a crash loop visible (terminal, log, state file).

    ``check()`` does one round; ``weerbaar up`` calls it every second. The clock and the output
    are given, so a test can drive the rounds itself. Starting a server again blocks the round
    until it serves (or fails); a service process is only spawned.
    """

    def __init__(
        self,
        system: System,
        policy: RestartPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        say: Callable[[str], None] = lambda line: print(line, flush=True),
    ) -> None:
        self.system = system
        self.policy = policy or RestartPolicy()
        self.clock = clock
        self.say = say
        now = clock()
        self.watches: dict[str, _Watch] = {}
        if system.postgres is not None:
            self.watches["postgres"] = _Watch(_ServerChild(system.postgres, "PostgreSQL"), now)
        if system.nats is not None:
            self.watches["nats"] = _Watch(_ServerChild(system.nats, "NATS server"), now)
        for proc in system.processes:
            self.watches[proc.log_path.stem] = _Watch(_ServiceChild(system, proc), now)
        system.supervision = self.states

    def check(self) -> None:
        """Notice processes that exited, and start those whose back-off is over."""
        now = self.clock()
        changed = False
        for name, watch in self.watches.items():
            if watch.restart_at is None:
                code = watch.child.exit_code()
                if code is not None:
                    self._exited(name, watch, now, code)
                    changed = True
            if watch.restart_at is not None and now >= watch.restart_at:
                if self._waits_for_port(name, watch, now):
                    continue
                self._restart(name, watch, now)
                changed = True
        if changed:
            self.system.write_state()

    def _exited(
        self, name: str, watch: _Watch, now: float, code: int | None, why: str = ""
    ) -> None:
        """Count an exit (``code`` None: a start that failed, for reason ``why``) and plan the
        restart."""
        policy = self.policy
        watch.last_exit_code = code
        if now - watch.started_at >= policy.healthy_after_s:
            watch.delay_s = 0.0
        watch.delay_s = (
            policy.initial_delay_s
            if watch.delay_s == 0
            else min(policy.max_delay_s, watch.delay_s * 2)
        )
        watch.exits.append(now)
        watch.restart_at = now + watch.delay_s
        watch.port_wait_said = False
        child = watch.child
        child.forget()
        recent = self._recent(watch, now)
        window = _minutes(policy.loop_window_s)
        how = _describe_exit(code) if code is not None else f"failed to start ({why})"
        plural = "s" if len(child.ports()) > 1 else ""
        where = f" on the same port{plural}" if child.kind == "server" else ""
        line = (
            f"weerbaar: !!! {child.title(name)} {how}"
            f" ({recent} time{'s' if recent != 1 else ''} in the last {window});"
            f" restarting in {watch.delay_s:g} s{where} — see {child.log_path}"
        )
        self._announce(line, name, watch, f"{child.kind} exited")
        if recent >= policy.loop_exits:
            self._announce(
                f"weerbaar: !!! CRASH LOOP: {name} exited {recent} times in the last {window}"
                f" ({watch.restarts} restarts in all); it keeps exiting — see"
                f" {child.log_path}",
                name,
                watch,
                f"{child.kind} in a crash loop",
            )

    def _waits_for_port(self, name: str, watch: _Watch, now: float) -> bool:
        """Whether the restart waits for a port still taken (say so once)."""
        assert watch.restart_at is not None
        taken = [port for port in watch.child.ports() if not port_is_free(port)]
        if not taken or now >= watch.restart_at + self.policy.port_wait_s:
            return False
        if not watch.port_wait_said:
            watch.port_wait_said = True
            ports = ", ".join(str(port) for port in taken)
            self._announce(
                f"weerbaar: {name} waits for port {ports} to be free (up to"
                f" {self.policy.port_wait_s:g} s) to start again where its clients look for it",
                name,
                watch,
                f"{watch.child.kind} waits for its port",
            )
        return True

    def _announce(self, line: str, name: str, watch: _Watch, message: str) -> None:
        """On the terminal, in the supervisor's log and in the process's own log file."""
        self.say(line)
        fields = {
            watch.child.kind.replace(" ", "_"): name,
            "exit_code": watch.last_exit_code,
            "exits_recent": self._recent(watch, self.clock()),
            "restart_in_s": watch.delay_s,
        }
        log.error(message, extra=fields)
        entry = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "ERROR",
            "service": "weerbaar-up",
            "message": message,
            **fields,
        }
        with watch.child.log_path.open("a") as out:
            out.write(json.dumps(entry) + "\n")

    def _restart(self, name: str, watch: _Watch, now: float) -> None:
        watch.restarts += 1
        watch.restart_at = None
        watch.started_at = now
        try:
            watch.child.start()
        except (EmbeddedServerError, OSError) as exc:
            # The whole message (with the server's log tail) goes to the log; its first line
            # to the terminal.
            log.error(
                "restart failed",
                extra={watch.child.kind.replace(" ", "_"): name, "error": str(exc)},
            )
            first_line = str(exc).split("\n", 1)[0][:200]
            self._exited(name, watch, self.clock(), None, first_line)

    def _recent(self, watch: _Watch, now: float) -> int:
        """Exits within the loop window up to ``now`` (older ones are forgotten)."""
        while watch.exits and watch.exits[0] < now - self.policy.loop_window_s:
            watch.exits.popleft()
        return len(watch.exits)

    def crash_loops(self) -> list[str]:
        """The processes that exited ``loop_exits`` times within the window."""
        now = self.clock()
        return [
            name
            for name, watch in self.watches.items()
            if self._recent(watch, now) >= self.policy.loop_exits
        ]

    def states(self) -> dict[str, Any]:
        """Per process, for the state file: pid, restarts, recent exits, crash loop."""
        loops = set(self.crash_loops())
        now = self.clock()
        return {
            name: {
                "pid": watch.child.pid() if watch.restart_at is None else None,
                "restarts": watch.restarts,
                "exits_recent": self._recent(watch, now),
                "last_exit_code": watch.last_exit_code,
                "restart_in_s": None
                if watch.restart_at is None
                else round(max(0.0, watch.restart_at - now), 1),
                "crash_loop": name in loops,
            }
            for name, watch in self.watches.items()
        }


def read_state(data_dir: Path) -> dict[str, Any] | None:
    """The state of a running system, or None."""
    try:
        text = (data_dir / "state.json").read_text()
    except FileNotFoundError:  # not running, or stopped just now
        return None
    state: dict[str, Any] = json.loads(text)
    return state
