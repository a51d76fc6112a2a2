"""Claim-check: fetch an appointment's current state from scheduling, which owns it."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

import httpx

from services.notifications.application import AfspraakOnbekend
from services.notifications.domain.afspraak import Afspraak
from shared.platform.consumer import TransientError
from shared.platform.errors import NietBeschikbaar
from shared.platform.telemetry import inject_traceparent


class SchedulingAppointments:
    """Asks scheduling's internal API for an appointment, as the notifications service."""

    def __init__(
        self,
        base_url: str,
        token: Callable[[], str],
        timeout_s: float = 5.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.client = httpx.Client(
            base_url=base_url,
            timeout=timeout_s,
            transport=transport,
            event_hooks={"request": [inject_traceparent]},
        )
        self.token = token

    def afspraak(self, afspraak_id: UUID) -> Afspraak:
        """The appointment; transient on outages, AfspraakOnbekend when scheduling has none."""
        try:
            response = self.client.get(
                f"/internal/afspraken/{afspraak_id}",
                headers={"Authorization": f"Bearer {self.token()}"},
            )
        except httpx.HTTPError as exc:
            raise TransientError(f"scheduling_unreachable:{type(exc).__name__}") from None
        except NietBeschikbaar:  # no token from the identity provider (OIDC mode): try later
            raise TransientError("idp_unreachable") from None
        if response.status_code == 404:
            raise AfspraakOnbekend("afspraak_onbekend")
        if response.status_code != 200:
            # 5xx is an outage; 401/403 a misconfigured token, which a fix makes go away.
            raise TransientError(f"scheduling_status_{response.status_code}")
        try:
            return Afspraak.model_validate(response.json())
        except ValueError:  # not JSON, or not an appointment (pydantic's error is a ValueError)
            raise AfspraakOnbekend("afspraak_onleesbaar") from None
