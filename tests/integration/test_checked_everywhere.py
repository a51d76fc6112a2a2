"""Every way of building a service's application checks what it records (review finding: the
check before commit was installed by the runtime's ``Components`` only, so the command-line tools
that build an application themselves recorded without it).

Each service's application is built here as those tools build it, not through its composition
root: an event without a valid public form is refused and nothing is stored. ``weerbaar forget``
and ``weerbaar retention`` then run as on the command line, on the in-process system's database,
with a defect in intake's gateway for the event they record; once it is fixed they do their work.
(``weerbaar mail resend``: ``tests/integration/test_notifications_process.py``.) The runtime
refuses to relay with another gateway than the one the application checks with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from uuid import UUID, uuid4

import pytest
from fastapi import FastAPI
from psycopg.sql import SQL

from services.approval.bootstrap import application as approval_application
from services.assessment.bootstrap import application as assessment_application
from services.intake import application as intake_application
from services.intake.bootstrap import application as intake
from services.intake.domain import GegevensVernietigd, PersoonsgegevensVergeten
from services.intake.gateway import to_public as intake_gateway
from services.intake.ops import retention
from services.intake.ops.forget import forget
from services.intake.projections.dossier import EVENTS
from services.notifications.bootstrap import application as notifications
from services.scheduling.bootstrap import application as scheduling_application
from services.scheduling.domain.calendar import WorkingDayCalendar
from shared.platform.access import ToegangGeweigerdVastgelegd
from shared.platform.errors import NietPubliceerbaar
from shared.platform.eventstore import ServiceApplication
from shared.platform.model import Context, first_event, utcnow
from shared.platform.runtime import Components
from shared.platform.settings import SERVICES
from tests.integration.inprocess import InProcessSystem
from tests.support import gateway_defect

pytestmark = pytest.mark.integration

BUILD: dict[str, Callable[[dict[str, str]], ServiceApplication]] = {
    "intake": intake,
    "scheduling": lambda env: scheduling_application(env, WorkingDayCalendar()),
    "assessment": assessment_application,
    "approval": approval_application,
    "notifications": notifications,
}


@pytest.fixture(scope="module")
def system(inprocess_system: InProcessSystem) -> InProcessSystem:
    """The five services in one process, on a database of their own (this module's)."""
    return inprocess_system


def _refusal(actor_role: str) -> ToegangGeweigerdVastgelegd:
    """A refusal every service records and announces (ToegangGeweigerd)."""
    return first_event(
        ToegangGeweigerdVastgelegd,
        uuid4(),
        Context(now=utcnow(), actor_role=actor_role),
        aanvraag_id=None,
        actie="GET /aanvragen/{aanvraag_id}",
        reden="missing_role",
        status_code=403,
    )


@pytest.mark.parametrize("service", SERVICES)
def test_an_application_built_without_the_runtime_refuses_what_it_cannot_publish(
    system: InProcessSystem, service: str
) -> None:
    app = BUILD[service](system.settings.eventsourcing_env(service))
    try:
        mark = app.max_notification_id()
        with pytest.raises(NietPubliceerbaar):
            app.record(_refusal(actor_role=""))  # the contract refuses an empty role
        assert app.max_notification_id() == mark, "nothing stored"
        app.record(_refusal(actor_role="secretariaat"))
        assert app.max_notification_id() > mark, "a publishable event is stored"
    finally:
        app.close()


def test_forget_on_the_command_line_refuses_what_it_cannot_publish(
    system: InProcessSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    dossier = system.dossier()
    intake = system.components["intake"].app
    mark = system.mark("intake")
    monkeypatch.setattr(
        intake_application, "to_public", gateway_defect(PersoonsgegevensVergeten, intake_gateway)
    )
    with pytest.raises(NietPubliceerbaar):
        forget(system.settings, dossier.aanvraag_id, "beheerder-7", "verzoek_betrokkene")
    assert system.mark("intake") == mark, "nothing stored"
    key = intake.keys.status(dossier.aanvraag_id)
    assert key is not None and key.destroyed_at is None, "intake's key goes only with the event"

    monkeypatch.undo()  # the fixed release: the same command finishes the run
    done = forget(system.settings, dossier.aanvraag_id, "beheerder-7", "verzoek_betrokkene")
    assert done.vastgelegd
    stored = system.stored_since("intake", mark)
    assert [type(e) for e in stored] == [PersoonsgegevensVergeten]


def _entries(system: InProcessSystem, aanvraag_id: UUID) -> list[str]:
    """The event types of a dossier's entries in intake's read model."""
    with system.components["intake"].app.datastore.get_connection() as conn:
        rows = conn.execute(
            SQL("SELECT type FROM {} WHERE aanvraag_id = %s").format(EVENTS), (aanvraag_id,)
        ).fetchall()
    return sorted(str(row["type"]).split(".")[-2] for row in rows)


def test_retention_on_the_command_line_refuses_what_it_cannot_publish(
    system: InProcessSystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    dossier = system.dossier("ingetrokken")  # ended: its history can expire
    before = _entries(system, dossier.aanvraag_id)
    assert "AanvraagIngetrokken" in before
    # The command's environment: this system's servers, the withdrawal kept one day.
    for key in list(os.environ):
        if key.startswith("WEERBAAR_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("WEERBAAR_DATABASE_URL", system.settings.database_url)
    monkeypatch.setenv("WEERBAAR_NATS_URL", system.settings.nats_url)
    monkeypatch.setenv("WEERBAAR_DATA_DIR", str(system.settings.data_dir))
    monkeypatch.setenv("WEERBAAR_RETENTION_DAYS", json.dumps({"AanvraagIngetrokken": 1}))
    mark = system.mark("intake")
    with monkeypatch.context() as defect:
        defect.setattr(
            intake_application, "to_public", gateway_defect(GegevensVernietigd, intake_gateway)
        )
        with pytest.raises(NietPubliceerbaar):
            retention.main(["--apply"], out=lambda line: None)
    assert system.mark("intake") == mark, "nothing stored"
    assert _entries(system, dossier.aanvraag_id) == before, "nothing destroyed"

    said: list[str] = []
    assert retention.main(["--apply"], out=said.append) == 0
    assert [type(e) for e in system.stored_since("intake", mark)] == [GegevensVernietigd]
    after = _entries(system, dossier.aanvraag_id)
    assert "AanvraagIngetrokken" not in after
    assert len(after) == len(before) - 1
    assert any("AanvraagIngetrokken vernietigd" in line for line in said)


def test_the_runtime_refuses_to_publish_with_another_gateway_than_the_check_uses(
    system: InProcessSystem,
) -> None:
    intake = system.components["intake"].app
    other = gateway_defect(PersoonsgegevensVergeten, intake_gateway)
    with pytest.raises(ValueError, match="another gateway"):
        Components(service="intake", app=intake, api=FastAPI(), gateway=other)
    same = Components(service="intake", app=intake, api=FastAPI(), gateway=intake_gateway)
    assert same.app.publication_check is intake.publication_check
