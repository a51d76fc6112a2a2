"""Journey 2: the secretariat's werkvoorraad, a dossier, contact and the appointments.

Every step is a plain form post with the session's CSRF token, answered by a redirect to the
dossier (with a one-time note) or by the page again with the API's refusal at its field.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from services.portal.api.web import (
    ZOEK_STATUS,
    Omgeving,
    Weigering,
    formulier,
    neem_melding,
    pagina,
    standaard_weigering,
    zet_melding,
    zoekroutes,
)
from services.portal.application import (
    Conflict,
    Gelukt,
    NietGevonden,
    Uitkomst,
)
from services.portal.application.secretariaat import (
    DUUR,
    MELDINGEN,
    PARTIJ_NAMEN,
    DossierPagina,
    Filters,
    Formulierfouten,
    Fout,
    afspraak_verzoek,
    dossier_pagina,
    fouten_uit,
    geldige_sleutel,
    gepland_op,
    kalender_van,
    werkvoorraad,
)
from services.portal.application.teksten import SOORT_NAMEN, datum_tekst
from services.portal.application.uitkomsten import Probleem

ROL = "secretariaat"
BASIS = "/secretariaat"


def _weigering(uitkomst: Uitkomst) -> Weigering:
    """The page for an answer that ends it."""
    match uitkomst:
        case NietGevonden():
            return Weigering(
                404,
                "Dossier niet gevonden",
                "Er is geen dossier met dit nummer, of het is net ingediend en nog niet"
                " verwerkt. Probeer het over enkele seconden opnieuw.",
            )
        case _:
            return standaard_weigering(uitkomst)


class Pagina:
    """What the secretariat's routes share: who may see them, the dossier page, a step's end."""

    def __init__(self, omgeving: Omgeving) -> None:
        self.omgeving = omgeving

    def weg(self, request: Request) -> Response | None:
        """None for this role's person; otherwise to the sign-in, or a refusal."""
        return self.omgeving.toegang(request, ROL, "het secretariaat van het CCV")

    def adviseurs(self) -> list[tuple[str, str]]:
        """The adviseurs to choose from (the demo people; none: the id is typed)."""
        if self.omgeving.inloggen is None:
            return []
        return [
            (p.sleutel, p.omschrijving)
            for p in self.omgeving.inloggen.personen()
            if p.rol == "adviseur"
        ]

    def dossier(
        self,
        request: Request,
        aanvraag_id: UUID,
        fouten: Formulierfouten | None = None,
        status: int = 200,
    ) -> Response:
        """The dossier page (with a refused form's errors)."""
        try:
            data = dossier_pagina(
                self.omgeving.apis_voor(request), aanvraag_id, self.omgeving.klok()
            )
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        melding = MELDINGEN.get(neem_melding(request) or "")
        return pagina(
            request,
            "secretariaat/dossier.html",
            _context(data, fouten, melding, self.adviseurs()),
            status,
            live=aanvraag_id,
        )

    def na_stap(
        self,
        request: Request,
        aanvraag_id: UUID,
        formulier_id: str,
        uitkomst: Uitkomst,
        melding: str,
    ) -> Response:
        """Done: back to the dossier with a note; refused: the page with why, at the field."""
        if isinstance(uitkomst, Gelukt):
            zet_melding(request, melding)
            return RedirectResponse(f"{BASIS}/dossiers/{aanvraag_id}", status_code=303)
        try:
            kalender = kalender_van(self.omgeving.apis_voor(request), self.omgeving.klok())
            fouten = fouten_uit(formulier_id, uitkomst, kalender.werktijden)
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        return self.dossier(request, aanvraag_id, fouten, _status(uitkomst))

    def moment(
        self, request: Request, formulier_id: str, waarden: dict[str, str]
    ) -> tuple[datetime | None, Formulierfouten]:
        """The moment chosen in a picker, or the error to show at it."""
        try:
            kalender = kalender_van(self.omgeving.apis_voor(request), self.omgeving.klok())
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        moment = gepland_op(waarden, kalender.zone)
        fouten = Formulierfouten(formulier=formulier_id, waarden=waarden)
        if moment is None:
            fouten.fouten.append(Fout("datum", "Kies een datum en een tijd uit de lijsten."))
        return moment, fouten


def router(omgeving: Omgeving) -> APIRouter:
    """The secretariat's pages: the werkvoorraad and search, and a dossier with its steps."""
    api = APIRouter(prefix=BASIS)
    gedeeld = Pagina(omgeving)
    _werkvoorraad(api, gedeeld)
    _stappen(api, gedeeld)
    return api


def _werkvoorraad(api: APIRouter, gedeeld: Pagina) -> None:
    omgeving = gedeeld.omgeving

    def toon_werkvoorraad(request: Request, zoekfout: str | None = None) -> Response:
        """The werkvoorraad (filtered as its address says), with a search's error at the field."""
        filters = Filters.uit(dict(request.query_params))
        try:
            data = werkvoorraad(omgeving.apis_voor(request), filters, omgeving.klok())
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        return pagina(
            request,
            "secretariaat/werkvoorraad.html",
            {"w": data, "melding": ZOEKMELDINGEN.get(zoekfout or "")},
            ZOEK_STATUS.get(zoekfout or "", 200),
            live="werkvoorraad",
            live_pagina=filters.query(
                na_ingediend_op=filters.na_ingediend_op, na_aanvraag_id=filters.na_aanvraag_id
            ),
        )

    @api.get("/werkvoorraad")
    def lijst(request: Request) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        return toon_werkvoorraad(request)

    zoekroutes(
        api,
        basis=BASIS,
        lijst=f"{BASIS}/werkvoorraad",
        weg=gedeeld.weg,
        toon=toon_werkvoorraad,
        opzoeken=lambda request: omgeving.apis_voor(request).dossier,
        weigering=_weigering,
    )

    @api.get("/dossiers/{aanvraag_id}")
    def dossier(request: Request, aanvraag_id: UUID) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        return gedeeld.dossier(request, aanvraag_id)


