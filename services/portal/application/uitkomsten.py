"""What an API call can come to: one typed outcome per kind of answer.

The adapters turn each HTTP answer into one of these (401/403/404/409/422/429/5xx), so a page
decides what to show by matching on the outcome, never on a status code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VeldFout:
    """One invalid field as the API names it (its path and rule, never the value)."""

    veld: str
    regel: str


@dataclass(frozen=True)
class Gelukt:
    """The API did it; its answer (an object in ``data``, a list in ``lijst``; for one page of
    a list, ``volgende``: the next page's address from its ``Link`` header, None on the last)."""

    data: Mapping[str, Any]
    lijst: Sequence[Mapping[str, Any]] = ()
    volgende: str | None = None


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


def _niets() -> None:
    return None


@dataclass(frozen=True)
class Bestand:
    """A 2xx whose answer is a document to pass on as it is (an export), not an object: its
    parts as they arrive, to be read once, and how to let go of the answer after."""

    delen: Iterable[bytes]
    media_type: str
    sluit: Callable[[], None] = _niets

    def stroom(self) -> Iterator[bytes]:
        """The parts, passed on as they arrive; the answer let go of at the end."""
        try:
            yield from self.delen
        finally:
            self.sluit()

    def lees(self) -> bytes:
        """The whole document (for a page that reads it, not for passing it on)."""
        return b"".join(self.stroom())


class Probleem(Exception):
    """An answer that ends the page (not found, refused, signed out, unavailable): every
    journey's use cases raise it, every journey's routes turn it into a page."""

    def __init__(self, uitkomst: Uitkomst) -> None:
        super().__init__(type(uitkomst).__name__)
        self.uitkomst = uitkomst


def gelukt(uitkomst: Uitkomst) -> Gelukt:
    """The answer when it is a 2xx; ``Probleem`` otherwise."""
    if isinstance(uitkomst, Gelukt):
        return uitkomst
    raise Probleem(uitkomst)
