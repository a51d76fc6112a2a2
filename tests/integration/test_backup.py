"""``weerbaar backup`` / ``weerbaar restore`` (``tools.backup``) on real PostgreSQL and NATS: the
refusals, a database restored by other means, and the client tools of the server's version.

The whole procedure on a system under ``./weerbaar up`` is the drill
``tests/drills/test_backup_restore.py``.
"""

# ruff: noqa: F811 - the ``stelsel`` fixture is test_forget's, imported by name as a parameter

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import nats
import psycopg
import pytest

from services.intake.bootstrap import application as intake_application
from services.intake.domain import VergetenAanmelding
from services.intake.ops.forget import forget
from shared.platform.keys import KeyEncryptionKeys, KeyStoreError, retire, rotate
from shared.platform.settings import SERVICES, Settings
from tests import servers
from tests.integration.test_forget import Stelsel, drive, stelsel  # noqa: F401
from tools.backup import BackupError, backup, pg_tool, restore, server_major
from tools.backup import main as backup_main

pytestmark = pytest.mark.integration


@pytest.fixture
def elsewhere(stelsel: Stelsel, postgres_server_url: str) -> Iterator[Settings]:
    """The same installation (data directory, secrets) on a new, empty database of the same
    server, where nothing runs: the place a restore goes to while the test's services run on."""
    url = servers.create_database(postgres_server_url)
    try:
        yield stelsel.settings.model_copy(update={"database_url": url})
    finally:
        servers.drop_database(postgres_server_url, url)


def _disconnect(settings: Settings) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def _live_keys(settings: Settings, aanvraag_id: UUID) -> int:
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM intake.dossier_keys WHERE aanvraag_id = %s"
            " AND wrapped_key IS NOT NULL)"
            " + (SELECT count(*) FROM assessment.dossier_keys WHERE aanvraag_id = %s"
            " AND wrapped_key IS NOT NULL)",
            (aanvraag_id, aanvraag_id),
        ).fetchone()
    assert row is not None
    return int(row[0])


async def _publish_extra(settings: Settings) -> int:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        await js.publish("weerbaar.intake.AanvraagIngediend.x", b"{}")
        info = await js.stream_info(settings.stream_name)
        return int(info.state.messages)
    finally:
        await nc.close()


async def _on_stream(settings: Settings) -> int:
    nc = await nats.connect(settings.nats_url)
    try:
        return int((await nc.jetstream().stream_info(settings.stream_name)).state.messages)
    finally:
        await nc.close()


def test_pg_dump_and_pg_restore_of_the_servers_own_major_version(settings: Settings) -> None:
    major = server_major(settings.database_url)
    for name in ("pg_dump", "pg_restore"):
        tool = pg_tool(name, major)
        assert tool.name == name
        assert (
            f"(PostgreSQL) {major}."
            in subprocess.run(
                [str(tool), "--version"], capture_output=True, text=True, check=True
            ).stdout
        )
    with pytest.raises(BackupError, match=r"no pg_dump of PostgreSQL 99.*found: .*\(18\)"):
        pg_tool("pg_dump", 99)


def test_the_secrets_never_go_beside_the_dump(settings: Settings, tmp_path: Path) -> None:
    for dumps, secrets in ((tmp_path, tmp_path / "s"), (tmp_path / "d", tmp_path), (tmp_path,) * 2):
        with pytest.raises(BackupError, match="must not sit beside"):
            backup(settings, dumps, secrets)
    assert list(tmp_path.iterdir()) == []


