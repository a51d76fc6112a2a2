"""Compliance over a real run: time travel, the audit export, rebuilding the dossier projection.

One system (the five services as processes, fresh database and streams) takes three dossiers
through the process: one to the end (closed after every measure), one to an approved report after
a rejection, one only registered. The tests then ask for the past and rebuild the read model.
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.sql import SQL, Identifier

from services.assessment.bootstrap import application as assessment_application
from services.assessment.projections import RAPPORT
from services.intake.bootstrap import application as intake_application
from services.intake.ops.retention import apply, check_settings, plan
from services.intake.projections import rebuild as replay_module
from services.intake.projections.dossier import store_events
from services.intake.projections.rebuild import PREVIOUS, Rebuild, content_hash, contents
from services.notifications.bootstrap import application as notifications
from services.notifications.projections import NOTIFICATIE
from services.scheduling.bootstrap import application as scheduling_application
from services.scheduling.domain.calendar import WorkingDayCalendar
from services.scheduling.projections import PLANNING
from shared.platform import projection as projection_module
from shared.platform.auth import load_or_create_secret
from shared.platform.chain import events_table, verify
from shared.platform.eventstore import ServiceApplication
from shared.platform.model import utcnow
from shared.platform.projection import AggregateProjection
from shared.platform.projection import Rebuild as ProjectionRebuild
from shared.platform.projection import content_hash as projection_hash
from shared.platform.projection import contents as projection_contents
from shared.platform.rebuild import Busy
from shared.platform.register import RegisterRebuild, register_contents, register_hash
from shared.platform.relay import advisory_key
from shared.platform.settings import SERVICES, Settings
from shared.platform.signing import load_public_keys
from tests import servers
from tests.support import reset_streams, settings_for, wait_until
from tools.cli import REGISTER_SERVICES
from tools.demo import Actors, DossierDriver, personal_values
from tools.embedded import free_port
from tools.mailcatcher import MailCatcher
from tools.system import System, service_command

pytestmark = pytest.mark.e2e

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class World:
    system: System
    settings: Settings
    database: str
    closed: DossierDriver
    approved: DossierDriver
    registered: DossierDriver


def _weerbaar(world: World, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``weerbaar ARGS`` against the running system, as an operator would type it."""
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        cwd=ROOT,
        env={**world.system.env(), "WEERBAAR_DATA_DIR": str(world.system.data_dir)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _driver(system: System, client: httpx.Client, organisatie: str) -> DossierDriver:
    actors = Actors(
        secret=load_or_create_secret(system.data_dir / "secrets" / "jwt.key"),
        bestuurder_email=f"bestuurder.{secrets.token_hex(4)}@example.org",
        organisatie=organisatie,
    )
    return DossierDriver({s: system.url(s) for s in SERVICES}, actors, client)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, postgres_server_url: str, nats_url: str
) -> Iterator[World]:
    """Three dossiers in different states, on a running system."""
    base = tmp_path_factory.mktemp("replay")
    database = servers.create_database(postgres_server_url)
    settings = settings_for(database, nats_url, base / "data")
    reset_streams(settings)
    catcher = MailCatcher(base / "mail", port=0)
    catcher.start()
    system = System(
        data_dir=base / "data",
        database_url=database,
        nats_url=nats_url,
        smtp=("127.0.0.1", catcher.port),
        preferred_ports={s: free_port() for s in SERVICES},
    )
    system.data_dir.mkdir()
    system.start_services(timeout=90)
    try:
        with httpx.Client(timeout=15) as client:
            closed = _driver(system, client, "GM0363")
            closed.registreer()
            closed.neem_contact_op()
            closed.plan_gesprekken()
            closed.voer_gesprekken()
            closed.schrijf_rapport()
            closed.beoordeel(closed.dien_in(), goedkeuren=True)
            closed.probeer_te_lezen("werkgever")  # before the consent: refused
            closed.lees_rapport("bestuurder")
            closed.instemming(geeft=True)
            closed.lees_rapport("werkgever")
            closed.pkvw_certificaat()
            closed.voer_maatregelen_uit()
            closed.wait_for_status("afgesloten")

            approved = _driver(system, client, "GM0599")
            approved.tot_goedgekeurd()
            approved.wait_for_status("goedgekeurd")

            registered = _driver(system, client, "GM0344")
            registered.registreer()
            yield World(system, settings, database, closed, approved, registered)
    finally:
        system.stop()
        catcher.stop()
        servers.drop_database(postgres_server_url, database)


def _audit(world: World, d: DossierDriver) -> list[dict[str, Any]]:
    body: list[dict[str, Any]] = d.call(
        "GET", "intake", f"/aanvragen/{d.aanvraag_id}/audit", "compliance"
    ).json()
    return body


def _as_of(d: DossierDriver, per: datetime, role: str = "compliance") -> httpx.Response:
    return d.call(
        "GET",
        "intake",
        f"/aanvragen/{d.aanvraag_id}",
        role,
        params={"per": per.isoformat()},
        expect=(200, 404, 422),
    )


