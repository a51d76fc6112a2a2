"""The portal's OIDC sign-in without servers: the routes and the session around a provider that
answers as told (the adapter against a real provider: ``tests/integration/test_portal_oidc.py``).

What is held here: the state sent out must come back (once), the code is exchanged with the
session's PKCE verifier, nobody is signed in by anything the browser says, a token that expires
is renewed before the page is made (and a refused renewal signs the person out), signing out
ends the portal's session first, revokes the refresh token and ends the provider's session with
the sign-in's ID token as the hint (without one, as before), the state the provider sends back
is checked on ``/uitgelogd``, and the CSP lets the forms go on to the provider's origin only.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from services.portal.adapters import EmbeddedInloggen
from services.portal.adapters import oidc as oidc_adapter
from services.portal.adapters.oidc import OidcAanbieder, einde_sessie_url
from services.portal.api import create_portal_app
from services.portal.api.pages import VERNIEUW_MARGE_S, Verversingen, beveiligingskoppen
from services.portal.api.session import COOKIE_NAME, MAX_COOKIE_CHARS, SessieSleutel
from services.portal.application import (
    AanbiederOnbereikbaar,
    Afmelding,
    Doorverwijzing,
    Gelukt,
    Ingelogd,
    Uitkomst,
)
from services.portal.bootstrap import bootstrap
from shared.platform.settings import PortalSettings

KEY = secrets.token_bytes(32)
PROVIDER = "https://idp.example.test"
UITGELOGD = "http://portal.test/uitgelogd"
#: The ID token the provider gave with the sign-in (its content is the provider's business).
ID_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWMtMSJ9.c2lnbmF0dXVy"
START = datetime.now(UTC)


class FakeApis:
    def als(self, token: str | None, herkomst: str | None = None) -> FakeApis:
        return self

    def dossiers(self, filters: Mapping[str, str | int]) -> Uitkomst:
        return Gelukt({"items": [], "volgende": None})


class Klok:
    def __init__(self) -> None:
        self.nu = START

    def __call__(self) -> datetime:
        return self.nu


class FakeAanbieder:
    """A provider that answers as told, and remembers what it was asked."""

    def __init__(self, klok: Klok) -> None:
        self.klok = klok
        self.herkomsten: tuple[str, ...] = (PROVIDER,)
        self.begonnen: list[Doorverwijzing] = []
        self.codes: list[tuple[str, str]] = []
        self.ververst: list[str] = []
        self.ingetrokken: list[str | None] = []
        self.hints: list[str | None] = []
        self.antwoord: Ingelogd | None = self.persoon("t1", "r1", id_token=ID_TOKEN)
        self.ververs_antwoord: Ingelogd | Exception | None = self.persoon("t2", "r2")
        self.onbereikbaar = False
        self.uitlog_fout: Exception | None = None

    def persoon(
        self, token: str, ververs: str | None, sub: str = "sec-1", id_token: str | None = None
    ) -> Ingelogd:
        verloopt = (self.klok.nu + timedelta(minutes=10)).timestamp()
        return Ingelogd(sub, "secretariaat", token, verloopt, ververs, id_token)

    def begin(self) -> Doorverwijzing:
        if self.onbereikbaar:
            raise AanbiederOnbereikbaar("discovery")
        state, verifier = secrets.token_urlsafe(16), secrets.token_urlsafe(48)
        gaan = Doorverwijzing(f"{PROVIDER}/auth?state={state}", state, verifier)
        self.begonnen.append(gaan)
        return gaan

    def rond_af(self, code: str, verifier: str) -> Ingelogd | None:
        self.codes.append((code, verifier))
        return self.antwoord

    def ververs(self, ververs_token: str) -> Ingelogd | None:
        self.ververst.append(ververs_token)
        if isinstance(self.ververs_antwoord, Exception):
            raise self.ververs_antwoord
        return self.ververs_antwoord

    def uitloggen(self, ververs_token: str | None, id_token: str | None) -> Afmelding:
        self.ingetrokken.append(ververs_token)
        self.hints.append(id_token)
        if self.uitlog_fout is not None:
            raise self.uitlog_fout
        if self.onbereikbaar:
            return Afmelding(UITGELOGD, None)
        state = secrets.token_urlsafe(16)
        url = einde_sessie_url(
            f"{PROVIDER}/session/end",
            client_id="weerbaar-portal",
            post_logout_redirect_uri=UITGELOGD,
            state=state,
            id_token=id_token,
        )
        return Afmelding(url, state)


@pytest.fixture
def klok() -> Klok:
    return Klok()


@pytest.fixture
def aanbieder(klok: Klok) -> FakeAanbieder:
    return FakeAanbieder(klok)


@pytest.fixture
def portal(aanbieder: FakeAanbieder, klok: Klok) -> TestClient:
    app = bootstrap(
        PortalSettings(auth_mode="oidc"),
        apis=FakeApis(),  # type: ignore[arg-type]
        aanbieder=aanbieder,
        session_key=KEY,
        klok=klok,
    )
    return TestClient(app, base_url="http://portal.test")


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sessie(portal: TestClient) -> Any:
    return SessieSleutel(KEY, 3600).open(portal.cookies.get(COOKIE_NAME), now=START.timestamp())


def begin(portal: TestClient, aanbieder: FakeAanbieder) -> Doorverwijzing:
    csrf = csrf_of(portal.get("/inloggen").text)
    response = portal.post("/inloggen", data={"csrf": csrf}, follow_redirects=False)
    assert response.status_code == 303
    gaan = aanbieder.begonnen[-1]
    assert response.headers["location"] == gaan.url
    return gaan


def sign_in(portal: TestClient, aanbieder: FakeAanbieder) -> None:
    gaan = begin(portal, aanbieder)
    response = portal.get(
        "/inloggen/terug", params={"code": "c0de", "state": gaan.state}, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/start"


# --- signing in ---------------------------------------------------------------------------------


def test_in_oidc_mode_the_sign_in_page_sends_to_the_provider_and_offers_no_demo_people(
    portal: TestClient, aanbieder: FakeAanbieder
) -> None:
    page = portal.get("/inloggen")
    assert page.status_code == 200
    assert "ontwikkelomgeving" not in page.text and "sec-demo" not in page.text
    assert 'href="/inloggen">Inloggen<' in portal.get("/").text
    # A development sign-in's form, posted here, signs nobody in: it starts the provider's.
    csrf = csrf_of(page.text)
    response = portal.post(
        "/inloggen", data={"csrf": csrf, "persoon": "sec-demo"}, follow_redirects=False
    )
    assert response.headers["location"].startswith(PROVIDER)
    assert sessie(portal).token is None
    assert portal.get("/start", follow_redirects=False).headers["location"] == "/inloggen"


def test_without_a_way_to_sign_in_there_is_no_sign_in_page() -> None:
    app = create_portal_app(
        FakeApis(),  # type: ignore[arg-type]
        None,
        SessieSleutel(KEY, 60),
        secure_cookie=False,
        aanbieder=None,
    )
    portal = TestClient(app)
    assert portal.get("/inloggen").status_code == 404
    assert portal.get("/inloggen/terug", params={"code": "x", "state": "y"}).status_code == 404
    assert "Inloggen" not in portal.get("/").text


def test_the_code_is_exchanged_with_the_sessions_verifier_and_the_person_is_signed_in(
    portal: TestClient, aanbieder: FakeAanbieder
) -> None:
    gaan = begin(portal, aanbieder)
    csrf_voor = sessie(portal).csrf
    response = portal.get(
        "/inloggen/terug", params={"code": "c0de", "state": gaan.state}, follow_redirects=False
    )
    assert response.headers["location"] == "/start"
    assert aanbieder.codes == [("c0de", gaan.verifier)]
    na = sessie(portal)
    assert (na.sub, na.rol, na.token, na.ververs) == ("sec-1", "secretariaat", "t1", "r1")
    assert na.oidc_state is None and na.oidc_verifier is None
    assert na.csrf != csrf_voor, "a sign-in starts a new session"
    assert "Secretariaat" in portal.get("/start").text


@pytest.mark.parametrize(
    "params",
    [
        {"code": "c0de", "state": "not-the-state"},
        {"code": "c0de"},
        {"state": "<from the session>"},
        {"code": "c" * 5000, "state": "<from the session>"},
        {"code": "c0de", "state": "s" * 5000},
    ],
    ids=["another-state", "no-state", "no-code", "huge-code", "huge-state"],
)
def test_a_return_that_does_not_match_the_session_signs_nobody_in(
    portal: TestClient, aanbieder: FakeAanbieder, params: dict[str, str]
) -> None:
    gaan = begin(portal, aanbieder)
    query = {k: (gaan.state if v == "<from the session>" else v) for k, v in params.items()}
    response = portal.get("/inloggen/terug", params=query, follow_redirects=False)
    assert response.status_code == 400
    assert "Inloggen niet gelukt" in response.text
    assert aanbieder.codes == [], "the provider was not asked"
    assert sessie(portal).token is None


def test_a_return_without_a_sign_in_under_way_or_used_twice_signs_nobody_in(
    portal: TestClient, aanbieder: FakeAanbieder
) -> None:
    # Someone else's link (login CSRF): this browser sent nobody to the provider.
    answer = portal.get("/inloggen/terug", params={"code": "c", "state": "s"})
    assert answer.status_code == 400 and sessie(portal).token is None
    gaan = begin(portal, aanbieder)
    query = {"code": "c0de", "state": gaan.state}
    assert portal.get("/inloggen/terug", params=query, follow_redirects=False).status_code == 303
    portal.cookies.clear()
    assert portal.get("/inloggen/terug", params=query).status_code == 400
    assert len(aanbieder.codes) == 1


def test_a_refusal_by_the_provider_or_a_token_without_a_role_is_a_clear_refusal(
    portal: TestClient, aanbieder: FakeAanbieder
) -> None:
    gaan = begin(portal, aanbieder)
    answer = portal.get("/inloggen/terug", params={"error": "access_denied", "state": gaan.state})
    assert answer.status_code == 400 and "Inloggen afgebroken" in answer.text
    aanbieder.antwoord = None
    gaan = begin(portal, aanbieder)
    answer = portal.get("/inloggen/terug", params={"code": "c", "state": gaan.state})
    assert answer.status_code == 403 and "Geen toegang" in answer.text
    assert sessie(portal).token is None


def test_a_provider_that_does_not_answer_is_a_clear_page_not_an_error(
    portal: TestClient, aanbieder: FakeAanbieder
) -> None:
    aanbieder.onbereikbaar = True
    csrf = csrf_of(portal.get("/inloggen").text)
    answer = portal.post("/inloggen", data={"csrf": csrf})
    assert answer.status_code == 503 and "Inloggen kan nu niet" in answer.text


def test_the_sign_in_form_needs_its_csrf_token(
    portal: TestClient, aanbieder: FakeAanbieder
) -> None:
    portal.get("/inloggen")
    assert portal.post("/inloggen", data={"csrf": "forged"}).status_code == 403
    assert aanbieder.begonnen == []


# --- renewing the token -------------------------------------------------------------------------


def test_a_token_about_to_expire_is_renewed_before_the_page_is_made(
    portal: TestClient, aanbieder: FakeAanbieder, klok: Klok
) -> None:
    sign_in(portal, aanbieder)
    portal.get("/start")
    assert aanbieder.ververst == [], "a fresh token is not renewed"
    klok.nu += timedelta(minutes=10) - timedelta(seconds=VERNIEUW_MARGE_S - 1)
    assert portal.get("/start").status_code == 200
    assert aanbieder.ververst == ["r1"]
    na = SessieSleutel(KEY, 3600).open(portal.cookies.get(COOKIE_NAME), now=klok.nu.timestamp())
    # The provider rotated the refresh token: the session keeps the new one; it sent no new
    # ID token, so the sign-in's stays for the sign-out.
    assert (na.token, na.ververs, na.sub, na.id_token) == ("t2", "r2", "sec-1", ID_TOKEN)
    nieuw = aanbieder.ververs_antwoord
    assert isinstance(nieuw, Ingelogd) and na.token_verloopt == nieuw.token_verloopt


@pytest.mark.parametrize(
    "answer", ["refused", "another-person", "no-refresh-token"], ids=lambda a: a
)
def test_a_renewal_the_provider_refuses_signs_the_person_out(
    portal: TestClient, aanbieder: FakeAanbieder, klok: Klok, answer: str
) -> None:
    if answer == "no-refresh-token":
        aanbieder.antwoord = aanbieder.persoon("t1", None)
    sign_in(portal, aanbieder)
    if answer == "refused":
        aanbieder.ververs_antwoord = None
    elif answer == "another-person":
        aanbieder.ververs_antwoord = aanbieder.persoon("t2", "r2", sub="someone-else")
    klok.nu += timedelta(minutes=11)
    response = portal.get("/start", follow_redirects=False)
    assert response.headers["location"] == "/inloggen"
    assert (
        SessieSleutel(KEY, 3600)
        .open(portal.cookies.get(COOKIE_NAME), now=klok.nu.timestamp())
        .token
        is None
    )


def test_while_the_provider_is_down_the_session_stays_as_it_was(
    portal: TestClient, aanbieder: FakeAanbieder, klok: Klok
) -> None:
    sign_in(portal, aanbieder)
    cookie = portal.cookies.get(COOKIE_NAME)
    aanbieder.ververs_antwoord = AanbiederOnbereikbaar("refresh")
    klok.nu += timedelta(minutes=10) - timedelta(seconds=5)
    assert portal.get("/start").status_code == 200
    assert aanbieder.ververst == ["r1"]
    assert portal.cookies.get(COOKIE_NAME) == cookie


# --- signing out --------------------------------------------------------------------------------


def uitloggen(portal: TestClient) -> dict[str, list[str]]:
    """Sign out from the start page: the query of the provider's sign-out it sends to."""
    csrf = csrf_of(portal.get("/start").text)
    response = portal.post("/uitloggen", data={"csrf": csrf}, follow_redirects=False)
    assert response.status_code == 303
    bestemming = urlsplit(response.headers["location"])
    assert f"{bestemming.scheme}://{bestemming.netloc}{bestemming.path}" == (
        f"{PROVIDER}/session/end"
    )
    return parse_qs(bestemming.query, keep_blank_values=True)


