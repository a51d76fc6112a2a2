"""Signing in and out and the start page.

Two ways in, both starting at ``/inloggen``: the development sign-in (``/inloggen/demo``, a
list of demo people, only in embedded mode; the deployment's proxy never serves it), or an
OpenID Connect provider (the authorization-code flow with PKCE: ``POST /inloggen`` sends the
browser to the provider, which sends it back to ``/inloggen/terug``). Either way the portal
starts a new session (and CSRF token) at sign-in, and signing out ends it; with a provider it
also revokes the refresh token and ends the provider's session (the sign-in's ID token as the
hint, a state that must come back to ``/uitgelogd``).
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.portal.api.session import SessieSleutel
from services.portal.api.web import Omgeving, Weigering, formulier, pagina, sessie, vervang_sessie
from services.portal.application import Aanbieder, AanbiederOnbereikbaar, Ingelogd, Inloggen
from services.portal.application.start import ROL_NAMEN, WERK

#: The development sign-in (embedded mode only; never served through the deployment's proxy).
DEMO = "/inloggen/demo"
#: The longest code and state a provider's redirect may carry (more is not a provider's).
MAX_CODE = 2048
MAX_STATE = 512


def onbereikbaar() -> Weigering:
    """The provider did not answer (a new page each time: a raised exception keeps its
    request's frames)."""
    return Weigering(
        503,
        "Inloggen kan nu niet",
        "De inlogdienst is nu niet bereikbaar. Probeer het over een paar minuten opnieuw.",
    )


def niet_gelukt() -> Weigering:
    """A return from the provider that does not match this session's sign-in."""
    return Weigering(
        400,
        "Inloggen niet gelukt",
        "De inlog kon niet worden afgerond. Begin opnieuw bij Inloggen.",
    )


def router(omgeving: Omgeving) -> APIRouter:
    """Sign-in (development or OIDC; 404 without either), sign-out and the start page."""
    api = APIRouter()
    sleutel = omgeving.sleutel

    @api.get("/inloggen")
    def inlogpagina(request: Request) -> Response:
        if omgeving.inloggen is not None:
            return RedirectResponse(DEMO, status_code=303)
        _aanbieder(omgeving)
        return pagina(request, "inloggen/oidc.html")

    @api.post("/inloggen")
    async def log_in(request: Request) -> Response:
        await formulier(request)
        door = _aanbieder(omgeving)
        try:
            doorverwijzing = await run_in_threadpool(door.begin)
        except AanbiederOnbereikbaar:
            raise onbereikbaar() from None
        huidig = sessie(request)
        huidig.oidc_state, huidig.oidc_verifier = doorverwijzing.state, doorverwijzing.verifier
        vervang_sessie(request, huidig)
        return RedirectResponse(doorverwijzing.url, status_code=303)

    @api.get(DEMO)
    def demopagina(request: Request) -> Response:
        personen = _ontwikkel(omgeving).personen()
        return pagina(
            request, "inloggen/inloggen.html", {"personen": personen, "rollen": ROL_NAMEN}
        )

    @api.post(DEMO)
    async def log_in_als_demopersoon(request: Request) -> Response:
        door = _ontwikkel(omgeving)
        waarden = await formulier(request)
        ingelogd = door.log_in(waarden.get("persoon", ""))
        if ingelogd is None:
            raise Weigering(422, "Onbekende persoon", "Kies een van de personen op de lijst.")
        return begin_sessie(request, sleutel, ingelogd)

    @api.get("/inloggen/terug")
    async def terug(request: Request) -> Response:
        ingelogd = await _terug_van_aanbieder(request, _aanbieder(omgeving))
        return begin_sessie(request, sleutel, ingelogd)

    @api.post("/uitloggen")
    async def log_uit(request: Request) -> Response:
        await formulier(request)
        huidig = sessie(request)
        # The portal's session ends here, before the provider is asked anything: whatever it
        # answers (or if it does not), this browser is signed out.
        nieuw = sleutel.nieuw()
        vervang_sessie(request, nieuw)
        if omgeving.aanbieder is not None and huidig.ingelogd:
            afmelding = await run_in_threadpool(
                omgeving.aanbieder.uitloggen, huidig.ververs, huidig.id_token
            )
            nieuw.uitlog_state = afmelding.state
            return RedirectResponse(afmelding.url, status_code=303)
        return RedirectResponse("/", status_code=303)

    @api.get("/uitgelogd")
    def uitgelogd(request: Request) -> Response:
        huidig = sessie(request)
        if huidig.ingelogd:
            # Nobody signed out in this browser: the page would say what is not so.
            return RedirectResponse("/start", status_code=303)
        verwacht = huidig.uitlog_state
        if verwacht is not None:
            huidig.uitlog_state = None
            vervang_sessie(request, huidig)
        state = request.query_params.get("state", "")
        # Only the provider this session was sent to knows the state: then its session ended
        # too. Anyone else's link, or a sign-out the provider could not take, ends here
        # without saying so.
        bij_aanbieder = (
            verwacht is not None
            and 0 < len(state) <= MAX_STATE
            and secrets.compare_digest(state.encode(), verwacht.encode())
        )
        return pagina(request, "inloggen/uitgelogd.html", {"bij_aanbieder": bij_aanbieder})

    @api.get("/start")
    def start(request: Request) -> Response:
        huidig = sessie(request)
        if not huidig.ingelogd or huidig.rol is None:
            return omgeving.naar_inloggen()
        return pagina(
            request,
            "inloggen/start.html",
            {"werk": WERK.get(huidig.rol, ())},
        )

    return api


def _ontwikkel(omgeving: Omgeving) -> Inloggen:
    if omgeving.inloggen is None:
        raise StarletteHTTPException(404)
    return omgeving.inloggen


def _aanbieder(omgeving: Omgeving) -> Aanbieder:
    if omgeving.aanbieder is None:
        raise StarletteHTTPException(404)
    return omgeving.aanbieder


def begin_sessie(request: Request, sleutel: SessieSleutel, ingelogd: Ingelogd) -> Response:
    """A new session (and CSRF token) for the person signed in: nothing of the anonymous one
    carries over."""
    nieuw = sleutel.nieuw()
    nieuw.sub, nieuw.rol, nieuw.token = ingelogd.sub, ingelogd.rol, ingelogd.token
    nieuw.token_verloopt, nieuw.ververs = ingelogd.token_verloopt, ingelogd.ververs_token
    nieuw.id_token = ingelogd.id_token
    vervang_sessie(request, nieuw)
    return RedirectResponse("/start", status_code=303)


async def _terug_van_aanbieder(request: Request, door: Aanbieder) -> Ingelogd:
    """The person the provider sent back, after the state this session sent out is matched
    (used once, whatever comes back) and the code exchanged with its PKCE verifier."""
    huidig = sessie(request)
    verwacht, verifier = huidig.oidc_state, huidig.oidc_verifier
    huidig.oidc_state = huidig.oidc_verifier = None
    vervang_sessie(request, huidig)
    params = request.query_params
    if "error" in params:
        raise Weigering(
            400,
            "Inloggen afgebroken",
            "De inlog is afgebroken of geweigerd. Begin opnieuw bij Inloggen.",
        )
    code, state = params.get("code", ""), params.get("state", "")
    if (
        verwacht is None
        or verifier is None
        or not code
        or len(code) > MAX_CODE
        or len(state) > MAX_STATE
        or not secrets.compare_digest(state.encode(), verwacht.encode())
    ):
        raise niet_gelukt()
    try:
        ingelogd = await run_in_threadpool(door.rond_af, code, verifier)
    except AanbiederOnbereikbaar:
        raise onbereikbaar() from None
    if ingelogd is None:
        raise Weigering(
            403,
            "Geen toegang",
            "Met dit account kunt u het portaal niet gebruiken: er hoort geen rol in het"
            " proces bij. Neem contact op met uw beheerder.",
        )
    return ingelogd
