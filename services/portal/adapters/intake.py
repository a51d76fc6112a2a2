"""Intake's API as the portal calls it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from services.portal.adapters.http import HttpBasis
from services.portal.application.uitkomsten import Bestand, Uitkomst

#: The media type of each format of the audit export, as intake serves them.
EXPORT_MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv",
    "html": "text/html",
}


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

    def dossier_per(self, aanvraag_id: UUID, per: datetime) -> Uitkomst:
        """One dossier as it was recorded up to ``per``."""
        return self._call(
            "intake", "GET", f"/aanvragen/{aanvraag_id}", params={"per": per.isoformat()}
        )

    def audit(self, aanvraag_id: UUID, limit: int | None = None, na: str | None = None) -> Uitkomst:
        """The dossier's audit trail: every event, reads and refusals included; or one page."""
        params: dict[str, str | int] = {}
        if limit is not None:
            params["limit"] = limit
        if na is not None:
            params["na"] = na
        return self._call("intake", "GET", f"/aanvragen/{aanvraag_id}/audit", params=params)

    def audit_telling(self, aanvraag_id: UUID) -> Uitkomst:
        """How many events the dossier's audit trail holds, per event."""
        return self._call("intake", "GET", f"/aanvragen/{aanvraag_id}/audit/telling")

    def audit_export(self, aanvraag_id: UUID, formaat: str) -> Bestand | Uitkomst:
        """The audit export of one dossier in a format (json, csv, html)."""
        return self._bestand(
            "intake",
            "/audit/export",
            {"aanvraag_id": str(aanvraag_id), "formaat": formaat},
            EXPORT_MEDIA_TYPES[formaat],
        )

    def ketenverificatie(self, opnieuw: bool) -> Uitkomst:
        """Whether the chains verified: the last verification, or a new one."""
        params: dict[str, str | int] = {"opnieuw": "true"} if opnieuw else {}
        return self._call("intake", "GET", "/audit/verificatie", params=params)

    def leg_bewaarplicht_op(self, aanvraag_id: UUID, reden: str) -> Uitkomst:
        """Place a legal hold on the dossier."""
        return self._call(
            "intake", "POST", f"/aanvragen/{aanvraag_id}/bewaarplicht", json={"reden": reden}
        )

    def hef_bewaarplicht_op(self, aanvraag_id: UUID) -> Uitkomst:
        """Lift the dossier's legal hold."""
        return self._call("intake", "DELETE", f"/aanvragen/{aanvraag_id}/bewaarplicht")
