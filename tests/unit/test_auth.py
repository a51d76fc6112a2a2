"""Bearer tokens through a real FastAPI app: who gets in, who is refused, and what is recorded.

The OIDC verifier fetches its keys from a JWKS served by a real HTTP server on 127.0.0.1.
"""

import base64
import hashlib
import hmac
import json
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID, uuid4

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from shared.platform.auth import (
    IDP_KEYS_CODE,
    REFUSAL_UNRECORDED_CODE,
    Auth,
    HmacTokenVerifier,
    OidcTokenVerifier,
    Principal,
    Refusal,
    RefusalReason,
    Role,
    TokenVerifier,
    issue_token,
    load_or_create_secret,
)
from shared.platform.errors import NietIngelogd
from shared.platform.http import create_app

ISSUER = "https://login.example.test/realms/weerbaar"
AUDIENCE = "weerbaar"
ROUTE = "/aanvragen/{aanvraag_id}"


# --- keys and the JWKS server --------------------------------------------------------------------


@dataclass
class Jwks:
    url: str
    broken_url: str
    rsa_key: rsa.RSAPrivateKey
    ec_key: ec.EllipticCurvePrivateKey
    fetches: list[str]

    @property
    def rsa_public_pem(self) -> bytes:
        return self.rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@pytest.fixture(scope="module")
def jwks() -> Iterator[Jwks]:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    rsa_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key(), as_dict=True)
    ec_jwk = jwt.algorithms.ECAlgorithm.to_jwk(ec_key.public_key(), as_dict=True)
    document = json.dumps(
        {
            "keys": [
                {**rsa_jwk, "kid": "rsa-1", "use": "sig", "alg": "RS256"},
                {**ec_jwk, "kid": "ec-1", "use": "sig", "alg": "ES256"},
            ]
        }
    ).encode()
    fetches: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(self.path)
            if self.path == "/jwks.json":
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(document)))
                self.end_headers()
                self.wfile.write(document)
            else:
                self.send_error(500)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield Jwks(f"{base}/jwks.json", f"{base}/broken", rsa_key, ec_key, fetches)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- token builders ------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "usr-7f3a",
        "roles": ["secretariaat"],
        "email": "b.bestuurder@example.test",
        "organisatie": "GM0363",
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(hours=1),
    }
    claims.update(overrides)
    return {key: value for key, value in claims.items() if value is not None}


def _unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    payload = jwt.encode(claims, "x" * 32, algorithm="HS256").split(".")[1]  # claim encoding
    return f"{_b64(json.dumps(header).encode())}.{payload}.{_b64(signature)}"


@dataclass
class Signer:
    """Makes tokens that a given verifier should accept, and variants it must refuse."""

    make: Callable[[dict[str, Any]], str]
    verifier: TokenVerifier


SECRET = secrets.token_bytes(64)  # long enough for HS512 too, so that test is about the alg


@pytest.fixture(params=["hmac", "oidc"])
def signer(request: pytest.FixtureRequest, jwks: Jwks) -> Signer:
    if request.param == "hmac":
        return Signer(
            lambda claims: jwt.encode(claims, SECRET, algorithm="HS256"),
            HmacTokenVerifier(SECRET, ISSUER, AUDIENCE),
        )
    return Signer(
        lambda claims: jwt.encode(
            claims, jwks.rsa_key, algorithm="RS256", headers={"kid": "rsa-1"}
        ),
        OidcTokenVerifier(jwks.url, ISSUER, AUDIENCE),
    )


# --- the app under test --------------------------------------------------------------------------


@dataclass
class Harness:
    client: TestClient
    refusals: list[Refusal]
    handled: list[str]


def _harness(
    verifier: TokenVerifier, on_refused: Callable[[Refusal], None] | None = None
) -> Harness:
    refusals: list[Refusal] = []
    handled: list[str] = []
    auth = Auth(verifier, on_refused or refusals.append)
    app: FastAPI = create_app(service="test", title="test", version="0")

    @app.get(ROUTE)
    def lees(
        aanvraag_id: UUID,
        principal: Annotated[Principal, Depends(auth.require(Role.secretariaat, Role.compliance))],
    ) -> dict[str, Any]:
        handled.append(str(aanvraag_id))
        return {
            "sub": principal.sub,
            "roles": sorted(principal.roles),
            "email": principal.email,
            "organisatie": principal.organisatie,
        }

    return Harness(TestClient(app, raise_server_exceptions=False), refusals, handled)


