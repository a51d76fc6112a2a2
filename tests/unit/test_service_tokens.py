"""A service's own tokens by the client credentials grant: cached, renewed, 503 when none."""

from __future__ import annotations

import itertools
from pathlib import Path

import httpx
import pytest

from shared.platform.errors import NietBeschikbaar
from shared.platform.servicetokens import IDP_TOKEN_CODE, ClientCredentials
from shared.platform.settings import AuthMode, Settings
from shared.platform.wiring import service_token

ISSUER = "https://idp.example.test/realm"
SECRET = "the-client-secret-0123456789"


class Idp:
    def __init__(self, *, status: int = 200, down: bool = False, expires_in: object = 300) -> None:
        self.status = status
        self.down = down
        self.expires_in = expires_in
        self.requests: list[httpx.Request] = []
        self.discovery: object = {"issuer": ISSUER, "token_endpoint": f"{ISSUER}/token"}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.down:
            raise httpx.ConnectError("refused", request=request)
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(200, json=self.discovery)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "invalid_client"})
        return httpx.Response(
            200,
            json={"access_token": f"token-{len(self.requests)}", "expires_in": self.expires_in},
        )


def _tokens(idp: Idp, now: list[float]) -> ClientCredentials:
    return ClientCredentials(
        ISSUER,
        "weerbaar-scheduling",
        SECRET,
        "urn:weerbaar:api",
        clock=lambda: now[0],
        transport=httpx.MockTransport(idp),
    )


def test_the_token_is_fetched_by_discovery_then_kept_until_shortly_before_expiry() -> None:
    idp, now = Idp(), [1000.0]
    tokens = _tokens(idp, now)
    first = tokens()
    assert tokens() == first
    now[0] += 269  # 300 s minus a margin of 30 s: still fresh
    assert tokens() == first
    now[0] += 2
    assert tokens() != first
    posts = [r for r in idp.requests if r.method == "POST"]
    assert len(posts) == 2
    body = posts[0].content.decode()
    assert "grant_type=client_credentials" in body and "resource=urn%3Aweerbaar%3Aapi" in body
    assert posts[0].headers["Authorization"].startswith("Basic ")
    # Discovery once: the endpoint is kept.
    assert sum(r.method == "GET" for r in idp.requests) == 1


@pytest.mark.parametrize(
    "idp",
    [
        Idp(down=True),
        Idp(status=401),
        Idp(status=500),
        # A lifetime that is none: kept for ever ("nan", "inf") or already over.
        Idp(expires_in="nan"),
        Idp(expires_in="inf"),
        Idp(expires_in=-5),
        Idp(expires_in=[]),
    ],
)
def test_no_token_is_a_503_of_the_call_without_the_secret(
    idp: Idp, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    tokens = _tokens(idp, now)
    with pytest.raises(NietBeschikbaar) as failed:
        tokens()
    assert failed.value.code == IDP_TOKEN_CODE
    assert SECRET not in str(failed.value) and SECRET not in repr(tokens)
    assert SECRET not in caplog.text
    # A provider back up gives tokens without a restart, after the pause.
    idp.down, idp.status, idp.expires_in = False, 200, 300
    now[0] += 1
    assert tokens().startswith("token-")


def test_after_a_failure_calls_fail_at_once_for_a_pause_that_doubles() -> None:
    idp, now = Idp(down=True), [100.0]
    tokens = _tokens(idp, now)
    asked_at = []
    while now[0] < 220:
        before = len(idp.requests)
        with pytest.raises(NietBeschikbaar):
            tokens()
        if len(idp.requests) > before:
            asked_at.append(now[0])
        now[0] += 0.25
    # Only these calls asked the provider (each would wait out a timeout); every other one
    # failed at once.
    gaps = [later - earlier for earlier, later in itertools.pairwise(asked_at)]
    assert gaps == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]


def test_a_token_due_for_renewal_is_used_until_it_expires_while_the_provider_is_down() -> None:
    idp, now = Idp(), [0.0]
    tokens = _tokens(idp, now)
    held = tokens()
    idp.down = True
    now[0] = 275.0  # due for renewal (300 s minus 30), not expired
    assert tokens() == held
    now[0] = 299.0
    assert tokens() == held
    now[0] = 300.0  # expired: no token at all
    with pytest.raises(NietBeschikbaar):
        tokens()
    idp.down = False
    now[0] = 400.0
    assert tokens() != held


def test_oidc_mode_reads_each_services_own_secret_file(tmp_path: Path) -> None:
    settings = Settings(
        database_url="postgresql://127.0.0.1/weerbaar",
        nats_url="nats://127.0.0.1:4222",
        data_dir=tmp_path,
        auth_mode=AuthMode.OIDC,
        jwt_issuer=ISSUER,
        oidc_token_url=f"{ISSUER}/token",  # type: ignore[arg-type]
    )
    with pytest.raises(SystemExit) as stopped:
        service_token(settings, "approval")
    assert "approval.secret" in str(stopped.value)
    path = settings.oidc_client_secret_path("approval")
    path.parent.mkdir(parents=True)
    path.write_text(SECRET + "\n")
    tokens = service_token(settings, "approval")
    assert isinstance(tokens, ClientCredentials)
    assert tokens.client_id == "weerbaar-approval"
    assert SECRET not in repr(tokens)
    assert not settings.secret_file.exists()  # no HMAC secret in oidc mode


@pytest.mark.parametrize(
    "discovery",
    [
        {"token_endpoint": f"{ISSUER}/token"},
        {
            "issuer": "https://elders.example.test",
            "token_endpoint": "https://elders.example.test/t",
        },
        {"issuer": 5, "token_endpoint": f"{ISSUER}/token"},
        {"issuer": ISSUER, "token_endpoint": ["https://elders.example.test/t"]},
        {"issuer": ISSUER},
        [ISSUER],
        "token_endpoint",
    ],
    ids=lambda d: repr(d)[:50],
)
def test_a_discovery_document_that_is_not_the_issuers_gives_no_token_and_no_request(
    discovery: object,
) -> None:
    idp, now = Idp(), [0.0]
    idp.discovery = discovery
    tokens = _tokens(idp, now)
    with pytest.raises(NietBeschikbaar) as failed:
        tokens()
    assert failed.value.code == IDP_TOKEN_CODE
    # The secret went nowhere: only the discovery document was asked for.
    assert [r.method for r in idp.requests] == ["GET"]
