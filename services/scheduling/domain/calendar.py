"""Working-day calendar (Algemene termijnenwet, configurable per profile) and working hours.

The calendar sets the contact deadline and, with its working hours, when appointments may lie.
A working day is a Monday to Friday that is not a recognised feestdag of the profile and not one of
its extra days. The default profile recognises exactly the days of artikel 3 Algemene termijnenwet
as listed in domain.md. The `holidays` library supplies the dates; what it calls a Dutch holiday is
checked and corrected here, because it differs from the law:

- it lists Bevrijdingsdag as a public holiday only in lustrum years (the CAO practice); the law
  counts 5 May every year, so the OPTIONAL category, which has it every year, is read as well;
- it lists Eerste paasdag and Eerste pinksterdag, which the law does not name (always Sundays);
- it moves Koningsdag to Saturday 26 April only while `observed=True`; with `observed=False` it
  leaves it on Sunday 27 April, so the flag is pinned and the result is checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from functools import cache
from types import MappingProxyType
from typing import Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from holidays.constants import OPTIONAL, PUBLIC
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# Bevrijdingsdag entered the Atw in 1982; the library stops at its default end year.
FIRST_SUPPORTED_YEAR = 1982
LAST_SUPPORTED_YEAR = 2100

_SATURDAY = 5


class Feestdag(StrEnum):
    """A day the Algemene termijnenwet treats as a Sunday; the value is the settings key."""

    NIEUWJAARSDAG = "nieuwjaarsdag"
    GOEDE_VRIJDAG = "goede_vrijdag"
    TWEEDE_PAASDAG = "tweede_paasdag"
    KONINGSDAG = "koningsdag"
    BEVRIJDINGSDAG = "bevrijdingsdag"
    HEMELVAARTSDAG = "hemelvaartsdag"
    TWEEDE_PINKSTERDAG = "tweede_pinksterdag"
    EERSTE_KERSTDAG = "eerste_kerstdag"
    TWEEDE_KERSTDAG = "tweede_kerstdag"

    @property
    def naam(self) -> str:
        """The Dutch display name, e.g. "2e Paasdag"."""
        return _NAMEN[self]


_NAMEN: Mapping[Feestdag, str] = MappingProxyType(
    {
        Feestdag.NIEUWJAARSDAG: "Nieuwjaarsdag",
        Feestdag.GOEDE_VRIJDAG: "Goede Vrijdag",
        Feestdag.TWEEDE_PAASDAG: "2e Paasdag",
        Feestdag.KONINGSDAG: "Koningsdag",
        Feestdag.BEVRIJDINGSDAG: "Bevrijdingsdag",
        Feestdag.HEMELVAARTSDAG: "Hemelvaartsdag",
        Feestdag.TWEEDE_PINKSTERDAG: "2e Pinksterdag",
        Feestdag.EERSTE_KERSTDAG: "1e Kerstdag",
        Feestdag.TWEEDE_KERSTDAG: "2e Kerstdag",
    }
)

EXTRA_DAY_NAME = "Extra vrije dag"

# The library's own (Dutch, untranslated) names; None marks a day the law does not name.
_LIBRARY_NAMES: Mapping[str, Feestdag | None] = MappingProxyType(
    {
        "Nieuwjaarsdag": Feestdag.NIEUWJAARSDAG,
        "Goede vrijdag": Feestdag.GOEDE_VRIJDAG,
        "Eerste paasdag": None,
        "Tweede paasdag": Feestdag.TWEEDE_PAASDAG,
        "Koningsdag": Feestdag.KONINGSDAG,
        "Koninginnedag": Feestdag.KONINGSDAG,
        "Bevrijdingsdag": Feestdag.BEVRIJDINGSDAG,
        "Hemelvaartsdag": Feestdag.HEMELVAARTSDAG,
        "Eerste pinksterdag": None,
        "Tweede pinksterdag": Feestdag.TWEEDE_PINKSTERDAG,
        "Eerste kerstdag": Feestdag.EERSTE_KERSTDAG,
        "Tweede kerstdag": Feestdag.TWEEDE_KERSTDAG,
    }
)


class CalendarProfile(BaseModel):
    """Which days do not count as working days; loadable from settings with `model_validate`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    timezone: str = "Europe/Amsterdam"
    holidays: frozenset[Feestdag] = frozenset(Feestdag)
    extra_days: frozenset[date] = frozenset()
    excluded_holidays: frozenset[Feestdag] = frozenset()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA timezone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _excluded_are_recognised(self) -> Self:
        # Excluding a day the profile does not list is a configuration mistake, not a no-op.
        stray = self.excluded_holidays - self.holidays
        if stray:
            keys = ", ".join(sorted(stray))
            raise ValueError(f"excluded_holidays lists days not in holidays: {keys}")
        return self

    @property
    def recognised_holidays(self) -> frozenset[Feestdag]:
        """The feestdagen that stop a day from being a working day."""
        return self.holidays - self.excluded_holidays


ALGEMENE_TERMIJNENWET = CalendarProfile(name="algemene_termijnenwet")

