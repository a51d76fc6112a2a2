"""The README's run command itself: `weerbaar up` on embedded servers, stopped and started again."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.support import aanmelding, get_json, stream_messages, token, wait_until
from tools.embedded import pid_is_running
from tools.mailcatcher import list_messages

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _clean_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEERBAAR_")}
    env["WEERBAAR_DATA_DIR"] = str(data_dir)
    return env


def _up(data_dir: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "up"],
        cwd=ROOT,
        env=_clean_env(data_dir),
        stdout=(data_dir.parent / "up.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    state_file = data_dir / "state.json"
    # The state is written once the services run, and again once the portal (started last) does.
    wait_until(
        lambda: (
            (state_file.exists() and json.loads(state_file.read_text()).get("portal"))
            or process.poll() is not None
        ),
        timeout=90,
        what="weerbaar up to report the system and its portal running",
    )
    assert process.poll() is None, (data_dir.parent / "up.log").read_text()
    state: dict[str, Any] = json.loads(state_file.read_text())
    return process, state


def _down(process: subprocess.Popen[bytes], state: dict[str, Any]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    leftovers = [name for name, pid in state["pids"].items() if pid and pid_is_running(pid)]
    assert leftovers == [], f"still running after SIGTERM: {leftovers}"


def test_up_runs_the_system_and_keeps_its_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    process, state = _up(data_dir)
    try:
        intake = state["services"]["intake"]
        body = aanmelding()
        with httpx.Client(timeout=10) as client:
            # The portal answers at the URL `up` printed.
            portal = state["portal"]
            wait_until(
                lambda: f"Portal:   {portal}/" in (data_dir.parent / "up.log").read_text(),
                what="the portal's URL printed by `weerbaar up`",
            )
            page = client.get(f"{portal}/aanmelden")
            assert page.status_code == 200 and 'lang="nl"' in page.text
            created = client.post(f"{intake}/aanvragen", json=body)
            assert created.status_code == 201
            aanvraag_id = created.json()["aanvraag_id"]
            subject = f"weerbaar.intake.AanvraagIngediend.{aanvraag_id}"
            wait_until(
                lambda: any(m.subject == subject for m in stream_messages(state["nats_url"])),
                what="the CloudEvent on NATS",
            )
            headers = token(data_dir, "secretariaat")
            url = f"{intake}/aanvragen/{aanvraag_id}"
            wait_until(
                lambda: (d := get_json(client, url, headers)) and d["contact_deadline"],
                what="the contact deadline in the dossier",
            )
            mails = wait_until(lambda: list_messages(data_dir / "mail"), what="the mail")
            assert mails[0].to == (body["bestuurder"]["email"],)
        # `weerbaar mail` shows it.
        shown = subprocess.run(
            [sys.executable, "-m", "tools.cli", "mail"],
            cwd=ROOT,
            env=_clean_env(data_dir),
            capture_output=True,
            text=True,
            check=True,
        )
        assert aanvraag_id in shown.stdout
        # `weerbaar demo` drives a dossier through the whole process and prints its timeline.
        demo = subprocess.run(
            [sys.executable, "-m", "tools.cli", "demo"],
            cwd=ROOT,
            env=_clean_env(data_dir),
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert demo.returncode == 0, demo.stderr
        assert "status afgesloten" in demo.stdout
        # It ends with the dossier's page in the portal: its id, no personal data.
        demo_id = re.search(r"^Dossier (\S+) — status afgesloten$", demo.stdout, re.MULTILINE)
        assert demo_id, demo.stdout
        assert demo.stdout.rstrip().splitlines()[-1] == (
            f"In het portaal: {state['portal']}/secretariaat/dossiers/{demo_id[1]}"
        )
        for step in (
            "RapportAfgekeurd",
            "RapportHerzien",
            "RapportGoedgekeurd",
            "DossierAfgesloten",
        ):
            assert step in demo.stdout
    finally:
        _down(process, state)

    process, state = _up(data_dir)
    try:
        with httpx.Client(timeout=10) as client:
            dossier = get_json(
                client,
                f"{state['services']['intake']}/aanvragen/{aanvraag_id}",
                token(data_dir, "secretariaat"),
            )
        assert dossier is not None and dossier["contact_deadline"]
    finally:
        _down(process, state)


def test_token_command_prints_a_token_the_services_accept(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.cli",
            "token",
            "--role",
            "werkgever",
            "--organisatie",
            "GM0363",
        ],
        cwd=ROOT,
        env=_clean_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    claims = jwt.decode(
        result.stdout.strip(),
        (tmp_path / "secrets" / "jwt.key").read_bytes(),
        algorithms=["HS256"],
        audience="weerbaar",
    )
    assert claims["roles"] == ["werkgever"]
    assert claims["organisatie"] == "GM0363"


def test_a_missing_setting_stops_a_service_with_one_clear_line(tmp_path: Path) -> None:
    env = _clean_env(tmp_path)
    env["WEERBAAR_NATS_URL"] = "nats://127.0.0.1:1"
    result = subprocess.run(
        [sys.executable, "-m", "services.intake"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == ["weerbaar: setting WEERBAAR_DATABASE_URL: Field required"]
