"""Scheduling's composition root."""

from __future__ import annotations

from services.scheduling.api import router
from services.scheduling.application import Scheduling
from services.scheduling.gateway import to_public
from shared.calendar import WorkingDayCalendar, profile_from_name
from shared.consumer import Delivery, Subscription
from shared.contracts import events as public
from shared.eventstore import Clock
from shared.http import create_app
from shared.runtime import Components
from shared.settings import Settings
from shared.wiring import add_standard_readiness, delivery_context, make_auth, periodic


def bootstrap(settings: Settings, clock: Clock) -> Components:
    """Build the scheduling service."""
    calendar = WorkingDayCalendar(profile_from_name(settings.calendar_profile))
    app = Scheduling(
        settings.eventsourcing_env("scheduling"), calendar, settings.contact_working_days
    )
    auth = make_auth(settings, app)
    api = create_app(
        service="scheduling",
        title="Weerbaar — scheduling",
        version="1",
        max_body_bytes=settings.max_body_bytes,
    )
    api.include_router(router(app, auth, clock))
    add_standard_readiness(api, app, settings)

    def on_aanvraag(delivery: Delivery) -> None:
        ctx = delivery_context(delivery, clock, "scheduling")
        inbox = ("scheduling-planning", delivery.envelope.id)
        event = delivery.event
        if isinstance(event, public.AanvraagIngediend):
            app.open(event.aanvraag_id, event.ingediend_op, ctx, inbox)
        elif isinstance(event, public.AanvraagIngetrokken):
            app.stop(event.aanvraag_id, ctx, inbox)

    return Components(
        service="scheduling",
        app=app,
        api=api,
        gateway=to_public,
        subscriptions=[
            Subscription(
                purpose="planning",
                subjects=[
                    "weerbaar.intake.AanvraagIngediend.*",
                    "weerbaar.intake.AanvraagIngetrokken.*",
                ],
                handler=on_aanvraag,
                description="Opens the planning and its contact deadline; stops it on withdrawal.",
            )
        ],
        workers=[
            periodic(
                "deadline-checker",
                settings.deadline_check_interval_s,
                lambda: app.escalate_overdue(clock.now()),
            )
        ],
    )
