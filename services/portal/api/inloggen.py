"""Signing in and out (the development sign-in only in embedded mode) and the start page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.portal.api.web import Omgeving, Weigering, formulier, pagina, sessie, vervang_sessie
from services.portal.application import Inloggen
from services.portal.application.start import KOMT_NOG, ROL_NAMEN, WERK


def router(omgeving: Omgeving) -> APIRouter:
    """The development sign-in (404 without one), sign-out and the start page per role."""
    api = APIRouter()
    sleutel = omgeving.sleutel

    def sign_in() -> Inloggen:
        if omgeving.inloggen is None:
            raise StarletteHTTPException(404)
        return omgeving.inloggen

    @api.get("/inloggen")
    def inlogpagina(request: Request) -> Response:
        personen = sign_in().personen()
        return pagina(
            request, "inloggen/inloggen.html", {"personen": personen, "rollen": ROL_NAMEN}
        )

    @api.post("/inloggen")
    async def log_in(request: Request) -> Response:
        door = sign_in()
        waarden = await formulier(request)
        ingelogd = door.log_in(waarden.get("persoon", ""))
        if ingelogd is None:
            raise Weigering(422, "Onbekende persoon", "Kies een van de personen op de lijst.")
        # A new session (and CSRF token) at sign-in: nothing of the anonymous one carries over.
        nieuw = sleutel.nieuw()
        nieuw.sub, nieuw.rol, nieuw.token = ingelogd.sub, ingelogd.rol, ingelogd.token
        vervang_sessie(request, nieuw)
        return RedirectResponse("/start", status_code=303)

    @api.post("/uitloggen")
    async def log_uit(request: Request) -> Response:
        await formulier(request)
        vervang_sessie(request, sleutel.nieuw())
        return RedirectResponse("/", status_code=303)

    @api.get("/start")
    def start(request: Request) -> Response:
        huidig = sessie(request)
        if not huidig.ingelogd or huidig.rol is None:
            return RedirectResponse("/inloggen" if omgeving.inloggen else "/", status_code=303)
        return pagina(
            request,
            "inloggen/start.html",
            {"werk": WERK.get(huidig.rol, ()), "komt_nog": KOMT_NOG.get(huidig.rol, ())},
        )

    return api
