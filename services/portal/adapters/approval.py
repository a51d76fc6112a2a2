"""Approval's API as the portal calls it."""

from __future__ import annotations

from uuid import UUID

from services.portal.adapters.http import HttpBasis
from services.portal.application.uitkomsten import Uitkomst


class ApprovalHttp(HttpBasis):
    """Approval: the review queue, the decisions, consent and release."""

    def rapport_status(self, rapport_id: UUID) -> Uitkomst:
        """Where the decisions about a report stand (never its content)."""
        return self._call("approval", "GET", f"/rapporten/{rapport_id}/status")

    def geef_instemming(self, rapport_id: UUID, instemming: bool) -> Uitkomst:
        """The bestuurder's consent (True) or refusal (False)."""
        return self._call(
            "approval",
            "POST",
            f"/rapporten/{rapport_id}/instemming",
            json={"instemming": instemming},
        )
