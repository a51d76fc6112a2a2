"""Assessment's API as the portal calls it."""

from __future__ import annotations

from uuid import UUID

from services.portal.adapters.http import HttpBasis
from services.portal.application.uitkomsten import Uitkomst


class AssessmentHttp(HttpBasis):
    """Assessment: conversations, the woningscan, the report and its versions."""

    def lees_rapport(self, rapport_id: UUID) -> Uitkomst:
        """The report's current version with its content."""
        return self._call("assessment", "GET", f"/rapporten/{rapport_id}")

    def maatregelen(self, aanvraag_id: UUID) -> Uitkomst:
        """The approved report's measures: status and who pays."""
        return self._call("assessment", "GET", f"/aanvragen/{aanvraag_id}/maatregelen")

    def voer_maatregel_uit(self, maatregel_id: UUID) -> Uitkomst:
        """Record a measure as carried out by the caller, its uitvoerder."""
        return self._call("assessment", "POST", f"/maatregelen/{maatregel_id}/uitgevoerd")
