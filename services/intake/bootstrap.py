"""Intake's composition root: the one place that wires its parts together."""

from __future__ import annotations

import contextlib
from uuid import UUID

from services.intake.api import compliance_router, internal_router, router
from services.intake.application import Intake, RegistrationLimits
from services.intake.audit_export import verify_chains
from services.intake.forget import reapply
from services.intake.gateway import to_public
from services.intake.projections import DDL, UITVOERING_SUBJECTS, Afsluiting, DossierProjection
from shared.platform.consumer import Delivery, Subscription
from shared.platform.contract_routes import contract_router
from shared.platform.errors import Conflict
from shared.platform.http import create_app
from shared.platform.model import Clock
from shared.platform.runtime import Components
from shared.platform.settings import Settings
from shared.platform.wiring import add_standard_readiness, delivery_context, make_auth


class IntakeWithProjection(Intake):
    """Intake plus the tables of its dossier projection."""

    ddl = (*Intake.ddl, *DDL)


def bootstrap(settings: Settings, clock: Clock) -> Components:
    """Build the intake service."""
    app = IntakeWithProjection(settings.eventsourcing_env("intake"))
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
    api.include_router(compliance_router(app, auth, clock, lambda: verify_chains(settings)))
    api.include_router(internal_router(app, auth, clock))
    add_standard_readiness(api, app, settings)
    projection = DossierProjection(app)

    def close_when_done(
        aanvraag_id: UUID, totaal: int, uitgevoerd: int, delivery: Delivery
    ) -> None:
        ctx = delivery_context(delivery, clock, "intake")
        # A withdrawn dossier is not closed (Conflict): nothing to do.
        with contextlib.suppress(Conflict):
            app.sluit_dossier_af(
                aanvraag_id, "alle_maatregelen_uitgevoerd", None, totaal, uitgevoerd, ctx
            )

    afsluiting = Afsluiting(app, close_when_done)
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
                batch_handler=projection.handle_batch,
                description="The dossier projection: every public event of every service.",
            ),
            Subscription(
                purpose="afsluiting",
                subjects=list(UITVOERING_SUBJECTS),
                handler=afsluiting.handle,
                description="Closes the dossier when every measure of the approved report is done.",
            ),
        ],
    )
