"""Assessment's reactions to other services' events, declared in one list (``policies``).

- scheduling's GesprekGevoerd and WoningscanUitgevoerd → the research notes them (the report
  waits for both conversations and the woningscan);
- approval's decisions (RapportGoedgekeurd, RapportAfgekeurd, InstemmingGegeven,
  InstemmingGeweigerd, RapportVrijgegeven) → the report's state, and who may read which version.

Each handler turns a delivery into one use case of the application, with the inbox entry that
makes a redelivery harmless. Intake's events keep the dossier register, a read model
(``projections``).
"""

from __future__ import annotations

import logging

from services.assessment.application import Assessment, OnbekendBesluit
from shared.contracts import events as public
from shared.platform.consumer import Delivery, Poison, Subscription
from shared.platform.model import Clock
from shared.platform.wiring import delivery_context

log = logging.getLogger(__name__)

SERVICE = "assessment"

ONDERZOEK_SUBJECTS = (
    "weerbaar.scheduling.GesprekGevoerd.*",
    "weerbaar.scheduling.WoningscanUitgevoerd.*",
)
BESLUIT_SUBJECTS = (
    "weerbaar.approval.RapportGoedgekeurd.*",
    "weerbaar.approval.RapportAfgekeurd.*",
    "weerbaar.approval.InstemmingGegeven.*",
    "weerbaar.approval.InstemmingGeweigerd.*",
    "weerbaar.approval.RapportVrijgegeven.*",
)


class NoteerOnderzoek:
    """A conversation held or the woningscan done (scheduling): the research notes it."""

    def __init__(self, app: Assessment, clock: Clock) -> None:
        self.app = app
        self.clock = clock

    def __call__(self, delivery: Delivery) -> None:
        """Handle one delivery (other events change nothing)."""
        ctx = delivery_context(delivery, self.clock, SERVICE)
        inbox = (f"{SERVICE}-onderzoek", delivery.envelope.id)
        event = delivery.event
        if isinstance(event, public.GesprekGevoerd):
            self.app.noteer_gesprek(event, ctx, inbox)
        elif isinstance(event, public.WoningscanUitgevoerd):
            self.app.noteer_woningscan(event, ctx, inbox)


class NoteerBesluit:
    """A decision of approval about a report version: the report's state follows it. A decision
    about a report or version this service never submitted is poison, never retried."""

    def __init__(self, app: Assessment, clock: Clock) -> None:
        self.app = app
        self.clock = clock

    def __call__(self, delivery: Delivery) -> None:
        """Handle one delivery (other events change nothing)."""
        ctx = delivery_context(delivery, self.clock, SERVICE)
        inbox = (f"{SERVICE}-besluiten", delivery.envelope.id)
        event = delivery.event
        if not isinstance(
            event,
            public.RapportGoedgekeurd
            | public.RapportAfgekeurd
            | public.InstemmingGegeven
            | public.InstemmingGeweigerd
            | public.RapportVrijgegeven,
        ):
            return
        try:
            self.app.noteer_besluit(event, ctx, inbox)
        except OnbekendBesluit as exc:
            log.error(
                "decision does not match a submitted report version",
                extra={"event_id": delivery.envelope.id, "problem": str(exc)},
            )
            raise Poison("besluit_past_niet") from None


def policies(app: Assessment, clock: Clock) -> list[Subscription]:
    """Assessment's subscriptions to other services' events (the register's aside)."""
    return [
        Subscription(
            purpose="onderzoek",
            subjects=list(ONDERZOEK_SUBJECTS),
            handler=NoteerOnderzoek(app, clock),
            description="Notes the conversations and the woningscan the report must wait for.",
        ),
        Subscription(
            purpose="besluiten",
            subjects=list(BESLUIT_SUBJECTS),
            handler=NoteerBesluit(app, clock),
            description="Notes approval's decisions: the report's state and who may read it.",
        ),
    ]
