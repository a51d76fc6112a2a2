"""Journey 7 in Chromium: compliance finds a dossier, reads its audit trail as a timeline with a
werkgever's refused read in it, opens the dossier as it was recorded at an earlier moment,
downloads the audit export as JSON, CSV and HTML, places a legal hold and sees it on the
dossier (and lifts it), sees whether the services' hash chains verified, and pages through a
trail grown longer than a page (a hundred more reads of the report).

The other roles' steps before the journey (registration, contact, the conversations, the
report, its approval, the werkgever's refused read and the bestuurder's read) are driven
through the APIs by ``tools.demo.DossierDriver``; every step of compliance's own is taken in the
browser. The portal runs as ``./weerbaar up`` runs it, in front of the five services; the
browser may reach only loopback; every page visited must have no axe-core violation at all, and
its screenshot is saved (``test-artifacts/screenshots/portal``, not committed).
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urljoin
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page, expect

from shared.platform.auth import load_or_create_secret
from shared.platform.settings import SERVICES
from tests.browser.conftest import BrowserPage, no_axe_violations
from tests.support import wait_until
from tools.demo import Actors, DossierDriver
from tools.system import System

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

AMS = ZoneInfo("Europe/Amsterdam")


def drive(system: System) -> tuple[str, datetime, str, Actors]:
    """A dossier taken through the other roles' steps to an approved report, with a
    werkgever's read refused before the consent and the bestuurder's read; and a moment
    after its contact was recorded and before anything later was (with the report's id and
    the people's tokens)."""
    actors = Actors(
        secret=load_or_create_secret(system.data_dir / "secrets" / "jwt.key"),
        bestuurder_email=f"bestuurder.{secrets.token_hex(4)}@example.org",
        organisatie="GM0363",
    )
    with httpx.Client(timeout=15) as client:
        d = DossierDriver({s: system.url(s) for s in SERVICES}, actors, client)
        d.registreer()
        d.neem_contact_op()
        contact_op = datetime.fromisoformat(d.wait_for_status("contact_opgenomen")["contact_op"])
        # The moment asked for later: the second after the contact, once it has passed, so
        # every later step is recorded after it.
        moment = contact_op.replace(microsecond=0) + timedelta(seconds=1)
        wait_until(lambda: datetime.now(UTC) > moment or None, timeout=5, what="the moment")
        d.plan_gesprekken()
        d.voer_gesprekken()
        d.schrijf_rapport()
        d.beoordeel(d.dien_in(), goedkeuren=True)
        d.wait_for_status("goedgekeurd")
        assert d.probeer_te_lezen("werkgever").status_code == 403
        d.lees_rapport("bestuurder")
        compliance = actors.headers("compliance")

        def trail_complete() -> bool | None:
            trail = client.get(
                f"{system.url('intake')}/aanvragen/{d.aanvraag_id}/audit", headers=compliance
            ).json()
            names = {e["type"].split(".")[-2] for e in trail}
            return {"ToegangGeweigerd", "RapportIngezien"} <= names or None

        wait_until(trail_complete, timeout=60, what="the refusal and the read in the trail")
    return d.aanvraag_id, moment, d.rapport_id, actors


def read_often(
    system: System, actors: Actors, aanvraag_id: str, rapport_id: str, times: int
) -> int:
    """The bestuurder reads the report ``times`` times more (signed in anew, so the limit of
    reads per person has room); how many reads the trail holds once intake has them all."""
    bestuurder = actors.headers("bestuurder", sub=f"bst-{secrets.token_hex(4)}")
    compliance = actors.headers("compliance")
    telling_url = f"{system.url('intake')}/aanvragen/{aanvraag_id}/audit/telling"
    with httpx.Client(timeout=15) as client:

        def reads() -> int:
            telling = client.get(telling_url, headers=compliance).json()
            return int(telling["per_gebeurtenis"].get("RapportIngezien", 0))

        expected = reads() + times
        for _ in range(times):
            read = client.get(
                f"{system.url('assessment')}/rapporten/{rapport_id}", headers=bestuurder
            )
            assert read.status_code == 200
        wait_until(lambda: reads() == expected or None, timeout=60, what="every read in the trail")
    return expected


def download(page: Page, label: str) -> tuple[str, str, bytes]:
    """Click a download link: the portal's content type, the file's name, its content.

    Chromium's download fires no response event and passes no page route, so the content
    type is asked of the same link with the browser context's own session (its cookies).
    """
    link = page.get_by_role("link", name=label)
    with page.expect_download() as got:
        link.click()
    saved = got.value
    path = saved.path()
    assert path is not None
    href = link.get_attribute("href")
    assert href is not None
    answer = page.request.get(urljoin(page.url, href))
    assert answer.ok  # (a new export: its time of making differs from the download's)
    return answer.headers["content-type"], saved.suggested_filename, Path(path).read_bytes()


def test_compliance_reads_the_trail_a_past_moment_the_exports_and_places_a_legal_hold(
    running_system: System, portal_url: str, offline_page: BrowserPage
) -> None:
    aanvraag_id, moment, rapport_id, actors = drive(running_system)
    page = offline_page.page

    page.goto(f"{portal_url}/inloggen")
    page.get_by_role("button", name="Inloggen als Compliance").click()
    page.get_by_role("link", name="Dossiers en audittrail").click()
    expect(page.locator("h1")).to_have_text("Dossiers")
    expect(page.get_by_role("link", name=aanvraag_id)).to_be_visible()
    no_axe_violations(offline_page, "compliance-dossiers")

    page.get_by_label("Dossiernummer").fill(aanvraag_id)
    page.get_by_label("Dossiernummer").press("Enter")
    expect(page.locator("h1")).to_contain_text(aanvraag_id)
    assert page.url.endswith(f"/compliance/dossiers/{aanvraag_id}")
    expect(page.locator("#status")).to_have_text("Rapport goedgekeurd")

    # The timeline: who did and saw what, with the werkgever's refused read among them.
    trail = page.locator(".portaal-audittrail")
    refusal = trail.locator("li.portaal-geweigerd")
    expect(refusal).to_have_count(1)
    expect(refusal).to_contain_text("Toegang geweigerd")
    expect(refusal).to_contain_text("door werkgever")
    expect(refusal).to_contain_text("geweigerd door: assessment")
    expect(refusal).to_contain_text("antwoord: 403")
    expect(trail.locator("li", has_text="Rapport gelezen")).to_contain_text("door bestuurder")
    expect(trail).to_contain_text("Rapport goedgekeurd")
    no_axe_violations(offline_page, "compliance-dossier")

    # The dossier as it was recorded at a moment after the contact, before the rest.
    page.get_by_label("Moment (Nederlandse tijd)").fill(
        moment.astimezone(AMS).strftime("%Y-%m-%dT%H:%M:%S")
    )
    page.get_by_role("button", name="Toon het dossier op dit moment").click()
    expect(page.locator("#status-per")).to_have_text("Contact opgenomen")
    expect(page.locator(".portaal-tijdlijn")).to_contain_text("Contact opgenomen")
    expect(page.locator(".portaal-tijdlijn")).not_to_contain_text("Rapport opgesteld")
    assert "/per?moment=" in page.url
    no_axe_violations(offline_page, "compliance-per")
    page.get_by_role("link", name="Terug naar de audittrail").click()

    # Each export downloads in its own type, named by the dossier's id, and is this dossier's.
    media, naam, inhoud = download(page, "Auditexport als JSON downloaden")
    assert media.startswith("application/json") and naam == f"auditverslag-{aanvraag_id}.json"
    verslag: dict[str, Any] = json.loads(inhoud)
    assert verslag["reikwijdte"] == {"aanvraag_id": aanvraag_id}
    assert [w["rol"] for w in verslag["weigeringen"]] == ["werkgever"]
    assert {r["aanvraag_id"] for r in verslag["gebeurtenissen"]} == {aanvraag_id}

    media, naam, inhoud = download(page, "Auditexport als CSV downloaden")
    assert media.startswith("text/csv") and naam == f"auditverslag-{aanvraag_id}.csv"
    rijen = list(csv.DictReader(io.StringIO(inhoud.decode())))
    assert {r["aanvraag_id"] for r in rijen} == {aanvraag_id}
    assert "ToegangGeweigerd" in {r["gebeurtenis"] for r in rijen}

    media, naam, inhoud = download(page, "Auditexport als HTML downloaden")
    assert media.startswith("text/html") and naam == f"auditverslag-{aanvraag_id}.html"
    assert f"aanvraag_id {aanvraag_id}" in inhoud.decode()
    assert "Geweigerde toegang" in inhoud.decode()

    # The legal hold, placed with a reason and shown on the dossier once intake has it.
    page.get_by_label("Reden van de bewaarplicht").select_option("rechtszaak")
    page.get_by_role("button", name="Bewaarplicht opleggen").click()
    expect(page.locator("#melding")).to_contain_text("De bewaarplicht is opgelegd")

    def hold_shown() -> bool | None:
        page.reload()
        return "Rechtszaak" in page.locator("#bewaarplicht").inner_text() or None

    wait_until(hold_shown, timeout=30, what="the legal hold on the dossier")
    expect(page.locator("#bewaarplicht")).to_have_text("Ja, reden: Rechtszaak")
    expect(page.get_by_role("button", name="Bewaarplicht opheffen")).to_be_visible()
    expect(trail).to_contain_text("Bewaarplicht opgelegd")
    no_axe_violations(offline_page, "compliance-bewaarplicht")

    # Lifted again: the retention periods apply once more, and the trail keeps both steps.
    page.get_by_role("button", name="Bewaarplicht opheffen").click()
    expect(page.locator("#melding")).to_contain_text("De bewaarplicht is opgeheven")

    def hold_lifted() -> bool | None:
        page.reload()
        return page.locator("#bewaarplicht").inner_text() == "Geen" or None

    wait_until(hold_lifted, timeout=30, what="the legal hold lifted on the dossier")
    expect(trail).to_contain_text("Bewaarplicht opgeheven")
    expect(page.get_by_role("button", name="Bewaarplicht opleggen")).to_be_visible()

    # Whether the services' hash chains verified, per service.
    page.get_by_role("link", name=re.compile("Controleer of de vastgelegde geschiedenis")).click()
    expect(page.locator("h1")).to_have_text("Controle van de hash-ketens")
    expect(page.locator("#uitkomst")).to_contain_text("In orde:")
    for dienst in SERVICES:
        expect(page.get_by_role("row", name=re.compile(dienst))).to_be_visible()
    no_axe_violations(offline_page, "compliance-verificatie")
    expect(page.locator("#gestart-op")).to_contain_text(" om ")
    # A new verification on request (tests/e2e/test_compliance.py shows it is a new one).
    page.get_by_role("button", name="Nu opnieuw controleren").click()
    expect(page).to_have_url(re.compile(r"/compliance/verificatie\?opnieuw=true$"))
    expect(page.locator("#uitkomst")).to_contain_text("In orde:")

    assert offline_page.outside == [], "the page tried to leave loopback"
    assert offline_page.errors == []

    # A trail longer than a page (a hundred more reads): it is shown a hundred steps a page,
    # with the reads of the whole trail counted on each.
    gelezen = read_often(running_system, actors, aanvraag_id, rapport_id, 100)
    page.goto(f"{portal_url}/compliance/dossiers/{aanvraag_id}")
    expect(trail.locator("li")).to_have_count(100)
    expect(page.locator("#inzages")).to_have_text(str(gelezen))
    paging = page.get_by_role("navigation", name="Pagina's van het audittrail")
    expect(paging.get_by_role("link", name="Eerste pagina")).to_have_count(0)
    paging.get_by_role("link", name="Volgende pagina").click()
    expect(page).to_have_url(re.compile(r"/compliance/dossiers/[0-9a-f-]+\?na=[A-Za-z0-9_-]+#"))
    expect(trail.locator("li").first).to_contain_text("Rapport gelezen")
    expect(trail).not_to_contain_text("Aanvraag ingediend")
    expect(page.locator("#inzages")).to_have_text(str(gelezen))
    no_axe_violations(offline_page, "compliance-dossier-pagina-2")
    paging.get_by_role("link", name="Eerste pagina").click()
    expect(trail).to_contain_text("Aanvraag ingediend")
