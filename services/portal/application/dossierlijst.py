"""A party's own list of dossiers, one page at a time: the werkgever's (its organisation's) and
the bestuurder's (its own).

Intake's ``GET /aanvragen`` decides whose dossiers the list holds from the caller's token (the
werkgever's organisation, the bestuurder's e-mail); the portal only asks for a page of it,
newest first, and pages on by keyset (the last row's ``ingediend_op`` and ``aanvraag_id``), as
the secretariat's werkvoorraad does. The page's links carry those two keys only: no names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from services.portal.application.teksten import dag_tekst, dossiernummer, lees_moment

#: Dossiers per page.
PER_PAGINA = 25


def geldige_keyset(na_ingediend_op: str, na_aanvraag_id: str) -> bool:
    """Whether a page's start in a query string is a moment with its offset and a dossier
    number: the list API's keyset (anything else starts the list at the top)."""
    try:
        na_op = lees_moment(na_ingediend_op)
    except ValueError:
        return False
    if na_op is None or na_op.tzinfo is None:
        return False
    return dossiernummer(na_aanvraag_id) is not None


@dataclass(frozen=True)
class Blad:
    """Where a page of the list starts: after this dossier (keyset), or at the top."""

    na_ingediend_op: str = ""
    na_aanvraag_id: str = ""

    @classmethod
    def uit(cls, invoer: Mapping[str, str]) -> Blad:
        """The page's start in a query string; a malformed keyset starts at the top."""
        na_op = invoer.get("na_ingediend_op", "")[:64]
        na_id = invoer.get("na_aanvraag_id", "")[:64]
        if not geldige_keyset(na_op, na_id):
            return cls()
        return cls(na_op, na_id)

    def api_filters(self) -> dict[str, str | int]:
        """The list API's query: the keyset, and one more than a page (is there a next?)."""
        filters: dict[str, str | int] = {"limit": PER_PAGINA + 1}
        if self.na_aanvraag_id:
            filters["na_ingediend_op"] = self.na_ingediend_op
            filters["na_aanvraag_id"] = self.na_aanvraag_id
        return filters


@dataclass(frozen=True)
class Regel:
    """One dossier in the list: its number, when it was submitted, where it stands."""

    aanvraag_id: str
    ingediend_op: str
    status: str


@dataclass(frozen=True)
class Dossierlijst:
    """One page of the list with its paging links (query strings; ``eerste`` "" is the top)."""

    regels: tuple[Regel, ...]
    volgende: str | None
    eerste: str | None

    @property
    def enige(self) -> Regel | None:
        """The one dossier when the whole list is one (the usual case for a bestuurder)."""
        if len(self.regels) == 1 and self.volgende is None and self.eerste is None:
            return self.regels[0]
        return None


def dossierlijst_uit(
    lijst: Sequence[Mapping[str, Any]], blad: Blad, status_tekst: Callable[[str], str]
) -> Dossierlijst:
    """The page made of the list API's answer (one more than a page when there is a next);
    ``status_tekst``: a status in the role's own words."""
    getoond = lijst[:PER_PAGINA]
    regels = tuple(
        Regel(
            aanvraag_id=str(d["aanvraag_id"]),
            ingediend_op=dag_tekst(d.get("ingediend_op")),
            status=status_tekst(str(d.get("status"))),
        )
        for d in getoond
    )
    volgende = None
    if len(lijst) > PER_PAGINA:
        laatste = getoond[-1]
        volgende = urlencode(
            {
                "na_ingediend_op": str(laatste["ingediend_op"]),
                "na_aanvraag_id": str(laatste["aanvraag_id"]),
            }
        )
    eerste = "" if blad.na_aanvraag_id else None
    return Dossierlijst(regels, volgende, eerste)
