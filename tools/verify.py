"""``weerbaar verify``: recompute each service's event-log hash chain and check its signed
checkpoints (``shared.platform.chain.verify``), one line per service."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import psycopg

from shared.platform.chain import verify
from shared.platform.settings import SERVICES
from shared.platform.signing import load_public_keys


def main(argv: Sequence[str] | None = None) -> int:
    """``weerbaar verify [--service S]``: 0 when every log verifies, 1 on a problem, 2 on error."""
    parser = argparse.ArgumentParser(
        prog="weerbaar verify",
        description="Recompute each service's event-log hash chain; check the signed checkpoints.",
    )
    parser.add_argument("--service", action="append", choices=SERVICES, help="(repeatable)")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("WEERBAAR_DATABASE_URL"),
        help="default: $WEERBAAR_DATABASE_URL",
    )
    parser.add_argument(
        "--keys",
        type=Path,
        default=Path(os.environ.get("WEERBAAR_DATA_DIR", ".data")) / "secrets",
        help="directory with the audit public keys (audit-ed25519*.pub)",
    )
    args = parser.parse_args(argv)
    if not args.database_url:
        print(
            "weerbaar verify: no database; set WEERBAAR_DATABASE_URL or start ./weerbaar up",
            file=sys.stderr,
        )
        return 2
    public_keys = load_public_keys(args.keys)
    if not public_keys:
        print(f"weerbaar verify: no audit public keys in {args.keys}", file=sys.stderr)
    failed = False
    for service in args.service or SERVICES:
        try:
            report = verify(service, args.database_url, public_keys)
        except psycopg.OperationalError as exc:
            print(
                f"weerbaar verify: cannot read the database ({type(exc).__name__})", file=sys.stderr
            )
            return 2
        print(report.summary(), flush=True)
        failed = failed or not report.ok
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
