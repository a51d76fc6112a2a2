"""Drill: back up and restore (the runbook's "Back up and restore"), natively.

A backup is made of a running system; after it a dossier is registered, another is forgotten and
the KEK is rotated and the old one retired — everything that used to make a restore go wrong.
Then the runbook's restore: the dossier registered after the backup is gone (from the database
and from the stream), the dossier forgotten after the backup is forgotten again and on record,
the retired KEK is not needed afterwards, and nothing is lost or doubled.

The mailbox of the embedded mail catcher is the outside world, not part of the system: the drill
puts it back to what it held at the backup, so that the accounting compares the mail the restored
system announces with the mail it sent.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from uuid import UUID

import httpx
import psycopg
import pytest

from shared.platform.forgotten import ForgetRecord
from shared.platform.settings import SERVICES
from tests.drills.operator import ROOT, Operator
from tests.support import stream_messages

pytestmark = pytest.mark.e2e


def _ontvanger(operator: Operator, aanvraag_id: str) -> httpx.Response:
    """The bestuurder's address as a service gets it (the claim check of intake's API)."""
    return httpx.get(
        f"{operator.url('intake')}/internal/aanvragen/{aanvraag_id}/ontvanger",
        params={"rol": "bestuurder"},
        headers=operator.headers("dienst", sub="svc-drill"),
        timeout=10,
    )


def _forget(operator: Operator, aanvraag_id: str) -> str:
    done = subprocess.run(
        ["./weerbaar", "forget", aanvraag_id, "--reden", "verzoek_betrokkene"],
        cwd=ROOT,
        env=operator.env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_restore_keeps_forgets_survives_a_retired_kek_and_empties_the_stream(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    home = tmp_path_factory.mktemp("restore")
    operator = Operator(home / "data")
    dumps, secrets = home / "dumps", home / "elders" / "secrets"
    operator.up()
    try:
        forgotten_later, kept = operator.register_many(2)
        operator.account()
        personal = _ontvanger(operator, forgotten_later).json()["email"]
        kept_address = _ontvanger(operator, kept).json()

        made = operator.runbook(
            "weerbaar backup --to DUMPS --secrets-to SECRETS",
            DUMPS=str(dumps),
            SECRETS=str(secrets),
        )
        [dump] = dumps.glob("weerbaar-*.dump")
        [folder] = secrets.glob("weerbaar-*")
        assert str(dump) in made.stdout
        assert sorted(p.name for p in (folder / "kek").iterdir()) == ["kek-1.key"]
        manifest = json.loads(dump.with_suffix(".json").read_text())
        assert manifest["keks_nodig"] == ["1"] and set(manifest["events"]) == set(SERVICES)
        # Nothing personal in the manifest or the command's output.
        assert personal not in made.stdout and personal not in json.dumps(manifest)
        mailbox_at_backup = home / "mail-at-backup"
        shutil.copytree(operator.mail_dir, mailbox_at_backup)
        at_backup = list(operator.registered)

        # After the backup: a new dossier, a forget, a KEK rotation and the old KEK retired.
        [after_backup] = operator.register_many(1)
        assert "personal data forgotten" in _forget(operator, forgotten_later)
        assert _ontvanger(operator, forgotten_later).status_code == 410
        operator.runbook("weerbaar keys rotate")
        operator.runbook("weerbaar keys retire N", N="1")
        kek_dir = operator.data_dir / "secrets"
        assert sorted(p.name for p in kek_dir.glob("kek-*.key")) == ["kek-2.key"]
        operator.account()
        operator.down()

        restored = operator.runbook(
            "weerbaar restore --dump DUMP --secrets SECRETS", DUMP=str(dump), SECRETS=str(folder)
        )
        assert f"dossier {forgotten_later} forgotten again" in restored.stdout
        assert "weerbaar restore: 1 dossiers forgotten again from the forget record" in (
            restored.stdout
        )
        assert "KEKs from the backup: kek-1.key" in restored.stdout
        assert "the stream was emptied" in restored.stdout
        # The retired KEK was needed for the restore only: gone again, every key on kek-2.
        assert sorted(p.name for p in kek_dir.glob("kek-*.key")) == ["kek-2.key"]
        assert [e.aanvraag_id for e in ForgetRecord(kek_dir).entries()] == [UUID(forgotten_later)]

        # The outside world as at the backup (see the module's text), and what the system owes.
        shutil.rmtree(operator.mail_dir)
        shutil.copytree(mailbox_at_backup, operator.mail_dir)
        operator.registered = at_backup
        operator.up()
        account = operator.account()
        messages = stream_messages(operator.nats_url)
        assert not any(after_backup in m.subject for m in messages), (
            "the stream announces a dossier the restored database does not hold"
        )
        assert (
            httpx.get(
                f"{operator.url('intake')}/aanvragen/{after_backup}",
                headers=operator.headers("secretariaat"),
                timeout=10,
            ).status_code
            == 404
        )
        # Forgotten again, and on record (once); the other dossier reads as before.
        gone = _ontvanger(operator, forgotten_later)
        assert gone.status_code == 410 and personal not in gone.text
        assert _ontvanger(operator, kept).json() == kept_address
        vergeten = [
            m
            for m in messages
            if m.subject.startswith("weerbaar.intake.PersoonsgegevensVergeten.")
            and forgotten_later in m.subject
        ]
        assert len(vergeten) == 1, [m.subject for m in messages if "Vergeten" in m.subject]
        with psycopg.connect(operator.database_url) as conn:
            for service in SERVICES:
                live = conn.execute(
                    f"SELECT count(*) FROM {service}.dossier_keys"  # noqa: S608 - our schema names
                    " WHERE aanvraag_id = %s AND wrapped_key IS NOT NULL",
                    (forgotten_later,),
                ).fetchone()
                assert live == (0,), service
            keks = conn.execute(
                "SELECT DISTINCT kek_id FROM intake.dossier_keys WHERE wrapped_key IS NOT NULL"
            ).fetchall()
            assert keks == [("2",)]
        operator.runbook("weerbaar verify")
        operator.runbook("weerbaar reconcile")
        reconciled = operator.runbook("weerbaar reconcile --timeout 120")
        assert "extra" not in reconciled.stderr, reconciled.stderr
        print(f"after the restore: {account}")
        operator.down()

        # Run again (as after NATS was unreachable): harmless, nothing forgotten twice.
        again_out = operator.runbook("weerbaar restore --secrets SECRETS", SECRETS=str(folder))
        assert "weerbaar restore: 0 dossiers forgotten again" in again_out.stdout
        assert re.search(r"the stream was emptied", again_out.stdout)
    finally:
        if operator.is_running():
            operator.down()
