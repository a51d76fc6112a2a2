"""Assessment's API as the portal calls it."""

from __future__ import annotations

from uuid import UUID

from services.portal.adapters.http import HttpBasis
from services.portal.application.uitkomsten import Uitkomst


class AssessmentHttp(HttpBasis):
    """Assessment: conversations, the woningscan, the report and its versions."""

    def rapport(self, rapport_id: UUID, versie: int | None = None) -> Uitkomst:
        """One version of the report with its content and hash (every read is on record)."""
        params: dict[str, str | int] = {} if versie is None else {"versie": versie}
        return self._call("assessment", "GET", f"/rapporten/{rapport_id}", params=params)
