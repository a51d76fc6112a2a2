"""Journey 5: the bestuurder's dossier, report, consent, PKVW, measures and toelichting.

Every step is a plain form post with the session's CSRF token (checked before anything else),
answered by a redirect with a one-time note, or by the page again with the refusal at its
field. A dossier that is not the signed-in bestuurder's is refused by the APIs (404), and the
page then shows nothing of it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
    rapport_openen,
    standaard_weigering,
    zet_melding,
    zoekroutes,
)
from services.portal.application import (
    Conflict,
    Gelukt,
    Geweigerd,
    NietGevonden,
    Uitkomst,
)
from services.portal.application.bestuurder import (
    MELDINGEN,
    Formulierfouten,
    fouten_uit,
    geen_keuze,
    instemming,
    keuze,
    lees_rapport,
    maatregelen,
    mijn_dossiers,
    overzicht,
    pkvw_melding,
    rapport_id_van,
)
from services.portal.application.dossierlijst import Blad
from services.portal.application.uitkomsten import Probleem

ROL = "bestuurder"
BASIS = "/bestuurder"


def _weigering(uitkomst: Uitkomst) -> Weigering:
    """The page for an answer that ends it: it shows nothing of the dossier."""
    match uitkomst:
        case NietGevonden():
            return Weigering(
                404,
                "Dossier niet gevonden",
                "Er is geen dossier met dit nummer dat bij u hoort. Controleer het nummer in"
                " de bevestigingsmail. Hebt u zich net aangemeld? Probeer het dan over enkele"
                " seconden opnieuw.",
            )
        case Geweigerd():
            return Weigering(
                403,
                "Geen toegang",
                "U kunt dit niet inzien: het rapport is nog niet goedgekeurd, of dit dossier"
                " hoort niet bij u.",
            )
        case Conflict():
            return Weigering(
                409,
                "Nog geen rapport",
                "Het rapport is nog niet goedgekeurd. Zodra het klaar is, krijgt u bericht"
                " per e-mail.",
            )
        case _:
            return standaard_weigering(uitkomst)


class Pagina:
    """What the bestuurder's routes share: who may see them, the pages, a step's end."""

    def __init__(self, omgeving: Omgeving) -> None:
        self.omgeving = omgeving

    def weg(self, request: Request) -> Response | None:
        """None for this role's person; otherwise to the sign-in, or a refusal."""
        return self.omgeving.toegang(request, ROL, "de bestuurder")

    def dossier(
        self,
        request: Request,
        aanvraag_id: UUID,
        fouten: Formulierfouten | None = None,
        status: int = 200,
    ) -> Response:
        """The dossier page (with a refused form's errors)."""
        try:
            data = overzicht(self.omgeving.apis_voor(request), aanvraag_id)
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        return pagina(
            request,
            "bestuurder/dossier.html",
            {"d": data, "fouten": fouten or Formulierfouten(), "melding": _melding(request)},
            status,
            live=aanvraag_id,
        )

    def instemming(
        self,
        request: Request,
        aanvraag_id: UUID,
        fouten: Formulierfouten | None = None,
        status: int = 200,
    ) -> Response:
        """The consent page: what the werkgever will see, and the choice."""
        try:
            data = instemming(self.omgeving.apis_voor(request), aanvraag_id)
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        return pagina(
            request,
            "bestuurder/instemming.html",
            {"i": data, "fouten": fouten or Formulierfouten(), "melding": _melding(request)},
            status,
        )

    def na_stap(
        self,
        request: Request,
        terug: str,
        uitkomst: Uitkomst,
        melding: str,
        fout: _Fout,
    ) -> Response:
        """Done: back to ``terug`` with a note; refused: ``fout(fouten, status)``, the page
        with why (an answer that ends the page: its refusal)."""
        if isinstance(uitkomst, Gelukt):
            zet_melding(request, melding)
            return RedirectResponse(terug, status_code=303)
        try:
            fouten = fouten_uit(fout.formulier, uitkomst, fout.waarden)
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        status = 409 if isinstance(uitkomst, Conflict) else 422
        return fout.toon(fouten, status)


@dataclass(frozen=True)
class _Fout:
    """Which form a step came from, what was filled in, and how its page is shown again."""

    formulier: str
    waarden: dict[str, str]
    toon: Callable[[Formulierfouten, int], Response]


def _melding(request: Request) -> str | None:
    return MELDINGEN.get(neem_melding(request) or "")


def router(omgeving: Omgeving) -> APIRouter:
    """The bestuurder's pages: find my dossier, the dossier, the report, consent, measures."""
    api = APIRouter(prefix=BASIS)
    gedeeld = Pagina(omgeving)
    _paginas(api, gedeeld)
    _stappen(api, gedeeld)
    return api


