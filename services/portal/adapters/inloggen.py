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
        """The demo people, one per role."""
        return [persoon for persoon, _ in DEMO_PERSONEN]

    def log_in(self, sleutel: str) -> Ingelogd | None:
        """A token for the demo person with this key."""
        for persoon, claims in DEMO_PERSONEN:
            if persoon.sleutel == sleutel:
                token = issue_token(
                    self._secret,
                    role=persoon.rol,
                    sub=persoon.sleutel,
                    email=claims.get("email"),
                    organisatie=claims.get("organisatie"),
                    issuer=self._issuer,
                    audience=self._audience,
                )
                return Ingelogd(sub=persoon.sleutel, rol=persoon.rol, token=token)
        return None
