"""Assessment's composition root."""

from __future__ import annotations

import logging

from services.assessment.api import router
from services.assessment.application import RAPPORT, Assessment, OnbekendBesluit
from services.assessment.gateway import to_public
from shared.contracts import events as public
from shared.platform.consumer import Delivery, Poison, Subscription
from shared.platform.contract_routes import contract_router
from shared.platform.http import create_app
from shared.platform.model import Clock
from shared.platform.parties import DossierParties
from shared.platform.register import register_subscription
from shared.platform.runtime import Components
from shared.platform.settings import Settings
from shared.platform.wiring import (
    add_standard_readiness,
    delivery_context,
    make_auth,
    service_token,
)

log = logging.getLogger(__name__)

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


def bootstrap(
    settings: Settings, clock: Clock, *, parties: DossierParties | None = None
) -> Components:
    """Build the assessment service (tests pass a fake for intake's parties API)."""
    app = Assessment(settings.eventsourcing_env("assessment"))
    # Refusals on /rapporten/{id} and /maatregelen/{id} are recorded with their dossier.
    auth = make_auth(settings, app, app.with_dossier, clock)
    if parties is None:
        parties = DossierParties(settings.intake_url, service_token(settings, "assessment"))
    api = create_app(
        service="assessment",
        title="Weerbaar — assessment",
        version="1",
        max_body_bytes=settings.max_body_bytes,
    )
    api.include_router(contract_router())
    api.include_router(router(app, auth, parties, clock))
    add_standard_readiness(api, app, settings)

    def on_onderzoek(delivery: Delivery) -> None:
        ctx = delivery_context(delivery, clock, "assessment")
        inbox = ("assessment-onderzoek", delivery.envelope.id)
        event = delivery.event
        if isinstance(event, public.GesprekGevoerd):
            app.noteer_gesprek(event, ctx, inbox)
        elif isinstance(event, public.WoningscanUitgevoerd):
            app.noteer_woningscan(event, ctx, inbox)

    def on_besluit(delivery: Delivery) -> None:
        ctx = delivery_context(delivery, clock, "assessment")
        inbox = ("assessment-besluiten", delivery.envelope.id)
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
            app.noteer_besluit(event, ctx, inbox)
        except OnbekendBesluit as exc:
            log.error(
                "decision does not match a submitted report version",
                extra={"event_id": delivery.envelope.id, "problem": str(exc)},
            )
            raise Poison("besluit_past_niet") from None

    return Components(
        service="assessment",
        app=app,
        api=api,
        gateway=to_public,
        projections=(RAPPORT,),
        subscriptions=[
            register_subscription(app.register),
            Subscription(
                purpose="onderzoek",
                subjects=list(ONDERZOEK_SUBJECTS),
                handler=on_onderzoek,
                description="Notes the conversations and the woningscan the report must wait for.",
            ),
            Subscription(
                purpose="besluiten",
                subjects=list(BESLUIT_SUBJECTS),
                handler=on_besluit,
                description="Notes approval's decisions: the report's state and who may read it.",
            ),
        ],
    )
