"""``weerbaar keys``: the keys at rest (KEK rotation and retirement, their status, the audit
signing key), over ``shared.platform.keys`` and ``shared.platform.signing``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from shared.platform.keys import (
    DossierKeys,
    KeyEncryptionKeys,
    KeyStoreError,
    connect_transaction,
    retire,
    rotate,
    schemas_with_keys,
)
from shared.platform.settings import SERVICES, load_settings
from shared.platform.signing import rotate_signing_key


def main(argv: Sequence[str] | None = None) -> int:
    """``weerbaar keys rotate | retire <n> | status | rotate-signing``: the keys at rest."""
    parser = argparse.ArgumentParser(prog="weerbaar keys", description=main.__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("rotate", help="write a new KEK and rewrap every data key with it")
    retire_cmd = sub.add_parser("retire", help="delete an old KEK no data key needs any more")
    retire_cmd.add_argument("kek_id")
    sub.add_parser("status", help="which KEKs exist and which the data keys need")
    sub.add_parser(
        "rotate-signing", help="a new Ed25519 key for the audit checkpoints (old ones still verify)"
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    kek_dir = settings.kek_path
    try:
        if args.action == "rotate":
            rotation = rotate(settings.database_url, kek_dir, SERVICES)
            print(f"weerbaar keys: kek-{rotation.kek_id}.key is active")
            for schema, count in rotation.rewrapped.items():
                print(f"  {schema}: {count} data keys rewrapped")
            if rotation.retirable:
                print("  no data key needs any more: " + ", ".join(rotation.retirable))
        elif args.action == "rotate-signing":
            new = rotate_signing_key(settings.audit_key_path)
            print(f"weerbaar keys: audit checkpoints are now signed with key {new.key_id}")
        elif args.action == "retire":
            retire(settings.database_url, kek_dir, SERVICES, args.kek_id)
            print(f"weerbaar keys: kek-{args.kek_id}.key deleted")
        else:
            keks = KeyEncryptionKeys(kek_dir)
            transaction = connect_transaction(settings.database_url)
            print(f"KEKs in {kek_dir}: " + (", ".join(keks.ids()) or "none"))
            for schema in schemas_with_keys(transaction, SERVICES):
                needed = DossierKeys(transaction, schema, keks).kek_ids_in_use()
                print(f"  {schema}: data keys wrapped by " + (", ".join(sorted(needed)) or "-"))
    except KeyStoreError as exc:
        print(f"weerbaar keys: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
