"""Journey 7: compliance's pages. The dossiers, a dossier's audit trail as a timeline, the dossier
as it was at a chosen moment, the audit export's downloads, the legal hold and the chains'
verification.

Reading is plain GETs whose URLs carry ids, a format and a moment only; the search by number,
placing and lifting the legal hold are form posts with the session's CSRF token (checked first,
before anything else), answered by a redirect to the dossier (with a one-time note), or by the
page again with the error at its field.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
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
    Ongeldig,
    TeVaak,
    Uitkomst,
)
from services.portal.application.compliance import (
    BEWAARPLICHT_REDENEN,
    FORMATEN,
    MELDINGEN,
    STAPPEN_PER_PAGINA,
    Lijstfilters,
    bestandsnaam,
    dossier_pagina,
    export,
    gekozen_moment,
    leg_bewaarplicht_op,
    lijst,
    stand_per,
    trailpositie,
    veld_waarde,
    verificatie,
)
from services.portal.application.uitkomsten import Probleem

ROL = "compliance"
BASIS = "/compliance"

ZOEKMELDINGEN = {
    "zoek_ongeldig": "Dat is geen dossiernummer. Een dossiernummer bestaat uit 32 cijfers en"
    " letters a tot en met f, in groepjes van 8, 4, 4, 4 en 12.",
    "zoek_niet_gevonden": "Er is geen dossier met dat nummer.",
}
MOMENT_FOUT = "Vul een datum en tijd in, zoals 06-12-2026 14:30:00."
REDEN_FOUT = "Kies de reden van de bewaarplicht."


def _weigering(uitkomst: Uitkomst) -> Weigering:
    """The page for an answer that ends it: a refusal shows nothing of the dossier."""
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
    """What compliance's routes share: who may see them, and the dossier page."""

    def __init__(self, omgeving: Omgeving) -> None:
        self.omgeving = omgeving

    def weg(self, request: Request) -> Response | None:
        """None for this role's person; otherwise to the sign-in, or a refusal."""
        return self.omgeving.toegang(request, ROL, "compliance")

    def dossier(
        self,
        request: Request,
        aanvraag_id: UUID,
        fouten: dict[str, str] | None = None,
        melding_fout: str | None = None,
        status: int = 200,
        na: str = "",
    ) -> Response:
        """The dossier page (with a refused form's error at its field), its trail from the
        page after ``na`` (intake's position; "" the first)."""
        try:
            data = dossier_pagina(self.omgeving.apis_voor(request), aanvraag_id, na)
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        return pagina(
            request,
            "compliance/dossier.html",
            {
                "d": data,
                "melding": MELDINGEN.get(neem_melding(request) or ""),
                "fouten": fouten or {},
                "melding_fout": melding_fout,
                "redenen": BEWAARPLICHT_REDENEN,
                "formaten": FORMATEN,
                "per_pagina": STAPPEN_PER_PAGINA,
                "nu": veld_waarde(self.omgeving.klok()),
            },
            status,
            live=aanvraag_id,
        )


def router(omgeving: Omgeving) -> APIRouter:
    """Compliance's pages: the dossiers, one dossier's trail, moment, exports and hold."""
    api = APIRouter(prefix=BASIS)
    gedeeld = Pagina(omgeving)
    _lezen(api, gedeeld)
    _bewaarplicht(api, gedeeld)
    return api