def test_as_of_shows_the_dossier_before_a_later_decision(world: World) -> None:
    d = world.approved
    trail = _audit(world, d)
    approvals = [e for e in trail if e["type"].endswith(".RapportGoedgekeurd.v1")]
    assert len(approvals) == 1
    approved_at = datetime.fromisoformat(approvals[0]["time"])
    rejected_at = datetime.fromisoformat(
        next(e["time"] for e in trail if e["type"].endswith(".RapportAfgekeurd.v1"))
    )

    before = _as_of(d, approved_at - timedelta(microseconds=1))
    assert before.status_code == 200
    assert before.json()["status"] == "ter_toetsing"
    versies = before.json()["rapport"]["versies"]
    assert [v["besluit"] for v in versies] == ["afgekeurd", None]  # v2 not yet decided

    at = _as_of(d, approved_at)
    assert at.json()["status"] == "goedgekeurd"
    just_after_rejection = _as_of(d, rejected_at)
    assert just_after_rejection.json()["status"] == "afgekeurd"
    # Now: what later happened is there, and the past answer did not change with it.
    assert d.dossier()["status"] == "goedgekeurd"
    assert _as_of(d, approved_at - timedelta(microseconds=1)).json() == before.json()

    # Before the registration was recorded the dossier did not exist: the same 404 as ever.
    ingediend = datetime.fromisoformat(
        next(e["time"] for e in trail if e["type"].endswith(".AanvraagIngediend.v1"))
    )
    assert _as_of(d, ingediend - timedelta(seconds=1)).status_code == 404
    # An unparseable time, or one without an offset, is a 422.
    for bad in ("gisteren", "2026-05-11T10:00:00"):
        response = d.call(
            "GET",
            "intake",
            f"/aanvragen/{d.aanvraag_id}",
            "compliance",
            params={"per": bad},
            expect=422,
        )
        assert bad not in response.text


def test_as_of_keeps_the_access_rules(world: World) -> None:
    d = world.approved
    per = datetime.fromisoformat(_audit(world, d)[-1]["time"])
    # The werkgever of another organisation: the same hiding 404 as without `per`, on record.
    other = d.call(
        "GET",
        "intake",
        f"/aanvragen/{d.aanvraag_id}",
        None,
        params={"per": per.isoformat()},
        expect=404,
        headers=world.closed.actors.headers("werkgever"),  # a werkgever of GM0363
    )
    assert other.status_code == 404

    def refused_on_record() -> bool:
        return any(e["type"].endswith(".ToegangGeweigerd.v1") for e in _audit(world, d))

    wait_until(refused_on_record, timeout=60, what="the refusal in the audit trail")
    # The dossier's own werkgever sees it as of then, without the measures (not yet released).
    own = _as_of(d, per, role="werkgever")
    assert own.status_code == 200
    assert own.json()["maatregelen"] == []


def test_cli_shows_the_dossier_as_of_a_time(world: World) -> None:
    d = world.approved
    trail = _audit(world, d)
    approved_at = next(e["time"] for e in trail if e["type"].endswith(".RapportGoedgekeurd.v1"))
    per = (datetime.fromisoformat(approved_at) - timedelta(microseconds=1)).isoformat()
    result = _weerbaar(world, "dossier", d.aanvraag_id, "--per", per, timeout=60)
    assert result.returncode == 0, result.stderr
    assert '"status": "ter_toetsing"' in result.stdout


def _export(d: DossierDriver, formaat: str, **params: str) -> httpx.Response:
    return d.call(
        "GET",
        "intake",
        "/audit/export",
        "compliance",
        params={"formaat": formaat, **params},
    )


