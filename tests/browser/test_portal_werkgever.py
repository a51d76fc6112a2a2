"""Journey 6 in Chromium: the werkgever opens a dossier of its organisation from the list of
the organisation's dossiers (newest first, the status in words). Before the
bestuurder's consent the page says the report is not yet released and shows nothing of it (the
API refuses the werkgever's read); after it, the report's findings, the measures the werkgever
carries out and who pays (once the bestuurder holds the PKVW, the werkgever). The
werkgever records its measure as carried out (refused, and why, until the PKVW). The
organisation's webhook subscriptions: an unsafe callback address refused at its field, one
added (its secret shown once) and removed. A werkgever of another organisation sees nothing of
the dossier (not in its list, not by its number, not by its URL), nor the organisation's
subscriptions.

The steps of the other roles (registration, contact, conversations, the report, the BVA's
approval, the bestuurder's consent and PKVW) are driven through the APIs as ``weerbaar demo``
drives them; every step of the werkgever is taken in the browser. The portal runs as
``./weerbaar up`` runs it; the browser may reach only loopback; every page visited must have no
axe-core violation, and its screenshot is saved (``test-artifacts/screenshots/portal``).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from shared.platform.auth import load_or_create_secret
from tests.browser.conftest import BrowserPage, no_axe_violations
from tests.support import token, wait_until
from tools.demo import Actors, DossierDriver, rapport_inhoud
from tools.system import System

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

#: The demo werkgever's organisation (``adapters/inloggen.py``) and another one's.
ORGANISATIE, ANDERE = "GM0344", "GM0363"
SERVICES = ("intake", "scheduling", "assessment", "approval", "notifications")
NOG_NIET = "Het rapport is nog niet vrijgegeven door de bestuurder."
INHOUD = rapport_inhoud(2)
#: What the report says: none of it may be on a page before release, or for another organisation.
RAPPORT_TEKSTEN = [
    *INHOUD["bevindingen"].values(),
    *(m["omschrijving"] for m in INHOUD["maatregelen"]),
]
EIGEN_MAATREGEL = "Inbraakwerend hang- en sluitwerk op de achterdeur."


def approved(system: System, client: httpx.Client) -> DossierDriver:
    """A dossier of the organisation whose report the BVA approved (rejected once, revised),
    driven through the APIs; the bestuurder has not decided on consent."""
    actors = Actors(
        secret=load_or_create_secret(system.data_dir / "secrets" / "jwt.key"),
        bestuurder_email=f"bestuurder.{secrets.token_hex(4)}@example.org",
        organisatie=ORGANISATIE,
    )
    driver = DossierDriver({s: system.url(s) for s in SERVICES}, actors, client)
    driver.tot_goedgekeurd()
    driver.wait_for_status("goedgekeurd")
    return driver


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=15) as opened:
        yield opened


@pytest.fixture(scope="module")
def released(running_system: System, client: httpx.Client) -> DossierDriver:
    """A dossier whose report the bestuurder released to the werkgever."""
    driver = approved(running_system, client)
    driver.lees_rapport("bestuurder")
    driver.instemming(geeft=True)
    driver.wait_for_status("vrijgegeven")
    return driver


def sign_in(page: Page, portal_url: str, organisatie: str) -> None:
    """Sign in as the demo werkgever of ``organisatie`` and open the start page's dossiers."""
    page.goto(f"{portal_url}/inloggen")
    page.locator("form", has_text=f"organisatie {organisatie}").get_by_role("button").click()
    expect(page.locator("h1")).to_have_text("Start: Werkgever")


def open_dossier(page: Page, aanvraag_id: str) -> None:
    """From the start page to the dossier, through the organisation's list."""
    page.get_by_role("link", name="Dossiers van uw organisatie").click()
    expect(page.locator("h1")).to_have_text("Dossiers van uw organisatie")
    page.locator("#dossierlijst").get_by_role("link", name=aanvraag_id).click()