def test_signing_out_revokes_the_refresh_token_and_ends_the_providers_session(
    portal: TestClient, aanbieder: FakeAanbieder
) -> None:
    sign_in(portal, aanbieder)
    assert sessie(portal).id_token == ID_TOKEN, "the session keeps the sign-in's ID token"
    query = uitloggen(portal)
    assert query["client_id"] == ["weerbaar-portal"]
    assert aanbieder.ingetrokken == ["r1"]
    assert sessie(portal).token is None and sessie(portal).id_token is None
    assert portal.get("/start", follow_redirects=False).headers["location"] == "/inloggen"


def test_the_sign_out_url_carries_the_sessions_id_token_as_hint(
    portal: TestClient, aanbieder: FakeAanbieder
) -> None:
    sign_in(portal, aanbieder)
    query = uitloggen(portal)
    assert aanbieder.hints == [ID_TOKEN]
    assert query["id_token_hint"] == [ID_TOKEN]
    assert query["post_logout_redirect_uri"] == [UITGELOGD]
    assert query["client_id"] == ["weerbaar-portal"]
    # The state the provider must send back is the new, signed-out session's.
    assert query["state"] == [sessie(portal).uitlog_state]


def test_a_session_without_an_id_token_signs_out_as_before_without_a_hint(
    portal: TestClient, aanbieder: FakeAanbieder
) -> None:
    # A session from before the portal kept the ID token, or a provider that gave none.
    aanbieder.antwoord = aanbieder.persoon("t1", "r1", id_token=None)
    sign_in(portal, aanbieder)
    query = uitloggen(portal)
    assert "id_token_hint" not in query
    assert query["client_id"] == ["weerbaar-portal"]
    assert query["post_logout_redirect_uri"] == [UITGELOGD]
    assert aanbieder.ingetrokken == ["r1"]
    assert sessie(portal).token is None


