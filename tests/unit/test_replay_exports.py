"""Reading the services' exports (``shared.platform.replay``): several side by side, each in its
log's order, within a budget, and never a malformed line taken for an event.

The exports here are small processes of their own (a command line given as ``ServiceCommand``,
as a rebuild gives the services' ones) that print prepared lines.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest
from pydantic import ValidationError

from shared.contracts import events as public
from shared.contracts.registry import to_cloudevent
from shared.platform import rebuild
from shared.platform.relay import POSITION_SCALE
from shared.platform.replay import (
    Loaded,
    SideBySide,
    StoreExport,
    parse_line,
)


def _line(notification_id: int, count: int = 1) -> str:
    envelopes = [
        to_cloudevent(
            public.AanvraagIngediend(
                aanvraag_id=uuid4(),
                ingediend_op=datetime.now(UTC),
                ingediend_door=public.Partij.WERKGEVER,
                organisatie_code="GM0363",
                binnen_regeling=True,
                verhuizing_gepland=False,
            ),
            id=f"ev-{notification_id}-{i}",
            source="urn:weerbaar:test",
            time=datetime.now(UTC),
        ).to_json()
        for i in range(count)
    ]
    joined = ",".join(e.decode() for e in envelopes)
    return f'{{"n":{notification_id},"e":[{joined}]}}'


def _exports(tmp_path: Path, logs: Mapping[str, Sequence[str]]) -> list[StoreExport]:
    """One export per log: a process that prints the log's lines, then exits."""
    for service, lines in logs.items():
        (tmp_path / service).write_text("".join(f"{line}\n" for line in lines))

    def command(service: str) -> list[str]:
        path = tmp_path / service
        # The export's AFTER argument follows; the script ignores it.
        return [sys.executable, "-c", f"import sys; sys.stdout.write(open({str(path)!r}).read())"]

    return [StoreExport(dict(os.environ), s, 0, command=command) for s in logs]


def test_a_line_is_its_position_and_its_envelopes_in_order() -> None:
    loaded = parse_line(_line(7, count=2))
    assert loaded.position == 7
    assert [position for position, _ in loaded.envelopes] == [
        7 * POSITION_SCALE,
        7 * POSITION_SCALE + 1,
    ]
    assert [e.id for _, e in loaded.envelopes] == ["ev-7-0", "ev-7-1"]


@pytest.mark.parametrize(
    "line",
    [
        "not json",
        '{"n":1}',
        '{"n":"een","e":[]}',
        '{"n":1,"e":[{"id":"x"}]}',  # not a CloudEvent
        '{"n":1,"e":[],"extra":1}',
        '{"n":1,"e":[]} trailing',
    ],
)
def test_a_malformed_line_is_refused(line: str) -> None:
    with pytest.raises(ValidationError):
        parse_line(line)


def test_too_many_envelopes_for_one_stored_event_are_refused() -> None:
    with pytest.raises(ValueError, match="public events from one stored event"):
        parse_line(_line(1, count=POSITION_SCALE))


def test_exports_read_side_by_side_keep_each_logs_order(tmp_path: Path) -> None:
    logs = {
        "een": [_line(n) for n in range(1, 1201)],
        "twee": [_line(n) for n in range(5, 40, 3)],
        "drie": [],
    }
    exports = SideBySide(_exports(tmp_path, logs), batch_size=100)
    got: dict[str, list[int]] = {s: [] for s in logs}
    try:
        for source, batch in exports:
            assert 0 < len(batch) <= 100
            got[source] += [loaded.position for loaded in batch]
    finally:
        exports.close()
    assert got == {"een": list(range(1, 1201)), "twee": list(range(5, 40, 3)), "drie": []}


def test_a_budget_stops_the_exports_and_commits_only_what_it_allows(tmp_path: Path) -> None:
    exports = SideBySide(
        _exports(tmp_path, {"een": [_line(n) for n in range(1, 3001)]}), batch_size=100
    )
    committed: list[tuple[str, int]] = []

    def commit(source: str, batch: Sequence[Loaded]) -> None:
        committed.extend((source, loaded.position) for loaded in batch)

    try:
        read = rebuild.read_side_by_side(exports, commit, None, 250)
    finally:
        exports.close()
    assert read == 250
    assert committed == [("een", n) for n in range(1, 251)]
    assert all(e.process.poll() is not None for e in exports.exports)


def test_a_malformed_line_from_an_export_stops_the_reading(tmp_path: Path) -> None:
    exports = SideBySide(
        _exports(tmp_path, {"een": [_line(1), '{"n":2,"e":[{"id":"x"}]}', _line(3)]})
    )
    committed: list[int] = []
    try:
        with pytest.raises(ValidationError):
            rebuild.read_side_by_side(
                exports, lambda _, batch: committed.extend(b.position for b in batch), None, None
            )
    finally:
        exports.close()
    assert committed == []  # the batch holding the bad line is not committed in part


def test_an_export_that_fails_is_named_with_its_last_words(tmp_path: Path) -> None:
    def command(service: str) -> list[str]:
        return [sys.executable, "-c", "import sys; sys.exit('kapot: ' + sys.argv[-1])"]

    exports = SideBySide([StoreExport(dict(os.environ), "een", 12, command=command)])
    try:
        with pytest.raises(RuntimeError, match=r"reading een's log failed \(exit 1\): kapot"):
            list(exports)
    finally:
        exports.close()
