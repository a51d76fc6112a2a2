"""Working-day calendar and contact deadline, checked by hand against a real calendar.

Every expected date below was worked out by hand from a wall calendar (weekday noted in the
comment) and the Europe/Amsterdam DST changes of 2026 (29 March 02:00 CET -> 03:00 CEST,
25 October 03:00 CEST -> 02:00 CET). A deadline is local midnight after the last working day,
so in UTC it is 22:00 (summer time) or 23:00 (winter time) on that last working day.
"""

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import pytest
from pydantic import ValidationError

from services.scheduling.domain.calendar import (
    ALGEMENE_TERMIJNENWET,
    CalendarProfile,
    Feestdag,
    WorkingDayCalendar,
    WorkingHours,
    _feestdagen,
    profile_from_name,
)
from shared.platform.settings import Settings

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
ATW = WorkingDayCalendar(ALGEMENE_TERMIJNENWET)


def local(y: int, m: int, d: int, hh: int = 12, mm: int = 0) -> datetime:
    """A submission moment on the Amsterdam wall clock."""
    return datetime(y, m, d, hh, mm, tzinfo=AMSTERDAM)


def utc(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=UTC)


# --- which days are feestdagen ------------------------------------------------------------------


def test_2026_has_exactly_the_nine_atw_feestdagen() -> None:
    # Easter Sunday 2026 is 5 April; Eerste paas- and pinksterdag are Sundays and not listed.
    assert ATW.holidays_in_year(2026) == {
        date(2026, 1, 1): "Nieuwjaarsdag",  # Thu
        date(2026, 4, 3): "Goede Vrijdag",  # Fri
        date(2026, 4, 6): "2e Paasdag",  # Mon
        date(2026, 4, 27): "Koningsdag",  # Mon
        date(2026, 5, 5): "Bevrijdingsdag",  # Tue, not a lustrum year
        date(2026, 5, 14): "Hemelvaartsdag",  # Thu
        date(2026, 5, 25): "2e Pinksterdag",  # Mon
        date(2026, 12, 25): "1e Kerstdag",  # Fri
        date(2026, 12, 26): "2e Kerstdag",  # Sat
    }


def test_2025_koningsdag_moves_to_saturday_because_27_april_is_a_sunday() -> None:
    # Easter Sunday 2025 is 20 April.
    assert ATW.holidays_in_year(2025) == {
        date(2025, 1, 1): "Nieuwjaarsdag",  # Wed
        date(2025, 4, 18): "Goede Vrijdag",  # Fri
        date(2025, 4, 21): "2e Paasdag",  # Mon
        date(2025, 4, 26): "Koningsdag",  # Sat, because 27 April 2025 is a Sunday
        date(2025, 5, 5): "Bevrijdingsdag",  # Mon
        date(2025, 5, 29): "Hemelvaartsdag",  # Thu
        date(2025, 6, 9): "2e Pinksterdag",  # Mon
        date(2025, 12, 25): "1e Kerstdag",  # Thu
        date(2025, 12, 26): "2e Kerstdag",  # Fri
    }


@pytest.mark.parametrize(
    ("day", "working", "name"),
    [
        (date(2026, 4, 3), False, "Goede Vrijdag"),  # Fri
        (date(2026, 4, 6), False, "2e Paasdag"),  # Mon
        (date(2026, 4, 27), False, "Koningsdag"),  # Mon, 27 April on a weekday
        (date(2026, 5, 5), False, "Bevrijdingsdag"),  # Tue, every year under the Atw
        (date(2027, 5, 5), False, "Bevrijdingsdag"),  # Wed, also not a lustrum year
        (date(2026, 5, 14), False, "Hemelvaartsdag"),  # Thu
        (date(2026, 5, 25), False, "2e Pinksterdag"),  # Mon
        (date(2014, 4, 26), False, "Koningsdag"),  # Sat, the first Koningsdag (27th a Sunday)
        (date(2025, 4, 27), False, None),  # Sun: a weekend, not Koningsdag
        (date(2025, 4, 28), True, None),  # Mon: Koningsdag is not moved to the Monday
        (date(2026, 4, 5), False, None),  # Easter Sunday: a weekend, not a named feestdag
        (date(2026, 4, 2), True, None),  # Thu before Goede Vrijdag
        (date(2026, 5, 15), True, None),  # Fri after Hemelvaart: only a profile makes it free
        (date(2016, 5, 5), False, "Bevrijdingsdag; Hemelvaartsdag"),  # Thu, both at once
    ],
)
def test_working_days_and_names(day: date, working: bool, name: str | None) -> None:
    assert ATW.is_working_day(day) is working
    assert ATW.holiday_name(day) == name


