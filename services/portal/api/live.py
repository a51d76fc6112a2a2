"""``GET /live``: the server-sent events a live page follows (``static/live.js``).

``/live?dossier=<id>`` follows one dossier, ``/live?lijst=<naam>`` one of the role's lists
(``LIJSTEN``; the werkvoorraad with the page's own filters and start beside it). Only for
someone signed in, and only once the services have shown the viewer the dossier or list with
the viewer's own token; refused, the answer has no stream and no content. What is pushed is
"gewijzigd" and nothing else (``application.live``).
"""

from __future__ import annotations

import hashlib
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from services.portal.api.session import Sessie
from services.portal.api.web import Omgeving, sessie
from services.portal.application.live import LIJSTEN, WEG, Vol, stroom, zicht_van


def _tekst(status: int, tekst: str) -> Response:
    return PlainTextResponse(tekst, status_code=status)


def _weigering(huidig: Sessie, dossier: UUID | None, lijst: str | None) -> Response | None:
    """The answer to a request that may not have a stream (None: it may)."""
    if not huidig.ingelogd:
        return _tekst(401, "Niet ingelogd.")
    if (dossier is None) == (lijst is None):
        return _tekst(400, "Geef een dossier of een lijst.")
    if lijst is not None and LIJSTEN.get(lijst) != huidig.rol:
        return _tekst(403, "Geen toegang.")
    return None


def router(omgeving: Omgeving) -> APIRouter:
    """The live route."""
    api = APIRouter()

    @api.get("/live", include_in_schema=False)
    async def live(
        request: Request,
        dossier: Annotated[UUID | None, Query()] = None,
        lijst: Annotated[str | None, Query(max_length=40)] = None,
    ) -> Response:
        huidig = sessie(request)
        if (weigering := _weigering(huidig, dossier, lijst)) is not None:
            return weigering
        verdeler = omgeving.live
        if verdeler is None:
            # 204 tells the browser not to try again: this portal has no live pages.
            return Response(status_code=204)
        vraag = zicht_van(omgeving.apis_voor(request), dossier, lijst, request.query_params)

        async def zicht() -> object:
            return await run_in_threadpool(vraag)

        # The session, by a digest of its CSRF token (a secret per session, never kept).
        sleutel = hashlib.sha256(huidig.csrf.encode()).hexdigest()
        try:
            # Subscribed before the first answer: nothing that lands meanwhile is missed.
            abonnement = verdeler.neem(sleutel, dossier)
        except Vol:
            return _tekst(429, "Te veel open verbindingen.")
        eerste = await zicht()
        if eerste is WEG or eerste is None:
            verdeler.laat_los(abonnement)
            # Refused or unknown: 404 either way, and nothing of the dossier.
            return _tekst(404 if eerste is WEG else 503, "Niet beschikbaar.")
        return StreamingResponse(
            stroom(
                verdeler,
                abonnement,
                zicht,
                eerste,
                huidig.verloopt,
                token_verloopt=huidig.token_verloopt,
            ),
            media_type="text/event-stream",
            # Proxies that buffer (nginx) are told not to; Caddy: flush_interval -1.
            headers={"X-Accel-Buffering": "no"},
            # Also when the stream never began (the client left at once).
            background=BackgroundTask(verdeler.laat_los, abonnement),
        )

    return api
