"""``weerbaar reconcile``, the readiness detail and the gauge tell when the stream and the event
stores disagree, on real PostgreSQL and NATS.

- a consistent system reconciles clean (exit 0), and readiness and the gauge say nothing is wrong;
- after a restore of the database to an earlier point (the stream kept), the stream holds events
  the store lacks: extra, exit 1, in the readiness details and the gauge; the relay publishes
  nothing onto it, and once the stream is deleted and provisioned again (the runbook's remedy)
  it publishes its whole log and they agree;
- a gap behind the relay's position (the stream lost messages the relay recorded as published)
  is missing, exit 1;
- events the relay has not reached yet are lag, not an error (exit 0);
- with NATS or PostgreSQL unreachable the command ends within ``--timeout`` in one line.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

import nats
import psycopg
import pytest
from fastapi.testclient import TestClient

from services.intake.application import Intake
from services.intake.bootstrap import application as intake_application
from services.intake.bootstrap import bootstrap
from services.intake.domain import Aanmelding
from services.intake.gateway import to_public
from shared.platform.model import Clock, Context, utcnow
from shared.platform.relay import OutboxRelay
from shared.platform.settings import Settings
from shared.platform.stream import provision
from shared.platform.stream_tail import STREAM_AHEAD
from shared.platform.telemetry import metrics_for
from tests.support import aanmelding, stream_count
from tools.cli import main as weerbaar
from tools.embedded import free_port
from tools.streamrebuild import RebuildReport, rebuild

pytestmark = pytest.mark.integration

INTAKE_SUBJECTS = "weerbaar.intake.>"


def _submit(intake: Intake, count: int) -> None:
    for _ in range(count):
        intake.dien_aanvraag_in(Aanmelding.model_validate(aanmelding()), Context(now=utcnow()))


def _relay_at(settings: Settings) -> int:
    with psycopg.connect(settings.database_url) as conn:
        exists = conn.execute("SELECT to_regclass('intake.relay_position')").fetchone()
        if exists is None or exists[0] is None:
            return 0
        row = conn.execute(
            "SELECT notification_id FROM intake.relay_position WHERE service = 'intake'"
        ).fetchone()
    return 0 if row is None else int(row[0])


async def _publish_all(intake: Intake, settings: Settings) -> None:
    """Run intake's relay until it has recorded the whole log as published, then stop it."""
    relay = OutboxRelay(intake, to_public, settings, poll_interval_s=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        async with asyncio.timeout(30):
            while _relay_at(settings) < intake.max_notification_id():
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task


async def _relay_through_the_remedy(intake: Intake, settings: Settings) -> tuple[int, int]:
    """Start intake's relay on the stream that is ahead; once it has said so, what the stream
    holds and where the relay stands; then delete and provision the stream, and wait until the
    relay has published the whole log."""
    relay = OutboxRelay(intake, to_public, settings, poll_interval_s=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        async with asyncio.timeout(30):
            while not relay.ahead_reported:
                await asyncio.sleep(0.05)
        held_back = (
            await asyncio.to_thread(stream_count, settings.nats_url, INTAKE_SUBJECTS),
            _relay_at(settings),
        )
        await _delete_stream(settings)
        await provision(settings)
        async with asyncio.timeout(30):
            while _relay_at(settings) < intake.max_notification_id():
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    assert not relay.ahead_reported, "the relay said the stream is no longer ahead"
    return held_back


def _with_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, **urls: str) -> None:
    monkeypatch.setenv("WEERBAAR_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("WEERBAAR_KEK_DIR", str(settings.kek_path))
    monkeypatch.setenv("WEERBAAR_DATABASE_URL", urls.get("database_url", settings.database_url))
    monkeypatch.setenv("WEERBAAR_NATS_URL", urls.get("nats_url", settings.nats_url))


def _line(out: str, service: str) -> str:
    (found,) = [line for line in out.splitlines() if line.startswith(f"{service}: ")]
    return found


def _restore_to(settings: Settings, last_kept: int) -> None:
    """What a restore of the database to the moment after event ``last_kept`` does to intake's
    log: the later events gone, the notification ids handed out again from there, and the
    relay's recorded position as it was then. The stream is left as it is."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM intake.intake_events WHERE notification_id > %s", (last_kept,))
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('intake.intake_events', 'notification_id'), %s)",
            (last_kept,),
        )
        conn.execute(
            "UPDATE intake.relay_position SET notification_id = %s WHERE service = 'intake'",
            (last_kept,),
        )


async def _purge_before(settings: Settings, sequence: int) -> None:
    """The stream loses intake's messages before ``sequence`` (a damaged or partly restored
    stream store), while the relay's recorded position stays where it was."""
    nc = await nats.connect(settings.nats_url)
    try:
        await nc.jetstream().purge_stream(
            settings.stream_name, subject=INTAKE_SUBJECTS, seq=sequence
        )
    finally:
        await nc.close()


async def _delete_stream(settings: Settings) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        await nc.jetstream().delete_stream(settings.stream_name)
    finally:
        await nc.close()


async def _rebuild_from_scratch(intake: Intake, settings: Settings) -> RebuildReport:
    """``weerbaar stream-rebuild --delete-first`` while intake's relay runs."""
    relay = OutboxRelay(intake, to_public, settings, poll_interval_s=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    try:
        return await rebuild(settings, ("intake",), timeout_s=60, delete_first=True)
    finally:
        stop.set()
        await task


@contextmanager
def _intake_api(settings: Settings) -> Iterator[TestClient]:
    components = bootstrap(settings, Clock())
    try:
        with TestClient(components.api) as client:
            yield client
    finally:
        components.app.close()


def _ahead() -> float | None:
    return metrics_for("intake").registry.get_sample_value(STREAM_AHEAD, {"service": "intake"})


def test_a_consistent_system_reconciles_clean(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    intake = intake_application(settings.eventsourcing_env("intake"))
    _submit(intake, 3)
    asyncio.run(_publish_all(intake, settings))
    published = stream_count(settings.nats_url, INTAKE_SUBJECTS)
    assert published > 0
    _with_env(monkeypatch, settings)

    code = weerbaar(["reconcile", "--timeout", "60"])

    out, err = capsys.readouterr()
    assert code == 0, out + err
    line = _line(out, "intake")
    assert f"{published} messages on the stream" in line
    assert "extra 0, missing 0, not yet published 0" in line
    assert _line(out, "scheduling").startswith("scheduling: 0 events stored")
    assert err == ""
    with _intake_api(settings) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        assert "stream" not in ready.json()["details"]
        assert _ahead() == 0


def test_a_restored_database_behind_the_stream_is_reported_extra_everywhere(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    intake = intake_application(settings.eventsourcing_env("intake"))
    _submit(intake, 1)
    restore_point = intake.max_notification_id()
    _submit(intake, 3)
    asyncio.run(_publish_all(intake, settings))
    lost_up_to = intake.max_notification_id()
    intake.close()
    _restore_to(settings, restore_point)
    # After the restore, the service goes on: new dossiers' events take the lost ones' places,
    # and more: the store has an event (another one) at every position the stream holds.
    intake = intake_application(settings.eventsourcing_env("intake"))
    _submit(intake, 5)
    assert intake.max_notification_id() > lost_up_to
    _with_env(monkeypatch, settings)

    code = weerbaar(["reconcile", "--timeout", "60"])

    out, err = capsys.readouterr()
    assert code == 1
    line = _line(out, "intake")
    extra = int(line.split("extra ")[1].split(",")[0])
    assert extra >= 3, "the three lost dossiers' announcements are on the stream, not in the store"
    assert "missing 0" in line
    assert "\n  extra: " in out, "the first extra ids are listed"
    assert "intake" in err and "RUNBOOK" in err
    assert len(err.strip().splitlines()) == 1
    assert "@" not in out + err, "no personal data (the registrations' addresses) in the output"
    with _intake_api(settings) as client:
        ready = client.get("/health/ready")
        assert ready.status_code == 200, "the service serves: the stream is what is wrong"
        detail = ready.json()["details"]["stream"]
        assert detail["voor_op_opslag"] is True
        assert "reconcile" in detail["wat_te_doen"]
        assert _ahead() == 1

    # The relay publishes nothing onto a stream that holds other events under its positions
    # and ids; once the stream is deleted and provisioned again (the runbook's remedy) it
    # publishes its whole log by itself.
    on_stream = stream_count(settings.nats_url, INTAKE_SUBJECTS)
    held_back = asyncio.run(_relay_through_the_remedy(intake, settings))
    assert held_back == (on_stream, restore_point), "nothing published while the stream is ahead"
    capsys.readouterr()
    assert weerbaar(["reconcile", "--timeout", "60"]) == 0
    assert "extra 0, missing 0, not yet published 0" in _line(capsys.readouterr().out, "intake")


def test_a_gap_behind_the_relay_is_missing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    intake = intake_application(settings.eventsourcing_env("intake"))
    _submit(intake, 3)
    asyncio.run(_publish_all(intake, settings))
    before = stream_count(settings.nats_url, INTAKE_SUBJECTS)
    asyncio.run(_purge_before(settings, 3))  # the first two messages gone
    assert stream_count(settings.nats_url, INTAKE_SUBJECTS) == before - 2
    _with_env(monkeypatch, settings)

    code = weerbaar(["reconcile", "--timeout", "60"])

    out, err = capsys.readouterr()
    assert code == 1
    line = _line(out, "intake")
    assert "extra 0, missing 2, not yet published 0" in line
    assert "\n  missing: " in out
    assert "2 missing" in err and "RUNBOOK" in err
    with _intake_api(settings) as client:
        # The stream's last message is one the store holds: the cheap check sees no problem.
        assert "stream" not in client.get("/health/ready").json()["details"]
        assert _ahead() == 0

    # The runbook's remedy, with the relay running: weerbaar stream-rebuild --delete-first.
    report = asyncio.run(_rebuild_from_scratch(intake, settings))
    assert report.complete and report.on_stream["intake"] == before
    capsys.readouterr()
    assert weerbaar(["reconcile", "--timeout", "60"]) == 0
    assert "extra 0, missing 0, not yet published 0" in _line(capsys.readouterr().out, "intake")


def test_events_the_relay_has_not_reached_are_lag_not_an_error(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    intake = intake_application(settings.eventsourcing_env("intake"))
    _submit(intake, 2)
    asyncio.run(_publish_all(intake, settings))
    _submit(intake, 2)  # no relay runs now
    _with_env(monkeypatch, settings)

    code = weerbaar(["reconcile", "--timeout", "60"])

    out, err = capsys.readouterr()
    assert code == 0, out + err
    line = _line(out, "intake")
    pending = int(line.split("not yet published ")[1].split(",")[0])
    assert pending >= 2, line
    assert "extra 0, missing 0" in line


@pytest.mark.parametrize("down", ["nats_url", "database_url"])
def test_with_a_server_unreachable_the_command_ends_within_its_timeout_in_one_line(
    down: str,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    intake_application(settings.eventsourcing_env("intake"))  # the event store exists
    port = free_port()
    closed = {
        "nats_url": f"nats://127.0.0.1:{port}",
        "database_url": f"postgresql://weerbaar@127.0.0.1:{port}/weerbaar",
    }[down]
    _with_env(monkeypatch, settings, **{down: closed})
    started = time.monotonic()
    code = weerbaar(["reconcile", "--timeout", "5"])
    took = time.monotonic() - started
    out, err = capfd.readouterr()
    assert code == 1
    assert took < 5 + 2, f"took {took:.1f}s"
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    name = "NATS" if down == "nats_url" else "PostgreSQL"
    assert len(lines) == 1 and name in lines[0] and "not reachable" in lines[0], err