def _paginas(api: APIRouter, gedeeld: Pagina) -> None:
    omgeving = gedeeld.omgeving

    def toon_lijst(request: Request, zoekfout: str | None = None) -> Response:
        """My dossiers (the page its address says), with a search's error at the field."""
        try:
            lijst = mijn_dossiers(omgeving.apis_voor(request), Blad.uit(request.query_params))
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        return pagina(
            request,
            "bestuurder/zoeken.html",
            {"fout": ZOEKMELDINGEN.get(zoekfout or ""), "lijst": lijst},
            ZOEK_STATUS.get(zoekfout or "", 200),
        )

    @api.get("/dossiers")
    def mijn_dossier(request: Request) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        return toon_lijst(request)

    # The dossier's page asks for it with the bestuurder's own token, and shows nothing of a
    # dossier that is not theirs.
    zoekroutes(
        api,
        basis=BASIS,
        lijst=f"{BASIS}/dossiers",
        weg=gedeeld.weg,
        toon=toon_lijst,
        opzoeken=None,
        weigering=_weigering,
    )

    @api.get("/dossiers/{aanvraag_id}")
    def dossier(request: Request, aanvraag_id: UUID) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        return gedeeld.dossier(request, aanvraag_id)

    @api.get("/dossiers/{aanvraag_id}/rapport")
    def rapport(request: Request, aanvraag_id: UUID) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        if (openen := rapport_openen(request)) is not None:
            return openen
        try:
            data = lees_rapport(omgeving.apis_voor(request), aanvraag_id)
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        return pagina(request, "bestuurder/rapport.html", {"r": data})

    @api.get("/dossiers/{aanvraag_id}/instemming")
    def instemmen(request: Request, aanvraag_id: UUID) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        return gedeeld.instemming(request, aanvraag_id)

    @api.get("/dossiers/{aanvraag_id}/maatregelen")
    def mijn_maatregelen(request: Request, aanvraag_id: UUID) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        # The measures' page reads the report (their descriptions).
        if (openen := rapport_openen(request)) is not None:
            return openen
        return _maatregelen_pagina(gedeeld, request, aanvraag_id)


def _maatregelen_pagina(
    gedeeld: Pagina,
    request: Request,
    aanvraag_id: UUID,
    fouten: Formulierfouten | None = None,
    status: int = 200,
) -> Response:
    try:
        data = maatregelen(gedeeld.omgeving.apis_voor(request), aanvraag_id)
    except Probleem as probleem:
        raise _weigering(probleem.uitkomst) from None
    return pagina(
        request,
        "bestuurder/maatregelen.html",
        {"m": data, "fouten": fouten or Formulierfouten(), "melding": _melding(request)},
        status,
    )


def _stappen(api: APIRouter, gedeeld: Pagina) -> None:
    omgeving = gedeeld.omgeving

    @api.post("/dossiers/{aanvraag_id}/instemming")
    async def stem_in(request: Request, aanvraag_id: UUID) -> Response:
        waarden = await formulier(request)
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        gekozen = keuze(waarden)

        def stap() -> Response:
            if gekozen is None:
                return gedeeld.instemming(request, aanvraag_id, geen_keuze(), 422)
            apis = omgeving.apis_voor(request)
            try:
                rapport_id = rapport_id_van(apis, aanvraag_id)
            except Probleem as probleem:
                raise _weigering(probleem.uitkomst) from None
            uitkomst = apis.geef_instemming(rapport_id, gekozen)
            return gedeeld.na_stap(
                request,
                f"{BASIS}/dossiers/{aanvraag_id}/instemming",
                uitkomst,
                "instemming_gegeven" if gekozen else "instemming_geweigerd",
                _Fout(
                    "instemming",
                    waarden,
                    lambda f, s: gedeeld.instemming(request, aanvraag_id, f, s),
                ),
            )

        return await run_in_threadpool(stap)

    @api.post("/dossiers/{aanvraag_id}/pkvw")
    async def pkvw(request: Request, aanvraag_id: UUID) -> Response:
        waarden = await formulier(request)
        if (weg := gedeeld.weg(request)) is not None:
            return weg

        def stap() -> Response:
            melding, fouten = pkvw_melding(waarden)
            if melding is None:
                return gedeeld.dossier(request, aanvraag_id, fouten, 422)
            uitkomst = omgeving.apis_voor(request).meld_pkvw(aanvraag_id, melding)
            return gedeeld.na_stap(
                request,
                f"{BASIS}/dossiers/{aanvraag_id}",
                uitkomst,
                "pkvw_gemeld",
                _Fout("pkvw", waarden, lambda f, s: gedeeld.dossier(request, aanvraag_id, f, s)),
            )

        return await run_in_threadpool(stap)

    @api.post("/dossiers/{aanvraag_id}/maatregelen/{maatregel_id}/uitgevoerd")
    async def uitgevoerd(request: Request, aanvraag_id: UUID, maatregel_id: UUID) -> Response:
        await formulier(request)
        if (weg := gedeeld.weg(request)) is not None:
            return weg

        def stap() -> Response:
            uitkomst = omgeving.apis_voor(request).voer_maatregel_uit(maatregel_id)
            return gedeeld.na_stap(
                request,
                f"{BASIS}/dossiers/{aanvraag_id}/maatregelen",
                uitkomst,
                "maatregel_uitgevoerd",
                _Fout(
                    f"maatregel-{maatregel_id}",
                    {},
                    lambda f, s: _maatregelen_pagina(gedeeld, request, aanvraag_id, f, s),
                ),
            )

        return await run_in_threadpool(stap)

    @api.post("/dossiers/{aanvraag_id}/toelichting")
    async def toelichting(request: Request, aanvraag_id: UUID) -> Response:
        await formulier(request)
        if (weg := gedeeld.weg(request)) is not None:
            return weg

        def stap() -> Response:
            uitkomst = omgeving.apis_voor(request).vraag_toelichting_aan(aanvraag_id)
            return gedeeld.na_stap(
                request,
                f"{BASIS}/dossiers/{aanvraag_id}",
                uitkomst,
                "toelichting_aangevraagd",
                _Fout("toelichting", {}, lambda f, s: gedeeld.dossier(request, aanvraag_id, f, s)),
            )

        return await run_in_threadpool(stap)


ZOEKMELDINGEN = {
    "zoek_ongeldig": "Dat is geen dossiernummer. Het dossiernummer staat in de bevestigingsmail"
    " van uw aanmelding: 32 cijfers en letters a tot en met f, in groepjes van 8, 4, 4, 4 en 12.",
}
