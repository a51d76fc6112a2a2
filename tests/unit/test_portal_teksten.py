"""The words every journey's pages share (``services/portal/application/teksten.py``): Dutch
dates and times across the changes between summer and winter time, a table for every code the
contracts know, and a dossier number read from a search box."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import get_args
from uuid import uuid4

import pytest

from services.intake.projections.dossier import Status
from services.portal.application.teksten import (
    AFSPRAAK_STATUS,
    DOMEIN_NAMEN,
    KOSTEN_NAMEN,
    PRIORITEIT_NAMEN,
    ROL_IN_TIJDLIJN,
    SOORT_NAMEN,
    STATUS_NAMEN,
    STATUS_UITLEG,
    UITVOERDER_NAMEN,
    UITVOERDER_VOOR_BESTUURDER,
    VORM_NAMEN,
    dag_tekst,
    datum_tekst,
    dossiernummer,
    in_woorden,
    lees_moment,
    moment_tekst,
    tijdstip_tekst,
)
from shared.contracts.events import (
    AfspraakSoort,
    AfspraakVorm,
    Domein,
    Kosten,
    Partij,
    Prioriteit,
    Rol,
)

PORTAL = Path(__file__).parents[2] / "services" / "portal"


# --- dates and times -----------------------------------------------------------------------------


def test_a_date_is_said_with_its_weekday_and_month_in_dutch() -> None:
    assert datum_tekst(date(2026, 12, 8)) == "dinsdag 8 december 2026"
    assert datum_tekst(date(2027, 1, 31)) == "zondag 31 januari 2027"


@pytest.mark.parametrize(
    ("utc", "minuut", "seconde"),
    [
        # 25 October 2026: summer time ends at 01:00 UTC (03:00 CEST becomes 02:00 CET).
        ("2026-10-25T00:30:00Z", "zondag 25 oktober 2026 om 02:30", "02:30:00"),
        ("2026-10-25T01:30:00Z", "zondag 25 oktober 2026 om 02:30", "02:30:00"),
        ("2026-10-25T02:30:00Z", "zondag 25 oktober 2026 om 03:30", "03:30:00"),
        # 29 March 2026: summer time starts at 01:00 UTC (02:00 CET becomes 03:00 CEST).
        ("2026-03-29T00:59:59Z", "zondag 29 maart 2026 om 01:59", "01:59:59"),
        ("2026-03-29T01:00:00Z", "zondag 29 maart 2026 om 03:00", "03:00:00"),
        # Late in the evening in UTC is the next day in the Netherlands.
        ("2026-12-31T23:30:05+00:00", "vrijdag 1 januari 2027 om 00:30", "00:30:05"),
        # A moment given with another offset is shown in Dutch time all the same.
        ("2026-07-01T09:15:00-04:00", "woensdag 1 juli 2026 om 15:15", "15:15:00"),
    ],
)
def test_moments_are_shown_in_dutch_time_summer_and_winter(
    utc: str, minuut: str, seconde: str
) -> None:
    assert moment_tekst(utc) == minuut
    assert tijdstip_tekst(utc) == f"{minuut[: -len('00:00')]}{seconde}"
    assert moment_tekst(lees_moment(utc)) == minuut


def test_the_day_of_a_moment_is_the_dutch_day_and_a_date_is_itself() -> None:
    assert dag_tekst("2026-10-24T22:30:00Z") == "zondag 25 oktober 2026"  # 00:30 CEST
    assert dag_tekst("2026-12-31T22:59:59Z") == "donderdag 31 december 2026"
    assert dag_tekst("2026-12-31T23:00:00Z") == "vrijdag 1 januari 2027"
    assert dag_tekst("2027-01-31") == "zondag 31 januari 2027"
    assert dag_tekst(date(2027, 1, 31)) == "zondag 31 januari 2027"
    assert dag_tekst(datetime(2026, 10, 25, 23, 30, tzinfo=UTC)) == "maandag 26 oktober 2026"


def test_no_moment_is_an_empty_text_and_a_broken_one_fails_loudly() -> None:
    for leeg in (None, ""):
        assert moment_tekst(leeg) == ""
        assert tijdstip_tekst(leeg) == ""
        assert dag_tekst(leeg) == ""
        assert lees_moment(leeg) is None
    with pytest.raises(ValueError):
        moment_tekst("gisteren")


def test_the_z_and_an_offset_are_the_same_moment() -> None:
    z = lees_moment("2026-05-12T10:00:00Z")
    assert z == lees_moment("2026-05-12T12:00:00+02:00")
    assert z is not None and z.utcoffset() is not None


# --- tables for every code the contracts know ----------------------------------------------------


def test_every_dossier_status_intake_knows_has_its_words_and_the_bestuurders() -> None:
    statussen = set(get_args(Status))
    assert set(STATUS_NAMEN) == statussen
    assert set(STATUS_UITLEG) == statussen
    assert all(STATUS_NAMEN.values())
    assert all(waar and wat_nu for waar, wat_nu in STATUS_UITLEG.values())


def test_every_domain_priority_cost_and_party_of_a_measure_has_its_words() -> None:
    assert list(DOMEIN_NAMEN) == [d.value for d in Domein]  # the report's order
    assert set(PRIORITEIT_NAMEN) == {p.value for p in Prioriteit}
    assert set(KOSTEN_NAMEN) == {k.value for k in Kosten}
    assert set(UITVOERDER_NAMEN) == set(UITVOERDER_VOOR_BESTUURDER) == {p.value for p in Partij}


def test_every_kind_and_form_of_appointment_and_every_role_has_its_words() -> None:
    assert set(SOORT_NAMEN) == {s.value for s in AfspraakSoort}
    assert set(VORM_NAMEN) == {v.value for v in AfspraakVorm}
    assert set(AFSPRAAK_STATUS) == {"gepland", "gevoerd", "geannuleerd"}
    assert set(ROL_IN_TIJDLIJN) == {r.value for r in Rol} | {"dienst"}


def test_a_code_without_words_is_shown_as_it_is() -> None:
    assert in_woorden(DOMEIN_NAMEN, "informatie") == "Informatie (digitaal)"
    assert in_woorden(DOMEIN_NAMEN, "nieuw_domein") == "nieuw_domein"
    assert in_woorden(DOMEIN_NAMEN, None) == "None"


# --- a dossier number ----------------------------------------------------------------------------


def test_a_dossier_number_is_found_with_or_without_hyphens() -> None:
    nummer = uuid4()
    assert dossiernummer(f"  {nummer}  ") == nummer
    assert dossiernummer(nummer.hex.upper()) == nummer
    assert dossiernummer("6f1c") is None
    assert dossiernummer("Anna de Vries") is None


# --- one place --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kopie",
    [
        r'ZoneInfo\("Europe/Amsterdam"\)',
        r"^(DAGEN|MAANDEN) = ",
        r"^def (datum_tekst|moment_tekst|dossiernummer|_moment)\(",
        r"^(STATUS_NAMEN|DOMEIN_NAMEN|DOMEINEN|PRIORITEIT\w*|SOORT_NAMEN|UUID_PATROON)\b.*=",
    ],
)
def test_the_shared_words_are_defined_in_one_module_only(kopie: str) -> None:
    elders = [
        bestand.relative_to(PORTAL).as_posix()
        for bestand in PORTAL.rglob("*.py")
        if bestand.name != "teksten.py"
        and re.search(kopie, bestand.read_text(encoding="utf-8"), re.MULTILINE)
    ]
    assert elders == []
