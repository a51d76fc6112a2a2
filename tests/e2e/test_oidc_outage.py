"""OIDC mode when the provider gives a service no token: that call answers 503, the process runs on.

The people's tokens are the real provider's; the services are told a token endpoint where nothing
listens (``WEERBAAR_OIDC_TOKEN_URL``), as when the provider's token endpoint is down.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from shared.platform.settings import SERVICES
from tests import servers
from tests.oidc.provider import Provider, running_provider
from tests.support import reset_streams, settings_for
from tools.embedded import free_port
from tools.mailcatcher import MailCatcher
from tools.system import System

pytestmark = pytest.mark.e2e


@dataclass
class Outage:
    system: System
    provider: Provider


@pytest.fixture(scope="module")
def outage(
    tmp_path_factory: pytest.TempPathFactory, postgres_server_url: str, nats_url: str
) -> Iterator[Outage]:
    """The five services in oidc mode whose token endpoint does not answer."""
    base = tmp_path_factory.mktemp("oidc-outage")
    database = servers.create_database(postgres_server_url)
    reset_streams(settings_for(database, nats_url, base))
    catcher = MailCatcher(base / "mail", port=0)
    catcher.start()
    accounts = {"bst-demo": {"roles": ["bestuurder"], "email": "bestuurder.uitval@example.org"}}
    try:
        with running_provider(base / "provider", accounts) as provider:
            system = System(
                data_dir=base / "data",
                database_url=database,
                nats_url=nats_url,
                smtp=("127.0.0.1", catcher.port),
                extra_env={
                    **provider.system_env(base / "oidc-secrets"),
                    "WEERBAAR_OIDC_TOKEN_URL": f"http://127.0.0.1:{free_port()}/token",
                },
                preferred_ports={s: free_port() for s in SERVICES},
            )
            system.data_dir.mkdir()
            system.start_services(timeout=90)
            try:
                yield Outage(system, provider)
            finally:
                system.stop()
    finally:
        catcher.stop()
        servers.drop_database(postgres_server_url, database)


def test_no_service_token_fails_the_call_with_a_503_not_the_process(outage: Outage) -> None:
    system, provider = outage.system, outage.provider
    bestuurder = {"Authorization": f"Bearer {provider.person_token('bst-demo')}"}
    # Scheduling must ask intake (with its own token) who the caller is in the dossier.
    for _ in range(2):
        answer = httpx.post(
            f"{system.url('scheduling')}/aanvragen/{uuid.uuid4()}/toelichting", headers=bestuurder
        )
        assert answer.status_code == 503, answer.text
        assert answer.json()["code"] == "idp_diensttoken_onbereikbaar"
    assert httpx.get(f"{system.url('scheduling')}/health/live").status_code == 200
    assert all(p.process.poll() is None for p in system.processes)
    logs = "".join(
        p.log_path.read_text(encoding="utf-8", errors="replace") for p in system.processes
    )
    assert "no service token from the OIDC provider" in logs
    assert not any(secret in logs for secret in provider.service_secrets.values())
