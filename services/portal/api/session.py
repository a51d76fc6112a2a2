"""The signed-in session: an encrypted, authenticated HttpOnly cookie (AES-GCM).

The cookie holds who is signed in, their tokens (OIDC: the access, refresh and ID token) and a
CSRF token (and, until the one page after a webhook subscription is made has shown it, that
subscription's secret); an anonymous visitor's holds only the CSRF token (and, on the way out
through the provider, the sign-out's state). Anything the cookie does not decrypt to
(tampered, made with another key, expired, malformed) is treated as no session at all, never
as an error.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

COOKIE_NAME = "weerbaar_sessie"
#: Bound to the cookie's name and format: a ciphertext made for anything else does not open.
_ASSOCIATED_DATA = b"weerbaar-portal-sessie-v1"
_NONCE_BYTES = 12
#: A cookie longer than browsers keep is never ours.
MAX_COOKIE_CHARS = 4096


@dataclass
class Sessie:
    """What the cookie carries."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    #: Unix time after which the session is no longer valid.
    verloopt: float = 0.0
    sub: str | None = None
    rol: str | None = None
    token: str | None = None
    #: Unix time at which ``token`` expires (OIDC: renewed with ``ververs`` before then).
    token_verloopt: float | None = None
    #: The provider's refresh token (OIDC).
    ververs: str | None = None
    #: The provider's ID token (OIDC): the ``id_token_hint`` of the sign-out, nothing else.
    id_token: str | None = None
    #: A sign-in under way at the provider (OIDC): its state and PKCE verifier.
    oidc_state: str | None = None
    oidc_verifier: str | None = None
    #: A sign-out under way at the provider (OIDC, in the new anonymous session): the state
    #: it must send back to ``/uitgelogd``.
    uitlog_state: str | None = None
    #: A one-time note for the next page (e.g. the confirmation), never personal data.
    melding: str | None = None
    #: A webhook subscription just made (its id and secret), for the one page after the
    #: redirect that shows its secret; taken there (the secret is shown once).
    aangemaakt: dict[str, str] | None = None

    @property
    def ingelogd(self) -> bool:
        """Whether someone is signed in."""
        return self.token is not None


class SessieSleutel:
    """Seals and opens session cookies with one AES-256-GCM key."""

    def __init__(self, key: bytes, levensduur_s: float) -> None:
        if len(key) != 32:
            raise ValueError("the session key must be 32 bytes")
        self._aead = AESGCM(key)
        self.levensduur_s = levensduur_s

    def nieuw(self, now: float | None = None) -> Sessie:
        """A fresh anonymous session."""
        return Sessie(verloopt=(now or time.time()) + self.levensduur_s)

    def seal(self, sessie: Sessie) -> str:
        """The cookie value of a session."""
        nonce = secrets.token_bytes(_NONCE_BYTES)
        plain = json.dumps(asdict(sessie), separators=(",", ":")).encode()
        sealed = nonce + self._aead.encrypt(nonce, plain, _ASSOCIATED_DATA)
        return base64.urlsafe_b64encode(sealed).decode().rstrip("=")

    def open(self, value: str | None, now: float | None = None) -> Sessie | None:
        """The session in a cookie value, or None when there is no valid one."""
        if not value or len(value) > MAX_COOKIE_CHARS:
            return None
        try:
            sealed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            if len(sealed) <= _NONCE_BYTES:
                return None
            plain = self._aead.decrypt(
                sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], _ASSOCIATED_DATA
            )
            data: Any = json.loads(plain)
            sessie = Sessie(**data)
        except (InvalidTag, binascii.Error, ValueError, TypeError):
            return None
        if not isinstance(sessie.csrf, str) or not isinstance(sessie.verloopt, int | float):
            return None
        if sessie.verloopt <= (now or time.time()):
            return None
        return sessie
