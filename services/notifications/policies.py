"""Notifications' policies: which public events cause which e-mails, and for whom.

- AanvraagIngediend (intake) → bevestiging_aanvraag → aanvrager (the sender sends at most one per
  address per window: the public registration must not flood a mailbox);
- AfspraakGepland (scheduling) → afspraak_bevestiging with an .ics → the appointment's party: the
  werkgever for gesprek_werkgever, the bestuurder for gesprek_bestuurder, and for a toelichting
  whoever asked for it (both when that is not known);
- AfspraakVerzet, AfspraakGeannuleerd (scheduling) → afspraak_verzet, afspraak_geannuleerd with
  an .ics → the recipients of the appointment's confirmation;
- RapportVerstrektAanBestuurder (approval) → rapport_beschikbaar_bestuurder → bestuurder;
- RapportVrijgegeven (approval) → rapport_beschikbaar_werkgever → werkgever;
- ContacttermijnVerstreken (scheduling) → contacttermijn_verstreken → secretariaat.

ToelichtingAangevraagd (scheduling) mails nobody; it tells who asked for the next toelichting, so
it shares the appointments' subscription and arrives in stream order before their AfspraakGepland.
Each handler records with an inbox row, so a redelivered event plans nothing twice.
"""

from __future__ import annotations

from services.notifications.application import Notifications
from services.notifications.domain.notificatie import Partij
from services.notifications.domain.templates import (
    BEVESTIGING_AANVRAAG,
    CONTACTTERMIJN_VERSTREKEN,
    RAPPORT_BESCHIKBAAR_BESTUURDER,
    RAPPORT_BESCHIKBAAR_WERKGEVER,
)
from shared.contracts import events as public
from shared.platform.consumer import Delivery, Subscription
from shared.platform.model import Clock
from shared.platform.wiring import delivery_context

SERVICE = "notifications"


def _partij(partij: public.Partij) -> Partij:
    return "bestuurder" if partij is public.Partij.BESTUURDER else "werkgever"


class Policies:
    """The consumers' handlers, one per subscription purpose."""

    def __init__(self, app: Notifications, clock: Clock) -> None:
        self.app = app
        self.clock = clock

    def bevestiging(self, delivery: Delivery) -> None:
        """AanvraagIngediend → the confirmation to whoever submitted the aanvraag."""
        event = delivery.event
        if not isinstance(event, public.AanvraagIngediend):
            return
        self.app.plan(
            event.aanvraag_id,
            BEVESTIGING_AANVRAAG,
            "aanvrager",
            delivery.envelope.id,
            {"contact_deadline": None},
            delivery_context(delivery, self.clock, SERVICE),
            inbox=(f"{SERVICE}-bevestiging", delivery.envelope.id),
        )

    def afspraken(self, delivery: Delivery) -> None:
        """Appointments planned, moved or cancelled; toelichting requests (who asked)."""
        event = delivery.event
        cause = delivery.envelope.id
        ctx = delivery_context(delivery, self.clock, SERVICE)
        inbox = (f"{SERVICE}-afspraken", cause)
        if isinstance(event, public.ToelichtingAangevraagd):
            self.app.toelichting_gevraagd(
                cause, event.aanvraag_id, _partij(event.aangevraagd_door), event.aangevraagd_op
            )
        elif isinstance(event, public.AfspraakGepland):
            self.app.afspraak_gepland(
                event.aanvraag_id, event.afspraak_id, event.soort.value, cause, ctx, inbox
            )
        elif isinstance(event, public.AfspraakVerzet):
            self.app.afspraak_verzet(
                event.aanvraag_id,
                event.afspraak_id,
                event.soort.value,
                event.vorige_gepland_op,
                cause,
                ctx,
                inbox,
            )
        elif isinstance(event, public.AfspraakGeannuleerd):
            self.app.afspraak_geannuleerd(
                event.aanvraag_id, event.afspraak_id, event.soort.value, cause, ctx, inbox
            )

    def rapport(self, delivery: Delivery) -> None:
        """The approved report reached the bestuurder, or (after consent) the werkgever."""
        event = delivery.event
        ontvanger: Partij
        if isinstance(event, public.RapportVerstrektAanBestuurder):
            soort, ontvanger = RAPPORT_BESCHIKBAAR_BESTUURDER, "bestuurder"
        elif isinstance(event, public.RapportVrijgegeven):
            soort, ontvanger = RAPPORT_BESCHIKBAAR_WERKGEVER, "werkgever"
        else:
            return
        self.app.plan(
            event.aanvraag_id,
            soort,
            ontvanger,
            delivery.envelope.id,
            {"rapport_id": str(event.rapport_id), "versie": event.versie},
            delivery_context(delivery, self.clock, SERVICE),
            inbox=(f"{SERVICE}-rapport", delivery.envelope.id),
        )

    def escalatie(self, delivery: Delivery) -> None:
        """A missed contact deadline → the secretariaat."""
        event = delivery.event
        if not isinstance(event, public.ContacttermijnVerstreken):
            return
        self.app.plan(
            event.aanvraag_id,
            CONTACTTERMIJN_VERSTREKEN,
            "secretariaat",
            delivery.envelope.id,
            {
                "deadline": event.deadline.isoformat(),
                "vastgesteld_op": event.vastgesteld_op.isoformat(),
            },
            delivery_context(delivery, self.clock, SERVICE),
            inbox=(f"{SERVICE}-escalatie", delivery.envelope.id),
        )

    def subscriptions(self) -> list[Subscription]:
        """One subscription per purpose."""
        return [
            Subscription(
                purpose="bevestiging",
                subjects=["weerbaar.intake.AanvraagIngediend.*"],
                handler=self.bevestiging,
                description="Plans the confirmation e-mail to whoever submitted the aanvraag.",
            ),
            Subscription(
                purpose="afspraken",
                subjects=[
                    "weerbaar.scheduling.ToelichtingAangevraagd.*",
                    "weerbaar.scheduling.AfspraakGepland.*",
                    "weerbaar.scheduling.AfspraakVerzet.*",
                    "weerbaar.scheduling.AfspraakGeannuleerd.*",
                ],
                handler=self.afspraken,
                description="Plans appointment confirmations, moves and cancellations (.ics).",
            ),
            Subscription(
                purpose="rapport",
                subjects=[
                    "weerbaar.approval.RapportVerstrektAanBestuurder.*",
                    "weerbaar.approval.RapportVrijgegeven.*",
                ],
                handler=self.rapport,
                description="Tells the bestuurder, then the werkgever, that the report is ready.",
            ),
            Subscription(
                purpose="escalatie",
                subjects=["weerbaar.scheduling.ContacttermijnVerstreken.*"],
                handler=self.escalatie,
                description="Tells the secretariaat that a contact deadline passed.",
            ),
        ]
