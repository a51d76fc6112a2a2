"""A service's local register of the dossiers it has heard of (from intake's public events).

Services that act on a dossier keep their own copy of the few public facts they need, instead of
asking intake at request time: they stay available when intake is not, and the copy is written
exactly once per event (the event id is the primary key of ``register_events``).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg import Cursor
from psycopg.sql import SQL, Identifier

from shared.contracts import events as public
from shared.contracts.registry import from_cloudevent
from shared.platform.chain import events_table
from shared.platform.consumer import Delivery, Subscription
from shared.platform.errors import Conflict, NietGevonden
from shared.platform.eventstore import ServiceApplication
from shared.platform.replay import (
    Progress,
    Ran,
    create_target,
    hash_contents,
    move_tables,
    one_run_per_target,
    rebuild_arguments,
    run_command,
    store_batches,
    switch_when_caught_up,
)
from shared.platform.settings import Settings, load_settings

SUBJECTS = (
    "weerbaar.intake.AanvraagIngediend.*",
    "weerbaar.intake.AanvraagIngetrokken.*",
    "weerbaar.intake.DossierAfgesloten.*",
)


def register_ddl() -> tuple[str, ...]:
    """The register's tables (``{schema}`` is the service's schema)."""
    return (
        "CREATE TABLE IF NOT EXISTS {schema}.register_events ("
        " event_id text PRIMARY KEY, aanvraag_id uuid NOT NULL)",
        "CREATE TABLE IF NOT EXISTS {schema}.dossier_register ("
        " aanvraag_id uuid PRIMARY KEY, organisatie_code text,"
        " ingetrokken boolean NOT NULL DEFAULT false,"
        " afgesloten boolean NOT NULL DEFAULT false)",
    )


@dataclass(frozen=True)
class DossierStand:
    """What this service knows of a dossier from intake."""

    aanvraag_id: UUID
    organisatie_code: str
    ingetrokken: bool
    afgesloten: bool

    def require_open(self) -> None:
        """409 when nothing may happen to the dossier any more."""
        if self.ingetrokken:
            raise Conflict("De aanvraag is ingetrokken.", code="dossier_ingetrokken")
        if self.afgesloten:
            raise Conflict("Het dossier is afgesloten.", code="dossier_afgesloten")


def apply(curs: Cursor[Any], schema: str, event_id: str, event: Any) -> bool:
    """Write one of intake's public events into the register in ``schema`` (once per event id:
    False when it was there already). The live consumer and ``weerbaar replay`` both use this."""
    curs.execute(
        SQL(
            "INSERT INTO {} (event_id, aanvraag_id) VALUES (%s, %s)"
            " ON CONFLICT DO NOTHING RETURNING event_id"
        ).format(Identifier(schema, "register_events")),
        (event_id, event.aanvraag_id),
    )
    if curs.fetchone() is None:
        return False
    table = Identifier(schema, "dossier_register")
    if isinstance(event, public.AanvraagIngediend):
        curs.execute(
            SQL(
                "INSERT INTO {} (aanvraag_id, organisatie_code) VALUES (%s, %s)"
                " ON CONFLICT (aanvraag_id) DO UPDATE"
                " SET organisatie_code = EXCLUDED.organisatie_code"
            ).format(table),
            (event.aanvraag_id, event.organisatie_code),
        )
    elif isinstance(event, public.AanvraagIngetrokken | public.DossierAfgesloten):
        column = "ingetrokken" if isinstance(event, public.AanvraagIngetrokken) else "afgesloten"
        curs.execute(
            SQL(
                "INSERT INTO {t} (aanvraag_id, {c}) VALUES (%s, true)"
                " ON CONFLICT (aanvraag_id) DO UPDATE SET {c} = true"
            ).format(t=table, c=Identifier(column)),
            (event.aanvraag_id,),
        )
    return True


class DossierRegister:
    """Keeps the register of one service."""

    def __init__(self, app: ServiceApplication) -> None:
        self.app = app
        self.events = Identifier(app.service, "register_events")
        self.table = Identifier(app.service, "dossier_register")

    def handle(self, delivery: Delivery) -> None:
        """Consumer handler (subscribe it to ``SUBJECTS``)."""
        with self.app.datastore.transaction(commit=True) as curs:
            apply(curs, self.app.service, delivery.envelope.id, delivery.event)

    def stand(self, aanvraag_id: UUID) -> DossierStand | None:
        """The dossier as this service knows it, or None when it has not heard of it."""
        with self.app.datastore.get_connection() as conn:
            row = conn.execute(
                SQL(
                    "SELECT organisatie_code, ingetrokken, afgesloten FROM {}"
                    " WHERE aanvraag_id = %s AND organisatie_code IS NOT NULL"
                ).format(self.table),
                (aanvraag_id,),
            ).fetchone()
        if row is None:
            return None
        return DossierStand(
            aanvraag_id, row["organisatie_code"], row["ingetrokken"], row["afgesloten"]
        )

    def known(self, aanvraag_id: UUID) -> DossierStand:
        """The dossier, or 404 when this service has not heard of it (yet)."""
        stand = self.stand(aanvraag_id)
        if stand is None:
            raise NietGevonden("Onbekend dossier.")
        return stand


def register_subscription(register: DossierRegister) -> Subscription:
    """The subscription that keeps a service's register (purpose ``register``)."""
    return Subscription(
        purpose="register",
        subjects=list(SUBJECTS),
        handler=register.handle,
        description="Keeps the register of dossiers this service may act on.",
    )


