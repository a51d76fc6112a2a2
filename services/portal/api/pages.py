"""The portal's HTTP side: the app, its journeys' routers, the session cookie and headers.

Every action is a plain form post (htmx may enhance it; nothing depends on it). Every form
post carries the session's CSRF token; one without it, or with another, is refused with 403.
No personal data goes into a URL, a page title or a log line.

Each journey is a module of its own (``aanmelden``, ``inloggen``, ``secretariaat``, …) with a
``router(omgeving)``; ``JOURNEYS`` registers them, one line each.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware

from services.portal.api import (
    aanmelden,
    adviseur,
    bestuurder,
    bva,
    compliance,
    inloggen,
    live,
    secretariaat,
    werkgever,
)
from services.portal.api.session import COOKIE_NAME, MAX_COOKIE_CHARS, Sessie, SessieSleutel
from services.portal.api.web import STATIC_DIR, Omgeving, Weigering, nu, pagina
from services.portal.application import (
    HERKOMST,
    Aanbieder,
    AanbiederOnbereikbaar,
    Apis,
    Ingelogd,
    Inloggen,
)
from services.portal.application.live import Luisteraar, Verdeler

log = logging.getLogger("weerbaar.portal")

#: The journeys, each a router over the same ``Omgeving``: a new journey is one line here.
JOURNEYS: tuple[Callable[[Omgeving], APIRouter], ...] = (
    aanmelden.router,
    inloggen.router,
    secretariaat.router,
    bva.router,
    bestuurder.router,
    adviseur.router,
    werkgever.router,
    compliance.router,
    live.router,
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


@functools.lru_cache(maxsize=8)
def beveiligingskoppen(herkomsten: tuple[str, ...] = ()) -> Mapping[str, str]:
    """The security headers of every response: with an OIDC provider, the sign-in and sign-out
    forms may send the browser on to the provider's origins (CSP ``form-action`` applies to the
    redirect after a form post). Kept per set of origins: the set grows once, when the
    provider's discovery document is read."""
    koppen = dict(SECURITY_HEADERS)
    if herkomsten:
        if not all(HERKOMST.fullmatch(h) for h in herkomsten):
            raise ValueError("the identity provider's origin is not an origin")
        koppen["Content-Security-Policy"] = CONTENT_SECURITY_POLICY.replace(
            "form-action 'self'", f"form-action 'self' {' '.join(herkomsten)}"
        )
    return MappingProxyType(koppen)


#: An access token that expires within this many seconds is renewed before the page is made.
VERNIEUW_MARGE_S = 30.0

__all__ = ["JOURNEYS", "STATIC_DIR", "create_portal_app"]


def create_portal_app(
    apis: Apis,
    inloggen: Inloggen | None,
    sleutel: SessieSleutel,
    *,
    secure_cookie: bool,
    vertrouwde_proxies: tuple[str, ...] = (),
    klok: Callable[[], datetime] | None = None,
    aanbieder: Aanbieder | None = None,
    live: Verdeler | None = None,
    luisteraar: Luisteraar | None = None,
) -> FastAPI:
    """The portal: its pages over ``apis``; ``inloggen`` the development sign-in (None: not
    offered), ``aanbieder`` the OIDC provider's (None: not offered); ``vertrouwde_proxies``:
    the reverse proxies in front of the portal; ``live`` the live pages' fan-out, fed by
    ``luisteraar`` while the app runs (None: pages are not live)."""

    @asynccontextmanager
    async def levensloop(_: FastAPI) -> AsyncIterator[None]:
        if luisteraar is not None:
            await luisteraar.start()
        try:
            yield
        finally:
            if luisteraar is not None:
                await luisteraar.stop()

    app = FastAPI(
        title="Weerbaar bestuur — portaal",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=levensloop,
    )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def koppen() -> Mapping[str, str]:
        return beveiligingskoppen(aanbieder.herkomsten if aanbieder is not None else ())

    koppen()  # a configured issuer that is no origin stops the start, not a page
    verversingen = Verversingen()

    async def session_and_headers(request: Request, call_next: Next) -> Response:
        is_static = request.url.path.startswith("/static/")
        gevonden = sleutel.open(request.cookies.get(COOKIE_NAME))
        request.state.sessie = gevonden or sleutel.nieuw()
        request.state.sessie_gewijzigd = gevonden is None
        if gevonden is not None and aanbieder is not None and not is_static:
            vernieuwd = await _vernieuwd(verversingen, aanbieder, gevonden, sleutel, tijdstip())
            if vernieuwd is not gevonden:
                request.state.sessie = vernieuwd
                request.state.sessie_gewijzigd = True
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
            verzegeld = sleutel.seal(request.state.sessie)
            if len(verzegeld) > MAX_COOKIE_CHARS and request.state.sessie.id_token is not None:
                # The ID token only spares the person a question at the provider's sign-out:
                # rather a session without it than none.
                log.warning(
                    "session too large for its cookie with the ID token: kept without it",
                    extra={"chars": len(verzegeld)},
                )
                request.state.sessie = replace(request.state.sessie, id_token=None)
                verzegeld = sleutel.seal(request.state.sessie)
            if len(verzegeld) > MAX_COOKIE_CHARS:
                # A browser drops a cookie this long without a word: the person would land on
                # the sign-in again and again. Say so, and keep no half session.
                log.error("session too large for its cookie", extra={"chars": len(verzegeld)})
                request.state.sessie = sleutel.nieuw()
                verzegeld = sleutel.seal(request.state.sessie)
                response = pagina(
                    request,
                    "melding.html",
                    {
                        "titel": "Inloggen kan niet",
                        "tekst": "Uw inloggegevens zijn te groot voor het portaal. Neem contact"
                        " op met uw beheerder.",
                    },
                    status=500,
                )
            response.set_cookie(
                COOKIE_NAME,
                verzegeld,
                max_age=int(sleutel.levensduur_s),
                httponly=True,
                secure=secure_cookie,
                samesite="lax",
                path="/",
            )
        response.headers.update(koppen())
        if not is_static:
            response.headers["Cache-Control"] = "no-store"
        return response

    def tijdstip() -> float:
        return (klok or nu)().timestamp()

    app.add_middleware(BaseHTTPMiddleware, dispatch=session_and_headers)
    _refusals(app)
    omgeving = Omgeving(
        apis, inloggen, sleutel, vertrouwde_proxies, klok or nu, aanbieder, live=live
    )
    for journey in JOURNEYS:
        app.include_router(journey(omgeving))
    return app


