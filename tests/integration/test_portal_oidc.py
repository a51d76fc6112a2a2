"""The portal's sign-in adapter against a real OIDC provider (``oidc-provider`` on loopback).

The adapter (``OidcAanbieder``) is the portal's confidential client: authorization code with
PKCE, the access token checked as the services check it, refresh, revocation at sign-out, and
the sign-in's ID token as the hint that lets the provider end its session without asking. The
browser's part (the provider's sign-in and consent pages) is driven by httpx here
(``tests.oidc.provider.sign_in_at``); in Chromium by ``tests/browser/test_portal_oidc.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from services.portal.adapters.oidc import OidcAanbieder
from services.portal.application import AanbiederOnbereikbaar, Afmelding, Ingelogd
from services.portal.application.start import ROL_NAMEN
from shared.platform.auth import OidcTokenVerifier
from tests.oidc.provider import AUDIENCE, PORTAL_CLIENT, Provider, running_provider, sign_in_at

REDIRECT = "http://127.0.0.1:8000/inloggen/terug"
AFGEMELD = "http://127.0.0.1:8000/uitgelogd"

ACCOUNTS = {
    "sec-demo": {"roles": ["secretariaat"]},
    "bst-demo": {"roles": ["bestuurder"], "email": "bestuurder@example.org"},
    # Holds roles of other applications only: nobody in this process.
    "elders": {"roles": ["beheerder-elders"]},
    # Several roles: the portal picks the first it knows in its own order.
    "veel": {"roles": ["compliance", "adviseur"]},
}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with running_provider(
        tmp_path_factory.mktemp("portal-oidc"),
        ACCOUNTS,
        portal_redirect_uri=REDIRECT,
        portal_post_logout_uri=AFGEMELD,
    ) as running:
        yield running


def aanbieder(
    provider: Provider, *, secret: str | None = None, issuer: str | None = None
) -> OidcAanbieder:
    return OidcAanbieder(
        issuer or provider.issuer,
        client_id=PORTAL_CLIENT,
        client_secret=secret or provider.portal_secret,
        redirect_uri=REDIRECT,
        post_logout_redirect_uri=AFGEMELD,
        audience=AUDIENCE,
        verifier=OidcTokenVerifier(provider.jwks_url, issuer=provider.issuer, audience=AUDIENCE),
        rollen=tuple(ROL_NAMEN),
    )


def sign_in(
    provider: Provider, door: OidcAanbieder, account: str, browser: httpx.Client | None = None
) -> Ingelogd | None:
    """Signed in at the provider (in ``browser``, whose provider session then lasts)."""
    gaan = door.begin()
    query = sign_in_at(provider.issuer, gaan.url, account, REDIRECT, browser)
    assert query["state"] == [gaan.state]
    return door.rond_af(query["code"][0], gaan.verifier)


def test_the_authorization_request_carries_a_pkce_challenge_and_a_fresh_state(
    provider: Provider,
) -> None:
    door = aanbieder(provider)
    eerste, tweede = door.begin(), door.begin()
    query = parse_qs(urlsplit(eerste.url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["client_id"] == [PORTAL_CLIENT] and query["redirect_uri"] == [REDIRECT]
    assert query["resource"] == [AUDIENCE]
    assert "offline_access" in query["scope"][0].split()
    assert eerste.verifier not in eerste.url, "the verifier never leaves the portal"
    assert eerste.state != tweede.state and eerste.verifier != tweede.verifier
    assert door.herkomsten == (provider.issuer,), "the provider serves its pages at its issuer"


def test_a_person_signs_in_with_the_providers_token_for_the_services(
    provider: Provider,
) -> None:
    ingelogd = sign_in(provider, aanbieder(provider), "sec-demo")
    assert ingelogd is not None
    assert (ingelogd.sub, ingelogd.rol) == ("sec-demo", "secretariaat")
    assert ingelogd.ververs_token, "offline_access gave a refresh token"
    assert ingelogd.token_verloopt is not None
    # The token is one the services accept: their verifier, their audience.
    principal = OidcTokenVerifier(provider.jwks_url, provider.issuer, AUDIENCE).verify(
        ingelogd.token
    )
    assert principal.sub == "sec-demo"


def test_a_person_with_several_roles_gets_the_first_in_the_portals_order(
    provider: Provider,
) -> None:
    ingelogd = sign_in(provider, aanbieder(provider), "veel")
    assert ingelogd is not None and ingelogd.rol == "adviseur"


def test_an_account_with_no_role_of_the_process_is_not_signed_in(provider: Provider) -> None:
    assert sign_in(provider, aanbieder(provider), "elders") is None


def test_a_code_with_another_verifier_or_used_twice_signs_nobody_in(
    provider: Provider,
) -> None:
    door = aanbieder(provider)
    gaan = door.begin()
    code = sign_in_at(provider.issuer, gaan.url, "sec-demo", REDIRECT)["code"][0]
    assert door.rond_af(code, "x" * 64) is None, "PKCE: another verifier"
    gaan = door.begin()
    code = sign_in_at(provider.issuer, gaan.url, "sec-demo", REDIRECT)["code"][0]
    assert door.rond_af(code, gaan.verifier) is not None
    assert door.rond_af(code, gaan.verifier) is None, "a code is used once"


def test_the_refresh_token_gives_a_new_access_token_until_sign_out_revokes_it(
    provider: Provider,
) -> None:
    door = aanbieder(provider)
    ingelogd = sign_in(provider, door, "bst-demo")
    assert ingelogd is not None and ingelogd.ververs_token is not None
    vernieuwd = door.ververs(ingelogd.ververs_token)
    assert vernieuwd is not None
    assert (vernieuwd.sub, vernieuwd.rol) == ("bst-demo", "bestuurder")
    assert vernieuwd.token != ingelogd.token
    assert vernieuwd.ververs_token is not None
    afmelding = door.uitloggen(vernieuwd.ververs_token, vernieuwd.id_token)
    uit = urlsplit(afmelding.url)
    assert f"{uit.scheme}://{uit.netloc}" == provider.issuer
    assert parse_qs(uit.query) == {
        "client_id": [PORTAL_CLIENT],
        "post_logout_redirect_uri": [AFGEMELD],
        "state": [afmelding.state],
        "id_token_hint": [vernieuwd.id_token],
    }
    assert door.ververs(vernieuwd.ververs_token) is None, "revoked at sign-out"
    # The provider's sign-out page answers the URL without a hint too.
    assert httpx.get(door.uitloggen(None, None).url).status_code == 200


def auto_form(page: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the sign-out form the provider's page holds."""
    action = re.search(r'<form id="op.logoutForm" method="post" action="([^"]+)"', page)
    assert action, "no sign-out form on the provider's page"
    velden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))
    return action.group(1), velden


