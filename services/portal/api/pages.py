"""The portal's HTTP side: pages, the session cookie, CSRF and the security headers.

Every action is a plain form post (htmx may enhance it; nothing depends on it). Every form
post carries the session's CSRF token; one without it, or with another, is refused with 403.
No personal data goes into a URL, a page title or a log line: the confirmation page learns
what to say from the session, not from the address.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware

from services.portal.api.session import COOKIE_NAME, Sessie, SessieSleutel
from services.portal.application import (
    FUNCTIES,
    KOMT_NOG,
    ROL_NAMEN,
    VELD,
    Apis,
    Formulier,
    Inloggen,
    Ontvangen,
    formulier_uit,
    meld_aan,
)

log = logging.getLogger("weerbaar.portal")

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
#: A form post larger than this is refused before it is read (the longest field is 5000).
MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 60

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

templates = Jinja2Templates(directory=HERE / "templates")

Next = Callable[[Request], Awaitable[Response]]


class Weigering(Exception):
    """A request the portal refuses with a Dutch page (status and text)."""

    def __init__(self, status: int, titel: str, tekst: str) -> None:
        super().__init__(titel)
        self.status = status
        self.titel = titel
        self.tekst = tekst


def sessie(request: Request) -> Sessie:
    """The request's session (anonymous when there was no valid cookie)."""
    found: Sessie = request.state.sessie
    return found


def vervang_sessie(request: Request, nieuw: Sessie) -> None:
    """Replace the session (sign-in, sign-out): the response carries the new cookie."""
    request.state.sessie = nieuw
    request.state.sessie_gewijzigd = True


