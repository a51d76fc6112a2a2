"""The portal's adapters: the services' HTTP APIs, and signing in (embedded mode).

``HttpApis`` calls the five APIs with the signed-in person's own token and turns each answer
into a typed outcome; it never logs a body (it carries personal data). ``EmbeddedInloggen``
issues the demo people's tokens with the local secret, as ``weerbaar token`` does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import httpx

from services.portal.application import (
    Conflict,
    Gelukt,
    Geweigerd,
    Ingelogd,
    NietGevonden,
    NietIngelogd,
    Onbereikbaar,
    Ongeldig,
    Persoon,
    TeVaak,
    Uitkomst,
    VeldFout,
)
from shared.platform.auth import issue_token

log = logging.getLogger("weerbaar.portal")

#: The answer a service may take before the page says it is unavailable.
TIMEOUT_S = 10.0


#: The answers that need nothing of the body.
_ZONDER_BODY: dict[int, Uitkomst] = {
    401: NietIngelogd(),
    403: Geweigerd(),
    404: NietGevonden(),
    429: TeVaak(),
}


def uitkomst_van(response: httpx.Response) -> Uitkomst:
    """The typed outcome of an API answer (401/403/404/409/422/429 and the rest)."""
    status = response.status_code
    if 200 <= status < 300:
        return Gelukt(_json(response) if response.content else {})
    if status in _ZONDER_BODY:
        return _ZONDER_BODY[status]
    if status == 409:
        detail = _json(response).get("detail")
        return Conflict(detail if isinstance(detail, str) else None)
    if status == 422:
        errors = _json(response).get("errors")
        return Ongeldig(
            tuple(
                VeldFout(str(error.get("field", "")), str(error.get("rule", "")))
                for error in (errors if isinstance(errors, list) else [])
                if isinstance(error, dict)
            )
        )
    return Onbereikbaar()


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


class HttpApis:
    """The services' APIs over HTTP, as one person (``token``) or anonymously."""

    def __init__(
        self,
        urls: Mapping[str, str],
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._urls = dict(urls)
        self._token = token
        self._transport = transport

    def als(self, token: str | None) -> HttpApis:
        """The same APIs, called with another person's token."""
        return HttpApis(self._urls, token, self._transport)

    def _call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Uitkomst:
        sent = dict(headers or {})
        if self._token is not None:
            sent["Authorization"] = f"Bearer {self._token}"
        try:
            with httpx.Client(
                base_url=self._urls[service], timeout=TIMEOUT_S, transport=self._transport
            ) as client:
                response = client.request(method, path, json=json, headers=sent)
        except httpx.HTTPError as exc:
            # The method and the service, never the path's ids or the body.
            log.warning(
                "service unreachable",
                extra={"service": service, "method": method, "error_type": type(exc).__name__},
            )
            return Onbereikbaar()
        if response.status_code >= 500:
            log.warning(
                "service error",
                extra={"service": service, "method": method, "status": response.status_code},
            )
        return uitkomst_van(response)

    def dien_aanvraag_in(self, aanmelding: Mapping[str, Any], idempotency_key: str) -> Uitkomst:
        """Intake's public registration."""
        return self._call(
            "intake",
            "POST",
            "/aanvragen",
            json=dict(aanmelding),
            headers={"Idempotency-Key": idempotency_key},
        )


#: The demo people of the development sign-in, as ``weerbaar demo`` names its actors.
DEMO_PERSONEN: tuple[tuple[Persoon, dict[str, str]], ...] = (
    (Persoon("sec-demo", "secretariaat", "Medewerker secretariaat CCV"), {}),
    (Persoon("adv-demo", "adviseur", "Adviseur CCV"), {}),
    (Persoon("bva-demo", "bva", "Toetser Beveiligingsautoriteit"), {}),
    (
        Persoon("bst-demo", "bestuurder", "Bestuurder (bestuurder@example.org)"),
        {"email": "bestuurder@example.org"},
    ),
    (
        Persoon("wg-demo", "werkgever", "Werkgever (organisatie GM0344)"),
        {"organisatie": "GM0344"},
    ),
    (Persoon("cmp-demo", "compliance", "Compliance officer"), {}),
)


class EmbeddedInloggen:
    """Development sign-in: the demo people, with tokens signed by the local secret."""

    def __init__(self, secret: bytes, issuer: str, audience: str) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience

    def personen(self) -> list[Persoon]:
        """The demo people, one per role."""
        return [persoon for persoon, _ in DEMO_PERSONEN]

    def log_in(self, sleutel: str) -> Ingelogd | None:
        """A token for the demo person with this key."""
        for persoon, claims in DEMO_PERSONEN:
            if persoon.sleutel == sleutel:
                token = issue_token(
                    self._secret,
                    role=persoon.rol,
                    sub=persoon.sleutel,
                    email=claims.get("email"),
                    organisatie=claims.get("organisatie"),
                    issuer=self._issuer,
                    audience=self._audience,
                )
                return Ingelogd(sub=persoon.sleutel, rol=persoon.rol, token=token)
        return None
