"""Journey 1 in Chromium: a bestuurder registers through the portal with the keyboard only.

The portal runs as ``./weerbaar up`` runs it, in front of the five services on the session's
PostgreSQL and NATS; the browser may reach only loopback. Every page visited must have no
axe-core violation at all, and its screenshot is saved (``test-artifacts/screenshots/portal``,
not committed).
"""

from __future__ import annotations

import secrets

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import BrowserPage, no_axe_violations
from tools.system import System

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

#: Enough Tab presses to reach any field of the form from the top of the page.
MAX_TABS = 80


def tab_to(page: Page, element_id: str) -> None:
    """Press Tab until the element has the focus (the keyboard's way there)."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} is not reachable with Tab")


def fill(page: Page, element_id: str, text: str) -> None:
    """Tab to a field and type into it."""
    tab_to(page, element_id)
    page.keyboard.type(text)


def register_with_keyboard(page: Page, *, functie: str, email: str, postcode: str) -> None:
    """Fill the whole form and send it with Tab, typing, Space and Enter only."""
    # The first Tab reaches the skip link; Enter moves the focus to the main content.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Naar de inhoud"
    page.keyboard.press("Enter")
    tab_to(page, "ingediend_door-bestuurder")
    page.keyboard.press("Space")
    fill(page, "bestuurder-naam", "Anna de Vries")
    tab_to(page, "bestuurder-functie")
    page.keyboard.type(functie)
    fill(page, "bestuurder-email", email)
    fill(page, "bestuurder-telefoon", "06 12345678")
    fill(page, "bestuurder-adres-straat", "Dorpsstraat")
    fill(page, "bestuurder-adres-huisnummer", "1")
    fill(page, "bestuurder-adres-postcode", postcode)
    fill(page, "bestuurder-adres-woonplaats", "Voorbeeldstad")
    fill(page, "werkgever-organisatie", "Gemeente Voorbeeldstad")
    fill(page, "werkgever-organisatie_code", "GM0344")
    fill(page, "werkgever-contactpersoon", "Piet Contact")
    fill(page, "werkgever-email", f"werkgever.{secrets.token_hex(3)}@example.org")
    fill(page, "werkgever-telefoon", "020 1234567")
    fill(page, "reden", "Bedreigingen via sociale media.")
    tab_to(page, "toestemming")
    page.keyboard.press("Space")
    # To the submit button, then Enter.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.type") == "submit"
    page.keyboard.press("Enter")


def test_a_bestuurder_registers_with_the_keyboard_only(
    running_system: System, portal_url: str, offline_page: BrowserPage
) -> None:
    page = offline_page.page
    page.goto(f"{portal_url}/aanmelden")
    expect(page.locator("h1")).to_have_text("Veiligheidsadvies aanvragen")
    no_axe_violations(offline_page, "aanmelden")

    email = f"anna.{secrets.token_hex(4)}@example.org"
    register_with_keyboard(page, functie="Burgemeester", email=email, postcode="1234 AB")

    expect(page.locator("h1")).to_have_text("Aanmelding ontvangen")
    assert page.url == f"{portal_url}/aanmelden/ontvangen"
    expect(page.get_by_text("Binnen drie werkdagen")).to_be_visible()
    expect(page.get_by_text("Buiten de regeling")).to_have_count(0)
    assert "Anna" not in page.title() and email not in page.url
    # Nor in the portal's log.
    log = (running_system.data_dir / "logs" / "portal.log").read_text()
    assert "Anna" not in log and email not in log
    no_axe_violations(offline_page, "ontvangen")
    assert offline_page.outside == [], "the page tried to leave loopback"
    assert offline_page.errors == []


def test_a_raadslid_is_told_the_aanvraag_falls_outside_the_regeling(
    running_system: System, portal_url: str, offline_page: BrowserPage
) -> None:
    page = offline_page.page
    page.goto(f"{portal_url}/aanmelden")
    email = f"raadslid.{secrets.token_hex(4)}@example.org"
    register_with_keyboard(page, functie="Gemeenteraadslid", email=email, postcode="1234 AB")

    expect(page.locator("h1")).to_have_text("Aanmelding ontvangen")
    expect(page.get_by_role("heading", name="Buiten de regeling")).to_be_visible()
    expect(page.get_by_text("Uw aanvraag is toch aangenomen")).to_be_visible()
    no_axe_violations(offline_page, "ontvangen-buiten-regeling")
    assert offline_page.outside == []
    assert offline_page.errors == []


def test_the_apis_errors_are_shown_at_their_fields(
    running_system: System, portal_url: str, offline_page: BrowserPage
) -> None:
    page = offline_page.page
    page.goto(f"{portal_url}/aanmelden")
    email = f"fout.{secrets.token_hex(4)}@example.org"
    register_with_keyboard(page, functie="Wethouder", email=email, postcode="12 AB")

    summary = page.locator("#foutoverzicht")
    expect(summary).to_be_visible()
    expect(summary).to_be_focused()
    expect(page).to_have_title("Fout: Veiligheidsadvies aanvragen – Weerbaar bestuur")
    postcode = page.locator("#bestuurder-adres-postcode")
    expect(postcode).to_have_attribute("aria-invalid", "true")
    described = postcode.get_attribute("aria-describedby") or ""
    assert "bestuurder-adres-postcode-fout" in described.split()
    expect(page.locator("#bestuurder-adres-postcode-fout")).to_contain_text("1234 AB")
    # What was typed and chosen stays in the form.
    expect(page.locator("#bestuurder-naam")).to_have_value("Anna de Vries")
    expect(page.locator("#ingediend_door-bestuurder")).to_be_checked()
    expect(page.locator("#toestemming")).to_be_checked()
    no_axe_violations(offline_page, "aanmelden-fouten")

    # The summary's link takes the keyboard to the field.
    link = summary.get_by_role("link", name="Postcode (bestuurder)")
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if link.evaluate("element => element === document.activeElement"):
            break
    page.keyboard.press("Enter")
    expect(postcode).to_be_focused()
    assert offline_page.outside == []
    # The form with its errors comes back as 422, which Chromium reports on the console.
    assert [e for e in offline_page.errors if "status of 422" not in e] == []


def test_the_development_sign_in_and_a_start_page(
    running_system: System, portal_url: str, offline_page: BrowserPage
) -> None:
    page = offline_page.page
    page.goto(f"{portal_url}/")
    no_axe_violations(offline_page, "home")
    page.goto(f"{portal_url}/inloggen")
    expect(page.get_by_text("Alleen voor ontwikkeling en demonstratie")).to_be_visible()
    no_axe_violations(offline_page, "inloggen")
    button = page.get_by_role("button", name="Inloggen als Secretariaat CCV")
    button.focus()
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Start: Secretariaat CCV")
    no_axe_violations(offline_page, "start-secretariaat")
    page.get_by_role("button", name="Uitloggen").focus()
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Weerbaar bestuur")
    assert offline_page.outside == []
    assert offline_page.errors == []
