"""Scheduling's composition root."""

from __future__ import annotations

from dataclasses import replace

from services.scheduling.api import Parties, router
from services.scheduling.application import ReadModel, Scheduling
from services.scheduling.domain.calendar import WorkingDayCalendar, WorkingHours, profile_from_name
from services.scheduling.gateway import to_public
from services.scheduling.policies import policies
from services.scheduling.projections import PLANNING, MemoryReadModel, SqlReadModel
from shared.platform.auth import Refusal
from shared.platform.contract_routes import contract_router
from shared.platform.eventstore import IN_MEMORY
from shared.platform.http import create_app
from shared.platform.model import Clock
from shared.platform.parties import DossierParties
from shared.platform.runtime import Components
from shared.platform.settings import Settings
from shared.platform.wiring import add_standard_readiness, make_auth, periodic, service_token


def application(
    env: dict[str, str], calendar: WorkingDayCalendar, working_days: int = 3
) -> Scheduling:
    """Scheduling's use cases on the store ``env`` names (PostgreSQL, or the in-memory store),
    with the read model of that store."""
    read_model: ReadModel = (
        MemoryReadModel() if env.get("PERSISTENCE_MODULE") == IN_MEMORY else SqlReadModel()
    )
    return Scheduling(env, calendar, working_days, read_model=read_model)


def bootstrap(settings: Settings, clock: Clock, *, parties: Parties | None = None) -> Components:
    """Build the scheduling service (tests pass a fake for intake's party check)."""
    calendar = WorkingDayCalendar(
        profile_from_name(settings.calendar_profile),
        WorkingHours(start=settings.working_hours_start, end=settings.working_hours_end),
    )
    app = application(
        settings.eventsourcing_env("scheduling"), calendar, settings.contact_working_days
    )

    def with_dossier(refusal: Refusal) -> Refusal:
        # A refusal on /afspraken/{id} belongs in that appointment's dossier's audit trail.
        afspraak_id = refusal.ids.get("afspraak_id")
        if refusal.aanvraag_id is None and afspraak_id is not None:
            refusal = replace(refusal, aanvraag_id=app.aanvraag_van(afspraak_id))
        return refusal

    auth = make_auth(settings, app, with_dossier, clock)
    if parties is None:
        parties = DossierParties(settings.intake_url, service_token(settings, "scheduling"))
    api = create_app(
        service="scheduling",
        title="Weerbaar — scheduling",
        version="1",
        max_body_bytes=settings.max_body_bytes,
    )
    api.include_router(contract_router())
    api.include_router(router(app, auth, clock, parties))
    add_standard_readiness(api, app, settings)
    return Components(
        service="scheduling",
        app=app,
        api=api,
        gateway=to_public,
        projections=(PLANNING,),
        subscriptions=policies(app, clock),
        workers=[
            periodic(
                "deadline-checker",
                settings.deadline_check_interval_s,
                lambda: app.escalate_overdue(clock.now()),
            )
        ],
    )
