"""Journey 6, the werkgever: its organisation's dossiers (a list, newest first), the report and
the measures once the bestuurder released them (recording its own as carried out), and the
organisation's webhook subscriptions.

Every answer is the services' own, asked with the werkgever's token: intake knows the dossier
only when it is of the werkgever's organisation (another's is not found), and assessment serves
the report's content and its measures only after RapportVrijgegeven. Before that the page says
so and shows nothing of the report; a read the API refuses shows nothing either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from services.portal.application.dossierlijst import Blad, Dossierlijst, dossierlijst_uit
from services.portal.application.ports import Apis
from services.portal.application.teksten import (
    DOMEIN_NAMEN,
    KOSTEN_NAMEN,
    PRIORITEIT_NAMEN,
    STATUS_NAMEN,
    dag_tekst,
)
from services.portal.application.uitkomsten import (
    Conflict,
    Gelukt,
    Geweigerd,
    NietGevonden,
    Ongeldig,
    Probleem,
    Uitkomst,
    gelukt,
)

NOG_NIET_VRIJGEGEVEN = "Het rapport is nog niet vrijgegeven door de bestuurder."
#: Who pays a measure, as assessment decides it (the PKVW rule of the regeling).
BETAALT_NAMEN: dict[str, str] = {
    "direct_uitvoerbaar": "Geen kosten: kan direct worden uitgevoerd",
    "werkgever": "De werkgever",
    "wacht_op_pkvw": "De werkgever, zodra de bestuurder het Politiekeurmerk Veilig Wonen heeft",
}
PKVW_NAMEN: dict[str, str] = {
    "geen": "Nog geen",
    "verklaring": "Verklaring afgegeven, nog geen certificaat",
    "certificaat": "Certificaat",
}
#: The events a werkgever's subscription may ask for that matter to it, with their Dutch names
#: (notifications checks the choice; none chosen: every event the werkgever may receive).
GEBEURTENISSEN: tuple[tuple[str, str], ...] = (
    ("AanvraagIngediend", "Aanvraag ingediend"),
    ("ContactOpgenomen", "Contact opgenomen"),
    ("AfspraakGepland", "Afspraak gepland"),
    ("AfspraakVerzet", "Afspraak verzet"),
    ("AfspraakGeannuleerd", "Afspraak geannuleerd"),
    ("GesprekGevoerd", "Gesprek gevoerd"),
    ("RapportGoedgekeurd", "Rapport goedgekeurd"),
    ("RapportVrijgegeven", "Rapport vrijgegeven aan de werkgever"),
    ("InstemmingGeweigerd", "Instemming geweigerd"),
    ("PkvwStatusGewijzigd", "Politiekeurmerk Veilig Wonen gewijzigd"),
    ("MaatregelUitgevoerd", "Maatregel uitgevoerd"),
    ("AanvraagIngetrokken", "Aanvraag ingetrokken"),
    ("DossierAfgesloten", "Dossier afgesloten"),
)
ABONNEMENT_STATUS: dict[str, str] = {
    "actief": "Actief",
    "falend": "Bezorging mislukt herhaaldelijk",
    "verwijderd": "Verwijderd",
}
#: What each of notifications' rules for a callback URL means for the person typing it.
URL_UITLEG: dict[str, str] = {
    "prive_adres": "Dit adres is niet toegestaan: gebruik een adres op het internet, geen"
    " localhost of een intern netwerkadres.",
    "alleen_http_of_https": "Het adres moet beginnen met https:// (of http://).",
    "host_ontbreekt": "Er ontbreekt een servernaam in het adres.",
    "geen_inloggegevens_in_url": "Zet geen gebruikersnaam of wachtwoord in het adres.",
    "url_te_lang": "Het adres is te lang (hoogstens 2000 tekens).",
    "url_ongeldig": "Dit is geen geldig webadres.",
}
#: What the werkgever is told after a step (the session carries the code, never data).
MELDINGEN: dict[str, str] = {
    "abonnement_verwijderd": "Het abonnement is verwijderd. Er wordt niets meer naar dit adres"
    " gestuurd.",
    "abonnement_weg": "Dit abonnement bestaat niet (meer).",
    "maatregel_uitgevoerd": "De maatregel is vastgelegd als uitgevoerd.",
}
#: Why a search by number opened no dossier, said at the search field.
ZOEKMELDINGEN: dict[str, str] = {
    "zoek_ongeldig": "Dat is geen dossiernummer. Een dossiernummer bestaat uit 32 cijfers en"
    " letters a tot en met f, in groepjes van 8, 4, 4, 4 en 12 (zoals in de bevestigingsmail).",
    "zoek_niet_gevonden": "Er is geen dossier met dat nummer voor uw organisatie.",
}
#: A measure that cannot be recorded as carried out now (the API's 409), in words.
NOG_NIET_UITVOERBAAR = (
    "Deze maatregel kan nu niet als uitgevoerd worden vastgelegd. De pagina toont de actuele stand."
)

#: The notes that tell of something that did not happen.
MISLUKT = frozenset({"abonnement_weg"})


# --- the organisation's dossiers -----------------------------------------------------------------


def dossiers(apis: Apis, blad: Blad) -> Dossierlijst:
    """One page of the organisation's dossiers, newest first (``Probleem`` when intake does not
    answer). Intake lists only the token's organisation, each row no more than the dossier's own
    answer shows the werkgever; the page shows the number, the day and the status."""
    lijst = gelukt(apis.dossiers(blad.api_filters())).lijst
    return dossierlijst_uit(lijst, blad, lambda status: STATUS_NAMEN.get(status, status))


# --- a dossier -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MaatregelRegel:
    """A measure of the released report: what, who carries it out, who pays, done or not."""

    maatregel_id: str
    domein: str
    omschrijving: str
    prioriteit: str
    kosten: str
    uitvoerder: str
    betaalt: str
    uitgevoerd: str | None


@dataclass(frozen=True)
class Rapport:
    """The released report as the werkgever reads it."""

    versie: int
    bevindingen: tuple[tuple[str, str], ...]
    voor_werkgever: tuple[MaatregelRegel, ...]
    voor_bestuurder: tuple[MaatregelRegel, ...]
    pkvw: str


@dataclass(frozen=True)
class DossierPagina:
    """A dossier of the werkgever's organisation; ``rapport`` None: not (yet) released."""

    aanvraag_id: str
    status: str
    ingediend_op: str
    organisatie_code: str
    rapport: Rapport | None


