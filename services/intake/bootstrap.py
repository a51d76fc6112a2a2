"""Intake's composition root: the one place that wires its parts together."""

from __future__ import annotations

from services.intake.api import router
from services.intake.application import Intake
from services.intake.gateway import to_public
from services.intake.projections import DDL, DossierProjection
from shared.consumer import Subscription
from shared.eventstore import Clock
from shared.http import create_app
from shared.runtime import Components
from shared.settings import Settings
from shared.wiring import add_standard_readiness, make_auth


class IntakeWithProjection(Intake):
    """Intake plus the tables of its dossier projection."""

    ddl = (*Intake.ddl, *DDL)


def bootstrap(settings: Settings, clock: Clock) -> Components:
    """Build the intake service."""
    app = IntakeWithProjection(settings.eventsourcing_env("intake"))
    auth = make_auth(settings, app)
    api = create_app(
        service="intake",
        title="Weerbaar — intake",
        version="1",
        max_body_bytes=settings.max_body_bytes,
    )
    api.include_router(router(app, auth, clock))
    add_standard_readiness(api, app, settings)
    projection = DossierProjection(app)
    return Components(
        service="intake",
        app=app,
        api=api,
        gateway=to_public,
        subscriptions=[
            Subscription(
                purpose="dossier",
                subjects=["weerbaar.>"],
                handler=projection.handle,
                description="The dossier projection: every public event of every service.",
            )
        ],
    )