def test_library_drift_from_the_atw_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    # With observed=False the library leaves Koningsdag 2025 on Sunday 27 April; a future
    # library release doing that must stop the calendar rather than give wrong deadlines.
    real = holidays.country_holidays

    def drifted(*args: Any, **kwargs: Any) -> holidays.HolidayBase:
        return real(*args, **{**kwargs, "observed": False})

    monkeypatch.setattr(holidays, "country_holidays", drifted)
    _feestdagen.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="disagrees with the Atw for 2025"):
            ATW.is_working_day(date(2025, 4, 28))
    finally:
        _feestdagen.cache_clear()


# --- add_working_days ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        (date(2026, 3, 6), 1, date(2026, 3, 9)),  # Fri -> Mon
        (date(2026, 3, 7), 1, date(2026, 3, 9)),  # Sat -> Mon
        (date(2026, 3, 9), 1, date(2026, 3, 10)),  # Mon -> Tue, start itself not counted
        (date(2026, 4, 2), 1, date(2026, 4, 7)),  # Thu -> skip Goede Vrijdag, weekend, 2e Paasdag
        (date(2026, 12, 31), 1, date(2027, 1, 4)),  # Thu -> skip Nieuwjaarsdag (Fri), weekend
        (date(2026, 3, 2), 10, date(2026, 3, 16)),  # Mon + two full weeks
    ],
)
def test_add_working_days(start: date, n: int, expected: date) -> None:
    assert ATW.add_working_days(start, n) == expected


