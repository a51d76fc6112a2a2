"""The relay's resume position (from the stream's last header) and its advisory-lock key."""

from __future__ import annotations

import pytest

from shared.platform.relay import POSITION_SCALE, Position, PositionHeader, advisory_key
from shared.platform.settings import SERVICES


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("12/0/1", Position(13, 0)),  # the only public event of notification 12
        ("12/0/2", Position(12, 1)),  # the second of two is still missing
        ("12/1/2", Position(13, 0)),  # both published
        ("1/0/3", Position(1, 1)),
        ("1/1/3", Position(1, 2)),
        ("1/2/3", Position(2, 0)),
        ("9007199254740993/0/1", Position(9007199254740994, 0)),  # beyond float precision
    ],
)
def test_position_after_header(header: str, expected: Position) -> None:
    assert Position.after_header(header) == expected


@pytest.mark.parametrize("header", ["", "12", "12/0", "12/0/1/4", "a/0/1", "12/x/1"])
def test_a_malformed_header_is_refused(header: str) -> None:
    with pytest.raises(ValueError):
        Position.after_header(header)


def test_positions_order_by_notification_then_index() -> None:
    assert Position(12, 1) < Position(13, 0)
    assert Position(12, 0) < Position(12, 1)
    assert max(Position(12, 1), Position(13, 0), Position(12, 0)) == Position(13, 0)


def test_advisory_key_is_stable_across_processes_and_releases() -> None:
    # A changed key would let an old and a new relay of one service publish at the same time.
    assert advisory_key("weerbaar-relay:intake") == -3236125089045278381


def test_advisory_key_is_a_signed_64_bit_integer() -> None:
    keys = [advisory_key(f"weerbaar-relay:{service}") for service in SERVICES]
    keys += [advisory_key(""), advisory_key("x" * 10_000), advisory_key("relay-é")]
    for key in keys:
        assert isinstance(key, int)
        assert -(2**63) <= key < 2**63
    # With enough keys both signs show up: the key is not an unsigned value in disguise.
    many = [advisory_key(f"name-{i}") for i in range(64)]
    assert min(many) < 0 < max(many)


def test_advisory_key_differs_per_service() -> None:
    keys = {advisory_key(f"weerbaar-relay:{service}") for service in SERVICES}
    assert len(keys) == len(SERVICES)


@pytest.mark.parametrize(
    "value",
    [
        *(None, "", "12", "12/0", "12/0/1/4", "a/0/1", "12/x/1", " 12/0/1", "12/0/1\n"),
        *("-1/0/1", "0/0/1", "12/1/1", "12/0/0", "1" * 19 + "/0/1", "12/0/" + "9" * 10),
        "１２/0/1",  # digits, but not ASCII ones
    ],
)
def test_a_header_the_relay_cannot_have_written_is_not_its_own(value: str | None) -> None:
    """A message on a service's subjects with such a header (foreign, forged, damaged) is
    treated as not the relay's: it never stops the relay or the reconciliation."""
    assert PositionHeader.read(value) is None


def test_a_header_the_relay_writes_reads_back() -> None:
    header = PositionHeader.read("9007199254740993/1/3")
    assert header == PositionHeader(9007199254740993, 1, 3)
    assert header.position == Position(9007199254740993, 1)
    assert Position.after(header) == Position(9007199254740993, 2)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("12/1/3", 12 * POSITION_SCALE + 1),
        ("1/0/1", POSITION_SCALE),
        ("12/64/65", None),  # an index beyond the scale: no single number for it
        # A notification id whose number would not fit PostgreSQL's bigint (the projection's
        # column): no place, instead of a failing insert that would dead-letter the event.
        ("999999999999999999/0/1", None),
        (f"{(2**63 - 1) // POSITION_SCALE}/0/1", (2**63 - 1) // POSITION_SCALE * POSITION_SCALE),
        (f"{(2**63 - 1) // POSITION_SCALE + 1}/0/1", None),
    ],
)
def test_a_headers_log_position_fits_a_bigint_or_is_none(header: str, expected: int | None) -> None:
    read = PositionHeader.read(header)
    assert read is not None
    assert read.log_position == expected
    assert expected is None or expected <= 2**63 - 1
