"""The start page per role: the work each role has in the portal.

A journey adds its role's entry to ``WERK``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Werk:
    """A link on a role's start page to a journey's first page."""

    label: str
    url: str
    uitleg: str


#: Per role: the journeys built for it.
WERK: dict[str, tuple[Werk, ...]] = {
    "secretariaat": (
        Werk(
            "Werkvoorraad",
            "/secretariaat/werkvoorraad",
            "Dossiers per status, met de contacttermijn in werkdagen; contact vastleggen en"
            " de gesprekken plannen, verzetten of annuleren.",
        ),
    ),
    "bva": (
        Werk(
            "Rapporten ter toetsing",
            "/bva/toetsing",
            "De adviesrapporten die op een besluit wachten: een versie lezen met haar"
            " inhoudshash, goedkeuren of afkeuren met redenen.",
        ),
    ),
    "bestuurder": (
        Werk(
            "Mijn dossiers",
            "/bestuurder/dossiers",
            "Waar uw dossier staat en wat er nu komt; het rapport lezen en instemmen met delen"
            " met uw werkgever (of niet); uw maatregelen en het Politiekeurmerk Veilig Wonen;"
            " een toelichting aanvragen.",
        ),
    ),
    "adviseur": (
        Werk(
            "Mijn afspraken",
            "/adviseur/afspraken",
            "Uw gesprekken; een gesprek en de woningscan vastleggen, en van daaruit het"
            " adviesrapport over de vier domeinen schrijven, indienen en herzien.",
        ),
    ),
    "werkgever": (
        Werk(
            "Dossiers van uw organisatie",
            "/werkgever/dossiers",
            "Waar een dossier staat; na vrijgave door de bestuurder het rapport, de maatregelen"
            " die u uitvoert en wie ze betaalt.",
        ),
        Werk(
            "Webhook-abonnementen",
            "/werkgever/webhooks",
            "Berichten over de dossiers van uw organisatie naar uw eigen systeem.",
        ),
    ),
    "compliance": (
        Werk(
            "Dossiers en audittrail",
            "/compliance/dossiers",
            "Per dossier de audittrail als tijdlijn (ook geweigerde pogingen), het dossier"
            " zoals het was op een gekozen moment, de auditexport (JSON, CSV, HTML), de"
            " bewaarplicht en de controle van de hash-ketens.",
        ),
    ),
}

ROL_NAMEN: dict[str, str] = {
    "secretariaat": "Secretariaat CCV",
    "adviseur": "Adviseur CCV",
    "bva": "Beveiligingsautoriteit (BVA)",
    "bestuurder": "Bestuurder",
    "werkgever": "Werkgever",
    "compliance": "Compliance",
}
