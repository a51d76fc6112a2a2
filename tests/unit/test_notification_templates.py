"""The process e-mails' texts and their calendar invitations (RFC 5545), without servers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from services.notifications.domain.afspraak import Afspraak
from services.notifications.domain.ics import CalendarEvent, calendar_file, escape_text, fold
from services.notifications.domain.notificatie import afspraak_ontvangers
from services.notifications.domain.templates import (
    AFSPRAAK_TEMPLATES,
    AMSTERDAM,
    TEMPLATES,
    afspraak_bevestiging,
    afspraak_geannuleerd,
    afspraak_verzet,
    calendar_event_for,
    contacttermijn_verstreken,
    format_duration,
    format_time,
    rapport_beschikbaar_bestuurder,
    rapport_beschikbaar_werkgever,
)

AANVRAAG = str(uuid4())
START = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)  # Thursday 10:00 in Amsterdam
LINK = "https://video.weerbaarbestuur.test/kamer/8f3a"
STAMP = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def afspraak(**changes: Any) -> Afspraak:
    fields: dict[str, Any] = {
        "afspraak_id": uuid4(),
        "aanvraag_id": AANVRAAG,
        "soort": "gesprek_werkgever",
        "vorm": "digitaal",
        "gepland_op": START,
        "duur_minuten": 60,
        "adviseur_id": "adviseur-7",
        "video_link": LINK,
        "status": "gepland",
    }
    return Afspraak.model_validate(fields | changes)


def thuis(soort: str = "gesprek_bestuurder") -> Afspraak:
    return afspraak(soort=soort, vorm="thuis", video_link=None)


def unfold(ics: str) -> list[str]:
    return ics.replace("\r\n ", "").split("\r\n")[:-1]


def prop(ics: str, name: str) -> str:
    [value] = [line.split(":", 1)[1] for line in unfold(ics) if re.match(f"{name}[;:]", line)]
    return value


# --- formatting ----------------------------------------------------------------------------------


def test_time_is_the_amsterdam_wall_clock_in_winter_and_summer() -> None:
    assert format_time(datetime(2026, 12, 3, 9, 0, tzinfo=UTC)) == "10:00"
    assert format_time(datetime(2026, 6, 3, 9, 0, tzinfo=UTC)) == "11:00"
    assert format_time(datetime(2026, 6, 3, 9, 5, tzinfo=AMSTERDAM)) == "09:05"


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_time(datetime(2026, 12, 3, 9, 0))


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        (1, "1 minuut"),
        (45, "45 minuten"),
        (60, "1 uur"),
        (90, "1 uur en 30 minuten"),
        (121, "2 uur en 1 minuut"),
        (180, "3 uur"),
    ],
)
def test_duration_in_dutch(minutes: int, expected: str) -> None:
    assert format_duration(minutes) == expected


# --- appointment confirmation --------------------------------------------------------------------


def test_digital_conversation_gives_time_duration_and_link() -> None:
    mail = afspraak_bevestiging(AANVRAAG, "werkgever", afspraak(duur_minuten=45))

    assert mail.subject == (
        "Bevestiging van uw afspraak op donderdag 3 december 2026 om 10:00 uur "
        f"(dossier {AANVRAAG})"
    )
    assert "Datum: donderdag 3 december 2026\n" in mail.text
    assert "Tijd: 10:00 tot 10:45 uur (Nederlandse tijd)\n" in mail.text
    assert "Duur: 45 minuten\n" in mail.text
    assert "Plaats: online, via een videoverbinding\n" in mail.text
    assert f"link:\n{LINK}\n" in mail.text
    assert "woningscan" not in mail.text
    assert "agenda-uitnodiging" in mail.text
    assert "112" in mail.text


def test_digital_conversation_without_a_link_yet_says_it_follows() -> None:
    mail = afspraak_bevestiging(AANVRAAG, "werkgever", afspraak(video_link=None))

    assert "De link om deel te nemen ontvangt u vóór de afspraak" in mail.text
    assert "https://" not in mail.text


def test_home_visit_explains_the_woningscan_and_asks_someone_to_be_home() -> None:
    mail = afspraak_bevestiging(AANVRAAG, "bestuurder", thuis())

    assert "Plaats: bij u thuis\n" in mail.text
    assert "voert de adviseur ook de woningscan uit" in mail.text
    assert "deuren, ramen en sloten" in mail.text
    assert "op het afgesproken tijdstip thuis is" in mail.text


def test_a_toelichting_at_home_has_no_woningscan() -> None:
    mail = afspraak_bevestiging(AANVRAAG, "bestuurder", thuis("toelichting"))

    assert "Plaats: bij u thuis\n" in mail.text
    assert "woningscan" not in mail.text
    assert "thuis is" in mail.text


def test_somebody_elses_home_is_not_called_yours() -> None:
    # A toelichting at the bestuurder's home, mailed to the werkgever.
    mail = afspraak_bevestiging(AANVRAAG, "werkgever", thuis("toelichting"))

    assert "bij u thuis" not in mail.text
    assert "Plaats: op locatie\n" in mail.text
    assert "laat u weten waar het gesprek plaatsvindt" in mail.text


@pytest.mark.parametrize(
    ("soort", "wat"),
    [
        ("gesprek_werkgever", "het gesprek met de beveiligingsadviseur van het CCV"),
        ("gesprek_bestuurder", "met de woningscan"),
        ("toelichting", "de toelichting op het adviesrapport"),
    ],
)
def test_each_kind_of_appointment_says_what_it_is(soort: str, wat: str) -> None:
    assert wat in afspraak_bevestiging(AANVRAAG, "bestuurder", afspraak(soort=soort)).text


# --- moved and cancelled -------------------------------------------------------------------------


def test_a_move_names_the_old_and_the_new_time() -> None:
    nieuw = afspraak(gepland_op=datetime(2026, 12, 8, 13, 30, tzinfo=UTC))

    mail = afspraak_verzet(AANVRAAG, "werkgever", nieuw, START)

    assert mail.subject.startswith(
        "Uw afspraak is verzet naar dinsdag 8 december 2026 om 14:30 uur"
    )
    assert "De afspraak op donderdag 3 december 2026 om 10:00 uur gaat niet door" in mail.text
    assert "Datum: dinsdag 8 december 2026\n" in mail.text
    assert "vervangt de eerdere uitnodiging" in mail.text


def test_a_move_without_the_old_time_still_gives_the_new_one() -> None:
    mail = afspraak_verzet(AANVRAAG, "werkgever", afspraak(), None)

    assert "is verzet." in mail.text
    assert "gaat niet door" not in mail.text
    assert "Datum: donderdag 3 december 2026\n" in mail.text


def test_a_cancellation_names_the_appointment_and_gives_no_practical_details() -> None:
    mail = afspraak_geannuleerd(AANVRAAG, "werkgever", afspraak())

    assert (
        mail.subject
        == f"Geannuleerd: uw afspraak op donderdag 3 december 2026 (dossier {AANVRAAG})"
    )
    assert "op donderdag 3 december 2026 om 10:00 uur is geannuleerd" in mail.text
    assert LINK not in mail.text  # a cancelled meeting's link is not handed out again


# --- report and escalation -----------------------------------------------------------------------


def test_report_mails_say_where_to_read_and_carry_no_content() -> None:
    rapport_id = str(uuid4())
    for mail in (
        rapport_beschikbaar_bestuurder(AANVRAAG, rapport_id, 3),
        rapport_beschikbaar_werkgever(AANVRAAG, rapport_id, 3),
    ):
        assert "in te loggen bij Weerbaar bestuur" in mail.text
        assert f"rapport {rapport_id}, versie 3" in mail.text
        assert "niet per e-mail" in mail.text


def test_the_bestuurder_learns_the_werkgever_only_gets_it_with_consent() -> None:
    mail = rapport_beschikbaar_bestuurder(AANVRAAG, str(uuid4()), 1)

    assert "Uw werkgever ontvangt het rapport alleen als u daarmee instemt" in mail.text


def test_a_deadline_at_midnight_is_the_end_of_the_day_before() -> None:
    # 22:00 UTC on 30 April is midnight in Amsterdam (CEST): the end of Thursday 30 April.
    mail = contacttermijn_verstreken(
        AANVRAAG, datetime(2026, 4, 30, 22, 0, tzinfo=UTC), datetime(2026, 5, 1, 6, 0, tzinfo=UTC)
    )

    assert "liep af aan het eind van donderdag 30 april 2026" in mail.text
    assert "vastgesteld op vrijdag 1 mei 2026 om 08:00 uur" in mail.text


def test_a_deadline_during_the_day_is_given_with_its_time() -> None:
    mail = contacttermijn_verstreken(
        AANVRAAG, datetime(2026, 4, 30, 15, 0, tzinfo=UTC), datetime(2026, 4, 30, 15, 1, tzinfo=UTC)
    )

    assert "liep af op donderdag 30 april 2026 om 17:00 uur" in mail.text


# --- every template ------------------------------------------------------------------------------


def test_every_template_name_is_a_valid_public_soort_code() -> None:
    # NotificatieVerzonden.soort carries the name: `^[a-z][a-z0-9_]{0,63}$`.
    assert len(TEMPLATES) >= 7
    assert all(re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name) for name in TEMPLATES)
    assert set(AFSPRAAK_TEMPLATES).issubset(TEMPLATES)


@pytest.mark.parametrize(
    "render",
    [
        lambda ref: afspraak_bevestiging(ref, "werkgever", afspraak()),
        lambda ref: afspraak_verzet(ref, "werkgever", afspraak(), START),
        lambda ref: afspraak_geannuleerd(ref, "werkgever", afspraak()),
        lambda ref: rapport_beschikbaar_bestuurder(ref, str(uuid4()), 1),
        lambda ref: rapport_beschikbaar_werkgever(ref, str(uuid4()), 1),
        lambda ref: contacttermijn_verstreken(ref, START, START),
    ],
)
def test_every_new_template_refuses_anything_but_a_uuid_as_reference(render: Any) -> None:
    assert AANVRAAG in render(AANVRAAG).subject
    with pytest.raises(ValueError) as caught:
        render("Jan Jansen, Geheimstraat 7")
    assert str(caught.value) == "aanvraag_id must be a UUID"


# --- who is told ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("soort", "verzoekers", "expected"),
    [
        ("gesprek_werkgever", (), ("werkgever",)),
        ("gesprek_bestuurder", (), ("bestuurder",)),
        ("gesprek_bestuurder", ("werkgever",), ("bestuurder",)),
        ("toelichting", ("werkgever",), ("werkgever",)),
        ("toelichting", ("bestuurder", "werkgever"), ("bestuurder", "werkgever")),
        ("toelichting", (), ("bestuurder", "werkgever")),
    ],
)
def test_who_hears_of_an_appointment(
    soort: str, verzoekers: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert afspraak_ontvangers(soort, verzoekers) == expected


def test_an_unknown_kind_of_appointment_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        afspraak_ontvangers("borrel")


# --- the claim-check answer ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "link",
    ["javascript:alert(1)", "https://a.test/x\r\nBCC: x@y.z", "https://a.test/ x", "ftp://a.test"],
)
def test_an_appointment_with_a_strange_video_link_is_refused(link: str) -> None:
    with pytest.raises(ValidationError) as caught:
        afspraak(video_link=link)
    assert link not in str(caught.value)


def test_an_appointment_time_without_zone_is_refused() -> None:
    with pytest.raises(ValidationError):
        afspraak(gepland_op=datetime(2026, 12, 3, 10, 0))


def test_an_appointment_is_with_every_party_unless_scheduling_says_otherwise() -> None:
    assert afspraak().met("bestuurder")
    assert afspraak(partijen=["werkgever"]).met("werkgever")
    assert not afspraak(partijen=["werkgever"]).met("bestuurder")


# --- the calendar file ---------------------------------------------------------------------------


def test_invitation_has_the_required_itip_properties() -> None:
    event = calendar_event_for(
        afspraak(duur_minuten=90),
        "werkgever",
        uid_domain="weerbaar.test",
        sequence=0,
        organizer="noreply@weerbaar.test",
        attendee="werkgever@example.org",
    )
    ics = calendar_file(event, "REQUEST", STAMP)

    lines = unfold(ics)
    assert lines[:2] == ["BEGIN:VCALENDAR", "VERSION:2.0"]
    assert lines[-1] == "END:VCALENDAR"
    assert ics.endswith("\r\n")
    assert prop(ics, "METHOD") == "REQUEST"
    assert prop(ics, "UID") == event.uid
    assert event.uid.endswith("@weerbaar.test")
    assert prop(ics, "DTSTAMP") == "20261130T080000Z"
    assert prop(ics, "DTSTART") == "20261203T090000Z"
    assert prop(ics, "DTEND") == "20261203T103000Z"
    assert prop(ics, "SEQUENCE") == "0"
    assert prop(ics, "STATUS") == "CONFIRMED"
    assert prop(ics, "LOCATION") == LINK
    assert prop(ics, "ORGANIZER").endswith("mailto:noreply@weerbaar.test")
    assert prop(ics, "ATTENDEE") == "mailto:werkgever@example.org"
    assert lines.index("BEGIN:VEVENT") < lines.index("END:VEVENT")


def test_a_cancellation_keeps_the_uid_and_says_cancelled() -> None:
    item = afspraak()
    request = calendar_file(
        calendar_event_for(
            item, "werkgever", uid_domain="w.test", sequence=0, organizer="n@w.test", attendee=None
        ),
        "REQUEST",
        STAMP,
    )
    cancel = calendar_file(
        calendar_event_for(
            item, "werkgever", uid_domain="w.test", sequence=3, organizer="n@w.test", attendee=None
        ),
        "CANCEL",
        STAMP,
    )

    assert prop(cancel, "UID") == prop(request, "UID") == f"{item.afspraak_id}@w.test"
    assert prop(cancel, "METHOD") == "CANCEL"
    assert prop(cancel, "STATUS") == "CANCELLED"
    assert prop(cancel, "SEQUENCE") == "3"
    assert not any(line.startswith("ATTENDEE") for line in unfold(cancel))


@pytest.mark.parametrize(
    ("item", "ontvanger", "location"),
    [
        (thuis(), "bestuurder", "Thuis (woningscan)"),
        (thuis("toelichting"), "bestuurder", "Thuis"),
        (thuis("toelichting"), "werkgever", "Op locatie (zie e-mail)"),
        (afspraak(video_link=None), "werkgever", "Online (videoverbinding)"),
    ],
)
def test_location_is_never_an_address(item: Afspraak, ontvanger: str, location: str) -> None:
    event = calendar_event_for(
        item, ontvanger, uid_domain="w.test", sequence=0, organizer="n@w.test", attendee=None
    )
    assert prop(calendar_file(event, "REQUEST", STAMP), "LOCATION") == escape_text(location)


@pytest.mark.parametrize("soort", ["gesprek_werkgever", "gesprek_bestuurder", "toelichting"])
def test_summary_names_the_kind_of_appointment_only(soort: str) -> None:
    event = calendar_event_for(
        afspraak(soort=soort),
        "bestuurder",
        uid_domain="w.test",
        sequence=0,
        organizer="n@w.test",
        attendee=None,
    )
    assert event.summary.startswith("Weerbaar bestuur: ")
    assert AANVRAAG not in event.summary


def test_times_in_any_zone_are_written_in_utc() -> None:
    event = CalendarEvent(
        uid="x@w.test",
        sequence=0,
        start=datetime(2026, 7, 1, 9, 30, tzinfo=AMSTERDAM),  # CEST: 07:30 UTC
        duration=timedelta(minutes=45),
        summary="s",
        location="l",
        description="d",
        organizer="n@w.test",
    )
    ics = calendar_file(event, "REQUEST", datetime(2026, 6, 1, 12, 0, tzinfo=AMSTERDAM))

    assert prop(ics, "DTSTART") == "20260701T073000Z"
    assert prop(ics, "DTEND") == "20260701T081500Z"
    assert prop(ics, "DTSTAMP") == "20260601T100000Z"


def test_text_values_are_escaped() -> None:
    assert escape_text("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"


def test_long_lines_are_folded_at_75_octets_without_splitting_a_character() -> None:
    line = "DESCRIPTION:" + "één veilige woning " * 12
    folded = fold(line)

    physical = folded.split("\r\n")
    assert len(physical) > 1
    assert all(len(p.encode("utf-8")) <= 75 for p in physical)
    assert all(p.startswith(" ") for p in physical[1:])
    assert folded.replace("\r\n ", "") == line


@pytest.mark.parametrize(
    "changes",
    [
        {"start": datetime(2026, 12, 3, 10, 0)},
        {"sequence": -1},
        {"duration": timedelta(0)},
        {"uid": "x@w.test\r\nATTENDEE:mailto:evil@x.test"},
        {"attendee": "a@b.test\r\nX:y"},
        {"organizer": "n@w.test;CN=x"},
    ],
)
def test_a_malformed_calendar_event_is_refused(changes: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "uid": "x@w.test",
        "sequence": 0,
        "start": START,
        "duration": timedelta(hours=1),
        "summary": "s",
        "location": "l",
        "description": "d",
        "organizer": "n@w.test",
        "attendee": "a@b.test",
    }
    with pytest.raises(ValueError):
        CalendarEvent(**(fields | changes))


def test_a_naive_stamp_is_refused() -> None:
    event = calendar_event_for(
        afspraak(),
        "werkgever",
        uid_domain="w.test",
        sequence=0,
        organizer="n@w.test",
        attendee=None,
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar_file(event, "REQUEST", datetime(2026, 11, 30, 8, 0))