# --- rebuilding a register from intake's log ---------------------------------------------------

REGISTER_TABLES = ("register_events", "dossier_register")
REGISTER_EVENTS = (public.AanvraagIngediend, public.AanvraagIngetrokken, public.DossierAfgesloten)


@dataclass
class RegisterOutcome:
    """What one run of a register rebuild did."""

    loaded: int = 0  # intake's stored events read
    applied: int = 0  # public events written into the register
    complete: bool = False
    switched: bool = False
    position: int = 0


class RegisterRebuild:
    """Rebuild one service's dossier register from intake's log (decoded by intake itself, as
    its relay publishes it: the same event ids the live consumer deduplicates by), then switch.

    The rows and intake's position commit together per batch (resumable). The switch locks the
    live tables (in the live handler's order), checks that intake's log is read to its end and
    moves the live tables to ``<service>_register_previous`` and the rebuilt ones in. The live
    consumer may lag behind intake's log; the rebuilt register is then ahead of it, and the
    consumer's later deliveries of those events are already recorded by their ids.
    """

    def __init__(
        self,
        settings: Settings,
        service: str,
        *,
        target: str | None = None,
        env: Mapping[str, str] | None = None,
        progress: bool = True,
    ) -> None:
        self.settings = settings
        self.service = service
        self.target = target or f"{service}_register_replay"
        self.previous = f"{service}_register_previous"
        if self.target in {service, self.previous}:
            raise ValueError(f"the target must not be {self.target}")
        self.env = dict(os.environ if env is None else env)
        self.progress = progress
        self.state = Identifier(self.target, "replay_position")

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.settings.database_url, autocommit=False)

    def prepare(self, *, restart: bool = False) -> None:
        with self.connect() as conn:
            create_target(conn, self.target, register_ddl(), restart=restart)
            conn.execute(
                SQL(
                    "CREATE TABLE IF NOT EXISTS {} (one boolean PRIMARY KEY DEFAULT true"
                    " CHECK (one), position bigint NOT NULL)"
                ).format(self.state)
            )

    def _position(self, conn: psycopg.Connection[Any]) -> int:
        row = conn.execute(SQL("SELECT position FROM {}").format(self.state)).fetchone()
        return 0 if row is None else int(row[0])

    def _intake_end(self, conn: psycopg.Connection[Any]) -> int:
        exists = conn.execute("SELECT to_regclass('intake.intake_events')").fetchone()
        if exists is None or exists[0] is None:
            return 0
        row = conn.execute(
            SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(events_table("intake"))
        ).fetchone()
        return int(row[0]) if row else 0

    def run(self, *, switch: bool = True, max_events: int | None = None) -> RegisterOutcome:
        outcome = RegisterOutcome()
        with one_run_per_target({"conninfo": self.settings.database_url}, self.target):
            self.load(outcome, max_events)
            if switch and outcome.complete:
                switch_when_caught_up(
                    lambda: self.switch(outcome),
                    lambda: self.load(outcome, None),
                    "intake's log keeps growing faster than it is read",
                )
        return outcome

    def load(self, outcome: RegisterOutcome, budget: int | None) -> None:
        with self.connect() as conn:
            position = self._position(conn)
            end = self._intake_end(conn)
        todo = max(end - position, 0) if budget is None else min(max(end - position, 0), budget)
        bar = Progress(todo, f"{self.service} register") if self.progress else None
        batches = store_batches(self.env, "intake", position)
        read = 0
        try:
            for whole in batches:
                batch = whole if budget is None else whole[: budget - read]
                if not batch:
                    break
                with self.connect() as conn, conn.cursor() as curs:
                    for loaded in batch:
                        for _, envelope in loaded.envelopes:
                            event = from_cloudevent(envelope)
                            if isinstance(event, REGISTER_EVENTS) and apply(
                                curs, self.target, envelope.id, event
                            ):
                                outcome.applied += 1
                    position = batch[-1].position
                    curs.execute(
                        SQL(
                            "INSERT INTO {} (position) VALUES (%s)"
                            " ON CONFLICT (one) DO UPDATE SET position = EXCLUDED.position"
                        ).format(self.state),
                        (position,),
                    )
                read += len(batch)
                outcome.loaded += len(batch)
                if bar is not None:
                    bar.advance(batch[-1].position - (batch[0].position - 1))
                if budget is not None and read >= budget:
                    break
        finally:
            batches.close()
        if bar is not None:
            bar.finish()
        with self.connect() as conn:
            outcome.position = self._position(conn)
            outcome.complete = outcome.position >= self._intake_end(conn)

    def switch(self, outcome: RegisterOutcome) -> bool:
        with self.connect() as conn:
            conn.execute(
                SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                    SQL(", ").join(Identifier(self.service, t) for t in REGISTER_TABLES)
                )
            )
            if self._position(conn) < self._intake_end(conn):
                conn.rollback()
                return False
            move_tables(conn, REGISTER_TABLES, self.service, self.target, self.previous)
            conn.commit()
        outcome.switched = True
        return True