class _Tables(HTMLParser):
    """The rows of each table of an HTML document, by the table's class."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.paragraphs: dict[str, str] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._p: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        css = (dict(attrs).get("class") or "").split(" ")[0]
        if tag == "table":
            self._table = css
            self.tables[css] = []
        elif tag == "tr":
            self._row = []
        elif tag == "td":
            self._cell = []
        elif tag == "p" and css:
            self._p = css
            self.paragraphs[css] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._table and self._row:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "p":
            self._p = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        elif self._p is not None:
            self.paragraphs[self._p] += data


def test_audit_export_lists_every_actor_and_every_read_in_three_formats(world: World) -> None:
    d = world.closed
    trail = _audit(world, d)
    reads = {
        (e["time"], e["actorrole"], e["actorid"], str(e["data"]["versie"]))
        for e in trail
        if e["type"].endswith(".RapportIngezien.v1")
    }
    assert {r[1] for r in reads} >= {"bestuurder", "werkgever"}
    actors = {(e.get("actorrole"), e.get("actorid")) for e in trail}
    done = {e["type"].split(".")[-2] for e in trail}
    assert {
        "AanvraagIngediend",
        "AfspraakGepland",
        "GesprekGevoerd",
        "RapportOpgesteld",
        "RapportTerToetsingAangeboden",
        "RapportGoedgekeurd",
        "InstemmingGegeven",
        "RapportVrijgegeven",
        "RapportIngezien",
        "ToegangGeweigerd",
        "MaatregelUitgevoerd",
        "DossierAfgesloten",
    } <= done

    # JSON
    body = _export(d, "json", aanvraag_id=d.aanvraag_id).json()
    assert body["verificatie"]["uitgevoerd"] and body["verificatie"]["in_orde"]
    assert {(a["rol"], a["actor"]) for a in body["actoren"]} == actors
    assert {(r["tijd"], r["rol"], r["actor"], str(r["versie"])) for r in body["inzage"]} == reads
    assert len(body["weigeringen"]) == sum(
        1 for e in trail if e["type"].endswith(".ToegangGeweigerd.v1")
    )
    assert sorted(e["id"] for e in trail) == sorted(r["event_id"] for r in body["gebeurtenissen"])
    handelingen = {r["handeling"] for r in body["gebeurtenissen"]}
    assert {
        "ingediend",
        "gepland",
        "gesprek gevoerd",
        "rapport geschreven",
        "ter toetsing aangeboden",
        "goedgekeurd",
        "instemming gegeven",
        "vrijgegeven",
        "gelezen",
        "toegang geweigerd",
    } <= handelingen
    assert body["termijnen"] == [
        {
            "aanvraag_id": d.aanvraag_id,
            "deadline": body["termijnen"][0]["deadline"],
            "contact_op": body["termijnen"][0]["contact_op"],
            "uitkomst": "gehaald",
        }
    ]

    # CSV
    text = _export(d, "csv", aanvraag_id=d.aanvraag_id).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["event_id"] for r in rows) == sorted(e["id"] for e in trail)
    assert {(r["rol"] or None, r["actor"] or None) for r in rows} == actors
    assert {
        (r["tijd"], r["rol"], r["actor"], r["versie"]) for r in rows if r["handeling"] == "gelezen"
    } == reads

    # HTML: a document to file, stating the verification.
    response = _export(d, "html", aanvraag_id=d.aanvraag_id)
    assert response.headers["content-type"].startswith("text/html")
    document = _Tables()
    document.feed(response.text)
    assert "Geverifieerd tegen de hash-keten" in document.paragraphs["verificatie"]
    assert "in orde" in document.paragraphs["verificatie"]
    assert {(r[2], r[3], r[4]) for r in document.tables["inzage"]} == {
        (rol, actor, versie) for _, rol, actor, versie in reads
    }
    assert {r[0] for r in document.tables["inzage"]} == {r[0] for r in reads}
    assert {(r[0] or None, r[1] or None) for r in document.tables["actoren"]} == actors
    assert len(document.tables["gebeurtenissen"]) == len(trail)
    assert document.tables["termijnen"][0][3] == "gehaald"

    # No personal data in any format.
    secrets_of_dossier = personal_values(d.actors)
    for output in (json.dumps(body), text, response.text):
        for value in secrets_of_dossier:
            assert value not in output


def test_audit_export_of_a_period_and_its_rules(world: World) -> None:
    d = world.approved
    times = [datetime.fromisoformat(e["time"]) for e in _audit(world, world.closed)]
    van = min(times) - timedelta(seconds=1)
    tot = max(datetime.fromisoformat(e["time"]) for e in _audit(world, d)) + timedelta(seconds=1)
    body = _export(d, "json", van=van.isoformat(), tot=tot.isoformat(), verifieer="false").json()
    dossiers = {r["aanvraag_id"] for r in body["gebeurtenissen"]}
    assert {world.closed.aanvraag_id, d.aanvraag_id} <= dossiers
    assert not body["verificatie"]["uitgevoerd"]
    # A dossier or a whole period; only compliance; an unknown dossier is the usual 404.
    d.call(
        "GET", "intake", "/audit/export", "compliance", params={"van": van.isoformat()}, expect=422
    )
    d.call(
        "GET",
        "intake",
        "/audit/export",
        "secretariaat",
        params={"aanvraag_id": d.aanvraag_id},
        expect=403,
    )
    d.call(
        "GET",
        "intake",
        "/audit/export",
        "compliance",
        params={"aanvraag_id": "00000000-0000-4000-8000-000000000000"},
        expect=404,
    )


def test_the_chains_verification_is_kept_for_its_max_age_and_made_again_on_request(
    world: World,
) -> None:
    d = world.closed
    first = d.call("GET", "intake", "/audit/verificatie", "compliance").json()
    assert first["uitgevoerd"] is True and first["in_orde"] is True, first
    assert set(first["diensten"]) == set(SERVICES)
    # Within the max age the same verification answers (the system runs with the default).
    again = d.call("GET", "intake", "/audit/verificatie", "compliance").json()
    assert again["gestart_op"] == first["gestart_op"]
    fresh = d.call(
        "GET", "intake", "/audit/verificatie", "compliance", params={"opnieuw": "true"}
    ).json()
    assert datetime.fromisoformat(fresh["gestart_op"]) > datetime.fromisoformat(first["gestart_op"])
    assert fresh["in_orde"] is True
    # An export makes its own, which then answers the page too.
    assert _export(d, "json", aanvraag_id=d.aanvraag_id).json()["verificatie"]["in_orde"]
    after_export = d.call("GET", "intake", "/audit/verificatie", "compliance").json()
    assert datetime.fromisoformat(after_export["gestart_op"]) > datetime.fromisoformat(
        fresh["gestart_op"]
    )
    # For compliance only; a malformed flag is a 422.
    for rol in ("secretariaat", "bestuurder", "werkgever", "bva"):
        d.call("GET", "intake", "/audit/verificatie", rol, expect=403)
    d.call("GET", "intake", "/audit/verificatie", "compliance", params={"opnieuw": "x"}, expect=422)


def test_audit_export_command_writes_a_file(world: World, tmp_path: Path) -> None:
    d = world.closed
    target = tmp_path / "verslag.html"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tools.cli",
            "audit-export",
            "--aanvraag",
            d.aanvraag_id,
            "--formaat",
            "html",
            "--uit",
            str(target),
        ],
        cwd=ROOT,
        env={**world.system.env(), "WEERBAAR_DATA_DIR": str(world.system.data_dir)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    document = _Tables()
    document.feed(target.read_text(encoding="utf-8"))
    assert "in orde" in document.paragraphs["verificatie"]
    assert len(document.tables["gebeurtenissen"]) == len(_audit(world, d))


def _types(database: str, aanvraag_id: str) -> list[str]:
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT type FROM intake.dossier_events WHERE aanvraag_id = %s", (aanvraag_id,)
        ).fetchall()
    return [str(r[0]).split(".")[-2] for r in rows]


def test_retention_destroys_on_record_and_a_legal_hold_stops_it(world: World) -> None:
    d = world.closed
    settings = settings_for(
        world.database,
        world.settings.nats_url,
        world.system.data_dir,
        retention_days={"RapportIngezien": 30},
        retention_personal_data_days=730,
    )
    assert check_settings(settings) == []
    ended = datetime.fromisoformat(d.dossier()["afgesloten_op"])
    reads = _types(world.database, d.aanvraag_id).count("RapportIngezien")
    assert reads >= 2
    stored_before = _stored_events(world.database)
    intake = intake_application(settings.eventsourcing_env("intake"))
    lines: list[str] = []
    try:
        # Nothing is due yet.
        assert not any(b.iets for b in plan(settings, intake, utcnow()))

        # Under a legal hold nothing goes, even long after the periods passed.
        hold = d.call(
            "POST",
            "intake",
            f"/aanvragen/{d.aanvraag_id}/bewaarplicht",
            "compliance",
            json={"reden": "rechtszaak"},
        )
        assert hold.json() == {"bewaarplicht": "rechtszaak"}
        later = ended + timedelta(days=800)
        (held,) = [b for b in plan(settings, intake, later) if str(b.aanvraag_id) == d.aanvraag_id]
        assert held.bewaarplicht == "rechtszaak"
        assert held.persoonsgegevens and held.vervallen[0].soort == "RapportIngezien"
        assert apply(settings, intake, [held], lines.append) == 0
        assert _types(world.database, d.aanvraag_id).count("RapportIngezien") == reads
        assert d.wait_for_status("afgesloten")["persoonsgegevens_vergeten_op"] is None
        wait_until(
            lambda: d.dossier()["bewaarplicht"] == "rechtszaak", timeout=60, what="the hold shown"
        )

        # Lifted: after 30 days the reads go, each destruction on record; the rest stays.
        d.call("DELETE", "intake", f"/aanvragen/{d.aanvraag_id}/bewaarplicht", "compliance")
        after_reads = ended + timedelta(days=31)
        due = [b for b in plan(settings, intake, after_reads) if b.iets]
        assert [str(b.aanvraag_id) for b in due] == [d.aanvraag_id]
        assert not due[0].persoonsgegevens
        assert apply(settings, intake, due, lines.append) == reads
        types = _types(world.database, d.aanvraag_id)
        assert "RapportIngezien" not in types
        assert "AanvraagIngediend" in types and "RapportGoedgekeurd" in types

        def destruction_on_record() -> list[dict[str, Any]]:
            return [e for e in _audit(world, d) if e["type"].endswith(".GegevensVernietigd.v1")]

        (record,) = wait_until(destruction_on_record, timeout=60, what="GegevensVernietigd")
        assert record["data"]["soort"] == "RapportIngezien"
        assert record["data"]["aantal"] == reads
        assert record["actorrole"] == "beheerder"
        wait_until(
            lambda: d.dossier()["rapport"]["keer_ingezien"] == 0, timeout=60, what="refolded"
        )
        # Applying again destroys nothing more and records nothing more.
        assert not any(b.iets for b in plan(settings, intake, after_reads))

        # Two years after the end the personal data go: crypto-shredded, on record.
        due = [b for b in plan(settings, intake, ended + timedelta(days=731)) if b.iets]
        assert [(str(b.aanvraag_id), b.persoonsgegevens) for b in due] == [(d.aanvraag_id, True)]
        apply(settings, intake, due, lines.append)
        forgotten = wait_until(
            lambda: d.dossier()["persoonsgegevens_vergeten_op"], timeout=60, what="forgotten"
        )
        assert forgotten is not None
        assert any(
            e["type"].endswith(".PersoonsgegevensVergeten.v1")
            and e["data"]["reden"] == "bewaartermijn_verstreken"
            for e in _audit(world, d)
        )
    finally:
        intake.close()
    # The event stores lost nothing: only the records were added, and every chain verifies.
    assert _stored_events(world.database) > stored_before
    keys = load_public_keys(world.system.data_dir / "secrets")
    for service in SERVICES:
        assert verify(service, world.database, keys).ok, service
    assert any("GegevensVernietigd" in line for line in lines)


def test_retention_command_is_a_dry_run_by_default(world: World) -> None:
    result = _weerbaar(world, "retention", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dry run; 0 dossier(s)" in result.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "tools.cli", "retention", "--apply"],
        cwd=ROOT,
        env={
            **world.system.env(),
            "WEERBAAR_DATA_DIR": str(world.system.data_dir),
            "WEERBAAR_RETENTION_DAYS": '{"GeenType": 5}',
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2
    assert "unknown event type GeenType" in bad.stderr


def _event_ids(database: str, schema: str) -> set[str]:
    with psycopg.connect(database) as conn:
        return {
            r[0]
            for r in conn.execute(
                SQL("SELECT event_id FROM {}").format(Identifier(schema, "dossier_events"))
            ).fetchall()
        }


def _views(database: str, schema: str) -> dict[str, Any]:
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            SQL("SELECT aanvraag_id::text, view FROM {}").format(Identifier(schema, "dossiers"))
        ).fetchall()
    return {r[0]: r[1] for r in rows}


def _assert_same(database: str, schema: str, other: str, *, with_sequence: bool) -> None:
    """Table by table, row by row: a difference is shown, not only a different hash."""
    mine = contents(database, schema, with_sequence=with_sequence)
    theirs = contents(database, other, with_sequence=with_sequence)
    for table, rows in mine.items():
        assert len(rows) == len(theirs[table]), table
        for row, their in zip(rows, theirs[table], strict=True):
            assert row == their, table


def _rebuild(world: World, target: str, **kwargs: Any) -> Rebuild:
    rebuild = Rebuild(
        world.settings, target=target, progress=False, env=world.system.env(), **kwargs
    )
    rebuild.prepare()
    return rebuild


def test_rebuild_gives_exactly_the_live_read_model_and_twice_the_same(world: World) -> None:
    first = _rebuild(world, "intake_replay_a")
    previous: dict[str, int] = {}

    def settled() -> bool:
        # The run has come to rest when the logs stop growing and the live projection holds
        # exactly the events the logs announce (the rebuild reads them incrementally).
        outcome = first.run(switch=False)
        assert outcome.complete
        rested = outcome.positions == previous
        previous.clear()
        previous.update(outcome.positions)
        return rested and _event_ids(world.database, "intake") == _event_ids(
            world.database, "intake_replay_a"
        )

    wait_until(settled, timeout=180, what="the live projection to hold every logged event")
    live = _views(world.database, "intake")
    rebuilt = _views(world.database, "intake_replay_a")
    assert len([v for v in live.values() if v is not None]) == 3
    assert rebuilt == live
    _assert_same(world.database, "intake_replay_a", "intake", with_sequence=False)
    assert content_hash(world.database, "intake_replay_a", with_sequence=False) == content_hash(
        world.database, "intake", with_sequence=False
    )

    # A second rebuild from scratch gives the identical read model, stream order keys included.
    second = _rebuild(world, "intake_replay_b")
    outcome = second.run(switch=False)
    assert outcome.complete and outcome.folded == len(live)
    assert content_hash(world.database, "intake_replay_b") == content_hash(
        world.database, "intake_replay_a"
    )

    # From the stream instead of the logs: the live read model to the last column.
    from_stream = _rebuild(world, "intake_replay_s", source="stream")
    assert from_stream.run(switch=False).complete
    _assert_same(world.database, "intake_replay_s", "intake", with_sequence=True)
    assert content_hash(world.database, "intake_replay_s") == content_hash(world.database, "intake")


def test_interrupted_rebuild_resumes_and_does_not_switch(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = content_hash(world.database, "intake_replay_b")
    live_before = content_hash(world.database, "intake")
    rebuild = _rebuild(world, "intake_replay_i")
    # One run per target at a time: a second one would interleave its positions.
    with psycopg.connect(world.database, autocommit=True) as other:
        other.execute(
            "SELECT pg_advisory_lock(%s)", (advisory_key("weerbaar-replay:intake_replay_i"),)
        )
        with pytest.raises(Busy):
            rebuild.run(switch=False)
        # Released here, not by closing the connection: the server drops a closed session's
        # locks only once its backend has ended, which the next line could outrun.
        other.execute(
            "SELECT pg_advisory_unlock(%s)", (advisory_key("weerbaar-replay:intake_replay_i"),)
        )
    first = rebuild.run(switch=True, budget=7)
    assert first.loaded == 7
    assert not first.complete and not first.switched
    assert sum(first.positions.values()) > 0  # the position is kept
    # The live read model is untouched and nothing was moved aside.
    assert content_hash(world.database, "intake") == live_before
    with psycopg.connect(world.database) as conn:
        assert conn.execute("SELECT to_regnamespace(%s)", (PREVIOUS,)).fetchone() == (None,)

    rows_after_first = len(_event_ids(world.database, "intake_replay_i"))

    # A crash in the middle of a batch leaves nothing of that batch: its rows and its position
    # commit together. The crash comes after the batch's events were written (not yet committed).
    def crashing(*args: Any, **kwargs: Any) -> list[Any]:
        stored = store_events(*args, **kwargs)
        assert stored, "the batch wrote events before the crash"
        raise RuntimeError("crash in the middle of a batch")

    monkeypatch.setattr(replay_module, "store_events", crashing)
    with pytest.raises(RuntimeError, match="crash"):
        _rebuild(world, "intake_replay_i").run(switch=False)
    monkeypatch.undo()
    with psycopg.connect(world.database) as conn:
        kept: dict[str, int] = dict(
            conn.execute("SELECT source, position FROM intake_replay_i.replay_positions").fetchall()
        )
    assert {s: p for s, p in first.positions.items() if p} == kept
    assert len(_event_ids(world.database, "intake_replay_i")) == rows_after_first

    # A new run (a new process would do the same: the position is in the database) goes on
    # from there and reads each event once.
    again = _rebuild(world, "intake_replay_i")
    second = again.run(switch=False, budget=30)
    assert second.loaded == 30
    assert all(second.positions[s] >= first.positions[s] for s in first.positions)
    rest = again.run(switch=False)
    assert rest.complete
    assert first.loaded + second.loaded + rest.loaded == _stored_events(world.database)
    assert content_hash(world.database, "intake_replay_i") == reference


def _stored_events(database: str) -> int:
    with psycopg.connect(database) as conn:
        counts = [
            conn.execute(SQL("SELECT count(*) FROM {}").format(events_table(s))).fetchone()
            for s in SERVICES
        ]
    return sum(int(c[0]) for c in counts if c is not None)


def test_replay_command_switches_the_live_read_model_over(world: World) -> None:
    live_before = content_hash(world.database, "intake", with_sequence=False)
    hash_before = _weerbaar(world, "replay", "--hash")
    assert hash_before.returncode == 0, hash_before.stderr
    assert hash_before.stdout.strip() == live_before
    result = _weerbaar(world, "replay", "--target", "intake_replay_c")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "switched" in result.stdout
    assert "100.0%" in result.stderr  # the progress bar
    assert content_hash(world.database, "intake", with_sequence=False) == live_before
    assert content_hash(world.database, PREVIOUS, with_sequence=False) == live_before
    # As docs/compliance.md tells how to confirm a rebuild: the hash after it is the one before.
    hash_after = _weerbaar(world, "replay", "--hash")
    assert hash_after.returncode == 0, hash_after.stderr
    assert hash_after.stdout == hash_before.stdout, "replay --hash does not confirm the rebuild"

    # The live consumer goes on writing into the switched-in tables.
    d = world.registered
    d.neem_contact_op()
    assert d.wait_for_status("contact_opgenomen")["contact_op"] is not None


# --- the services' own read tables (shared.platform.projection) -----------------------------------

AGGREGATE_PROJECTIONS: dict[str, AggregateProjection[Any]] = {
    "scheduling": PLANNING,
    "assessment": RAPPORT,
    "notifications": NOTIFICATIE,
}


def _application(world: World, service: str) -> ServiceApplication:
    env = world.settings.eventsourcing_env(service)
    if service == "scheduling":
        return scheduling_application(env, WorkingDayCalendar())
    return assessment_application(env) if service == "assessment" else notifications(env)


def _log_end(database: str, service: str) -> int:
    with psycopg.connect(database) as conn:
        row = conn.execute(
            SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(events_table(service))
        ).fetchone()
    return int(row[0]) if row else 0


def _assert_same_rows(world: World, service: str, schema: str) -> None:
    """The rebuilt tables hold the live tables' rows, row by row."""
    projection = AGGREGATE_PROJECTIONS[service]
    live = projection_contents(world.database, projection, service)
    rebuilt = projection_contents(world.database, projection, schema)
    for table, rows in live.items():
        assert rebuilt[table] == rows, table


