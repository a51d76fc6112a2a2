"""An appointment as scheduling describes it at the moment of sending (the claim-check answer).

The public events say that an appointment changed; what a mail tells a person (the current time,
duration, video link, and whether it still goes ahead) is fetched from scheduling when the mail is
sent, so a late or retried mail never announces a stale time or a cancelled appointment.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.notifications.domain.notificatie import Partij
from shared.contracts.events import AfspraakSoort, AfspraakVorm

GEANNULEERD = "geannuleerd"
GEVOERD = "gevoerd"

_LINK = re.compile(r"^https?://[^\s\x00-\x1f\x7f]+$")


class Afspraak(BaseModel):
    """Scheduling's answer to GET /internal/afspraken/{afspraak_id}."""

    model_config = ConfigDict(frozen=True, extra="ignore", hide_input_in_errors=True)

    afspraak_id: UUID
    aanvraag_id: UUID
    soort: AfspraakSoort
    vorm: AfspraakVorm
    gepland_op: datetime
    duur_minuten: int = Field(gt=0, le=1440)
    adviseur_id: str
    video_link: str | None = None
    status: str
    #: The parties the appointment is with, when scheduling says so (it does since issue 3).
    partijen: tuple[Partij, ...] | None = None

    @field_validator("gepland_op")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("gepland_op must carry a time zone")
        return value

    @field_validator("video_link")
    @classmethod
    def _plain_link(cls, value: str | None) -> str | None:
        # The link is printed in a mail and in a calendar file: one http(s) URL, nothing else.
        if value is not None and not _LINK.match(value):
            raise ValueError("video_link must be one http(s) URL")
        return value

    @property
    def einde(self) -> datetime:
        """When the appointment ends."""
        return self.gepland_op + timedelta(minutes=self.duur_minuten)

    def met(self, ontvanger: str) -> bool:
        """Whether the appointment concerns this recipient (unknown counts as yes)."""
        return self.partijen is None or ontvanger in self.partijen

    @property
    def geannuleerd(self) -> bool:
        """Whether the appointment was cancelled."""
        return self.status == GEANNULEERD
