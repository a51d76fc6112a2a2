"""Intake's API as the portal calls it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from services.portal.adapters.http import HttpBasis
from services.portal.application.uitkomsten import Uitkomst


class IntakeHttp(HttpBasis):
    """Intake: the registration, the dossier projection and its list."""

    def dien_aanvraag_in(self, aanmelding: Mapping[str, Any], idempotency_key: str) -> Uitkomst:
        """Intake's public registration."""
        return self._call(
            "intake",
            "POST",
            "/aanvragen",
            json=dict(aanmelding),
            headers={"Idempotency-Key": idempotency_key},
        )

    def dossiers(self, filters: Mapping[str, str | int]) -> Uitkomst:
        """The list of dossiers (secretariaat, compliance)."""
        return self._call("intake", "GET", "/aanvragen", params=filters)

    def dossier(self, aanvraag_id: UUID) -> Uitkomst:
        """One dossier, with its timeline."""
        return self._call("intake", "GET", f"/aanvragen/{aanvraag_id}")
