"""What an API call can come to: one typed outcome per kind of answer.

The adapters turn each HTTP answer into one of these (401/403/404/409/422/429/5xx), so a page
decides what to show by matching on the outcome, never on a status code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VeldFout:
    """One invalid field as the API names it (its path and rule, never the value)."""

    veld: str
    regel: str


@dataclass(frozen=True)
class Gelukt:
    """The API did it; its answer (an object in ``data``, a list in ``lijst``)."""

    data: Mapping[str, Any]
    lijst: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True)
class Ongeldig:
    """422: the input broke these rules."""

    fouten: tuple[VeldFout, ...]


@dataclass(frozen=True)
class NietIngelogd:
    """401: no valid token (expired, or none)."""


@dataclass(frozen=True)
class Geweigerd:
    """403: the person may not do this."""


@dataclass(frozen=True)
class NietGevonden:
    """404: not there, or not for this person (the API does not say which)."""


@dataclass(frozen=True)
class Conflict:
    """409: a step out of order."""

    detail: str | None = None


@dataclass(frozen=True)
class TeVaak:
    """429: too many attempts; try again later."""


@dataclass(frozen=True)
class Onbereikbaar:
    """The service did not answer, or answered with a server error."""


Uitkomst = (
    Gelukt | Ongeldig | NietIngelogd | Geweigerd | NietGevonden | Conflict | TeVaak | Onbereikbaar
)


@dataclass(frozen=True)
class Bestand:
    """A 2xx whose answer is a document to pass on as it is (an export), not an object."""

    inhoud: bytes
    media_type: str