@pytest.mark.parametrize("service", sorted(AGGREGATE_PROJECTIONS))
def test_a_services_read_tables_rebuild_to_exactly_the_live_ones(
    world: World, service: str
) -> None:
    projection = AGGREGATE_PROJECTIONS[service]
    app = _application(world, service)
    try:
        first = ProjectionRebuild(app, projection, target=f"{service}_replay_a", progress=False)
        first.prepare(restart=True)
        # The live tables are written in the events' transaction, so whenever the log stands
        # still they equal a fold of the whole log; look until it stood still around one look.
        for _ in range(30):
            end = _log_end(world.database, service)
            outcome = first.run(switch=False)
            live = projection_contents(world.database, projection, service)
            if _log_end(world.database, service) == end == outcome.mark:
                break
        else:
            pytest.fail(f"{service}'s log kept growing")
        assert outcome.complete and not outcome.switched
        rebuilt = projection_contents(world.database, projection, f"{service}_replay_a")
        assert rebuilt == live
        # Not empty: the two dossiers with a report (and the closed one's appointments).
        assert all(len(rows) >= 2 for rows in live.values()), {t: len(r) for t, r in live.items()}

        # From scratch again: the same read model, to the hash.
        second = ProjectionRebuild(app, projection, target=f"{service}_replay_b", progress=False)
        second.prepare(restart=True)
        again = second.run(switch=False)
        if again.mark == end:
            assert projection_hash(
                world.database, projection, f"{service}_replay_b"
            ) == projection_hash(world.database, projection, f"{service}_replay_a")
        else:  # the log moved on meanwhile: the first rebuild catches up to the same place
            assert first.run(switch=False).mark == again.mark
            _assert_same_rows(world, f"{service}", f"{service}_replay_b")
    finally:
        app.close()