def test_the_end_session_url_names_the_hint_only_when_there_is_one() -> None:
    met = urlsplit(
        einde_sessie_url(
            f"{PROVIDER}/logout?tenant=t1",
            client_id="weerbaar-portal",
            post_logout_redirect_uri=UITGELOGD,
            state="s1",
            id_token=ID_TOKEN,
        )
    )
    assert (met.path, parse_qs(met.query)) == (
        "/logout",
        {
            "tenant": ["t1"],
            "client_id": ["weerbaar-portal"],
            "post_logout_redirect_uri": [UITGELOGD],
            "state": ["s1"],
            "id_token_hint": [ID_TOKEN],
        },
    )
    zonder = einde_sessie_url(
        f"{PROVIDER}/logout",
        client_id="weerbaar-portal",
        post_logout_redirect_uri=UITGELOGD,
        state="s1",
        id_token=None,
    )
    assert parse_qs(urlsplit(zonder).query, keep_blank_values=True) == {
        "client_id": ["weerbaar-portal"],
        "post_logout_redirect_uri": [UITGELOGD],
        "state": ["s1"],
    }


def test_the_provider_sending_the_state_back_confirms_its_sign_out_once(
    portal: TestClient, aanbieder: FakeAanbieder
) -> None:
    sign_in(portal, aanbieder)
    state = uitloggen(portal)["state"][0]
    terug = portal.get("/uitgelogd", params={"state": state})
    assert "U bent uitgelogd bij het portaal en bij de inlogdienst" in terug.text
    assert sessie(portal).uitlog_state is None, "the state is used once"
    nogmaals = portal.get("/uitgelogd", params={"state": state})
    assert "U bent uitgelogd bij het portaal." in nogmaals.text
    assert "bij de inlogdienst" not in nogmaals.text


