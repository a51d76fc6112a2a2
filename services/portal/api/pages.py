"""The portal's HTTP side: the app, its journeys' routers, the session cookie and headers.

Every action is a plain form post (htmx may enhance it; nothing depends on it). Every form
post carries the session's CSRF token; one without it, or with another, is refused with 403.
No personal data goes into a URL, a page title or a log line.

Each journey is a module of its own (``aanmelden``, ``inloggen``, ``secretariaat``, …) with a
``router(omgeving)``; ``JOURNEYS`` registers them, one line each.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware

from services.portal.api import aanmelden, compliance, inloggen, secretariaat
from services.portal.api.session import COOKIE_NAME, SessieSleutel
from services.portal.api.web import STATIC_DIR, Omgeving, Weigering, pagina
from services.portal.application import Apis, Inloggen

log = logging.getLogger("weerbaar.portal")

#: The journeys, each a router over the same ``Omgeving``: a new journey is one line here.
JOURNEYS: tuple[Callable[[Omgeving], APIRouter], ...] = (
    aanmelden.router,
    inloggen.router,
    secretariaat.router,
    compliance.router,
)

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

Next = Callable[[Request], Awaitable[Response]]

__all__ = ["JOURNEYS", "STATIC_DIR", "create_portal_app"]


def create_portal_app(
    apis: Apis,
    inloggen: Inloggen | None,
    sleutel: SessieSleutel,
    *,
    secure_cookie: bool,
    vertrouwde_proxies: tuple[str, ...] = (),
    klok: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The portal: its pages over ``apis``; ``inloggen`` None when no sign-in is offered;
    ``vertrouwde_proxies``: the reverse proxies in front of the portal."""
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
    omgeving = Omgeving(apis, inloggen, sleutel, vertrouwde_proxies)
    if klok is not None:
        omgeving = Omgeving(apis, inloggen, sleutel, vertrouwde_proxies, klok)
    for journey in JOURNEYS:
        app.include_router(journey(omgeving))
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