def test_an_interrupted_service_rebuild_keeps_its_chunks_and_resumes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _application(world, "scheduling")
    target = "scheduling_replay_i"
    try:
        rebuild = ProjectionRebuild(app, PLANNING, target=target, progress=False)
        rebuild.prepare(restart=True)
        # One run per target at a time.
        with psycopg.connect(world.database, autocommit=True) as other:
            other.execute(
                "SELECT pg_advisory_lock(%s)", (advisory_key(f"weerbaar-replay:{target}"),)
            )
            with pytest.raises(Busy):
                rebuild.run(switch=False)
        # A budget of one planning: not complete, the position kept, nothing switched.
        first = rebuild.run(switch=True, budget=1)
        assert first.folded == 1 and not first.complete and not first.switched
        # A crash in the second chunk (of one planning each) keeps the first chunk and its
        # position, and nothing of the crashed one.
        monkeypatch.setattr(projection_module, "CHUNK", 1)
        original = ProjectionRebuild._write
        calls = {"n": 0}

        def crashing(self: Any, conn: Any, ids: Any, aggregates: Any) -> None:
            calls["n"] += 1
            if calls["n"] == 2:
                original(self, conn, ids, aggregates)
                raise RuntimeError("crash in the middle of a chunk")
            original(self, conn, ids, aggregates)

        monkeypatch.setattr(ProjectionRebuild, "_write", crashing)
        with pytest.raises(RuntimeError, match="crash"):
            rebuild.run(switch=False)
        monkeypatch.undo()
        with psycopg.connect(world.database) as conn:
            position = conn.execute(
                SQL("SELECT position FROM {}").format(Identifier(target, "replay_state"))
            ).fetchone()
            plannings = conn.execute(
                SQL("SELECT count(*) FROM {}").format(Identifier(target, "contact_deadlines"))
            ).fetchone()
        assert plannings == (2,)  # the first run's one and the first chunk of this one
        assert position is not None and position[0] > first.position
        rest = rebuild.run(switch=False)
        assert rest.complete
        assert rest.folded >= 1  # went on from the position, not from the start
        _assert_same_rows(world, "scheduling", target)
    finally:
        app.close()


