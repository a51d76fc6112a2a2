"""Approval's API as the portal calls it."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from services.portal.adapters.http import HttpBasis
from services.portal.application.uitkomsten import Uitkomst


class ApprovalHttp(HttpBasis):
    """Approval: the review queue, the decisions, consent and release."""

    def beoordelingen(self, rapport_id: UUID) -> Uitkomst:
        """The decisions per submitted version, and four-eyes for the caller."""
        return self._call("approval", "GET", f"/rapporten/{rapport_id}/beoordelingen")

    def keur_goed(self, rapport_id: UUID, versie: int, inhoud_hash: str) -> Uitkomst:
        """Approve exactly this version (named by number and content hash)."""
        return self._call(
            "approval",
            "POST",
            f"/rapporten/{rapport_id}/goedkeuren",
            json={"versie": versie, "inhoud_hash": inhoud_hash},
        )

    def keur_af(
        self, rapport_id: UUID, versie: int, inhoud_hash: str, redenen: Sequence[str]
    ) -> Uitkomst:
        """Reject exactly this version, with the reasons for the adviseur."""
        return self._call(
            "approval",
            "POST",
            f"/rapporten/{rapport_id}/afkeuren",
            json={"versie": versie, "inhoud_hash": inhoud_hash, "redenen": list(redenen)},
        )

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