@pytest.mark.parametrize("params", [{"state": "not-the-state"}, {}, {"state": "s" * 5000}])
def test_a_return_to_the_sign_out_page_without_the_state_claims_only_the_portal(
    portal: TestClient, aanbieder: FakeAanbieder, params: dict[str, str]
) -> None:
    sign_in(portal, aanbieder)
    uitloggen(portal)
    page = portal.get("/uitgelogd", params=params)
    assert page.status_code == 200
    assert "U bent uitgelogd bij het portaal." in page.text
    assert "bij de inlogdienst" not in page.text


def test_the_sign_out_page_says_nothing_untrue_to_someone_still_signed_in(
    portal: TestClient, aanbieder: FakeAanbieder
) -> None:
    sign_in(portal, aanbieder)
    response = portal.get("/uitgelogd", follow_redirects=False)
    assert response.headers["location"] == "/start"
    assert sessie(portal).token == "t1"


def test_a_provider_that_cannot_be_reached_still_ends_the_portals_session(
    portal: TestClient, aanbieder: FakeAanbieder
) -> None:
    sign_in(portal, aanbieder)
    aanbieder.onbereikbaar = True
    csrf = csrf_of(portal.get("/start").text)
    response = portal.post("/uitloggen", data={"csrf": csrf}, follow_redirects=False)
    assert response.headers["location"] == UITGELOGD
    assert sessie(portal).token is None and sessie(portal).uitlog_state is None
    assert "bij de inlogdienst" not in portal.get("/uitgelogd").text


