"""The start page per role: the work each role has in the portal, and what is still to come.

A journey adds its role's entry to ``WERK`` (and takes it out of ``KOMT_NOG``).
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

#: Per role: what the portal will offer there (shown as coming, not yet built).
KOMT_NOG: dict[str, tuple[str, ...]] = {
    "adviseur": (
        "Uw afspraken; gesprekken en de woningscan vastleggen.",
        "Het adviesrapport over de vier domeinen schrijven, indienen en herzien.",
    ),
    "bva": ("De rapporten ter toetsing: goedkeuren of afkeuren met redenen.",),
    "bestuurder": (
        "Uw dossier: waar het staat en wat er nu komt.",
        "Het rapport lezen en instemmen met delen met uw werkgever (of niet).",
        "Uw maatregelen en het Politiekeurmerk Veilig Wonen.",
    ),
    "werkgever": (
        "De dossiers van uw organisatie.",
        "Na vrijgave door de bestuurder: het rapport en de uit te voeren maatregelen.",
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
