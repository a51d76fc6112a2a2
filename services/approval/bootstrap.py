"""Approval's composition root."""

from __future__ import annotations

from services.approval.api import router
from services.approval.application import Approval
from services.approval.gateway import to_public
from shared.consumer import Subscription
from shared.eventstore import Clock
from shared.http import create_app
from shared.register import SUBJECTS, DossierRegister
from shared.runtime import Components
from shared.settings import Settings
from shared.wiring import add_standard_readiness, make_auth


def bootstrap(settings: Settings, clock: Clock) -> Components:
    """Build the approval service."""
    app = Approval(settings.eventsourcing_env("approval"))
    auth = make_auth(settings, app)
    api = create_app(
        service="approval",
        title="Weerbaar — approval",
        version="1",
        max_body_bytes=settings.max_body_bytes,
    )
    register = DossierRegister(app)
    api.include_router(router(register, auth))
    add_standard_readiness(api, app, settings)
    return Components(
        service="approval",
        app=app,
        api=api,
        gateway=to_public,
        subscriptions=[
            Subscription(
                purpose="register",
                subjects=list(SUBJECTS),
                handler=register.handle,
                description="Keeps the register of dossiers this service may act on.",
            )
        ],
    )