def _get(harness: Harness, token: str | None, aanvraag_id: UUID | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return harness.client.get(f"/aanvragen/{aanvraag_id or uuid4()}", headers=headers)


def _assert_refused(harness: Harness, response: Any, status: int, reason: str) -> Refusal:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert harness.handled == []
    assert len(harness.refusals) == 1
    refusal = harness.refusals[0]
    assert refusal.reason == reason
    assert refusal.status == status
    assert refusal.actie == f"GET {ROUTE}"
    return refusal


# --- accepted ------------------------------------------------------------------------------------


def test_valid_token_is_accepted_with_its_claims(signer: Signer) -> None:
    harness = _harness(signer.verifier)
    response = _get(harness, signer.make(_claims(roles=["compliance", "iets_anders"])))
    assert response.status_code == 200, response.text
    assert response.json() == {
        "sub": "usr-7f3a",
        "roles": ["compliance"],
        "email": "b.bestuurder@example.test",
        "organisatie": "GM0363",
    }
    assert harness.refusals == []


def test_es256_token_is_accepted_by_the_oidc_verifier(jwks: Jwks) -> None:
    harness = _harness(OidcTokenVerifier(jwks.url, ISSUER, AUDIENCE))
    token = jwt.encode(_claims(), jwks.ec_key, algorithm="ES256", headers={"kid": "ec-1"})
    assert _get(harness, token).status_code == 200


def test_oidc_verifier_fetches_the_jwks_once_for_many_tokens(jwks: Jwks) -> None:
    harness = _harness(OidcTokenVerifier(jwks.url, ISSUER, AUDIENCE))
    before = len(jwks.fetches)
    token = jwt.encode(_claims(), jwks.rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    for _ in range(5):
        assert _get(harness, token).status_code == 200
    assert len(jwks.fetches) - before == 1


def test_issued_token_is_accepted_by_the_hmac_verifier() -> None:
    harness = _harness(HmacTokenVerifier(SECRET, ISSUER, AUDIENCE))
    token = issue_token(
        SECRET, role="secretariaat", email="s@example.test", issuer=ISSUER, audience=AUDIENCE
    )
    body = _get(harness, token).json()
    assert body["roles"] == ["secretariaat"]
    assert body["sub"].startswith("usr-")
    assert body["email"] == "s@example.test"
    assert body["organisatie"] is None


# --- refused: 401 --------------------------------------------------------------------------------


def test_request_without_token_is_refused_and_recorded() -> None:
    harness = _harness(HmacTokenVerifier(SECRET, ISSUER, AUDIENCE))
    aanvraag_id = uuid4()
    response = _get(harness, None, aanvraag_id)
    refusal = _assert_refused(harness, response, 401, "missing_token")
    assert response.headers["www-authenticate"] == "Bearer"
    assert refusal.aanvraag_id == aanvraag_id
    assert refusal.principal is None


def _later(hours: int) -> datetime:
    return datetime.now(UTC) + timedelta(hours=hours)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        pytest.param(_claims(iat=_later(-3), nbf=_later(-3), exp=_later(-2)), "expired", id="exp"),
        pytest.param(
            _claims(iat=_later(1), nbf=_later(1), exp=_later(2)), "not_yet_valid", id="nbf"
        ),
        pytest.param(_claims(iss="https://evil.example.test"), "wrong_issuer", id="iss"),
        pytest.param(_claims(aud="another-app"), "wrong_audience", id="aud"),
        pytest.param(_claims(roles=None), "missing_claim", id="roles"),
        pytest.param(_claims(exp=None), "missing_claim", id="no-exp"),
        pytest.param(_claims(roles="secretariaat"), "malformed", id="roles-not-a-list"),
    ],
)
def test_invalid_claims_are_refused(signer: Signer, claims: dict[str, Any], reason: str) -> None:
    harness = _harness(signer.verifier)
    response = _get(harness, signer.make(claims))
    _assert_refused(harness, response, 401, reason)
    assert response.json()["code"] == reason
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_alg_none_is_refused(signer: Signer) -> None:
    harness = _harness(signer.verifier)
    token = _unsigned({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, _claims())
    _assert_refused(harness, _get(harness, token), 401, "bad_signature")


def test_garbage_token_is_refused_as_malformed(signer: Signer) -> None:
    harness = _harness(signer.verifier)
    _assert_refused(harness, _get(harness, "not.a.jwt"), 401, "malformed")


def test_hmac_verifier_refuses_a_token_with_another_secret() -> None:
    harness = _harness(HmacTokenVerifier(SECRET, ISSUER, AUDIENCE))
    token = jwt.encode(_claims(), secrets.token_bytes(32), algorithm="HS256")
    _assert_refused(harness, _get(harness, token), 401, "bad_signature")


def test_hmac_verifier_refuses_every_other_algorithm_even_with_the_right_secret() -> None:
    harness = _harness(HmacTokenVerifier(SECRET, ISSUER, AUDIENCE))
    token = jwt.encode(_claims(), SECRET, algorithm="HS512")
    _assert_refused(harness, _get(harness, token), 401, "bad_signature")


def test_oidc_verifier_refuses_hs256_signed_with_the_rsa_public_key(jwks: Jwks) -> None:
    # Algorithm confusion: the public key is public, so an HMAC over it proves nothing.
    harness = _harness(OidcTokenVerifier(jwks.url, ISSUER, AUDIENCE))
    header = {"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}
    unsigned = _unsigned(header, _claims())
    signing_input = unsigned.rsplit(".", 1)[0].encode()
    signature = hmac.new(jwks.rsa_public_pem, signing_input, hashlib.sha256).digest()
    token = f"{signing_input.decode()}.{_b64(signature)}"
    _assert_refused(harness, _get(harness, token), 401, "bad_signature")


def test_oidc_verifier_refuses_an_unknown_key_id(jwks: Jwks) -> None:
    harness = _harness(OidcTokenVerifier(jwks.url, ISSUER, AUDIENCE))
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(), other_key, algorithm="RS256", headers={"kid": "rsa-2"})
    _assert_refused(harness, _get(harness, token), 401, "unknown_key")


def test_oidc_verifier_refuses_a_known_kid_with_a_foreign_signature(jwks: Jwks) -> None:
    harness = _harness(OidcTokenVerifier(jwks.url, ISSUER, AUDIENCE))
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(_claims(), other_key, algorithm="RS256", headers={"kid": "rsa-1"})
    _assert_refused(harness, _get(harness, token), 401, "bad_signature")


def test_oidc_verifier_answers_503_when_the_jwks_cannot_be_fetched(jwks: Jwks) -> None:
    harness = _harness(OidcTokenVerifier(jwks.broken_url, ISSUER, AUDIENCE))
    token = jwt.encode(_claims(), jwks.rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    response = _get(harness, token)
    assert response.status_code == 503
    assert response.json()["code"] == IDP_KEYS_CODE
    assert "127.0.0.1" not in response.text
    assert harness.handled == []


def test_oidc_verifier_does_not_accept_symmetric_algorithms(jwks: Jwks) -> None:
    with pytest.raises(ValueError, match="HS256"):
        OidcTokenVerifier(jwks.url, ISSUER, AUDIENCE, algorithms=("RS256", "HS256"))


# --- refused: 403 and failed recording -----------------------------------------------------------


def test_missing_role_is_refused_with_403_and_the_principal_recorded(signer: Signer) -> None:
    harness = _harness(signer.verifier)
    aanvraag_id = uuid4()
    response = _get(harness, signer.make(_claims(roles=["werkgever"])), aanvraag_id)
    refusal = _assert_refused(harness, response, 403, "missing_role")
    assert refusal.principal is not None
    assert refusal.principal.sub == "usr-7f3a"
    assert refusal.principal.roles == frozenset({Role.werkgever})
    assert refusal.aanvraag_id == aanvraag_id


def test_a_refusal_that_cannot_be_recorded_fails_the_request_with_503() -> None:
    def broken_recorder(refusal: Refusal) -> None:
        raise ConnectionError("event store down")

    harness = _harness(HmacTokenVerifier(SECRET, ISSUER, AUDIENCE), broken_recorder)
    no_role = jwt.encode(_claims(roles=["werkgever"]), SECRET, algorithm="HS256")
    for token in (None, no_role):
        response = _get(harness, token)
        assert response.status_code == 503
        assert response.json()["code"] == REFUSAL_UNRECORDED_CODE
        assert "event store" not in response.text
    assert harness.handled == []


# --- issuing and the secret ----------------------------------------------------------------------


def test_issue_token_writes_roles_as_a_list_and_rejects_unknown_roles() -> None:
    now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    token = issue_token(
        SECRET,
        role=Role.bestuurder,
        sub="usr-1",
        organisatie="GM0363",
        issuer=ISSUER,
        audience=AUDIENCE,
        ttl=timedelta(minutes=30),
        now=now,
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["roles"] == ["bestuurder"]
    assert claims["exp"] - claims["iat"] == 1800
    assert "email" not in claims
    with pytest.raises(ValueError, match="burgemeester"):
        issue_token(SECRET, role="burgemeester", issuer=ISSUER, audience=AUDIENCE)


def test_default_subjects_are_random_opaque_ids() -> None:
    subs = {
        jwt.decode(
            issue_token(SECRET, role="adviseur", issuer=ISSUER, audience=AUDIENCE),
            options={"verify_signature": False},
        )["sub"]
        for _ in range(3)
    }
    assert len(subs) == 3
    assert all(sub.startswith("usr-") for sub in subs)


def test_secret_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "state" / "token.secret"
    first = load_or_create_secret(path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(path) == first
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_a_truncated_secret_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "token.secret"
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="shorter"):
        load_or_create_secret(path)


def test_hmac_verifier_refuses_a_short_secret() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        HmacTokenVerifier(b"too short", ISSUER, AUDIENCE)


def test_principal_has_role_matches_any_of_the_given_roles() -> None:
    principal = Principal(sub="usr-1", roles=frozenset({Role.bva}))
    assert principal.has_role(Role.adviseur, Role.bva)
    assert not principal.has_role(Role.adviseur)


# --- a service's own token from the provider (OIDC mode) -----------------------------------------

SERVICE_CLIENTS = {"weerbaar-notifications": "svc-notifications"}


def _provider_token(jwks: Jwks, **claims: Any) -> str:
    return jwt.encode(_claims(**claims), jwks.rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})


def _service_verifier(jwks: Jwks) -> OidcTokenVerifier:
    return OidcTokenVerifier(jwks.url, ISSUER, AUDIENCE, service_clients=SERVICE_CLIENTS)


def test_a_services_client_credentials_token_is_that_service_and_nothing_more(
    jwks: Jwks,
) -> None:
    token = _provider_token(
        jwks,
        sub="weerbaar-notifications",
        client_id="weerbaar-notifications",
        roles=["compliance"],  # ignored: a service's token is the role dienst only
    )
    principal = _service_verifier(jwks).verify(token)
    assert principal.sub == "svc-notifications"
    assert principal.roles == frozenset({Role.dienst})
    assert principal.email is None and principal.organisatie is None


def test_a_persons_token_never_passes_as_a_service(jwks: Jwks) -> None:
    verifier = _service_verifier(jwks)
    # A person claiming the role dienst keeps only their other roles ...
    mixed = _provider_token(jwks, client_id="weerbaar-tests", roles=["dienst", "bva"])
    assert verifier.verify(mixed).roles == frozenset({Role.bva})
    # ... and with no other role is nobody the services know.
    only = _provider_token(jwks, client_id="weerbaar-tests", roles=["dienst"])
    with pytest.raises(NietIngelogd) as refused:
        verifier.verify(only)
    assert refused.value.code == RefusalReason.no_known_role.value
    # Someone signed in through a service's client is not that service.
    through = _provider_token(jwks, sub="usr-1", client_id="weerbaar-notifications")
    with pytest.raises(NietIngelogd) as refused:
        verifier.verify(through)
    assert refused.value.code == RefusalReason.malformed.value
