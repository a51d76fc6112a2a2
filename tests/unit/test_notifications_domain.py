"""Notifications' domain: one id per notification, retries on a schedule, final failure, re-send."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from eventsourcing.utils import get_topic

from services.notifications.domain import notificatie, webhooks
from services.notifications.domain.notificatie import (
    Notificatie,
    NotificatieGepland,
    NotificatieMislukt,
    NotificatieVerzonden,
    mislukt,
    notificatie_id,
    opnieuw,
    plan,
    project,
    verzonden,
)
from services.notifications.domain.webhooks import RetrySchedule
from shared.platform.errors import Conflict
from shared.platform.model import Context
from shared.platform.settings import Settings

NU = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
CTX = Context(now=NU, causation_id="ev-1")
MAX = 5
#: Five attempts without jitter: 2, 4, 8 and 16 seconds apart.
SCHEMA = RetrySchedule((2.0, 4.0, 8.0, 16.0), jitter=0)


def gepland(soort: str = "bevestiging_aanvraag") -> Notificatie:
    event = plan(uuid4(), soort, "aanvrager", "ev-1", {"contact_deadline": "2026-03-04"}, CTX)
    notificatie = project(None, [event])
    assert notificatie is not None
    return notificatie


def na_mislukte(notificatie: Notificatie, aantal: int) -> Notificatie:
    for _ in range(aantal):
        event = mislukt(notificatie, "smtp_timeout", permanent=False, schema=SCHEMA, ctx=CTX)
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
    event = mislukt(notificatie, "smtp_timeout", permanent=False, schema=SCHEMA, ctx=CTX)
    assert isinstance(event, NotificatieMislukt)
    assert event.poging == 1
    assert event.definitief is False
    assert event.volgende_poging == NU + timedelta(seconds=2)
    assert event.reden_code == "smtp_timeout"


@pytest.mark.parametrize("max_pogingen", [1, 3, 5])
def test_the_last_attempt_of_the_schedule_is_final(max_pogingen: int) -> None:
    notificatie = gepland()
    for poging in range(1, max_pogingen + 1):
        schema = RetrySchedule((2.0,) * (max_pogingen - 1), jitter=0)
        event = mislukt(notificatie, "smtp_timeout", permanent=False, schema=schema, ctx=CTX)
        assert event.poging == poging
        assert event.definitief is (poging == max_pogingen)
        assert (event.volgende_poging is None) is (poging == max_pogingen)
        after = project(notificatie, [event])
        assert after is not None
        notificatie = after
    assert notificatie.status == "mislukt"
    assert notificatie.pogingen == max_pogingen


def test_a_permanent_error_is_final_at_once() -> None:
    event = mislukt(gepland(), "adres_onbekend", permanent=True, schema=SCHEMA, ctx=CTX)
    assert event.poging == 1
    assert event.definitief is True
    assert event.volgende_poging is None


def test_a_failure_event_describes_its_notification() -> None:
    notificatie = gepland("afspraak_bevestiging")
    event = mislukt(notificatie, "smtp_timeout", permanent=False, schema=SCHEMA, ctx=CTX)
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


# --- the schedule (WEERBAAR_MAIL_RETRY_SCHEDULE_S) ----------------------------------------------


def _standaard() -> RetrySchedule:
    settings = Settings(database_url="postgresql://x@127.0.0.1/x", nats_url="nats://127.0.0.1:4222")
    return RetrySchedule(settings.mail_retry_schedule_s, settings.mail_retry_jitter)


def test_by_default_a_mail_is_tried_for_more_than_a_day_with_growing_waits() -> None:
    schema = _standaard()
    assert schema.span > timedelta(hours=24)
    assert list(schema.delays_s) == sorted(schema.delays_s), "waits never shrink"
    assert schema.delays_s[0] <= 60, "a short hiccup is retried within the minute"


@pytest.mark.parametrize("rek", [0.0, 1.0])  # no extra wait, the most the jitter adds
@pytest.mark.parametrize("storing_begint", [timedelta(0), timedelta(minutes=3)])
def test_an_smtp_outage_of_ten_minutes_loses_no_mail_with_the_default_schedule(
    rek: float, storing_begint: timedelta
) -> None:
    """Four minutes lost mail before (8 doubling attempts). Now the relay is down for ten minutes
    from (or after) the first attempt: every attempt in that time fails, none is final, and the
    first attempt after it is sent."""
    standaard = _standaard()
    schema = RetrySchedule(
        tuple(d * (1 + rek * standaard.jitter) for d in standaard.delays_s), jitter=0.0
    )
    storing_tot = NU + storing_begint + timedelta(minutes=10)
    notificatie = gepland()
    now = NU + storing_begint
    while now < storing_tot:
        event = mislukt(
            notificatie, "connection_refused", permanent=False, schema=schema, ctx=Context(now=now)
        )
        assert event.definitief is False, f"given up {now - NU} after the first attempt"
        assert event.volgende_poging is not None
        notificatie = project(notificatie, [event]) or notificatie
        now = event.volgende_poging
    sent = project(notificatie, [verzonden(notificatie, Context(now=now))])
    assert sent is not None and sent.status == "verzonden"
    assert now - storing_tot < timedelta(minutes=30), "sent within half an hour of the outage"


def test_a_failure_shows_its_reason_until_an_attempt_succeeds() -> None:
    notificatie = gepland()
    failed = project(
        notificatie,
        [mislukt(notificatie, "connection_refused", permanent=False, schema=SCHEMA, ctx=CTX)],
    )
    assert failed is not None and failed.reden_code == "connection_refused"
    sent = project(failed, [verzonden(failed, CTX)])
    assert sent is not None and sent.reden_code is None


# --- sending again -------------------------------------------------------------------------------


def test_a_failed_notification_is_sent_again_on_a_fresh_round_of_the_schedule() -> None:
    notificatie = na_mislukte(gepland(), MAX)
    assert (notificatie.status, notificatie.reden_code) == ("mislukt", "smtp_timeout")
    later = Context(now=NU + timedelta(days=2), actor_id="act-1", actor_role="secretariaat")
    again = project(notificatie, [opnieuw(notificatie, later)])
    assert again is not None
    assert (again.status, again.volgende_poging, again.pogingen) == ("gepland", later.now, MAX)
    # The next failure is the first of a new round: retried 2 s later, not final.
    event = mislukt(again, "smtp_timeout", permanent=False, schema=SCHEMA, ctx=later)
    assert (event.poging, event.definitief) == (MAX + 1, False)
    assert event.volgende_poging == later.now + timedelta(seconds=2)
    # And the round ends after the schedule's attempts, as the first one did.
    assert na_mislukte(again, MAX).status == "mislukt"
    assert na_mislukte(again, MAX - 1).status == "gepland"


@pytest.mark.parametrize("stand", ["gepland", "verzonden"])
def test_only_a_failed_notification_can_be_sent_again(stand: str) -> None:
    notificatie = gepland()
    if stand == "verzonden":
        notificatie = project(notificatie, [verzonden(notificatie, CTX)]) or notificatie
    assert notificatie.status == stand
    with pytest.raises(Conflict) as refused:
        opnieuw(notificatie, CTX)
    assert refused.value.code == "niet_mislukt"


def test_the_retired_max_attempts_setting_is_refused_not_ignored() -> None:
    with pytest.raises(ValueError, match="WEERBAAR_MAIL_RETRY_SCHEDULE_S"):
        Settings(
            database_url="postgresql://x@127.0.0.1/x",
            nats_url="nats://127.0.0.1:4222",
            notification_max_attempts=8,
        )


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
    fail = mislukt(stap0, "smtp_timeout", permanent=False, schema=SCHEMA, ctx=CTX)
    stap1 = project(stap0, [fail])
    assert stap1 is not None
    ok = verzonden(stap1, CTX)
    assert project(None, [planned, fail, ok]) == project(stap1, [ok])


#: The topics the store holds the service's events under since their first release.
STORED_TOPICS = {
    "services.notifications.domain:NotificatieGepland",
    "services.notifications.domain:NotificatieVerzonden",
    "services.notifications.domain:NotificatieMislukt",
    "services.notifications.domain:NotificatieVervallen",
    "services.notifications.domain:NotificatieOpnieuwGepland",
    "services.notifications.webhooks:AbonnementAangemaakt",
    "services.notifications.webhooks:AbonnementVerwijderd",
    "services.notifications.webhooks:AbonnementFalend",
    "services.notifications.webhooks:AbonnementHersteld",
}


def test_the_events_keep_their_stored_topics_wherever_their_code_lives() -> None:
    # A fresh interpreter that only loads the application (as the relay does) must read every
    # stored topic, and write each event under the topic it always had.
    script = (
        "import services.notifications.application\n"
        "from eventsourcing.utils import get_topic, resolve_topic\n"
        "for topic in sys.argv[1:]:\n"
        "    cls = resolve_topic(topic)\n"
        "    assert get_topic(cls) == topic, (topic, get_topic(cls))\n"
        "    print(cls.__module__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import sys\n" + script, *sorted(STORED_TOPICS)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert set(out.stdout.split()) == {
        "services.notifications.domain.notificatie",
        "services.notifications.domain.webhooks",
    }
    assert {get_topic(cls) for cls in (*notificatie.EVENTS, *webhooks.EVENTS)} == STORED_TOPICS