def assert_no_report(page: Page) -> None:
    html = page.content()
    assert [t for t in RAPPORT_TEKSTEN if t in html] == []


def console_errors(opened: BrowserPage, *expected: int) -> list[str]:
    """The page's console errors besides the refusals the test asked for (Chromium reports
    every 4xx answer there)."""
    return [e for e in opened.errors if not any(f"status of {s}" in e for s in expected)]


def test_before_release_the_werkgever_sees_that_and_nothing_of_the_report(
    running_system: System, portal_url: str, client: httpx.Client, offline_page: BrowserPage
) -> None:
    driver = approved(running_system, client)
    # The API refuses the werkgever's read of the approved report.
    assert driver.probeer_te_lezen("werkgever").status_code == 403
    page = offline_page.page

    page.goto(f"{portal_url}/inloggen")
    no_axe_violations(offline_page, "werkgever-inloggen")
    sign_in(page, portal_url, ORGANISATIE)
    no_axe_violations(offline_page, "werkgever-start")
    page.get_by_role("link", name="Dossiers van uw organisatie").click()
    # The organisation's list, newest first: the new dossier at the top, its status in words.
    eerste = page.locator("#dossierlijst tbody tr").first
    expect(eerste.locator("td").first).to_have_text(driver.aanvraag_id)
    expect(eerste.locator("td").nth(2)).to_have_text("Rapport goedgekeurd")
    no_axe_violations(offline_page, "werkgever-dossiers")
    eerste.get_by_role("link", name=driver.aanvraag_id).click()

    expect(page.locator("h1")).to_contain_text(driver.aanvraag_id)
    assert page.url.endswith(f"/werkgever/dossiers/{driver.aanvraag_id}")
    expect(page.locator("#status")).to_have_text("Rapport goedgekeurd")
    expect(page.locator("#nog-niet-vrijgegeven")).to_contain_text(NOG_NIET)
    expect(page.locator("#bevindingen")).to_have_count(0)
    expect(page.locator("table")).to_have_count(0)
    assert_no_report(page)
    no_axe_violations(offline_page, "werkgever-dossier-niet-vrijgegeven")

    assert offline_page.outside == [], "the page tried to leave loopback"
    assert offline_page.errors == []


