"""The forget record beside the KEKs (``shared.platform.forgotten``): durable, one entry per
dossier."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import pytest

from shared.platform.forgotten import ForgetRecord, ForgetRecordError, Forgotten

NU = datetime(2026, 5, 11, 10, 0, tzinfo=UTC)


def _entry(minutes: int = 0) -> Forgotten:
    return Forgotten(
        uuid4(), "verzoek_betrokkene", "p-" + "a" * 32, NU + timedelta(minutes=minutes)
    )


def test_entries_come_back_in_order_once_per_dossier_and_private(tmp_path: Path) -> None:
    record = ForgetRecord(tmp_path / "secrets")
    first, second = _entry(), _entry(1)
    assert record.entries() == []
    assert record.add(first) is True
    assert record.add(second) is True
    later = Forgotten(first.aanvraag_id, "onrechtmatig_verwerkt", "p-" + "b" * 32, NU)
    assert record.add(later) is False, "a dossier forgotten before is not recorded twice"
    assert record.entries() == [first, second]
    assert stat.S_IMODE(record.path.stat().st_mode) == 0o600


def test_a_line_torn_by_a_crash_is_ignored_then_cut_off(tmp_path: Path) -> None:
    record = ForgetRecord(tmp_path)
    first, second = _entry(), _entry(1)
    record.add(first)
    with record.path.open("a") as file:
        file.write(second.to_json()[:25])  # the process died while appending
    assert record.entries() == [first]
    assert record.add(second) is True
    assert record.entries() == [first, second]


def test_a_damaged_line_in_the_middle_stops_rather_than_forgets_less(tmp_path: Path) -> None:
    record = ForgetRecord(tmp_path)
    record.add(_entry())
    with record.path.open("a") as file:
        file.write("not json\n")
    with pytest.raises(ForgetRecordError, match="line 2"):
        record.entries()
    with pytest.raises(ForgetRecordError, match="line 2"):
        record.add(_entry(1))


def test_merging_a_backups_record_adds_what_this_one_lacks(tmp_path: Path) -> None:
    mine, theirs = ForgetRecord(tmp_path / "a"), ForgetRecord(tmp_path / "b")
    shared, only_mine, only_theirs = _entry(), _entry(2), _entry(1)
    for entry in (shared, only_mine):
        mine.add(entry)
    for entry in (shared, only_theirs):
        theirs.add(entry)
    assert mine.merge(theirs.entries()) == [only_theirs]
    assert mine.entries() == [shared, only_theirs, only_mine]
    assert mine.merge(theirs.entries()) == []
    assert stat.S_IMODE(mine.path.stat().st_mode) == 0o600