def dossier_pagina(apis: Apis, aanvraag_id: UUID) -> DossierPagina:
    """The dossier page's data (``Probleem`` when intake does not show the dossier).

    The report is asked for only once intake's projection says it was released; assessment
    decides again, and a refusal there shows no content either.
    """
    dossier = gelukt(apis.dossier(aanvraag_id)).data
    rapport = _rapport(apis, aanvraag_id, dossier.get("rapport") or {})
    return DossierPagina(
        aanvraag_id=str(dossier["aanvraag_id"]),
        status=STATUS_NAMEN.get(str(dossier.get("status")), str(dossier.get("status"))),
        ingediend_op=dag_tekst(dossier.get("ingediend_op")),
        organisatie_code=str(dossier.get("organisatie_code", "")),
        rapport=rapport,
    )


def _rapport(apis: Apis, aanvraag_id: UUID, stand: Mapping[str, Any]) -> Rapport | None:
    if not stand.get("vrijgegeven_op") or not stand.get("rapport_id"):
        return None
    gelezen = apis.lees_rapport(UUID(str(stand["rapport_id"])))
    if isinstance(gelezen, Geweigerd | NietGevonden):
        return None
    overzicht = apis.maatregelen(aanvraag_id)
    if isinstance(overzicht, Geweigerd | NietGevonden):
        return None
    return rapport_uit(gelukt(gelezen).data, gelukt(overzicht).data)


def rapport_uit(gelezen: Mapping[str, Any], overzicht: Mapping[str, Any]) -> Rapport:
    """The report from assessment's read (the content) and its measures (who pays, done)."""
    inhoud = gelezen.get("inhoud") or {}
    bevindingen = inhoud.get("bevindingen") or {}
    omschrijvingen = {
        str(m["maatregel_id"]): str(m.get("omschrijving", ""))
        for m in inhoud.get("maatregelen", ())
    }
    regels = tuple(
        MaatregelRegel(
            maatregel_id=str(m["maatregel_id"]),
            domein=DOMEIN_NAMEN.get(str(m["domein"]), str(m["domein"])),
            omschrijving=omschrijvingen.get(str(m["maatregel_id"]), ""),
            prioriteit=PRIORITEIT_NAMEN.get(str(m["prioriteit"]), str(m["prioriteit"])),
            kosten=KOSTEN_NAMEN.get(str(m["kosten"]), str(m["kosten"])),
            uitvoerder=str(m["uitvoerder"]),
            betaalt=BETAALT_NAMEN.get(str(m["betaalt"]), str(m["betaalt"])),
            uitgevoerd=(
                dag_tekst(m.get("uitgevoerd_op")) if m.get("status") == "uitgevoerd" else None
            ),
        )
        for m in overzicht.get("maatregelen", ())
    )
    pkvw = overzicht.get("pkvw") or {}
    pkvw_tekst = PKVW_NAMEN.get(str(pkvw.get("status")), str(pkvw.get("status")))
    if pkvw.get("status") == "certificaat" and pkvw.get("geldig_tot"):
        pkvw_tekst += f", geldig tot en met {dag_tekst(pkvw['geldig_tot'])}"
        if not pkvw.get("geldig"):
            pkvw_tekst += " (verlopen)"
    return Rapport(
        versie=int(gelezen.get("versie", 0)),
        bevindingen=tuple(
            (naam, str(bevindingen.get(domein, ""))) for domein, naam in DOMEIN_NAMEN.items()
        ),
        voor_werkgever=tuple(r for r in regels if r.uitvoerder == "werkgever"),
        voor_bestuurder=tuple(r for r in regels if r.uitvoerder != "werkgever"),
        pkvw=pkvw_tekst,
    )


