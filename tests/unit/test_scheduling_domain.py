"""Scheduling's domain: the contact deadline, contact, escalation once, and stopping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from services.scheduling.domain import (
    ContactOpgenomen,
    ContacttermijnVerstreken,
    Planning,
    PlanningGeopend,
    PlanningGestopt,
    neem_contact_op,
    open_planning,
    project,
    stel_verstrijken_vast,
    stop,
)
from shared.platform.errors import Conflict
from shared.platform.model import Context, DomainEvent

INGEDIEND = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)  # a Monday
DEADLINE = datetime(2026, 3, 4, 23, 0, tzinfo=UTC)  # end of Wednesday, Amsterdam
BINNEN = DEADLINE - timedelta(hours=1)
NA = DEADLINE + timedelta(hours=1)


def at(moment: datetime) -> Context:
    return Context(now=moment, actor_id="sec-1", actor_role="secretariaat")


def geopend() -> Planning:
    event = open_planning(uuid4(), INGEDIEND, DEADLINE, 3, "algemene_termijnenwet", at(INGEDIEND))
    planning = project(None, [event])
    assert planning is not None
    return planning


def apply(planning: Planning, event: DomainEvent | None) -> Planning:
    assert event is not None
    after = project(planning, [event])
    assert after is not None
    return after


def test_open_planning_starts_open_with_its_deadline() -> None:
    aanvraag_id = uuid4()
    event = open_planning(
        aanvraag_id, INGEDIEND, DEADLINE, 3, "algemene_termijnenwet", at(INGEDIEND)
    )
    assert isinstance(event, PlanningGeopend)
    assert (event.originator_id, event.originator_version) == (aanvraag_id, 1)
    assert (event.ingediend_op, event.deadline, event.werkdagen) == (INGEDIEND, DEADLINE, 3)
    planning = project(None, [event])
    assert planning is not None
    assert planning.id == aanvraag_id
    assert planning.deadline == DEADLINE
    assert planning.contact_status == "open"


@pytest.mark.parametrize(
    ("moment", "binnen_termijn"),
    [
        (INGEDIEND, True),
        (BINNEN, True),
        (DEADLINE - timedelta(microseconds=1), True),
        (DEADLINE, False),  # the deadline is the first late moment
        (NA, False),
        (DEADLINE + timedelta(days=30), False),
    ],
)
def test_contact_says_whether_it_was_within_the_deadline(
    moment: datetime, binnen_termijn: bool
) -> None:
    planning = geopend()
    event = neem_contact_op(planning, at(moment))
    assert isinstance(event, ContactOpgenomen)
    assert event.contact_op == moment
    assert event.binnen_termijn is binnen_termijn
    assert event.originator_version == planning.version + 1
    assert apply(planning, event).contact_status == "opgenomen"


def test_contact_recorded_twice_has_one_effect() -> None:
    planning = apply(geopend(), neem_contact_op(geopend(), at(BINNEN)))
    assert neem_contact_op(planning, at(NA)) is None
    assert planning.contact_op == BINNEN


def test_contact_after_stop_is_a_conflict() -> None:
    planning = geopend()
    gestopt = apply(planning, stop(planning, at(BINNEN)))
    with pytest.raises(Conflict):
        neem_contact_op(gestopt, at(BINNEN))


def test_contact_after_the_deadline_was_escalated_is_still_recorded_as_late() -> None:
    planning = geopend()
    verstreken = apply(planning, stel_verstrijken_vast(planning, at(NA)))
    event = neem_contact_op(verstreken, at(NA + timedelta(hours=2)))
    assert isinstance(event, ContactOpgenomen)
    assert event.binnen_termijn is False
    assert apply(verstreken, event).contact_status == "opgenomen"


@pytest.mark.parametrize("moment", [INGEDIEND, BINNEN, DEADLINE - timedelta(microseconds=1)])
def test_nothing_to_escalate_before_the_deadline(moment: datetime) -> None:
    assert stel_verstrijken_vast(geopend(), at(moment)) is None


@pytest.mark.parametrize("moment", [DEADLINE, NA, DEADLINE + timedelta(days=30)])
def test_missed_deadline_is_escalated_once(moment: datetime) -> None:
    planning = geopend()
    event = stel_verstrijken_vast(planning, at(moment))
    assert isinstance(event, ContacttermijnVerstreken)
    assert event.deadline == DEADLINE
    assert event.vastgesteld_op == moment
    verstreken = apply(planning, event)
    assert verstreken.contact_status == "verstreken"
    assert stel_verstrijken_vast(verstreken, at(moment + timedelta(hours=1))) is None


def test_no_escalation_after_contact() -> None:
    planning = geopend()
    met_contact = apply(planning, neem_contact_op(planning, at(BINNEN)))
    assert stel_verstrijken_vast(met_contact, at(NA)) is None


def test_no_escalation_after_late_contact() -> None:
    planning = geopend()
    met_contact = apply(planning, neem_contact_op(planning, at(NA)))
    assert stel_verstrijken_vast(met_contact, at(NA + timedelta(hours=1))) is None


def test_no_escalation_after_stop() -> None:
    planning = geopend()
    gestopt = apply(planning, stop(planning, at(BINNEN)))
    assert stel_verstrijken_vast(gestopt, at(NA)) is None


def test_stop_once() -> None:
    planning = geopend()
    event = stop(planning, at(BINNEN))
    assert isinstance(event, PlanningGestopt)
    gestopt = apply(planning, event)
    assert gestopt.contact_status == "gestopt"
    assert stop(gestopt, at(NA)) is None


def test_project_folds_every_event_kind_with_versions() -> None:
    aanvraag_id = uuid4()
    events: list[DomainEvent] = [
        open_planning(aanvraag_id, INGEDIEND, DEADLINE, 3, "algemene_termijnenwet", at(INGEDIEND))
    ]
    planning = project(None, events)
    assert planning is not None
    for make in (
        lambda p: stel_verstrijken_vast(p, at(NA)),
        lambda p: neem_contact_op(p, at(NA + timedelta(hours=1))),
        lambda p: stop(p, at(NA + timedelta(hours=2))),
    ):
        event = make(planning)
        assert event is not None
        events.append(event)
        planning = apply(planning, event)

    rebuilt = project(None, events)
    assert rebuilt == planning
    assert rebuilt is not None
    assert rebuilt.version == 4
    assert rebuilt.verstreken is True
    assert rebuilt.contact_op == NA + timedelta(hours=1)
    assert rebuilt.gestopt is True
    assert rebuilt.contact_status == "gestopt"  # stopping wins over every other state
