"""Journey 5 in Chromium: the bestuurder opens their dossier from the list of my dossiers (a
wrong number typed in the look-up is an error at its field) and reads where it stands, reads
the approved report (the read is on record), refuses and then gives consent with what the
werkgever will see, marks their own measure done, records the PKVW certificate (the API's
refusal of a certificate without a date shown at the field) and asks for a toelichting;
consent is given with the keyboard only, from the sign-in through the list; and another
bestuurder, signed in through the portal, sees nothing of the dossier: not in their list, not
by its number, not at its URL.

The steps of the other roles, up to the approved report, are driven through the APIs
(``tools.demo.DossierDriver``) for the demo bestuurder's e-mail address; every step of the
bestuurder is taken in the browser. Every page visited must have no axe-core violation.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from services.portal.adapters import DEMO_PERSONEN
from shared.platform.auth import load_or_create_secret
from shared.platform.settings import SERVICES
from tests.browser.conftest import BrowserPage, no_axe_violations
from tests.support import token, wait_until
from tools.demo import Actors, DossierDriver
from tools.system import System

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

BESTUURDER = "bst-demo"
ANDERE_BESTUURDER = "bst2-demo"
#: What the report (its first version, as the driver writes it) says at home.
BEVINDING_WONEN = "De achterdeur heeft geen inbraakwerend slot."
EIGEN_MAATREGEL = "Wissel routes en vertrektijden af."


def _email(sleutel: str) -> str:
    return next(claims["email"] for persoon, claims in DEMO_PERSONEN if persoon.sleutel == sleutel)


def approved_dossier(system: System) -> DossierDriver:
    """A dossier of the demo bestuurder with an approved report that has reached the
    bestuurder in every service the journey asks (intake, scheduling)."""
    client = httpx.Client(timeout=30)
    actors = Actors(
        secret=load_or_create_secret(system.data_dir / "secrets" / "jwt.key"),
        bestuurder_email=_email(BESTUURDER),
        organisatie="GM0344",
    )
    driver = DossierDriver({s: system.url(s) for s in SERVICES}, actors, client)
    driver.registreer()
    driver.neem_contact_op()
    driver.plan_gesprekken()
    driver.voer_gesprekken()
    driver.schrijf_rapport()
    driver.beoordeel(driver.dien_in(), goedkeuren=True)
    driver.wait_for_status("goedgekeurd")
    staff = token(system.data_dir, "secretariaat", sub="sec-test")

    def received() -> bool | None:
        planning = httpx.get(
            f"{system.url('scheduling')}/aanvragen/{driver.aanvraag_id}/planning", headers=staff
        ).json()
        return "bestuurder" in planning.get("rapport_ontvangen", []) or None

    wait_until(received, timeout=60, what="scheduling to know the bestuurder has the report")
    return driver


@pytest.fixture(scope="module")
def dossier(running_system: System) -> Iterator[DossierDriver]:
    """One approved dossier for the whole journey (and for the other bestuurder to try)."""
    driver = approved_dossier(running_system)
    yield driver
    driver.client.close()


def sign_in(page: Page, portal_url: str, sleutel: str) -> None:
    page.goto(f"{portal_url}/inloggen")
    page.locator(f"form:has(input[name=persoon][value={sleutel}]) button").click()
    expect(page.locator("h1")).to_have_text("Start: Bestuurder")


def mijn_dossier(page: Page, aanvraag_id: str) -> Locator:
    """The link to the dossier in my list: "Open mijn dossier" when it is my only one, else
    the row's number."""
    return page.locator(f"#mijn-dossiers a[href='/bestuurder/dossiers/{aanvraag_id}']")


def melding(page: Page, tekst: str) -> None:
    expect(page.locator("#melding")).to_contain_text(tekst)


def _dossier_api(system: System, aanvraag_id: str) -> dict[str, Any]:
    staff = token(system.data_dir, "secretariaat", sub="sec-test")
    body: dict[str, Any] = httpx.get(
        f"{system.url('intake')}/aanvragen/{aanvraag_id}", headers=staff
    ).json()
    return body


def _approval_status(system: System, rapport_id: str) -> dict[str, Any]:
    bva = token(system.data_dir, "bva", sub="bva-test")
    body: dict[str, Any] = httpx.get(
        f"{system.url('approval')}/rapporten/{rapport_id}/status", headers=bva
    ).json()
    return body


