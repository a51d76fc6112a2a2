"""Calling a service's API: the person's token, the visitor's address, typed outcomes.

Every answer becomes a typed outcome (401/403/404/409/422/429/5xx); no body is ever logged (it
carries personal data), nor a path (it carries ids).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Self

import httpx

from services.portal.application.uitkomsten import (
    Bestand,
    Conflict,
    Gelukt,
    Geweigerd,
    NietGevonden,
    NietIngelogd,
    Onbereikbaar,
    Ongeldig,
    TeVaak,
    Uitkomst,
    VeldFout,
)

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
        return _gelukt(response)
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


def _gelukt(response: httpx.Response) -> Gelukt:
    """A 2xx: its object, or its list (the list API's answer, with the next page's address
    when its ``Link`` header gives one)."""
    body = _body(response) if response.content else {}
    if isinstance(body, list):
        volgende = response.links.get("next", {}).get("url")
        return Gelukt({}, tuple(item for item in body if isinstance(item, dict)), volgende)
    return Gelukt(body if isinstance(body, dict) else {})


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {}


def _json(response: httpx.Response) -> dict[str, Any]:
    body = _body(response)
    return body if isinstance(body, dict) else {}


class HttpBasis:
    """One person's (``token``) calls to the services at ``urls``, on behalf of a visitor
    (``herkomst``: the ``X-Forwarded-For`` value sent on), leaving from ``bron_adres`` when
    given (the address the services trust as the portal's).

    Every person's calls go through one connection pool (``httpx.Client``, safe to share
    between the portal's worker threads): a page that asks three services opens no new
    connection for each. The token and the visitor go with each request, never with the
    pool."""

    def __init__(
        self,
        urls: Mapping[str, str],
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
        *,
        herkomst: str | None = None,
        bron_adres: str | None = None,
        pool: httpx.Client | None = None,
    ) -> None:
        self._urls = dict(urls)
        self._token = token
        self._herkomst = herkomst
        self._bron_adres = bron_adres
        self._transport = transport
        self._pool = pool or httpx.Client(
            timeout=TIMEOUT_S,
            transport=self._verbinding(),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            # The portal's calls name their services; no redirect is followed anywhere.
            follow_redirects=False,
        )

    def als(self, token: str | None, herkomst: str | None = None) -> Self:
        """The same APIs, called with another person's token for a visitor at ``herkomst``."""
        return type(self)(
            self._urls,
            token,
            self._transport,
            herkomst=herkomst,
            bron_adres=self._bron_adres,
            pool=self._pool,
        )

    def _verbinding(self) -> httpx.BaseTransport | None:
        if self._transport is not None or self._bron_adres is None:
            return self._transport
        return httpx.HTTPTransport(local_address=self._bron_adres)

    def _kop(self, headers: Mapping[str, str] | None = None) -> dict[str, str]:
        sent = dict(headers or {})
        if self._token is not None:
            sent["Authorization"] = f"Bearer {self._token}"
        if self._herkomst is not None:
            sent["X-Forwarded-For"] = self._herkomst
        return sent

    def _call(
        self,
        service: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str | int] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Uitkomst:
        try:
            response = self._pool.request(
                method,
                f"{self._urls[service]}{path}",
                json=json,
                params=dict(params or {}),
                headers=self._kop(headers),
            )
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

    def _bestand(
        self, service: str, path: str, params: Mapping[str, str | int], media_type: str
    ) -> Bestand | Uitkomst:
        """A GET whose 2xx answer is a document of ``media_type`` (an export), passed on as
        it arrives; any other answer is an outcome as ``_call`` makes it."""
        try:
            request = self._pool.build_request(
                "GET", f"{self._urls[service]}{path}", params=dict(params), headers=self._kop()
            )
            response = self._pool.send(request, stream=True)
        except httpx.HTTPError as exc:
            log.warning(
                "service unreachable",
                extra={"service": service, "method": "GET", "error_type": type(exc).__name__},
            )
            return Onbereikbaar()

        def sluit() -> None:
            response.close()

        if not 200 <= response.status_code < 300:
            try:
                response.read()
            except httpx.HTTPError:
                return Onbereikbaar()
            finally:
                sluit()
            return uitkomst_van(response)
        gekregen = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if gekregen != media_type:
            sluit()
            # Only the type asked for is passed on, never whatever a service answered.
            log.warning(
                "unexpected content type",
                extra={"service": service, "method": "GET", "content_type": gekregen},
            )
            return Onbereikbaar()
        return Bestand(response.iter_bytes(), media_type, sluit)
