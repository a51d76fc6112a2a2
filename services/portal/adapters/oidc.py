"""Signing in, OIDC mode: the authorization-code flow with PKCE at the provider (authlib).

The portal is a confidential client (``client_secret_basic``). It asks the provider for an
access token for the services' API (the resource indicator of RFC 8707 names the audience), and
checks that token exactly as the services do (``OidcTokenVerifier``: signature from the
provider's keys, issuer, audience, expiry) before anyone counts as signed in: the role the
portal shows comes from that token, never from anything the browser sent. The refresh token
(``offline_access``) lets a session outlive one access token; signing out revokes it and ends
the provider's session, with the ID token of the sign-in as the hint of whose session that is.
Tokens never appear in a log line.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client, OAuthError

from services.portal.application.ports import (
    HERKOMST,
    AanbiederOnbereikbaar,
    Afmelding,
    Doorverwijzing,
    Ingelogd,
)
from shared.platform.auth import TokenVerifier
from shared.platform.discovery import OngeldigDocument, lees_discovery
from shared.platform.errors import NietBeschikbaar, NietIngelogd

log = logging.getLogger("weerbaar.portal.oidc")

#: ``offline_access``: a refresh token; ``weerbaar``: the roles and the claims that bind a
#: person to dossiers (their e-mail address, their organisation).
SCOPE = "openid email weerbaar offline_access"
#: The endpoints a provider's discovery document must name.
NODIG = ("authorization_endpoint", "token_endpoint")
#: The endpoints the browser is sent to (its forms must be allowed to go there).
IN_DE_BROWSER = ("authorization_endpoint", "end_session_endpoint")


def herkomst_van(url: str) -> str | None:
    """The origin of an http(s) URL as a CSP source (None: the URL has none that could
    stand there, e.g. another scheme, credentials, or characters a policy would read)."""
    try:
        deel = urlsplit(url)
    except ValueError:
        return None
    herkomst = f"{deel.scheme}://{deel.netloc}"
    return herkomst if HERKOMST.fullmatch(herkomst) else None


def einde_sessie_url(
    einde: str,
    *,
    client_id: str,
    post_logout_redirect_uri: str,
    state: str,
    id_token: str | None,
) -> str:
    """The provider's end-session URL (OpenID Connect RP-Initiated Logout 1.0).

    With the session's ID token as ``id_token_hint`` the provider knows whose session ends and
    that the request is the portal's, so it need not ask the person to confirm, and it accepts
    the ``post_logout_redirect_uri``; without one (a session from before the portal kept it)
    the ``client_id`` alone names the portal. The ``state`` comes back to ``/uitgelogd``.
    """
    params = {
        "client_id": client_id,
        "post_logout_redirect_uri": post_logout_redirect_uri,
        "state": state,
    }
    if id_token:
        params["id_token_hint"] = id_token
    return f"{einde}{'&' if '?' in einde else '?'}{urlencode(params)}"


class OidcAanbieder:
    """The ``Aanbieder`` port at one OpenID Connect provider (found by its discovery document,
    read once and kept)."""

    def __init__(
        self,
        issuer: str,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        post_logout_redirect_uri: str,
        audience: str,
        verifier: TokenVerifier,
        rollen: Sequence[str],
        timeout_s: float = 5.0,
    ) -> None:
        self._issuer = issuer.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._redirect_uri = redirect_uri
        self._post_logout = post_logout_redirect_uri
        self._audience = audience
        self._verifier = verifier
        #: The roles the portal knows, in the order in which one is chosen for a person who
        #: holds several.
        self._rollen = tuple(rollen)
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._configuratie: dict[str, Any] | None = None
        self._herkomsten = self._herkomsten_van([self._issuer])

    @property
    def herkomsten(self) -> tuple[str, ...]:
        """The issuer's origin, and those of the authorization and end-session endpoints once
        the discovery document is read (it is read before any form sends the browser on).
        Every response asks, on the event loop: an attribute set once per document, read
        without the lock (which a discovery holds while it waits for the provider)."""
        return self._herkomsten

    @staticmethod
    def _herkomsten_van(urls: Sequence[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(h for h in map(herkomst_van, urls) if h is not None))

    def begin(self) -> Doorverwijzing:
        """The provider's authorization URL with a fresh state and PKCE challenge (S256)."""
        eindpunten = self._eindpunten()
        verifier = generate_token(64)
        with self._client() as client:
            url, state = client.create_authorization_url(
                eindpunten["authorization_endpoint"],
                code_verifier=verifier,
                resource=self._audience,
                # The provider asks for consent once more, so offline_access (a refresh
                # token) is granted (OpenID Connect Core 11).
                prompt="consent",
            )
        return Doorverwijzing(url=url, state=state, verifier=verifier)

    def rond_af(self, code: str, verifier: str) -> Ingelogd | None:
        """Exchange the code (with the PKCE verifier) for tokens and check the access token."""
        eindpunten = self._eindpunten()
        with self._client() as client:
            try:
                token = client.fetch_token(
                    eindpunten["token_endpoint"],
                    grant_type="authorization_code",
                    code=code,
                    code_verifier=verifier,
                    resource=self._audience,
                )
            except OAuthError as exc:
                log.warning("sign-in refused by the provider", extra={"error": exc.error})
                return None
            except (httpx.HTTPError, ValueError) as exc:
                raise self._onbereikbaar("token", exc) from None
        return self._ingelogd(token, None)

    def ververs(self, ververs_token: str) -> Ingelogd | None:
        """A new access token for the refresh token (None: the provider refused it)."""
        eindpunten = self._eindpunten()
        with self._client() as client:
            try:
                token = client.refresh_token(
                    eindpunten["token_endpoint"],
                    refresh_token=ververs_token,
                    resource=self._audience,
                )
            except OAuthError as exc:
                log.info("token refresh refused by the provider", extra={"error": exc.error})
                return None
            except (httpx.HTTPError, ValueError) as exc:
                raise self._onbereikbaar("refresh", exc) from None
        # A provider that does not rotate refresh tokens answers without one: keep the old.
        return self._ingelogd(token, ververs_token)

    def uitloggen(self, ververs_token: str | None, id_token: str | None) -> Afmelding:
        """Revoke the refresh token (best effort) and the provider's sign-out, with the ID
        token as its hint and a fresh state (the portal's own page when the provider cannot
        be reached or offers no sign-out)."""
        try:
            eindpunten = self._eindpunten()
        except AanbiederOnbereikbaar:
            return Afmelding(self._post_logout, None)
        intrekken = eindpunten.get("revocation_endpoint")
        if ververs_token and not isinstance(intrekken, str):
            log.warning(
                "the provider offers no revocation: the refresh token lives until it expires"
            )
        if ververs_token and isinstance(intrekken, str):
            with self._client() as client:
                try:
                    client.revoke_token(
                        intrekken,
                        token=ververs_token,
                        token_type_hint="refresh_token",  # noqa: S106 - a hint's name
                    )
                except (OAuthError, httpx.HTTPError, ValueError) as exc:
                    # The portal's session ends whatever the provider answers; the refresh
                    # token then lives until the provider's own expiry.
                    log.warning(
                        "refresh token not revoked", extra={"error_type": type(exc).__name__}
                    )
        einde = eindpunten.get("end_session_endpoint")
        if not isinstance(einde, str):
            return Afmelding(self._post_logout, None)
        state = generate_token(32)
        url = einde_sessie_url(
            einde,
            client_id=self._client_id,
            post_logout_redirect_uri=self._post_logout,
            state=state,
            id_token=id_token,
        )
        return Afmelding(url, state)

    def _client(self) -> OAuth2Client:
        return OAuth2Client(
            client_id=self._client_id,
            client_secret=self._client_secret,
            token_endpoint_auth_method="client_secret_basic",  # noqa: S106 - a method's name
            redirect_uri=self._redirect_uri,
            scope=SCOPE,
            code_challenge_method="S256",
            timeout=self._timeout_s,
            follow_redirects=False,
        )

    def _ingelogd(self, token: dict[str, Any], ververs_oud: str | None) -> Ingelogd | None:
        access = token.get("access_token")
        if not isinstance(access, str):
            log.warning("the provider answered without an access token")
            return None
        try:
            principal = self._verifier.verify(access)
        except NietIngelogd as exc:
            # A token the services would refuse (another audience, no role of the process):
            # nobody is signed in with it.
            log.warning("provider's token refused", extra={"reason": exc.code})
            return None
        except NietBeschikbaar as exc:
            raise self._onbereikbaar("jwks", exc) from None
        rol = next((r for r in self._rollen if r in principal.roles), None)
        if rol is None:
            log.warning("provider's token names no role of the portal")
            return None
        verloopt = token.get("expires_at")
        nieuw = token.get("refresh_token")
        # Kept only to hand back to the provider that issued it, as the hint at sign-out:
        # nobody is signed in by it (the access token above decides who and which role).
        id_token = token.get("id_token")
        return Ingelogd(
            sub=principal.sub,
            rol=rol,
            token=access,
            token_verloopt=float(verloopt) if isinstance(verloopt, int | float) else None,
            ververs_token=nieuw if isinstance(nieuw, str) else ververs_oud,
            id_token=id_token if isinstance(id_token, str) and id_token else None,
        )

    def _eindpunten(self) -> dict[str, Any]:
        with self._lock:
            if self._configuratie is not None:
                return self._configuratie
            try:
                document = lees_discovery(
                    self._issuer,
                    lambda url: httpx.get(url, timeout=self._timeout_s, follow_redirects=False),
                    NODIG,
                )
            except httpx.HTTPError as exc:
                raise self._onbereikbaar("discovery", exc) from None
            except OngeldigDocument:
                document = None
            if document is None or not _browser_eindpunten_passen(document):
                # Another provider's document (or none at all): never sign anyone in by it.
                log.error("the provider's discovery document does not match its issuer")
                raise AanbiederOnbereikbaar("discovery document does not match")
            self._herkomsten = self._herkomsten_van(
                [self._issuer, *(document[n] for n in IN_DE_BROWSER if n in document)]
            )
            self._configuratie = document
            return document

    @staticmethod
    def _onbereikbaar(stap: str, exc: Exception) -> AanbiederOnbereikbaar:
        log.error(
            "identity provider unavailable",
            extra={"step": stap, "error_type": type(exc).__name__},
        )
        return AanbiederOnbereikbaar(stap)


def _browser_eindpunten_passen(document: dict[str, Any]) -> bool:
    """Whether the endpoints the browser is sent to are at http(s) origins (a CSP names them)."""
    return all(
        isinstance(document[naam], str) and herkomst_van(document[naam]) is not None
        for naam in IN_DE_BROWSER
        if naam in document
    )
