"""Notifications' composition root."""

from __future__ import annotations

from services.notifications.api import router
from services.notifications.application import Notifications, Sender
from services.notifications.gateway import to_public
from services.notifications.mailer import Mailer, SmtpConfig
from services.notifications.recipients import IntakeRecipients
from services.notifications.templates import BEVESTIGING_AANVRAAG
from shared.consumer import Delivery, Subscription
from shared.contracts import events as public
from shared.eventstore import Clock
from shared.http import create_app
from shared.runtime import Components
from shared.settings import Settings
from shared.wiring import (
    add_standard_readiness,
    delivery_context,
    make_auth,
    periodic,
    service_token,
)


def bootstrap(settings: Settings, clock: Clock) -> Components:
    """Build the notifications service."""
    app = Notifications(settings.eventsourcing_env("notifications"))
    auth = make_auth(settings, app)
    api = create_app(
        service="notifications",
        title="Weerbaar — notifications",
        version="1",
        max_body_bytes=settings.max_body_bytes,
    )
    api.include_router(router(app, auth))
    add_standard_readiness(api, app, settings)

    mailer = Mailer(
        SmtpConfig(
            host=settings.smtp_host,
            port=settings.smtp_port,
            starttls=settings.smtp_starttls,
            from_address=settings.smtp_from,
        )
    )
    sender = Sender(
        app,
        mailer,
        IntakeRecipients(settings.intake_url, service_token(settings, "notifications")),
        clock,
        message_id_domain=settings.smtp_from.rsplit("@", 1)[-1],
        max_pogingen=settings.notification_max_attempts,
    )

    def on_ingediend(delivery: Delivery) -> None:
        event = delivery.event
        assert isinstance(event, public.AanvraagIngediend)
        app.plan(
            event.aanvraag_id,
            BEVESTIGING_AANVRAAG,
            "aanvrager",
            delivery.envelope.id,
            {"contact_deadline": None},
            delivery_context(delivery, clock, "notifications"),
            inbox=("notifications-bevestiging", delivery.envelope.id),
        )

    return Components(
        service="notifications",
        app=app,
        api=api,
        gateway=to_public,
        subscriptions=[
            Subscription(
                purpose="bevestiging",
                subjects=["weerbaar.intake.AanvraagIngediend.*"],
                handler=on_ingediend,
                description="Plans the confirmation e-mail to whoever submitted the aanvraag.",
            )
        ],
        workers=[periodic("mail-sender", settings.sender_interval_s, sender.run_once)],
    )
