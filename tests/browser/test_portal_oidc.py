"""Signing in to the portal at a real OIDC provider, in Chromium.

The whole system runs in OIDC mode against ``oidc-provider`` on loopback: the five services
verify the provider's tokens and get their own from it (client credentials); the portal is the
provider's confidential client (authorization code with PKCE). A secretariat member signs in at
the provider's pages, works in the werkvoorraad with the provider's token (the services
answer it), and signs out: the portal's session ends, the provider's too, and the refresh token
no longer works. Every portal page visited has no axe-core violation (the provider's own
pages are the provider's, not the portal's).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import expect

from services.portal.api.session import COOKIE_NAME, SessieSleutel
from tests import servers
from tests.browser.conftest import BrowserPage, no_axe_violations
from tests.oidc.provider import AUDIENCE, PORTAL_CLIENT, Provider, running_provider
from tests.support import (
    aanmelding,
    mail_catcher,
    reset_streams,
    settings_for,
    system_on,
    wait_until,
)
from tools.embedded import free_port
from tools.system import PORTAL, System

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

ACCOUNTS = {"sec-oidc": {"roles": ["secretariaat"]}}
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


def refresh_token_of(opened: BrowserPage, system: System) -> str:
    """The refresh token in the browser's session cookie (opened with the portal's key)."""
    cookies = {c["name"]: c["value"] for c in opened.page.context.cookies()}
    key = (system.data_dir / "secrets" / "portal.key").read_bytes()
    sessie = SessieSleutel(key, 3600).open(cookies[COOKIE_NAME])
    assert sessie is not None and sessie.ververs, "the session holds a refresh token"
    return sessie.ververs


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
    ververs = refresh_token_of(offline_page, system)

    page.get_by_role("button", name="Uitloggen").click()
    # The provider asks to confirm its own sign-out, then sends the browser back.
    page.wait_for_url(f"{provider.issuer}/session/end**")
    page.get_by_role("button", name="Yes, sign me out").click()
    page.wait_for_url(f"{oidc_portal.url}/uitgelogd")
    expect(page.get_by_role("heading", level=1)).to_have_text("U bent uitgelogd")
    no_axe_violations(offline_page, "oidc-uitgelogd")

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
