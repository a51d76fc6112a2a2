"""The hash chain's definition, the checkpoint signatures, the signing key, and locating damage."""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from shared.platform.chain import GENESIS, Checkpoint, Problem, ProblemKind, frame, link, locate
from shared.platform.signing import (
    KEY_FILE_NAME,
    generate_signing_key,
    key_id_of,
    load_or_create_signing_key,
    load_public_keys,
    rotate_signing_key,
)

TOPIC = "services.intake.domain:AanvraagIngediend"

Row = tuple[int, bytes]


def test_a_frame_is_the_row_in_postgresqls_binary_copy_format() -> None:
    originator = UUID("12345678-1234-5678-1234-567812345678")
    state = b"\x00ciphertext\xff"
    expected = (
        struct.pack(">h", 5)
        + struct.pack(">iq", 8, 42)
        + struct.pack(">i", 16)
        + originator.bytes
        + struct.pack(">iq", 8, 3)
        + struct.pack(">i", len(TOPIC))
        + TOPIC.encode()
        + struct.pack(">i", len(state))
        + state
    )
    assert frame(42, originator, 3, TOPIC, state) == expected


def test_null_topic_and_state_differ_from_empty_ones() -> None:
    originator = uuid4()
    null = frame(1, originator, 1, None, None)
    empty = frame(1, originator, 1, "", b"")
    assert null != empty
    assert null.endswith(struct.pack(">i", -1) + struct.pack(">i", -1))


def test_moving_a_byte_from_the_topic_to_the_state_changes_the_frame() -> None:
    # Without length prefixes both rows would hash the same.
    originator = uuid4()
    assert frame(1, originator, 1, "ab", b"c") != frame(1, originator, 1, "a", b"bc")


def test_the_chain_starts_at_32_zero_bytes_and_links_with_sha256() -> None:
    row = frame(1, uuid4(), 1, TOPIC, b"x")
    assert bytes(32) == GENESIS
    assert link(GENESIS, row) == hashlib.sha256(GENESIS + row).digest()


def _log(count: int, *, start: int = 1, step: int = 1) -> list[Row]:
    rows = []
    for n in range(count):
        notification_id = start + n * step
        state = f"state {notification_id} ".encode() * 20
        rows.append((notification_id, frame(notification_id, uuid4(), 1, TOPIC, state)))
    return rows


def _chain(rows: list[Row]) -> tuple[list[int], bytes]:
    ids, hashes, head = [], b"", GENESIS
    for notification_id, row in rows:
        head = link(head, row)
        ids.append(notification_id)
        hashes += head
    return ids, hashes


def test_one_flipped_byte_anywhere_changes_the_head() -> None:
    rows = _log(20)
    _, hashes = _chain(rows)
    notification_id, row = rows[3]
    flipped = row[:-1] + bytes([row[-1] ^ 1])
    _, tampered = _chain([*rows[:3], (notification_id, flipped), *rows[4:]])
    assert tampered[-32:] != hashes[-32:]


def test_an_untouched_log_has_no_problems_even_with_gaps_and_new_rows() -> None:
    rows = _log(10, step=3)  # ids 1, 4, 7, …: a failed insert leaves gaps
    ids, hashes = _chain(rows)
    newer = _log(2, start=100)  # written after the chain was extended: not yet chained
    assert locate(ids, hashes, rows + newer) == []


def _flip(row: bytes) -> bytes:
    return row[:-1] + bytes([row[-1] ^ 0x01])


def _swap_payload(rows: list[Row], a: int, b: int) -> list[Row]:
    # The topic and state start after the id, uuid and version fields (46 bytes in).
    out = list(rows)
    (ida, fa), (idb, fb) = rows[a], rows[b]
    out[a], out[b] = (ida, fa[:46] + fb[46:]), (idb, fb[:46] + fa[46:])
    return out


def _swap_contents(rows: list[Row], a: int, b: int) -> list[Row]:
    # Everything but the notification id: the two rows are out of order.
    out = list(rows)
    (ida, fa), (idb, fb) = rows[a], rows[b]
    out[a], out[b] = (ida, fa[:14] + fb[14:]), (idb, fb[:14] + fa[14:])
    return out


TAMPERINGS: list[tuple[str, Callable[[list[Row]], list[Row]], Problem]] = [
    (
        "modified",
        lambda rows: [*rows[:5], (rows[5][0], _flip(rows[5][1])), *rows[6:]],
        Problem(ProblemKind.MODIFIED, 6),
    ),
    ("deleted", lambda rows: rows[:5] + rows[6:], Problem(ProblemKind.DELETED, 6)),
    (
        "swapped payload",
        lambda rows: _swap_payload(rows, 3, 8),
        Problem(ProblemKind.SWAPPED, 4, other_notification_id=9, rows=2),
    ),
    (
        "swapped rows",
        lambda rows: _swap_contents(rows, 3, 4),
        Problem(ProblemKind.SWAPPED, 4, other_notification_id=5, rows=2),
    ),
    (
        "truncated",
        lambda rows: rows[:-3],
        Problem(ProblemKind.TRUNCATED, 10, last_notification_id=12, rows=3),
    ),
]


