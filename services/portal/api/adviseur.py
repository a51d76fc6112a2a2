"""Journey 3: the adviseur's appointments, a conversation held and the woningscan, the report
editor (save as draft, submit, revise after a rejection) and the differences between versions.

Every step is a plain form post with the session's CSRF token (checked before anything else),
answered by a redirect with a one-time note or by the page again with the refusal at its field.
Adding a measure is a post too: the form comes back with one more blank row, nothing saved.
"""

from __future__ import annotations

import uuid
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from services.portal.api.web import (
    Omgeving,
    Weigering,
    formulier,
    is_formuliersleutel,
    neem_melding,
    pagina,
    rapport_openen,
    standaard_weigering,
    zet_melding,
)
from services.portal.application import (
    Conflict,
    Gelukt,
    NietGevonden,
    Uitkomst,
)
from services.portal.application.adviseur import (
    MAATREGEL_VELDEN,
    MAX_MAATREGELEN,
    MELDINGEN,
    Fouten,
    Invoer,
    RapportPagina,
    concept,
    controleer,
    fouten_uit,
    mijn_afspraken,
    rapport_pagina,
    rapport_stand,
    stap_fout,
    verschillen,
)
from services.portal.application.teksten import (
    DOMEIN_NAMEN,
    KOSTEN_NAMEN,
    PRIORITEIT_NAMEN,
    UITVOERDER_NAMEN,
)
from services.portal.application.uitkomsten import Probleem

ROL = "adviseur"
BASIS = "/adviseur"
#: A report's form: four findings of up to 20,000 characters and up to 100 measures.
RAPPORT_MAX_BYTES = 1024 * 1024
RAPPORT_MAX_VELDEN = 10 + 6 * (MAX_MAATREGELEN + 1)


def _weigering(uitkomst: Uitkomst) -> Weigering:
    """The page for an answer that ends it (a refusal shows nothing of the dossier)."""
    match uitkomst:
        case NietGevonden():
            return Weigering(
                404,
                "Niet gevonden",
                "Dit dossier, deze afspraak of dit rapport is er niet, of nog niet verwerkt."
                " Probeer het over enkele seconden opnieuw.",
            )
        case _:
            return standaard_weigering(uitkomst)


class Pagina:
    """What the adviseur's routes share: who may see them and the pages they answer with."""

    def __init__(self, omgeving: Omgeving) -> None:
        self.omgeving = omgeving

    def weg(self, request: Request) -> Response | None:
        """None for this role's person; otherwise to the sign-in, or a refusal."""
        return self.omgeving.toegang(request, ROL, "de adviseurs van het CCV")

    def afspraken(
        self, request: Request, fouten: Fouten | None = None, status: int = 200
    ) -> Response:
        """My appointments (with a refused step's message)."""
        try:
            data = mijn_afspraken(self.omgeving.apis_voor(request), self.omgeving.klok())
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        melding = MELDINGEN.get(neem_melding(request) or "")
        return pagina(
            request,
            "adviseur/afspraken.html",
            {"a": data, "melding": melding, "fouten": fouten or Fouten()},
            status,
            live="afspraken",
        )

    def rapport(
        self,
        request: Request,
        aanvraag_id: UUID,
        invoer: Invoer | None = None,
        fouten: Fouten | None = None,
        status: int = 200,
    ) -> Response:
        """The report page (the form as posted, when it comes back)."""
        try:
            data = rapport_pagina(self.omgeving.apis_voor(request), aanvraag_id, invoer)
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        melding = MELDINGEN.get(neem_melding(request) or "")
        return pagina(
            request,
            "adviseur/rapport.html",
            _context(data, fouten, melding),
            status,
            live=aanvraag_id,
        )

    def opslaan(
        self, request: Request, aanvraag_id: UUID, invoer: Invoer, sleutel: str
    ) -> Response:
        """Save the form as a version: the first drafts the report, a later one revises it."""
        apis = self.omgeving.apis_voor(request)
        try:
            stand = rapport_stand(apis, aanvraag_id)
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        if stand is None:
            sleutel = sleutel if is_formuliersleutel(sleutel) else str(uuid.uuid4())
            uitkomst = apis.stel_rapport_op(aanvraag_id, concept(invoer), sleutel)
            melding = "concept_opgeslagen"
        else:
            uitkomst = apis.herzie_rapport(UUID(str(stand["rapport_id"])), concept(invoer))
            ongewijzigd = (
                isinstance(uitkomst, Gelukt) and uitkomst.data.get("versie") == (stand["versie"])
            )
            melding = "ongewijzigd" if ongewijzigd else "concept_opgeslagen"
        if isinstance(uitkomst, Gelukt):
            zet_melding(request, melding)
            return RedirectResponse(f"{BASIS}/dossiers/{aanvraag_id}/rapport", status_code=303)
        try:
            fouten = fouten_uit(invoer, uitkomst)
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        status = 409 if isinstance(uitkomst, Conflict) else 422
        return self.rapport(request, aanvraag_id, invoer, fouten, status)

    def na_afspraak_stap(self, request: Request, uitkomst: Uitkomst, melding: str) -> Response:
        """Done: back to my appointments with a note; refused: the list with why."""
        if isinstance(uitkomst, Gelukt):
            zet_melding(request, melding)
            return RedirectResponse(f"{BASIS}/afspraken", status_code=303)
        try:
            fouten = stap_fout(uitkomst)
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        return self.afspraken(request, fouten, 409)


