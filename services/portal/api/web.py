"""What every journey's pages share: templates, the session, CSRF-checked forms, Dutch refusals,
and the APIs called as the signed-in person on behalf of the visitor.

A journey is one module beside this one with a ``router(omgeving)`` that returns its routes;
``pages.py`` registers it with one line.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.portal.api.session import Sessie, SessieSleutel
from services.portal.application import (
    Aanbieder,
    Apis,
    Conflict,
    Gelukt,
    Geweigerd,
    Inloggen,
    NietGevonden,
    NietIngelogd,
    Ongeldig,
    TeVaak,
    Uitkomst,
)
from services.portal.application.live import Verdeler
from services.portal.application.start import ROL_NAMEN
from services.portal.application.teksten import (
    RAPPORT_OPENEN_KNOP,
    RAPPORT_OPENEN_TEKST,
    RAPPORT_OPENEN_TITEL,
    dossiernummer,
)
from shared.platform.throttle import client_source

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
#: A form post larger than this is refused before it is read (the longest field is 5000).
MAX_BODY_BYTES = 64 * 1024
MAX_FIELDS = 60
#: The earlier hops of X-Forwarded-For passed on (well-formed addresses only).
MAX_HOPS = 8

templates = Jinja2Templates(directory=HERE / "templates")


def nu() -> datetime:
    """The time now (UTC)."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Omgeving:
    """What a journey's routes are given: the APIs, signing in (the development sign-in or
    an OIDC provider), the session key, which peers are the portal's own reverse proxies, and
    the clock (tests pass their own)."""

    apis: Apis
    inloggen: Inloggen | None
    sleutel: SessieSleutel
    vertrouwde_proxies: tuple[str, ...] = ()
    klok: Callable[[], datetime] = field(default=nu)
    #: Signing in at an OIDC provider (None: not offered).
    aanbieder: Aanbieder | None = None
    #: The open live connections, fed by the event stream (None: pages are not live).
    live: Verdeler | None = None

    def naar_inloggen(self) -> RedirectResponse:
        """Where a visitor who must sign in first goes: the sign-in page, or home when this
        portal offers no sign-in."""
        kan = self.inloggen is not None or self.aanbieder is not None
        return RedirectResponse("/inloggen" if kan else "/", status_code=303)

    def toegang(self, request: Request, rol: str, voor_wie: str) -> Response | None:
        """None when the signed-in person has ``rol``; a visitor not signed in is sent to the
        sign-in, anyone else refused with 403 ("Deze pagina is voor ``voor_wie``.")."""
        if not sessie(request).ingelogd:
            return self.naar_inloggen()
        if sessie(request).rol != rol:
            raise Weigering(403, "Geen toegang", f"Deze pagina is voor {voor_wie}.")
        return None

    def apis_voor(self, request: Request, *, anoniem: bool = False) -> Apis:
        """The APIs as the signed-in person (or anonymously), for this visitor."""
        token = None if anoniem else sessie(request).token
        return self.apis.als(token, herkomst_van(request, self.vertrouwde_proxies))


class Weigering(Exception):
    """A request the portal refuses with a Dutch page (status and text)."""

    def __init__(self, status: int, titel: str, tekst: str) -> None:
        super().__init__(titel)
        self.status = status
        self.titel = titel
        self.tekst = tekst


def standaard_weigering(uitkomst: Uitkomst) -> Weigering:
    """The page for an API answer a journey has no words of its own for: a session the
    services no longer accept, a refusal, too many requests, a step that does not fit the
    dossier now, a request the service would not take, or a service that did not answer."""
    match uitkomst:
        case NietIngelogd():
            return Weigering(
                401, "Opnieuw inloggen", "Uw sessie is verlopen. Log uit en log opnieuw in."
            )
        case Geweigerd():
            return Weigering(403, "Geen toegang", "U mag dit dossier of deze stap niet inzien.")
        case TeVaak():
            return Weigering(
                429,
                "Te veel verzoeken",
                "U hebt in korte tijd te veel verzoeken gedaan. Probeer het over een minuut"
                " opnieuw.",
            )
        case Conflict():
            return Weigering(
                409,
                "Dit kan nu niet",
                "Deze stap past niet bij hoe het dossier er nu voor staat. Open de pagina opnieuw"
                " om de actuele stand te zien.",
            )
        case Ongeldig():
            return Weigering(
                422,
                "Niet verwerkt",
                "De dienst kon dit verzoek niet verwerken. Open de pagina opnieuw en probeer het"
                " nog eens.",
            )
        case _:
            return Weigering(
                503,
                "Dienst niet bereikbaar",
                "Een van de diensten antwoordde niet. Probeer het over enkele minuten opnieuw.",
            )