def register_contents(database_url: str, schema: str) -> dict[str, list[tuple[str | None, ...]]]:
    """The register's rows per table as text, in a fixed order."""
    queries = {
        "register_events": "SELECT event_id, aanvraag_id::text FROM {}.register_events"
        " ORDER BY event_id",
        "dossier_register": "SELECT aanvraag_id::text, organisatie_code, ingetrokken::text,"
        " afgesloten::text FROM {}.dossier_register ORDER BY aanvraag_id",
    }
    with psycopg.connect(database_url) as conn:
        return {
            table: [tuple(r) for r in conn.execute(SQL(query).format(Identifier(schema)))]
            for table, query in queries.items()
        }


def register_hash(database_url: str, schema: str) -> str:
    """SHA-256 over the register's ``register_contents``."""
    return hash_contents(register_contents(database_url, schema))


def main(argv: Sequence[str] | None = None, *, out: Callable[[str], None] = print) -> int:
    """``python -m shared.platform.register SERVICE``: rebuild that service's dossier register."""
    parser = argparse.ArgumentParser(
        prog="weerbaar replay --projection <service>-register",
        description="Rebuild a service's dossier register from intake's log and switch over.",
    )
    parser.add_argument("service", choices=REGISTER_SERVICES)
    rebuild_arguments(parser, "<service>_register_replay", "events")
    args = parser.parse_args(argv)
    settings = load_settings()
    if args.hash:
        out(register_hash(settings.database_url, args.service))
        return 0
    try:
        rebuild = RegisterRebuild(settings, args.service, target=args.target)
    except ValueError as exc:
        parser.error(str(exc))
    rebuild.prepare(restart=args.restart)

    def run() -> Ran:
        outcome = rebuild.run(switch=not args.no_switch, max_events=args.max_events)
        return Ran(
            f"read {outcome.loaded} of intake's events, applied {outcome.applied}",
            outcome.complete,
            outcome.switched,
        )

    name = f"{args.service}-register"
    return run_command(name, run, rebuild.target, rebuild.previous, out)


#: The services that keep a dossier register.
REGISTER_SERVICES = ("assessment", "approval")


if __name__ == "__main__":
    raise SystemExit(main())
