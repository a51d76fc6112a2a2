"""Assessment's composition root: the one place that wires the rooms together.

``application(env)`` builds the use cases on the store ``env`` names, with the read model
(``projections``: its tables in PostgreSQL, or its rows in memory) on the same store;
``bootstrap`` adds the HTTP API, the access log, the reactions to other services' events
(``policies``) and the register's consumer for a running service. Assessment has no adapters of
its own (intake's party check, the register and the idempotency keys are the platform's) and no
commands of its own (``replay`` is the runtime's).
"""

from __future__ import annotations

from services.assessment import projections
from services.assessment.api import router
from services.assessment.application import Assessment, Inzagelimiet, ReadModel
from services.assessment.gateway import to_public
from services.assessment.policies import policies
from shared.platform.contract_routes import contract_router
from shared.platform.eventstore import ServiceApplication
from shared.platform.http import create_app
from shared.platform.model import Clock
from shared.platform.parties import DossierParties
from shared.platform.runtime import Components
from shared.platform.settings import Settings
from shared.platform.wiring import add_standard_readiness, make_auth, service_token


def read_model(app: ServiceApplication) -> ReadModel:
    """The read tables on the application's store: in PostgreSQL, or in memory."""
    return projections.MemoryReadTables() if app.in_memory else projections.ReadTables(app)


def application(env: dict[str, str]) -> Assessment:
    """Assessment's use cases on the store ``env`` names (PostgreSQL, or the in-memory store),
    with the read model and the register of that store."""
    return Assessment(env, read_model=read_model, register=projections.dossier_register)


def bootstrap(
    settings: Settings, clock: Clock, *, parties: DossierParties | None = None
) -> Components:
    """Build the assessment service (tests pass a fake for intake's parties API)."""
    app = application(settings.eventsourcing_env("assessment"))
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
    inzage = Inzagelimiet(app, settings.report_reads_per_hour)
    api.include_router(router(app, auth, parties, clock, inzage))
    add_standard_readiness(api, app, settings)
    return Components(
        service="assessment",
        app=app,
        api=api,
        gateway=to_public,
        projections=(projections.RAPPORT,),
        subscriptions=[
            projections.register_subscription(app.register),
            *policies(app, clock),
        ],
    )
