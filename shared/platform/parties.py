"""Who is who in a dossier: is this caller its bestuurder, or of its werkgever?

Only intake holds the personal data that answers this (the bestuurder's e-mail address), so the
other services ask intake's internal API, authenticated as themselves, sending the caller's claims
in a POST body (never in a URL, which would end up in logs). Intake answers with the parties the
caller is, and the dossier's public organisation code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final
from uuid import UUID

import httpx
from pydantic import BaseModel

from shared.platform.auth import Principal, Role
from shared.platform.errors import NietBeschikbaar
from shared.platform.telemetry import inject_traceparent

#: The problem code of a 503 when intake's dossier registry could not answer who a caller is.
REGISTRY_UNREACHABLE_CODE: Final = "dossierregistratie_onbereikbaar"


#: What a service asks intake about when a party asked for something that does not exist (a
#: report, a measure): no dossier has this id, so the answer is "no party", as for someone
#: else's, and the caller is refused the same way, on record (nothing tells it exists or not).
STAND_IN_DOSSIER: Final = UUID("00000000-0000-4000-8000-000000000000")


class Partijen(BaseModel):
    """Intake's answer (no parties and no organisation for a dossier intake does not know)."""

    partijen: frozenset[str]
    organisatie_code: str | None = None


class DossierParties:
    """Asks intake which party of a dossier a caller is."""

    def __init__(self, intake_url: str, token: Callable[[], str], timeout_s: float = 5.0) -> None:
        self.client = httpx.Client(
            base_url=intake_url, timeout=timeout_s, event_hooks={"request": [inject_traceparent]}
        )
        self.token = token

    def of(self, aanvraag_id: UUID, principal: Principal) -> Partijen:
        """The parties this principal is in the dossier (empty when none, also when intake does
        not know the dossier)."""
        claims = {
            "email": principal.email if principal.has_role(Role.bestuurder) else None,
            "organisatie": principal.organisatie if principal.has_role(Role.werkgever) else None,
        }
        try:
            response = self.client.post(
                f"/internal/aanvragen/{aanvraag_id}/partij",
                json=claims,
                headers={"Authorization": f"Bearer {self.token()}"},
            )
        except httpx.HTTPError:
            raise NietBeschikbaar(
                "De dossierregistratie is tijdelijk niet bereikbaar.",
                code=REGISTRY_UNREACHABLE_CODE,
            ) from None
        if response.status_code == 404:
            # Unknown to intake: the caller is no party of it, exactly as of someone else's
            # dossier; the service refuses both alike (on record, 404).
            return Partijen(partijen=frozenset())
        if response.status_code != 200:
            raise NietBeschikbaar(
                "De dossierregistratie gaf geen antwoord.", code=REGISTRY_UNREACHABLE_CODE
            )
        return Partijen.model_validate(response.json())
