"""The portal without servers: its session cookie, CSRF, security headers, the adapters' error
mapping, the registration's errors at their fields, and the vendored files' checksums."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.portal.adapters import DEMO_PERSONEN, EmbeddedInloggen, HttpApis, uitkomst_van
from services.portal.api.pages import STATIC_DIR
from services.portal.api.session import COOKIE_NAME, SessieSleutel
from services.portal.application import (
    Conflict,
    Gelukt,
    Geweigerd,
    NietGevonden,
    NietIngelogd,
    Onbereikbaar,
    Ongeldig,
    TeVaak,
    Uitkomst,
    VeldFout,
)
from services.portal.application.start import WERK
from services.portal.bootstrap import bootstrap
from shared.platform.settings import PortalSettings

KEY = secrets.token_bytes(32)
JWT_SECRET = secrets.token_bytes(32)


class FakeApis:
    """Answers registrations as told, and remembers what it was sent."""

    def __init__(self, answer: Uitkomst | None = None) -> None:
        self.answer = answer or Gelukt({"aanvraag_id": "6f1c0000-0000-0000-0000-000000000000"})
        self.sent: list[Mapping[str, Any]] = []

    def als(self, token: str | None, herkomst: str | None = None) -> FakeApis:
        self.herkomst = herkomst
        return self

    def dien_aanvraag_in(self, aanmelding: Mapping[str, Any], idempotency_key: str) -> Uitkomst:
        self.sent.append(aanmelding)
        return self.answer


def client(apis: FakeApis | None = None, *, tls: bool = False) -> TestClient:
    settings = PortalSettings(portal_behind_tls=tls)
    app = bootstrap(
        settings,
        apis=apis or FakeApis(),
        inloggen=EmbeddedInloggen(JWT_SECRET, "weerbaar-embedded", "weerbaar"),
        session_key=KEY,
    )
    return TestClient(app, base_url="https://portal.test" if tls else "http://portal.test")


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF field on the page"
    return found.group(1)


# --- the session cookie -------------------------------------------------------------------------


def test_a_session_seals_and_opens() -> None:
    sleutel = SessieSleutel(KEY, 60)
    sessie = sleutel.nieuw()
    sessie.rol, sessie.token = "bva", "t"
    opened = sleutel.open(sleutel.seal(sessie))
    assert opened == sessie


def test_a_tampered_cookie_is_no_session() -> None:
    sleutel = SessieSleutel(KEY, 60)
    sealed = sleutel.seal(sleutel.nieuw())
    flipped = sealed[:20] + ("A" if sealed[20] != "A" else "B") + sealed[21:]
    assert sleutel.open(flipped) is None
    assert sleutel.open(sealed[:-4]) is None
    assert sleutel.open("niet-base64-!!!") is None
    assert sleutel.open("") is None
    assert sleutel.open("A" * 10_000) is None
    assert SessieSleutel(secrets.token_bytes(32), 60).open(sealed) is None


def test_an_expired_session_is_no_session() -> None:
    sleutel = SessieSleutel(KEY, 60)
    sealed = sleutel.seal(sleutel.nieuw(now=time.time() - 120))
    assert sleutel.open(sealed) is None


def test_a_tampered_cookie_gives_a_fresh_anonymous_session_never_an_error() -> None:
    portal = client()
    portal.cookies.set(COOKIE_NAME, "bm9uc2Vuc2U" * 20)
    response = portal.get("/start", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/inloggen"
    assert COOKIE_NAME in response.cookies


def test_the_cookie_is_httponly_samesite_lax_and_secure_behind_tls() -> None:
    plain = client().get("/").headers["set-cookie"].lower()
    assert "httponly" in plain and "samesite=lax" in plain and "secure" not in plain
    secure = client(tls=True).get("/").headers["set-cookie"].lower()
    assert "secure" in secure


# --- headers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/aanmelden", "/inloggen", "/bestaat-niet"])
def test_every_page_carries_the_security_headers(path: str) -> None:
    response = client().get(path)
    csp = response.headers["content-security-policy"]
    assert "unsafe-inline" not in csp
    for directive in (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ):
        assert directive in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert 'lang="nl"' in response.text


def test_a_missing_page_is_a_dutch_404() -> None:
    response = client().get("/bestaat-niet")
    assert response.status_code == 404
    assert "Pagina niet gevonden" in response.text


# --- CSRF ---------------------------------------------------------------------------------------


def test_a_form_post_without_its_csrf_token_is_refused_with_a_dutch_page() -> None:
    apis = FakeApis()
    portal = client(apis)
    portal.get("/aanmelden")
    for data in ({}, {"csrf": "fout"}):
        response = portal.post("/aanmelden", data=data)
        assert response.status_code == 403
        assert "Formulier verlopen" in response.text
    assert apis.sent == []


def test_a_token_from_another_session_is_refused() -> None:
    other = csrf_of(client().get("/aanmelden").text)
    portal = client()
    portal.get("/aanmelden")
    assert (
        portal.post("/inloggen/demo", data={"csrf": other, "persoon": "bva-demo"}).status_code
        == 403
    )


def test_an_oversized_form_is_a_clear_dutch_error() -> None:
    portal = client()
    csrf = csrf_of(portal.get("/aanmelden").text)
    response = portal.post("/aanmelden", data={"csrf": csrf, "reden": "x" * 70_000})
    assert response.status_code == 413
    assert "te veel tekst" in response.text
    too_long = portal.post("/aanmelden", data={"csrf": csrf, "bestuurder.naam": "x" * 201})
    assert too_long.status_code == 422
    assert "Dit is te lang" in too_long.text


# --- signing in ---------------------------------------------------------------------------------


@pytest.mark.parametrize("persoon", [p for p, _ in DEMO_PERSONEN], ids=lambda p: p.sleutel)
def test_every_demo_person_finds_their_roles_journeys_on_the_start_page(persoon: Any) -> None:
    portal = client()
    csrf = csrf_of(portal.get("/inloggen/demo").text)
    start = portal.post("/inloggen/demo", data={"csrf": csrf, "persoon": persoon.sleutel})
    assert start.status_code == 200
    assert WERK[persoon.rol], f"no journey for {persoon.rol}"
    for werk in WERK[persoon.rol]:
        assert f'href="{werk.url}"' in start.text


def test_signing_in_gives_a_new_session_and_the_role_start_page() -> None:
    portal = client()
    anonymous = csrf_of(portal.get("/inloggen/demo").text)
    response = portal.post("/inloggen/demo", data={"csrf": anonymous, "persoon": "sec-demo"})
    assert response.status_code == 200
    assert "Secretariaat CCV" in response.text
    assert 'href="/secretariaat/werkvoorraad"' in response.text
    assert csrf_of(response.text) != anonymous
    out = portal.post("/uitloggen", data={"csrf": csrf_of(response.text)})
    assert out.status_code == 200
    assert portal.get("/start", follow_redirects=False).status_code == 303


# --- journey 1 ----------------------------------------------------------------------------------


def test_a_registration_goes_to_the_api_and_the_confirmation_carries_no_personal_data() -> None:
    apis = FakeApis()
    portal = client(apis)
    csrf = csrf_of(portal.get("/aanmelden").text)
    response = portal.post(
        "/aanmelden",
        data={
            "csrf": csrf,
            "ingediend_door": "bestuurder",
            "bestuurder.naam": "Jan de Voorbeeld",
            "bestuurder.functie": "raadslid",
            "bestuurder.adres.postcode": "1234 AB",
            "toestemming": "ja",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/aanmelden/ontvangen"
    sent = apis.sent[0]
    assert sent["bestuurder"]["naam"] == "Jan de Voorbeeld"
    assert sent["bestuurder"]["adres"]["postcode"] == "1234 AB"
    assert sent["toestemming"] is True and sent["verhuizing_gepland"] is False
    page = portal.get("/aanmelden/ontvangen")
    assert "Buiten de regeling" in page.text
    assert "drie werkdagen" in page.text
    assert "Jan de Voorbeeld" not in page.text
    # Shown once: a reload goes back to the form.
    assert portal.get("/aanmelden/ontvangen", follow_redirects=False).status_code == 303


def test_the_apis_422_is_shown_at_its_fields_and_in_the_summary() -> None:
    apis = FakeApis(
        Ongeldig(
            (
                VeldFout("body.bestuurder.adres.postcode", "string_pattern_mismatch"),
                VeldFout("body.toestemming", "toestemming_vereist"),
            )
        )
    )
    portal = client(apis)
    csrf = csrf_of(portal.get("/aanmelden").text)
    response = portal.post("/aanmelden", data={"csrf": csrf, "bestuurder.adres.postcode": "x"})
    assert response.status_code == 422
    page = response.text
    assert '<a class="utrecht-link" href="#bestuurder-adres-postcode">' in page
    assert (
        'aria-describedby="bestuurder-adres-postcode-hint bestuurder-adres-postcode-fout"' in page
    )
    assert 'id="toestemming-fout"' in page
    assert "<title>Fout: Veiligheidsadvies aanvragen" in page


def test_the_service_unavailable_keeps_the_form_and_says_so() -> None:
    portal = client(FakeApis(Onbereikbaar()))
    csrf = csrf_of(portal.get("/aanmelden").text)
    response = portal.post("/aanmelden", data={"csrf": csrf, "bestuurder.naam": "Ann"})
    assert response.status_code == 503
    assert "kon nu niet worden verwerkt" in response.text
    assert 'value="Ann"' in response.text


# --- the adapters' error mapping ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (201, {"aanvraag_id": "x"}, Gelukt({"aanvraag_id": "x"})),
        (401, {}, NietIngelogd()),
        (403, {}, Geweigerd()),
        (404, {}, NietGevonden()),
        (409, {"detail": "Te vroeg."}, Conflict("Te vroeg.")),
        (
            422,
            {"errors": [{"field": "body.reden", "rule": "string_too_short"}]},
            Ongeldig((VeldFout("body.reden", "string_too_short"),)),
        ),
        (429, {}, TeVaak()),
        (500, {}, Onbereikbaar()),
        (503, {}, Onbereikbaar()),
    ],
)
def test_an_api_answer_becomes_a_typed_outcome(
    status: int, body: dict[str, Any], expected: Uitkomst
) -> None:
    assert uitkomst_van(httpx.Response(status, json=body)) == expected


def test_the_adapter_sends_the_persons_token_and_the_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"aanvraag_id": "x"})

    apis = HttpApis({"intake": "http://intake.test"}, transport=httpx.MockTransport(handler))
    assert apis.als("tok").dien_aanvraag_in({"reden": "r"}, "key-1") == Gelukt({"aanvraag_id": "x"})
    assert seen[0].headers["authorization"] == "Bearer tok"
    assert seen[0].headers["idempotency-key"] == "key-1"
    assert json.loads(seen[0].content) == {"reden": "r"}


def test_an_unreachable_service_is_an_outcome_not_an_exception() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    apis = HttpApis({"intake": "http://intake.test"}, transport=httpx.MockTransport(handler))
    assert apis.dien_aanvraag_in({}, "k") == Onbereikbaar()


# --- the vendored files -------------------------------------------------------------------------


def test_every_vendored_file_matches_its_manifest() -> None:
    vendor = STATIC_DIR / "vendor"
    manifest = json.loads((vendor / "manifest.json").read_text())
    listed: set[Path] = set()
    for package in manifest["packages"]:
        assert package["version"] and package["licence"]
        assert any("LICENSE" in name for name in package["files"]), package["package"]
        for name, digest in package["files"].items():
            path = vendor / name
            listed.add(path)
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, name
    present = {path for path in vendor.rglob("*") if path.is_file()} - {vendor / "manifest.json"}
    assert present == listed


def test_the_pages_load_only_the_portals_own_files() -> None:
    page = client().get("/aanmelden").text
    for url in re.findall(r'(?:href|src)="([^"#]+)"', page):
        assert url.startswith("/"), url
    for asset in re.findall(r'(?:href|src)="(/static/[^"]+)"', page):
        assert client().get(asset).status_code == 200, asset


def _post_paths(routes: Any) -> set[str]:
    """Every path the portal answers a POST on, through its included routers."""
    found: set[str] = set()
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            found |= _post_paths(included.routes)
        elif "POST" in (getattr(route, "methods", None) or ()):
            found.add(route.path)
    return found


def test_every_form_post_of_the_portal_needs_its_csrf_token() -> None:
    apis = FakeApis()
    portal = client(apis)
    signed_in = portal.post(
        "/inloggen/demo",
        data={"csrf": csrf_of(portal.get("/inloggen/demo").text), "persoon": "sec-demo"},
    )
    assert signed_in.status_code == 200
    paths = _post_paths(portal.app.routes)  # type: ignore[attr-defined]
    assert {"/aanmelden", "/inloggen", "/inloggen/demo", "/uitloggen"} <= paths
    assert any(p.startswith("/secretariaat/") for p in paths), paths
    # The searches by dossier number are form posts too (what is typed stays out of URLs).
    zoeken = {f"/{rol}/zoeken" for rol in ("secretariaat", "compliance", "werkgever", "bestuurder")}
    assert zoeken <= paths, zoeken - paths
    for path in sorted(paths):
        url = re.sub(r"\{[^}]+\}", "6f1c0000-0000-0000-0000-000000000000", path)
        for data in ({}, {"csrf": "fout"}):
            response = portal.post(url, data=data)
            assert response.status_code == 403, (path, response.status_code)
            assert "Formulier verlopen" in response.text
    assert apis.sent == []


def test_a_page_is_served_while_a_registration_waits_for_intake() -> None:
    """The API calls block: they run in worker threads, never on the portal's event loop, so one
    slow service answer holds up no one else's page."""
    release = threading.Event()
    called = threading.Event()

    class SlowApis(FakeApis):
        def dien_aanvraag_in(self, aanmelding: Mapping[str, Any], idempotency_key: str) -> Uitkomst:
            called.set()
            assert release.wait(10), "never released"
            return super().dien_aanvraag_in(aanmelding, idempotency_key)

    with client(SlowApis()) as portal:  # one event loop for every request below
        csrf = csrf_of(portal.get("/aanmelden").text)
        waiting = threading.Thread(
            target=lambda: portal.post("/aanmelden", data={"csrf": csrf}), daemon=True
        )
        waiting.start()
        try:
            assert called.wait(10), "the registration never reached the API"
            started = time.monotonic()
            assert portal.get("/health/ready").status_code == 200
            assert time.monotonic() - started < 2
        finally:
            release.set()
            waiting.join(10)
