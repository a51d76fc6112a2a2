"""Notifications's API as the portal calls it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from services.portal.adapters.http import HttpBasis
from services.portal.application.uitkomsten import Uitkomst


class NotificationsHttp(HttpBasis):
    """Notifications: an organisation's webhook subscriptions."""

    def abonnementen(self) -> Uitkomst:
        """The webhook subscriptions the caller may see."""
        return self._call("notifications", "GET", "/webhooks/abonnementen")

    def maak_abonnement(self, verzoek: Mapping[str, Any]) -> Uitkomst:
        """A new webhook subscription (its secret is in this one answer)."""
        return self._call("notifications", "POST", "/webhooks/abonnementen", json=dict(verzoek))

    def verwijder_abonnement(self, abonnement_id: UUID) -> Uitkomst:
        """Remove a webhook subscription."""
        return self._call("notifications", "DELETE", f"/webhooks/abonnementen/{abonnement_id}")