def test_with_the_id_token_as_hint_the_provider_signs_out_without_asking(
    provider: Provider,
) -> None:
    door = aanbieder(provider)
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        ingelogd = sign_in(provider, door, "sec-demo", browser)
        assert ingelogd is not None and ingelogd.id_token, "the sign-in gave an ID token"
        afmelding = door.uitloggen(ingelogd.ververs_token, ingelogd.id_token)
        assert afmelding.state is not None
        page = browser.get(afmelding.url)
        # The provider took the hint (an invalid one is a 400) and asks nothing: its page
        # only posts its own "yes", which a browser's script does at once.
        assert page.status_code == 200, page.text
        assert "Do you want to sign-out" not in page.text
        action, velden = auto_form(page.text)
        assert velden.get("logout") == "yes"
        terug = browser.post(action, data=velden)
        assert terug.status_code == 303
        bestemming = urlsplit(terug.headers["location"])
        assert f"{bestemming.scheme}://{bestemming.netloc}{bestemming.path}" == AFGEMELD
        assert parse_qs(bestemming.query) == {"state": [afmelding.state]}
        # The provider's session has ended: a new sign-in starts at its sign-in page.
        opnieuw = browser.get(door.begin().url)
        interactie = browser.get(urljoin(provider.issuer, opnieuw.headers["location"]))
        assert 'name="login"' in interactie.text


def test_without_an_id_token_the_provider_asks_the_person_to_confirm(
    provider: Provider,
) -> None:
    door = aanbieder(provider)
    with httpx.Client(follow_redirects=False, timeout=10) as browser:
        ingelogd = sign_in(provider, door, "sec-demo", browser)
        assert ingelogd is not None
        # A session from before the portal kept the ID token: the sign-out as it was.
        afmelding = door.uitloggen(ingelogd.ververs_token, None)
        vraag = parse_qs(urlsplit(afmelding.url).query, keep_blank_values=True)
        assert "id_token_hint" not in vraag
        page = browser.get(afmelding.url)
        assert page.status_code == 200
        assert "Do you want to sign-out" in page.text
        assert "logout" not in auto_form(page.text)[1], "the person's answer, not the page's"


def test_a_wrong_client_secret_signs_nobody_in(provider: Provider) -> None:
    door = aanbieder(provider, secret="not-the-secret")
    assert sign_in(provider, door, "sec-demo") is None


def test_a_provider_that_does_not_answer_is_unreachable_not_an_error(tmp_path: Path) -> None:
    from tools.embedded import free_port

    nergens = f"http://127.0.0.1:{free_port()}"
    door = OidcAanbieder(
        nergens,
        client_id=PORTAL_CLIENT,
        client_secret="s",
        redirect_uri=REDIRECT,
        post_logout_redirect_uri=AFGEMELD,
        audience=AUDIENCE,
        verifier=OidcTokenVerifier(f"{nergens}/jwks", issuer=nergens, audience=AUDIENCE),
        rollen=tuple(ROL_NAMEN),
        timeout_s=1,
    )
    with pytest.raises(AanbiederOnbereikbaar):
        door.begin()
    with pytest.raises(AanbiederOnbereikbaar):
        door.ververs("r")
    # Signing out still ends the portal's session: back to the portal's own page.
    assert door.uitloggen("r", "i") == Afmelding(AFGEMELD, None)


def test_a_discovery_document_of_another_issuer_is_never_used(provider: Provider) -> None:
    # The same provider reached under another name: its document names its own issuer.
    door = aanbieder(provider, issuer=provider.issuer.replace("127.0.0.1", "localhost"))
    with pytest.raises(AanbiederOnbereikbaar):
        door.begin()