def pagina(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> Response:
    """A page rendered with the session's CSRF token and who is signed in."""
    huidig = sessie(request)
    return templates.TemplateResponse(
        request,
        template,
        {
            "csrf": huidig.csrf,
            "rol": huidig.rol,
            "rol_naam": ROL_NAMEN.get(huidig.rol or "", ""),
            **(context or {}),
        },
        status_code=status,
    )


async def formulier(request: Request) -> dict[str, str]:
    """The posted form, after its size and CSRF token are checked."""
    lengte = request.headers.get("content-length", "")
    if not lengte.isdigit() or int(lengte) > MAX_BODY_BYTES:
        raise Weigering(
            413,
            "Formulier te groot",
            "Het formulier bevat te veel tekst. Maak de teksten korter en probeer het opnieuw.",
        )
    try:
        posted = await request.form(max_files=0, max_fields=MAX_FIELDS)
    except (StarletteHTTPException, ValueError, UnicodeDecodeError):
        raise Weigering(
            400, "Formulier niet leesbaar", "Het formulier kon niet worden gelezen."
        ) from None
    values = {key: value for key, value in posted.multi_items() if isinstance(value, str)}
    if not secrets.compare_digest(values.get("csrf", "").encode(), sessie(request).csrf.encode()):
        raise Weigering(
            403,
            "Formulier verlopen",
            "Dit formulier is verlopen of kwam niet van deze website. Open de pagina opnieuw"
            " en probeer het nog eens.",
        )
    return values


def create_portal_app(
    apis: Apis,
    inloggen: Inloggen | None,
    sleutel: SessieSleutel,
    *,
    secure_cookie: bool,
) -> FastAPI:
    """The portal: its pages over ``apis``; ``inloggen`` None when no sign-in is offered."""
    app = FastAPI(
        title="Weerbaar bestuur — portaal", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    async def session_and_headers(request: Request, call_next: Next) -> Response:
        is_static = request.url.path.startswith("/static/")
        gevonden = sleutel.open(request.cookies.get(COOKIE_NAME))
        request.state.sessie = gevonden or sleutel.nieuw()
        request.state.sessie_gewijzigd = gevonden is None
        try:
            response = await call_next(request)
        except Exception:
            log.exception("page failed", extra={"method": request.method})
            response = pagina(
                request,
                "melding.html",
                {
                    "titel": "Er ging iets mis",
                    "tekst": "Er ging aan onze kant iets mis. Probeer het later opnieuw.",
                },
                status=500,
            )
        if request.state.sessie_gewijzigd and not is_static:
            response.set_cookie(
                COOKIE_NAME,
                sleutel.seal(request.state.sessie),
                max_age=int(sleutel.levensduur_s),
                httponly=True,
                secure=secure_cookie,
                samesite="lax",
                path="/",
            )
        response.headers.update(SECURITY_HEADERS)
        if not is_static:
            response.headers["Cache-Control"] = "no-store"
        return response

    app.add_middleware(BaseHTTPMiddleware, dispatch=session_and_headers)
    _refusals(app)
    _registration(app, apis, inloggen is not None)
    _signing_in(app, inloggen, sleutel)
    return app


def _refusals(app: FastAPI) -> None:
    """Refusals and errors as Dutch pages."""

    @app.exception_handler(Weigering)
    async def weigering(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Weigering)
        return pagina(
            request, "melding.html", {"titel": exc.titel, "tekst": exc.tekst}, status=exc.status
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_fout(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            titel, tekst = "Pagina niet gevonden", "Deze pagina bestaat niet."
        elif exc.status_code == 405:
            titel, tekst = "Niet toegestaan", "Deze pagina kan zo niet worden gebruikt."
        else:
            titel, tekst = "Er ging iets mis", "Het verzoek kon niet worden verwerkt."
        return pagina(
            request, "melding.html", {"titel": titel, "tekst": tekst}, status=exc.status_code
        )


def _registration(app: FastAPI, apis: Apis, met_inloggen: bool) -> None:
    """The start page and journey 1: the public registration."""

    @app.get("/health/ready", include_in_schema=False)
    def ready() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/")
    def home(request: Request) -> Response:
        return pagina(request, "home.html", {"inloggen": met_inloggen})

    def formulier_pagina(request: Request, formulier: Formulier, status: int = 200) -> Response:
        return pagina(
            request,
            "aanmelden.html",
            {"f": formulier, "functies": FUNCTIES, "veld": VELD},
            status=status,
        )

    @app.get("/aanmelden")
    def aanmelden(request: Request) -> Response:
        return formulier_pagina(request, Formulier())

    @app.post("/aanmelden")
    async def meld(request: Request) -> Response:
        ingevuld = formulier_uit(await formulier(request))
        uitkomst = meld_aan(apis, ingevuld)
        if isinstance(uitkomst, Ontvangen):
            huidig = sessie(request)
            huidig.melding = "buiten_regeling" if uitkomst.buiten_regeling else "ontvangen"
            request.state.sessie_gewijzigd = True
            return RedirectResponse("/aanmelden/ontvangen", status_code=303)
        status = 422 if uitkomst.fouten else 503 if uitkomst.melding else 200
        return formulier_pagina(request, uitkomst, status)

    @app.get("/aanmelden/ontvangen")
    def ontvangen(request: Request) -> Response:
        huidig = sessie(request)
        melding, huidig.melding = huidig.melding, None
        if melding not in {"ontvangen", "buiten_regeling"}:
            return RedirectResponse("/aanmelden", status_code=303)
        request.state.sessie_gewijzigd = True
        return pagina(request, "ontvangen.html", {"buiten_regeling": melding == "buiten_regeling"})


def _signing_in(app: FastAPI, inloggen: Inloggen | None, sleutel: SessieSleutel) -> None:
    """The development sign-in (404 without one), sign-out and the start page per role."""

    def sign_in() -> Inloggen:
        if inloggen is None:
            raise StarletteHTTPException(404)
        return inloggen

    @app.get("/inloggen")
    def inlogpagina(request: Request) -> Response:
        personen = sign_in().personen()
        return pagina(request, "inloggen.html", {"personen": personen, "rollen": ROL_NAMEN})

    @app.post("/inloggen")
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

    @app.post("/uitloggen")
    async def log_uit(request: Request) -> Response:
        await formulier(request)
        vervang_sessie(request, sleutel.nieuw())
        return RedirectResponse("/", status_code=303)

    @app.get("/start")
    def start(request: Request) -> Response:
        huidig = sessie(request)
        if not huidig.ingelogd or huidig.rol is None:
            return RedirectResponse("/inloggen" if inloggen else "/", status_code=303)
        return pagina(request, "start.html", {"komt_nog": KOMT_NOG.get(huidig.rol, ())})