def test_a_sign_out_that_fails_at_the_provider_has_ended_the_portals_session_first(
    portal: TestClient, aanbieder: FakeAanbieder
) -> None:
    sign_in(portal, aanbieder)
    aanbieder.uitlog_fout = RuntimeError("the adapter broke")
    csrf = csrf_of(portal.get("/start").text)
    response = portal.post("/uitloggen", data={"csrf": csrf}, follow_redirects=False)
    assert response.status_code == 500
    assert sessie(portal).token is None and sessie(portal).ververs is None
    assert portal.get("/start", follow_redirects=False).headers["location"] == "/inloggen"


def test_an_id_token_too_large_for_the_cookie_is_dropped_not_the_session(
    portal: TestClient, aanbieder: FakeAanbieder
) -> None:
    aanbieder.antwoord = aanbieder.persoon("t1", "r1", id_token="i" * 4000)
    sign_in(portal, aanbieder)
    na = sessie(portal)
    assert (na.token, na.ververs, na.id_token) == ("t1", "r1", None)
    assert "id_token_hint" not in uitloggen(portal)


def test_the_csp_lets_forms_go_on_to_the_providers_origin_only_in_oidc_mode(
    portal: TestClient, klok: Klok
) -> None:
    csp = portal.get("/inloggen").headers["Content-Security-Policy"]
    assert f"form-action 'self' {PROVIDER};" in csp
    assert "unsafe-inline" not in csp
    assert "form-action 'self';" in beveiligingskoppen(())["Content-Security-Policy"]
    embedded = bootstrap(
        PortalSettings(),
        apis=FakeApis(),  # type: ignore[arg-type]
        inloggen=EmbeddedInloggen(KEY, "weerbaar-embedded", "weerbaar"),
        session_key=KEY,
    )
    assert "form-action 'self';" in TestClient(embedded).get("/").headers["Content-Security-Policy"]


