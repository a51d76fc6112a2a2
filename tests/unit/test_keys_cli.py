"""``weerbaar keys rotate-signing``: the runbook's rotation of the audit checkpoint key."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.platform.signing import load_or_create_signing_key, load_public_keys, load_signing_key
from tools.keys import main as keys


def test_rotate_signing_keeps_the_old_public_key_and_signs_with_a_new_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WEERBAAR_DATA_DIR", str(tmp_path))
    # Required settings; rotating the signing key connects to neither server.
    monkeypatch.setenv("WEERBAAR_DATABASE_URL", "postgresql://127.0.0.1:1/none")
    monkeypatch.setenv("WEERBAAR_NATS_URL", "nats://127.0.0.1:1")
    key_file = tmp_path / "secrets" / "audit-ed25519.key"
    old = load_or_create_signing_key(key_file)
    assert keys(["rotate-signing"]) == 0
    new = load_signing_key(key_file)
    assert new.key_id != old.key_id
    assert new.key_id in capsys.readouterr().out
    # Checkpoints signed with the old key still verify: its public key stays beside the new one.
    assert set(load_public_keys(key_file.parent)) == {old.key_id, new.key_id}
