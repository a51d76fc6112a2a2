"""``weerbaar audit-export --aanvraag ID | --van T --tot T [--formaat json|csv|html] [--uit FILE]``:
the audit export (``services.intake.projections.audit``) made on the database directly, for the
operator (``python -m services.intake.ops.audit_export``, run by ``tools/cli.py``)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from uuid import UUID

import psycopg

from services.intake.adapters import verify_chains
from services.intake.projections.audit import build, render
from shared.platform.settings import load_settings


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    """``weerbaar audit-export``: 0 written; 1 unknown dossier; 2 wrong arguments."""
    parser = argparse.ArgumentParser(
        prog="weerbaar audit-export",
        description="The audit record of one dossier or a period, as JSON, CSV or HTML.",
    )
    parser.add_argument("--aanvraag", type=UUID, help="one dossier")
    parser.add_argument("--van", type=datetime.fromisoformat, help="from (RFC 3339)")
    parser.add_argument("--tot", type=datetime.fromisoformat, help="until, exclusive")
    parser.add_argument("--formaat", choices=("json", "csv", "html"), default="html")
    parser.add_argument("--uit", type=Path, help="write to this file (default: stdout)")
    parser.add_argument(
        "--zonder-verificatie", action="store_true", help="do not verify the hash chains"
    )
    args = parser.parse_args(argv)
    if args.aanvraag is None and (args.van is None or args.tot is None):
        parser.error("give --aanvraag, or --van and --tot")
    for moment in (args.van, args.tot):
        if moment is not None and moment.tzinfo is None:
            parser.error("--van and --tot need a time zone offset (RFC 3339)")
    settings = load_settings()
    verificatie = None if args.zonder_verificatie else verify_chains(settings)
    with psycopg.connect(settings.database_url) as conn:
        export = build(
            conn, aanvraag_id=args.aanvraag, van=args.van, tot=args.tot, verificatie=verificatie
        )
    if export is None:
        print("weerbaar audit-export: onbekend dossier", file=sys.stderr)
        return 1
    text = render(export, args.formaat)
    if args.uit is not None:
        args.uit.write_text(text, encoding="utf-8")
        out(f"weerbaar audit-export: {len(export.gebeurtenissen)} gebeurtenissen → {args.uit}")
    else:
        out(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
