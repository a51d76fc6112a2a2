"""The whole system in OIDC mode against a real provider (``oidc-provider`` on loopback).

The five services run as processes on the session's PostgreSQL and NATS with
``WEERBAAR_AUTH_MODE=oidc``: no HMAC secret exists. Every person's call carries an access token
the provider issued by the authorization-code flow with PKCE (its sign-in and consent pages,
driven by httpx: ``tests.oidc.provider``); every call of one service to another carries a token
the provider issued to that service's own client by the client credentials grant.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from shared.contracts.envelope import CloudEvent
from shared.platform.auth import issue_token
from shared.platform.settings import SERVICES
from tests import servers
from tests.oidc.provider import OTHER_AUDIENCE, Provider, running_provider
from tests.support import pseudonym, reset_streams, settings_for, stream_messages, wait_until
from tools.demo import Actors, DossierDriver
from tools.embedded import free_port
from tools.mailcatcher import MailCatcher
from tools.system import System

pytestmark = pytest.mark.e2e

BESTUURDER_EMAIL = "bestuurder.oidc@example.org"
ORGANISATIE = "GM0363"

#: The demo people at the provider, one account per role (subs as ``tools.demo.Actors``).
ACCOUNTS: dict[str, dict[str, Any]] = {
    "sec-demo": {"roles": ["secretariaat"]},
    "adv-demo": {"roles": ["adviseur"]},
    "bva-demo": {"roles": ["bva"]},
    "bst-demo": {"roles": ["bestuurder"], "email": BESTUURDER_EMAIL},
    "wg-demo": {"roles": ["werkgever"], "organisatie": ORGANISATIE},
    "cmp-demo": {"roles": ["compliance"]},
    # A person who claims to be a service: the role never makes them one.
    "nep-dienst": {"roles": ["dienst"]},
}


@dataclass
class ProviderActors(Actors):
    """The people of the process, each with the provider's token for their account."""

    provider: Provider | None = None

    def headers(self, role: str, *, sub: str | None = None) -> dict[str, str]:
        """An Authorization header with the provider's access token for the role's account."""
        assert self.provider is not None
        return {"Authorization": f"Bearer {self.provider.person_token(sub or self.subs[role])}"}


@dataclass
class OidcWorld:
    system: System
    provider: Provider


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory, postgres_server_url: str, nats_url: str
) -> Iterator[OidcWorld]:
    """The provider, then the five services in oidc mode against it."""
    base = tmp_path_factory.mktemp("oidc")
    database = servers.create_database(postgres_server_url)
    reset_streams(settings_for(database, nats_url, base))
    catcher = MailCatcher(base / "mail", port=0)
    catcher.start()
    try:
        with running_provider(base / "provider", ACCOUNTS) as provider:
            system = System(
                data_dir=base / "data",
                database_url=database,
                nats_url=nats_url,
                smtp=("127.0.0.1", catcher.port),
                extra_env={
                    **provider.system_env(base / "oidc-secrets"),
                    # Tokens of the test's short-lived client expire after 1 s.
                    "WEERBAAR_OIDC_LEEWAY_S": "0",
                },
                preferred_ports={s: free_port() for s in SERVICES},
            )
            system.data_dir.mkdir()
            system.start_services(timeout=90)
            try:
                yield OidcWorld(system, provider)
            finally:
                system.stop()
    finally:
        catcher.stop()
        servers.drop_database(postgres_server_url, database)


def _driver(world: OidcWorld, client: httpx.Client) -> DossierDriver:
    actors = ProviderActors(secret=b"", bestuurder_email=BESTUURDER_EMAIL, organisatie=ORGANISATIE)
    actors.provider = world.provider
    return DossierDriver({s: world.system.url(s) for s in SERVICES}, actors, client)


