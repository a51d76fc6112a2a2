"""Notifications' domain: one id per notification, retries with backoff, final failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from services.notifications.domain import (
    Notificatie,
    NotificatieGepland,
    NotificatieMislukt,
    NotificatieVerzonden,
    backoff,
    mislukt,
    notificatie_id,
    plan,
    project,
    verzonden,
)
from shared.eventstore import Context

NU = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
CTX = Context(now=NU, causation_id="ev-1")
MAX = 5


def gepland(soort: str = "bevestiging_aanvraag") -> Notificatie:
    event = plan(uuid4(), soort, "aanvrager", "ev-1", {"contact_deadline": "2026-03-04"}, CTX)
    notificatie = project(None, [event])
    assert notificatie is not None
    return notificatie


def na_mislukte(notificatie: Notificatie, aantal: int) -> Notificatie:
    for _ in range(aantal):
        event = mislukt(notificatie, "smtp_timeout", permanent=False, max_pogingen=MAX, ctx=CTX)
        after = project(notificatie, [event])
        assert after is not None
        notificatie = after
    return notificatie


# --- identity ------------------------------------------------------------------------------------


def test_notificatie_id_is_stable_across_processes_and_releases() -> None:
    # A changed id would plan every notification again on a replay: people get the mail twice.
    assert notificatie_id("ev-1", "bevestiging_aanvraag", "aanvrager") == UUID(
        "46efcd18-b5b3-5dd8-87d0-a6a122727d20"
    )


def test_notificatie_id_differs_per_cause_soort_and_ontvanger() -> None:
    ids = {
        notificatie_id("ev-1", "bevestiging_aanvraag", "aanvrager"),
        notificatie_id("ev-2", "bevestiging_aanvraag", "aanvrager"),
        notificatie_id("ev-1", "afspraak_bevestiging", "aanvrager"),
        notificatie_id("ev-1", "bevestiging_aanvraag", "bestuurder"),
        notificatie_id("ev-1", "bevestiging_aanvraag", "werkgever"),
    }
    assert len(ids) == 5


def test_planning_the_same_notification_twice_gives_the_same_aggregate_id() -> None:
    first = plan(uuid4(), "bevestiging_aanvraag", "aanvrager", "ev-1", {}, CTX)
    again = plan(uuid4(), "bevestiging_aanvraag", "aanvrager", "ev-1", {}, CTX)
    assert isinstance(first, NotificatieGepland)
    assert (first.originator_id, first.originator_version) == (again.originator_id, 1)
    assert first.originator_id == notificatie_id("ev-1", "bevestiging_aanvraag", "aanvrager")


# --- attempts ------------------------------------------------------------------------------------


def test_a_failed_attempt_before_the_last_is_retried_later() -> None:
    notificatie = gepland()
    event = mislukt(notificatie, "smtp_timeout", permanent=False, max_pogingen=MAX, ctx=CTX)
    assert isinstance(event, NotificatieMislukt)
    assert event.poging == 1
    assert event.definitief is False
    assert event.volgende_poging == NU + backoff(1)
    assert event.reden_code == "smtp_timeout"


@pytest.mark.parametrize("max_pogingen", [1, 3, 5])
def test_the_attempt_at_max_pogingen_is_final(max_pogingen: int) -> None:
    notificatie = gepland()
    for poging in range(1, max_pogingen + 1):
        event = mislukt(
            notificatie, "smtp_timeout", permanent=False, max_pogingen=max_pogingen, ctx=CTX
        )
        assert event.poging == poging
        assert event.definitief is (poging == max_pogingen)
        assert (event.volgende_poging is None) is (poging == max_pogingen)
        after = project(notificatie, [event])
        assert after is not None
        notificatie = after
    assert notificatie.status == "mislukt"
    assert notificatie.pogingen == max_pogingen


def test_a_permanent_error_is_final_at_once() -> None:
    event = mislukt(gepland(), "adres_onbekend", permanent=True, max_pogingen=MAX, ctx=CTX)
    assert event.poging == 1
    assert event.definitief is True
    assert event.volgende_poging is None


def test_a_failure_event_describes_its_notification() -> None:
    notificatie = gepland("afspraak_bevestiging")
    event = mislukt(notificatie, "smtp_timeout", permanent=False, max_pogingen=MAX, ctx=CTX)
    assert event.originator_id == notificatie.id
    assert event.originator_version == 2
    assert (event.aanvraag_id, event.soort, event.ontvanger, event.oorzaak_event_id) == (
        notificatie.aanvraag_id,
        "afspraak_bevestiging",
        "aanvrager",
        "ev-1",
    )


def test_success_counts_the_attempt_it_took() -> None:
    notificatie = na_mislukte(gepland(), 2)
    event = verzonden(notificatie, CTX)
    assert isinstance(event, NotificatieVerzonden)
    assert event.poging == 3
    assert event.originator_version == 4


# --- backoff -------------------------------------------------------------------------------------


def test_backoff_doubles_per_attempt() -> None:
    assert [backoff(p).total_seconds() for p in range(1, 6)] == [2, 4, 8, 16, 32]


def test_backoff_grows_until_it_is_capped_at_an_hour() -> None:
    waits = [backoff(p) for p in range(1, 40)]
    assert waits == sorted(waits)
    assert max(waits) == timedelta(hours=1)
    assert backoff(11) == timedelta(seconds=2048)
    assert backoff(12) == timedelta(hours=1)  # 4096 s is capped
    assert backoff(10_000) == timedelta(hours=1)


# --- status --------------------------------------------------------------------------------------


def test_project_planned_notification() -> None:
    aanvraag_id = uuid4()
    event = plan(aanvraag_id, "bevestiging_aanvraag", "aanvrager", "ev-1", {"n": 1}, CTX)
    notificatie = project(None, [event])
    assert notificatie is not None
    assert notificatie.status == "gepland"
    assert notificatie.pogingen == 0
    assert notificatie.aanvraag_id == aanvraag_id
    assert notificatie.parameters == {"n": 1}
    assert notificatie.version == 1


def test_a_retryable_failure_keeps_it_planned() -> None:
    notificatie = na_mislukte(gepland(), 1)
    assert notificatie.status == "gepland"
    assert notificatie.pogingen == 1
    assert notificatie.version == 2


def test_delivery_after_a_failure_is_verzonden() -> None:
    notificatie = na_mislukte(gepland(), 2)
    sent = project(notificatie, [verzonden(notificatie, CTX)])
    assert sent is not None
    assert sent.status == "verzonden"
    assert sent.pogingen == 3
    assert sent.version == 4


def test_project_from_scratch_equals_step_by_step() -> None:
    planned = plan(uuid4(), "bevestiging_aanvraag", "aanvrager", "ev-9", {}, CTX)
    stap0 = project(None, [planned])
    assert stap0 is not None
    fail = mislukt(stap0, "smtp_timeout", permanent=False, max_pogingen=MAX, ctx=CTX)
    stap1 = project(stap0, [fail])
    assert stap1 is not None
    ok = verzonden(stap1, CTX)
    assert project(None, [planned, fail, ok]) == project(stap1, [ok])
