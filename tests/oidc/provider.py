"""A real OIDC provider on loopback for the tests: `oidc-provider` (npm, pinned in
``tests/oidc/provider/package-lock.json``) run by the machine's Node.js.

``npm ci`` installs it into ``tests/oidc/provider/node_modules`` (git-ignored) the first time,
so a fresh machine needs only Node.js 20 and npm; when that cannot work the test fails with one
line saying why, it is never skipped.

People's tokens come from the authorization-code flow with PKCE, driven by httpx through the
provider's development sign-in (any account id, no password) and consent pages: the same flow the
portal uses, with a public test client. Services' tokens come from the client credentials grant.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest

from shared.platform.settings import SERVICES
from tools.embedded import free_port

PROVIDER_DIR = Path(__file__).parent / "provider"
AUDIENCE = "urn:weerbaar:api"
OTHER_AUDIENCE = "urn:elders:api"
PEOPLE_CLIENT = "weerbaar-tests"
PEOPLE_REDIRECT = "http://127.0.0.1/terug"
SHORT_CLIENT = "weerbaar-kort"
PORTAL_CLIENT = "weerbaar-portal"
CLIENT_PREFIX = "weerbaar-"
MIN_NODE = 20


def install() -> None:
    """``npm ci`` the provider unless the pinned version is installed; fail saying why not."""
    marker = PROVIDER_DIR / "node_modules" / ".package-lock.json"
    lock = PROVIDER_DIR / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    node = shutil.which("node")
    if npm is None or node is None:
        pytest.fail("no Node.js/npm on PATH: install nodejs and npm (Node.js 20)", pytrace=False)
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    major = version.stdout.strip().lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < MIN_NODE:
        pytest.fail(f"oidc-provider 9 needs Node.js {MIN_NODE}+, found {major!r}", pytrace=False)
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=PROVIDER_DIR,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        pytest.fail(f"npm ci of the OIDC provider failed: {last}", pytrace=False)


@dataclass
class Provider:
    """A running provider: its issuer, the services' client secrets, the demo accounts."""

    issuer: str
    service_secrets: dict[str, str]
    short_secret: str
    portal_secret: str
    accounts: dict[str, dict[str, Any]]
    log_path: Path
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def jwks_url(self) -> str:
        """Where the provider publishes its signing keys."""
        return f"{self.issuer}/jwks"

    def issued(self) -> dict[str, int]:
        """How many tokens the provider issued, by client id."""
        answer: dict[str, int] = httpx.get(f"{self.issuer}/test/issued").json()
        return answer

    def write_service_secrets(self, directory: Path) -> None:
        """Each service's client secret in ``<directory>/<service>.secret`` (mode 0600)."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for service, secret in self.service_secrets.items():
            path = directory / f"{service}.secret"
            path.write_text(secret + "\n", encoding="utf-8")
            path.chmod(0o600)

    def system_env(self, secret_dir: Path) -> dict[str, str]:
        """The settings of a system in OIDC mode against this provider (the services' secrets
        and the portal's written to ``secret_dir``)."""
        self.write_service_secrets(secret_dir)
        portal = secret_dir / "portal.secret"
        portal.write_text(self.portal_secret + "\n", encoding="utf-8")
        portal.chmod(0o600)
        return {
            "WEERBAAR_AUTH_MODE": "oidc",
            "WEERBAAR_JWT_ISSUER": self.issuer,
            "WEERBAAR_JWT_AUDIENCE": AUDIENCE,
            "WEERBAAR_OIDC_JWKS_URL": self.jwks_url,
            "WEERBAAR_OIDC_CLIENT_SECRET_DIR": str(secret_dir),
        }

    def person_token(self, account: str, resource: str = AUDIENCE) -> str:
        """An access token for a demo account: the authorization-code flow with PKCE through
        the provider's sign-in and consent pages (cached per account)."""
        key = (account, resource)
        if key not in self.tokens:
            self.tokens[key] = code_flow(self.issuer, account, resource=resource)["access_token"]
        return self.tokens[key]

    def client_token(self, client_id: str, secret: str, resource: str = AUDIENCE) -> str:
        """An access token by the client credentials grant."""
        response = httpx.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials", "resource": resource},
            auth=(client_id, secret),
        )
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    def short_token(self, resource: str = AUDIENCE) -> str:
        """A token of the test's extra client for ``resource``: for the services' audience it
        lives 1 s, for another audience as long as any."""
        return self.client_token(SHORT_CLIENT, self.short_secret, resource)


