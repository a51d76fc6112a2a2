"""Journey 4 in Chromium: the BVA reviewer finds a submitted report in the review queue, reads
version 1 with its content hash and four domains, rejects it (first without reasons: the field
says why), and after the adviseur's revision approves version 2; the demo adviseur signed in as
a BVA reviewer finds the decision disabled with the four-eyes reason, and a decision posted
anyway is refused by approval with nothing recorded.

The steps of the other roles (registration, contact, conversations, the report written and
submitted, the revision) are driven through the APIs as ``weerbaar demo`` drives them; every
step of the BVA is taken in the browser, and every page visited must have no axe-core
violation (screenshots in ``test-artifacts/screenshots/portal``, not committed).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from shared.platform.auth import load_or_create_secret
from tests.browser.conftest import BrowserPage, no_axe_violations
from tests.support import wait_until
from tools.demo import Actors, DossierDriver, rapport_inhoud
from tools.system import System

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

SERVICES = ("intake", "scheduling", "assessment", "approval", "notifications")
ORGANISATIE = "GM0344"
REDENEN = (
    "De maatregelen voor het domein informatie ontbreken.",
    "Onderbouw de prioriteit van het hang- en sluitwerk.",
)


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as opened:
        yield opened


def driver(system: System, client: httpx.Client) -> DossierDriver:
    """The other roles' steps over the APIs (the report written by the demo adviseur)."""
    actors = Actors(
        secret=load_or_create_secret(system.data_dir / "secrets" / "jwt.key"),
        bestuurder_email=f"bestuurder.{secrets.token_hex(4)}@example.org",
        organisatie=ORGANISATIE,
    )
    return DossierDriver({s: system.url(s) for s in SERVICES}, actors, client)


def ter_toetsing(d: DossierDriver) -> dict[str, Any]:
    """Submit the current version and wait until intake lists it and approval awaits it."""
    ingediend = d.dien_in()
    versie = ingediend["versie"]

    def in_queue() -> bool | None:
        dossier = d.dossier()
        versies = (dossier.get("rapport") or {}).get("versies", [])
        listed = dossier["status"] == "ter_toetsing" and any(
            v["versie"] == versie and v.get("ter_toetsing_op") for v in versies
        )
        # Approval knows the report only once it read the submission from the stream (404).
        answer = d.call(
            "GET", "approval", f"/rapporten/{d.rapport_id}/status", "bva", expect=(200, 404)
        )
        status = answer.json() if answer.status_code == 200 else {}
        awaited = status.get("status") == "ter_toetsing" and status.get("laatste_versie") == versie
        return (listed and awaited) or None

    wait_until(in_queue, timeout=60, what=f"version {versie} in the review queue")
    return ingediend


def tot_ter_toetsing(d: DossierDriver) -> dict[str, Any]:
    """A new dossier whose report (version 1) awaits review."""
    d.registreer()
    d.neem_contact_op()
    d.plan_gesprekken()
    d.voer_gesprekken()
    d.schrijf_rapport()
    return ter_toetsing(d)


def beoordelingen(d: DossierDriver) -> dict[str, Any]:
    body: dict[str, Any] = d.call(
        "GET", "approval", f"/rapporten/{d.rapport_id}/beoordelingen", "compliance"
    ).json()
    return body


def sign_in(page: Page, portal_url: str, persoon: str) -> None:
    page.goto(f"{portal_url}/inloggen")
    page.locator(f"form:has(input[name=persoon][value={persoon}])").get_by_role("button").click()
    expect(page.locator("h1")).to_have_text("Start: Beveiligingsautoriteit (BVA)")


def open_from_queue(page: Page, aanvraag_id: str, versie: int) -> None:
    """From the start page to the queue, and the dossier's report from there."""
    page.get_by_role("link", name="Rapporten ter toetsing").click()
    expect(page.locator("h1")).to_have_text("Rapporten ter toetsing")
    row = page.locator("tr", has=page.get_by_text(aanvraag_id, exact=True))
    expect(row).to_contain_text(f"Rapport versie {versie} toetsen")
    row.get_by_role("link").click()
    expect(page.locator("h1")).to_have_text(f"Rapport versie {versie}")


