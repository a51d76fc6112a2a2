"""Journey 6: the werkgever's dossiers, the released report with its measures (its own recorded
as carried out), and the organisation's webhook subscriptions.

Every page asks the services with the werkgever's own token: a dossier of another organisation
is not found, and a report not yet released shows the clear sentence and nothing of its
content. Every step is a plain form post with the session's CSRF token (checked before
anything else).
"""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from services.portal.api.web import (
    ZOEK_STATUS,
    Eenmalig,
    Omgeving,
    Weigering,
    formulier,
    is_formuliersleutel,
    neem_melding,
    pagina,
    rapport_openen,
    sessie,
    standaard_weigering,
    zet_melding,
    zoekroutes,
)
from services.portal.application import Gelukt, NietGevonden, Uitkomst
from services.portal.application.dossierlijst import Blad
from services.portal.application.uitkomsten import Probleem
from services.portal.application.werkgever import (
    GEBEURTENISSEN,
    MELDINGEN,
    MISLUKT,
    NOG_NIET_VRIJGEGEVEN,
    ZOEKMELDINGEN,
    Aangemaakt,
    Formulierfouten,
    abonnement_verzoek,
    abonnementen,
    dossier_pagina,
    dossiers,
    fouten_uit,
    uitvoering_melding,
)

ROL = "werkgever"
BASIS = "/werkgever"


def _weigering(uitkomst: Uitkomst) -> Weigering:
    """The page for an answer that ends it (it shows nothing of the dossier)."""
    match uitkomst:
        case NietGevonden():
            return Weigering(
                404,
                "Dossier niet gevonden",
                "Er is geen dossier met dit nummer voor uw organisatie.",
            )
        case _:
            return standaard_weigering(uitkomst)


def _weg(omgeving: Omgeving, request: Request) -> Response | None:
    """None for a werkgever; otherwise to the sign-in, or a refusal."""
    return omgeving.toegang(request, ROL, "de werkgever van een dossier")


def _melding(request: Request) -> dict[str, Any]:
    """The one-time note for this page, and whether it tells of something that failed."""
    code = neem_melding(request) or ""
    return {"melding": MELDINGEN.get(code), "melding_fout": code in MISLUKT}


def router(omgeving: Omgeving) -> APIRouter:
    """The werkgever's pages: its dossiers, a dossier, and the webhook subscriptions."""
    api = APIRouter(prefix=BASIS)
    _dossiers(api, omgeving)
    _webhooks(api, omgeving)
    _aangemaakt(api, omgeving)
    return api


def _dossiers(api: APIRouter, omgeving: Omgeving) -> None:
    def toon_lijst(request: Request, zoekfout: str | None = None) -> Response:
        """The list (the page its address says), with a search's error at the field."""
        try:
            data = dossiers(omgeving.apis_voor(request), Blad.uit(request.query_params))
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        return pagina(
            request,
            "werkgever/dossiers.html",
            {"lijst": data, "melding": ZOEKMELDINGEN.get(zoekfout or "")},
            ZOEK_STATUS.get(zoekfout or "", 200),
        )

    @api.get("/dossiers")
    def lijst(request: Request) -> Response:
        if (weg := _weg(omgeving, request)) is not None:
            return weg
        return toon_lijst(request)

    zoekroutes(
        api,
        basis=BASIS,
        lijst=f"{BASIS}/dossiers",
        weg=lambda request: _weg(omgeving, request),
        toon=toon_lijst,
        opzoeken=lambda request: omgeving.apis_voor(request).dossier,
        weigering=_weigering,
    )

    def toon(
        request: Request, aanvraag_id: UUID, fout: str | None = None, status: int = 200
    ) -> Response:
        try:
            data = dossier_pagina(omgeving.apis_voor(request), aanvraag_id)
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        context = {"d": data, "nog_niet_vrijgegeven": NOG_NIET_VRIJGEGEVEN, "fout": fout}
        context["live"] = aanvraag_id
        return pagina(request, "werkgever/dossier.html", context | _melding(request), status)

    @api.get("/dossiers/{aanvraag_id}")
    def dossier(request: Request, aanvraag_id: UUID) -> Response:
        if (weg := _weg(omgeving, request)) is not None:
            return weg
        # A released report is read on this page.
        if (openen := rapport_openen(request)) is not None:
            return openen
        return toon(request, aanvraag_id)

    @api.post("/dossiers/{aanvraag_id}/maatregelen/{maatregel_id}/uitgevoerd")
    async def uitgevoerd(request: Request, aanvraag_id: UUID, maatregel_id: UUID) -> Response:
        await formulier(request)
        if (weg := _weg(omgeving, request)) is not None:
            return weg

        def stap() -> Response:
            uitkomst = omgeving.apis_voor(request).voer_maatregel_uit(maatregel_id)
            try:
                fout = uitvoering_melding(uitkomst)
            except Probleem as probleem:
                raise _weigering(probleem.uitkomst) from None
            if fout is not None:
                return toon(request, aanvraag_id, fout, 409)
            zet_melding(request, "maatregel_uitgevoerd")
            return RedirectResponse(f"{BASIS}/dossiers/{aanvraag_id}", status_code=303)

        return await run_in_threadpool(stap)


