"""Journey 2 in Chromium: the secretariat finds a new dossier in the werkvoorraad with its
contact deadline, searches it by number, records contact, plans both conversations, moves one,
cancels and re-plans the other; the API's refusal of a Saturday is shown at the picker.

Also through the running portal: two visitors registering from different addresses are counted
apart by intake's per-source limit, and a visitor cannot pass for another.

The portal runs as ``./weerbaar up`` runs it, in front of the five services; the browser may
reach only loopback; every page visited must have no axe-core violation at all, and its
screenshot is saved (``test-artifacts/screenshots/portal``, not committed).
"""

from __future__ import annotations

import re
import secrets
from datetime import date, timedelta
from typing import Any
from urllib.parse import unquote_plus

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import BrowserPage, no_axe_violations
from tests.browser.stappen import melding, plan
from tests.support import aanmelding, token, wait_until
from tools.system import System

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

INTAKE, SCHEDULING = "intake", "scheduling"

#: Registrations per source per hour, low, so the throttle test needs only a few.
PER_SOURCE = 2
SYSTEM_ENV = {"WEERBAAR_REGISTRATIONS_PER_SOURCE": str(PER_SOURCE)}


def register(system: System) -> str:
    """A new dossier registered at intake's API, once scheduling has opened its planning."""
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


#: Typed into the search field where a dossier number belongs, as people do.
GETYPTE_NAAM = "Jan de Vries"


def zonder_getypte_tekst(opened: BrowserPage) -> list[str]:
    """The tab's history, after checking that no address the page asked for or keeps there
    carries what was typed into the search field (in any of its URL encodings)."""
    geschiedenis = opened.history()
    for adres in [opened.page.url, *opened.requested, *geschiedenis]:
        assert "Vries" not in unquote_plus(adres) and "nummer=" not in adres, adres
    return geschiedenis


def section(page: Page, heading: str) -> Any:
    """The article or form titled ``heading``."""
    return page.locator(f"article:has(h3:text-is('{heading}')), form:has(h3:text-is('{heading}'))")


