"""Journey 4: the BVA reviewer's queue, a report version, and approving or rejecting it.

Each decision is a plain form post with the session's CSRF token naming the version and the
content hash the page showed; approval decides, and its refusal is shown (four-eyes: 403, with
nothing recorded; a decision out of date: 409, at the page again).
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from services.portal.api.web import (
    Omgeving,
    Weigering,
    formulier,
    neem_melding,
    pagina,
    rapport_openen,
    standaard_weigering,
    zet_melding,
)
from services.portal.application import (
    Conflict,
    Gelukt,
    Geweigerd,
    NietGevonden,
    Uitkomst,
)
from services.portal.application.bva import (
    MELDINGEN,
    VIER_OGEN_UITLEG,
    Besluit,
    Besluitfouten,
    besluit_uit,
    fouten_uit,
    rapport_pagina,
    redenen_uit,
    wachtrij,
)
from services.portal.application.uitkomsten import Probleem

ROL = "bva"
BASIS = "/bva"


def _weigering(uitkomst: Uitkomst) -> Weigering:
    """The page for an answer that ends it (it shows nothing of the report)."""
    match uitkomst:
        case Geweigerd():
            return Weigering(403, "Geen toegang", "U mag dit rapport nu niet inzien.")
        case NietGevonden():
            return Weigering(
                404,
                "Rapport niet gevonden",
                "Er is geen rapport met dit nummer, of het is net ter toetsing aangeboden en nog"
                " niet verwerkt. Probeer het over enkele seconden opnieuw.",
            )
        case _:
            return standaard_weigering(uitkomst)


#: A decision approval refused (403): four-eyes, the one rule a BVA reviewer can meet here.
def besluit_geweigerd() -> Weigering:
    """The page for a decision approval refused (a new one each time: a raised exception keeps
    its request's frames)."""
    return Weigering(
        403,
        "Besluit geweigerd",
        f"Dit besluit is geweigerd en er is niets vastgelegd. {VIER_OGEN_UITLEG}",
    )


class Pagina:
    """What the BVA's routes share: who may see them, the report page, a decision's end."""

    def __init__(self, omgeving: Omgeving) -> None:
        self.omgeving = omgeving

    def weg(self, request: Request) -> Response | None:
        """None for this role's person; otherwise to the sign-in, or a refusal."""
        return self.omgeving.toegang(request, ROL, "de toetsers van de Beveiligingsautoriteit")

    def rapport(
        self,
        request: Request,
        rapport_id: UUID,
        fouten: Besluitfouten | None = None,
        status: int = 200,
    ) -> Response:
        """The review page (with a refused decision's errors)."""
        try:
            data = rapport_pagina(self.omgeving.apis_voor(request), rapport_id)
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        return pagina(
            request,
            "bva/rapport.html",
            {"r": data, "fouten": fouten or Besluitfouten(), "vier_ogen_uitleg": VIER_OGEN_UITLEG},
            status,
        )

    def na_besluit(
        self, request: Request, rapport_id: UUID, uitkomst: Uitkomst, melding: str, redenen: str
    ) -> Response:
        """Done: to the queue with a note; refused: a refusal page, or the page with why."""
        if isinstance(uitkomst, Gelukt):
            zet_melding(request, melding)
            return RedirectResponse(f"{BASIS}/toetsing", status_code=303)
        if isinstance(uitkomst, Geweigerd):
            raise besluit_geweigerd()
        try:
            fouten = fouten_uit(uitkomst, redenen)
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        return self.rapport(
            request, rapport_id, fouten, 409 if isinstance(uitkomst, Conflict) else 422
        )


def router(omgeving: Omgeving) -> APIRouter:
    """The BVA's pages: the review queue, a report version and the decisions about it."""
    api = APIRouter(prefix=BASIS)
    gedeeld = Pagina(omgeving)
    _paginas(api, gedeeld)
    _besluiten(api, gedeeld)
    return api


def _paginas(api: APIRouter, gedeeld: Pagina) -> None:
    omgeving = gedeeld.omgeving

    @api.get("/toetsing")
    def lijst(request: Request) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        try:
            data = wachtrij(omgeving.apis_voor(request))
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        melding = MELDINGEN.get(neem_melding(request) or "")
        return pagina(
            request, "bva/toetsing.html", {"w": data, "melding": melding}, live="toetsing"
        )

    @api.get("/rapporten/{rapport_id}")
    def rapport(request: Request, rapport_id: UUID) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        if (openen := rapport_openen(request)) is not None:
            return openen
        return gedeeld.rapport(request, rapport_id)


def _besluiten(api: APIRouter, gedeeld: Pagina) -> None:
    omgeving = gedeeld.omgeving

    @api.post("/rapporten/{rapport_id}/goedkeuren")
    async def goedkeuren(request: Request, rapport_id: UUID) -> Response:
        # The CSRF token first: a forged post is refused as one, whoever is signed in.
        waarden = await formulier(request)
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        besluit = _besluit(waarden)

        def stap() -> Response:
            uitkomst = omgeving.apis_voor(request).keur_goed(
                rapport_id, besluit.versie, besluit.inhoud_hash
            )
            return gedeeld.na_besluit(request, rapport_id, uitkomst, "goedgekeurd", "")

        return await run_in_threadpool(stap)

    @api.post("/rapporten/{rapport_id}/afkeuren")
    async def afkeuren(request: Request, rapport_id: UUID) -> Response:
        waarden = await formulier(request)
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        besluit = _besluit(waarden)
        tekst = waarden.get("redenen", "")
        redenen, fout = redenen_uit(tekst)

        def stap() -> Response:
            if fout is not None:
                fouten = Besluitfouten(fouten=[fout], redenen=tekst)
                return gedeeld.rapport(request, rapport_id, fouten, 422)
            uitkomst = omgeving.apis_voor(request).keur_af(
                rapport_id, besluit.versie, besluit.inhoud_hash, redenen
            )
            return gedeeld.na_besluit(request, rapport_id, uitkomst, "afgekeurd", tekst)

        return await run_in_threadpool(stap)


def _besluit(waarden: dict[str, str]) -> Besluit:
    """The version and hash a decision names; a form that names none is refused."""
    besluit = besluit_uit(waarden)
    if besluit is None:
        raise Weigering(422, "Onbekende versie", "Open het rapport opnieuw en neem dan uw besluit.")
    return besluit
