"""Scheduling's API as the portal calls it."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any
from uuid import UUID

from services.portal.adapters.http import HttpBasis
from services.portal.application.uitkomsten import Uitkomst


class SchedulingHttp(HttpBasis):
    """Scheduling: working days, contact, the planning and its appointments."""

    def werktijden(self, van: date | None, dagen: int) -> Uitkomst:
        """The working days of a period and the working hours."""
        params: dict[str, str | int] = {"dagen": dagen}
        if van is not None:
            params["van"] = van.isoformat()
        return self._call("scheduling", "GET", "/werktijden", params=params)

    def planning(self, aanvraag_id: UUID) -> Uitkomst:
        """A dossier's planning, with its appointments and toelichting requests."""
        return self._call("scheduling", "GET", f"/aanvragen/{aanvraag_id}/planning")

    def neem_contact_op(self, aanvraag_id: UUID) -> Uitkomst:
        """Record the secretariat's contact."""
        return self._call("scheduling", "POST", f"/aanvragen/{aanvraag_id}/contact")

    def plan_afspraak(
        self, aanvraag_id: UUID, verzoek: Mapping[str, Any], idempotency_key: str
    ) -> Uitkomst:
        """Plan an appointment (the same key plans once)."""
        return self._call(
            "scheduling",
            "POST",
            f"/aanvragen/{aanvraag_id}/afspraken",
            json=dict(verzoek),
            headers={"Idempotency-Key": idempotency_key},
        )

    def verzet_afspraak(
        self, afspraak_id: UUID, gepland_op: datetime, *, achteraf: bool = False
    ) -> Uitkomst:
        """Move an appointment (``achteraf``: record that it took place at this moment)."""
        body: dict[str, object] = {"gepland_op": gepland_op.isoformat()}
        if achteraf:
            body["achteraf"] = True
        return self._call("scheduling", "POST", f"/afspraken/{afspraak_id}/verzetten", json=body)

    def annuleer_afspraak(self, afspraak_id: UUID) -> Uitkomst:
        """Cancel an appointment."""
        return self._call("scheduling", "POST", f"/afspraken/{afspraak_id}/annuleren")

    def vraag_toelichting_aan(self, aanvraag_id: UUID) -> Uitkomst:
        """Ask for a toelichting (as the party the token is)."""
        return self._call("scheduling", "POST", f"/aanvragen/{aanvraag_id}/toelichting")

    def mijn_afspraken(self, status: str) -> Uitkomst:
        """The signed-in adviseur's own appointments with this status."""
        return self._call("scheduling", "GET", "/afspraken", params={"status": status})

    def leg_gesprek_vast(self, afspraak_id: UUID, woningscan_uitgevoerd: bool) -> Uitkomst:
        """Record a conversation as held (the woningscan with it, if done)."""
        return self._call(
            "scheduling",
            "POST",
            f"/afspraken/{afspraak_id}/gevoerd",
            json={"woningscan_uitgevoerd": woningscan_uitgevoerd},
        )

    def leg_woningscan_vast(self, afspraak_id: UUID) -> Uitkomst:
        """Record a woningscan done after the conversation at home."""
        return self._call("scheduling", "POST", f"/afspraken/{afspraak_id}/woningscan")
