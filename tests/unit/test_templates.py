"""Dutch e-mail templates: date formatting, the confirmation text and the template registry."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest

from services.notifications.domain.templates import (
    AMSTERDAM,
    BEVESTIGING_AANVRAAG,
    TEMPLATES,
    RenderedMail,
    UnknownTemplateError,
    bevestiging_aanvraag,
    format_dutch_date,
    render,
    template,
)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 1, 1), "donderdag 1 januari 2026"),
        (date(2026, 2, 1), "zondag 1 februari 2026"),
        (date(2026, 3, 1), "zondag 1 maart 2026"),
        (date(2026, 4, 1), "woensdag 1 april 2026"),
        (date(2026, 5, 1), "vrijdag 1 mei 2026"),
        (date(2026, 6, 1), "maandag 1 juni 2026"),
        (date(2026, 7, 1), "woensdag 1 juli 2026"),
        (date(2026, 8, 1), "zaterdag 1 augustus 2026"),
        (date(2026, 9, 1), "dinsdag 1 september 2026"),
        (date(2026, 10, 1), "donderdag 1 oktober 2026"),
        (date(2026, 11, 1), "zondag 1 november 2026"),
        (date(2026, 12, 1), "dinsdag 1 december 2026"),
    ],
)
def test_every_dutch_month_and_weekday_name(day: date, expected: str) -> None:
    assert format_dutch_date(day) == expected


def test_datetime_is_formatted_as_its_amsterdam_date() -> None:
    assert format_dutch_date(datetime(2026, 12, 3, 9, 0, tzinfo=AMSTERDAM)) == (
        "donderdag 3 december 2026"
    )
    # 23:30 UTC on Thursday is already Friday in Amsterdam (CET, UTC+1).
    assert format_dutch_date(datetime(2026, 12, 3, 23, 30, tzinfo=UTC)) == (
        "vrijdag 4 december 2026"
    )
    # In summer Amsterdam is UTC+2: 22:30 UTC on 30 June is 00:30 on 1 July.
    assert format_dutch_date(datetime(2026, 6, 30, 22, 30, tzinfo=UTC)) == ("woensdag 1 juli 2026")
    assert format_dutch_date(datetime(2026, 6, 30, 21, 30, tzinfo=UTC)) == ("dinsdag 30 juni 2026")


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        format_dutch_date(datetime(2026, 12, 3, 9, 0))


def test_confirmation_gives_reference_contact_promise_and_deadline() -> None:
    aanvraag_id = str(uuid.uuid4())
    deadline = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)

    mail = bevestiging_aanvraag(aanvraag_id, deadline)

    assert aanvraag_id in mail.subject
    assert "Hartelijk dank voor uw aanmelding" in mail.text
    assert "Het secretariaat van het CCV neemt binnen drie werkdagen contact met u op" in mail.text
    assert "uiterlijk op donderdag 3 december 2026" in mail.text
    assert f"Uw dossiernummer is {aanvraag_id}." in mail.text


def test_confirmation_without_deadline_still_promises_three_working_days() -> None:
    mail = bevestiging_aanvraag(str(uuid.uuid4()), None)

    assert "binnen drie werkdagen contact met u op om de gesprekken in te plannen" in mail.text
    assert "uiterlijk" not in mail.text


def test_confirmation_uses_the_amsterdam_date_of_the_deadline() -> None:
    mail = bevestiging_aanvraag(str(uuid.uuid4()), datetime(2026, 12, 3, 23, 30, tzinfo=UTC))

    assert "uiterlijk op vrijdag 4 december 2026" in mail.text


def test_reference_is_printed_in_canonical_form() -> None:
    aanvraag_id = uuid.uuid4()

    mail = bevestiging_aanvraag(str(aanvraag_id).upper(), None)

    assert str(aanvraag_id) in mail.text
    assert str(aanvraag_id).upper() not in mail.text


@pytest.mark.parametrize("wrong", ["jan.jansen@example.org", "Jan Jansen", ""])
def test_anything_but_a_uuid_as_reference_is_refused_without_repeating_it(wrong: str) -> None:
    with pytest.raises(ValueError) as caught:
        bevestiging_aanvraag(wrong, None)

    assert str(caught.value) == "aanvraag_id must be a UUID"


def test_registry_renders_by_name() -> None:
    aanvraag_id = str(uuid.uuid4())
    deadline = datetime(2026, 12, 3, 16, 0, tzinfo=UTC)

    rendered = render(BEVESTIGING_AANVRAAG, aanvraag_id=aanvraag_id, contact_deadline=deadline)

    assert BEVESTIGING_AANVRAAG in TEMPLATES
    assert rendered == bevestiging_aanvraag(aanvraag_id, deadline)
    subject, text = rendered
    assert (subject, text) == (rendered.subject, rendered.text)


def test_unknown_template_name_is_an_error() -> None:
    with pytest.raises(UnknownTemplateError):
        render("bestaat_niet", aanvraag_id=str(uuid.uuid4()))


def test_a_name_cannot_be_registered_twice() -> None:
    def other(aanvraag_id: str) -> RenderedMail:
        return RenderedMail("x", "y")

    with pytest.raises(ValueError, match="already registered"):
        template(BEVESTIGING_AANVRAAG)(other)

    assert TEMPLATES[BEVESTIGING_AANVRAAG] is bevestiging_aanvraag


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        TEMPLATES["nieuw"] = bevestiging_aanvraag  # type: ignore[index]