def test_the_secretariat_works_a_new_dossier_from_the_werkvoorraad(
    running_system: System, portal_url: str, offline_page: BrowserPage
) -> None:
    aanvraag_id = register(running_system)
    page = offline_page.page

    page.goto(f"{portal_url}/inloggen")
    page.get_by_role("button", name="Inloggen als Secretariaat CCV").click()
    page.get_by_role("link", name="Werkvoorraad").click()
    expect(page.locator("h1")).to_have_text("Werkvoorraad")
    row = page.locator("tr", has=page.get_by_role("link", name=aanvraag_id))
    expect(row).to_contain_text("Ingediend: wacht op contact")
    expect(row).to_contain_text(re.compile(r"Nog \d werkdagen \(tot en met|Vandaag is de laatste"))
    no_axe_violations(offline_page, "secretariaat-werkvoorraad")

    page.get_by_label("Status").select_option("ingediend")
    page.get_by_role("button", name="Filteren").click()
    expect(page.get_by_role("link", name=aanvraag_id)).to_be_visible()

    # A search is a form post: what is typed (here a name, no number) is said wrong at the
    # field, and is in no address the browser asked for or keeps in its history.
    page.get_by_label("Dossiernummer").fill(GETYPTE_NAAM)
    page.get_by_label("Dossiernummer").press("Enter")
    expect(page.locator("#nummer-fout")).to_contain_text("Dat is geen dossiernummer.")
    expect(page.get_by_label("Dossiernummer")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#foutoverzicht")).to_be_focused()
    zonder_getypte_tekst(offline_page)
    assert page.url == f"{portal_url}/secretariaat/zoeken"
    no_axe_violations(offline_page, "secretariaat-zoeken-fout")

    page.get_by_label("Dossiernummer").fill(aanvraag_id)
    page.get_by_label("Dossiernummer").press("Enter")
    expect(page.locator("h1")).to_contain_text(aanvraag_id)
    assert page.url == f"{portal_url}/secretariaat/dossiers/{aanvraag_id}"
    geschiedenis = zonder_getypte_tekst(offline_page)
    assert geschiedenis[-2:] == [f"{portal_url}/secretariaat/zoeken", page.url], geschiedenis
    expect(page.get_by_text("Leg eerst het contact vast")).to_be_visible()
    no_axe_violations(offline_page, "secretariaat-dossier-nieuw")

    page.get_by_role("button", name="Contact vastleggen").click()
    melding(page, "Het contact is vastgelegd.")
    expect(page.locator("#termijn")).to_contain_text("Contact opgenomen op")

    # The picker offers working days only, and starts that end within the working hours.
    dagen = page.locator("#plan-gesprek_werkgever-datum option").evaluate_all(
        "options => options.map(o => o.value)"
    )
    assert dagen and all(date.fromisoformat(d).weekday() < 5 for d in dagen)
    tijden = page.locator("#plan-gesprek_bestuurder-tijd option").evaluate_all(
        "options => options.map(o => o.value)"
    )
    assert (tijden[0], tijden[-1]) == ("08:00", "16:00")
    no_axe_violations(offline_page, "secretariaat-dossier-plannen")

    plan(page, "gesprek_werkgever", 1, "10:00")
    melding(page, "De afspraak is gepland.")
    plan(page, "gesprek_bestuurder", 2, "13:30")
    melding(page, "De afspraak is gepland.")
    expect(page.get_by_text("Beide gesprekken zijn gepland.")).to_be_visible()
    no_axe_violations(offline_page, "secretariaat-dossier-gepland")

    # Move the werkgever conversation to another day.
    werkgever = section(page, "Gesprek met de werkgever: gepland")
    werkgever.locator("summary", has_text="Verzetten").click()
    verzetten = werkgever.get_by_role("form", name="Gesprek met de werkgever verzetten")
    verzetten.locator("select[name=datum]").select_option(index=3)
    verzetten.locator("select[name=tijd]").select_option("14:00")
    no_axe_violations(offline_page, "secretariaat-verzetten")
    verzetten.get_by_role("button", name="Verzetten").click()
    melding(page, "De afspraak is verzet.")
    expect(section(page, "Gesprek met de werkgever: gepland")).to_contain_text("om 14:00")

    # Cancel the bestuurder conversation, then plan it again; a Saturday slipped into the
    # picker is refused by the API, and the refusal is shown at the field.
    page.get_by_role("button", name="Gesprek met de bestuurder annuleren").click()
    melding(page, "De afspraak is geannuleerd.")
    expect(section(page, "Gesprek met de bestuurder: geannuleerd")).to_be_visible()
    zaterdag = date.fromisoformat(dagen[0])
    zaterdag += timedelta(days=(5 - zaterdag.weekday()) % 7)
    page.locator("#plan-gesprek_bestuurder-datum").evaluate(
        "(select, day) => { select.add(new Option(day, day)); select.value = day; }",
        zaterdag.isoformat(),
    )
    page.get_by_role("button", name="Gesprek met de bestuurder plannen").click()
    expect(page.locator("#plan-gesprek_bestuurder-datum-fout")).to_contain_text("Kies een werkdag")
    expect(page.locator("#plan-gesprek_bestuurder-datum")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#foutoverzicht a")).to_have_attribute(
        "href", "#plan-gesprek_bestuurder-datum"
    )
    expect(page.locator("#foutoverzicht")).to_be_focused()
    expect(page).to_have_title(re.compile("^Fout: Dossier"))
    no_axe_violations(offline_page, "secretariaat-dossier-fout")
    plan(page, "gesprek_bestuurder", 0, "09:00")
    melding(page, "De afspraak is gepland.")

    # The timeline, from intake's dossier projection, shows the steps once they arrived there.
    def timeline_caught_up() -> bool | None:
        page.reload()
        tekst = page.locator(".portaal-tijdlijn").inner_text()
        return ("Afspraak geannuleerd" in tekst and tekst.count("Afspraak gepland") == 3) or None

    wait_until(timeline_caught_up, timeout=30, what="the timeline")
    expect(section(page, "Gesprek met de werkgever: gepland")).to_contain_text("1 keer verzet")
    expect(page.locator(".portaal-tijdlijn")).to_contain_text("Contact opgenomen")
    expect(page.locator(".portaal-tijdlijn")).to_contain_text("Afspraak verzet")
    no_axe_violations(offline_page, "secretariaat-dossier-tijdlijn")

    assert offline_page.outside == [], "the page tried to leave loopback"
    # The refused plan came back as 422, which Chromium reports on the console.
    assert [e for e in offline_page.errors if "status of 422" not in e] == []


def _register_through_portal(portal_url: str, visitor: str, forwarded: str | None = None) -> str:
    """Post the registration form from a visitor's own loopback address; the page's heading."""
    body = aanmelding()
    b, w = body["bestuurder"], body["werkgever"]
    form = {
        "ingediend_door": "bestuurder",
        "bestuurder.naam": b["naam"],
        "bestuurder.functie": b["functie"],
        "bestuurder.email": f"bezoeker.{secrets.token_hex(4)}@example.org",
        "bestuurder.telefoon": b["telefoon"],
        **{f"bestuurder.adres.{k}": v for k, v in b["adres"].items()},
        **{f"werkgever.{k}": v for k, v in w.items()},
        "reden": body["reden"],
        "toestemming": "ja",
    }
    transport = httpx.HTTPTransport(local_address=visitor)
    with httpx.Client(
        base_url=portal_url, transport=transport, timeout=10, follow_redirects=True
    ) as client:
        page = client.get("/aanmelden").text
        found = re.search(r'name="csrf" value="([^"]+)"', page)
        assert found
        headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
        answer = client.post("/aanmelden", data={**form, "csrf": found.group(1)}, headers=headers)
        heading = re.search(r"<h1[^>]*>([^<]+)</h1>", answer.text)
        assert heading
        if "te veel aanmeldingen" in answer.text:
            return "te vaak"
        return heading.group(1)


def test_visitors_are_counted_apart_through_the_portal_and_cannot_pass_for_another(
    running_system: System, portal_url: str
) -> None:
    eerste, tweede = "127.0.0.3", "127.0.0.4"
    for _ in range(PER_SOURCE):
        assert _register_through_portal(portal_url, eerste) == "Aanmelding ontvangen"
    assert _register_through_portal(portal_url, eerste) == "te vaak"
    # Claiming the other visitor's address changes nothing: the portal appends the real one.
    assert _register_through_portal(portal_url, eerste, forwarded=tweede) == "te vaak"
    # The other visitor has their own count.
    assert _register_through_portal(portal_url, tweede) == "Aanmelding ontvangen"