def router(omgeving: Omgeving) -> APIRouter:
    """The adviseur's pages: appointments, the report, the differences between versions."""
    api = APIRouter(prefix=BASIS)
    gedeeld = Pagina(omgeving)
    _afspraken(api, gedeeld)
    _rapport(api, gedeeld)
    return api


def _afspraken(api: APIRouter, gedeeld: Pagina) -> None:
    omgeving = gedeeld.omgeving

    @api.get("/afspraken")
    def lijst(request: Request) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        return gedeeld.afspraken(request)

    @api.post("/afspraken/{afspraak_id}/gevoerd")
    async def gevoerd(request: Request, afspraak_id: UUID) -> Response:
        waarden = await formulier(request)
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        woningscan = waarden.get("woningscan") == "ja"

        def stap() -> Response:
            uitkomst = omgeving.apis_voor(request).leg_gesprek_vast(afspraak_id, woningscan)
            melding = "gesprek_en_woningscan" if woningscan else "gesprek_gevoerd"
            return gedeeld.na_afspraak_stap(request, uitkomst, melding)

        return await run_in_threadpool(stap)

    @api.post("/afspraken/{afspraak_id}/woningscan")
    async def woningscan(request: Request, afspraak_id: UUID) -> Response:
        await formulier(request)
        if (weg := gedeeld.weg(request)) is not None:
            return weg

        def stap() -> Response:
            uitkomst = omgeving.apis_voor(request).leg_woningscan_vast(afspraak_id)
            return gedeeld.na_afspraak_stap(request, uitkomst, "woningscan")

        return await run_in_threadpool(stap)


def _rapport(api: APIRouter, gedeeld: Pagina) -> None:
    omgeving = gedeeld.omgeving

    @api.get("/dossiers/{aanvraag_id}/rapport")
    def rapport(request: Request, aanvraag_id: UUID) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        if (openen := rapport_openen(request)) is not None:
            return openen
        return gedeeld.rapport(request, aanvraag_id)

    @api.post("/dossiers/{aanvraag_id}/rapport")
    async def opslaan(request: Request, aanvraag_id: UUID) -> Response:
        waarden = await formulier(
            request, max_bytes=RAPPORT_MAX_BYTES, max_velden=RAPPORT_MAX_VELDEN
        )
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        invoer = Invoer.uit_formulier(waarden)
        if waarden.get("actie") == "toevoegen":
            return await run_in_threadpool(
                gedeeld.rapport, request, aanvraag_id, invoer.met_extra_rij()
            )
        fouten = controleer(invoer)
        if fouten:
            return await run_in_threadpool(
                gedeeld.rapport, request, aanvraag_id, invoer, fouten, 422
            )
        sleutel = waarden.get("sleutel", "")
        return await run_in_threadpool(gedeeld.opslaan, request, aanvraag_id, invoer, sleutel)

    @api.post("/dossiers/{aanvraag_id}/rapport/indienen")
    async def indienen(request: Request, aanvraag_id: UUID) -> Response:
        await formulier(request)
        if (weg := gedeeld.weg(request)) is not None:
            return weg

        def stap() -> Response:
            apis = omgeving.apis_voor(request)
            try:
                stand = rapport_stand(apis, aanvraag_id)
            except Probleem as probleem:
                raise _weigering(probleem.uitkomst) from None
            if stand is None:
                fouten = Fouten(melding="Sla het rapport eerst op als concept.")
                return gedeeld.rapport(request, aanvraag_id, None, fouten, 409)
            uitkomst = apis.dien_rapport_in(UUID(str(stand["rapport_id"])))
            if isinstance(uitkomst, Gelukt):
                zet_melding(request, "ingediend")
                return RedirectResponse(f"{BASIS}/dossiers/{aanvraag_id}/rapport", status_code=303)
            try:
                fouten = stap_fout(uitkomst)
            except Probleem as probleem:
                raise _weigering(probleem.uitkomst) from None
            return gedeeld.rapport(request, aanvraag_id, None, fouten, 409)

        return await run_in_threadpool(stap)

    @api.get("/dossiers/{aanvraag_id}/rapport/verschillen")
    def verschil(request: Request, aanvraag_id: UUID, van: str = "", naar: str = "") -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        if (openen := rapport_openen(request)) is not None:
            return openen
        try:
            data = verschillen(omgeving.apis_voor(request), aanvraag_id, _getal(van), _getal(naar))
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        return pagina(
            request,
            "adviseur/verschillen.html",
            {"v": data, "aanvraag_id": str(aanvraag_id)},
        )


def _getal(waarde: str) -> int | None:
    return int(waarde) if waarde.isdigit() and len(waarde) < 7 else None


def _context(data: RapportPagina, fouten: Fouten | None, melding: str | None) -> dict[str, Any]:
    return {
        "r": data,
        "fouten": fouten or Fouten(),
        "melding": melding,
        "domeinen": DOMEIN_NAMEN,
        "prioriteiten": PRIORITEIT_NAMEN,
        "uitvoerders": UITVOERDER_NAMEN,
        "kosten": KOSTEN_NAMEN,
        "velden": MAATREGEL_VELDEN,
        "sleutel": str(uuid.uuid4()),
    }