# --- contact_deadline ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("submitted_at", "expected"),
    [
        pytest.param(
            # Fri 25 Apr 2025: Mon 28, Tue 29, Wed 30. Koningsdag fell on Sat 26 April; moving it
            # to Monday (the library's rule with observed=False) would push this to 1 May.
            local(2025, 4, 25, 10),
            utc(2025, 4, 30, 22),
            id="koningsdag-on-saturday-2025-does-not-shift-monday",
        ),
        pytest.param(
            # Fri 24 Apr 2026: Mon 27 is Koningsdag; Tue 28, Wed 29, Thu 30.
            local(2026, 4, 24, 10),
            utc(2026, 4, 30, 22),
            id="koningsdag-on-monday-2026",
        ),
        pytest.param(
            # Wed 1 Apr 2026: Thu 2; Fri 3 Goede Vrijdag, weekend, Mon 6 2e Paasdag; Tue 7, Wed 8.
            local(2026, 4, 1, 10),
            utc(2026, 4, 8, 22),
            id="goede-vrijdag-and-2e-paasdag-2026",
        ),
        pytest.param(
            # Mon 4 May 2026: Tue 5 Bevrijdingsdag; Wed 6, Thu 7, Fri 8.
            local(2026, 5, 4, 10),
            utc(2026, 5, 8, 22),
            id="bevrijdingsdag-non-lustrum-2026",
        ),
        pytest.param(
            # Wed 13 May 2026: Thu 14 Hemelvaartsdag; Fri 15, Mon 18, Tue 19.
            local(2026, 5, 13, 10),
            utc(2026, 5, 19, 22),
            id="hemelvaartsdag-2026",
        ),
        pytest.param(
            # Fri 22 May 2026: weekend, Mon 25 2e Pinksterdag; Tue 26, Wed 27, Thu 28.
            local(2026, 5, 22, 10),
            utc(2026, 5, 28, 22),
            id="2e-pinksterdag-2026",
        ),
        pytest.param(
            # Mon 23 Dec 2024: Tue 24; Wed 25, Thu 26 Kerst; Fri 27, Mon 30.
            local(2024, 12, 23, 10),
            utc(2024, 12, 30, 23),
            id="kerst-on-weekdays-2024",
        ),
        pytest.param(
            # Mon 30 Dec 2024: Tue 31; Wed 1 Jan 2025 Nieuwjaarsdag; Thu 2, Fri 3.
            local(2024, 12, 30, 16),
            utc(2025, 1, 3, 23),
            id="30-december-across-nieuwjaarsdag",
        ),
        pytest.param(
            # Wed 24 Dec 2025: Thu 25, Fri 26 Kerst, weekend; Mon 29, Tue 30, Wed 31. The deadline
            # is the first instant of Nieuwjaarsdag 2026.
            local(2025, 12, 24, 10),
            utc(2025, 12, 31, 23),
            id="kerst-and-weekend-into-new-year-2025",
        ),
        pytest.param(
            # Wed 30 Dec 2026: Thu 31; Fri 1 Jan 2027 Nieuwjaarsdag, weekend; Mon 4, Tue 5.
            local(2026, 12, 30, 10),
            utc(2027, 1, 5, 23),
            id="30-december-2026",
        ),
        pytest.param(
            # Thu 31 Dec 2026 late evening: Fri 1 Jan Nieuwjaarsdag, weekend; Mon 4, Tue 5, Wed 6.
            local(2026, 12, 31, 23, 30),
            utc(2027, 1, 6, 23),
            id="31-december-2026-evening",
        ),
        pytest.param(
            # 23 Dec 23:30 UTC is already Thu 24 Dec 00:30 in Amsterdam, so it counts from the
            # 24th: Fri 25 Kerst, weekend; Mon 28, Tue 29, Wed 30. (From the 23rd it would be 30
            # Dec 00:00 local.)
            utc(2026, 12, 23, 23, 30),
            utc(2026, 12, 30, 23),
            id="submission-day-is-the-local-day-not-the-utc-day",
        ),
        pytest.param(
            # Fri 6 Mar 2026 21:45: weekend; Mon 9, Tue 10, Wed 11.
            local(2026, 3, 6, 21, 45),
            utc(2026, 3, 11, 23),
            id="friday-evening-across-weekend",
        ),
        pytest.param(
            # Thu 5 Mar 2026 18:30 in New York is Fri 6 Mar 00:30 in Amsterdam: counts from Fri.
            datetime(2026, 3, 5, 18, 30, tzinfo=ZoneInfo("America/New_York")),
            utc(2026, 3, 11, 23),
            id="foreign-offset-is-converted-to-the-profile-day",
        ),
        pytest.param(
            # Thu 26 Mar 2026 12:00 CET: Fri 27; DST on Sun 29; Mon 30, Tue 31. Deadline Wed 1 Apr
            # 00:00 CEST, which is 22:00 UTC, not 23:00 as at submission time.
            local(2026, 3, 26, 12),
            utc(2026, 3, 31, 22),
            id="dst-start-march-2026",
        ),
        pytest.param(
            # Sun 29 Mar 2026 03:30 CEST, just after the change: Mon 30, Tue 31, Wed 1 Apr.
            utc(2026, 3, 29, 1, 30),
            utc(2026, 4, 1, 22),
            id="submitted-on-dst-start-sunday",
        ),
        pytest.param(
            # Thu 22 Oct 2026 09:00 CEST: Fri 23; DST ends Sun 25; Mon 26, Tue 27. Deadline Wed 28
            # 00:00 CET, which is 23:00 UTC.
            local(2026, 10, 22, 9),
            utc(2026, 10, 27, 23),
            id="dst-end-october-2026",
        ),
        pytest.param(
            # Sun 25 Oct 2026 00:30 UTC is 02:30 CEST, the first pass of the repeated hour.
            utc(2026, 10, 25, 0, 30),
            utc(2026, 10, 28, 23),
            id="submitted-in-repeated-hour",
        ),
    ],
)
def test_contact_deadline(submitted_at: datetime, expected: datetime) -> None:
    deadline = ATW.contact_deadline(submitted_at)

    assert deadline == expected
    assert deadline.tzinfo is UTC