def _is_adres(waarde: str) -> bool:
    try:
        ipaddress.ip_address(waarde)
    except ValueError:
        return False
    return True


def herkomst_van(request: Request, vertrouwde_proxies: tuple[str, ...]) -> str:
    """The ``X-Forwarded-For`` the portal sends the services: the chain it received (only
    well-formed addresses, at most ``MAX_HOPS``), with the visitor as the portal sees it
    appended last.

    The visitor is the peer, or, when the peer is one of the portal's own proxies, the
    address that proxy put last (``client_source``, the rule the services apply). The services
    trust the portal's address and read only the last entry, the portal's own: whatever a
    visitor writes in the header stays history, never their source.
    """
    peer = request.client.host if request.client is not None else "onbekend"
    bezoeker = client_source(request, vertrouwde_proxies)
    ontvangen = [deel.strip() for deel in request.headers.get("X-Forwarded-For", "").split(",")]
    if peer in vertrouwde_proxies and bezoeker != peer:
        ontvangen = ontvangen[:-1]  # the proxy's last entry is the visitor, appended below
    eerder = [deel for deel in ontvangen if _is_adres(deel)][-MAX_HOPS:]
    return ", ".join([*eerder, bezoeker])


def sessie(request: Request) -> Sessie:
    """The request's session (anonymous when there was no valid cookie)."""
    found: Sessie = request.state.sessie
    return found


def vervang_sessie(request: Request, nieuw: Sessie) -> None:
    """Replace the session (sign-in, sign-out): the response carries the new cookie."""
    request.state.sessie = nieuw
    request.state.sessie_gewijzigd = True


def zet_melding(request: Request, melding: str | None) -> None:
    """A one-time note for the next page (a code, never personal data)."""
    sessie(request).melding = melding
    request.state.sessie_gewijzigd = True


def neem_melding(request: Request) -> str | None:
    """The one-time note, taken (shown once)."""
    huidig = sessie(request)
    melding = huidig.melding
    if melding is not None:
        huidig.melding = None
        request.state.sessie_gewijzigd = True
    return melding


#: Why a search opened no dossier (a code; each journey words it at its search field), and the
#: status of the list page that says so.
ZOEK_STATUS = {"zoek_ongeldig": 422, "zoek_niet_gevonden": 404}


def zoek_dossier(
    nummer: str,
    *,
    basis: str,
    opzoeken: Callable[[UUID], Uitkomst] | None,
    weigering: Callable[[Uitkomst], Weigering],
) -> RedirectResponse | str:
    """The answer to a dossier number posted from a journey's search box: on to the dossier's
    page (``<basis>/dossiers/<id>``, its address the dossier's id only), or the code of why not
    for the list page to say at the field: ``zoek_ongeldig`` (not a dossier number) or
    ``zoek_niet_gevonden`` (``ZOEK_STATUS`` the page's status).

    ``opzoeken`` asks the API first, so a number the signed-in person may not see is said on
    the list; any other refusal ends in ``weigering``'s page. Without it the dossier's page
    asks, and refuses, itself."""
    gevonden = dossiernummer(nummer[:100])
    if gevonden is None:
        return "zoek_ongeldig"
    if opzoeken is not None:
        uitkomst = opzoeken(gevonden)
        if isinstance(uitkomst, NietGevonden):
            return "zoek_niet_gevonden"
        if not isinstance(uitkomst, Gelukt):
            raise weigering(uitkomst)
    return RedirectResponse(f"{basis}/dossiers/{gevonden}", status_code=303)


