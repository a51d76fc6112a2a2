"""Journey 5, the bestuurder: my dossier in plain language (where it stands, what comes next),
the approved report, consent to share it with the werkgever (or not), the PKVW status, my
measures marked as done, and a request for a toelichting.

Everything is read with the bestuurder's own token, so the pages show only what the APIs give
that person: intake's dossier (404 for anyone else's), assessment's report (every read is
recorded there as RapportIngezien, so only the report page reads it, never the overview),
approval's consent, scheduling's toelichting. The list of my dossiers is intake's list, which
answers a bestuurder only the dossiers bound to its own e-mail (usually one); a dossier can
also be opened by the number in the confirmation e-mail.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import UUID

from services.portal.application.dossierlijst import Blad, Dossierlijst, dossierlijst_uit
from services.portal.application.ports import Apis
from services.portal.application.secretariaat import Fout
from services.portal.application.teksten import (
    AFSPRAAK_STATUS,
    DOMEIN_NAMEN,
    KOSTEN_NAMEN,
    PRIORITEIT_NAMEN,
    SOORT_NAMEN,
    STATUS_UITLEG,
    UITVOERDER_VOOR_BESTUURDER,
    dag_tekst,
    in_woorden,
    moment_tekst,
)
from services.portal.application.uitkomsten import (
    Conflict,
    Gelukt,
    Ongeldig,
    Probleem,
    Uitkomst,
    gelukt,
)

BETAALT_UITLEG: dict[str, str] = {
    "direct_uitvoerbaar": "Kost niets: u kunt deze maatregel direct uitvoeren.",
    "werkgever": "Uw werkgever betaalt deze maatregel.",
    "wacht_op_pkvw": "Uw werkgever betaalt deze maatregel zodra u een geldig certificaat"
    " Politiekeurmerk Veilig Wonen hebt.",
}
PKVW_NAMEN: dict[str, str] = {
    "geen": "Nog niet gemeld",
    "verklaring": "Verklaring (het politiekeurmerk is aangevraagd)",
    "certificaat": "Certificaat",
}
#: Statuses in which nothing can be asked or recorded any more.
GESTOPT = frozenset({"ingetrokken", "afgesloten"})
#: What the bestuurder is told after a step (the session carries the code, never data).
MELDINGEN: dict[str, str] = {
    "instemming_gegeven": "U hebt ingestemd. Uw werkgever ontvangt het rapport.",
    "instemming_geweigerd": "U hebt geweigerd het rapport te delen. Uw werkgever ontvangt het"
    " niet. U kunt later alsnog instemmen.",
    "pkvw_gemeld": "Uw PKVW-status is vastgelegd.",
    "maatregel_uitgevoerd": "De maatregel is vastgelegd als uitgevoerd.",
    "toelichting_aangevraagd": "Uw verzoek om een toelichting is ontvangen. Het secretariaat"
    " plant een afspraak met de adviseur en stuurt u een bevestiging per e-mail.",
}
CONFLICT_UITLEG = (
    "Deze stap past nu niet in het proces. Misschien is het rapport nog niet goedgekeurd of is"
    " de aanvraag ingetrokken of afgesloten. De pagina toont nu de actuele stand."
)


# --- my dossiers --------------------------------------------------------------------------------


def status_tekst(status: str) -> str:
    """Where a dossier stands, in the words of its page."""
    return STATUS_UITLEG.get(status, (status, ""))[0]


def mijn_dossiers(apis: Apis, blad: Blad) -> Dossierlijst:
    """One page of my dossiers, newest first (``Probleem`` when intake does not answer):
    intake lists only the dossiers bound to this person's e-mail."""
    lijst = gelukt(apis.dossiers(blad.api_filters())).lijst
    return dossierlijst_uit(lijst, blad, status_tekst)


# --- the dossier ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Afspraak:
    """An appointment as the bestuurder sees it."""

    soort: str
    wanneer: str
    status: str


@dataclass(frozen=True)
class Pkvw:
    """The PKVW as assessment has it."""

    status: str
    status_naam: str
    afgegeven_op: str
    geldig_tot: str
    geldig: bool


@dataclass(frozen=True)
class Overzicht:
    """The bestuurder's dossier page."""

    aanvraag_id: str
    status: str
    waar: str
    wat_nu: str
    ingediend_op: str
    gestopt: bool
    afspraken: tuple[Afspraak, ...]
    rapport_id: str | None
    rapport_klaar: bool
    instemming: str | None
    pkvw: Pkvw
    aantal_maatregelen: int
    aantal_uitgevoerd: int
    toelichtingen: tuple[str, ...]
    toelichting_mogelijk: bool


