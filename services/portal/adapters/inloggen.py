"""Signing in, embedded mode: the demo people, with tokens signed as ``weerbaar token`` signs
them."""

from __future__ import annotations

from services.portal.application.ports import Ingelogd, Persoon
from shared.platform.auth import issue_token

#: The demo people of the development sign-in, as ``weerbaar demo`` names its actors.
DEMO_PERSONEN: tuple[tuple[Persoon, dict[str, str]], ...] = (
    (Persoon("sec-demo", "secretariaat", "Medewerker secretariaat CCV"), {}),
    (Persoon("adv-demo", "adviseur", "Adviseur CCV"), {}),
    (Persoon("bva-demo", "bva", "Toetser Beveiligingsautoriteit"), {}),
    (
        Persoon("bst-demo", "bestuurder", "Bestuurder (bestuurder@example.org)"),
        {"email": "bestuurder@example.org"},
    ),
    (
        Persoon("wg-demo", "werkgever", "Werkgever (organisatie GM0344)"),
        {"organisatie": "GM0344"},
    ),
    (Persoon("cmp-demo", "compliance", "Compliance officer"), {}),
    # The demo adviseur (same subject) signed in as a BVA reviewer: the reports they wrote show
    # four-eyes at work.
    (
        Persoon("adv-bva-demo", "bva", "Toetser BVA die ook de demo-adviseur is (vier ogen)"),
        {"sub": "adv-demo"},
    ),
    # A second bestuurder, to see that one bestuurder never sees another's dossier.
    (
        Persoon("bst2-demo", "bestuurder", "Andere bestuurder (andere.bestuurder@example.org)"),
        {"email": "andere.bestuurder@example.org"},
    ),
    # A werkgever of another organisation: to see that a dossier is its own organisation's only.
    (
        Persoon("wg-ander-demo", "werkgever", "Werkgever (organisatie GM0363)"),
        {"organisatie": "GM0363"},
    ),
)


class EmbeddedInloggen:
    """Development sign-in: the demo people, with tokens signed by the local secret."""

    def __init__(self, secret: bytes, issuer: str, audience: str) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience

    def personen(self) -> list[Persoon]:
        """The demo people: one per role, the adviseur as a BVA reviewer, and a second
        bestuurder."""
        return [persoon for persoon, _ in DEMO_PERSONEN]

    def log_in(self, sleutel: str) -> Ingelogd | None:
        """A token for the demo person with this key (its subject is the key unless the
        person names another)."""
        for persoon, claims in DEMO_PERSONEN:
            if persoon.sleutel == sleutel:
                sub = claims.get("sub", persoon.sleutel)
                token = issue_token(
                    self._secret,
                    role=persoon.rol,
                    sub=sub,
                    email=claims.get("email"),
                    organisatie=claims.get("organisatie"),
                    issuer=self._issuer,
                    audience=self._audience,
                )
                return Ingelogd(sub=sub, rol=persoon.rol, token=token)
        return None