class Verversingen:
    """One renewal per refresh token at a time, its answer shared: requests that arrive
    together with the same expiring session (two tabs, a download beside a click) wait for the
    first one's renewal instead of each using the refresh token (a provider that rotates them
    takes a second use as theft and revokes the grant). An answer is kept ``BEWAAR_S`` seconds
    for requests that still carry the old cookie; a provider that did not answer is not kept."""

    BEWAAR_S = 30.0
    MAX = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lopend: dict[str, _Verversing] = {}

    def ververs(self, aanbieder: Aanbieder, ververs_token: str) -> Ingelogd | None:
        """The renewal for this refresh token (the provider asked once)."""
        sleutel = hashlib.sha256(ververs_token.encode()).hexdigest()
        with self._lock:
            nu = time.monotonic()
            for oud in [k for k, v in self._lopend.items() if v.verlopen(nu, self.BEWAAR_S)]:
                del self._lopend[oud]
            bezig = self._lopend.get(sleutel)
            eigen = bezig is None
            if bezig is None:
                if len(self._lopend) >= self.MAX:
                    raise AanbiederOnbereikbaar("too many renewals at once")
                bezig = self._lopend[sleutel] = _Verversing()
        if eigen:
            try:
                bezig.uitkomst = aanbieder.ververs(ververs_token)
            except AanbiederOnbereikbaar:
                bezig.onbereikbaar = True
                with self._lock:
                    self._lopend.pop(sleutel, None)
            finally:
                bezig.klaar_op = time.monotonic()
                bezig.klaar.set()
        elif not bezig.klaar.wait(timeout=30):
            raise AanbiederOnbereikbaar("the renewal under way did not finish")
        if bezig.onbereikbaar:
            raise AanbiederOnbereikbaar("refresh")
        return bezig.uitkomst


@dataclass
class _Verversing:
    klaar: threading.Event = field(default_factory=threading.Event)
    uitkomst: Ingelogd | None = None
    onbereikbaar: bool = False
    klaar_op: float | None = None

    def verlopen(self, nu: float, bewaar_s: float) -> bool:
        return self.klaar_op is not None and nu - self.klaar_op > bewaar_s


async def _vernieuwd(
    verversingen: Verversingen,
    aanbieder: Aanbieder,
    huidig: Sessie,
    sleutel: SessieSleutel,
    nu: float,
) -> Sessie:
    """The session with its access token renewed when it expires within
    ``VERNIEUW_MARGE_S`` (the same session when it need not be, or the provider cannot answer
    now, or refuses while the token is still valid; a new, signed-out one when the token has
    expired and cannot be renewed: the person signs in again)."""
    verloopt = huidig.token_verloopt
    if not huidig.ingelogd or verloopt is None or verloopt - VERNIEUW_MARGE_S > nu:
        return huidig
    geldig = verloopt > nu
    if huidig.ververs is None:
        return huidig if geldig else sleutel.nieuw()
    try:
        nieuw = await run_in_threadpool(verversingen.ververs, aanbieder, huidig.ververs)
    except AanbiederOnbereikbaar:
        # Until the token expires the pages keep working; after, the services refuse it and
        # the page says to sign in again.
        return huidig
    if nieuw is None or nieuw.sub != huidig.sub:
        return huidig if geldig else sleutel.nieuw()
    return replace(
        huidig,
        rol=nieuw.rol,
        token=nieuw.token,
        token_verloopt=nieuw.token_verloopt,
        ververs=nieuw.ververs_token,
        # A provider that sends no new ID token with a renewal leaves the sign-in's.
        id_token=nieuw.id_token or huidig.id_token,
    )


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
