"""Assessment's composition root."""

from __future__ import annotations

from services.assessment.api import router
from services.assessment.application import RAPPORT, Assessment
from services.assessment.gateway import to_public
from services.assessment.policies import policies
from shared.platform.contract_routes import contract_router
from shared.platform.http import create_app
from shared.platform.model import Clock
from shared.platform.parties import DossierParties
from shared.platform.register import register_subscription
from shared.platform.runtime import Components
from shared.platform.settings import Settings
from shared.platform.wiring import add_standard_readiness, make_auth, service_token


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
    return Components(
        service="assessment",
        app=app,
        api=api,
        gateway=to_public,
        projections=(RAPPORT,),
        subscriptions=[
            register_subscription(app.register),
            *policies(app, clock),
        ],
    )