def test_after_release_the_report_measures_and_who_pays_and_the_webhooks(
    running_system: System, portal_url: str, released: DossierDriver, offline_page: BrowserPage
) -> None:
    page = offline_page.page
    sign_in(page, portal_url, ORGANISATIE)
    open_dossier(page, released.aanvraag_id)

    # Assessment hears of the release a moment after intake: the page shows it once it has.
    def shown() -> bool | None:
        if page.locator("#maatregelen-werkgever").count():
            return True
        page.reload()
        return None

    wait_until(shown, timeout=30, what="the released report on the werkgever's page")
    expect(page.locator("#status")).to_have_text("Rapport vrijgegeven")
    expect(page.locator("#nog-niet-vrijgegeven")).to_have_count(0)
    for tekst in INHOUD["bevindingen"].values():
        expect(page.locator("#bevindingen")).to_contain_text(tekst)
    eigen = page.locator("#maatregelen-werkgever tbody tr")
    expect(eigen).to_have_count(1)
    expect(eigen).to_contain_text(EIGEN_MAATREGEL)
    # Without the bestuurder's PKVW the werkgever pays the measure only once it is there.
    expect(eigen.locator("td").nth(4)).to_have_text(
        "De werkgever, zodra de bestuurder het Politiekeurmerk Veilig Wonen heeft"
    )
    bestuurder = page.locator("#maatregelen-bestuurder tbody tr")
    expect(bestuurder).to_have_count(2)
    expect(bestuurder.first).to_contain_text("Geen kosten: kan direct worden uitgevoerd")
    expect(page.locator("#pkvw")).to_have_text("Nog geen")
    no_axe_violations(offline_page, "werkgever-dossier-vrijgegeven")

    # Recording the measure as carried out waits for the PKVW: the API's refusal is explained.
    eigen.get_by_role("button", name="Uitgevoerd").click()
    expect(page.locator("#foutoverzicht")).to_contain_text("wacht op PKVW")
    expect(page.locator("#foutoverzicht")).to_be_focused()
    expect(eigen.locator("td").nth(5)).to_contain_text("Nog niet")
    no_axe_violations(offline_page, "werkgever-maatregel-wacht")

    # The bestuurder obtains the PKVW certificate: from then on the werkgever pays.
    released.pkvw_certificaat()

    dossier_url = f"{portal_url}/werkgever/dossiers/{released.aanvraag_id}"

    def pays() -> bool | None:
        # Opened anew, not reloaded: the refused form's page would post it again.
        page.goto(dossier_url)
        return page.locator("#pkvw").inner_text().startswith("Certificaat") or None

    wait_until(pays, timeout=30, what="the PKVW on the werkgever's page")
    expect(eigen.locator("td").nth(4)).to_have_text("De werkgever")
    no_axe_violations(offline_page, "werkgever-dossier-pkvw")
    eigen.get_by_role("button", name="Uitgevoerd").click()
    expect(page.locator("#melding")).to_have_text("De maatregel is vastgelegd als uitgevoerd.")
    expect(eigen.locator("td").nth(5)).to_contain_text("Ja, op")
    expect(eigen.get_by_role("button")).to_have_count(0)
    no_axe_violations(offline_page, "werkgever-maatregel-uitgevoerd")

    # The organisation's webhook subscriptions: an inward address is refused at the field.
    page.get_by_role("link", name="Terug naar de dossiers").click()
    page.get_by_role("link", name="Webhook-abonnementen van uw organisatie").click()
    expect(page.locator("h1")).to_have_text("Webhook-abonnementen")
    no_axe_violations(offline_page, "werkgever-webhooks")
    veld = page.get_by_label("Adres voor de berichten (callback-URL)")
    veld.fill("https://127.0.0.1/weerbaar")
    page.get_by_label("Rapport vrijgegeven aan de werkgever").check()
    page.get_by_role("button", name="Abonnement toevoegen").click()
    expect(page.locator("#callback_url-fout")).to_contain_text("geen localhost")
    expect(veld).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#foutoverzicht a")).to_have_attribute("href", "#callback_url")
    expect(page.locator("#foutoverzicht")).to_be_focused()
    expect(page.get_by_label("Rapport vrijgegeven aan de werkgever")).to_be_checked()
    expect(page).to_have_title("Fout: Webhook-abonnementen – Weerbaar bestuur")
    no_axe_violations(offline_page, "werkgever-webhooks-fout")

    adres = f"https://zaken-{secrets.token_hex(3)}.example.org/weerbaar"
    veld.fill(adres)
    page.get_by_role("button", name="Abonnement toevoegen").click()
    expect(page.locator("h1")).to_have_text("Abonnement aangemaakt")
    expect(page.locator("#geheim")).to_have_text(re.compile(r"^whsec_\S+$"))
    no_axe_violations(offline_page, "werkgever-webhook-aangemaakt")
    # Post/Redirect/Get: a reload sends nothing again, and the secret was shown once.
    assert page.url == f"{portal_url}/werkgever/webhooks/aangemaakt"
    page.reload()
    expect(page.locator("h1")).to_have_text("Webhook-abonnementen")
    expect(page.locator("#geheim")).to_have_count(0)

    headers = token(running_system.data_dir, "werkgever", sub="wg-demo", organisatie=ORGANISATIE)
    listed = httpx.get(
        f"{running_system.url('notifications')}/webhooks/abonnementen", headers=headers
    ).json()
    assert [(a["callback_url"], a["event_types"]) for a in listed] == [
        (adres, ["RapportVrijgegeven"])
    ]

    rij = page.locator("#abonnementen tbody tr", has_text=adres)
    expect(rij).to_contain_text("Rapport vrijgegeven aan de werkgever")
    expect(page.locator("#geheim")).to_have_count(0)
    verwijderen = rij.get_by_role("button", name="Verwijderen")
    # Which subscription each button removes is in its name (the address, hidden on screen).
    expect(verwijderen).to_have_accessible_name(
        re.compile(rf"^Verwijderen ?\(abonnement op {re.escape(adres)}\)\s*$")
    )
    verwijderen.click()
    expect(page.locator("#melding")).to_contain_text("Het abonnement is verwijderd.")
    expect(page.locator("#geen-abonnementen")).to_be_visible()
    no_axe_violations(offline_page, "werkgever-webhook-verwijderd")
    listed = httpx.get(
        f"{running_system.url('notifications')}/webhooks/abonnementen", headers=headers
    ).json()
    assert listed == []

    assert offline_page.outside == [], "the page tried to leave loopback"
    assert console_errors(offline_page, 409, 422) == []


