"""The embedded servers keep data across restarts and crashes, and clean up after themselves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import nats
import psycopg
import pytest
from nats.js.api import StorageType, StreamConfig

from shared.platform.settings import DEFAULT_PORTS
from tests import servers
from tests.support import wait_until
from tools import embedded
from tools.embedded import (
    EmbeddedNats,
    EmbeddedPostgres,
    EmbeddedServerError,
    ServerState,
    free_port,
    pid_is_running,
    read_state,
    write_state,
)
from tools.system import RestartPolicy, Supervisor, System
from tools.system import read_state as read_system_state

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A fresh directory for server data (see ``servers.scratch_dir`` for why not ``tmp_path``)."""
    with servers.scratch_dir("test") as path:
        yield path


@contextlib.contextmanager
def occupied_port() -> Iterator[int]:
    """A 127.0.0.1 port with a listener on it, as another program would hold it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def namen(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT naam FROM werkgever ORDER BY naam").fetchall()
    return [row[0] for row in rows]


def accepts_connections(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def test_postgres_keeps_committed_rows_across_a_clean_restart(workdir: Path) -> None:
    datadir = workdir / "pg"
    with EmbeddedPostgres(datadir) as first:
        with psycopg.connect(first.url()) as conn:
            conn.execute("CREATE TABLE werkgever (naam text)")
            conn.execute("INSERT INTO werkgever VALUES ('Gemeente Testdorp')")
        pid = first.pid
        url = first.url()
    assert pid is not None
    assert not pid_is_running(pid)
    assert not accepts_connections(url)

    # A new object, as a new `weerbaar up` would make: it reuses the data, no second initdb.
    with EmbeddedPostgres(datadir) as second:
        assert namen(second.url()) == ["Gemeente Testdorp"]


def test_postgres_recovers_after_sigkill_with_committed_rows_only(workdir: Path) -> None:
    datadir = workdir / "pg"
    server = EmbeddedPostgres(datadir)
    server.start()
    with psycopg.connect(server.url()) as conn:
        conn.execute("CREATE TABLE werkgever (naam text)")
        conn.execute("INSERT INTO werkgever VALUES ('vastgelegd')")
    open_transaction = psycopg.connect(server.url())
    open_transaction.execute("INSERT INTO werkgever VALUES ('niet vastgelegd')")

    server.kill()
    open_transaction.close()
    assert not server.is_running()
    # The crash left its lock file behind; postgres must see its pid is dead and carry on.
    assert (datadir / "postmaster.pid").exists()

    with EmbeddedPostgres(datadir) as restarted:
        assert namen(restarted.url()) == ["vastgelegd"]


def test_postgres_starts_when_the_stale_lock_names_a_pid_now_used_by_another_program(
    workdir: Path,
) -> None:
    # After a reboot the pid in postmaster.pid often belongs to some unrelated process.
    datadir = workdir / "pg"
    server = EmbeddedPostgres(datadir)
    server.start()
    server.kill()
    lock = datadir / "postmaster.pid"
    # Run as the server's own user: a pid of another user is one PostgreSQL already ignores.
    as_server_user = embedded.POSTGRES_SYSTEM_USER if os.geteuid() == 0 else None
    unrelated = subprocess.Popen(["sleep", "60"], user=as_server_user)
    try:
        lines = lock.read_text().split("\n")
        lock.write_text("\n".join([str(unrelated.pid), *lines[1:]]))
        with EmbeddedPostgres(datadir) as restarted:
            assert accepts_connections(restarted.url())
    finally:
        unrelated.kill()
        unrelated.wait()


def test_a_second_server_on_a_data_dir_in_use_is_refused(workdir: Path) -> None:
    with EmbeddedPostgres(workdir / "pg") as running:
        second = EmbeddedPostgres(workdir / "pg")
        refused = re.escape('lock file "postmaster.pid" already exists')
        with pytest.raises(EmbeddedServerError, match=refused):
            second.start()
        assert not second.is_running()
        assert accepts_connections(running.url())


def test_postgres_ensure_database_creates_once_and_returns_its_url(workdir: Path) -> None:
    with EmbeddedPostgres(workdir / "pg") as server:
        url = server.ensure_database("intake")
        assert server.ensure_database("intake") == url
        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT current_database(), current_user").fetchone()
        assert row == ("intake", "postgres")


def test_postgres_with_a_configured_port_in_use_fails_with_a_clear_message(
    workdir: Path,
) -> None:
    with occupied_port() as port:
        server = EmbeddedPostgres(workdir / "pg", port=port)
        with pytest.raises(EmbeddedServerError, match=f"port {port} .* already in use"):
            server.start()
        assert not server.is_running()


def test_postgres_moves_to_a_free_port_when_its_previous_port_was_taken(workdir: Path) -> None:
    server = EmbeddedPostgres(workdir / "pg")
    server.start()
    taken = server.port
    server.stop()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", taken))
        blocker.listen()
        with server:
            assert server.port != taken
            assert accepts_connections(server.url())


def test_postgres_retries_when_its_port_is_taken_between_check_and_bind(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Force the race: the free-port check says yes, the server then fails to bind.
    monkeypatch.setattr(embedded, "_port_is_free", lambda port, host="127.0.0.1": True)
    with occupied_port() as port:
        server = EmbeddedPostgres(workdir / "pg")
        server._port = port
        with server:
            assert server.port != port
            assert accepts_connections(server.url())


async def publish_acknowledged(url: str, stream: str, count: int) -> int:
    """Publish ``count`` messages to a file-backed stream; return the last acked sequence."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        await js.add_stream(
            StreamConfig(name=stream, subjects=[f"{stream}.>"], storage=StorageType.FILE)
        )
        pending = [
            await js.publish_async(f"{stream}.bericht", str(i).encode()) for i in range(count)
        ]
        acks = await asyncio.gather(*pending)
        return max(ack.seq for ack in acks)
    finally:
        await nc.close()


