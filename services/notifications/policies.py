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
Every public event (webhooks) → one delivery per subscription whose filter it matches (planned
with the inbox entry, in the webhook store's one unit of work).

Each handler records with an inbox row, so a redelivered event plans nothing twice. The
reactions are declared in one list (``policies``); each handler is a function here that turns
the delivery into one use-case call.
"""

from __future__ import annotations

from functools import partial

from services.notifications.application import Notifications, Webhooks
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


def bevestiging(app: Notifications, clock: Clock, delivery: Delivery) -> None:
    """AanvraagIngediend → the confirmation to whoever submitted the aanvraag."""
    event = delivery.event
    if not isinstance(event, public.AanvraagIngediend):
        return
    app.plan(
        event.aanvraag_id,
        BEVESTIGING_AANVRAAG,
        "aanvrager",
        delivery.envelope.id,
        {"contact_deadline": None},
        delivery_context(delivery, clock, SERVICE),
        inbox=(f"{SERVICE}-bevestiging", delivery.envelope.id),
    )


def afspraken(app: Notifications, clock: Clock, delivery: Delivery) -> None:
    """Appointments planned, moved or cancelled; toelichting requests (who asked)."""
    event = delivery.event
    cause = delivery.envelope.id
    ctx = delivery_context(delivery, clock, SERVICE)
    inbox = (f"{SERVICE}-afspraken", cause)
    if isinstance(event, public.ToelichtingAangevraagd):
        app.toelichting_gevraagd(
            cause, event.aanvraag_id, _partij(event.aangevraagd_door), event.aangevraagd_op
        )
    elif isinstance(event, public.AfspraakGepland):
        app.afspraak_gepland(
            event.aanvraag_id, event.afspraak_id, event.soort.value, cause, ctx, inbox
        )
    elif isinstance(event, public.AfspraakVerzet):
        app.afspraak_verzet(
            event.aanvraag_id,
            event.afspraak_id,
            event.soort.value,
            event.vorige_gepland_op,
            cause,
            ctx,
            inbox,
        )
    elif isinstance(event, public.AfspraakGeannuleerd):
        app.afspraak_geannuleerd(
            event.aanvraag_id, event.afspraak_id, event.soort.value, cause, ctx, inbox
        )


def rapport(app: Notifications, clock: Clock, delivery: Delivery) -> None:
    """The approved report reached the bestuurder, or (after consent) the werkgever."""
    event = delivery.event
    ontvanger: Partij
    if isinstance(event, public.RapportVerstrektAanBestuurder):
        soort, ontvanger = RAPPORT_BESCHIKBAAR_BESTUURDER, "bestuurder"
    elif isinstance(event, public.RapportVrijgegeven):
        soort, ontvanger = RAPPORT_BESCHIKBAAR_WERKGEVER, "werkgever"
    else:
        return
    app.plan(
        event.aanvraag_id,
        soort,
        ontvanger,
        delivery.envelope.id,
        {"rapport_id": str(event.rapport_id), "versie": event.versie},
        delivery_context(delivery, clock, SERVICE),
        inbox=(f"{SERVICE}-rapport", delivery.envelope.id),
    )


def escalatie(app: Notifications, clock: Clock, delivery: Delivery) -> None:
    """A missed contact deadline → the secretariaat."""
    event = delivery.event
    if not isinstance(event, public.ContacttermijnVerstreken):
        return
    app.plan(
        event.aanvraag_id,
        CONTACTTERMIJN_VERSTREKEN,
        "secretariaat",
        delivery.envelope.id,
        {
            "deadline": event.deadline.isoformat(),
            "vastgesteld_op": event.vastgesteld_op.isoformat(),
        },
        delivery_context(delivery, clock, SERVICE),
        inbox=(f"{SERVICE}-escalatie", delivery.envelope.id),
    )


def webhookbezorgingen(webhooks: Webhooks, delivery: Delivery) -> None:
    """Any public event → the webhook deliveries of the subscriptions it reaches."""
    webhooks.handle(delivery)


def policies(app: Notifications, clock: Clock, webhooks: Webhooks) -> list[Subscription]:
    """Notifications' reactions to other services' events: one subscription per purpose."""
    return [
        Subscription(
            purpose="bevestiging",
            subjects=["weerbaar.intake.AanvraagIngediend.*"],
            handler=partial(bevestiging, app, clock),
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
            handler=partial(afspraken, app, clock),
            description="Plans appointment confirmations, moves and cancellations (.ics).",
        ),
        Subscription(
            purpose="rapport",
            subjects=[
                "weerbaar.approval.RapportVerstrektAanBestuurder.*",
                "weerbaar.approval.RapportVrijgegeven.*",
            ],
            handler=partial(rapport, app, clock),
            description="Tells the bestuurder, then the werkgever, that the report is ready.",
        ),
        Subscription(
            purpose="escalatie",
            subjects=["weerbaar.scheduling.ContacttermijnVerstreken.*"],
            handler=partial(escalatie, app, clock),
            description="Tells the secretariaat that a contact deadline passed.",
        ),
        Subscription(
            purpose="webhooks",
            subjects=["weerbaar.>"],
            handler=partial(webhookbezorgingen, webhooks),
            batch_handler=webhooks.handle_batch,
            description="Plans the webhook deliveries of every public event.",
        ),
    ]
