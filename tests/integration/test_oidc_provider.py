"""The tests' OIDC provider is configured as the system needs it (``tests/oidc``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.oidc.provider import (
    AUDIENCE,
    PEOPLE_CLIENT,
    PORTAL_CLIENT,
    Provider,
    code_flow,
    running_provider,
)

pytestmark = pytest.mark.integration

PORTAL_REDIRECT = "http://127.0.0.1:18080/auth/callback"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    accounts = {"wg-demo": {"roles": ["werkgever"], "organisatie": "GM0363"}}
    work = Path(tmp_path_factory.mktemp("provider"))
    with running_provider(work, accounts, portal_redirect_uri=PORTAL_REDIRECT) as running:
        yield running


def _claims(token: str) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return claims


def test_the_portal_signs_people_in_with_code_and_pkce_and_refreshes(provider: Provider) -> None:
    tokens = code_flow(
        provider.issuer,
        "wg-demo",
        client_id=PORTAL_CLIENT,
        client_secret=provider.portal_secret,
        redirect_uri=PORTAL_REDIRECT,
        scope="openid offline_access email weerbaar",
    )
    claims = _claims(tokens["access_token"])
    assert claims["aud"] == AUDIENCE and claims["sub"] == "wg-demo"
    assert claims["roles"] == ["werkgever"] and claims["organisatie"] == "GM0363"
    renewed = httpx.post(
        f"{provider.issuer}/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "resource": AUDIENCE,
        },
        auth=(PORTAL_CLIENT, provider.portal_secret),
    )
    assert renewed.status_code == 200
    assert _claims(renewed.json()["access_token"])["roles"] == ["werkgever"]


def test_each_client_has_only_its_own_grant(provider: Provider) -> None:
    # A service's client cannot sign a person in; the people's test client cannot act as a
    # service; a wrong secret gets nothing; a redirect the portal did not register is refused.
    signed_in = httpx.get(
        f"{provider.issuer}/auth",
        params={
            "client_id": "weerbaar-intake",
            "response_type": "code",
            "redirect_uri": PORTAL_REDIRECT,
            "scope": "openid",
        },
    )
    assert signed_in.status_code == 400
    as_service = httpx.post(
        f"{provider.issuer}/token",
        data={"grant_type": "client_credentials", "client_id": PEOPLE_CLIENT},
    )
    assert as_service.status_code in (400, 401)
    wrong = httpx.post(
        f"{provider.issuer}/token",
        data={"grant_type": "client_credentials", "resource": AUDIENCE},
        auth=("weerbaar-intake", "not-the-secret"),
    )
    assert wrong.status_code == 401
    elsewhere = httpx.get(
        f"{provider.issuer}/auth",
        params={
            "client_id": PORTAL_CLIENT,
            "response_type": "code",
            "redirect_uri": "http://evil.example/cb",
            "scope": "openid",
        },
    )
    assert elsewhere.status_code == 400
