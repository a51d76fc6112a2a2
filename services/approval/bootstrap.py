"""Approval's composition root: the one place that wires the rooms together.

``application(env)`` builds the use cases on the store ``env`` names, with the read model
(``projections``) on the same store; ``bootstrap`` adds the HTTP API, the access log, the
reactions (``policies``) and the register's consumer for a running service. Approval has no
adapters of its own (intake's party check and the register are the platform's) and no commands
(its register is rebuilt by ``weerbaar replay --projection approval-register``).
"""

from __future__ import annotations

from services.approval import policies, projections
from services.approval.api import router
from services.approval.application import Approval
from services.approval.gateway import to_public
from shared.platform.contract_routes import contract_router
from shared.platform.http import create_app
from shared.platform.model import Clock
from shared.platform.parties import DossierParties
from shared.platform.runtime import Components
from shared.platform.settings import Settings
from shared.platform.wiring import add_standard_readiness, make_auth, service_token


def application(env: dict[str, str]) -> Approval:
    """Approval's use cases on the store ``env`` names (PostgreSQL, or the in-memory store)."""
    return Approval(env, register=projections.dossier_register)


def bootstrap(
    settings: Settings, clock: Clock, *, parties: DossierParties | None = None
) -> Components:
    """Build the approval service (tests pass a fake for intake's DossierParties)."""
    app = application(settings.eventsourcing_env("approval"))
    # Refusals on /rapporten/{rapport_id}/… name no dossier in the path: attribute them to the
    # report's dossier, so the dossier's audit trail shows them.
    auth = make_auth(settings, app, app.with_dossier, clock)
    if parties is None:
        parties = DossierParties(settings.intake_url, service_token(settings, "approval"))
    api = create_app(
        service="approval",
        title="Weerbaar — approval",
        version="1",
        max_body_bytes=settings.max_body_bytes,
    )
    api.include_router(contract_router())
    api.include_router(router(app, auth, clock, parties))
    add_standard_readiness(api, app, settings)
    return Components(
        service="approval",
        app=app,
        api=api,
        gateway=to_public,
        subscriptions=[
            projections.register_subscription(app.register),
            *policies.policies(app, clock),
        ],
    )