def _webhooks(api: APIRouter, omgeving: Omgeving) -> None:
    # A subscription is made once per rendered form: the portal keeps the form's key and the
    # first outcome itself (written before notifications' POST honoured an Idempotency-Key;
    # the key is not passed on to it).
    verzonden = Eenmalig()

    def lijst(
        request: Request, fouten: Formulierfouten | None = None, status: int = 200
    ) -> Response:
        try:
            regels = abonnementen(omgeving.apis_voor(request))
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        context: dict[str, Any] = {
            "abonnementen": regels,
            "gebeurtenissen": GEBEURTENISSEN,
            "fouten": fouten or Formulierfouten(),
            "sleutel": str(uuid.uuid4()),
            **_melding(request),
        }
        return pagina(request, "werkgever/webhooks.html", context, status)

    @api.get("/webhooks")
    def webhooks(request: Request) -> Response:
        if (weg := _weg(omgeving, request)) is not None:
            return weg
        return lijst(request)

    @api.post("/webhooks")
    async def maak(request: Request) -> Response:
        waarden = await formulier(request)
        if (weg := _weg(omgeving, request)) is not None:
            return weg

        sleutel = waarden.get("sleutel", "")

        def stap() -> Response:
            verzoek, fouten = abonnement_verzoek(waarden)
            if verzoek is None:
                return lijst(request, fouten, 422)
            apis = omgeving.apis_voor(request)

            def maak_het() -> Uitkomst:
                return apis.maak_abonnement(verzoek)

            if is_formuliersleutel(sleutel):
                uitkomst = verzonden.eens(f"{sessie(request).sub}:{sleutel}", maak_het)
            else:
                uitkomst = maak_het()  # a form rendered without a key: as it comes
            if isinstance(uitkomst, Gelukt):
                # Post/Redirect/Get: a reload shows the page again and makes nothing. The secret
                # is in this one answer: it goes, sealed in the session, to the one page after
                # the redirect, which takes it (shown once).
                sessie(request).aangemaakt = {
                    "abonnement_id": str(uitkomst.data.get("abonnement_id", "")),
                    "secret": str(uitkomst.data.get("secret", "")),
                }
                request.state.sessie_gewijzigd = True
                return RedirectResponse(f"{BASIS}/webhooks/aangemaakt", status_code=303)
            try:
                return lijst(request, fouten_uit(uitkomst, fouten), 422)
            except Probleem as probleem:
                raise _weigering(probleem.uitkomst) from None

        return await run_in_threadpool(stap)

    @api.post("/webhooks/{abonnement_id}/verwijderen")
    async def verwijder(request: Request, abonnement_id: UUID) -> Response:
        await formulier(request)
        if (weg := _weg(omgeving, request)) is not None:
            return weg

        def stap() -> Response:
            uitkomst = omgeving.apis_voor(request).verwijder_abonnement(abonnement_id)
            if isinstance(uitkomst, Gelukt):
                zet_melding(request, "abonnement_verwijderd")
            elif isinstance(uitkomst, NietGevonden):
                zet_melding(request, "abonnement_weg")
            else:
                raise _weigering(uitkomst)
            return RedirectResponse(f"{BASIS}/webhooks", status_code=303)

        return await run_in_threadpool(stap)


def _aangemaakt(api: APIRouter, omgeving: Omgeving) -> None:
    @api.get("/webhooks/aangemaakt")
    def aangemaakt(request: Request) -> Response:
        if (weg := _weg(omgeving, request)) is not None:
            return weg
        huidig = sessie(request)
        nieuw = huidig.aangemaakt
        if nieuw is None:
            # Shown before (a reload, the history): the secret is gone, the list stays.
            return RedirectResponse(f"{BASIS}/webhooks", status_code=303)
        huidig.aangemaakt = None
        request.state.sessie_gewijzigd = True
        try:
            regels = abonnementen(omgeving.apis_voor(request))
        except Probleem:
            regels = ()  # the secret is shown all the same: it cannot be asked for again
        regel = next((r for r in regels if r.abonnement_id == nieuw["abonnement_id"]), None)
        return pagina(
            request,
            "werkgever/aangemaakt.html",
            {"a": Aangemaakt(abonnement=regel, secret=nieuw["secret"])},
        )