def test_the_bestuurder_reads_the_report_decides_on_consent_and_records_pkvw_and_measures(
    running_system: System,
    portal_url: str,
    dossier: DossierDriver,
    offline_page: BrowserPage,
) -> None:
    page = offline_page.page
    aanvraag_id = dossier.aanvraag_id
    sign_in(page, portal_url, BESTUURDER)
    no_axe_violations(offline_page, "bestuurder-start")

    page.get_by_role("link", name="Mijn dossiers").click()
    expect(page.locator("h1")).to_have_text("Mijn dossiers")
    # The dossier is in my list, where it stands in words.
    expect(mijn_dossier(page, aanvraag_id)).to_be_visible()
    expect(page.locator("#mijn-dossiers")).to_contain_text(
        "Het rapport is goedgekeurd en staat voor u klaar."
    )
    no_axe_violations(offline_page, "bestuurder-dossiers")
    # The look-up by number stays; a wrong number is an error at its field.
    page.get_by_label("Dossiernummer").fill("geen nummer")
    page.get_by_role("button", name="Dossier openen").click()
    expect(page.locator("#nummer-fout")).to_contain_text("Dat is geen dossiernummer.")
    expect(page.locator("#foutoverzicht")).to_be_focused()
    expect(page.locator("#nummer")).to_have_attribute("aria-invalid", "true")
    expect(page).to_have_title("Fout: Mijn dossiers – Weerbaar bestuur")
    no_axe_violations(offline_page, "bestuurder-dossiers-fout")
    mijn_dossier(page, aanvraag_id).click()

    # Where it stands and what comes next, in plain Dutch; the URL carries only the id.
    assert page.url.endswith(f"/bestuurder/dossiers/{aanvraag_id}")
    expect(page.locator("#waar")).to_have_text(
        "Het rapport is goedgekeurd en staat voor u klaar. Uw werkgever heeft het niet."
    )
    expect(page.locator("#wat-nu")).to_have_text(
        "Lees het rapport en beslis of uw werkgever het mag ontvangen."
    )
    expect(page.get_by_text("Gesprek met de bestuurder:")).to_contain_text("(gevoerd)")
    expect(page).to_have_title("Mijn dossier – Weerbaar bestuur")
    no_axe_violations(offline_page, "bestuurder-dossier")

    # Reading the report goes through assessment, which records the read (once per read).
    page.get_by_role("link", name="Rapport lezen").click()
    expect(page.locator("h1")).to_have_text("Adviesrapport")
    expect(page.get_by_text(BEVINDING_WONEN)).to_be_visible()
    no_axe_violations(offline_page, "bestuurder-rapport")
    wait_until(
        lambda: (
            (_dossier_api(running_system, aanvraag_id)["rapport"]["keer_ingezien"] == 1) or None
        ),
        timeout=30,
        what="the bestuurder's read in the dossier",
    )

    # A link to the report on another site reads nothing: the portal asks first, and the
    # report is read (once more) only when the bestuurder opens it from there.
    rapport_url = page.url
    page.route(
        "http://elders.test/",
        lambda route: route.fulfill(
            content_type="text/html",
            body=f'<!DOCTYPE html><html lang="nl"><title>Elders</title>'
            f'<a href="{rapport_url}">Het rapport</a></html>',
        ),
    )
    page.goto("http://elders.test/")
    page.get_by_role("link", name="Het rapport").click()
    expect(page.locator("h1")).to_have_text("Rapport openen")
    assert page.url == rapport_url
    expect(page.get_by_text(BEVINDING_WONEN)).to_have_count(0)
    no_axe_violations(offline_page, "bestuurder-rapport-van-elders")
    page.get_by_role("link", name="Rapport openen").click()
    expect(page.locator("h1")).to_have_text("Adviesrapport")
    expect(page.get_by_text(BEVINDING_WONEN)).to_be_visible()
    wait_until(
        lambda: (
            (_dossier_api(running_system, aanvraag_id)["rapport"]["keer_ingezien"] == 2) or None
        ),
        timeout=30,
        what="the bestuurder's second read, from the portal itself",
    )
    page.unroute("http://elders.test/")

    # Consent: what the werkgever will see; no choice is an error at the field; refuse, then
    # consent after all.
    page.get_by_role("link", name="Delen met uw werkgever: instemmen of weigeren").first.click()
    expect(page.locator("h1")).to_have_text("Delen met uw werkgever")
    expect(page.get_by_role("heading", name="Als u instemt, ziet uw werkgever")).to_be_visible()
    expect(page.get_by_text("het hele goedgekeurde rapport (versie 1)")).to_be_visible()
    no_axe_violations(offline_page, "bestuurder-instemming")
    page.get_by_role("button", name="Besluit vastleggen").click()
    expect(page.locator("#foutoverzicht")).to_contain_text(
        "Kies of uw werkgever het rapport mag ontvangen."
    )
    expect(page.locator("#foutoverzicht")).to_be_focused()
    expect(page).to_have_title("Fout: Delen met uw werkgever – Weerbaar bestuur")
    no_axe_violations(offline_page, "bestuurder-instemming-fout")
    page.get_by_label("Nee, ik weiger").check()
    page.get_by_role("button", name="Besluit vastleggen").click()
    melding(page, "U hebt geweigerd het rapport te delen.")
    expect(page.locator("#besluit")).to_contain_text("U kunt hieronder alsnog instemmen.")
    assert _approval_status(running_system, dossier.rapport_id)["instemming"] == "geweigerd"
    no_axe_violations(offline_page, "bestuurder-instemming-geweigerd")
    page.get_by_label("Ja, ik stem in").check()
    page.get_by_role("button", name="Besluit vastleggen").click()
    melding(page, "U hebt ingestemd. Uw werkgever ontvangt het rapport.")
    expect(page.locator("input[name=instemming]")).to_have_count(0)
    stand = _approval_status(running_system, dossier.rapport_id)
    assert (stand["instemming"], stand["vrijgegeven_versie"]) == ("gegeven", 1)
    no_axe_violations(offline_page, "bestuurder-instemming-gegeven")

    # My measures: the own one marked done; the werkgever's has no button here.
    page.get_by_role("link", name="Terug naar mijn dossier").click()
    expect(page.locator("#waar")).to_contain_text("U hebt ingestemd")
    page.get_by_role("link", name="Mijn maatregelen").click()
    expect(page.locator("h1")).to_have_text("Mijn maatregelen")
    eigen = page.locator("section:has(#eigen-titel)")
    expect(eigen).to_contain_text(EIGEN_MAATREGEL)
    expect(page.locator("section:has(#werkgever-titel) button")).to_have_count(0)
    no_axe_violations(offline_page, "bestuurder-maatregelen")
    eigen.get_by_role("button").click()
    melding(page, "De maatregel is vastgelegd als uitgevoerd.")
    expect(eigen).to_contain_text("Status: uitgevoerd op")
    no_axe_violations(offline_page, "bestuurder-maatregelen-uitgevoerd")

    # The PKVW: a certificate without its date is refused by the API, at the field.
    page.get_by_role("link", name="Terug naar mijn dossier").click()
    page.get_by_label("Een certificaat Politiekeurmerk Veilig Wonen").check()
    page.get_by_role("button", name="PKVW-status doorgeven").click()
    expect(page.locator("#pkvw-afgegeven_op-fout")).to_contain_text(
        "Vul de datum van afgifte van het certificaat in."
    )
    expect(page.locator("#pkvw-afgegeven_op")).to_have_attribute("aria-invalid", "true")
    no_axe_violations(offline_page, "bestuurder-pkvw-fout")
    vandaag = datetime.now(ZoneInfo("Europe/Amsterdam")).date()
    page.get_by_label("Datum van afgifte van het certificaat").fill(vandaag.isoformat())
    page.get_by_label("Certificaatnummer (niet verplicht)").fill("PKVW-2026-0001")
    page.get_by_role("button", name="PKVW-status doorgeven").click()
    melding(page, "Uw PKVW-status is vastgelegd.")
    expect(page.locator("#pkvw-stand")).to_contain_text("Certificaat")
    expect(page.locator("#pkvw-stand")).to_contain_text(f"{vandaag.year + 10}")

    # A toelichting, asked of scheduling.
    page.get_by_role("button", name="Toelichting aanvragen").click()
    melding(page, "Uw verzoek om een toelichting is ontvangen.")
    no_axe_violations(offline_page, "bestuurder-dossier-na-stappen")
    staff = token(running_system.data_dir, "secretariaat", sub="sec-test")
    planning = httpx.get(
        f"{running_system.url('scheduling')}/aanvragen/{aanvraag_id}/planning", headers=staff
    ).json()
    assert [t["partij"] for t in planning["toelichtingen"]] == ["bestuurder"]

    def listed() -> bool | None:
        page.reload()
        return page.locator("#toelichtingen li").count() == 1 or None

    wait_until(listed, timeout=30, what="the toelichting on the dossier page")
    expect(page.locator("#toelichtingen")).to_contain_text("Aangevraagd op")

    assert offline_page.outside == [], "the page tried to leave loopback"
    # The refused forms came back as 422, which Chromium reports on the console.
    assert [e for e in offline_page.errors if "status of 422" not in e] == []


