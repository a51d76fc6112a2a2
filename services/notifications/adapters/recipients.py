"""Claim-check: fetch a recipient's address from intake, which owns it and logs the hand-out."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import httpx

from services.notifications.application import Recipients, RecipientUnknown
from services.notifications.domain.notificatie import Ontvanger
from shared.platform.consumer import TransientError
from shared.platform.errors import NietBeschikbaar
from shared.platform.telemetry import inject_traceparent


class IntakeRecipients:
    """Asks intake's internal API for an address, authenticated as the notifications service."""

    def __init__(self, base_url: str, token: Callable[[], str], timeout_s: float = 5.0) -> None:
        self.client = httpx.Client(
            base_url=base_url, timeout=timeout_s, event_hooks={"request": [inject_traceparent]}
        )
        self.token = token

    def address(self, aanvraag_id: UUID, ontvanger: Ontvanger) -> str:
        """The recipient's address; transient on outages, RecipientUnknown when intake has none."""
        if ontvanger == "secretariaat":
            raise RecipientUnknown("secretariaat")
        try:
            response = self.client.get(
                f"/internal/aanvragen/{aanvraag_id}/ontvanger",
                params={"rol": ontvanger},
                headers={"Authorization": f"Bearer {self.token()}"},
            )
        except httpx.HTTPError as exc:
            raise TransientError(f"intake_unreachable:{type(exc).__name__}") from None
        except NietBeschikbaar:  # no token from the identity provider (OIDC mode): try later
            raise TransientError("idp_unreachable") from None
        if response.status_code in (404, 410):  # unknown, or its personal data was forgotten
            raise RecipientUnknown(ontvanger)
        if response.status_code >= 500:
            raise TransientError(f"intake_status_{response.status_code}")
        response.raise_for_status()
        email: str = response.json()["email"]
        return email


class RecipientDirectory:
    """Addresses by role: the secretariaat's from the settings, a dossier's parties from intake."""

    def __init__(self, dossier: Recipients, secretariaat_email: str) -> None:
        self.dossier = dossier
        self.secretariaat_email = secretariaat_email

    def address(self, aanvraag_id: UUID, ontvanger: Ontvanger) -> str:
        """The address of the role's recipient for this dossier."""
        if ontvanger == "secretariaat":
            return self.secretariaat_email
        return self.dossier.address(aanvraag_id, ontvanger)