async def stored_messages(url: str, stream: str) -> tuple[int, bytes]:
    """Number of messages in ``stream`` and the payload of the last one."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        last = await js.get_msg(stream, info.state.last_seq)
        return info.state.messages, last.data or b""
    finally:
        await nc.close()


@pytest.mark.parametrize("sync_interval", [None, "always"], ids=["server-default", "always"])
async def test_nats_keeps_acknowledged_messages_after_sigkill(
    workdir: Path, sync_interval: str | None
) -> None:
    """Every acked message is still there after the server process is SIGKILLed.

    With the server's default ``sync_interval`` (2 min) JetStream acks once a message is written
    to the file, before an fsync: a killed *process* loses nothing (the OS still has the pages), a
    crashed *machine* can. SIGKILL tests the first only; ``"always"`` is what covers the second.
    """
    server = EmbeddedNats(workdir / "nats", sync_interval=sync_interval)
    await asyncio.to_thread(server.start)
    try:
        last_seq = await publish_acknowledged(server.url, "EMBEDDED", 1000)
        server.kill()
        assert not server.is_running()

        await asyncio.to_thread(server.start)
        assert await stored_messages(server.url, "EMBEDDED") == (1000, b"999")
        assert last_seq == 1000
    finally:
        await asyncio.to_thread(server.stop)


def test_nats_sync_interval_always_is_applied(workdir: Path) -> None:
    with EmbeddedNats(workdir / "nats", sync_interval="always") as server:
        varz = httpx.get(f"{server.monitor_url}/varz").json()
    assert varz["jetstream"]["config"]["sync_always"] is True
    assert Path(varz["jetstream"]["config"]["store_dir"]).is_relative_to(workdir / "nats")


def test_nats_stop_ends_the_server(workdir: Path) -> None:
    server = EmbeddedNats(workdir / "nats")
    with server:
        pid = server.pid
        assert httpx.get(f"{server.monitor_url}/healthz").status_code == 200
    assert pid is not None
    assert not pid_is_running(pid)
    assert server.pid is None


@pytest.mark.parametrize("which", ["client", "monitor"])
def test_nats_with_a_configured_port_in_use_fails_with_a_clear_message(
    workdir: Path, which: str
) -> None:
    with occupied_port() as port:
        if which == "client":
            server = EmbeddedNats(workdir / "nats", port=port)
        else:
            server = EmbeddedNats(workdir / "nats", monitor_port=port)
        with pytest.raises(EmbeddedServerError, match=f"port {port} .* already in use"):
            server.start()
        assert not server.is_running()


def test_nats_retries_when_its_port_is_taken_between_check_and_bind(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedded, "_port_is_free", lambda port, host="127.0.0.1": True)
    with occupied_port() as port:
        server = EmbeddedNats(workdir / "nats")
        server._port = port
        with server:
            assert server.port != port
            assert httpx.get(f"{server.monitor_url}/healthz").status_code == 200


def test_read_state_finds_running_servers_and_forgets_stopped_ones(workdir: Path) -> None:
    state_file = workdir / "state.json"
    assert read_state(state_file) is None

    with EmbeddedPostgres(workdir / "pg") as pg, EmbeddedNats(workdir / "nats") as ns:
        assert pg.pid is not None
        assert ns.pid is not None
        state = ServerState(
            postgres_url=pg.url(),
            nats_url=ns.url,
            pids={"postgres": pg.pid, "nats": ns.pid},
            started_at=datetime.now(UTC),
        )
        write_state(state_file, state)
        assert read_state(state_file) == state

        ns.kill()
        assert read_state(state_file) is None


def test_read_state_returns_none_for_dead_pids(workdir: Path) -> None:
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    state_file = workdir / "state.json"
    write_state(
        state_file,
        ServerState(
            postgres_url="postgresql://postgres@127.0.0.1:1/postgres",
            nats_url="nats://127.0.0.1:1",
            pids={"postgres": exited.pid, "nats": os.getpid()},
            started_at=datetime.now(UTC),
        ),
    )
    assert read_state(state_file) is None


_PARENT_SCRIPT = """
import signal
import sys
from pathlib import Path
from tools.embedded import EmbeddedNats, EmbeddedPostgres