@pytest.mark.parametrize(
    "herkomst", ["https://idp.test; script-src *", "javascript:alert(1)", "https://idp.test/pad"]
)
def test_a_provider_origin_that_is_not_an_origin_never_reaches_the_csp(herkomst: str) -> None:
    with pytest.raises(ValueError, match="not an origin"):
        beveiligingskoppen((PROVIDER, herkomst))


def test_the_csp_follows_the_providers_origins_once_they_are_known(
    portal: TestClient, aanbieder: FakeAanbieder
) -> None:
    """A provider may serve its sign-in or sign-out pages on another origin than its issuer's:
    the form posts that send the browser there must be allowed to."""
    assert f"form-action 'self' {PROVIDER};" in portal.get("/").headers["Content-Security-Policy"]
    aanbieder.herkomsten = (PROVIDER, "https://login.example.test", "https://uit.example.test")
    csp = portal.get("/").headers["Content-Security-Policy"]
    assert (
        f"form-action 'self' {PROVIDER} https://login.example.test https://uit.example.test;" in csp
    )


#: A provider's discovery document whose browser pages are on other origins than its issuer's.
ELDERS = {
    "issuer": PROVIDER,
    "authorization_endpoint": "https://login.example.test/authorize",
    "token_endpoint": f"{PROVIDER}/token",
    "end_session_endpoint": "https://uit.example.test:8443/logout?x=1",
}


def oidc_aanbieder(monkeypatch: pytest.MonkeyPatch, document: object) -> OidcAanbieder:
    """The adapter, its discovery document answered by ``document`` (no network)."""

    def get(url: str, **_: Any) -> httpx.Response:
        assert url == f"{PROVIDER}/.well-known/openid-configuration"
        return httpx.Response(200, json=document, request=httpx.Request("GET", url))

    monkeypatch.setattr(oidc_adapter.httpx, "get", get)
    return OidcAanbieder(
        PROVIDER,
        client_id="weerbaar-portal",
        client_secret="geheim",
        redirect_uri="http://portal.test/inloggen/terug",
        post_logout_redirect_uri=UITGELOGD,
        audience="weerbaar",
        verifier=None,  # type: ignore[arg-type]
        rollen=("secretariaat",),
    )