def test_a_dossier_from_registration_to_release_with_provider_tokens_only(
    world: OidcWorld,
) -> None:
    system, provider = world.system, world.provider
    with httpx.Client(timeout=15) as client:
        d = _driver(world, client)
        d.registreer()
        d.neem_contact_op()
        d.plan_gesprekken()
        d.voer_gesprekken()
        d.schrijf_rapport()
        d.beoordeel(d.dien_in(), goedkeuren=True)
        assert d.lees_rapport("bestuurder").status_code == 200
        # The bestuurder asks scheduling for an explanation: scheduling asks intake who they are.
        d.eventually(
            "POST",
            "scheduling",
            f"/aanvragen/{d.aanvraag_id}/toelichting",
            "bestuurder",
            "scheduling to know the report reached the bestuurder",
        )
        d.instemming(geeft=True)
        assert d.lees_rapport("werkgever").status_code == 200
        d.wait_for_status("vrijgegeven")

        # The notifications service fetched the bestuurder's address from intake with its own
        # token: intake recorded the hand-out as the service.
        def handed_out() -> list[dict[str, Any]] | None:
            trail: list[dict[str, Any]] = d.call(
                "GET", "intake", f"/aanvragen/{d.aanvraag_id}/audit", "compliance"
            ).json()
            found = [e for e in trail if str(e["type"]).endswith("PersoonsgegevensVerstrekt.v1")]
            return found or None

        verstrekt = wait_until(handed_out, what="an address handed to notifications")
        assert {e["actorid"] for e in verstrekt} == {
            pseudonym(system.data_dir, "svc-notifications")
        }
        assert {e["actorrole"] for e in verstrekt} == {"dienst"}

        # Every person's token was the provider's, for the services' audience.
        for sub in ACCOUNTS.keys() - {"nep-dienst"}:
            token = provider.tokens.get((sub, "urn:weerbaar:api"))
            assert token is not None, sub
            claims = jwt.decode(token, options={"verify_signature": False})
            assert claims["iss"] == provider.issuer and claims["client_id"] == "weerbaar-tests"

    # Each service that calls another got its own tokens from the provider's token endpoint;
    # intake calls no one.
    issued = provider.issued()
    callers = {"scheduling", "assessment", "approval", "notifications"}
    assert {c for c in callers if issued.get(f"weerbaar-{c}", 0) >= 1} == callers, issued
    assert "weerbaar-intake" not in issued
    # No HMAC secret was made, and a token signed like the embedded mode's is refused.
    assert not (system.data_dir / "secrets" / "jwt.key").exists()
    forged = issue_token(
        secrets.token_bytes(32),
        role="secretariaat",
        issuer=provider.issuer,
        audience="urn:weerbaar:api",
    )
    refused = httpx.get(
        f"{system.url('intake')}/aanvragen/{d.aanvraag_id}",
        headers={"Authorization": f"Bearer {forged}"},
    )
    assert refused.status_code == 401


def _refusal_on_stream(world: OidcWorld, aanvraag_id: uuid.UUID) -> CloudEvent:
    def found() -> CloudEvent | None:
        for message in stream_messages(world.system.nats_url or ""):
            event = CloudEvent.from_json(message.data)
            data = event.data or {}
            if event.type.split(".")[-2] == "ToegangGeweigerd" and data.get("aanvraag_id") == str(
                aanvraag_id
            ):
                return event
        return None

    return wait_until(found, what="the refusal on the stream")


def _other_provider_token(tmp_path: Path) -> str:
    with running_provider(tmp_path / "elders", ACCOUNTS) as elders:
        return elders.person_token("sec-demo")


@pytest.mark.parametrize(
    ("case", "status", "reason"),
    [
        ("another_issuer", 401, "unknown_key"),
        ("expired", 401, "expired"),
        ("another_audience", 401, "wrong_audience"),
        ("a_person_on_an_internal_route", 403, "missing_role"),
        ("a_person_claiming_the_role_dienst", 401, "no_known_role"),
    ],
)
def test_hostile_tokens_are_refused_on_record(
    world: OidcWorld, tmp_path: Path, case: str, status: int, reason: str
) -> None:
    provider, intake = world.provider, world.system.url("intake")
    aanvraag_id = uuid.uuid4()
    method, path = "GET", f"/aanvragen/{aanvraag_id}"
    if case == "another_issuer":
        token = _other_provider_token(tmp_path)
    elif case == "expired":
        token = provider.short_token()
        time.sleep(2.1)
    elif case == "another_audience":
        token = provider.short_token(OTHER_AUDIENCE)
    elif case == "a_person_on_an_internal_route":
        token = provider.person_token("sec-demo")
        method, path = "POST", f"/internal/aanvragen/{aanvraag_id}/partij"
    else:
        token = provider.person_token("nep-dienst")
        method, path = "POST", f"/internal/aanvragen/{aanvraag_id}/partij"
    response = httpx.request(
        method,
        f"{intake}{path}",
        headers={"Authorization": f"Bearer {token}"},
        json={"email": None, "organisatie": None} if method == "POST" else None,
    )
    assert response.status_code == status, response.text
    assert response.json()["code"] == reason
    refusal = _refusal_on_stream(world, aanvraag_id)
    assert (refusal.data or {})["status_code"] == status


def test_a_services_token_carries_no_person_and_opens_only_internal_routes(
    world: OidcWorld,
) -> None:
    provider, intake = world.provider, world.system.url("intake")
    token = provider.client_token("weerbaar-scheduling", provider.service_secrets["scheduling"])
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["sub"] == claims["client_id"] == "weerbaar-scheduling"
    assert claims["aud"] == "urn:weerbaar:api"
    assert not {"roles", "email", "organisatie"} & claims.keys()
    headers = {"Authorization": f"Bearer {token}"}
    aanvraag_id = uuid.uuid4()
    internal = httpx.post(
        f"{intake}/internal/aanvragen/{aanvraag_id}/partij",
        headers=headers,
        json={"email": None, "organisatie": None},
    )
    assert internal.status_code == 404  # let in; intake knows no such dossier
    person_route = httpx.get(f"{intake}/aanvragen/{aanvraag_id}", headers=headers)
    assert person_route.status_code == 403
    assert person_route.json()["code"] == "missing_role"
    assert (_refusal_on_stream(world, aanvraag_id).data or {})["status_code"] == 403