def zoekroutes(
    api: APIRouter,
    *,
    basis: str,
    lijst: str,
    weg: Callable[[Request], Response | None],
    toon: Callable[[Request, str], Response],
    opzoeken: Callable[[Request], Callable[[UUID], Uitkomst]] | None,
    weigering: Callable[[Uitkomst], Weigering],
) -> None:
    """A journey's search by dossier number on ``api`` (whose prefix is ``basis``).

    ``POST /zoeken`` (CSRF first, then ``weg``: who may not search is sent away) answers with
    ``zoek_dossier``: on to the dossier's page, or the list made by ``toon`` with why not at
    the field. A search is a form post, so what a person types (a name, perhaps) stays out of
    addresses, the browser's history and the proxies' logs; ``GET /zoeken`` (an old link or
    bookmark with ``?nummer=``) goes to ``lijst`` with the value neither read nor passed on.
    ``opzoeken`` gives the person's look-up of a dossier (None: the dossier's page asks)."""

    @api.post("/zoeken")
    async def zoek(request: Request) -> Response:
        nummer = (await formulier(request)).get("nummer", "")
        if (weg_van := weg(request)) is not None:
            return weg_van

        def stap() -> Response:
            gevonden = zoek_dossier(
                nummer,
                basis=basis,
                opzoeken=None if opzoeken is None else opzoeken(request),
                weigering=weigering,
            )
            return toon(request, gevonden) if isinstance(gevonden, str) else gevonden

        return await run_in_threadpool(stap)

    @api.get("/zoeken")
    def zoek_per_adres() -> Response:
        return RedirectResponse(lijst, status_code=303)


def pagina(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    status: int = 200,
    *,
    live: UUID | str | None = None,
    live_pagina: str = "",
) -> Response:
    """A page rendered with the session's CSRF token and who is signed in.

    A page that follows changes live (``static/live.js``) passes ``live`` (or has it in its
    context): the dossier's id for a dossier page, a list's name (``application.live.LIJSTEN``)
    for a list, with ``live_pagina`` the list page's own query string (its filters and start)
    when it has one, so that what is compared is what the page shows."""
    huidig = sessie(request)
    inhoud: dict[str, Any] = {
        "csrf": huidig.csrf,
        "rol": huidig.rol,
        "rol_naam": ROL_NAMEN.get(huidig.rol or "", ""),
        **({"live": live, "live_pagina": live_pagina} if live is not None else {}),
        **(context or {}),
    }
    if request.method != "GET":
        # A page answering a form post (its errors) stands at the post's address: fetching
        # that address again is no way to follow it, so it is not live.
        inhoud.pop("live", None)
    return templates.TemplateResponse(request, template, inhoud, status_code=status)


#: ``Sec-Fetch-Site`` of a request another site started: ``same-site`` too, since other apps
#: may live on the portal's sibling subdomains.
_VAN_ELDERS = frozenset({"cross-site", "same-site"})


def van_elders(request: Request) -> bool:
    """Whether the browser says another site started this request (``Sec-Fetch-Site``).

    ``none`` (typed or bookmarked) and ``same-origin`` are the person's own; a request without
    the header (an older browser, a client that is no browser) is let through, as before."""
    return request.headers.get("Sec-Fetch-Site", "").strip().lower() in _VAN_ELDERS


def rapport_openen(request: Request) -> Response | None:
    """None when this GET may read a report now; for a request another site started (a link
    the signed-in person clicked there), a page with nothing of the dossier and one link to
    this same address.

    Every read of a report is recorded on the audit trail, and the session cookie
    (SameSite=Lax) goes along with a top-level navigation from anywhere: without this, another
    site could make a read appear that the person did not choose within the portal. The link
    on this page is a navigation from the portal itself (``same-origin``), which reads."""
    if not van_elders(request):
        return None
    adres = request.url.path
    if not adres.startswith("/") or adres[1:2] in ("/", "\\"):
        adres = "/"  # never a link off the portal (routes all start with one slash)
    if request.url.query:
        adres = f"{adres}?{request.url.query}"
    return pagina(
        request,
        "openen.html",
        {
            "titel": RAPPORT_OPENEN_TITEL,
            "tekst": RAPPORT_OPENEN_TEKST,
            "knop": RAPPORT_OPENEN_KNOP,
            "adres": adres,
        },
    )


