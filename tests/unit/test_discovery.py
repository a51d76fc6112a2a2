"""The provider's discovery document, read once for the services and the portal: only the
configured issuer's own, with the endpoints the caller needs; anything else a clear refusal."""

from __future__ import annotations

import httpx
import pytest

from shared.platform.discovery import OngeldigDocument, lees_discovery

ISSUER = "https://idp.example.test/realm"
DOCUMENT = {"issuer": ISSUER, "token_endpoint": f"{ISSUER}/token"}


def antwoord(status: int = 200, **kw: object) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", ISSUER), **kw)  # type: ignore[arg-type]


def test_the_issuers_document_is_read_at_its_well_known_address() -> None:
    gevraagd: list[str] = []

    def get(url: str) -> httpx.Response:
        gevraagd.append(url)
        return antwoord(json=DOCUMENT)

    assert lees_discovery(f"{ISSUER}/", get, ("token_endpoint",)) == DOCUMENT
    assert gevraagd == [f"{ISSUER}/.well-known/openid-configuration"]
    # An issuer written with a trailing slash in the document is the same issuer.
    met_slash = {**DOCUMENT, "issuer": f"{ISSUER}/"}
    assert lees_discovery(ISSUER, lambda _: antwoord(json=met_slash), ("token_endpoint",))


@pytest.mark.parametrize(
    "inhoud",
    [
        {"json": {**DOCUMENT, "issuer": "https://elders.example.test"}},
        {"json": {**DOCUMENT, "issuer": 5}},
        {"json": {"token_endpoint": f"{ISSUER}/token"}},
        {"json": {**DOCUMENT, "token_endpoint": None}},
        {"json": {**DOCUMENT, "token_endpoint": {"url": "x"}}},
        {"json": [DOCUMENT]},
        {"json": None},
        {"content": b"<html>not json</html>"},
        {"content": b"\xff\xfe\x00"},
    ],
    ids=lambda d: repr(d)[:50],
)
def test_anything_but_the_issuers_usable_document_is_refused(inhoud: dict[str, object]) -> None:
    with pytest.raises(OngeldigDocument):
        lees_discovery(ISSUER, lambda _: antwoord(**inhoud), ("token_endpoint",))


def test_a_provider_that_answers_with_an_error_is_the_transports_error() -> None:
    with pytest.raises(httpx.HTTPStatusError):
        lees_discovery(ISSUER, lambda _: antwoord(503, json=DOCUMENT), ("token_endpoint",))
