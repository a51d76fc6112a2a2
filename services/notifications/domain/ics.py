"""Calendar invitations for appointment mails (iCalendar, RFC 5545, with iTIP methods, RFC 5546).

One appointment is one VEVENT whose UID never changes; a moved appointment is sent again with a
higher SEQUENCE, a cancelled one with METHOD:CANCEL, so calendar programs update or remove the
entry they already have instead of adding a second one. Times are written in UTC (the `Z` form),
which every client converts to its own zone. What goes into the file is chosen by the caller and
must hold no personal data beyond the recipient's own address: calendars are often shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

__all__ = ["CalendarEvent", "Method", "calendar_file", "escape_text", "fold"]

Method = Literal["REQUEST", "CANCEL"]

PRODID = "-//CCV//Weerbaar bestuur//NL"
_MAX_OCTETS = 75


@dataclass(frozen=True)
class CalendarEvent:
    """One appointment as a calendar entry."""

    uid: str
    sequence: int
    start: datetime
    duration: timedelta
    summary: str
    location: str
    description: str
    organizer: str
    attendee: str | None = None

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        if self.sequence < 0:
            raise ValueError("sequence cannot be negative")
        if self.duration <= timedelta(0):
            raise ValueError("duration must be positive")
        # These are written unescaped (UID is TEXT-like, the addresses are URIs after mailto:).
        if any(c in self.uid for c in "\r\n"):
            raise ValueError("uid contains a line break")
        for address in (self.organizer, self.attendee or ""):
            if any(c in address for c in '\r\n;:,"'):
                raise ValueError("organizer and attendee must be bare e-mail addresses")


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def escape_text(value: str) -> str:
    """Escape a TEXT value (RFC 5545 §3.3.11): backslash, semicolon, comma and line breaks."""
    value = value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")
    return value.replace("\r\n", "\\n").replace("\r", "\\n").replace("\n", "\\n")


def fold(line: str) -> str:
    """Fold a content line at 75 octets (RFC 5545 §3.1) without splitting a UTF-8 character."""
    parts: list[str] = []
    current = ""
    size = 0
    for char in line:
        width = len(char.encode("utf-8"))
        # Continuation lines start with a space, which counts towards their 75 octets.
        limit = _MAX_OCTETS if not parts else _MAX_OCTETS - 1
        if size + width > limit:
            parts.append(current)
            current, size = "", 0
        current += char
        size += width
    parts.append(current)
    return "\r\n ".join(parts)


def calendar_file(event: CalendarEvent, method: Method, stamp: datetime) -> str:
    """The iCalendar file that invites to (REQUEST) or cancels (CANCEL) the appointment."""
    if stamp.tzinfo is None or stamp.utcoffset() is None:
        raise ValueError("stamp must be timezone-aware")
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        f"METHOD:{method}",
        "BEGIN:VEVENT",
        f"UID:{event.uid}",
        f"DTSTAMP:{_utc(stamp)}",
        f"DTSTART:{_utc(event.start)}",
        f"DTEND:{_utc(event.start + event.duration)}",
        f"SEQUENCE:{event.sequence}",
        f"SUMMARY:{escape_text(event.summary)}",
        f"LOCATION:{escape_text(event.location)}",
        f"DESCRIPTION:{escape_text(event.description)}",
        f"STATUS:{'CANCELLED' if method == 'CANCEL' else 'CONFIRMED'}",
        "TRANSP:OPAQUE",
        f'ORGANIZER;CN="CCV Weerbaar bestuur":mailto:{event.organizer}',
    ]
    if event.attendee is not None:
        # RSVP=FALSE: answers would go to an address nobody reads; changes go via the secretariaat.
        lines.append(
            "ATTENDEE;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=FALSE"
            f":mailto:{event.attendee}"
        )
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "".join(fold(line) + "\r\n" for line in lines)