def test_a_werkgever_of_another_organisation_sees_nothing_of_the_dossier(
    running_system: System, portal_url: str, released: DossierDriver, offline_page: BrowserPage
) -> None:
    # The organisation has a subscription; the other organisation must not see it either.
    eigen = token(running_system.data_dir, "werkgever", sub="wg-demo", organisatie=ORGANISATIE)
    adres = f"https://zaken-{secrets.token_hex(3)}.example.org/weerbaar"
    made = httpx.post(
        f"{running_system.url('notifications')}/webhooks/abonnementen",
        json={"callback_url": adres},
        headers=eigen,
    )
    assert made.status_code == 201, made.text
    page = offline_page.page

    sign_in(page, portal_url, ANDERE)
    # Not in the other organisation's list...
    page.get_by_role("link", name="Dossiers van uw organisatie").click()
    expect(page.locator("h1")).to_have_text("Dossiers van uw organisatie")
    lijst = page.locator("#dossierlijst").or_(page.get_by_text("Uw organisatie heeft nog geen"))
    expect(lijst).to_be_visible()
    assert released.aanvraag_id not in page.content()
    no_axe_violations(offline_page, "werkgever-ander-dossiers")
    # ...nor found by its number...
    page.get_by_label("Dossiernummer").fill(released.aanvraag_id)
    page.get_by_role("button", name="Dossier openen").click()
    expect(page.locator("#foutoverzicht a")).to_have_text(
        "Er is geen dossier met dat nummer voor uw organisatie."
    )
    expect(page.locator("#foutoverzicht a")).to_have_attribute("href", "#nummer")
    expect(page.get_by_label("Dossiernummer")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#foutoverzicht")).to_be_focused()
    # The search was a form post: the number is in no address the browser asked for.
    assert page.url == f"{portal_url}/werkgever/zoeken"
    assert not [adres for adres in offline_page.requested if released.aanvraag_id in adres]
    assert released.aanvraag_id not in page.content()
    no_axe_violations(offline_page, "werkgever-ander-zoeken")

    # ...nor shown at its URL.
    answer = page.goto(f"{portal_url}/werkgever/dossiers/{released.aanvraag_id}")
    assert answer is not None and answer.status == 404
    expect(page.locator("h1")).to_have_text("Dossier niet gevonden")
    expect(page.locator("#status")).to_have_count(0)
    assert_no_report(page)
    assert released.aanvraag_id not in page.content()
    no_axe_violations(offline_page, "werkgever-ander-dossier")

    page.goto(f"{portal_url}/werkgever/webhooks")
    expect(page.locator("#geen-abonnementen")).to_be_visible()
    assert adres not in page.content()
    no_axe_violations(offline_page, "werkgever-ander-webhooks")

    assert offline_page.outside == [], "the page tried to leave loopback"
    assert console_errors(offline_page, 404) == []
