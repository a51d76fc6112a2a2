"""A service's own access tokens from the OIDC provider (OAuth 2.0 client credentials).

In OIDC mode a service that calls another's internal API asks the provider for a token as its
own client (``weerbaar-<service>``, secret from a file), for the API's audience (a resource
indicator, RFC 8707). The token is kept until shortly before it expires, then fetched again. A
provider that cannot be reached or refuses fails the call with a 503 (``NietBeschikbaar``) when no
token is left that still holds; a token that is due for renewal but not expired is used until it
expires. After a failure the provider is not asked again for a while (1 s, doubling to 30 s while
it keeps failing): calls in between fail at once instead of each waiting out a timeout behind the
others. The process keeps running; the first call after the pause asks again. The secret is never
logged nor put in an error.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import httpx

from shared.platform.discovery import OngeldigDocument, lees_discovery
from shared.platform.errors import NietBeschikbaar

__all__ = ["IDP_TOKEN_CODE", "ClientCredentials", "read_client_secret"]

log = logging.getLogger(__name__)

#: The problem code of the 503 when the provider gave no service token (named in the runbook).
IDP_TOKEN_CODE: Final = "idp_diensttoken_onbereikbaar"  # noqa: S105 - a problem code
#: A token is fetched again when it has less than this left, or a tenth of its lifetime.
REFRESH_MARGIN_S: Final = 30.0
#: After a failed fetch the provider is asked again after this long, doubling to the maximum.
RETRY_AFTER_S: Final = 1.0
RETRY_AFTER_MAX_S: Final = 30.0


def read_client_secret(path: Path) -> str:
    """The client secret in ``path`` (surrounding whitespace dropped); exits naming the file
    (never its content) when it is missing or empty."""
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SystemExit(
            f"weerbaar: the OIDC client secret file {path} cannot be read"
            f" ({type(exc).__name__}): see WEERBAAR_OIDC_CLIENT_SECRET_DIR"
        ) from None
    if not secret:
        raise SystemExit(f"weerbaar: the OIDC client secret file {path} is empty")
    return secret


@dataclass
class _Held:
    value: str
    renew_at: float
    expires_at: float


class ClientCredentials:
    """Gives this service's current access token, fetching one when none is fresh enough."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        client_secret: str,
        audience: str,
        *,
        token_url: str | None = None,
        timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.audience = audience
        self._token_url = token_url
        self._clock = clock
        self._client = httpx.Client(timeout=timeout_s, transport=transport)
        self._lock = threading.Lock()
        self._held: _Held | None = None
        self._failures = 0
        self._pause_until = -math.inf

    def __repr__(self) -> str:
        # Never the secret, whatever prints this object.
        return f"ClientCredentials(client_id={self.client_id!r}, issuer={self.issuer!r})"

    def __call__(self) -> str:
        """The token to send as ``Authorization: Bearer …``; 503 when the provider gives none
        and none is held that still holds."""
        with self._lock:
            now = self._clock()
            held = self._held
            if held is not None and now < held.renew_at:
                return held.value
            usable = held is not None and now < held.expires_at
            if now < self._pause_until:
                if held is not None and usable:
                    return held.value
                raise _no_token()
            try:
                fresh = self._held = self._fetch()
            except NietBeschikbaar:
                self._failures += 1
                pause = min(RETRY_AFTER_MAX_S, RETRY_AFTER_S * 2 ** (self._failures - 1))
                self._pause_until = self._clock() + pause
                if held is not None and usable:
                    log.warning(
                        "service token not renewed; the one held is used until it expires",
                        extra={"client_id": self.client_id, "seconds_left": held.expires_at - now},
                    )
                    return held.value
                raise
            self._failures = 0
            self._pause_until = -math.inf
            return fresh.value

    def _fetch(self) -> _Held:
        asked_at = self._clock()
        try:
            response = self._client.post(
                self._endpoint(),
                data={"grant_type": "client_credentials", "resource": self.audience},
                auth=(self.client_id, self._secret),
            )
        except httpx.HTTPError as exc:
            raise self._unavailable(type(exc).__name__) from None
        if response.status_code != 200:
            raise self._unavailable(f"status {response.status_code}", _oauth_error(response))
        try:
            body = response.json()
            value = body["access_token"]
            lifetime = float(body.get("expires_in", 60))
        except (ValueError, KeyError, TypeError):
            raise self._unavailable("an answer without a token") from None
        if not isinstance(value, str) or not value:
            raise self._unavailable("an answer without a token")
        if not math.isfinite(lifetime) or lifetime <= 0:
            # "nan" or "inf" would keep the token for ever; a past one is no token at all.
            raise self._unavailable("an answer with a lifetime that is no lifetime")
        margin = min(REFRESH_MARGIN_S, lifetime / 10)
        return _Held(
            value=value,
            renew_at=asked_at + max(lifetime - margin, 0.0),
            expires_at=asked_at + lifetime,
        )

    def _endpoint(self) -> str:
        if self._token_url is None:
            try:
                document = lees_discovery(self.issuer, self._client.get, ("token_endpoint",))
            except httpx.HTTPError as exc:
                raise self._unavailable(f"discovery failed ({type(exc).__name__})") from None
            except OngeldigDocument as exc:
                raise self._unavailable(f"discovery document {exc}") from None
            self._token_url = str(document["token_endpoint"])
        return self._token_url

    def _unavailable(self, what: str, oauth_error: str | None = None) -> NietBeschikbaar:
        log.error(
            "no service token from the OIDC provider",
            extra={"client_id": self.client_id, "reason": what, "oauth_error": oauth_error},
        )
        return _no_token()


def _no_token() -> NietBeschikbaar:
    return NietBeschikbaar("De identity provider gaf deze dienst geen token.", code=IDP_TOKEN_CODE)


def _oauth_error(response: httpx.Response) -> str | None:
    # Only the standard error code: the description could repeat what was sent.
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    return error if isinstance(error, str) else None