def _lezen(api: APIRouter, gedeeld: Pagina) -> None:
    omgeving = gedeeld.omgeving

    def toon_dossiers(request: Request, zoekfout: str | None = None) -> Response:
        """The dossiers (filtered as the address says), with a search's error at the field."""
        filters = Lijstfilters.uit(dict(request.query_params))
        try:
            data = lijst(omgeving.apis_voor(request), filters)
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        return pagina(
            request,
            "compliance/dossiers.html",
            {"l": data, "melding": ZOEKMELDINGEN.get(zoekfout or "")},
            ZOEK_STATUS.get(zoekfout or "", 200),
        )

    @api.get("/dossiers")
    def dossiers(request: Request) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        return toon_dossiers(request)

    zoekroutes(
        api,
        basis=BASIS,
        lijst=f"{BASIS}/dossiers",
        weg=gedeeld.weg,
        toon=toon_dossiers,
        opzoeken=lambda request: omgeving.apis_voor(request).dossier,
        weigering=_weigering,
    )

    @api.get("/dossiers/{aanvraag_id}")
    def dossier(request: Request, aanvraag_id: UUID) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        na = trailpositie(request.query_params.getlist("na"))
        return gedeeld.dossier(request, aanvraag_id, na=na)

    @api.get("/dossiers/{aanvraag_id}/per")
    def per(request: Request, aanvraag_id: UUID, moment: str = "") -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        gekozen = gekozen_moment(moment[:40])
        if gekozen is None:
            return pagina(
                request,
                "compliance/per.html",
                {"aanvraag_id": aanvraag_id, "s": None, "fout": MOMENT_FOUT, "invoer": moment[:40]},
                422,
            )
        try:
            stand = stand_per(omgeving.apis_voor(request), aanvraag_id, gekozen)
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        return pagina(
            request,
            "compliance/per.html",
            {"aanvraag_id": aanvraag_id, "s": stand, "fout": None, "invoer": stand.veld},
        )

    @api.get("/dossiers/{aanvraag_id}/export/{formaat}")
    def download(request: Request, aanvraag_id: UUID, formaat: str) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        if formaat not in FORMATEN:
            raise Weigering(404, "Pagina niet gevonden", "Deze pagina bestaat niet.")
        try:
            bestand = export(omgeving.apis_voor(request), aanvraag_id, formaat)
        except Probleem as probleem:
            raise _weigering(probleem.uitkomst) from None
        naam = bestandsnaam(aanvraag_id, formaat)
        # Passed on as it arrives; the answer is let go of when the last part was sent, or
        # after the response when the visitor left before that.
        return StreamingResponse(
            bestand.stroom(),
            media_type=bestand.media_type,
            headers={"Content-Disposition": f'attachment; filename="{naam}"'},
            background=BackgroundTask(bestand.sluit),
        )

    @api.get("/verificatie")
    def hash_ketens(request: Request, opnieuw: bool = False) -> Response:
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        try:
            v = verificatie(omgeving.apis_voor(request), opnieuw=opnieuw)
        except Probleem as probleem:
            if isinstance(probleem.uitkomst, TeVaak):  # enough requests wait for a running one
                raise Weigering(
                    429,
                    "Controle loopt al",
                    "Er loopt al een controle van de hash-ketens en er wachten al verzoeken op."
                    " Probeer het over een minuut opnieuw.",
                ) from None
            raise _weigering(probleem.uitkomst) from None
        return pagina(request, "compliance/verificatie.html", {"v": v})


def _bewaarplicht(api: APIRouter, gedeeld: Pagina) -> None:
    omgeving = gedeeld.omgeving

    @api.post("/dossiers/{aanvraag_id}/bewaarplicht")
    async def leg_op(request: Request, aanvraag_id: UUID) -> Response:
        waarden = await formulier(request)
        if (weg := gedeeld.weg(request)) is not None:
            return weg
        reden = waarden.get("reden", "")

        def stap() -> Response:
            uitkomst = leg_bewaarplicht_op(omgeving.apis_voor(request), aanvraag_id, reden)
            if uitkomst is None:
                return gedeeld.dossier(request, aanvraag_id, {"reden": REDEN_FOUT}, status=422)
            return _na_stap(request, gedeeld, aanvraag_id, uitkomst, f"bewaarplicht_{reden}")

        return await run_in_threadpool(stap)

    @api.post("/dossiers/{aanvraag_id}/bewaarplicht/opheffen")
    async def hef_op(request: Request, aanvraag_id: UUID) -> Response:
        await formulier(request)
        if (weg := gedeeld.weg(request)) is not None:
            return weg

        def stap() -> Response:
            uitkomst = omgeving.apis_voor(request).hef_bewaarplicht_op(aanvraag_id)
            return _na_stap(request, gedeeld, aanvraag_id, uitkomst, "bewaarplicht_opgeheven")

        return await run_in_threadpool(stap)


def _na_stap(
    request: Request, gedeeld: Pagina, aanvraag_id: UUID, uitkomst: Uitkomst, melding: str
) -> Response:
    """Done: back to the dossier with a note; a step out of order: the page says why."""
    if isinstance(uitkomst, Gelukt):
        zet_melding(request, melding)
        return RedirectResponse(f"{BASIS}/dossiers/{aanvraag_id}", status_code=303)
    if isinstance(uitkomst, Conflict):
        tekst = "De bewaarplicht kon nu niet worden gewijzigd." + (
            f" De dienst meldt: {uitkomst.detail}" if uitkomst.detail else ""
        )
        return gedeeld.dossier(request, aanvraag_id, melding_fout=tekst, status=409)
    if isinstance(uitkomst, Ongeldig):
        return gedeeld.dossier(request, aanvraag_id, {"reden": REDEN_FOUT}, status=422)
    raise _weigering(uitkomst)