def _stappen(api: APIRouter, gedeeld: Pagina) -> None:
    omgeving = gedeeld.omgeving

    @api.post("/dossiers/{aanvraag_id}/contact")
    async def contact(request: Request, aanvraag_id: UUID) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        await formulier(request)

        def stap() -> Response:
            uitkomst = omgeving.apis_voor(request).neem_contact_op(aanvraag_id)
            return gedeeld.na_stap(request, aanvraag_id, "contact", uitkomst, "contact_vastgelegd")

        return await run_in_threadpool(stap)

    @api.post("/dossiers/{aanvraag_id}/afspraken")
    async def plan(request: Request, aanvraag_id: UUID) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        waarden = await formulier(request)
        soort = waarden.get("soort", "")
        if soort not in DUUR:
            raise Weigering(422, "Onbekende afspraak", "Kies een gesprek om te plannen.")

        def stap() -> Response:
            formulier_id = f"plan-{soort}"
            moment, fouten = gedeeld.moment(request, formulier_id, waarden)
            if moment is None:
                return gedeeld.dossier(request, aanvraag_id, fouten, 422)
            sleutel = waarden.get("sleutel", "")
            uitkomst = omgeving.apis_voor(request).plan_afspraak(
                aanvraag_id,
                afspraak_verzoek(soort, moment, waarden),
                sleutel if geldige_sleutel(sleutel) else str(uuid.uuid4()),
            )
            return gedeeld.na_stap(request, aanvraag_id, formulier_id, uitkomst, "afspraak_gepland")

        return await run_in_threadpool(stap)

    def verplaats(pad: str, voorvoegsel: str, melding: str, *, achteraf: bool) -> None:
        """``POST …/afspraken/{afspraak_id}/<pad>``: the appointment at the moment chosen in
        the form whose ids start with ``voorvoegsel`` (``achteraf``: it took place then, which
        must have passed)."""

        @api.post(f"/dossiers/{{aanvraag_id}}/afspraken/{{afspraak_id}}/{pad}")
        async def route(request: Request, aanvraag_id: UUID, afspraak_id: UUID) -> Response:
            if (weg := gedeeld.weg(request)) is not None:
                return weg
            waarden = await formulier(request)

            def stap() -> Response:
                formulier_id = f"{voorvoegsel}-{afspraak_id}"
                moment, fouten = gedeeld.moment(request, formulier_id, waarden)
                if moment is None:
                    return gedeeld.dossier(request, aanvraag_id, fouten, 422)
                uitkomst = omgeving.apis_voor(request).verzet_afspraak(
                    afspraak_id, moment, achteraf=achteraf
                )
                return gedeeld.na_stap(request, aanvraag_id, formulier_id, uitkomst, melding)

            return await run_in_threadpool(stap)

    verplaats("verzetten", "verzet", "afspraak_verzet", achteraf=False)
    # A planned conversation that took place at another, earlier moment (moved on the day,
    # arranged by phone) is recorded afterwards at that moment.
    verplaats("achteraf", "achteraf", "afspraak_achteraf", achteraf=True)

    @api.post("/dossiers/{aanvraag_id}/afspraken/{afspraak_id}/annuleren")
    async def annuleer(request: Request, aanvraag_id: UUID, afspraak_id: UUID) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        await formulier(request)

        def stap() -> Response:
            uitkomst = omgeving.apis_voor(request).annuleer_afspraak(afspraak_id)
            return gedeeld.na_stap(
                request, aanvraag_id, f"annuleer-{afspraak_id}", uitkomst, "afspraak_geannuleerd"
            )

        return await run_in_threadpool(stap)


def _status(uitkomst: Uitkomst) -> int:
    return 409 if isinstance(uitkomst, Conflict) else 422


ZOEKMELDINGEN = {
    "zoek_ongeldig": "Dat is geen dossiernummer. Een dossiernummer bestaat uit 32 cijfers en"
    " letters a tot en met f, in groepjes van 8, 4, 4, 4 en 12 (zoals in de bevestigingsmail).",
    "zoek_niet_gevonden": "Er is geen dossier met dat nummer.",
}


def _context(
    data: DossierPagina,
    fouten: Formulierfouten | None,
    melding: str | None,
    adviseurs: list[tuple[str, str]],
) -> dict[str, Any]:
    return {
        "d": data,
        "fouten": fouten or Formulierfouten(),
        "melding": melding,
        "adviseurs": adviseurs,
        "soort_namen": SOORT_NAMEN,
        "partij_namen": PARTIJ_NAMEN,
        "duur": DUUR,
        "datum_tekst": datum_tekst,
        "sleutel": str(uuid.uuid4()),
    }
