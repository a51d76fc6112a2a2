"""Assessment's API as the portal calls it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from services.portal.adapters.http import HttpBasis
from services.portal.application.uitkomsten import Uitkomst


class AssessmentHttp(HttpBasis):
    """Assessment: conversations, the woningscan, the report and its versions."""

    def rapport(self, rapport_id: UUID, versie: int | None = None) -> Uitkomst:
        """One version of the report with its content and hash (every read is on record)."""
        params: dict[str, str | int] = {} if versie is None else {"versie": versie}
        return self._call("assessment", "GET", f"/rapporten/{rapport_id}", params=params)

    def lees_rapport(self, rapport_id: UUID) -> Uitkomst:
        """Read the report (assessment records the read)."""
        return self._call("assessment", "GET", f"/rapporten/{rapport_id}")

    def pkvw(self, aanvraag_id: UUID) -> Uitkomst:
        """The bestuurder's PKVW status."""
        return self._call("assessment", "GET", f"/aanvragen/{aanvraag_id}/pkvw")

    def meld_pkvw(self, aanvraag_id: UUID, melding: Mapping[str, Any]) -> Uitkomst:
        """Report the PKVW status."""
        return self._call(
            "assessment", "POST", f"/aanvragen/{aanvraag_id}/pkvw", json=dict(melding)
        )

    def maatregelen(self, aanvraag_id: UUID) -> Uitkomst:
        """The approved report's measures, their status and who pays."""
        return self._call("assessment", "GET", f"/aanvragen/{aanvraag_id}/maatregelen")

    def voer_maatregel_uit(self, maatregel_id: UUID) -> Uitkomst:
        """Record a measure as carried out."""
        return self._call("assessment", "POST", f"/maatregelen/{maatregel_id}/uitgevoerd")

    def rapporten(self, aanvraag_id: UUID) -> Uitkomst:
        """A dossier's report: its state and measures, without content."""
        return self._call("assessment", "GET", f"/aanvragen/{aanvraag_id}/rapporten")

    def stel_rapport_op(
        self, aanvraag_id: UUID, concept: Mapping[str, Any], idempotency_key: str
    ) -> Uitkomst:
        """Draft version 1 (the same key drafts once)."""
        return self._call(
            "assessment",
            "POST",
            f"/aanvragen/{aanvraag_id}/rapport",
            json=dict(concept),
            headers={"Idempotency-Key": idempotency_key},
        )

    def herzie_rapport(self, rapport_id: UUID, concept: Mapping[str, Any]) -> Uitkomst:
        """Save a new version."""
        return self._call("assessment", "PUT", f"/rapporten/{rapport_id}", json=dict(concept))

    def dien_rapport_in(self, rapport_id: UUID) -> Uitkomst:
        """Submit the current version to the BVA."""
        return self._call("assessment", "POST", f"/rapporten/{rapport_id}/indienen")