def pkvw_uit(data: Mapping[str, Any]) -> Pkvw:
    """The PKVW in assessment's (or intake's) answer."""
    status = str(data.get("status", "geen"))
    return Pkvw(
        status=status,
        status_naam=PKVW_NAMEN.get(status, status),
        afgegeven_op=dag_tekst(data.get("afgegeven_op")),
        geldig_tot=dag_tekst(data.get("geldig_tot")),
        geldig=bool(data.get("geldig")),
    )


def overzicht(apis: Apis, aanvraag_id: UUID) -> Overzicht:
    """The dossier page's data (``Probleem`` when the dossier is not this person's, or the
    APIs do not answer). Consent and the PKVW come from their owners (approval, assessment),
    which know them before intake's dossier does."""
    dossier = gelukt(apis.dossier(aanvraag_id)).data
    rapport = dossier.get("rapport") or {}
    status_data: Mapping[str, Any] | None = None
    if rapport.get("goedgekeurde_versie") is not None:
        antwoord = apis.rapport_status(UUID(str(rapport["rapport_id"])))
        status_data = antwoord.data if isinstance(antwoord, Gelukt) else None
    pkvw_antwoord = apis.pkvw(aanvraag_id)
    pkvw = pkvw_antwoord.data if isinstance(pkvw_antwoord, Gelukt) else None
    return overzicht_uit(dossier, status_data, pkvw)


def overzicht_uit(
    dossier: Mapping[str, Any],
    rapport_status: Mapping[str, Any] | None,
    pkvw: Mapping[str, Any] | None,
) -> Overzicht:
    """The page from intake's dossier, approval's report status and assessment's PKVW (None:
    that service did not answer; intake's dossier then says what it knows)."""
    status = str(dossier["status"])
    rapport = dossier.get("rapport") or {}
    instemming = rapport.get("instemming")
    if rapport_status is not None:
        instemming = rapport_status.get("instemming") or instemming
    if instemming == "gegeven" and status in {"goedgekeurd", "instemming_geweigerd"}:
        status = "vrijgegeven"
    elif instemming == "geweigerd" and status == "goedgekeurd":
        status = "instemming_geweigerd"
    waar, wat_nu = STATUS_UITLEG.get(status, (status, ""))
    maatregelen = dossier.get("maatregelen") or ()
    rapport_klaar = rapport.get("goedgekeurde_versie") is not None
    gestopt = status in GESTOPT
    return Overzicht(
        aanvraag_id=str(dossier["aanvraag_id"]),
        status=status,
        waar=waar,
        wat_nu=wat_nu,
        ingediend_op=moment_tekst(dossier.get("ingediend_op")),
        gestopt=gestopt,
        afspraken=tuple(
            Afspraak(
                soort=SOORT_NAMEN.get(str(a.get("soort")), str(a.get("soort"))),
                wanneer=moment_tekst(a.get("gepland_op")),
                # In lower case: the page says it in brackets after the time.
                status=in_woorden(AFSPRAAK_STATUS, a.get("status")).lower(),
            )
            for a in dossier.get("afspraken") or ()
        ),
        rapport_id=str(rapport["rapport_id"]) if rapport.get("rapport_id") else None,
        rapport_klaar=rapport_klaar,
        instemming=str(instemming) if instemming else None,
        pkvw=pkvw_uit(pkvw if pkvw is not None else dossier.get("pkvw") or {}),
        aantal_maatregelen=len(maatregelen),
        aantal_uitgevoerd=sum(1 for m in maatregelen if m.get("uitgevoerd_op")),
        toelichtingen=tuple(
            moment_tekst(t.get("tijd"))
            for t in dossier.get("toelichtingen") or ()
            if t.get("rol") in (None, "bestuurder")
        ),
        toelichting_mogelijk=rapport_klaar and not gestopt,
    )


def rapport_id_van(apis: Apis, aanvraag_id: UUID) -> UUID:
    """The dossier's approved report (``Probleem``: not this person's dossier, or no approved
    report yet: 409)."""
    dossier = gelukt(apis.dossier(aanvraag_id)).data
    rapport = dossier.get("rapport") or {}
    if rapport.get("goedgekeurde_versie") is None or not rapport.get("rapport_id"):
        raise Probleem(Conflict("Er is nog geen goedgekeurd rapport."))
    return UUID(str(rapport["rapport_id"]))


# --- the report ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Maatregel:
    """A measure: from the report (its description) and from its status (who pays, done)."""

    maatregel_id: str
    nummer: int
    domein: str
    omschrijving: str
    kosten: str
    uitvoerder: str
    eigen: bool
    prioriteit: str
    uitgevoerd: bool = False
    uitgevoerd_op: str = ""
    betaalt: str = ""


@dataclass(frozen=True)
class Rapport:
    """The approved report as the bestuurder reads it."""

    aanvraag_id: str
    rapport_id: str
    versie: int
    opgesteld_op: str
    bevindingen: tuple[tuple[str, str], ...]
    maatregelen: tuple[Maatregel, ...]
    vergeten: bool


