"""Approval's API as the portal calls it."""

from __future__ import annotations

from uuid import UUID

from services.portal.adapters.http import HttpBasis
from services.portal.application.uitkomsten import Uitkomst


class ApprovalHttp(HttpBasis):
    """Approval: the review queue, the decisions, consent and release."""

    def beoordelingen(self, rapport_id: UUID) -> Uitkomst:
        """The decisions per submitted version, with the reasons of each rejection."""
        return self._call("approval", "GET", f"/rapporten/{rapport_id}/beoordelingen")