def test_the_adapter_names_the_origins_of_the_pages_it_sends_the_browser_to(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    door = oidc_aanbieder(monkeypatch, ELDERS)
    assert door.herkomsten == (PROVIDER,), "before discovery: the issuer's only"
    assert door.begin().url.startswith("https://login.example.test/authorize?")
    assert door.herkomsten == (
        PROVIDER,
        "https://login.example.test",
        "https://uit.example.test:8443",
    )
    beveiligingskoppen(door.herkomsten)  # every one stands in a policy


@pytest.mark.parametrize(
    "document",
    [
        {**ELDERS, "issuer": 5},
        {**ELDERS, "issuer": None},
        {**ELDERS, "authorization_endpoint": "javascript:alert(1)"},
        {**ELDERS, "authorization_endpoint": ["https://login.example.test/authorize"]},
        {**ELDERS, "end_session_endpoint": "https://uit.example.test; script-src *"},
        {**ELDERS, "end_session_endpoint": "https://iemand:geheim@uit.example.test/logout"},
        {**ELDERS, "end_session_endpoint": 7},
        {**ELDERS, "token_endpoint": None},
        [ELDERS],
        "issuer",
    ],
    ids=lambda d: repr(d)[:60],
)
def test_a_discovery_document_that_does_not_fit_signs_nobody_in_and_raises_nothing_else(
    monkeypatch: pytest.MonkeyPatch, document: object
) -> None:
    door = oidc_aanbieder(monkeypatch, document)
    with pytest.raises(AanbiederOnbereikbaar):
        door.begin()
    assert door.herkomsten == (PROVIDER,)


def test_requests_renewing_the_same_session_together_ask_the_provider_once(
    aanbieder: FakeAanbieder,
) -> None:
    # Two tabs with the same expiring session: one renewal, its answer shared (a provider that
    # rotates refresh tokens revokes the grant when one is used twice).
    release = threading.Event()
    asked = threading.Event()
    gewoon = aanbieder.ververs

    def traag(ververs_token: str) -> Ingelogd | None:
        asked.set()
        assert release.wait(10), "never released"
        return gewoon(ververs_token)

    aanbieder.ververs = traag  # type: ignore[method-assign]
    verversingen = Verversingen()
    answers: list[Ingelogd | None] = []
    threads = [
        threading.Thread(target=lambda: answers.append(verversingen.ververs(aanbieder, "r1")))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    assert asked.wait(10)
    release.set()
    for thread in threads:
        thread.join(10)
    assert aanbieder.ververst == ["r1"]
    assert len(answers) == 3 and all(a is answers[0] for a in answers) and answers[0] is not None
    # A request that still carries the old cookie a moment later gets the same answer.
    assert verversingen.ververs(aanbieder, "r1") is answers[0]
    assert aanbieder.ververst == ["r1"]


def test_a_renewal_that_failed_to_reach_the_provider_is_tried_again(
    aanbieder: FakeAanbieder,
) -> None:
    verversingen = Verversingen()
    aanbieder.ververs_antwoord = AanbiederOnbereikbaar("refresh")
    with pytest.raises(AanbiederOnbereikbaar):
        verversingen.ververs(aanbieder, "r1")
    aanbieder.ververs_antwoord = aanbieder.persoon("t2", "r2")
    assert verversingen.ververs(aanbieder, "r1") is not None
    assert aanbieder.ververst == ["r1", "r1"]


def test_a_refused_renewal_keeps_the_session_while_its_token_is_still_valid(
    portal: TestClient, aanbieder: FakeAanbieder, klok: Klok
) -> None:
    sign_in(portal, aanbieder)
    aanbieder.ververs_antwoord = None
    klok.nu += timedelta(minutes=10) - timedelta(seconds=5)
    assert portal.get("/start").status_code == 200, "still signed in for the last seconds"
    assert aanbieder.ververst == ["r1"]


def test_a_session_too_large_for_its_cookie_is_a_clear_page_not_a_silent_loop(
    portal: TestClient, aanbieder: FakeAanbieder
) -> None:
    aanbieder.antwoord = Ingelogd("sec-1", "secretariaat", "t" * 5000, None, "r1")
    gaan = begin(portal, aanbieder)
    answer = portal.get(
        "/inloggen/terug", params={"code": "c0de", "state": gaan.state}, follow_redirects=False
    )
    assert answer.status_code == 500 and "Inloggen kan niet" in answer.text
    assert len(portal.cookies.get(COOKIE_NAME) or "") <= MAX_COOKIE_CHARS
    assert sessie(portal).token is None