@pytest.mark.parametrize("clock", [time(0, 0), time(8, 30), time(23, 59, 59, 999999)])
def test_moment_within_the_submission_day_does_not_matter(clock: time) -> None:
    # Tue 10 Mar 2026: Wed 11, Thu 12, Fri 13 -> Sat 14 00:00 CET.
    submitted_at = datetime.combine(date(2026, 3, 10), clock, tzinfo=AMSTERDAM)
    assert ATW.contact_deadline(submitted_at) == utc(2026, 3, 13, 23)


def test_number_of_working_days_is_configurable() -> None:
    # Fri 6 Mar 2026: Mon 9 (1), ..., Fri 13 (5).
    assert ATW.contact_deadline(local(2026, 3, 6), working_days=1) == utc(2026, 3, 9, 23)
    assert ATW.contact_deadline(local(2026, 3, 6), working_days=5) == utc(2026, 3, 13, 23)


def test_naive_submission_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ATW.contact_deadline(datetime(2026, 3, 6, 12, 0))


@pytest.mark.parametrize("n", [0, -1])
def test_non_positive_number_of_working_days_is_rejected(n: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ATW.add_working_days(date(2026, 3, 6), n)
    with pytest.raises(ValueError, match="at least 1"):
        ATW.contact_deadline(local(2026, 3, 6), working_days=n)


def test_datetime_where_a_date_is_expected_is_rejected() -> None:
    # A datetime never equals a date, so a holiday lookup would silently miss.
    with pytest.raises(TypeError, match="expected a date"):
        ATW.is_working_day(datetime(2026, 4, 3, 12, tzinfo=UTC))


def test_year_outside_supported_range_is_rejected() -> None:
    with pytest.raises(ValueError, match="outside the supported range"):
        ATW.is_working_day(date(1981, 6, 6))  # a Saturday: still refused, not guessed


# --- profiles -----------------------------------------------------------------------------------


def test_extra_days_profile_makes_the_day_after_hemelvaart_free() -> None:
    # A collective closing day on Fri 15 May 2026 (the Besluit gelijkstelling also names it).
    calendar = WorkingDayCalendar(profile_from_name("algemene_termijnenwet", [date(2026, 5, 15)]))

    assert not calendar.is_working_day(date(2026, 5, 15))
    assert calendar.holiday_name(date(2026, 5, 15)) == "Extra vrije dag"
    # Wed 13 May: Thu 14 Hemelvaartsdag, Fri 15 extra day; Mon 18, Tue 19, Wed 20.
    assert calendar.contact_deadline(local(2026, 5, 13, 10)) == utc(2026, 5, 20, 22)
    # The shared default profile is unchanged.
    assert ATW.is_working_day(date(2026, 5, 15))
    assert ALGEMENE_TERMIJNENWET.extra_days == frozenset()


def test_excluded_holiday_counts_as_a_working_day() -> None:
    calendar = WorkingDayCalendar(
        CalendarProfile(name="zonder-goede-vrijdag", excluded_holidays={Feestdag.GOEDE_VRIJDAG})
    )

    assert calendar.is_working_day(date(2026, 4, 3))
    assert calendar.holiday_name(date(2026, 4, 3)) is None
    assert not calendar.is_working_day(date(2026, 4, 6))  # 2e Paasdag still recognised
    # Wed 1 Apr: Thu 2, Fri 3; weekend, Mon 6 2e Paasdag; Tue 7 -> Wed 8 00:00 CEST.
    assert calendar.contact_deadline(local(2026, 4, 1, 10)) == utc(2026, 4, 7, 22)


def test_excluding_one_of_two_feestdagen_on_the_same_day_keeps_the_other() -> None:
    calendar = WorkingDayCalendar(
        CalendarProfile(name="cao", excluded_holidays={Feestdag.BEVRIJDINGSDAG})
    )

    assert not calendar.is_working_day(date(2016, 5, 5))
    assert calendar.holiday_name(date(2016, 5, 5)) == "Hemelvaartsdag"
    assert calendar.is_working_day(date(2026, 5, 5))


def test_profile_timezone_decides_the_submission_day() -> None:
    calendar = WorkingDayCalendar(CalendarProfile(name="utc", timezone="UTC"))
    # Thu 5 Mar 2026 23:30 UTC is Thursday in UTC: Fri 6, Mon 9, Tue 10 -> Wed 11 00:00 UTC.
    assert calendar.contact_deadline(utc(2026, 3, 5, 23, 30)) == utc(2026, 3, 11, 0)
    # The same instant is Friday in Amsterdam: Mon 9, Tue 10, Wed 11.
    assert ATW.contact_deadline(utc(2026, 3, 5, 23, 30)) == utc(2026, 3, 11, 23)


def test_profile_loads_from_settings_data() -> None:
    profile = CalendarProfile.model_validate(
        {
            "name": "cao-voorbeeld",
            "timezone": "Europe/Amsterdam",
            "extra_days": ["2026-05-15"],
            "excluded_holidays": ["goede_vrijdag"],
        }
    )
    calendar = WorkingDayCalendar(profile)

    assert not calendar.is_working_day(date(2026, 5, 15))
    assert calendar.is_working_day(date(2026, 4, 3))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "x", "timezone": "Europe/Amsterdm"}, "unknown IANA timezone"),
        ({"name": "x", "excluded_holidays": ["sinterklaas"]}, "excluded_holidays"),
        (
            {"name": "x", "holidays": ["nieuwjaarsdag"], "excluded_holidays": ["koningsdag"]},
            "not in holidays: koningsdag",
        ),
        ({"name": "x", "extra_day": ["2026-05-15"]}, "extra_day"),
        ({"name": ""}, "name"),
    ],
)
def test_invalid_settings_are_rejected(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        CalendarProfile.model_validate(data)


def test_unknown_profile_name_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown calendar profile 'cao-bouw'"):
        profile_from_name("cao-bouw")


# --- properties over every day of several years --------------------------------------------------
# hypothesis is not installed, so this sweeps every submission day of 2024-2027 exhaustively.


def test_deadline_properties_hold_for_every_submission_day() -> None:
    day = date(2024, 1, 1)
    while day.year < 2028:
        for clock in (time(0, 0), time(23, 59, 59)):
            submitted_at = datetime.combine(day, clock, tzinfo=AMSTERDAM)
            for n in (1, 3, 5):
                deadline = ATW.contact_deadline(submitted_at, working_days=n)
                deadline_local = deadline.astimezone(AMSTERDAM)

                assert deadline > submitted_at
                # A working-day boundary: local midnight right after a working day.
                assert deadline_local.time() == time(0, 0)
                last_day = deadline_local.date() - timedelta(days=1)
                assert ATW.is_working_day(last_day)
                # Exactly n working days after the submission day, up to and including last_day.
                between = [day + timedelta(days=i) for i in range(1, (last_day - day).days + 1)]
                assert sum(ATW.is_working_day(d) for d in between) == n
        day += timedelta(days=1)


# --- working hours (appointments) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "within"),
    [
        (local(2026, 3, 10, 8), local(2026, 3, 10, 18), True),  # Tue, the whole day
        (local(2026, 3, 10, 7, 59), local(2026, 3, 10, 9), False),
        (local(2026, 3, 10, 17), local(2026, 3, 10, 18, 1), False),
        (local(2026, 3, 10, 23), local(2026, 3, 11, 9), False),  # across midnight
        (local(2026, 3, 14, 10), local(2026, 3, 14, 11), False),  # Sat
        (local(2026, 4, 6, 10), local(2026, 4, 6, 11), False),  # 2e Paasdag
        # Mon 30 Mar, the day after the change to summer time: 08:00 CEST is 06:00 UTC.
        (utc(2026, 3, 30, 6), utc(2026, 3, 30, 7), True),
        (utc(2026, 3, 30, 5, 59), utc(2026, 3, 30, 7), False),
        # Tue 3 Mar, winter time: 17:00 UTC is 18:00 CET, the end of the day.
        (utc(2026, 3, 3, 16), utc(2026, 3, 3, 17), True),
    ],
)
def test_within_working_hours_in_the_profiles_time_zone(
    start: datetime, end: datetime, within: bool
) -> None:
    assert ATW.within_working_hours(start, end) is within


