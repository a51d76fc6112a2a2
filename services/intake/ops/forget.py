"""``weerbaar forget <aanvraag_id> --reden CODE``: forget a dossier's personal data everywhere.

Crypto-shredding: every service that holds personal data of the dossier holds it encrypted with
the dossier's data key in its own ``dossier_keys`` table (``shared.platform.keys``). Forgetting
destroys that key in every service's schema, then destroys intake's key and records
``PersoonsgegevensVergeten`` (who, when, why) in one transaction, which the relay announces. The
events stay, so the dossier's skeleton (events, dates, decisions, who acted) and every replay
remain; the names, addresses, contact details, reasons and report texts become placeholders.

It works on the database directly, with the operator's database URL, not through the services'
APIs: it must work while a service is down or was never started (a tombstone row then refuses
personal data that arrives for the dossier later), it needs no service token on an operator's
machine, and it takes effect at once for every running process (data keys are read from the
table on every use, never cached). Running it again finishes an interrupted run and records
nothing new.

Every forget is also written to the forget record beside the key-encryption keys
(``shared.platform.forgotten``), before any key is destroyed. ``reapply`` forgets again every
dossier in the record whose keys are live in the database: after a restore of a backup older than
the forget (``weerbaar restore`` runs it, and intake runs it at every start), so a restore never
brings forgotten personal data back.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast, get_args
from uuid import UUID

from psycopg.sql import SQL, Identifier

from services.intake.application import Intake
from services.intake.domain import VergeetReden
from services.intake.projections.read_model import SqlReadModel
from shared.platform.access import configure_pseudonyms, opaque_actor_id
from shared.platform.errors import NietGevonden
from shared.platform.forgotten import ForgetRecord, ForgetRecordError, Forgotten
from shared.platform.keys import (
    DossierKeys,
    KeyEncryptionKeys,
    Transaction,
    connect_transaction,
    dossier_keys_ddl,
)
from shared.platform.model import Context, utcnow
from shared.platform.settings import SERVICES, Settings, load_settings

ROLE = "beheerder"
"""The role an operator acts under on the command line (in the event's ``actor_role``)."""

_logger = logging.getLogger("weerbaar.intake.forget")


def intake_on(settings: Settings) -> Intake:
    """Intake's use cases on its database, for a command (as the composition root builds them)."""
    return Intake(settings.eventsourcing_env("intake"), read_model=SqlReadModel)


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
    pseudonym: str | None = None,
) -> Vergeten:
    """Destroy the dossier's data keys in every service and record that (once).

    ``door`` is who decided (pseudonymised here); ``pseudonym`` instead is an actor id that is
    one already (a forget re-applied from the record). Raises NietGevonden for a dossier intake
    does not know (nothing is destroyed or written then).
    """
    if intake is None:
        own = intake_on(settings)
        try:
            return forget(
                settings, aanvraag_id, door, reden, now=now, intake=own, pseudonym=pseudonym
            )
        finally:
            own.close()
    intake.aanvraag(aanvraag_id)
    if pseudonym is None:
        configure_pseudonyms(settings.pseudonym_key_path)
        pseudonym = opaque_actor_id(door)
    ctx = Context(now=now or utcnow(), actor_id=pseudonym, actor_role=ROLE)
    who = ctx.actor_id or ROLE
    # On disk first, beside the KEKs: a restore of an older backup, or a crash half-way, is
    # undone by re-applying the record (``reapply``).
    ForgetRecord(settings.kek_path).add(Forgotten(aanvraag_id, reden, who, ctx.now))
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


def _live(transaction: Transaction, dossiers: Sequence[UUID]) -> set[UUID]:
    """Those of these dossiers with a data key that is live in some service, or that intake has
    not recorded as forgotten (its key row is destroyed in the transaction that records it)."""
    live: set[UUID] = set()
    with transaction() as cur:
        for service in SERVICES:
            cur.execute("SELECT to_regclass(%s) AS t", (f"{service}.dossier_keys",))
            row = cur.fetchone()
            if row is None or row["t"] is None:
                continue
            table = Identifier(service, "dossier_keys")
            cur.execute(
                SQL(
                    "SELECT aanvraag_id FROM {} WHERE aanvraag_id = ANY(%s)"
                    " AND wrapped_key IS NOT NULL"
                ).format(table),
                (list(dossiers),),
            )
            live |= {r["aanvraag_id"] for r in cur.fetchall()}
            if service == "intake":
                cur.execute(
                    SQL(
                        "SELECT aanvraag_id FROM {} WHERE aanvraag_id = ANY(%s)"
                        " AND destroyed_at IS NOT NULL"
                    ).format(table),
                    (list(dossiers),),
                )
                recorded = {r["aanvraag_id"] for r in cur.fetchall()}
                live |= set(dossiers) - recorded
    return live


