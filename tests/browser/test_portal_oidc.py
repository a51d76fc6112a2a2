"""Signing in to the portal at a real OIDC provider, in Chromium.

The whole system runs in OIDC mode against ``oidc-provider`` on loopback: the five services
verify the provider's tokens and get their own from it (client credentials); the portal is the
provider's confidential client (authorization code with PKCE). A secretariat member signs in at
the provider's pages, works in the werkvoorraad with the provider's token (the services
answer it), and signs out: the portal's session ends, the provider's too (the ID token of the
sign-in as the hint, so the provider asks nothing), and the refresh token no longer works.

And one dossier from registration to release, every step in the browser through the portal:
the public registration form, then the secretariat, the adviseur, the BVA, the bestuurder and
the werkgever, each a person of their own signed in at the provider's pages in a browser of
their own; the services' calls to each other carry tokens the provider issued to them, and no
HMAC secret exists. Every portal page visited has no axe-core violation (the provider's own
pages are the provider's, not the portal's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from services.portal.api.session import COOKIE_NAME, Sessie, SessieSleutel
from tests import servers
from tests.browser.conftest import (
    LOOPBACK_HOSTS,
    PAGE_TIMEOUT_MS,
    BrowserPage,
    no_axe_violations,
)
from tests.browser.stappen import artikel, maatregel, melding, plan, sla_op
from tests.oidc.provider import AUDIENCE, PORTAL_CLIENT, Provider, running_provider
from tests.support import (
    aanmelding,
    mail_catcher,
    pseudonym,
    reset_streams,
    settings_for,
    system_on,
    wait_until,
)
from tools.embedded import free_port
from tools.system import PORTAL, System

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

#: The registered bestuurder's address and the werkgever's organisation (each account's claim).
BESTUURDER_EMAIL = "bestuurder.oidc@example.org"
ORGANISATIE = "GM0344"
ACCOUNTS: dict[str, dict[str, Any]] = {
    "sec-oidc": {"roles": ["secretariaat"]},
    "adv-oidc": {"roles": ["adviseur"]},
    "bva-oidc": {"roles": ["bva"]},
    "bst-oidc": {"roles": ["bestuurder"], "email": BESTUURDER_EMAIL},
    "wg-oidc": {"roles": ["werkgever"], "organisatie": ORGANISATIE},
}
#: Where the provider's own page loads its font from (aborted here: no internet).
PROVIDER_FONTS = "fonts.googleapis.com"


@dataclass
class OidcPortal:
    system: System
    provider: Provider
    url: str


@pytest.fixture(scope="module")
def oidc_portal(
    chromium: str,
    postgres_server_url: str,
    nats_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OidcPortal]:
    """The provider, then the services and the portal in OIDC mode against it."""
    root: Path = tmp_path_factory.mktemp("browser-oidc")
    port = free_port()
    portal_url = f"http://127.0.0.1:{port}"
    database = servers.create_database(postgres_server_url)
    try:
        reset_streams(settings_for(database, nats_url, root))
        with (
            mail_catcher(root / "mail") as catcher,
            running_provider(
                root / "provider",
                ACCOUNTS,
                portal_redirect_uri=f"{portal_url}/inloggen/terug",
                portal_post_logout_uri=f"{portal_url}/uitgelogd",
            ) as provider,
        ):
            env = {
                **provider.system_env(root / "oidc-secrets"),
                "WEERBAAR_PORTAL_PUBLIC_URL": portal_url,
            }
            system = system_on(root / "data", database, nats_url, catcher, **env)
            system.data_dir.mkdir(parents=True)
            system.start_services(timeout=90)
            try:
                system.start_portal(timeout=60, port=port)
                yield OidcPortal(system, provider, system.url(PORTAL))
            finally:
                system.stop()
    finally:
        servers.drop_database(postgres_server_url, database)


def sessie_of(opened: BrowserPage, system: System) -> Sessie:
    """The browser's session cookie, opened with the portal's key."""
    cookies = {c["name"]: c["value"] for c in opened.page.context.cookies()}
    key = (system.data_dir / "secrets" / "portal.key").read_bytes()
    sessie = SessieSleutel(key, 3600).open(cookies[COOKIE_NAME])
    assert sessie is not None, "the browser holds a session cookie of the portal"
    return sessie


def test_a_person_signs_in_at_the_provider_works_with_its_token_and_signs_out(
    oidc_portal: OidcPortal, offline_page: BrowserPage
) -> None:
    system, provider = oidc_portal.system, oidc_portal.provider
    answer = httpx.post(f"{system.url('intake')}/aanvragen", json=aanmelding(), timeout=10)
    assert answer.status_code == 201, answer.text
    aanvraag_id = answer.json()["aanvraag_id"]
    page = offline_page.page

    page.goto(f"{oidc_portal.url}/inloggen")
    expect(page.get_by_role("heading", level=1)).to_have_text("Inloggen")
    expect(page.get_by_text("ontwikkelomgeving")).to_have_count(0)
    no_axe_violations(offline_page, "oidc-inloggen")
    page.get_by_role("button", name="Inloggen").click()

    # The provider's pages: sign in (any password at this test provider), then consent.
    page.wait_for_url(f"{provider.issuer}/interaction/**")
    page.locator("input[name=login]").fill("sec-oidc")
    page.locator("input[name=password]").fill("niet-gebruikt")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()

    page.wait_for_url(f"{oidc_portal.url}/start")
    expect(page.get_by_role("heading", level=1)).to_have_text("Start: Secretariaat CCV")
    no_axe_violations(offline_page, "oidc-start")

    # The werkvoorraad is made with the provider's token: the services answer it.
    def listed() -> bool | None:
        page.goto(f"{oidc_portal.url}/secretariaat/werkvoorraad")
        return page.get_by_text(aanvraag_id[:8], exact=False).count() > 0 or None

    wait_until(listed, timeout=30, what="the new dossier in the werkvoorraad")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Werkvoorraad")
    ingelogd = sessie_of(offline_page, system)
    ververs = ingelogd.ververs
    assert ververs, "the session holds a refresh token"
    assert ingelogd.id_token, "the session holds the sign-in's ID token"

    bezocht: list[str] = []
    page.on("framenavigated", lambda frame: bezocht.append(frame.url))
    page.get_by_role("button", name="Uitloggen").click()
    # The sign-out carries the ID token as its hint: the provider sees whose session ends and
    # asks nothing (without the hint it asks to confirm). The browser passes its sign-out and
    # lands on the portal's page with the state the portal sent.
    page.wait_for_url(lambda url: url.startswith(f"{oidc_portal.url}/uitgelogd?state="))
    assert any(url.startswith(f"{provider.issuer}/session/end") for url in bezocht)
    expect(page.get_by_role("heading", level=1)).to_have_text("U bent uitgelogd")
    expect(
        page.get_by_text("U bent uitgelogd bij het portaal en bij de inlogdienst.")
    ).to_be_visible()
    no_axe_violations(offline_page, "oidc-uitgelogd")

    # The session cookie the browser holds now signs nobody in.
    na = sessie_of(offline_page, system)
    assert (na.sub, na.token, na.ververs, na.id_token) == (None, None, None, None)
    page.goto(f"{oidc_portal.url}/start")
    page.wait_for_url(f"{oidc_portal.url}/inloggen")
    # The refresh token the session held was revoked at sign-out.
    refused = httpx.post(
        f"{provider.issuer}/token",
        data={"grant_type": "refresh_token", "refresh_token": ververs, "resource": AUDIENCE},
        auth=(PORTAL_CLIENT, provider.portal_secret),
    )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    # The portal itself asked nothing of the internet (the provider's pages load a font).
    assert {urlsplit(url).hostname for url in offline_page.outside} <= {PROVIDER_FONTS}
    assert provider.issued().get(PORTAL_CLIENT, 0) >= 1


# --- one dossier from registration to release, every person signed in at the provider ---------

#: What the adviseur writes, by the field's label: the werkgever reads it after the release.
BEVINDINGEN = {
    "Werk": "Dreigende berichten via het algemene nummer van het stadhuis.",
    "Wonen": "De voordeur is vanaf de straat niet te zien.",
    "Informatie (digitaal)": "Het woonadres staat in een openbaar register.",
    "Verplaatsen": "Elke dag dezelfde route naar het werk.",
}
WERKGEVER_MAATREGEL = "Camera en verlichting bij de voordeur"
BESTUURDER_MAATREGEL = "Wisselende routes naar het werk"


@contextmanager
def browser_van(browser: Browser) -> Iterator[BrowserPage]:
    """A browser context of one person's own, that cannot reach anything but loopback."""
    context = browser.new_context()
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    opened = BrowserPage(context.new_page())

    def only_loopback(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOOPBACK_HOSTS:
            opened.requested.append(route.request.url)
            route.continue_()
        else:
            opened.outside.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", only_loopback)
    try:
        yield opened
    finally:
        context.close()


@contextmanager
def aangemeld(
    browser: Browser, oidc_portal: OidcPortal, account: str, start: str
) -> Iterator[BrowserPage]:
    """``account`` signed in at the provider's pages, in a browser of its own, on its start
    page (titled ``start``)."""
    with browser_van(browser) as opened:
        page = opened.page
        page.goto(f"{oidc_portal.url}/inloggen")
        no_axe_violations(opened, f"oidc-proces-{account}-inloggen")
        page.get_by_role("button", name="Inloggen").click()
        page.wait_for_url(f"{oidc_portal.provider.issuer}/interaction/**")
        page.locator("input[name=login]").fill(account)
        page.locator("input[name=password]").fill("niet-gebruikt")
        page.get_by_role("button", name="Sign-in").click()
        page.get_by_role("button", name="Continue").click()
        page.wait_for_url(f"{oidc_portal.url}/start")
        expect(page.locator("h1")).to_have_text(f"Start: {start}")
        no_axe_violations(opened, f"oidc-proces-{account}-start")
        yield opened
        assert {urlsplit(url).hostname for url in opened.outside} <= {PROVIDER_FONTS}


def api(
    oidc_portal: OidcPortal, account: str, method: str, service: str, path: str, **kw: Any
) -> httpx.Response:
    """A call to a service's API as ``account``, with the provider's token for that person."""
    headers = {"Authorization": f"Bearer {oidc_portal.provider.person_token(account)}"}
    return httpx.request(
        method, f"{oidc_portal.system.url(service)}{path}", headers=headers, timeout=10, **kw
    )


def registreer(page: Page) -> None:
    """The public registration form, filled in and sent (no sign-in)."""
    page.locator("#ingediend_door-bestuurder").check()
    page.locator("#bestuurder-naam").fill("Anna de Vries")
    page.locator("#bestuurder-functie").select_option(label="Burgemeester")
    for veld, waarde in {
        "bestuurder-email": BESTUURDER_EMAIL,
        "bestuurder-telefoon": "06 12345678",
        "bestuurder-adres-straat": "Dorpsstraat",
        "bestuurder-adres-huisnummer": "1",
        "bestuurder-adres-postcode": "1234 AB",
        "bestuurder-adres-woonplaats": "Voorbeeldstad",
        "werkgever-organisatie": "Gemeente Utrecht",
        "werkgever-organisatie_code": ORGANISATIE,
        "werkgever-contactpersoon": "Piet Contact",
        "werkgever-email": "werkgever.oidc@example.org",
        "werkgever-telefoon": "020 1234567",
        "reden": "Bedreigingen via sociale media.",
    }.items():
        page.locator(f"#{veld}").fill(waarde)
    page.locator("#toestemming").check()
    page.get_by_role("button", name="Aanmelding versturen").click()


def test_a_dossier_from_registration_to_release_every_person_signed_in_at_the_provider(
    oidc_portal: OidcPortal, browser: Browser
) -> None:
    system, provider, portal = oidc_portal.system, oidc_portal.provider, oidc_portal.url
    issued_before = provider.issued().get(PORTAL_CLIENT, 0)

    # 1. The public registration form, without signing in.
    with browser_van(browser) as bezoeker:
        page = bezoeker.page
        page.goto(f"{portal}/aanmelden")
        expect(page.locator("h1")).to_have_text("Veiligheidsadvies aanvragen")
        no_axe_violations(bezoeker, "oidc-proces-aanmelden")
        registreer(page)
        expect(page.locator("h1")).to_have_text("Aanmelding ontvangen")
        no_axe_violations(bezoeker, "oidc-proces-ontvangen")
        assert bezoeker.outside == [], "the page tried to leave loopback"

    def geregistreerd() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = api(
            oidc_portal, "sec-oidc", "GET", "intake", f"/aanvragen?organisatie_code={ORGANISATIE}"
        ).json()
        return found or None

    # The organisation's only dossier (the other test's registration is of another one).
    gevonden = wait_until(geregistreerd, timeout=30, what="the registration in intake")
    assert len(gevonden) == 1 and gevonden[0]["binnen_regeling"], gevonden
    aanvraag_id = str(gevonden[0]["aanvraag_id"])
    wait_until(
        lambda: (
            api(
                oidc_portal, "sec-oidc", "GET", "scheduling", f"/aanvragen/{aanvraag_id}/planning"
            ).status_code
            == 200
            or None
        ),
        timeout=30,
        what="scheduling to open the dossier's planning",
    )

    # 2. The secretariat records contact and plans both conversations with the adviseur.
    with aangemeld(browser, oidc_portal, "sec-oidc", "Secretariaat CCV") as secretariaat:
        page = secretariaat.page
        page.goto(f"{portal}/secretariaat/dossiers/{aanvraag_id}")
        expect(page.locator("h1")).to_contain_text(aanvraag_id)
        no_axe_violations(secretariaat, "oidc-proces-secretariaat-dossier")
        page.get_by_role("button", name="Contact vastleggen").click()
        melding(page, "Het contact is vastgelegd.")
        plan(page, "gesprek_werkgever", 0, "10:00", adviseur="adv-oidc")
        melding(page, "De afspraak is gepland.")
        plan(page, "gesprek_bestuurder", 1, "13:30", adviseur="adv-oidc")
        melding(page, "De afspraak is gepland.")
        expect(page.get_by_text("Beide gesprekken zijn gepland.")).to_be_visible()
        no_axe_violations(secretariaat, "oidc-proces-secretariaat-gepland")

        # The system runs on the real clock, and a conversation is held only once its start
        # has passed: the secretariat records that both took place earlier than planned
        # (``achteraf``), on the earliest working day the portal offers for it.
        for soort, tijd in (
            ("Gesprek met de werkgever", "10:00"),
            ("Gesprek met de bestuurder", "13:00"),
        ):
            afspraak = artikel(page, soort)
            afspraak.get_by_text("Al gevoerd op een ander moment? Achteraf vastleggen").click()
            formulier = afspraak.get_by_role("form", name=f"{soort} achteraf vastleggen")
            dagen = formulier.locator("select[name=datum] option")
            formulier.locator("select[name=datum]").select_option(index=dagen.count() - 1)
            formulier.locator("select[name=tijd]").select_option(tijd)
            no_axe_violations(secretariaat, "oidc-proces-secretariaat-achteraf")
            formulier.get_by_role("button", name="Achteraf vastleggen").click()
            melding(page, "Het gesprek is achteraf vastgelegd")

    planning = api(
        oidc_portal, "sec-oidc", "GET", "scheduling", f"/aanvragen/{aanvraag_id}/planning"
    ).json()
    afspraken = {a["soort"]: a for a in planning["afspraken"]}
    assert afspraken.keys() == {"gesprek_werkgever", "gesprek_bestuurder"}
    # Both with the adviseur typed in (shown as the pseudonym of the provider's ``sub``), and
    # both at a moment that has passed.
    assert {a["adviseur_id"] for a in afspraken.values()} == {
        pseudonym(system.data_dir, "adv-oidc")
    }
    assert all(
        datetime.fromisoformat(a["gepland_op"]) < datetime.now(UTC) for a in afspraken.values()
    )

    # 3. The adviseur records both as held (at home with the woningscan), writes the report,
    # saves it and submits it.
    with aangemeld(browser, oidc_portal, "adv-oidc", "Adviseur CCV") as adviseur:
        page = adviseur.page
        page.get_by_role("link", name="Mijn afspraken").click()
        expect(page.locator("h1")).to_have_text("Mijn afspraken")
        expect(artikel(page, "Gesprek met de werkgever")).to_contain_text(aanvraag_id)
        no_axe_violations(adviseur, "oidc-proces-adviseur-afspraken")
        artikel(page, "Gesprek met de werkgever").get_by_role(
            "button", name="Gesprek met de werkgever vastleggen als gevoerd"
        ).click()
        melding(page, "Het gesprek is vastgelegd als gevoerd.")
        thuis_artikel = artikel(page, "Gesprek met de bestuurder")
        thuis_artikel.get_by_label("De woningscan is tijdens dit gesprek uitgevoerd").check()
        thuis_artikel.get_by_role(
            "button", name="Gesprek met de bestuurder vastleggen als gevoerd"
        ).click()
        melding(page, "Het gesprek en de woningscan zijn vastgelegd.")
        no_axe_violations(adviseur, "oidc-proces-adviseur-gevoerd")

        page.goto(f"{portal}/adviseur/dossiers/{aanvraag_id}/rapport")
        expect(page.locator("#inhoud-titel")).to_have_text("Rapport opstellen")
        no_axe_violations(adviseur, "oidc-proces-adviseur-rapport")
        for domein, tekst in BEVINDINGEN.items():
            page.get_by_label(domein, exact=True).fill(tekst)
        maatregel(page, 0, "Wonen", WERKGEVER_MAATREGEL, "Hoog", "De werkgever", "Met kosten")
        page.get_by_role("button", name="Nog een maatregel toevoegen").click()
        maatregel(
            page, 1, "Verplaatsen", BESTUURDER_MAATREGEL, "Middel", "De bestuurder", "Kosteloos"
        )
        sla_op(page)
        melding(page, "Het rapport is opgeslagen als concept.")
        expect(page.locator("#rapport-versie")).to_have_text("Versie 1")
        no_axe_violations(adviseur, "oidc-proces-adviseur-concept")
        page.get_by_role("button", name="Versie 1 indienen bij de BVA").click()
        melding(page, "Het rapport is ter toetsing aangeboden aan de BVA.")
        expect(page.locator("#rapport-status")).to_have_text("Ter toetsing bij de BVA")
        no_axe_violations(adviseur, "oidc-proces-adviseur-ingediend")

    # 4. The BVA (another person than the adviseur) approves version 1.
    rapporten = api(
        oidc_portal, "bva-oidc", "GET", "assessment", f"/aanvragen/{aanvraag_id}/rapporten"
    ).json()
    rapport_id = rapporten[0]["rapport_id"]

    def afwachtend() -> bool | None:
        status = api(oidc_portal, "bva-oidc", "GET", "approval", f"/rapporten/{rapport_id}/status")
        return (status.status_code == 200 and status.json()["status"] == "ter_toetsing") or None

    wait_until(afwachtend, timeout=60, what="approval to await the submitted version")
    with aangemeld(browser, oidc_portal, "bva-oidc", "Beveiligingsautoriteit (BVA)") as bva:
        page = bva.page
        page.goto(f"{portal}/bva/rapporten/{rapport_id}")
        expect(page.locator("h1")).to_have_text("Rapport versie 1")
        expect(page.get_by_text(BEVINDINGEN["Wonen"])).to_be_visible()
        expect(page.locator("#vier-ogen")).to_have_count(0)
        no_axe_violations(bva, "oidc-proces-bva-rapport")
        page.get_by_role("button", name="Versie 1 goedkeuren").click()
        melding(page, "Het rapport is goedgekeurd.")
        no_axe_violations(bva, "oidc-proces-bva-goedgekeurd")

    def status_is(*statussen: str) -> Callable[[], bool | None]:
        def check() -> bool | None:
            dossier = api(oidc_portal, "sec-oidc", "GET", "intake", f"/aanvragen/{aanvraag_id}")
            return dossier.json().get("status") in statussen or None

        return check

    wait_until(status_is("goedgekeurd"), timeout=60, what="the approval in intake's dossier")

    # 5. The bestuurder (the registered address) reads the report, gives consent, and asks
    # for a toelichting (scheduling asks intake, with its own token, who is asking).
    with aangemeld(browser, oidc_portal, "bst-oidc", "Bestuurder") as bestuurder:
        page = bestuurder.page
        page.goto(f"{portal}/bestuurder/dossiers/{aanvraag_id}")
        expect(page.locator("#waar")).to_contain_text("Het rapport is goedgekeurd")
        no_axe_violations(bestuurder, "oidc-proces-bestuurder-dossier")
        page.get_by_role("link", name="Rapport lezen").click()
        expect(page.locator("h1")).to_have_text("Adviesrapport")
        expect(page.get_by_text(BEVINDINGEN["Werk"])).to_be_visible()
        no_axe_violations(bestuurder, "oidc-proces-bestuurder-rapport")
        page.goto(f"{portal}/bestuurder/dossiers/{aanvraag_id}/instemming")
        expect(page.locator("h1")).to_have_text("Delen met uw werkgever")
        no_axe_violations(bestuurder, "oidc-proces-bestuurder-instemming")
        page.get_by_label("Ja, ik stem in").check()
        page.get_by_role("button", name="Besluit vastleggen").click()
        melding(page, "U hebt ingestemd. Uw werkgever ontvangt het rapport.")
        no_axe_violations(bestuurder, "oidc-proces-bestuurder-ingestemd")

        def ontvangen() -> bool | None:
            planning = api(
                oidc_portal, "sec-oidc", "GET", "scheduling", f"/aanvragen/{aanvraag_id}/planning"
            ).json()
            return "bestuurder" in planning.get("rapport_ontvangen", []) or None

        wait_until(ontvangen, timeout=60, what="scheduling to know the bestuurder has the report")
        page.goto(f"{portal}/bestuurder/dossiers/{aanvraag_id}")
        page.get_by_role("button", name="Toelichting aanvragen").click()
        melding(page, "Uw verzoek om een toelichting is ontvangen.")
        no_axe_violations(bestuurder, "oidc-proces-bestuurder-toelichting")

    wait_until(status_is("vrijgegeven"), timeout=60, what="the release in intake's dossier")

    # 6. The werkgever (the registered organisation) sees the released report and its measures.
    with aangemeld(browser, oidc_portal, "wg-oidc", "Werkgever") as werkgever_pagina:
        page = werkgever_pagina.page

        def vrijgegeven() -> bool | None:
            page.goto(f"{portal}/werkgever/dossiers/{aanvraag_id}")
            return page.locator("#maatregelen-werkgever").count() > 0 or None

        wait_until(vrijgegeven, timeout=60, what="the released report on the werkgever's page")
        expect(page.locator("#status")).to_have_text("Rapport vrijgegeven")
        for tekst in BEVINDINGEN.values():
            expect(page.locator("#bevindingen")).to_contain_text(tekst)
        expect(page.locator("#maatregelen-werkgever")).to_contain_text(WERKGEVER_MAATREGEL)
        expect(page.locator("#maatregelen-bestuurder")).to_contain_text(BESTUURDER_MAATREGEL)
        no_axe_violations(werkgever_pagina, "oidc-proces-werkgever-vrijgegeven")

    # The dossier is released, as intake's projection says to a provider-signed caller.
    dossier = api(oidc_portal, "sec-oidc", "GET", "intake", f"/aanvragen/{aanvraag_id}").json()
    assert dossier["status"] == "vrijgegeven"
    # Every service that called another got its tokens from the provider (intake calls no
    # one); the portal got one for each of the five people who signed in.
    issued = provider.issued()
    callers = {"scheduling", "assessment", "approval", "notifications"}
    assert {c for c in callers if issued.get(f"weerbaar-{c}", 0) >= 1} == callers, issued
    assert "weerbaar-intake" not in issued
    assert issued.get(PORTAL_CLIENT, 0) >= issued_before + 5, issued
    # No HMAC secret was ever made.
    assert not (system.data_dir / "secrets" / "jwt.key").exists()
    assert not list(system.data_dir.rglob("jwt.key"))