def test_working_hours_are_configurable_and_checked() -> None:
    early = WorkingDayCalendar(hours=WorkingHours(start=time(7), end=time(15, 30)))
    assert early.within_working_hours(local(2026, 3, 10, 7), local(2026, 3, 10, 8))
    assert not early.within_working_hours(local(2026, 3, 10, 15), local(2026, 3, 10, 16))
    assert str(early.hours) == "07:00–15:30"
    with pytest.raises(ValidationError, match="start before they end"):
        WorkingHours(start=time(18), end=time(8))
    with pytest.raises(ValueError, match="timezone-aware"):
        ATW.within_working_hours(datetime(2026, 3, 10, 9), datetime(2026, 3, 10, 10))


def test_latest_and_earliest_start_within_working_hours() -> None:
    hour = timedelta(hours=1)
    # Sun 8 Mar 23:00: the latest start is Fri 6 Mar 17:00, the earliest Mon 9 Mar 08:00.
    assert ATW.latest_start(local(2026, 3, 8, 23), hour) == local(2026, 3, 6, 17)
    assert ATW.earliest_start(local(2026, 3, 8, 23), hour) == local(2026, 3, 9, 8)
    # Within the hours: the moment itself, to the whole minute (earlier, or later).
    moment = local(2026, 3, 10, 9, 30) + timedelta(seconds=5)
    assert ATW.latest_start(moment, hour) == local(2026, 3, 10, 9, 30)
    assert ATW.earliest_start(moment, hour) == local(2026, 3, 10, 9, 31)
    # Thu 2 Apr 17:30: too late for an hour today; Fri 3 Apr is Goede Vrijdag, Mon 6 2e Paasdag.
    assert ATW.latest_start(local(2026, 4, 2, 17, 30), hour) == local(2026, 4, 2, 17)
    assert ATW.earliest_start(local(2026, 4, 2, 17, 30), hour) == local(2026, 4, 7, 8)
    with pytest.raises(ValueError, match="does not fit"):
        ATW.latest_start(local(2026, 3, 10, 12), timedelta(hours=11))


