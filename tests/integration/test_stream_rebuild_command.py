"""``weerbaar stream-rebuild`` tells the truth, on real PostgreSQL and NATS.

- a relay between connections when the command runs (its lock connection just lost) is still
  found running, and the command waits for its confirmation;
- a relay that holds its lock and does not confirm fails the command, within ``--timeout``;
- with NATS unreachable the command ends within ``--timeout`` with one line, no traceback.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import nats
import psycopg
import pytest

from services.intake.application import Intake
from services.intake.bootstrap import application as intake_application
from services.intake.domain import Aanmelding
from shared.platform.model import Context, utcnow
from shared.platform.relay import advisory_key, relay_lock_probe
from shared.platform.settings import Settings
from tests.support import aanmelding, stream_count, wait_until
from tools.cli import main as weerbaar
from tools.embedded import free_port
from tools.streamrebuild import rebuild
from tools.system import System

pytestmark = pytest.mark.integration


def _submit(intake: Intake, count: int) -> None:
    for _ in range(count):
        intake.dien_aanvraag_in(Aanmelding.model_validate(aanmelding()), Context(now=utcnow()))


def _published(settings: Settings) -> int:
    return stream_count(settings.nats_url, "weerbaar.intake.AanvraagIngediend.*")


def _lock_held(settings: Settings) -> bool:
    query, params = relay_lock_probe("intake")
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(query, params).fetchone()
    return bool(row and row[0])


def _cut_the_relays_lock_connection(settings: Settings) -> None:
    """As a database failover or a network blip does: the relay holds no lock until it has
    noticed, waited and connected again."""
    _, (classid, objid) = relay_lock_probe("intake")
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        terminated = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory'"
            " AND granted AND classid::bigint = %s AND objid::bigint = %s AND objsubid = 1"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            (classid, objid),
        ).fetchall()
    assert terminated == [(True,)], "one relay held the lock"


async def _delete_stream(settings: Settings) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        await nc.jetstream().delete_stream(settings.stream_name)
    finally:
        await nc.close()


def _with_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, nats_url: str) -> None:
    monkeypatch.setenv("WEERBAAR_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("WEERBAAR_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("WEERBAAR_NATS_URL", nats_url)


def test_a_relay_between_connections_is_found_running_and_confirms(
    settings: Settings, tmp_path: Path
) -> None:
    intake = intake_application(settings.eventsourcing_env("intake"))
    system = System(
        data_dir=tmp_path / "data",
        database_url=settings.database_url,
        nats_url=settings.nats_url,
        smtp=("127.0.0.1", 1),
        extra_env={"WEERBAAR_KEK_DIR": str(settings.kek_path)},
    )
    relay = system.spawn("intake", roles=("relay",), name="relay")
    try:
        wait_until(lambda: "relay active" in relay.log_path.read_text(), what="the relay active")
        _submit(intake, 12)
        wait_until(lambda: _published(settings) == 12, what="12 published")
        asyncio.run(_delete_stream(settings))
        _cut_the_relays_lock_connection(settings)
        wait_until(lambda: not _lock_held(settings), timeout=5, what="the lock released")
        report = asyncio.run(rebuild(settings, ("intake",), timeout_s=60))
    finally:
        system.stop()
    assert report.resynced == ["intake"], report
    assert report.not_running == [] and report.complete
    assert _published(settings) == 12, "the relay published its log again before confirming"


def test_a_running_relay_that_does_not_confirm_fails_the_command_within_its_timeout(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    intake_application(settings.eventsourcing_env("intake"))  # the event store exists
    key = advisory_key("weerbaar-relay:intake")
    _with_env(monkeypatch, settings, settings.nats_url)
    # A relay that holds its lock but never answers (hung on something).
    with psycopg.connect(settings.database_url, autocommit=True) as hung:
        hung.execute("SELECT pg_advisory_lock(%s)", (key,))
        started = time.monotonic()
        code = weerbaar(["stream-rebuild", "--timeout", "6"])
        took = time.monotonic() - started
    assert code == 1
    assert took < 6 + 2, f"took {took:.1f}s"
    err = capsys.readouterr().err
    assert "intake" in err and "did not confirm" in err


def test_with_nats_down_the_command_ends_within_its_timeout_in_one_line(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    closed = f"nats://127.0.0.1:{free_port()}"
    _with_env(monkeypatch, settings, closed)
    started = time.monotonic()
    code = weerbaar(["stream-rebuild", "--timeout", "5"])
    took = time.monotonic() - started
    out, err = capfd.readouterr()
    assert code == 1
    assert took < 5 + 2, f"took {took:.1f}s"
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "NATS" in lines[0] and "not reachable" in lines[0], err