def tab_to(page: Page, selector: str, limit: int = 60) -> None:
    """Press Tab until the focused element matches ``selector``; its focus must be visible."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement?.matches(s) ?? false", selector):
            outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
            assert outline not in ("", "none"), f"no visible focus on {selector}"
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_consent_is_given_with_the_keyboard_only(
    running_system: System, portal_url: str, offline_page: BrowserPage
) -> None:
    driver = approved_dossier(running_system)
    page = offline_page.page
    page.goto(f"{portal_url}/inloggen")
    no_axe_violations(offline_page, "bestuurder-toetsenbord-inloggen")

    tab_to(page, f"form:has(input[name=persoon][value={BESTUURDER}]) button")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Start: Bestuurder")
    tab_to(page, "a[href='/bestuurder/dossiers']")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Mijn dossiers")
    no_axe_violations(offline_page, "bestuurder-toetsenbord-dossiers")
    tab_to(page, f"#mijn-dossiers a[href='/bestuurder/dossiers/{driver.aanvraag_id}']")
    page.keyboard.press("Enter")
    expect(page.locator("#waar")).to_contain_text("Het rapport is goedgekeurd")
    tab_to(page, "a[href$='/instemming']")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Delen met uw werkgever")
    tab_to(page, "#instemming-ja")
    page.keyboard.press("Space")
    expect(page.locator("#instemming-ja")).to_be_checked()
    no_axe_violations(offline_page, "bestuurder-toetsenbord-instemming")
    tab_to(page, "form[action$='/instemming'] button[type=submit]")
    page.keyboard.press("Enter")

    melding(page, "U hebt ingestemd. Uw werkgever ontvangt het rapport.")
    stand = _approval_status(running_system, driver.rapport_id)
    assert (stand["instemming"], stand["vrijgegeven_versie"]) == ("gegeven", 1)
    no_axe_violations(offline_page, "bestuurder-toetsenbord-ingestemd")
    driver.client.close()


def test_another_bestuurder_sees_nothing_of_the_dossier(
    running_system: System,
    portal_url: str,
    dossier: DossierDriver,
    offline_page: BrowserPage,
) -> None:
    page = offline_page.page
    aanvraag_id = dossier.aanvraag_id
    sign_in(page, portal_url, ANDERE_BESTUURDER)
    page.get_by_role("link", name="Mijn dossiers").click()
    # Not in the other bestuurder's list...
    expect(page.locator("h1")).to_have_text("Mijn dossiers")
    expect(page.locator("#geen-dossiers")).to_be_visible()
    expect(mijn_dossier(page, aanvraag_id)).to_have_count(0)
    assert aanvraag_id not in page.content()
    no_axe_violations(offline_page, "bestuurder-ander-dossiers")
    # ...nor found by its number, nor shown at its URL.
    page.get_by_label("Dossiernummer").fill(aanvraag_id)
    page.get_by_role("button", name="Dossier openen").click()

    expect(page.locator("h1")).to_have_text("Dossier niet gevonden")
    expect(page.get_by_text("Er is geen dossier met dit nummer dat bij u hoort.")).to_be_visible()
    no_axe_violations(offline_page, "bestuurder-ander-dossier")
    for pad in ("", "/rapport", "/instemming", "/maatregelen"):
        answer = page.goto(f"{portal_url}/bestuurder/dossiers/{aanvraag_id}{pad}")
        assert answer is not None and answer.status == 404, pad
        expect(page.locator("h1")).to_have_text("Dossier niet gevonden")
        inhoud = page.locator("main").inner_text()
        for geheim in (BEVINDING_WONEN, EIGEN_MAATREGEL, "Het rapport is goedgekeurd"):
            assert geheim not in inhoud, (pad, geheim)
    no_axe_violations(offline_page, "bestuurder-ander-rapport")

    # The attempts are on record as refused, by a bestuurder (the demo one had none).
    compliance = token(running_system.data_dir, "compliance", sub="cmp-test")

    def refused() -> bool | None:
        trail = httpx.get(
            f"{running_system.url('intake')}/aanvragen/{aanvraag_id}/audit", headers=compliance
        ).json()
        return (
            any(
                ".ToegangGeweigerd." in r.get("type", "") and r.get("actorrole") == "bestuurder"
                for r in trail
            )
            or None
        )

    wait_until(refused, timeout=30, what="the refused attempts in the audit trail")
    assert offline_page.outside == []