PROFILES: Mapping[str, CalendarProfile] = MappingProxyType(
    {ALGEMENE_TERMIJNENWET.name: ALGEMENE_TERMIJNENWET}
)


def profile_from_name(name: str, extra_days: Iterable[date] = ()) -> CalendarProfile:
    """Return the named profile with `extra_days` added (e.g. a CAO day or a closing day)."""
    try:
        base = PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(PROFILES))
        raise ValueError(f"unknown calendar profile {name!r}; known: {known}") from None
    # Validate again so the added days are checked like settings input.
    return CalendarProfile.model_validate(
        {**base.model_dump(), "extra_days": base.extra_days | frozenset(extra_days)}
    )


def _koningsdag(year: int) -> date:
    """The day the King's (before 2014 the Queen's) birthday is celebrated under the Atw."""
    birthday = date(year, 4, 27) if year >= 2014 else date(year, 4, 30)
    return birthday - timedelta(days=1) if birthday.isoweekday() == 7 else birthday


@cache
def _feestdagen(year: int) -> Mapping[date, tuple[Feestdag, ...]]:
    """All Atw feestdagen of `year`, checked against the law; fails loudly if the library drifts."""
    if not FIRST_SUPPORTED_YEAR <= year <= LAST_SUPPORTED_YEAR:
        raise ValueError(
            f"year {year} is outside the supported range "
            f"{FIRST_SUPPORTED_YEAR}-{LAST_SUPPORTED_YEAR}"
        )
    source = holidays.country_holidays(
        "NL", years=year, categories=(PUBLIC, OPTIONAL), language="nl", observed=True
    )
    where: dict[Feestdag, set[date]] = {feestdag: set() for feestdag in Feestdag}
    for day in source:
        for library_name in source.get_list(day):
            if library_name not in _LIBRARY_NAMES:
                raise RuntimeError(
                    f"holidays library reports an unknown NL holiday {library_name!r} on {day}; "
                    "check it against the Algemene termijnenwet"
                )
            feestdag = _LIBRARY_NAMES[library_name]
            if feestdag is not None:
                where[feestdag].add(day)

    missing_or_double = [f for f, days in where.items() if len(days) != 1]
    if missing_or_double:
        raise RuntimeError(
            f"holidays library: not exactly one date in {year} for {missing_or_double}"
        )
    on: dict[Feestdag, date] = {f: next(iter(days)) for f, days in where.items()}

    tweede_paasdag = on[Feestdag.TWEEDE_PAASDAG]
    expected = {
        Feestdag.NIEUWJAARSDAG: date(year, 1, 1),
        Feestdag.GOEDE_VRIJDAG: tweede_paasdag - timedelta(days=3),
        Feestdag.KONINGSDAG: _koningsdag(year),
        Feestdag.BEVRIJDINGSDAG: date(year, 5, 5),
        Feestdag.HEMELVAARTSDAG: tweede_paasdag + timedelta(days=38),
        Feestdag.TWEEDE_PINKSTERDAG: tweede_paasdag + timedelta(days=49),
        Feestdag.EERSTE_KERSTDAG: date(year, 12, 25),
        Feestdag.TWEEDE_KERSTDAG: date(year, 12, 26),
    }
    wrong = {f: on[f] for f, day in expected.items() if on[f] != day}
    if wrong or tweede_paasdag.isoweekday() != 1:
        raise RuntimeError(f"holidays library disagrees with the Atw for {year}: {wrong}")

    by_date: dict[date, list[Feestdag]] = {}
    for feestdag in Feestdag:  # enum order, so names on a shared date read in calendar order
        by_date.setdefault(on[feestdag], []).append(feestdag)
    return MappingProxyType({day: tuple(fs) for day, fs in by_date.items()})


def _plain_date(d: date) -> date:
    # A datetime is a date to the type checker but never equal to one, so lookups would miss.
    if isinstance(d, datetime):
        raise TypeError("expected a date, got a datetime; pass .date() in the intended timezone")
    return d