def test_working_hours_settings_are_read_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    required = {"database_url": "postgresql://127.0.0.1/weerbaar", "nats_url": "nats://127.0.0.1"}
    for name in ("WEERBAAR_WORKING_HOURS_START", "WEERBAAR_WORKING_HOURS_END"):
        monkeypatch.delenv(name, raising=False)
    assert (Settings(**required).working_hours_start, Settings(**required).working_hours_end) == (
        time(8),
        time(18),
    )
    monkeypatch.setenv("WEERBAAR_WORKING_HOURS_START", "07:30")
    monkeypatch.setenv("WEERBAAR_WORKING_HOURS_END", "16:00")
    assert (Settings(**required).working_hours_start, Settings(**required).working_hours_end) == (
        time(7, 30),
        time(16),
    )
    for start, end, wrong in (
        ("18:00", "08:00", "WEERBAAR_WORKING_HOURS_END"),
        ("08:00+01:00", "18:00", "WEERBAAR_WORKING_HOURS_START"),
    ):
        monkeypatch.setenv("WEERBAAR_WORKING_HOURS_START", start)
        monkeypatch.setenv("WEERBAAR_WORKING_HOURS_END", end)
        with pytest.raises(ValidationError) as exc:
            Settings(**required)
        assert [e["loc"] for e in exc.value.errors()] == [
            (wrong.removeprefix("WEERBAAR_").lower(),)
        ]
