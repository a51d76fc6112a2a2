"""An OpenID Connect provider's discovery document, read and checked in one place.

The services (their own tokens, ``servicetokens``) and the portal (people's sign-in) both find
the provider's endpoints in ``<issuer>/.well-known/openid-configuration``. A document is used
only when it is a JSON object that names the configured issuer (OpenID Connect Discovery 1.0,
4.3: anything else is another provider's, or no provider's) and every endpoint the caller needs
as a string. Whatever the provider answers, the outcome is the document or ``OngeldigDocument``
/ the transport's own error: never another exception from the document's content.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx

__all__ = ["OngeldigDocument", "lees_discovery"]


class OngeldigDocument(Exception):
    """The provider answered, but not with its own usable discovery document (the reason is a
    fixed text, never the document's content)."""


def lees_discovery(
    issuer: str, get: Callable[[str], httpx.Response], nodig: Sequence[str]
) -> dict[str, Any]:
    """The issuer's discovery document, fetched with ``get``; raises ``httpx.HTTPError`` when
    the provider cannot be reached or answers with an error, ``OngeldigDocument`` when the
    answer is not the issuer's usable document."""
    issuer = issuer.rstrip("/")
    answer = get(f"{issuer}/.well-known/openid-configuration")
    answer.raise_for_status()
    try:
        document = answer.json()
    except ValueError:
        raise OngeldigDocument("not JSON") from None
    if not isinstance(document, dict):
        raise OngeldigDocument("not an object")
    eigen = document.get("issuer")
    if not isinstance(eigen, str) or eigen.rstrip("/") != issuer:
        raise OngeldigDocument("names another issuer")
    if not all(isinstance(document.get(naam), str) for naam in nodig):
        raise OngeldigDocument("lacks an endpoint")
    return document