def is_formuliersleutel(sleutel: str) -> bool:
    """Whether a form's key is one the portal made when it rendered the form (a UUID)."""
    try:
        return str(uuid.UUID(sleutel)) == sleutel
    except ValueError:
        return False


class Eenmalig:
    """A form post done once per form key: a second post of the same rendered form (a double
    click, a form sent again from the history) makes no second call and gets the first one's
    outcome, while it is kept (``BEWAAR_S``). Posts that arrive together wait for the first.

    For a service that takes no ``Idempotency-Key`` of its own; the outcome is kept in this
    process's memory only, so it holds for one portal process. An outcome that is no success
    is not kept: the same form may be sent again and is then tried again."""

    BEWAAR_S = 600.0
    MAX = 10_000

    def __init__(self, klok: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._klok = klok
        self._posten: dict[str, _Post] = {}
        #: The finished posts in the order they finished: the oldest expires first, so a post
        #: looks only at those that expired, never at all that are kept.
        self._klaar: deque[tuple[str, _Post]] = deque()

    def _vergeet_verlopen(self, nu: float) -> None:
        while self._klaar and self._klaar[0][1].verlopen(nu, self.BEWAAR_S):
            sleutel, post = self._klaar.popleft()
            if self._posten.get(sleutel) is post:
                del self._posten[sleutel]

    def eens(self, sleutel: str, doe: Callable[[], Uitkomst]) -> Uitkomst:
        """``doe()``'s outcome, done once for ``sleutel`` (the first outcome when it succeeded)."""
        while True:
            with self._lock:
                self._vergeet_verlopen(self._klok())
                bezig = self._posten.get(sleutel)
                eigen = bezig is None
                if bezig is None:
                    if len(self._posten) >= self.MAX:
                        return doe()  # no room to remember: as without a key
                    bezig = self._posten[sleutel] = _Post()
            if eigen:
                try:
                    resultaat = bezig.uitkomst = doe()
                    return resultaat
                finally:
                    with self._lock:
                        bezig.klaar_op = self._klok()
                        if isinstance(bezig.uitkomst, Gelukt):
                            self._klaar.append((sleutel, bezig))
                        else:
                            self._posten.pop(sleutel, None)
                    bezig.klaar.set()
            if not bezig.klaar.wait(timeout=60):
                raise Weigering(
                    409,
                    "Formulier al verstuurd",
                    "Dit formulier is al verstuurd en wordt nog verwerkt. Open de pagina"
                    " opnieuw om te zien of het gelukt is.",
                )
            if isinstance(bezig.uitkomst, Gelukt):
                return bezig.uitkomst
            # The first post did not succeed and was forgotten: this one tries again.


@dataclass
class _Post:
    klaar: threading.Event = field(default_factory=threading.Event)
    uitkomst: Uitkomst | None = None
    klaar_op: float | None = None

    def verlopen(self, nu: float, bewaar_s: float) -> bool:
        return self.klaar_op is not None and nu - self.klaar_op > bewaar_s


async def formulier(
    request: Request, *, max_bytes: int = MAX_BODY_BYTES, max_velden: int = MAX_FIELDS
) -> dict[str, str]:
    """The posted form, after its size and CSRF token are checked (a journey whose form is
    longer, such as a report, passes its own limits)."""
    lengte = request.headers.get("content-length", "")
    if not lengte.isdigit() or int(lengte) > max_bytes:
        raise Weigering(
            413,
            "Formulier te groot",
            "Het formulier bevat te veel tekst. Maak de teksten korter en probeer het opnieuw.",
        )
    try:
        posted = await request.form(max_files=0, max_fields=max_velden)
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