@pytest.mark.parametrize("service", sorted(AGGREGATE_PROJECTIONS))
def test_replay_command_rebuilds_a_services_read_tables_and_switches(
    world: World, service: str
) -> None:
    projection = AGGREGATE_PROJECTIONS[service]
    target = f"{service}_replay_c"

    def replay(*args: str) -> subprocess.CompletedProcess[str]:
        return _weerbaar(world, "replay", "--projection", service, *args)

    partial = replay("--target", target, "--restart", "--max-aggregates", "1")
    assert partial.returncode == 0, partial.stdout + partial.stderr
    assert "not complete yet" in partial.stdout
    live_before = projection_hash(world.database, projection, service)
    claimed = None
    if service == "notifications":
        # A sender's claim is working state no event holds: the switch carries it over.
        with psycopg.connect(world.database, autocommit=True) as conn:
            row = conn.execute(
                "UPDATE notifications.deliveries SET geclaimd_tot = now() + interval '1 hour'"
                " WHERE notificatie_id = (SELECT min(notificatie_id::text)::uuid"
                " FROM notifications.deliveries WHERE status = 'verzonden')"
                " RETURNING notificatie_id, geclaimd_tot"
            ).fetchone()
        assert row is not None
        claimed = row
    done = replay("--target", target)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "switched" in done.stdout
    assert "100.0%" in done.stderr  # the progress bar
    assert projection_hash(world.database, projection, service) == live_before
    assert projection_hash(world.database, projection, f"{service}_previous") == live_before
    hashed = replay("--hash")
    assert hashed.stdout.strip() == live_before
    if claimed is not None:
        with psycopg.connect(world.database, autocommit=True) as conn:
            kept = conn.execute(
                "SELECT geclaimd_tot FROM notifications.deliveries WHERE notificatie_id = %s",
                (claimed[0],),
            ).fetchone()
            conn.execute(
                "UPDATE notifications.deliveries SET geclaimd_tot = NULL WHERE notificatie_id = %s",
                (claimed[0],),
            )
        assert kept == (claimed[1],)

    if service == "scheduling":
        # The service goes on writing into the switched-in tables, and reads them.
        d = world.registered
        if d.dossier().get("contact_op") is None:
            d.neem_contact_op()
        d.plan_gesprekken()
        rows = projection_contents(world.database, PLANNING, "scheduling")["afspraken"]
        assert {str(a) for a in d.afspraken.values()} <= {row[0] for row in rows}
        d.call(
            "GET", "scheduling", f"/afspraken/{d.afspraken['gesprek_werkgever']}", "secretariaat"
        )
        app = _application(world, service)
        try:
            fresh = ProjectionRebuild(app, PLANNING, target="scheduling_replay_d", progress=False)
            fresh.prepare(restart=True)
            assert fresh.run(switch=False).complete
        finally:
            app.close()
        _assert_same_rows(world, "scheduling", "scheduling_replay_d")


