"""Intake's composition root: the one place that wires the rooms together.

``application(env)`` builds the use cases on the store ``env`` names, with that store's read
model (``projections.read_model``: PostgreSQL's tables, or the in-memory store's); ``bootstrap``
adds the HTTP API, the dossier projection's consumer, the closing policy (``policies``) and, at
every start, forgets again what the forget record says was forgotten (``ops.forget.reapply``).
"""

from __future__ import annotations

from services.intake.adapters import verify_chains
from services.intake.api import compliance_router, internal_router, router
from services.intake.application import Intake, ReadModel, RegistrationLimits
from services.intake.gateway import to_public
from services.intake.ops.forget import reapply
from services.intake.policies import policies
from services.intake.projections import dossier
from services.intake.projections.audit import Ketencontrole
from services.intake.projections.read_model import MemoryReadModel, SqlReadModel
from shared.platform.contract_routes import contract_router
from shared.platform.eventstore import IN_MEMORY, ServiceApplication
from shared.platform.http import create_app
from shared.platform.model import Clock
from shared.platform.runtime import Components
from shared.platform.settings import Settings
from shared.platform.wiring import add_standard_readiness, make_auth


def application(env: dict[str, str]) -> Intake:
    """Intake's use cases on the store ``env`` names (PostgreSQL, or the in-memory store), with
    the read model of that store."""
    in_memory = env.get("PERSISTENCE_MODULE") == IN_MEMORY

    def read_model(app: ServiceApplication) -> ReadModel:
        return MemoryReadModel() if in_memory else SqlReadModel(app)

    return Intake(env, read_model=read_model)


def bootstrap(settings: Settings, clock: Clock) -> Components:
    """Build the intake service."""
    app = application(settings.eventsourcing_env("intake"))
    # A restore of a backup older than a forget must not bring the person back: every start
    # forgets again what the record beside the KEKs says was forgotten (logged, and recorded
    # again where the restored history lacks it).
    reapply(settings, app)
    auth = make_auth(settings, app, clock=clock)
    api = create_app(
        service="intake",
        title="Weerbaar — intake",
        version="1",
        max_body_bytes=settings.max_body_bytes,
    )
    api.include_router(contract_router())
    limits = RegistrationLimits(
        app,
        settings.registration_window_s,
        settings.registrations_per_source,
        settings.registrations_per_address,
    )
    api.include_router(router(app, auth, clock, limits))
    ketencontrole = Ketencontrole(
        lambda: verify_chains(settings), clock, settings.chain_verification_max_age_s
    )
    api.include_router(compliance_router(app, auth, clock, ketencontrole))
    api.include_router(internal_router(app, auth, clock))
    add_standard_readiness(api, app, settings)
    return Components(
        service="intake",
        app=app,
        api=api,
        gateway=to_public,
        subscriptions=[dossier.subscription(app), *policies(app, clock)],
    )