# Ctrl-C raises KeyboardInterrupt, whatever the disposition this process inherited: a job a
# non-interactive shell starts in the background inherits SIGINT ignored, and Python then leaves
# it ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)
root = Path(sys.argv[1])
pg = EmbeddedPostgres(root / "pg")
ns = EmbeddedNats(root / "nats")
pg.start()
ns.start()
print(pg.pid, ns.pid, flush=True)
if sys.argv[2] == "exit":
    sys.exit(0)  # without calling stop()
sys.stdin.read()  # until Ctrl-C
"""


def _as_a_background_job() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("how", ["exit", "ctrl-c", "ctrl-c-in-background"])
def test_servers_do_not_outlive_a_parent_that_ends_cleanly(workdir: Path, how: str) -> None:
    """``ctrl-c-in-background``: the parent inherited SIGINT ignored, as the suite's own
    processes do when the suite was started as a background job."""
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT_SCRIPT, str(workdir), how.removesuffix("-in-background")],
        cwd=REPO_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_as_a_background_job if how.endswith("-in-background") else None,  # noqa: PLW1509 - before exec, one signal call
    )
    assert parent.stdout is not None
    pids = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(pids) == 2
    if how.startswith("ctrl-c"):
        assert all(pid_is_running(pid) for pid in pids)
        parent.send_signal(signal.SIGINT)
    parent.wait(timeout=60)
    assert [pid for pid in pids if pid_is_running(pid)] == []


def test_free_port_can_be_listened_on() -> None:
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()


def test_fresh_database_is_new_and_empty(fresh_database: str) -> None:
    with psycopg.connect(fresh_database) as conn:
        row = conn.execute(
            "SELECT current_database(), "
            "(SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public')"
        ).fetchone()
    assert row is not None
    assert row[0].startswith("test_")
    assert row[1] == 0


def test_dropping_a_test_database_disconnects_its_users(postgres_server_url: str) -> None:
    url = servers.create_database(postgres_server_url)
    still_connected = psycopg.connect(url)
    try:
        servers.drop_database(postgres_server_url, url)
    finally:
        still_connected.close()
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(postgres_server_url) as conn:
        left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    assert left is None


async def test_nats_url_serves_jetstream(nats_url: str) -> None:
    stream = f"TEST_{secrets.token_hex(4).upper()}"
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.add_stream(name=stream, subjects=[f"{stream}.>"], storage=StorageType.FILE)
        try:
            ack = await js.publish(f"{stream}.bericht", b"hallo")
            assert (await js.get_msg(stream, ack.seq)).data == b"hallo"
        finally:
            await js.delete_stream(stream)
    finally:
        await nc.close()


def test_a_process_that_keeps_exiting_is_restarted_with_back_off_and_shown_as_a_crash_loop(
    workdir: Path,
) -> None:
    # A real service process that exits at once, every time: a setting it refuses.
    system = System(
        data_dir=workdir / "data",
        database_url="postgresql://nobody@127.0.0.1:1/none",
        nats_url="nats://127.0.0.1:1",
        smtp=("127.0.0.1", 1),
        extra_env={"WEERBAAR_LOG_LEVEL": "LOUD"},
    )
    system.spawn("intake")
    clock = [0.0]
    said: list[str] = []
    policy = RestartPolicy(
        initial_delay_s=1, max_delay_s=8, healthy_after_s=60, loop_exits=4, loop_window_s=120
    )
    supervisor = Supervisor(system, policy, clock=lambda: clock[0], say=said.append)
    delays: list[float] = []
    pids: list[int] = []
    try:
        for _ in range(6):
            proc = supervisor.watches["intake"].proc
            pids.append(proc.process.pid)
            assert proc.process.wait(60) == 2  # the exit itself, not a guess at its timing
            supervisor.check()
            delay = supervisor.watches["intake"].delay_s
            delays.append(delay)
            # Not started again before its back-off is over ...
            clock[0] += delay - 0.01
            supervisor.check()
            assert system.processes == []
            # ... and started again (same name, roles and port) once it is.
            clock[0] += 0.01
            supervisor.check()
            assert [p.log_path.stem for p in system.processes] == ["intake"]
        # A process that stayed up a while starts over at the first delay.
        clock[0] += policy.healthy_after_s
        assert supervisor.watches["intake"].proc.process.wait(60) == 2
        supervisor.check()
        after_a_healthy_while = supervisor.watches["intake"].delay_s
        state = json.loads(system.state_path.read_text())
    finally:
        system.stop()

    assert delays == [1, 2, 4, 8, 8, 8]
    assert after_a_healthy_while == 1
    assert len(set(pids)) == 6
    exits = [line for line in said if "intake exited with code 2" in line]
    assert len(exits) == 7
    assert "(1 time in the last 2 minutes); restarting in 1 s" in exits[0]
    assert "(3 times in the last 2 minutes); restarting in 4 s" in exits[2]
    loops = [line for line in said if "CRASH LOOP" in line]
    assert loops[0].startswith("weerbaar: !!! CRASH LOOP: intake exited 4 times in the last 2")
    assert len(loops) == 4  # the 4th exit and every one after it within the window
    assert state["processes"]["intake"] | {"pid": None} == {
        "pid": None,
        "restarts": 6,
        "exits_recent": 7,
        "last_exit_code": 2,
        "restart_in_s": 1.0,
        "crash_loop": True,
    }
    # The process's own log says it too, next to what the process wrote before it exited.
    logged = (workdir / "data" / "logs" / "intake.log").read_text().splitlines()
    entries = [json.loads(line) for line in logged if line.startswith("{")]
    assert sum(e.get("message") == "service process exited" for e in entries) == 7
    assert any("WEERBAAR_LOG_LEVEL" in line for line in logged)


@contextlib.contextmanager
def holding(port: int) -> Iterator[None]:
    """Listen on ``port`` as another program would, until the block ends."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As a server binds: the port's last connections may still wait in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield


def test_a_restarted_service_process_waits_for_its_port_and_never_moves(workdir: Path) -> None:
    # A real service process that exits at once (a setting it refuses), before it binds.
    system = System(
        data_dir=workdir / "data",
        database_url="postgresql://nobody@127.0.0.1:1/none",
        nats_url="nats://127.0.0.1:1",
        smtp=("127.0.0.1", 1),
        extra_env={"WEERBAAR_LOG_LEVEL": "LOUD"},
    )
    port = free_port()
    system.spawn("intake", port=port)
    clock = [0.0]
    said: list[str] = []
    policy = RestartPolicy(initial_delay_s=1, max_delay_s=8, port_wait_s=30)
    supervisor = Supervisor(system, policy, clock=lambda: clock[0], say=said.append)
    try:
        assert supervisor.watches["intake"].proc.process.wait(60) == 2
        supervisor.check()
        with holding(port):
            # The back-off is over but the port is taken: it waits, it does not move.
            clock[0] += 1
            supervisor.check()
            assert system.processes == []
            clock[0] += 10
            supervisor.check()
            assert system.processes == []
        # Free again: started on its own port.
        supervisor.check()
        assert [p.port for p in system.processes] == [port]

        # Held past the wait: started anyway, on its own port still (where it fails to bind and
        # counts as another exit), never on another one.
        assert supervisor.watches["intake"].proc.process.wait(60) == 2
        supervisor.check()
        with holding(port):
            clock[0] += 2
            supervisor.check()
            assert system.processes == []
            clock[0] += policy.port_wait_s
            supervisor.check()
            assert [p.port for p in system.processes] == [port]
    finally:
        system.stop()

    waits = [line for line in said if "waits for port" in line]
    assert (
        waits
        == [
            f"weerbaar: intake waits for port {port} to be free (up to 30 s) to start again where"
            " its clients look for it"
        ]
        * 2
    )