def test_a_database_restored_by_other_means_gets_its_forgets_keys_and_stream_put_right(
    stelsel: Stelsel, elsewhere: Settings, tmp_path: Path
) -> None:
    """The managed-server procedure: the server's own restore, then ``restore --secrets``."""
    settings = stelsel.settings
    forgotten, kept = drive(stelsel), drive(stelsel)
    made = backup(settings, tmp_path / "dumps", tmp_path / "elders")
    assert made.keks == ["1"] and made.events["intake"] > 0

    forget(settings, forgotten.aanvraag_id, "fg-1", "verzoek_betrokkene")
    rotate(settings.database_url, settings.kek_path, SERVICES)
    retire(settings.database_url, settings.kek_path, SERVICES, "1")
    assert _live_keys(settings, forgotten.aanvraag_id) == 0

    # The server's own means, as on a managed server, over whatever the database holds.
    pg_restore = pg_tool("pg_restore", server_major(settings.database_url))
    subprocess.run(
        [
            str(pg_restore),
            "--clean",
            "--if-exists",
            "--single-transaction",
            f"--dbname={elsewhere.database_url}",
            str(made.dump),
        ],
        check=True,
        capture_output=True,
    )
    assert _live_keys(elsewhere, forgotten.aanvraag_id) == 2, "the backup brought the keys back"
    with pytest.raises(KeyStoreError, match=r"kek-1\.key"):
        intake_application(
            elsewhere.eventsourcing_env("intake")
        )  # the retired KEK: no start without it
    _disconnect(elsewhere)  # what the failed start left open
    assert asyncio.run(_publish_extra(settings)) > 0

    done = restore(elsewhere, made.secrets)

    assert not done.database
    assert [line.split()[1] for line in done.opnieuw_vergeten] == [str(forgotten.aanvraag_id)]
    assert done.keks_teruggezet == ["kek-1.key"] and done.herverpakt > 0
    assert KeyEncryptionKeys(settings.kek_path).ids() == ["2"], "kek-1 was for the restore only"
    assert _live_keys(elsewhere, forgotten.aanvraag_id) == 0
    assert asyncio.run(_on_stream(settings)) == 0, "the stream announces nothing it lacks"
    restarted = intake_application(elsewhere.eventsourcing_env("intake"))
    try:
        assert isinstance(restarted.aanvraag(forgotten.aanvraag_id).aanmelding, VergetenAanmelding)
        assert (
            restarted.persoonsgegevens(kept.aanvraag_id).bestuurder.email
            == (kept.body["bestuurder"]["email"])
        )
    finally:
        restarted.close()
    _disconnect(elsewhere)
    assert restore(elsewhere, made.secrets).opnieuw_vergeten == [], "again: nothing twice"


def test_a_restore_refuses_while_a_service_is_connected(stelsel: Stelsel, tmp_path: Path) -> None:
    settings = stelsel.settings
    drive(stelsel)
    made = backup(settings, tmp_path / "dumps", tmp_path / "elders")
    before = asyncio.run(_on_stream(settings))
    with pytest.raises(BackupError, match="still connected to the database"):
        restore(settings, made.secrets, dump=made.dump)
    assert asyncio.run(_on_stream(settings)) == before


def _holds_intake(settings: Settings) -> bool:
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute("SELECT to_regclass('intake.dossier_keys')").fetchone()
    return row is not None and row[0] is not None


def test_a_dump_that_does_not_restore_changes_nothing(
    stelsel: Stelsel, elsewhere: Settings, tmp_path: Path
) -> None:
    drive(stelsel)
    made = backup(stelsel.settings, tmp_path / "dumps", tmp_path / "elders")
    broken = tmp_path / "broken.dump"
    data = made.dump.read_bytes()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(BackupError, match="pg_restore failed, nothing restored"):
        restore(elsewhere, made.secrets, dump=broken)
    assert not _holds_intake(elsewhere), "half a restore"
    restore(elsewhere, made.secrets, dump=made.dump)
    assert _holds_intake(elsewhere)


def test_secrets_of_another_installation_are_refused(
    stelsel: Stelsel, elsewhere: Settings, tmp_path: Path
) -> None:
    drive(stelsel)
    made = backup(stelsel.settings, tmp_path / "dumps", tmp_path / "elders")
    (made.secrets / "kek" / "kek-1.key").write_bytes(bytes(32))
    with pytest.raises(BackupError, match="another installation"):
        restore(elsewhere, made.secrets, dump=made.dump)
    assert KeyEncryptionKeys(elsewhere.kek_path).ids() == ["1"]


def test_backup_of_a_data_directory_without_a_database_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEERBAAR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("WEERBAAR_DATABASE_URL", raising=False)
    argv = ["backup", "--to", str(tmp_path / "d"), "--secrets-to", str(tmp_path / "s")]
    assert backup_main(argv) == 1
    assert "no embedded database in" in capsys.readouterr().err
    assert not (tmp_path / "data" / "postgres").exists(), "no empty database made to back up"