@dataclass(frozen=True)
class Heraangebracht:
    """What re-applying the forget record did."""

    opnieuw_vergeten: tuple[Vergeten, ...]  # dossiers whose keys were live again
    onbekend: tuple[UUID, ...]  # in the record, not in this database (restored from before them)


def reapply(settings: Settings, intake: Intake | None = None) -> Heraangebracht:
    """Forget again every dossier of the forget record whose keys the database holds live.

    Runs after a restore and at every start of intake; with nothing live it is one query per
    service. Each dossier forgotten again is logged (its id, never anything personal), and
    ``PersoonsgegevensVergeten`` is recorded again where the restored history lacks it, under
    the pseudonym of who decided and with its reason.
    """
    record = ForgetRecord(settings.kek_path).entries()
    if not record:
        return Heraangebracht((), ())
    live = _live(connect_transaction(settings.database_url), [e.aanvraag_id for e in record])
    if not live:
        return Heraangebracht((), ())
    if intake is None:
        own = intake_on(settings)
        try:
            return reapply(settings, own)
        finally:
            own.close()
    done: list[Vergeten] = []
    unknown: list[UUID] = []
    for entry in record:
        if entry.aanvraag_id not in live:
            continue
        if entry.reden not in get_args(VergeetReden):
            raise ForgetRecordError(f"the forget of {entry.aanvraag_id} names no known reason")
        try:
            result = forget(
                settings,
                entry.aanvraag_id,
                entry.door,
                cast(VergeetReden, entry.reden),
                intake=intake,
                pseudonym=entry.door,
            )
        except NietGevonden:
            unknown.append(entry.aanvraag_id)
            continue
        _logger.warning(
            "forget re-applied from the forget record",
            extra={
                "aanvraag_id": str(entry.aanvraag_id),
                "vergeten_op": entry.op.isoformat(),
                "keys_destroyed": list(result.diensten),
                "recorded_again": result.vastgelegd,
            },
        )
        done.append(result)
    return Heraangebracht(tuple(done), tuple(unknown))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``weerbaar forget``."""
    parser = argparse.ArgumentParser(
        prog="weerbaar forget",
        description="Forget a dossier's personal data in every service (crypto-shredding); the"
        " dossier's events, dates and decisions remain.",
    )
    parser.add_argument("aanvraag_id", type=UUID, nargs="?", help="the dossier")
    parser.add_argument("--reden", choices=get_args(VergeetReden), help="why (AVG article 17)")
    parser.add_argument(
        "--opnieuw-toepassen",
        action="store_true",
        help="forget again every dossier of the forget record whose keys are live (after a"
        " restore)",
    )
    parser.add_argument(
        "--door",
        default=os.environ.get("USER") or ROLE,
        help="who decided: an opaque id (an e-mail address is stored as a digest)",
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.opnieuw_toepassen:
        if args.aanvraag_id is not None or args.reden is not None:
            parser.error("--opnieuw-toepassen takes no dossier and no --reden")
        done = reapply(settings)
        for item in done.opnieuw_vergeten:
            print(
                f"weerbaar forget: dossier {item.aanvraag_id} forgotten again"
                f" (keys destroyed: {', '.join(item.diensten) or 'none left'})"
                + ("; recorded as PersoonsgegevensVergeten" if item.vastgelegd else "")
            )
        for aanvraag_id in done.onbekend:
            print(f"weerbaar forget: dossier {aanvraag_id} is not in this database")
        print(f"weerbaar forget: {len(done.opnieuw_vergeten)} dossiers forgotten again")
        return 0
    if args.aanvraag_id is None or args.reden is None:
        parser.error("a dossier and --reden are needed")
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
