"""Approval's composition root."""

from __future__ import annotations

from services.approval.api import router
from services.approval.application import Approval
from services.approval.gateway import to_public
from shared.contracts import events as public
from shared.platform.consumer import Delivery, Subscription
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

RAPPORT_SUBJECTS = (
    "weerbaar.assessment.RapportOpgesteld.*",
    "weerbaar.assessment.RapportHerzien.*",
    "weerbaar.assessment.RapportTerToetsingAangeboden.*",
)


def bootstrap(
    settings: Settings, clock: Clock, *, parties: DossierParties | None = None
) -> Components:
    """Build the approval service (tests pass a fake for intake's DossierParties)."""
    app = Approval(settings.eventsourcing_env("approval"))
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

    def on_rapport(delivery: Delivery) -> None:
        ctx = delivery_context(delivery, clock, "approval")
        inbox = ("approval-rapporten", delivery.envelope.id)
        # The envelope names who drafted, revised or submitted the version: four-eyes needs it.
        auteur_id = delivery.envelope.actorid
        event = delivery.event
        if isinstance(event, public.RapportOpgesteld | public.RapportHerzien):
            app.neem_bewerking_op(
                event.rapport_id, event.aanvraag_id, event.versie, auteur_id, ctx, inbox
            )
        elif isinstance(event, public.RapportTerToetsingAangeboden):
            app.ontvang_ter_toetsing(
                event.rapport_id,
                event.aanvraag_id,
                event.versie,
                event.inhoud_hash,
                auteur_id,
                delivery.envelope.time,
                ctx,
                inbox,
            )

    return Components(
        service="approval",
        app=app,
        api=api,
        gateway=to_public,
        subscriptions=[
            register_subscription(app.register),
            Subscription(
                purpose="rapporten",
                subjects=list(RAPPORT_SUBJECTS),
                handler=on_rapport,
                description="Follows the report's versions, their content hashes and writers.",
            ),
        ],
    )