def rapport_uit(data: Mapping[str, Any]) -> Rapport:
    """The report in assessment's answer (findings in the four domains' order)."""
    inhoud = data.get("inhoud") or {}
    bevindingen = inhoud.get("bevindingen") or {}
    return Rapport(
        aanvraag_id=str(data["aanvraag_id"]),
        rapport_id=str(data["rapport_id"]),
        versie=int(data["versie"]),
        opgesteld_op=moment_tekst(data.get("opgesteld_op")),
        bevindingen=tuple(
            (naam, str(bevindingen[domein]))
            for domein, naam in DOMEIN_NAMEN.items()
            if domein in bevindingen
        ),
        maatregelen=tuple(
            _maatregel(nummer, m) for nummer, m in enumerate(inhoud.get("maatregelen") or (), 1)
        ),
        vergeten=bool(data.get("vergeten")),
    )


def _maatregel(
    nummer: int, m: Mapping[str, Any], stand: Mapping[str, Any] | None = None
) -> Maatregel:
    uitvoerder = str(m.get("uitvoerder"))
    stand = stand or {}
    # Costs and priority in lower case: the bestuurder's pages say them within a sentence.
    return Maatregel(
        maatregel_id=str(m["maatregel_id"]),
        nummer=nummer,
        domein=DOMEIN_NAMEN.get(str(m.get("domein")), str(m.get("domein"))),
        omschrijving=str(m.get("omschrijving", "")),
        kosten=in_woorden(KOSTEN_NAMEN, m.get("kosten")).lower(),
        uitvoerder=UITVOERDER_VOOR_BESTUURDER.get(uitvoerder, uitvoerder),
        eigen=uitvoerder == "bestuurder",
        prioriteit=in_woorden(PRIORITEIT_NAMEN, m.get("prioriteit")).lower(),
        uitgevoerd=stand.get("status") == "uitgevoerd",
        uitgevoerd_op=moment_tekst(stand.get("uitgevoerd_op")),
        betaalt=BETAALT_UITLEG.get(str(stand.get("betaalt")), ""),
    )


def lees_rapport(apis: Apis, aanvraag_id: UUID) -> Rapport:
    """Read the approved report: one read, recorded by assessment before it answers."""
    rapport_id = rapport_id_van(apis, aanvraag_id)
    return rapport_uit(gelukt(apis.lees_rapport(rapport_id)).data)


# --- consent -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instemming:
    """The consent page: the decision so far and the version the werkgever would receive."""

    aanvraag_id: str
    versie: int | None
    instemming: str | None
    aantal_maatregelen: int

    @property
    def open(self) -> bool:
        """Whether the bestuurder can still decide (consent once given is final)."""
        return self.instemming != "gegeven"


def instemming(apis: Apis, aanvraag_id: UUID) -> Instemming:
    """Where the consent stands (from approval, the owner of the decision)."""
    dossier = gelukt(apis.dossier(aanvraag_id)).data
    rapport = dossier.get("rapport") or {}
    if rapport.get("goedgekeurde_versie") is None or not rapport.get("rapport_id"):
        raise Probleem(Conflict("Er is nog geen goedgekeurd rapport."))
    stand = gelukt(apis.rapport_status(UUID(str(rapport["rapport_id"])))).data
    versie = stand.get("goedgekeurde_versie")
    return Instemming(
        aanvraag_id=str(dossier["aanvraag_id"]),
        versie=int(versie) if versie is not None else None,
        instemming=stand.get("instemming"),
        aantal_maatregelen=len(dossier.get("maatregelen") or ()),
    )


@dataclass
class Formulierfouten:
    """A refused form: its errors at their fields, or a message, and what was filled in."""

    formulier: str = ""
    fouten: list[Fout] = field(default_factory=list)
    melding: str | None = None
    waarden: dict[str, str] = field(default_factory=dict)

    def fout(self, formulier: str, veld: str) -> Fout | None:
        """The error at a field of a form, if any."""
        if formulier != self.formulier:
            return None
        return next((f for f in self.fouten if f.veld == veld), None)


def keuze(invoer: Mapping[str, str]) -> bool | None:
    """The consent chosen on the form (None: nothing chosen)."""
    return {"ja": True, "nee": False}.get(invoer.get("instemming", ""))


def geen_keuze() -> Formulierfouten:
    """The form posted without a choice."""
    return Formulierfouten(
        formulier="instemming",
        fouten=[Fout("instemming", "Kies of uw werkgever het rapport mag ontvangen.")],
    )


# --- PKVW ----------------------------------------------------------------------------------------

