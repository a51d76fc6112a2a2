"""Journey 1: the home page and the public registration."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from services.portal.api.web import (
    Omgeving,
    formulier,
    neem_melding,
    pagina,
    zet_melding,
)
from services.portal.application.aanmelden import (
    FUNCTIES,
    VELD,
    Formulier,
    Ontvangen,
    formulier_uit,
    meld_aan,
)


def router(omgeving: Omgeving) -> APIRouter:
    """The home page, readiness, and the registration form with its confirmation."""
    api = APIRouter()

    @api.get("/health/ready", include_in_schema=False)
    def ready() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @api.get("/")
    def home(request: Request) -> Response:
        ontwikkel = omgeving.inloggen is not None
        return pagina(
            request,
            "home.html",
            {"inloggen": ontwikkel or omgeving.aanbieder is not None, "ontwikkel": ontwikkel},
        )

    def formulier_pagina(request: Request, ingevuld: Formulier, status: int = 200) -> Response:
        return pagina(
            request,
            "aanmelden/formulier.html",
            {"f": ingevuld, "functies": FUNCTIES, "veld": VELD},
            status=status,
        )

    @api.get("/aanmelden")
    def aanmelden(request: Request) -> Response:
        return formulier_pagina(request, Formulier())

    @api.post("/aanmelden")
    async def meld(request: Request) -> Response:
        ingevuld = formulier_uit(await formulier(request))
        # Anonymous, whoever is signed in: the registration is public, and counted against
        # the visitor's address (sent on as X-Forwarded-For), not the portal's. The call blocks:
        # in a worker thread, so other pages are served meanwhile.
        apis = omgeving.apis_voor(request, anoniem=True)
        uitkomst = await run_in_threadpool(meld_aan, apis, ingevuld)
        if isinstance(uitkomst, Ontvangen):
            zet_melding(request, "buiten_regeling" if uitkomst.buiten_regeling else "ontvangen")
            return RedirectResponse("/aanmelden/ontvangen", status_code=303)
        status = 422 if uitkomst.fouten else 503 if uitkomst.melding else 200
        return formulier_pagina(request, uitkomst, status)

    @api.get("/aanmelden/ontvangen")
    def ontvangen(request: Request) -> Response:
        melding = neem_melding(request)
        if melding not in {"ontvangen", "buiten_regeling"}:
            return RedirectResponse("/aanmelden", status_code=303)
        return pagina(
            request,
            "aanmelden/ontvangen.html",
            {"buiten_regeling": melding == "buiten_regeling"},
        )

    return api