def test_a_port_whose_last_connections_are_in_time_wait_stays_the_services_port(
    workdir: Path,
) -> None:
    # Why a quick second `weerbaar up` moved intake and scheduling (the services the others
    # call): the server side closed those connections, so their port was in TIME_WAIT.
    port = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen()
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = listener.accept()
            accepted.close()  # the server closes first: its side of the connection waits
            assert client.recv(1) == b""
    # The port is not free to a plain bind (what the old probe did) ...
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))

    # ... but it is to a server (uvicorn binds with SO_REUSEADDR): the service keeps it.
    system = System(data_dir=workdir / "data", preferred_ports={**DEFAULT_PORTS, "intake": port})
    system.allocate_ports()
    assert system.ports["intake"] == port


def test_readers_of_the_state_file_never_see_half_of_it(workdir: Path) -> None:
    system = System(
        data_dir=workdir / "data",
        database_url="postgresql://nobody@127.0.0.1:1/none",
        nats_url="nats://127.0.0.1:1",
        smtp=("127.0.0.1", 1),
    )
    system.data_dir.mkdir(parents=True)
    version = [0]
    # A state file of some size, rewritten while another command reads it.
    system.supervision = lambda: {
        f"proces-{i}": {"versie": version[0], "toelichting": "x" * 200} for i in range(1000)
    }
    system.write_state()
    done = threading.Event()
    seen: set[int] = set()
    broken: list[str] = []

    def read_until_done() -> None:
        while not done.is_set():
            try:
                state = read_system_state(system.data_dir)
            except ValueError as exc:  # JSONDecodeError: half a file, or none
                broken.append(str(exc))
                continue
            assert state is not None
            seen.add(state["processes"]["proces-0"]["versie"])

    reader = threading.Thread(target=read_until_done)
    reader.start()
    try:
        for written in range(1, 301):
            version[0] = written
            system.write_state()
    finally:
        done.set()
        reader.join(30)

    assert broken == []
    assert len(seen) > 1  # the reader did read while the file was being rewritten
    assert read_system_state(system.data_dir)["processes"]["proces-0"]["versie"] == 300
    # Nothing left behind but the state itself.
    assert [path.name for path in system.data_dir.iterdir()] == ["state.json"]


async def stream_names(url: str) -> list[str]:
    nc = await nats.connect(url)
    try:
        return [info.config.name or "" for info in await nc.jetstream().streams_info()]
    finally:
        await nc.close()


