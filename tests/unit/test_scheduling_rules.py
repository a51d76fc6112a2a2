"""Scheduling's process rules, pure: appointments, conversations, woningscan, toelichting."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from services.scheduling import gateway
from services.scheduling.domain import (
    AfspraakGeannuleerd,
    AfspraakGepland,
    AfspraakVerzet,
    AfspraakVerzoek,
    GesprekGevoerd,
    Partij,
    Planning,
    PlanningGestopt,
    RapportOntvangen,
    Soort,
    StopReden,
    ToelichtingAangevraagd,
    WoningscanUitgevoerd,
    annuleer_afspraak,
    annuleer_na_stop,
    leg_gesprek_vast,
    leg_woningscan_vast,
    neem_contact_op,
    noteer_rapport,
    open_planning,
    plan_afspraak,
    project,
    stop,
    verzet_afspraak,
    vraag_toelichting_aan,
)
from services.scheduling.domain.calendar import WorkingDayCalendar, WorkingHours, profile_from_name
from shared.contracts import events as public
from shared.platform.errors import Conflict, NietGevonden, Ongeldig
from shared.platform.model import Context, DomainEvent

INGEDIEND = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
DEADLINE = datetime(2026, 3, 4, 23, 0, tzinfo=UTC)
NU = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
LATER = NU + timedelta(days=7)  # Tue 10 Mar 2026, 11:00 in Amsterdam
GEVOERD = LATER + timedelta(hours=1)  # a moment after the start of an appointment at LATER
KALENDER = WorkingDayCalendar()
LINK = "https://video.example.org/kamer/abc-123?pwd=xyz"


def at(moment: datetime = NU) -> Context:
    return Context(now=moment, actor_id="sec-1", actor_role="secretariaat")


def apply(planning: Planning, *events: DomainEvent | None) -> Planning:
    present = [event for event in events if event is not None]
    assert present, "expected an event"
    after = project(planning, present)
    assert after is not None
    return after


def geopend() -> Planning:
    event = open_planning(uuid4(), INGEDIEND, DEADLINE, 3, "algemene_termijnenwet", at(INGEDIEND))
    planning = project(None, [event])
    assert planning is not None
    return planning


def met_contact() -> Planning:
    planning = geopend()
    return apply(planning, neem_contact_op(planning, at()))


def verzoek(soort: Soort = "gesprek_werkgever", **overrides: Any) -> AfspraakVerzoek:
    body: dict[str, Any] = {
        "soort": soort,
        "gepland_op": LATER,
        "duur_minuten": 60,
        "adviseur_id": "adv-7",
        "video_link": None if soort == "gesprek_bestuurder" else LINK,
    }
    body.update(overrides)
    return AfspraakVerzoek.model_validate(body)


def gepland(planning: Planning, soort: Soort = "gesprek_werkgever", **overrides: Any) -> Planning:
    return apply(
        planning, plan_afspraak(planning, verzoek(soort, **overrides), uuid4(), at(), KALENDER)
    )


def laatste(planning: Planning) -> UUID:
    return planning.afspraken[-1].afspraak_id


def rules(exc: pytest.ExceptionInfo[Ongeldig]) -> list[tuple[str, str]]:
    return [(e["field"], e["rule"]) for e in exc.value.errors]


def met_rapport(planning: Planning, *partijen: Partij) -> Planning:
    for partij in partijen:
        planning = apply(planning, noteer_rapport(planning, partij, uuid4(), 1, at()))
    return planning


def met_verzoek(planning: Planning, partij: Partij) -> Planning:
    return apply(planning, vraag_toelichting_aan(planning, partij, at()))


# --- the command's input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("duur_minuten", 14),
        ("duur_minuten", 481),
        ("adviseur_id", "anna@ccv.nl"),
        ("adviseur_id", "Anna de Vries"),
        ("adviseur_id", ""),
        ("video_link", "http://video.example.org/kamer"),
        ("video_link", "https://user:secret@video.example.org/kamer"),
        ("video_link", "javascript:alert(1)"),
        ("gepland_op", datetime(2026, 3, 10, 10, 0)),  # naive: which time zone?
        ("soort", "gesprek_bva"),
    ],
)
def test_input_outside_the_rules_is_refused(field: str, value: object) -> None:
    overrides: dict[str, Any] = {field: value}
    with pytest.raises(ValidationError) as exc:
        verzoek(**overrides)
    assert [e["loc"][0] for e in exc.value.errors()] == [field]


@pytest.mark.parametrize("duur", [15, 480])
def test_duration_limits_are_inclusive(duur: int) -> None:
    assert verzoek(duur_minuten=duur).duur_minuten == duur


def test_gepland_op_is_kept_in_utc() -> None:
    amsterdam = datetime.fromisoformat("2026-03-10T10:00:00+01:00")
    assert verzoek(gepland_op=amsterdam).gepland_op == datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


# --- planning ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("soort", "vorm", "partijen", "link"),
    [
        ("gesprek_werkgever", "digitaal", ("werkgever",), LINK),
        ("gesprek_bestuurder", "thuis", ("bestuurder",), None),
    ],
)
def test_a_conversation_is_planned_in_its_form(
    soort: Soort, vorm: str, partijen: tuple[str, ...], link: str | None
) -> None:
    planning = met_contact()
    afspraak_id = uuid4()
    event = plan_afspraak(planning, verzoek(soort), afspraak_id, at(), KALENDER)
    assert isinstance(event, AfspraakGepland)
    assert event.originator_version == planning.version + 1
    assert (event.afspraak_id, event.soort, event.vorm) == (afspraak_id, soort, vorm)
    assert (event.gepland_op, event.duur_minuten, event.adviseur_id) == (LATER, 60, "adv-7")
    assert event.video_link == link
    assert event.partijen == partijen
    afspraak = apply(planning, event).afspraak(afspraak_id)
    assert afspraak.status == "gepland"
    assert afspraak.video_link == link


def test_digital_appointments_need_a_video_link() -> None:
    with pytest.raises(Ongeldig) as exc:
        plan_afspraak(met_contact(), verzoek(video_link=None), uuid4(), at(), KALENDER)
    assert rules(exc) == [("body.video_link", "required_for_digitaal")]


def test_the_conversation_at_home_has_no_video_link() -> None:
    with pytest.raises(Ongeldig) as exc:
        plan_afspraak(
            met_contact(), verzoek("gesprek_bestuurder", video_link=LINK), uuid4(), at(), KALENDER
        )
    assert rules(exc) == [("body.video_link", "not_allowed_for_thuis")]


def test_a_party_is_named_for_a_toelichting_only() -> None:
    with pytest.raises(Ongeldig) as exc:
        plan_afspraak(met_contact(), verzoek(partij="werkgever"), uuid4(), at(), KALENDER)
    assert rules(exc) == [("body.partij", "only_for_toelichting")]


@pytest.mark.parametrize("moment", [NU, NU - timedelta(minutes=1), NU - timedelta(days=40)])
def test_an_appointment_lies_in_the_future(moment: datetime) -> None:
    with pytest.raises(Ongeldig) as exc:
        plan_afspraak(met_contact(), verzoek(gepland_op=moment), uuid4(), at(), KALENDER)
    assert rules(exc) == [("body.gepland_op", "must_be_in_future")]


def amsterdam(text: str) -> datetime:
    """A local moment in Amsterdam (the default calendar's time zone)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Amsterdam"))


@pytest.mark.parametrize(
    ("start", "duur", "rule"),
    [
        ("2026-03-14T10:00", 60, "must_be_on_working_day"),  # a Saturday
        ("2026-04-03T10:00", 60, "must_be_on_working_day"),  # Goede Vrijdag (Atw)
        ("2026-04-27T10:00", 60, "must_be_on_working_day"),  # Koningsdag
        ("2026-03-10T07:59", 60, "must_be_within_working_hours"),  # starts before 08:00
        ("2026-03-10T18:00", 15, "must_be_within_working_hours"),  # starts at closing
        ("2026-03-10T17:30", 60, "must_be_within_working_hours"),  # runs past 18:00
        ("2026-03-10T16:00", 480, "must_be_within_working_hours"),  # runs into the night
    ],
)
def test_an_appointment_lies_wholly_within_working_hours_on_a_working_day(
    start: str, duur: int, rule: str
) -> None:
    moment = amsterdam(start)
    with pytest.raises(Ongeldig) as exc:
        plan_afspraak(
            met_contact(), verzoek(gepland_op=moment, duur_minuten=duur), uuid4(), at(), KALENDER
        )
    assert rules(exc) == [("body.gepland_op", rule)]
    # The answer states the rule, never the value that broke it.
    detail = str(exc.value.detail)
    assert "08:00–18:00" in detail
    assert start[:10] not in detail
    assert start[11:] not in detail.replace("08:00–18:00", "")
    # Moving an appointment there is refused the same way.
    planning = gepland(met_contact())
    with pytest.raises(Ongeldig) as moved:
        verzet_afspraak(planning, laatste(planning), moment, duur, at(), KALENDER)
    assert rules(moved) == [("body.gepland_op", rule)]


@pytest.mark.parametrize(
    ("start", "duur"),
    [("2026-03-10T08:00", 60), ("2026-03-10T17:00", 60), ("2026-03-10T08:00", 480)],
)
def test_an_appointment_may_fill_the_working_hours_up_to_their_edges(start: str, duur: int) -> None:
    event = plan_afspraak(
        met_contact(),
        verzoek(gepland_op=amsterdam(start), duur_minuten=duur),
        uuid4(),
        at(),
        KALENDER,
    )
    assert event.gepland_op == amsterdam(start)


def test_the_working_hours_come_from_the_calendar_given() -> None:
    negen_tot_vijf = WorkingDayCalendar(hours=WorkingHours(start=time(9), end=time(17)))
    vroeg = verzoek(gepland_op=amsterdam("2026-03-10T08:30"))
    assert plan_afspraak(met_contact(), vroeg, uuid4(), at(), KALENDER) is not None
    with pytest.raises(Ongeldig) as exc:
        plan_afspraak(met_contact(), vroeg, uuid4(), at(), negen_tot_vijf)
    assert rules(exc) == [("body.gepland_op", "must_be_within_working_hours")]
    assert "09:00–17:00" in str(exc.value.detail)
    # A calendar profile's extra day off is no working day for appointments either.
    dicht = WorkingDayCalendar(profile_from_name("algemene_termijnenwet", [LATER.date()]))
    with pytest.raises(Ongeldig) as closed:
        plan_afspraak(met_contact(), verzoek(), uuid4(), at(), dicht)
    assert rules(closed) == [("body.gepland_op", "must_be_on_working_day")]


def test_a_year_outside_the_calendar_is_refused_as_input() -> None:
    with pytest.raises(Ongeldig) as exc:
        plan_afspraak(
            met_contact(),
            verzoek(gepland_op=amsterdam("2101-03-08T10:00")),
            uuid4(),
            at(),
            KALENDER,
        )
    assert rules(exc) == [("body.gepland_op", "outside_calendar_years")]


def test_an_appointment_that_took_place_is_recorded_afterwards() -> None:
    planning = met_contact()
    eerder = amsterdam("2026-03-03T09:00")  # this morning, before NU (11:00 in Amsterdam)
    event = plan_afspraak(
        planning,
        verzoek("gesprek_bestuurder", gepland_op=eerder, achteraf=True),
        uuid4(),
        at(),
        KALENDER,
    )
    assert (event.gepland_op, event.achteraf) == (eerder, True)
    # Its start has passed: it can be recorded as held at once.
    planning = apply(planning, event)
    held = leg_gesprek_vast(planning, event.afspraak_id, True, at())
    assert [type(e) for e in held] == [GesprekGevoerd, WoningscanUitgevoerd]
    # A plan is not: planning is the default, and it starts in the future.
    assert plan_afspraak(met_contact(), verzoek(), uuid4(), at(), KALENDER).achteraf is False


@pytest.mark.parametrize("moment", [LATER, NU + timedelta(minutes=1)])
def test_afterwards_means_its_start_has_passed(moment: datetime) -> None:
    with pytest.raises(Ongeldig) as exc:
        plan_afspraak(
            met_contact(), verzoek(gepland_op=moment, achteraf=True), uuid4(), at(), KALENDER
        )
    assert rules(exc) == [("body.gepland_op", "must_be_in_past")]


def test_afterwards_still_within_working_hours() -> None:
    zondag = amsterdam("2026-03-01T10:00")
    with pytest.raises(Ongeldig) as exc:
        plan_afspraak(
            met_contact(), verzoek(gepland_op=zondag, achteraf=True), uuid4(), at(), KALENDER
        )
    assert rules(exc) == [("body.gepland_op", "must_be_on_working_day")]


def test_a_move_that_already_happened_is_recorded_afterwards() -> None:
    planning = gepland(met_contact())
    afspraak_id = laatste(planning)
    eerder = amsterdam("2026-03-03T08:30")
    with pytest.raises(Ongeldig) as exc:
        verzet_afspraak(planning, afspraak_id, eerder, None, at(), KALENDER)
    assert rules(exc) == [("body.gepland_op", "must_be_in_future")]
    with pytest.raises(Ongeldig) as exc:
        verzet_afspraak(
            planning, afspraak_id, LATER + timedelta(days=1), None, at(), KALENDER, achteraf=True
        )
    assert rules(exc) == [("body.gepland_op", "must_be_in_past")]
    event = verzet_afspraak(planning, afspraak_id, eerder, None, at(), KALENDER, achteraf=True)
    assert event is not None
    assert (event.gepland_op, event.vorige_gepland_op, event.achteraf) == (eerder, LATER, True)
    assert leg_gesprek_vast(apply(planning, event), afspraak_id, False, at()) != []


def test_nothing_is_planned_before_contact() -> None:
    with pytest.raises(Conflict) as exc:
        plan_afspraak(geopend(), verzoek(), uuid4(), at(), KALENDER)
    assert exc.value.code == "contact_ontbreekt"


@pytest.mark.parametrize("reden", ["ingetrokken", "afgesloten"])
def test_nothing_is_planned_after_the_planning_stopped(reden: StopReden) -> None:
    planning = met_contact()
    gestopt = apply(planning, stop(planning, at(), reden))
    with pytest.raises(Conflict) as exc:
        plan_afspraak(gestopt, verzoek(), uuid4(), at(), KALENDER)
    assert exc.value.code == f"dossier_{reden}"
    with pytest.raises(Conflict):
        neem_contact_op(geopend().model_copy(update={"gestopt": True}), at())


@pytest.mark.parametrize("soort", ["gesprek_werkgever", "gesprek_bestuurder"])
def test_one_active_conversation_of_a_kind(soort: Soort) -> None:
    planning = gepland(met_contact(), soort)
    with pytest.raises(Conflict) as exc:
        plan_afspraak(planning, verzoek(soort), uuid4(), at(), KALENDER)
    assert exc.value.code == "gesprek_bestaat_al"
    # The other kind may still be planned.
    other: Soort = "gesprek_bestuurder" if soort == "gesprek_werkgever" else "gesprek_werkgever"
    assert plan_afspraak(planning, verzoek(other), uuid4(), at(), KALENDER) is not None


def test_a_cancelled_conversation_may_be_planned_again() -> None:
    planning = gepland(met_contact())
    geannuleerd = apply(planning, annuleer_afspraak(planning, laatste(planning), at()))
    opnieuw = gepland(geannuleerd)
    assert [a.status for a in opnieuw.afspraken] == ["geannuleerd", "gepland"]


def test_a_held_conversation_is_not_planned_again() -> None:
    planning = gepland(met_contact())
    gevoerd = apply(planning, *leg_gesprek_vast(planning, laatste(planning), False, at(GEVOERD)))
    with pytest.raises(Conflict):
        plan_afspraak(gevoerd, verzoek(), uuid4(), at(), KALENDER)


# --- moving and cancelling -----------------------------------------------------------------------


def test_moving_records_the_old_and_new_time() -> None:
    planning = gepland(met_contact())
    nieuw = LATER + timedelta(days=1)
    event = verzet_afspraak(planning, laatste(planning), nieuw, 90, at(), KALENDER)
    assert isinstance(event, AfspraakVerzet)
    assert (event.gepland_op, event.vorige_gepland_op, event.duur_minuten) == (nieuw, LATER, 90)
    assert event.soort == "gesprek_werkgever"
    afspraak = apply(planning, event).afspraak(laatste(planning))
    assert (afspraak.gepland_op, afspraak.duur_minuten) == (nieuw, 90)


def test_moving_keeps_the_duration_when_none_is_given() -> None:
    planning = gepland(met_contact())
    event = verzet_afspraak(
        planning, laatste(planning), LATER + timedelta(hours=2), None, at(), KALENDER
    )
    assert event is not None
    assert event.duur_minuten == 60


def test_moving_to_the_same_time_changes_nothing() -> None:
    planning = gepland(met_contact())
    assert verzet_afspraak(planning, laatste(planning), LATER, None, at(), KALENDER) is None
    assert verzet_afspraak(planning, laatste(planning), LATER, 60, at(), KALENDER) is None
    # The same moment written in another time zone is the same time.
    same = LATER.astimezone(datetime.fromisoformat("2026-03-10T10:00:00+01:00").tzinfo)
    assert verzet_afspraak(planning, laatste(planning), same, None, at(), KALENDER) is None
    # A new duration alone is a change.
    assert verzet_afspraak(planning, laatste(planning), LATER, 45, at(), KALENDER) is not None


def test_moving_into_the_past_is_refused() -> None:
    planning = gepland(met_contact())
    with pytest.raises(Ongeldig) as exc:
        verzet_afspraak(planning, laatste(planning), NU - timedelta(hours=1), None, at(), KALENDER)
    assert rules(exc) == [("body.gepland_op", "must_be_in_future")]


def test_only_a_planned_appointment_moves() -> None:
    planning = gepland(met_contact())
    afspraak_id = laatste(planning)
    gevoerd = apply(planning, *leg_gesprek_vast(planning, afspraak_id, False, at(GEVOERD)))
    geannuleerd = apply(planning, annuleer_afspraak(planning, afspraak_id, at()))
    for state, code in ((gevoerd, "al_gevoerd"), (geannuleerd, "geannuleerd")):
        with pytest.raises(Conflict) as exc:
            verzet_afspraak(state, afspraak_id, LATER + timedelta(days=1), None, at(), KALENDER)
        assert exc.value.code == code


def test_an_unknown_appointment_is_not_found() -> None:
    with pytest.raises(NietGevonden):
        verzet_afspraak(met_contact(), uuid4(), LATER, None, at(), KALENDER)


def test_cancelling_once() -> None:
    planning = gepland(met_contact(), "gesprek_bestuurder")
    event = annuleer_afspraak(planning, laatste(planning), at())
    assert isinstance(event, AfspraakGeannuleerd)
    assert event.soort == "gesprek_bestuurder"
    geannuleerd = apply(planning, event)
    assert geannuleerd.afspraak(laatste(planning)).status == "geannuleerd"
    assert annuleer_afspraak(geannuleerd, laatste(planning), at()) is None


def test_a_held_conversation_cannot_be_cancelled() -> None:
    planning = gepland(met_contact())
    gevoerd = apply(planning, *leg_gesprek_vast(planning, laatste(planning), False, at(GEVOERD)))
    with pytest.raises(Conflict) as exc:
        annuleer_afspraak(gevoerd, laatste(planning), at())
    assert exc.value.code == "al_gevoerd"


# --- conversations and the woningscan ------------------------------------------------------------


def test_a_conversation_held_without_woningscan() -> None:
    planning = gepland(met_contact())
    events = leg_gesprek_vast(planning, laatste(planning), False, at(GEVOERD))
    assert [type(e) for e in events] == [GesprekGevoerd]
    gevoerd = apply(planning, *events)
    afspraak = gevoerd.afspraak(laatste(planning))
    assert (afspraak.status, afspraak.gevoerd_op, afspraak.woningscan_uitgevoerd_op) == (
        "gevoerd",
        GEVOERD,
        None,
    )


def test_the_woningscan_during_the_conversation_at_home() -> None:
    planning = gepland(met_contact(), "gesprek_bestuurder")
    events = leg_gesprek_vast(planning, laatste(planning), True, at(GEVOERD))
    assert [type(e) for e in events] == [GesprekGevoerd, WoningscanUitgevoerd]
    assert [e.originator_version for e in events] == [planning.version + 1, planning.version + 2]
    afspraak = apply(planning, *events).afspraak(laatste(planning))
    assert afspraak.woningscan_uitgevoerd_op == GEVOERD


@pytest.mark.parametrize("soort", ["gesprek_werkgever", "toelichting"])
def test_a_woningscan_happens_only_in_the_conversation_at_home(soort: Soort) -> None:
    planning = met_contact()
    if soort == "toelichting":
        planning = met_verzoek(met_rapport(planning, "bestuurder"), "bestuurder")
    planning = gepland(planning, soort)
    with pytest.raises(Ongeldig) as exc:
        leg_gesprek_vast(planning, laatste(planning), True, at(GEVOERD))
    assert rules(exc) == [("body.woningscan_uitgevoerd", "only_in_gesprek_bestuurder")]
    with pytest.raises(Conflict) as conflict:
        leg_woningscan_vast(planning, laatste(planning), at())
    assert conflict.value.code == "geen_gesprek_bestuurder"


def test_recording_a_held_conversation_again_changes_nothing() -> None:
    planning = gepland(met_contact(), "gesprek_bestuurder")
    gevoerd = apply(planning, *leg_gesprek_vast(planning, laatste(planning), True, at(GEVOERD)))
    assert leg_gesprek_vast(gevoerd, laatste(planning), True, at(LATER)) == []
    assert leg_gesprek_vast(gevoerd, laatste(planning), False, at(LATER)) == []


def test_a_conversation_is_held_only_once_its_planned_start_has_passed() -> None:
    planning = gepland(met_contact(), "gesprek_bestuurder")
    afspraak_id = laatste(planning)
    for moment in (NU, LATER - timedelta(seconds=1)):
        with pytest.raises(Conflict) as exc:
            leg_gesprek_vast(planning, afspraak_id, True, at(moment))
        assert exc.value.code == "nog_niet_begonnen"
        assert "nog niet begonnen" in exc.value.reason
    events = leg_gesprek_vast(planning, afspraak_id, True, at(LATER))
    assert [type(e) for e in events] == [GesprekGevoerd, WoningscanUitgevoerd]


def test_a_moved_conversation_is_held_after_its_new_start() -> None:
    planning = gepland(met_contact())
    afspraak_id = laatste(planning)
    nieuw = LATER + timedelta(days=1)
    planning = apply(planning, verzet_afspraak(planning, afspraak_id, nieuw, None, at(), KALENDER))
    with pytest.raises(Conflict) as exc:
        leg_gesprek_vast(planning, afspraak_id, False, at(GEVOERD))  # after the old start only
    assert exc.value.code == "nog_niet_begonnen"
    assert leg_gesprek_vast(planning, afspraak_id, False, at(nieuw)) != []


def test_a_woningscan_claimed_after_the_fact_goes_through_its_own_step() -> None:
    planning = gepland(met_contact(), "gesprek_bestuurder")
    gevoerd = apply(planning, *leg_gesprek_vast(planning, laatste(planning), False, at(GEVOERD)))
    with pytest.raises(Conflict) as exc:
        leg_gesprek_vast(gevoerd, laatste(planning), True, at(GEVOERD))
    assert exc.value.code == "woningscan_apart_vastleggen"


def test_no_conversation_on_a_cancelled_appointment() -> None:
    planning = gepland(met_contact())
    geannuleerd = apply(planning, annuleer_afspraak(planning, laatste(planning), at()))
    with pytest.raises(Conflict) as exc:
        leg_gesprek_vast(geannuleerd, laatste(planning), False, at(GEVOERD))
    assert exc.value.code == "geannuleerd"


def test_the_woningscan_later_once_after_the_conversation() -> None:
    planning = gepland(met_contact(), "gesprek_bestuurder")
    afspraak_id = laatste(planning)
    with pytest.raises(Conflict) as exc:
        leg_woningscan_vast(planning, afspraak_id, at())
    assert exc.value.code == "niet_gevoerd"
    gevoerd = apply(planning, *leg_gesprek_vast(planning, afspraak_id, False, at(GEVOERD)))
    event = leg_woningscan_vast(gevoerd, afspraak_id, at(LATER))
    assert isinstance(event, WoningscanUitgevoerd)
    assert event.uitgevoerd_op == LATER
    gescand = apply(gevoerd, event)
    assert leg_woningscan_vast(gescand, afspraak_id, at(LATER)) is None


def test_no_woningscan_on_a_cancelled_appointment() -> None:
    planning = gepland(met_contact(), "gesprek_bestuurder")
    geannuleerd = apply(planning, annuleer_afspraak(planning, laatste(planning), at()))
    with pytest.raises(Conflict):
        leg_woningscan_vast(geannuleerd, laatste(planning), at())


# --- toelichting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("partij", ["bestuurder", "werkgever"])
def test_a_toelichting_only_after_the_party_received_the_report(partij: Partij) -> None:
    with pytest.raises(Conflict) as exc:
        vraag_toelichting_aan(met_contact(), partij, at())
    assert exc.value.code == "rapport_niet_ontvangen"
    assert ("bestuurder is verstrekt" if partij == "bestuurder" else "vrijgegeven") in str(
        exc.value.reason
    )
    # The other party's report does not count.
    other: Partij = "werkgever" if partij == "bestuurder" else "bestuurder"
    with pytest.raises(Conflict):
        vraag_toelichting_aan(met_rapport(met_contact(), other), partij, at())
    event = vraag_toelichting_aan(met_rapport(met_contact(), partij), partij, at())
    assert isinstance(event, ToelichtingAangevraagd)
    assert (event.partij, event.aangevraagd_op) == (partij, NU)


def test_the_report_is_noted_once_per_party() -> None:
    planning = met_contact()
    event = noteer_rapport(planning, "bestuurder", uuid4(), 1, at())
    assert isinstance(event, RapportOntvangen)
    ontvangen = apply(planning, event)
    assert ontvangen.rapport_ontvangen == frozenset({"bestuurder"})
    assert noteer_rapport(ontvangen, "bestuurder", uuid4(), 2, at()) is None


def test_asking_again_while_the_request_waits_changes_nothing() -> None:
    planning = met_verzoek(met_rapport(met_contact(), "bestuurder"), "bestuurder")
    assert vraag_toelichting_aan(planning, "bestuurder", at(LATER)) is None
    ingepland = gepland(planning, "toelichting")
    assert vraag_toelichting_aan(ingepland, "bestuurder", at(LATER)) is None
    # Once the toelichting was held, a new request is a new request.
    gevoerd = apply(ingepland, *leg_gesprek_vast(ingepland, laatste(ingepland), False, at(GEVOERD)))
    assert vraag_toelichting_aan(gevoerd, "bestuurder", at(LATER)) is not None


def test_a_toelichting_is_planned_only_for_an_open_request() -> None:
    planning = met_rapport(met_contact(), "bestuurder", "werkgever")
    with pytest.raises(Conflict) as exc:
        plan_afspraak(planning, verzoek("toelichting"), uuid4(), at(), KALENDER)
    assert exc.value.code == "geen_toelichting_aangevraagd"
    gevraagd = met_verzoek(planning, "werkgever")
    with pytest.raises(Conflict):
        plan_afspraak(
            gevraagd, verzoek("toelichting", partij="bestuurder"), uuid4(), at(), KALENDER
        )
    ingepland = gepland(gevraagd, "toelichting", partij="werkgever")
    assert ingepland.afspraken[-1].partijen == ("werkgever",)
    assert [ingepland.toelichting_status(t) for t in ingepland.toelichtingen] == ["gepland"]
    with pytest.raises(Conflict):
        plan_afspraak(ingepland, verzoek("toelichting"), uuid4(), at(), KALENDER)


def test_one_toelichting_may_serve_both_parties() -> None:
    planning = met_rapport(met_contact(), "bestuurder", "werkgever")
    planning = met_verzoek(met_verzoek(planning, "werkgever"), "bestuurder")
    ingepland = gepland(planning, "toelichting")
    assert ingepland.afspraken[-1].partijen == ("werkgever", "bestuurder")
    assert ingepland.afspraken[-1].vorm == "digitaal"


def test_a_cancelled_toelichting_reopens_its_request() -> None:
    planning = met_verzoek(met_rapport(met_contact(), "bestuurder"), "bestuurder")
    ingepland = gepland(planning, "toelichting")
    geannuleerd = apply(ingepland, annuleer_afspraak(ingepland, laatste(ingepland), at()))
    assert [geannuleerd.toelichting_status(t) for t in geannuleerd.toelichtingen] == ["open"]
    assert gepland(geannuleerd, "toelichting").afspraken[-1].partijen == ("bestuurder",)


def test_no_toelichting_after_the_planning_stopped() -> None:
    planning = met_rapport(met_contact(), "bestuurder")
    gestopt = apply(planning, stop(planning, at(), "afgesloten"))
    with pytest.raises(Conflict) as exc:
        vraag_toelichting_aan(gestopt, "bestuurder", at())
    assert exc.value.code == "dossier_afgesloten"
    assert noteer_rapport(gestopt, "werkgever", uuid4(), 1, at()) is None


# --- stopping ------------------------------------------------------------------------------------


def test_stopping_keeps_its_first_reason() -> None:
    planning = met_contact()
    event = stop(planning, at(), "afgesloten")
    assert isinstance(event, PlanningGestopt)
    gestopt = apply(planning, event)
    assert (gestopt.gestopt, gestopt.gestopt_reden) == (True, "afgesloten")
    assert stop(gestopt, at(), "ingetrokken") is None


def test_a_stopped_planning_cancels_what_is_still_planned() -> None:
    planning = gepland(gepland(met_contact(), "gesprek_werkgever"), "gesprek_bestuurder")
    werkgever, bestuurder = (a.afspraak_id for a in planning.afspraken)
    planning = apply(planning, *leg_gesprek_vast(planning, werkgever, False, at(GEVOERD)))
    gestopt = apply(planning, stop(planning, at()))
    events = annuleer_na_stop(gestopt, at())
    assert [(e.afspraak_id, e.originator_version) for e in events] == [
        (bestuurder, gestopt.version + 1)
    ]
    after = apply(gestopt, *events)
    assert [a.status for a in after.afspraken] == ["gevoerd", "geannuleerd"]
    assert annuleer_na_stop(after, at()) == []
    # A cancellation asked for again after the stop is answered, not refused.
    assert annuleer_afspraak(after, bestuurder, at()) is None


def test_the_fold_rebuilds_the_same_planning_from_all_events() -> None:
    events: list[DomainEvent] = [
        open_planning(uuid4(), INGEDIEND, DEADLINE, 3, "algemene_termijnenwet", at(INGEDIEND))
    ]
    first = project(None, events)
    assert first is not None
    planning = first

    def step(*new: DomainEvent | None) -> None:
        nonlocal planning
        present = [e for e in new if e is not None]
        events.extend(present)
        planning = apply(planning, *present)

    step(neem_contact_op(planning, at()))
    step(noteer_rapport(planning, "bestuurder", uuid4(), 1, at()))
    step(plan_afspraak(planning, verzoek("gesprek_bestuurder"), uuid4(), at(), KALENDER))
    bestuurder = laatste(planning)
    step(verzet_afspraak(planning, bestuurder, LATER + timedelta(days=2), 120, at(), KALENDER))
    step(*leg_gesprek_vast(planning, bestuurder, False, at(LATER + timedelta(days=2, hours=1))))
    step(leg_woningscan_vast(planning, bestuurder, at()))
    step(vraag_toelichting_aan(planning, "bestuurder", at()))
    step(plan_afspraak(planning, verzoek("toelichting"), uuid4(), at(), KALENDER))
    step(annuleer_afspraak(planning, laatste(planning), at()))
    step(stop(planning, at(), "afgesloten"))

    rebuilt = project(None, events)
    assert rebuilt == planning
    assert rebuilt.version == len(events)
    assert [(a.soort, a.status) for a in rebuilt.afspraken] == [
        ("gesprek_bestuurder", "gevoerd"),
        ("toelichting", "geannuleerd"),
    ]
    assert rebuilt.afspraken[0].duur_minuten == 120
    assert rebuilt.afspraken[0].woningscan_uitgevoerd_op == NU
    assert [rebuilt.toelichting_status(t) for t in rebuilt.toelichtingen] == ["open"]
    assert rebuilt.gestopt_reden == "afgesloten"


# --- the gateway: public events carry ids, kinds and times, never the video link ----------------


def public_of(events: Sequence[DomainEvent]) -> list[public.PublicEvent]:
    return [p for e in events for p in gateway.to_public(e)]


def test_every_appointment_step_is_announced_as_the_contract_says() -> None:
    planning = met_rapport(met_contact(), "werkgever")
    aanvraag_id = planning.id
    plan = plan_afspraak(planning, verzoek("gesprek_werkgever"), uuid4(), at(), KALENDER)
    planning = apply(planning, plan)
    afspraak_id = plan.afspraak_id
    verzet = verzet_afspraak(planning, afspraak_id, LATER + timedelta(days=1), None, at(), KALENDER)
    assert verzet is not None
    planning = apply(planning, verzet)
    gevoerd = leg_gesprek_vast(planning, afspraak_id, False, at(GEVOERD + timedelta(days=1)))
    planning = apply(planning, *gevoerd)
    gevraagd = vraag_toelichting_aan(planning, "werkgever", at())
    assert gevraagd is not None
    assert public_of([plan, verzet, *gevoerd, gevraagd]) == [
        public.AfspraakGepland(
            aanvraag_id=aanvraag_id,
            afspraak_id=afspraak_id,
            soort=public.AfspraakSoort.GESPREK_WERKGEVER,
            vorm=public.AfspraakVorm.DIGITAAL,
            gepland_op=LATER,
            duur_minuten=60,
            adviseur_id="adv-7",
        ),
        public.AfspraakVerzet(
            aanvraag_id=aanvraag_id,
            afspraak_id=afspraak_id,
            soort=public.AfspraakSoort.GESPREK_WERKGEVER,
            gepland_op=LATER + timedelta(days=1),
            vorige_gepland_op=LATER,
        ),
        public.GesprekGevoerd(
            aanvraag_id=aanvraag_id,
            afspraak_id=afspraak_id,
            soort=public.AfspraakSoort.GESPREK_WERKGEVER,
            gevoerd_op=GEVOERD + timedelta(days=1),
        ),
        public.ToelichtingAangevraagd(
            aanvraag_id=aanvraag_id,
            aangevraagd_door=public.Partij.WERKGEVER,
            aangevraagd_op=NU,
        ),
    ]
    assert all(LINK not in p.model_dump_json() for p in public_of([plan, verzet]))


def test_cancellation_and_woningscan_are_announced() -> None:
    planning = gepland(met_contact(), "gesprek_bestuurder")
    afspraak_id = laatste(planning)
    gevoerd = leg_gesprek_vast(planning, afspraak_id, True, at(GEVOERD))
    assert public_of(gevoerd)[1] == public.WoningscanUitgevoerd(
        aanvraag_id=planning.id, afspraak_id=afspraak_id, uitgevoerd_op=GEVOERD
    )
    geannuleerd = annuleer_afspraak(planning, afspraak_id, at())
    assert geannuleerd is not None
    assert public_of([geannuleerd]) == [
        public.AfspraakGeannuleerd(
            aanvraag_id=planning.id,
            afspraak_id=afspraak_id,
            soort=public.AfspraakSoort.GESPREK_BESTUURDER,
        )
    ]


def test_private_facts_are_not_announced() -> None:
    planning = met_contact()
    ontvangen = noteer_rapport(planning, "bestuurder", uuid4(), 1, at())
    gestopt = stop(planning, at(), "afgesloten")
    assert ontvangen is not None
    assert gestopt is not None
    assert public_of([ontvangen, gestopt]) == []