class WorkingHours(BaseModel):
    """The hours of a working day in which appointments lie (the profile's local time)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time = time(8, 0)
    end: time = time(18, 0)

    @model_validator(mode="after")
    def _start_before_end(self) -> Self:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("working hours are local times, without a time zone")
        if self.start >= self.end:
            raise ValueError("working hours must start before they end")
        return self

    def __str__(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M}"


_STEP = timedelta(minutes=1)


def _whole_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


class WorkingDayCalendar:
    """Answers which days are working days under one `CalendarProfile`, and which moments lie
    within its working hours."""

    def __init__(
        self, profile: CalendarProfile = ALGEMENE_TERMIJNENWET, hours: WorkingHours | None = None
    ) -> None:
        self._profile = profile
        self._hours = hours or WorkingHours()
        self._zone = ZoneInfo(profile.timezone)
        self._recognised = profile.recognised_holidays

    @property
    def profile(self) -> CalendarProfile:
        """The profile this calendar was built from."""
        return self._profile

    @property
    def hours(self) -> WorkingHours:
        """The working hours of each working day."""
        return self._hours

    def local(self, moment: datetime) -> datetime:
        """An aware moment in the profile's time zone; a naive one is refused (which zone?)."""
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError("expected a timezone-aware datetime")
        return moment.astimezone(self._zone)

    def within_working_hours(self, start: datetime, end: datetime) -> bool:
        """True when the whole span from `start` to `end` lies on one working day, within its
        working hours (in the profile's time zone; `end` may equal the end of the hours).

        Raises ValueError for a naive moment or a year the calendar does not cover.
        """
        begin, until = self.local(start), self.local(end)
        if until < begin or until.date() != begin.date():
            return False
        if not self.is_working_day(begin.date()):
            return False
        # Compared as wall-clock times of that day: the hours are local, DST included.
        return self._hours.start <= begin.time() and until.time() <= self._hours.end

    def latest_start(self, at_or_before: datetime, duration: timedelta) -> datetime:
        """The latest whole minute at or before `at_or_before` at which something lasting
        `duration` lies wholly within working hours (UTC). ValueError when it cannot fit in
        a working day."""
        self._fits(duration)
        day = self.local(at_or_before).date()
        while True:
            opening, closing = self._span(day)
            latest = min(_whole_minute(self.local(at_or_before)), closing - duration)
            if self.is_working_day(day) and latest >= opening:
                return _whole_minute(latest).astimezone(UTC)
            day -= timedelta(days=1)

    def earliest_start(self, at_or_after: datetime, duration: timedelta) -> datetime:
        """The earliest whole minute at or after `at_or_after` at which something lasting
        `duration` lies wholly within working hours (UTC). ValueError when it cannot fit in
        a working day."""
        self._fits(duration)
        first = self.local(at_or_after)
        if first != _whole_minute(first):
            first = _whole_minute(first) + _STEP
        day = first.date()
        while True:
            opening, closing = self._span(day)
            earliest = max(first, opening)
            if self.is_working_day(day) and earliest + duration <= closing:
                return earliest.astimezone(UTC)
            day += timedelta(days=1)

    def _span(self, day: date) -> tuple[datetime, datetime]:
        """The working hours of `day` as aware local moments."""
        return (
            datetime.combine(day, self._hours.start, tzinfo=self._zone),
            datetime.combine(day, self._hours.end, tzinfo=self._zone),
        )

    def _fits(self, duration: timedelta) -> None:
        opening = datetime.combine(date(2000, 1, 1), self._hours.start)
        if duration <= timedelta(0) or opening + duration > datetime.combine(
            date(2000, 1, 1), self._hours.end
        ):
            raise ValueError(f"a duration of {duration} does not fit in the working hours")

    def holiday_name(self, d: date) -> str | None:
        """Name of the recognised feestdag or extra day on `d`, else None (weekends are unnamed)."""
        day = _plain_date(d)
        names = [f.naam for f in _feestdagen(day.year).get(day, ()) if f in self._recognised]
        if day in self._profile.extra_days:
            names.append(EXTRA_DAY_NAME)
        return "; ".join(names) or None

    def holidays_in_year(self, year: int) -> dict[date, str]:
        """Every recognised feestdag and extra day of `year` (weekends included), by date."""
        days = set(_feestdagen(year)) | {d for d in self._profile.extra_days if d.year == year}
        named = {d: self.holiday_name(d) for d in sorted(days)}
        return {d: name for d, name in named.items() if name is not None}

    def is_working_day(self, d: date) -> bool:
        """True for a Monday to Friday that is no recognised feestdag and no extra day."""
        day = _plain_date(d)
        holiday = self.holiday_name(day)  # also rejects unsupported years on weekends
        return day.weekday() < _SATURDAY and holiday is None

    def add_working_days(self, start: date, n: int) -> date:
        """The n-th working day after `start` (n >= 1); `start` itself is never counted."""
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        day = _plain_date(start)
        remaining = n
        while remaining:
            day += timedelta(days=1)
            if self.is_working_day(day):
                remaining -= 1
        return day

    def contact_deadline(self, submitted_at: datetime, working_days: int = 3) -> datetime:
        """The end of the n-th working day after the day of submission, as an aware UTC datetime.

        "Binnen drie werkdagen" counts whole working days after the day of receipt, so the
        moment within the submission day does not matter: a submission at 00:01 and one at 23:59
        (profile's local time) get the same deadline, and a submission on a weekend or feestdag
        counts from that day as well. The deadline is the first instant of the local day after
        the last working day, so the whole of that working day is available. Naive datetimes
        are rejected because the local day of submission would be a guess.
        """
        if submitted_at.tzinfo is None or submitted_at.utcoffset() is None:
            raise ValueError(
                "submitted_at must be timezone-aware (e.g. datetime.now(UTC)); got a naive datetime"
            )
        submission_day = submitted_at.astimezone(self._zone).date()
        last_day = self.add_working_days(submission_day, working_days)
        # Local midnight with fold=0 is the first instant of the day, also on a DST change
        # (Europe/Amsterdam changes at 02:00/03:00, never at midnight).
        end = datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=self._zone)
        return end.astimezone(UTC)
