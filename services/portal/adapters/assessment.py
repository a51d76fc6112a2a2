"""Assessment's API as the portal calls it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from services.portal.adapters.http import HttpBasis
from services.portal.application.uitkomsten import Uitkomst


class AssessmentHttp(HttpBasis):
    """Assessment: conversations, the woningscan, the report and its versions."""

    def rapporten(self, aanvraag_id: UUID) -> Uitkomst:
        """A dossier's report: its state and measures, without content."""
        return self._call("assessment", "GET", f"/aanvragen/{aanvraag_id}/rapporten")

    def rapport(self, rapport_id: UUID, versie: int | None = None) -> Uitkomst:
        """One version of the report with its content (assessment records the read)."""
        params: dict[str, str | int] = {} if versie is None else {"versie": versie}
        return self._call("assessment", "GET", f"/rapporten/{rapport_id}", params=params)

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