PKVW_UITLEG: dict[tuple[str, str], str] = {
    ("status", "niet_terug_naar_geen"): "Kies verklaring of certificaat.",
    ("afgegeven_op", "verplicht_bij_certificaat"): "Vul de datum van afgifte van het"
    " certificaat in.",
    ("afgegeven_op", "niet_in_de_toekomst"): "De datum van afgifte kan niet in de toekomst liggen.",
    ("nummer", "alleen_bij_certificaat"): "Een certificaatnummer hoort alleen bij een"
    " certificaat. Laat het leeg bij een verklaring.",
}
PKVW_VELD: dict[str, str] = {
    "status": "Kies verklaring of certificaat.",
    "afgegeven_op": "Vul een geldige datum in, zoals 2026-12-01.",
    "nummer": "Het certificaatnummer bestaat uit letters, cijfers, spaties, punten, streepjes"
    " en schuine strepen (hoogstens 50 tekens).",
}


def pkvw_melding(invoer: Mapping[str, str]) -> tuple[dict[str, Any] | None, Formulierfouten]:
    """The body of ``POST /aanvragen/{id}/pkvw`` from the form, or the errors to show."""
    fouten = Formulierfouten(formulier="pkvw", waarden=dict(invoer))
    status = invoer.get("status", "")
    if status not in {"verklaring", "certificaat"}:
        fouten.fouten.append(Fout("status", PKVW_VELD["status"]))
    datum = invoer.get("afgegeven_op", "").strip()
    afgegeven_op: str | None = None
    if datum:
        try:
            afgegeven_op = date.fromisoformat(datum).isoformat()
        except ValueError:
            fouten.fouten.append(Fout("afgegeven_op", PKVW_VELD["afgegeven_op"]))
    if fouten.fouten:
        return None, fouten
    melding: dict[str, Any] = {"status": status}
    if afgegeven_op is not None:
        melding["afgegeven_op"] = afgegeven_op
    nummer = invoer.get("nummer", "").strip()
    if nummer:
        melding["nummer"] = nummer
    return melding, fouten


def fouten_uit(formulier: str, uitkomst: Uitkomst, waarden: Mapping[str, str]) -> Formulierfouten:
    """What a refused step shows: the API's 422 at its fields, a 409 explained in Dutch
    (``Probleem`` for an answer that ends the page)."""
    fouten = Formulierfouten(formulier=formulier, waarden=dict(waarden))
    match uitkomst:
        case Ongeldig(fouten=velden):
            for veld in velden:
                naam = veld.veld.rsplit(".", 1)[-1]
                tekst = PKVW_UITLEG.get((naam, veld.regel)) or PKVW_VELD.get(naam)
                if tekst and not fouten.fout(formulier, naam):
                    fouten.fouten.append(Fout(naam, tekst))
            if not fouten.fouten:
                fouten.melding = "Het verzoek is niet aangenomen. Controleer de gegevens."
        case Conflict(detail=detail):
            fouten.melding = CONFLICT_UITLEG + (f" De dienst meldt: {detail}" if detail else "")
        case _:
            raise Probleem(uitkomst)
    return fouten


# --- measures ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Maatregelen:
    """The measures page: each measure with its description, status and who pays."""

    aanvraag_id: str
    versie: int
    pkvw: Pkvw
    maatregelen: tuple[Maatregel, ...]

    @property
    def eigen(self) -> tuple[Maatregel, ...]:
        """The measures the bestuurder carries out."""
        return tuple(m for m in self.maatregelen if m.eigen)

    @property
    def van_werkgever(self) -> tuple[Maatregel, ...]:
        """The measures the werkgever carries out."""
        return tuple(m for m in self.maatregelen if not m.eigen)


def maatregelen(apis: Apis, aanvraag_id: UUID) -> Maatregelen:
    """The measures with their status (assessment) and their descriptions, which are the
    report's content: reading them is a read of the report, recorded as any other."""
    stand = gelukt(apis.maatregelen(aanvraag_id)).data
    rapport = gelukt(apis.lees_rapport(UUID(str(stand["rapport_id"])))).data
    return maatregelen_uit(stand, rapport)


def maatregelen_uit(stand: Mapping[str, Any], rapport: Mapping[str, Any]) -> Maatregelen:
    """The page from assessment's measures and the report's content."""
    standen: dict[str, Mapping[str, Any]] = {
        str(m["maatregel_id"]): m for m in stand.get("maatregelen") or ()
    }
    inhoud: Sequence[Mapping[str, Any]] = (rapport.get("inhoud") or {}).get("maatregelen") or ()
    return Maatregelen(
        aanvraag_id=str(stand["aanvraag_id"]),
        versie=int(stand["versie"]),
        pkvw=pkvw_uit(stand.get("pkvw") or {}),
        maatregelen=tuple(
            _maatregel(nummer, m, standen.get(str(m["maatregel_id"])))
            for nummer, m in enumerate(inhoud, 1)
        ),
    )
