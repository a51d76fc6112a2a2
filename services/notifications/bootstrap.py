"""Notifications' composition root: the one place that wires the rooms together.

``application(env)`` builds the use cases on the store ``env`` names, with the service's own
tables (``projections``) on the same store; ``bootstrap`` adds the HTTP API, the adapters (SMTP,
the claim-checks of intake and scheduling, the webhook store, sender and transport), the
reactions (``policies``) and the two sender workers of a running service.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.notifications import projections
from services.notifications.adapters.appointments import SchedulingAppointments
from services.notifications.adapters.recipients import IntakeRecipients, RecipientDirectory
from services.notifications.adapters.smtp import Mailer, SmtpConfig
from services.notifications.adapters.webhook_memory import memory_webhook_store
from services.notifications.adapters.webhook_sender import WebhookSender
from services.notifications.adapters.webhook_store import (
    SqlWebhookStore,
    sql_webhook_store,
    watch_webhooks,
)
from services.notifications.adapters.webhook_transport import Resolver, system_resolver
from services.notifications.api.notificaties import router
from services.notifications.api.webhooks import router as webhook_router
from services.notifications.application import (
    Appointments,
    Notifications,
    Recipients,
    Sender,
    Tables,
    Webhooks,
)
from services.notifications.domain.webhooks import RetrySchedule
from services.notifications.gateway import to_public
from services.notifications.policies import policies
from shared.platform.contract_routes import contract_router
from shared.platform.eventstore import IN_MEMORY
from shared.platform.http import create_app
from shared.platform.model import Clock
from shared.platform.runtime import Components
from shared.platform.settings import Settings
from shared.platform.wiring import add_standard_readiness, make_auth, periodic, service_token


@dataclass
class NotificationsComponents(Components):
    """The service's components, plus the sender (tests drive it with ``run_once``)."""

    sender: Sender = field(kw_only=True)
    tables: Tables = field(kw_only=True)
    webhooks: Webhooks = field(kw_only=True)
    webhook_sender: WebhookSender = field(kw_only=True)


def application(env: dict[str, str]) -> Notifications:
    """Notifications' use cases on the store ``env`` names (PostgreSQL, or the in-memory store),
    with the service's own tables and the webhook store on that store."""
    if env.get("PERSISTENCE_MODULE") == IN_MEMORY:
        return Notifications(env, tables=projections.memory_tables, webhooks=memory_webhook_store)
    return Notifications(env, tables=projections.sql_tables, webhooks=sql_webhook_store)


def bootstrap(
    settings: Settings,
    clock: Clock,
    *,
    recipients: Recipients | None = None,
    appointments: Appointments | None = None,
    resolver: Resolver = system_resolver,
) -> NotificationsComponents:
    """Build the notifications service; `recipients` and `appointments` replace the claim-checks.

    `recipients` answers for the dossier's parties (intake by default); the secretariaat's address
    always comes from the settings. `resolver` is what the webhook sender asks for a callback
    host's addresses (the system's resolver by default).
    """
    app = application(settings.eventsourcing_env("notifications"))
    auth = make_auth(settings, app, app.with_dossier, clock)
    api = create_app(
        service="notifications",
        title="Weerbaar — notifications",
        version="1",
        max_body_bytes=settings.max_body_bytes,
    )
    api.include_router(contract_router())
    api.include_router(router(app, auth, clock))
    webhooks = Webhooks(
        app,
        clock,
        RetrySchedule(settings.webhook_retry_schedule_s, settings.webhook_jitter),
        settings.webhook_failing_after,
        allow_private=settings.webhook_allow_private_addresses,
        max_per_organisatie=settings.webhook_max_subscriptions,
    )
    if isinstance(app.webhook_store, SqlWebhookStore):
        watch_webhooks(app.webhook_store)
    api.include_router(webhook_router(webhooks, auth, clock))
    webhook_sender = WebhookSender(
        webhooks,
        clock,
        timeout_s=settings.webhook_timeout_s,
        allow_private=settings.webhook_allow_private_addresses,
        resolver=resolver,
    )
    add_standard_readiness(api, app, settings)

    token = service_token(settings, "notifications")
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
        RecipientDirectory(
            recipients or IntakeRecipients(settings.intake_url, token),
            settings.secretariaat_email,
        ),
        appointments or SchedulingAppointments(settings.scheduling_url, token),
        clock,
        message_id_domain=settings.smtp_from.rsplit("@", 1)[-1].strip(" >"),
        schema=RetrySchedule(settings.mail_retry_schedule_s, settings.mail_retry_jitter),
        organizer=settings.smtp_from,
        concurrency=settings.sender_concurrency,
        bevestiging_venster_s=settings.confirmation_mail_window_s,
    )
    return NotificationsComponents(
        service="notifications",
        app=app,
        api=api,
        gateway=to_public,
        projections=(projections.NOTIFICATIE,),
        subscriptions=policies(app, clock, webhooks),
        workers=[
            periodic("mail-sender", settings.sender_interval_s, sender.run_once),
            periodic("webhook-sender", settings.webhook_interval_s, webhook_sender.run_once),
        ],
        sender=sender,
        tables=app.tables,
        webhooks=webhooks,
        webhook_sender=webhook_sender,
    )