def test_the_supervisor_restarts_a_killed_embedded_server_on_its_port_with_its_data(
    workdir: Path,
) -> None:
    system = System(data_dir=workdir / "data", smtp=("127.0.0.1", 1))
    clock = [0.0]
    said: list[str] = []
    policy = RestartPolicy(
        initial_delay_s=1, max_delay_s=8, loop_exits=2, loop_window_s=120, port_wait_s=30
    )
    try:
        system.start_servers()
        postgres, nats_server = system.postgres, system.nats
        assert postgres is not None
        assert nats_server is not None
        database_url, nats_url = system.database_url, system.nats_url
        assert database_url is not None
        assert nats_url is not None
        supervisor = Supervisor(system, policy, clock=lambda: clock[0], say=said.append)
        assert set(supervisor.watches) == {"postgres", "nats"}
        pg_port, nats_ports = postgres.port, nats_server.listen_ports

        # PostgreSQL: only the postmaster is killed (`kill -9 <pid>`), while a client holds a
        # backend, which outlives its postmaster for a moment.
        client = psycopg.connect(database_url)
        killed_pg = postgres.pid
        assert killed_pg is not None
        os.kill(killed_pg, signal.SIGKILL)
        wait_until(lambda: postgres.exit_code() is not None, 30, "postgres to exit")
        supervisor.check()
        client.close()
        with holding(pg_port):
            clock[0] += 1
            supervisor.check()
            assert not postgres.is_running()
        supervisor.check()
        assert postgres.is_running()
        assert postgres.pid != killed_pg
        assert postgres.port == pg_port
        assert accepts_connections(database_url)  # the same URL; the database is still there

        # NATS, twice in a row: the back-off doubles and the crash loop is called out.
        for _ in range(2):
            killed = nats_server.pid
            assert killed is not None
            os.kill(killed, signal.SIGKILL)
            wait_until(lambda: nats_server.exit_code() is not None, 30, "nats to exit")
            supervisor.check()
            assert not nats_server.is_running()
            clock[0] += supervisor.watches["nats"].delay_s
            supervisor.check()
            assert nats_server.is_running()
            assert nats_server.pid != killed
            assert nats_server.listen_ports == nats_ports
        assert nats_server.url == nats_url
        assert "WEERBAAR" in asyncio.run(stream_names(nats_url))  # JetStream kept its store
        state = json.loads(system.state_path.read_text())
        running = {"postgres": postgres.pid, "nats": nats_server.pid}
    finally:
        system.stop()

    pg_title = f"postgres (the embedded PostgreSQL on port {pg_port})"
    nats_title = f"nats (the embedded NATS server on ports {nats_ports[0]}, {nats_ports[1]})"
    assert [line for line in said if line.startswith("weerbaar: !!!")] == [
        f"weerbaar: !!! {pg_title} was killed by SIGKILL (1 time in the last 2 minutes);"
        f" restarting in 1 s on the same port — see {postgres.log_path}",
        f"weerbaar: !!! {nats_title} was killed by SIGKILL (1 time in the last 2 minutes);"
        f" restarting in 1 s on the same ports — see {nats_server.log_path}",
        f"weerbaar: !!! {nats_title} was killed by SIGKILL (2 times in the last 2 minutes);"
        f" restarting in 2 s on the same ports — see {nats_server.log_path}",
        "weerbaar: !!! CRASH LOOP: nats exited 2 times in the last 2 minutes (1 restarts in"
        f" all); it keeps exiting — see {nats_server.log_path}",
    ]
    assert [line for line in said if "waits for port" in line] == [
        f"weerbaar: postgres waits for port {pg_port} to be free (up to 30 s) to start again"
        " where its clients look for it"
    ]
    assert {name: state["pids"][name] for name in running} == running
    assert state["processes"]["postgres"]["restarts"] == 1
    assert state["processes"]["nats"]["restarts"] == 2
    assert state["processes"]["nats"]["crash_loop"] is True
    # Each server's own log says it too.
    logged = nats_server.log_path.read_text().splitlines()
    entries = [json.loads(line) for line in logged if line.startswith("{")]
    assert sum(e.get("message") == "server exited" for e in entries) == 2