def uitvoering_melding(uitkomst: Uitkomst) -> str | None:
    """What recording a measure came to: None when it was recorded, the reason in Dutch when
    the process does not allow it now (409: e.g. waiting for the bestuurder's PKVW); another
    refusal ends the page (``Probleem``)."""
    match uitkomst:
        case Gelukt():
            return None
        case Conflict(detail=detail):
            return NOG_NIET_UITVOERBAAR + (f" De dienst meldt: {detail}" if detail else "")
        case _:
            raise Probleem(uitkomst)


# --- webhook subscriptions -----------------------------------------------------------------------


@dataclass(frozen=True)
class AbonnementRegel:
    """A subscription of the organisation (never its secret)."""

    abonnement_id: str
    callback_url: str
    gebeurtenissen: str
    status: str
    aangemaakt_op: str


def abonnementen(apis: Apis) -> tuple[AbonnementRegel, ...]:
    """The organisation's live subscriptions (``Probleem`` when notifications does not answer)."""
    return tuple(
        abonnement_regel(a)
        for a in gelukt(apis.abonnementen()).lijst
        if a.get("status") != "verwijderd"
    )


def abonnement_regel(data: Mapping[str, Any]) -> AbonnementRegel:
    """A subscription as notifications describes it, in words."""
    namen = dict(GEBEURTENISSEN)
    types: Sequence[Any] = data.get("event_types") or ()
    return AbonnementRegel(
        abonnement_id=str(data["abonnement_id"]),
        callback_url=str(data["callback_url"]),
        gebeurtenissen=(
            ", ".join(namen.get(str(t), str(t)) for t in types)
            if types
            else "Alle gebeurtenissen die u mag ontvangen"
        ),
        status=ABONNEMENT_STATUS.get(str(data.get("status")), str(data.get("status"))),
        aangemaakt_op=dag_tekst(data.get("aangemaakt_op")),
    )


@dataclass(frozen=True)
class Fout:
    """An error at a field of the form."""

    veld: str
    tekst: str


@dataclass
class Formulierfouten:
    """The refused form's errors and what was typed (to show again)."""

    fouten: list[Fout] = field(default_factory=list)
    melding: str | None = None
    callback_url: str = ""
    gekozen: tuple[str, ...] = ()

    def fout(self, veld: str) -> Fout | None:
        """The error at a field, if any."""
        return next((f for f in self.fouten if f.veld == veld), None)

    @property
    def iets(self) -> bool:
        """Whether anything was refused."""
        return bool(self.fouten or self.melding)


def gekozen_gebeurtenissen(invoer: Mapping[str, str]) -> tuple[str, ...]:
    """The events ticked on the form (one checkbox each, ``gebeurtenis-<Naam>``), known only."""
    return tuple(naam for naam, _ in GEBEURTENISSEN if invoer.get(f"gebeurtenis-{naam}") == "ja")


def abonnement_verzoek(invoer: Mapping[str, str]) -> tuple[dict[str, Any] | None, Formulierfouten]:
    """The body of ``POST /webhooks/abonnementen`` from the form, or the errors to show.

    Only an empty address is refused here; every other rule is notifications' own, and its
    refusal is shown at the field (``fouten_uit``).
    """
    url = invoer.get("callback_url", "").strip()
    gekozen = gekozen_gebeurtenissen(invoer)
    fouten = Formulierfouten(callback_url=url, gekozen=gekozen)
    if not url:
        fouten.fouten.append(Fout("callback_url", "Vul het adres in waarop u berichten ontvangt."))
        return None, fouten
    verzoek: dict[str, Any] = {"callback_url": url}
    if gekozen:
        verzoek["event_types"] = list(gekozen)
    return verzoek, fouten


def fouten_uit(uitkomst: Uitkomst, fouten: Formulierfouten) -> Formulierfouten:
    """Notifications' 422 at the form's fields; another refusal ends the page (``Probleem``)."""
    if not isinstance(uitkomst, Ongeldig):
        raise Probleem(uitkomst)
    for veld in uitkomst.fouten:
        naam = veld.veld.rsplit(".", 1)[-1]
        if naam == "callback_url":
            tekst = URL_UITLEG.get(veld.regel, "Dit adres is niet toegestaan.")
            fouten.fouten.append(Fout("callback_url", tekst))
        elif veld.veld.startswith("body.event_types") and not fouten.fout("gebeurtenissen"):
            fouten.fouten.append(
                Fout("gebeurtenissen", "Een van de gekozen gebeurtenissen is niet toegestaan.")
            )
    if not fouten.fouten:
        fouten.melding = "Het abonnement is niet aangemaakt. Controleer de gegevens."
    return fouten


@dataclass(frozen=True)
class Aangemaakt:
    """A new subscription with its secret: shown this once (``abonnement`` None when
    notifications did not list it just now: the secret is shown all the same)."""

    abonnement: AbonnementRegel | None
    secret: str
