"""Live pages in Chromium: the secretariat has the werkvoorraad and a dossier open; another
secretariat person records contact through the API; both open pages show it within seconds,
without a reload, and say so in the status region. A werkgever of another organisation gets no
stream for that dossier; the werkgever of the dossier's own organisation does.

The portal runs as ``./weerbaar up`` runs it (it reads the stream of the services' NATS); the
browser may reach only loopback; every page visited has no axe-core violation, also after it
was brought up to date.
"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import BrowserPage, no_axe_violations
from tests.support import aanmelding, token, wait_until
from tools.system import System

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

INTAKE, SCHEDULING = "intake", "scheduling"
#: Well within "a few seconds": the push comes within about one.
LIVE_MS = 10_000
#: The dossiers ``aanmelding()`` makes are of this organisation; the demo werkgever's is another.
ORGANISATIE, ANDERE = "GM0363", "GM0344"

#: Opens an EventSource in the page: "open" once it streams, "geweigerd" when it is refused.
VOLG = """url => new Promise(resolve => {
  const bron = new EventSource(url);
  bron.onopen = () => { bron.close(); resolve("open"); };
  bron.onerror = () => { bron.close(); resolve("geweigerd"); };
})"""


def register(system: System) -> str:
    """A new dossier registered at intake's API, once intake and scheduling know it."""
    answer = httpx.post(f"{system.url(INTAKE)}/aanvragen", json=aanmelding(), timeout=10)
    assert answer.status_code == 201, answer.text
    aanvraag_id: str = answer.json()["aanvraag_id"]
    staff = token(system.data_dir, "secretariaat", sub="sec-test")

    def known() -> bool | None:
        planning = httpx.get(
            f"{system.url(SCHEDULING)}/aanvragen/{aanvraag_id}/planning", headers=staff
        )
        listed = httpx.get(f"{system.url(INTAKE)}/aanvragen/{aanvraag_id}", headers=staff)
        return (planning.status_code == 200 and listed.status_code == 200) or None

    wait_until(known, timeout=30, what="the dossier in intake's projection and the planning")
    return aanvraag_id


def live_url(page: Page) -> str | None:
    """What the page follows (its <main>'s data-live), None when nothing."""
    return page.locator("main").get_attribute("data-live")


def test_open_pages_show_another_persons_step_without_a_reload(
    running_system: System, portal_url: str, offline_page: BrowserPage
) -> None:
    aanvraag_id = register(running_system)
    lijst = offline_page.page
    lijst.goto(f"{portal_url}/inloggen")
    lijst.get_by_role("button", name="Inloggen als Secretariaat CCV").click()
    # The page's stream is open once the portal has answered it (after asking intake).
    with lijst.expect_response(lambda r: "/live?" in r.url) as lijst_live:
        lijst.get_by_role("link", name="Werkvoorraad").click()
    assert lijst_live.value.status == 200
    expect(lijst.locator("h1")).to_have_text("Werkvoorraad")
    rij = lijst.locator("tr", has=lijst.get_by_role("link", name=aanvraag_id))
    expect(rij).to_contain_text("Ingediend: wacht op contact")
    assert live_url(lijst) == "/live?lijst=werkvoorraad"
    no_axe_violations(offline_page, "live-werkvoorraad")

    # The same person's second tab: the dossier.
    dossier = BrowserPage(lijst.context.new_page())
    with dossier.page.expect_response(lambda r: "/live?" in r.url) as dossier_live:
        dossier.page.goto(f"{portal_url}/secretariaat/dossiers/{aanvraag_id}")
    assert dossier_live.value.status == 200
    expect(dossier.page.get_by_text("Leg eerst het contact vast")).to_be_visible()
    assert live_url(dossier.page) == f"/live?dossier={aanvraag_id}"
    no_axe_violations(dossier, "live-dossier")

    for open_page in (lijst, dossier.page):
        open_page.evaluate("window.nietHerladen = true")

    # Another secretariat person records contact, through the API.
    collega = token(running_system.data_dir, "secretariaat", sub="sec-collega")
    contact = httpx.post(
        f"{running_system.url(SCHEDULING)}/aanvragen/{aanvraag_id}/contact",
        headers=collega,
        timeout=10,
    )
    assert contact.status_code < 300, contact.text

    expect(dossier.page.locator("#termijn")).to_contain_text(
        "Contact opgenomen op", timeout=LIVE_MS
    )
    expect(dossier.page.get_by_text("Leg eerst het contact vast")).to_have_count(0)
    expect(rij).to_contain_text("Contact opgenomen", timeout=LIVE_MS)
    expect(rij).not_to_contain_text("wacht op contact")
    for open_page in (lijst, dossier.page):
        # Brought up to date in place (no reload), and said so politely.
        assert open_page.evaluate("window.nietHerladen") is True
        expect(open_page.locator("#live-melding")).to_have_text("De pagina is bijgewerkt.")
    no_axe_violations(offline_page, "live-werkvoorraad-bijgewerkt")
    no_axe_violations(dossier, "live-dossier-bijgewerkt")

    assert offline_page.outside == [] and dossier.outside == []
    assert offline_page.errors == [] and dossier.errors == []


def test_a_werkgever_of_another_organisation_gets_no_stream_for_the_dossier(
    running_system: System, portal_url: str, offline_page: BrowserPage
) -> None:
    aanvraag_id = register(running_system)
    page = offline_page.page
    volg = f"{portal_url}/live?dossier={aanvraag_id}"

    page.goto(f"{portal_url}/inloggen")
    page.locator("form", has_text=f"organisatie {ANDERE}").get_by_role("button").click()
    expect(page.locator("h1")).to_have_text("Start: Werkgever")
    page.goto(f"{portal_url}/werkgever/dossiers/{aanvraag_id}")
    expect(page.locator("h1")).not_to_contain_text(aanvraag_id)
    # The refusal page follows nothing, and a stream asked for by hand is refused.
    assert live_url(page) is None
    no_axe_violations(offline_page, "live-werkgever-geweigerd")
    assert page.evaluate(VOLG, volg) == "geweigerd"
    refused = page.request.get(volg)
    assert refused.status == 404
    assert "text/event-stream" not in refused.headers["content-type"]
    assert aanvraag_id not in refused.text()

    # The werkgever of the dossier's own organisation may follow it.
    page.get_by_role("button", name="Uitloggen").click()
    page.goto(f"{portal_url}/inloggen")
    page.locator("form", has_text=f"organisatie {ORGANISATIE}").get_by_role("button").click()
    expect(page.locator("h1")).to_have_text("Start: Werkgever")
    page.goto(f"{portal_url}/werkgever/dossiers/{aanvraag_id}")
    expect(page.locator("h1")).to_contain_text(aanvraag_id)
    assert live_url(page) == f"/live?dossier={aanvraag_id}"
    no_axe_violations(offline_page, "live-werkgever-dossier")
    assert page.evaluate(VOLG, volg) == "open"
    assert offline_page.outside == []
