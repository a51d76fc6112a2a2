"""The contact deadline on real PostgreSQL: escalated once, across restarts and replicas."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from psycopg.sql import SQL

from services.scheduling.application import Scheduling
from services.scheduling.bootstrap import application
from services.scheduling.domain.calendar import WorkingDayCalendar
from shared.platform.model import Context
from shared.platform.settings import Settings

pytestmark = pytest.mark.integration

# Friday 24 April 2026, 16:00 in Amsterdam: the weekend and Koningsdag (Monday 27 April) do not
# count, so the third working day is Thursday 30 April; the deadline is its end.
SUBMITTED = datetime(2026, 4, 24, 14, 0, tzinfo=UTC)
DEADLINE = datetime(2026, 4, 30, 22, 0, tzinfo=UTC)


def _verstreken(app: Scheduling, aanvraag_id: uuid.UUID) -> int:
    with app.datastore.get_connection() as conn:
        row = conn.execute(
            SQL(
                "SELECT count(*) AS n FROM scheduling.scheduling_events"
                " WHERE originator_id = %s AND topic LIKE '%%:ContacttermijnVerstreken'"
            ),
            (aanvraag_id,),
        ).fetchone()
    assert row is not None
    return int(row["n"])


def _open(app: Scheduling) -> uuid.UUID:
    aanvraag_id = uuid.uuid4()
    app.open(aanvraag_id, SUBMITTED, Context(now=SUBMITTED), ("test", str(aanvraag_id)))
    return aanvraag_id


def test_deadline_follows_the_calendar_and_escalates_once(settings: Settings) -> None:
    app = application(settings.eventsourcing_env("scheduling"), WorkingDayCalendar())
    aanvraag_id = _open(app)
    assert app.planning(aanvraag_id).deadline == DEADLINE

    assert app.escalate_overdue(DEADLINE - timedelta(seconds=1)) == 0
    assert app.escalate_overdue(DEADLINE) == 1
    assert app.escalate_overdue(DEADLINE + timedelta(hours=1)) == 0
    # A restarted service (a new application on the same database) does not escalate again.
    restarted = application(settings.eventsourcing_env("scheduling"), WorkingDayCalendar())
    assert restarted.escalate_overdue(DEADLINE + timedelta(days=1)) == 0
    assert _verstreken(app, aanvraag_id) == 1
    assert app.planning(aanvraag_id).contact_status == "verstreken"


def test_two_checkers_at_once_escalate_each_dossier_once(settings: Settings) -> None:
    replicas = [
        application(settings.eventsourcing_env("scheduling"), WorkingDayCalendar())
        for _ in range(2)
    ]
    ids = [_open(replicas[0]) for _ in range(30)]
    after = DEADLINE + timedelta(minutes=5)
    with ThreadPoolExecutor(2) as pool:
        recorded = sum(pool.map(lambda app: app.escalate_overdue(after), replicas))
    assert recorded == len(ids)
    assert all(_verstreken(replicas[0], aanvraag_id) == 1 for aanvraag_id in ids)


def test_contact_in_time_prevents_escalation(settings: Settings) -> None:
    app = application(settings.eventsourcing_env("scheduling"), WorkingDayCalendar())
    aanvraag_id = _open(app)
    planning = app.neem_contact_op(aanvraag_id, Context(now=DEADLINE - timedelta(hours=2)))
    assert planning.contact_status == "opgenomen"
    assert app.escalate_overdue(DEADLINE + timedelta(days=2)) == 0
    assert _verstreken(app, aanvraag_id) == 0