def test_the_bva_rejects_version_1_with_reasons_and_approves_version_2(
    running_system: System, portal_url: str, offline_page: BrowserPage, client: httpx.Client
) -> None:
    d = driver(running_system, client)
    versie_1 = tot_ter_toetsing(d)
    page = offline_page.page

    sign_in(page, portal_url, "bva-demo")
    no_axe_violations(offline_page, "bva-start")
    page.get_by_role("link", name="Rapporten ter toetsing").click()
    no_axe_violations(offline_page, "bva-toetsing")
    page.goto(f"{portal_url}/start")
    open_from_queue(page, d.aanvraag_id, 1)

    # The version read, its hash, the four domains and their measures.
    expect(page.locator("#inhoud-hash")).to_have_text(versie_1["inhoud_hash"])
    for domein in ("Werk", "Wonen", "Informatie (digitaal)", "Verplaatsen"):
        expect(page.get_by_role("heading", name=domein, exact=True)).to_be_visible()
    expect(page.get_by_text(rapport_inhoud(1)["bevindingen"]["wonen"])).to_be_visible()
    expect(page.get_by_role("cell", name="Inbraakwerend hang- en sluitwerk")).to_be_visible()
    expect(page.locator("#besluit")).to_have_text("Wacht op een besluit")
    no_axe_violations(offline_page, "bva-rapport-versie-1")

    # Rejecting without reasons: the field says why, and nothing is decided.
    page.get_by_role("button", name="Versie 1 afkeuren").click()
    expect(page.locator("#foutoverzicht")).to_contain_text("Vul ten minste één reden in")
    # The summary takes focus, so the keyboard starts at what went wrong.
    expect(page.locator("#foutoverzicht")).to_be_focused()
    expect(page.get_by_label("Redenen van afkeuring")).to_have_attribute("aria-invalid", "true")
    assert page.title().startswith("Fout: ")
    no_axe_violations(offline_page, "bva-afkeuren-zonder-redenen")
    expect(page.locator("#foutoverzicht a")).to_have_attribute("href", "#redenen")
    assert beoordelingen(d)["versies"][0]["besluit"] is None

    page.get_by_label("Redenen van afkeuring").fill("\n".join(REDENEN))
    page.get_by_role("button", name="Versie 1 afkeuren").click()
    expect(page.locator("#melding")).to_contain_text("Het rapport is afgekeurd.")
    no_axe_violations(offline_page, "bva-afgekeurd")
    eerste = beoordelingen(d)["versies"][0]
    assert (eerste["besluit"], eerste["inhoud_hash"]) == ("afgekeurd", versie_1["inhoud_hash"])
    assert tuple(eerste["redenen"]) == REDENEN

    # The adviseur revises (over the API) and submits version 2.
    d.herzie()
    versie_2 = ter_toetsing(d)
    assert versie_2["versie"] == 2
    page.goto(f"{portal_url}/start")
    open_from_queue(page, d.aanvraag_id, 2)
    expect(page.locator("#inhoud-hash")).to_have_text(versie_2["inhoud_hash"])
    expect(page.get_by_role("cell", name="Verwijder het huisadres")).to_be_visible()
    eerder = page.locator("section", has=page.get_by_role("heading", name="Eerdere besluiten"))
    for reden in REDENEN:
        expect(eerder).to_contain_text(reden)
    no_axe_violations(offline_page, "bva-rapport-versie-2")

    page.get_by_role("button", name="Versie 2 goedkeuren").click()
    expect(page.locator("#melding")).to_contain_text("Het rapport is goedgekeurd.")
    status = d.call("GET", "approval", f"/rapporten/{d.rapport_id}/status", "bva").json()
    assert (status["status"], status["goedgekeurde_versie"]) == ("goedgekeurd", 2)
    assert beoordelingen(d)["versies"][1]["inhoud_hash"] == versie_2["inhoud_hash"]

    # Once intake has heard of the approval the dossier leaves the queue.
    d.wait_for_status("goedgekeurd")
    page.reload()
    expect(page.get_by_text(d.aanvraag_id, exact=True)).to_have_count(0)


def test_the_author_as_bva_cannot_decide_and_a_forged_decision_is_refused(
    running_system: System, portal_url: str, offline_page: BrowserPage, client: httpx.Client
) -> None:
    d = driver(running_system, client)
    ingediend = tot_ter_toetsing(d)
    page = offline_page.page

    # The demo adviseur, who wrote the report, signed in as a BVA reviewer.
    sign_in(page, portal_url, "adv-bva-demo")
    open_from_queue(page, d.aanvraag_id, 1)
    rapport_url = page.url
    expect(page.locator("#inhoud-hash")).to_have_text(ingediend["inhoud_hash"])
    expect(page.locator("#vier-ogen")).to_contain_text("vier-ogenprincipe")
    expect(page.get_by_role("button", name="Versie 1 goedkeuren")).to_be_disabled()
    expect(page.get_by_role("button", name="Versie 1 afkeuren")).to_be_disabled()
    expect(page.get_by_label("Redenen van afkeuring")).to_be_disabled()
    no_axe_violations(offline_page, "bva-vier-ogen")

    # Enabled by hand and posted anyway: approval refuses, and the page shows only that.
    page.evaluate("() => document.querySelectorAll('[disabled]').forEach(e => e.disabled = false)")
    page.get_by_role("button", name="Versie 1 goedkeuren").click()
    expect(page.locator("h1")).to_have_text("Besluit geweigerd")
    expect(page.locator("main")).to_contain_text("er is niets vastgelegd")
    expect(page.get_by_text(ingediend["inhoud_hash"])).to_have_count(0)
    no_axe_violations(offline_page, "bva-besluit-geweigerd")

    page.goto(rapport_url)
    page.evaluate("() => document.querySelectorAll('[disabled]').forEach(e => e.disabled = false)")
    page.get_by_label("Redenen van afkeuring").fill("Zelf afgekeurd.")
    page.get_by_role("button", name="Versie 1 afkeuren").click()
    expect(page.locator("h1")).to_have_text("Besluit geweigerd")

    versies = beoordelingen(d)["versies"]
    assert [v["besluit"] for v in versies] == [None]
    status = d.call("GET", "approval", f"/rapporten/{d.rapport_id}/status", "bva").json()
    assert status["status"] == "ter_toetsing"
    # Another reviewer still sees the decision enabled.
    page.get_by_role("button", name="Uitloggen").click()
    sign_in(page, portal_url, "bva-demo")
    open_from_queue(page, d.aanvraag_id, 1)
    expect(page.get_by_role("button", name="Versie 1 goedkeuren")).to_be_enabled()
    expect(page.locator("#vier-ogen")).to_have_count(0)
