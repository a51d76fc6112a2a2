"""``weerbaar retention [--apply]``: apply the retention periods; a dry run unless ``--apply``.

**What expires.** Only the history of a dossier that ended (closed or withdrawn). Per public event
type, its entries are kept ``WEERBAAR_RETENTION_DAYS[type]`` days (default
``WEERBAAR_RETENTION_DEFAULT_DAYS``) after the dossier ended (an entry recorded after the end, such
as a late read: after that entry). The dossier's personal data are destroyed
``WEERBAAR_RETENTION_PERSONAL_DATA_DAYS`` after it ended.

**What destroying means.** The event stores are the hash-chained, signed system of record
(``shared.platform.chain``): deleting their rows would break ``weerbaar verify``, so they stay. What
goes:

- the read models' copy: the dossier projection's entries (its audit trail) of the expired types,
  deleted in the transaction that records ``GegevensVernietigd`` (type, count, up to when, who):
  never a silent delete. Every later copy honours that record (the live projection on a
  redelivery, ``weerbaar replay`` from the stores or the stream);
- the personal data: the dossier's data keys are destroyed in every service (crypto-shredding,
  as ``weerbaar forget`` does, recorded as ``PersoonsgegevensVergeten`` with reason
  ``bewaartermijn_verstreken``); the stored ciphertext stays and can no longer be read.

**Legal hold.** A dossier under a ``bewaarplicht`` (placed and lifted by compliance, recorded as
BewaarplichtOpgelegd/-Opgeheven) loses nothing; the hold is checked again in the transaction that
would destroy, so a hold placed during a run wins.

The records of destruction and of holds never expire (they are the proof).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from psycopg.sql import SQL

from services.intake.application import Intake
from services.intake.ops.forget import forget, intake_on
from services.intake.projections.dossier import DOSSIERS, EVENTS, Dossier, refold
from shared.contracts.registry import EVENT_NAMES
from shared.platform.access import configure_pseudonyms, opaque_actor_id
from shared.platform.errors import Conflict
from shared.platform.model import Context, utcnow
from shared.platform.settings import Settings, load_settings

ACTOR = "weerbaar-retention"
ROLE = "beheerder"
#: The proof of what happened to the history: never destroyed by retention.
KEEP = frozenset(
    {
        "GegevensVernietigd",
        "BewaarplichtOpgelegd",
        "BewaarplichtOpgeheven",
        "PersoonsgegevensVergeten",
    }
)


@dataclass(frozen=True)
class Vervallen:
    """The expired entries of one event type of a dossier."""

    soort: str
    event_ids: tuple[str, ...]
    tot: datetime  # the last of them: every entry of this type up to here expired


@dataclass(frozen=True)
class Besluit:
    """What retention decides for one ended dossier."""

    aanvraag_id: UUID
    geeindigd_op: datetime
    bewaarplicht: str | None
    vervallen: tuple[Vervallen, ...]
    persoonsgegevens: bool  # the personal data are due for destruction

    @property
    def iets(self) -> bool:
        """Whether anything is due."""
        return bool(self.vervallen) or self.persoonsgegevens


def days_for(settings: Settings, soort: str) -> int:
    """How many days after the dossier ended entries of this type are kept."""
    return settings.retention_days.get(soort, settings.retention_default_days)


def check_settings(settings: Settings) -> list[str]:
    """What is wrong with the retention settings (empty when nothing)."""
    problems = [
        f"WEERBAAR_RETENTION_DAYS: unknown event type {name}"
        for name in sorted(set(settings.retention_days) - EVENT_NAMES)
    ]
    problems += [
        f"WEERBAAR_RETENTION_DAYS: {name} is the record of a destruction or a hold; it is kept"
        for name in sorted(set(settings.retention_days) & KEEP)
    ]
    if days_for(settings, "AanvraagIngediend") < settings.retention_personal_data_days:
        problems.append(
            "the dossier (AanvraagIngediend) would disappear from the read models before its"
            " personal data are destroyed: keep it at least WEERBAAR_RETENTION_PERSONAL_DATA_DAYS"
        )
    return problems


def plan(settings: Settings, intake: Intake, now: datetime) -> list[Besluit]:
    """What is due at ``now`` for every ended dossier (nothing is changed)."""
    with intake.datastore.get_connection() as conn:
        rows = conn.execute(
            SQL(
                "SELECT aanvraag_id, view FROM {} WHERE zichtbaar"
                " AND status IN ('afgesloten', 'ingetrokken') ORDER BY aanvraag_id"
            ).format(DOSSIERS)
        ).fetchall()
    besluiten = []
    for row in rows:
        dossier = Dossier.model_validate(row["view"])
        ended = dossier.afgesloten_op or dossier.ingetrokken_op
        if ended is None:
            continue
        aanvraag = intake.aanvraag(dossier.aanvraag_id)  # the hold, from the system of record
        with intake.datastore.get_connection() as conn:
            events = conn.execute(
                SQL("SELECT event_id, type, time FROM {} WHERE aanvraag_id = %s").format(EVENTS),
                (dossier.aanvraag_id,),
            ).fetchall()
        per_soort: dict[str, list[tuple[datetime, str]]] = {}
        for event in events:
            soort = str(event["type"]).split(".")[-2]
            if soort in KEEP:
                continue
            cutoff = now - timedelta(days=days_for(settings, soort))
            if ended <= cutoff and event["time"] <= cutoff:
                per_soort.setdefault(soort, []).append((event["time"], event["event_id"]))
        vervallen = tuple(
            Vervallen(soort, tuple(e for _, e in sorted(items)), max(t for t, _ in items))
            for soort, items in sorted(per_soort.items())
        )
        persoonsgegevens = (
            dossier.persoonsgegevens_vergeten_op is None
            and ended + timedelta(days=settings.retention_personal_data_days) <= now
        )
        besluiten.append(
            Besluit(dossier.aanvraag_id, ended, aanvraag.bewaarplicht, vervallen, persoonsgegevens)
        )
    return besluiten


def apply(
    settings: Settings, intake: Intake, besluiten: Sequence[Besluit], out: Callable[[str], None]
) -> int:
    """Carry out what is due (skipping dossiers under a legal hold); the entries destroyed."""
    destroyed = 0
    configure_pseudonyms(settings.pseudonym_key_path)
    for besluit in besluiten:
        if not besluit.iets or besluit.bewaarplicht is not None:
            continue
        ctx = Context(now=utcnow(), actor_id=opaque_actor_id(ACTOR), actor_role=ROLE)
        try:
            if besluit.persoonsgegevens:
                if intake.aanvraag(besluit.aanvraag_id).bewaarplicht is not None:
                    raise Conflict("bewaarplicht")  # placed since the plan was made
                forget(
                    settings, besluit.aanvraag_id, ACTOR, "bewaartermijn_verstreken", intake=intake
                )
                out(
                    f"{besluit.aanvraag_id}: persoonsgegevens vernietigd (PersoonsgegevensVergeten)"
                )
            for v in besluit.vervallen:
                intake.vernietig(besluit.aanvraag_id, v.soort, v.event_ids, v.tot, ctx)
                destroyed += len(v.event_ids)
                out(
                    f"{besluit.aanvraag_id}: {len(v.event_ids)} × {v.soort} vernietigd"
                    " (GegevensVernietigd)"
                )
        except Conflict:
            # A legal hold placed after the plan was made: it wins, nothing more is destroyed.
            out(
                f"{besluit.aanvraag_id}: bewaarplicht opgelegd tijdens de run;"
                " niets (meer) vernietigd"
            )
            continue
        with intake.datastore.transaction(commit=True) as curs:
            refold(curs, besluit.aanvraag_id, EVENTS, DOSSIERS)
    return destroyed


def describe(besluit: Besluit) -> str:
    """One line for the dry run."""
    wat = [f"{len(v.event_ids)} × {v.soort} (tot {v.tot:%Y-%m-%d})" for v in besluit.vervallen]
    if besluit.persoonsgegevens:
        wat.append("persoonsgegevens")
    if besluit.bewaarplicht is not None:
        return f"{besluit.aanvraag_id}: bewaarplicht ({besluit.bewaarplicht}); niets vernietigd" + (
            f" (anders: {', '.join(wat)})" if wat else ""
        )
    return f"{besluit.aanvraag_id}: " + (", ".join(wat) if wat else "niets vervallen")


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    """``weerbaar retention``: 0 done; 2 wrong settings."""
    parser = argparse.ArgumentParser(
        prog="weerbaar retention",
        description="Apply the retention periods to ended dossiers (dry run unless --apply).",
    )
    parser.add_argument("--apply", action="store_true", help="destroy what is due (recorded)")
    args = parser.parse_args(argv)
    settings = load_settings()
    problems = check_settings(settings)
    for problem in problems:
        print(f"weerbaar retention: {problem}", file=sys.stderr)
    if problems:
        return 2
    intake = intake_on(settings)
    try:
        besluiten = plan(settings, intake, utcnow())
        for besluit in besluiten:
            out(describe(besluit))
        due = [b for b in besluiten if b.iets and b.bewaarplicht is None]
        if not args.apply:
            out(f"weerbaar retention: dry run; {len(due)} dossier(s) with something due (--apply)")
            return 0
        destroyed = apply(settings, intake, besluiten, out)
        out(f"weerbaar retention: {destroyed} entries destroyed, each destruction recorded")
    finally:
        intake.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
