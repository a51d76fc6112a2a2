"""Drill: the runbook's "Rotate keys", under ``./weerbaar up``.

The key-encryption key is rotated and the old one retired while the services run; the personal
data stay readable through the API (intake's claim-check, as notifications reads an address), new
dossiers are wrapped with the new key, no event is rewritten or published again. The audit
signing key is rotated between checkpoints (made every second here instead of every minute) and
``weerbaar verify`` accepts those signed before and after. A dossier forgotten
afterwards has its data key destroyed: its address is gone, the others are not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.drills.operator import Operator
from tests.support import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def operator(drill_dir: Path) -> Iterator[Operator]:
    """The system with an audit checkpoint every second (60 s by default): the drill sees
    checkpoints signed before and after the signing key's rotation within seconds."""
    running = Operator(drill_dir / "data", env={"WEERBAAR_AUDIT_CHECKPOINT_INTERVAL_S": "1"})
    running.up()
    try:
        yield running
    finally:
        running.down()


_VERIFIED = re.compile(
    r"^(\w+): OK — (\d+) events, (?:\d+ signed by (\d+) checkpoint\(s\)|nothing signed yet)"
    r".*?, (\d+) not yet signed",
    re.MULTILINE,
)


def _verify(operator: Operator) -> dict[str, tuple[int, int]]:
    """``weerbaar verify``: per service, its checkpoints and its events not yet signed."""
    out = operator.runbook("weerbaar verify").stdout
    found = {m[1]: (int(m[3] or 0), int(m[4])) for m in _VERIFIED.finditer(out)}
    assert len(found) == 5, out
    return found


def _all_signed(operator: Operator, checkpoints: int) -> dict[str, tuple[int, int]] | None:
    """Verified, and intake's whole log signed by at least ``checkpoints`` checkpoints."""
    found = _verify(operator)
    return found if found["intake"][0] >= checkpoints and found["intake"][1] == 0 else None


def _addresses(operator: Operator) -> dict[str, int | str]:
    """Per dossier, the bestuurder's address as a service reads it (or the status it got)."""
    headers = operator.headers("dienst", sub="svc-notifications")
    found: dict[str, int | str] = {}
    with httpx.Client(timeout=10) as client:
        for aanvraag_id in operator.registered:
            answer = client.get(
                f"{operator.url('intake')}/internal/aanvragen/{aanvraag_id}/ontvanger",
                params={"rol": "bestuurder"},
                headers=headers,
            )
            found[aanvraag_id] = (
                answer.json()["email"] if answer.status_code == 200 else answer.status_code
            )
    return found


def _registered_addresses(operator: Operator) -> dict[str, int | str]:
    return {i: operator.bodies[i]["bestuurder"]["email"] for i in operator.registered}


def test_keys_rotated_and_retired_while_running_keep_the_data_readable(
    operator: Operator,
) -> None:
    kek_dir = operator.data_dir / "secrets"
    operator.register_many(4)
    assert _addresses(operator) == _registered_addresses(operator)
    before = operator.account()

    status = operator.runbook("weerbaar keys status").stdout
    print(status)
    assert f"KEKs in {kek_dir}: 1" in status

    rotated = operator.runbook("weerbaar keys rotate").stdout
    print(rotated)
    assert "kek-2.key is active" in rotated
    assert "no data key needs any more: 1" in rotated
    status = operator.runbook("weerbaar keys status").stdout
    assert f"KEKs in {kek_dir}: 1, 2" in status
    assert "wrapped by 1" not in status and "wrapped by 2" in status

    retired = operator.runbook("weerbaar keys retire N", N="1").stdout
    assert "kek-1.key deleted" in retired
    assert not (kek_dir / "kek-1.key").exists()
    # Read with the new KEK only, by the processes that ran all along.
    assert _addresses(operator) == _registered_addresses(operator)
    operator.register_many(2)
    assert _addresses(operator) == _registered_addresses(operator)
    assert "wrapped by 2" in operator.runbook("weerbaar keys status").stdout

    signed = wait_until(lambda: _all_signed(operator, 1), what="intake's log signed")
    signing = operator.runbook("weerbaar keys rotate-signing").stdout
    assert "audit checkpoints are now signed with key" in signing
    # Old checkpoints still verify; new events are signed with the new key.
    _verify(operator)
    operator.register_many(1)
    resigned = wait_until(
        lambda: _all_signed(operator, signed["intake"][0] + 1),
        what="a checkpoint signed with the new key",
    )
    print(f"checkpoints before the rotation {signed}, after {resigned}")

    after = operator.account()
    # Each read of an address is on record (PersoonsgegevensVerstrekt), so intake's log grew;
    # no event was rewritten, none published twice (the accounting), no mail sent again.
    assert after.events > before.events and after.mails == before.mails + 3

    forgotten = operator.registered[0]
    operator.runbook(
        "weerbaar forget AANVRAAG_ID --reden REDEN",
        AANVRAAG_ID=forgotten,
        REDEN="verzoek_betrokkene",
    )
    addresses = _addresses(operator)
    assert addresses.pop(forgotten) == 410
    expected = _registered_addresses(operator)
    del expected[forgotten]
    assert addresses == expected
    _verify(operator)
    print(operator.account())