def code_flow(
    issuer: str,
    account: str,
    *,
    resource: str = AUDIENCE,
    client_id: str = PEOPLE_CLIENT,
    redirect_uri: str = PEOPLE_REDIRECT,
    client_secret: str | None = None,
    scope: str = "openid email weerbaar",
) -> dict[str, Any]:
    """The token response of the authorization-code flow with PKCE for ``account``, signed in
    and consenting through the provider's development interaction pages."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    state = secrets.token_urlsafe(16)
    authorization_url = f"{issuer}/auth?" + urlencode(
        {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "scope": scope,
            "prompt": "consent",
            "resource": resource,
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    query = sign_in_at(issuer, authorization_url, account, redirect_uri)
    if query.get("state") != [state] or "code" not in query:
        raise AssertionError(f"the provider answered {query}")
    code = query["code"][0]
    with httpx.Client(base_url=issuer, follow_redirects=False, timeout=10) as client:
        body = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
            "resource": resource,
        }
        if client_secret is None:
            answer = client.post("/token", data={**body, "client_id": client_id})
        else:
            answer = client.post("/token", data=body, auth=(client_id, client_secret))
        answer.raise_for_status()
        tokens: dict[str, Any] = answer.json()
        return tokens


def sign_in_at(
    issuer: str,
    authorization_url: str,
    account: str,
    redirect_uri: str,
    client: httpx.Client | None = None,
) -> dict[str, list[str]]:
    """Follow an authorization URL through the provider's development sign-in (as ``account``,
    no password) and consent pages, up to the redirect to ``redirect_uri``: its query. Pass a
    ``client`` to keep the provider's session cookie afterwards (a browser's)."""
    if client is None:
        with httpx.Client(follow_redirects=False, timeout=10) as own:
            return sign_in_at(issuer, authorization_url, account, redirect_uri, own)
    response = client.get(authorization_url)
    # Sign in, then consent: each interaction answers a form post with a redirect back to
    # the authorization endpoint, which sends us to the next interaction or to the client.
    for _ in range(6):
        location = _location(issuer, response)
        if location.startswith(redirect_uri):
            return parse_qs(urlsplit(location).query)
        if urlsplit(location).path.startswith("/interaction/"):
            page = client.get(location)
            prompt = "login" if 'name="login"' in page.text else "consent"
            form = {"prompt": prompt}
            if prompt == "login":
                form.update(login=account, password="")
            response = client.post(location, data=form)
        else:
            response = client.get(location)
    raise AssertionError("the sign-in did not end at the client")


def _location(issuer: str, response: httpx.Response) -> str:
    if response.status_code not in (302, 303):
        raise AssertionError(f"expected a redirect, got {response.status_code}: {response.text}")
    return urljoin(issuer + "/", response.headers["location"])


@contextmanager
def running_provider(
    work_dir: Path,
    accounts: dict[str, dict[str, Any]],
    *,
    ttl_s: int = 600,
    portal_redirect_uri: str = "http://127.0.0.1:8000/auth/callback",
    portal_post_logout_uri: str = "http://127.0.0.1:8000/",
) -> Iterator[Provider]:
    """Install (once) and start the provider on a free loopback port; stop it afterwards.

    The portal's client (``PORTAL_CLIENT``, confidential: authorization code with PKCE and
    refresh tokens) accepts only ``portal_redirect_uri`` and, after logout,
    ``portal_post_logout_uri``; its secret is ``Provider.portal_secret``."""
    install()
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    service_secrets = {service: secrets.token_urlsafe(32) for service in SERVICES}
    short_secret = secrets.token_urlsafe(32)
    portal_secret = secrets.token_urlsafe(32)
    config = {
        "issuer": issuer,
        "port": port,
        "audience": AUDIENCE,
        "other_audience": OTHER_AUDIENCE,
        "access_token_ttl_s": ttl_s,
        "services": [
            {"client_id": f"{CLIENT_PREFIX}{s}", "client_secret": secret}
            for s, secret in service_secrets.items()
        ],
        "people_client": {"client_id": PEOPLE_CLIENT, "redirect_uri": PEOPLE_REDIRECT},
        "portal_client": {
            "client_id": PORTAL_CLIENT,
            "client_secret": portal_secret,
            "redirect_uri": portal_redirect_uri,
            "post_logout_redirect_uri": portal_post_logout_uri,
        },
        "short_client": {"client_id": SHORT_CLIENT, "client_secret": short_secret, "ttl_s": 1},
        "accounts": accounts,
    }
    work_dir.mkdir(parents=True, exist_ok=True)
    config_path = work_dir / "provider.json"
    config_path.write_text(json.dumps(config), encoding="utf-8")
    config_path.chmod(0o600)
    log_path = work_dir / "provider.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["node", str(PROVIDER_DIR / "server.js"), str(config_path)],
            cwd=PROVIDER_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_listening(issuer, process, log_path)
        yield Provider(issuer, service_secrets, short_secret, portal_secret, accounts, log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_listening(issuer: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-500:]
            pytest.fail(f"the OIDC provider stopped at start: {tail}", pytrace=False)
        try:
            if httpx.get(f"{issuer}/.well-known/openid-configuration").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail("the OIDC provider did not answer within 30 s", pytrace=False)
