"""``weerbaar forget <aanvraag_id> --reden CODE``: forget a dossier's personal data everywhere.

Crypto-shredding: every service that holds personal data of the dossier holds it encrypted with
the dossier's data key in its own ``dossier_keys`` table (``shared.keys``). Forgetting destroys
that key in every service's schema, then destroys intake's key and records
``PersoonsgegevensVergeten`` (who, when, why) in one transaction, which the relay announces. The
events stay, so the dossier's skeleton (events, dates, decisions, who acted) and every replay
remain; the names, addresses, contact details, reasons and report texts become placeholders.

It works on the database directly, with the operator's database URL, not through the services'
APIs: it must work while a service is down or was never started (a tombstone row then refuses
personal data that arrives for the dossier later), it needs no service token on an operator's
machine, and it takes effect at once for every running process (data keys are read from the
table on every use, never cached). Running it again finishes an interrupted run and records
nothing new.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import get_args
from uuid import UUID

from psycopg.sql import SQL, Identifier

from services.intake.application import Intake
from services.intake.domain import VergeetReden
from shared.access import configure_pseudonyms, opaque_actor_id
from shared.errors import NietGevonden
from shared.eventstore import Context, utcnow
from shared.keys import DossierKeys, KeyEncryptionKeys, connect_transaction, dossier_keys_ddl
from shared.settings import SERVICES, Settings, load_settings

ROLE = "beheerder"
"""The role an operator acts under on the command line (in the event's ``actor_role``)."""


@dataclass(frozen=True)
class Vergeten:
    """What one run of ``forget`` did."""

    aanvraag_id: UUID
    vastgelegd: bool  # False: it was recorded before (this run finished or repeated it)
    diensten: tuple[str, ...]  # the services whose key of the dossier this run destroyed
    # (a service that never held personal data of the dossier gets a tombstone, not listed)


def forget(
    settings: Settings,
    aanvraag_id: UUID,
    door: str,
    reden: VergeetReden,
    *,
    now: datetime | None = None,
    intake: Intake | None = None,
) -> Vergeten:
    """Destroy the dossier's data keys in every service and record that (once).

    Raises NietGevonden for a dossier intake does not know (nothing is destroyed then).
    """
    if intake is None:
        own = Intake(settings.eventsourcing_env("intake"))
        try:
            return forget(settings, aanvraag_id, door, reden, now=now, intake=own)
        finally:
            own.close()
    intake.aanvraag(aanvraag_id)
    configure_pseudonyms(settings.pseudonym_key_path)
    ctx = Context(now=now or utcnow(), actor_id=opaque_actor_id(door), actor_role=ROLE)
    who = ctx.actor_id or ROLE
    transaction = connect_transaction(settings.database_url)
    keks = KeyEncryptionKeys(settings.kek_path)
    destroyed: list[str] = []
    held: list[str] = []
    for service in SERVICES:
        if service == "intake":
            continue
        with transaction() as cur:
            # A service that never started has no table yet: its tombstone still stops it from
            # storing personal data of this dossier once it runs.
            cur.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(service)))
            cur.execute(dossier_keys_ddl(service))
        keys = DossierKeys(transaction, service, keks)
        changed = keys.destroy(aanvraag_id, who, reden, ctx.now)
        status = keys.status(aanvraag_id)
        if status is not None and status.had_key:
            held.append(service)
            if changed:
                destroyed.append(service)
    eigen = intake.keys.status(aanvraag_id)
    vastgelegd = intake.vergeet_persoonsgegevens(aanvraag_id, reden, held, ctx)
    if vastgelegd and eigen is not None and eigen.destroyed_at is None:
        destroyed.insert(0, "intake")  # destroyed in the transaction that recorded the event
    return Vergeten(aanvraag_id, vastgelegd, tuple(destroyed))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``weerbaar forget``."""
    parser = argparse.ArgumentParser(
        prog="weerbaar forget",
        description="Forget a dossier's personal data in every service (crypto-shredding); the"
        " dossier's events, dates and decisions remain.",
    )
    parser.add_argument("aanvraag_id", type=UUID, help="the dossier")
    parser.add_argument(
        "--reden", required=True, choices=get_args(VergeetReden), help="why (AVG article 17)"
    )
    parser.add_argument(
        "--door",
        default=os.environ.get("USER") or ROLE,
        help="who decided: an opaque id (an e-mail address is stored as a digest)",
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    try:
        result = forget(settings, args.aanvraag_id, args.door, args.reden)
    except NietGevonden:
        print(f"weerbaar forget: intake does not know dossier {args.aanvraag_id}", file=sys.stderr)
        return 1
    if result.vastgelegd:
        keys = ", ".join(result.diensten) or "none left"
        print(
            f"weerbaar forget: dossier {result.aanvraag_id}: personal data forgotten"
            f" (keys destroyed: {keys}); recorded as PersoonsgegevensVergeten"
        )
    else:
        print(f"weerbaar forget: dossier {result.aanvraag_id} was forgotten before; nothing to do")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