@pytest.mark.parametrize(
    ("rows_after", "expected"),
    [(t[1], t[2]) for t in TAMPERINGS],
    ids=[t[0] for t in TAMPERINGS],
)
def test_each_tampering_is_located(
    rows_after: Callable[[list[Row]], list[Row]], expected: Problem
) -> None:
    rows = _log(12)
    ids, hashes = _chain(rows)
    problems = locate(ids, hashes, rows_after(rows))
    assert [replace(p, detail="") for p in problems] == [expected]


def test_a_row_slipped_into_the_chained_range_is_located() -> None:
    rows = _log(6, step=2)  # ids 1, 3, 5, 7, 9, 11
    ids, hashes = _chain(rows)
    slipped = (4, frame(4, uuid4(), 1, TOPIC, b"late"))
    problems = locate(ids, hashes, [*rows[:2], slipped, *rows[2:]])
    assert [(p.kind, p.notification_id) for p in problems] == [(ProblemKind.INSERTED, 4)]


def test_an_altered_chain_hash_is_told_apart_from_an_altered_row() -> None:
    rows = _log(8)
    ids, hashes = _chain(rows)
    altered = hashes[: 32 * 2] + bytes(32) + hashes[32 * 3 :]
    problems = locate(ids, altered, rows)
    assert [(p.kind, p.notification_id) for p in problems] == [(ProblemKind.CHAIN_ALTERED, 3)]


def test_two_separate_modifications_are_both_located() -> None:
    rows = _log(12)
    ids, hashes = _chain(rows)
    tampered = list(rows)
    for i in (2, 9):
        tampered[i] = (rows[i][0], _flip(rows[i][1]))
    problems = locate(ids, hashes, tampered)
    assert [(p.kind, p.notification_id) for p in problems] == [
        (ProblemKind.MODIFIED, 3),
        (ProblemKind.MODIFIED, 10),
    ]


def _checkpoint() -> tuple[Checkpoint, dict[str, Ed25519PublicKey]]:
    key = generate_signing_key()
    signed = Checkpoint.sign(
        key,
        service="intake",
        last_notification_id=120,
        event_count=117,
        head=hashlib.sha256(b"head").digest(),
        signed_at=datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC),
    )
    return signed, {key.key_id: key.public_key}


def test_a_checkpoint_verifies_with_its_public_key() -> None:
    signed, keys = _checkpoint()
    assert signed.signature_valid(keys) is True


@pytest.mark.parametrize(
    "change",
    [
        {"service": "scheduling"},
        {"last_notification_id": 121},
        {"event_count": 118},
        {"head": bytes(32)},
        {"signed_at": datetime(2025, 3, 1, 12, 0, 1, tzinfo=UTC)},
    ],
    ids=lambda change: next(iter(change)),
)
def test_any_changed_field_breaks_the_signature(change: dict[str, object]) -> None:
    signed, keys = _checkpoint()
    assert replace(signed, **change).signature_valid(keys) is False  # type: ignore[arg-type]


def test_a_checkpoint_from_an_unknown_key_is_neither_valid_nor_invalid() -> None:
    signed, _ = _checkpoint()
    other = generate_signing_key()
    assert signed.signature_valid({other.key_id: other.public_key}) is None


def test_the_signed_time_means_the_same_in_any_time_zone() -> None:
    # PostgreSQL hands timestamptz back in the session's zone.
    signed, keys = _checkpoint()
    elsewhere = signed.signed_at.astimezone(timezone(timedelta(hours=2)))
    assert replace(signed, signed_at=elsewhere).signature_valid(keys) is True


def test_the_signing_key_is_created_private_with_its_public_key_next_to_it(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / KEY_FILE_NAME
    key = load_or_create_signing_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "secrets" / "audit-ed25519.pub").exists()
    assert len(key.key_id) == 16 and int(key.key_id, 16) >= 0
    assert load_or_create_signing_key(path).key_id == key.key_id
    assert list(load_public_keys(tmp_path / "secrets")) == [key.key_id]


def test_a_signing_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / KEY_FILE_NAME
    load_or_create_signing_key(path)
    path.chmod(0o644)
    with pytest.raises(PermissionError):
        load_or_create_signing_key(path)


def test_after_rotation_old_checkpoints_still_verify_and_the_old_private_key_is_gone(
    tmp_path: Path,
) -> None:
    path = tmp_path / KEY_FILE_NAME
    old = load_or_create_signing_key(path)
    moment = datetime(2025, 3, 1, tzinfo=UTC)
    before = Checkpoint.sign(
        old, service="intake", last_notification_id=1, event_count=1, head=GENESIS, signed_at=moment
    )
    new = rotate_signing_key(path)
    after = Checkpoint.sign(
        new, service="intake", last_notification_id=2, event_count=2, head=GENESIS, signed_at=moment
    )
    keys = load_public_keys(tmp_path)
    assert new.key_id != old.key_id
    assert set(keys) == {old.key_id, new.key_id}
    assert before.key_id == old.key_id and before.signature_valid(keys) is True
    assert after.key_id == new.key_id and after.signature_valid(keys) is True
    assert load_or_create_signing_key(path).key_id == new.key_id
    assert key_id_of(keys[old.key_id]) == old.key_id