def test_replay_command_names_the_projections_it_knows(world: World) -> None:
    result = _weerbaar(world, "replay", "--projection", "notulen", timeout=60)
    assert result.returncode == 2
    assert "intake, scheduling, assessment" in result.stderr and "or all" in result.stderr


# --- the dossier registers (shared.platform.register) ---------------------------------------------


@pytest.mark.parametrize("service", REGISTER_SERVICES)
def test_a_services_dossier_register_rebuilds_from_intakes_log(world: World, service: str) -> None:
    target = f"{service}_register_replay_a"
    rebuild = RegisterRebuild(
        world.settings,
        service,
        command=service_command,
        target=target,
        env=world.system.env(),
        progress=False,
    )
    rebuild.prepare(restart=True)
    outcome = rebuild.run(switch=False)
    assert outcome.complete and not outcome.switched and outcome.applied >= 4
    rebuilt = register_contents(world.database, target)
    # The live consumer follows the stream, moments behind intake's log: it must come to the
    # same rows (a row it lacks or has extra never converges, and the wait fails).
    wait_until(
        lambda: register_contents(world.database, service) == rebuilt,
        timeout=60,
        what=f"{service}'s live register to hold what intake's log says",
    )
    registered = {row[0]: row for row in rebuilt["dossier_register"]}
    assert registered[world.closed.aanvraag_id][3] == "true"  # afgesloten
    assert registered[world.registered.aanvraag_id][1] == "GM0344"
    # Twice from scratch: the same register, to the hash.
    again = RegisterRebuild(
        world.settings,
        service,
        command=service_command,
        target=f"{service}_register_replay_b",
        env=world.system.env(),
    )
    again.progress = False
    again.prepare(restart=True)
    assert again.run(switch=False).complete
    assert register_hash(world.database, f"{service}_register_replay_b") == register_hash(
        world.database, target
    )


def test_replay_command_rebuilds_a_register_resumes_and_switches(world: World) -> None:
    def replay(*args: str) -> subprocess.CompletedProcess[str]:
        return _weerbaar(world, "replay", "--projection", "approval-register", *args)

    target = "approval_register_replay_c"
    partial = replay("--target", target, "--restart", "--max-events", "2")
    assert partial.returncode == 0, partial.stdout + partial.stderr
    assert "not complete yet" in partial.stdout
    live_before = register_hash(world.database, "approval")
    done = replay("--target", target)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "switched" in done.stdout and "100.0%" in done.stderr
    assert register_hash(world.database, "approval") == live_before
    assert register_hash(world.database, "approval_register_previous") == live_before
    assert replay("--hash").stdout.strip() == live_before

    # The live consumer goes on in the switched-in tables: a new dossier reaches the register.
    with httpx.Client(timeout=15) as client:
        nieuw = _driver(world.system, client, "GM0014")
        nieuw.registreer()
    wait_until(
        lambda: any(
            row[0] == nieuw.aanvraag_id
            for row in register_contents(world.database, "approval")["dossier_register"]
        ),
        timeout=60,
        what="the new dossier in approval's switched-in register",
    )
