"""A service's local register of the dossiers it has heard of (from intake's public events).

The register's source is the service that emits its events, as the contract says (``SOURCE``).

Services that act on a dossier keep their own copy of the few public facts they need, instead of
asking intake at request time: they stay available when intake is not, and the copy is written
exactly once per event (the event id is the primary key of ``register_events``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any
from uuid import UUID

import psycopg
from psycopg import Cursor
from psycopg.sql import SQL, Identifier

from shared.contracts import events as public
from shared.contracts.registry import SUBJECT_PREFIX, from_cloudevent
from shared.platform import rebuild
from shared.platform.consumer import Delivery, Subscription
from shared.platform.errors import Conflict, NietGevonden
from shared.platform.eventstore import ServiceApplication
from shared.platform.rebuild import hash_contents
from shared.platform.replay import Loaded, ServiceCommand, StoreExport
from shared.platform.settings import Settings, load_settings

#: The public events the register copies, and the one service whose log they come from (the
#: contract says which service emits each).
REGISTER_EVENTS = (public.AanvraagIngediend, public.AanvraagIngetrokken, public.DossierAfgesloten)
SOURCE = REGISTER_EVENTS[0].service
assert all(event.service == SOURCE for event in REGISTER_EVENTS), "one source log"
SUBJECTS = tuple(f"{SUBJECT_PREFIX}.{SOURCE}.{event.event_name}.*" for event in REGISTER_EVENTS)


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


# --- rebuilding a register from its source's log ----------------------------------------------

REGISTER_TABLES = ("register_events", "dossier_register")


@dataclass
class RegisterOutcome(rebuild.Outcome):
    """What one run of a register rebuild did."""

    source: str = SOURCE
    loaded: int = 0  # the source's stored events read
    applied: int = 0  # public events written into the register
    position: int = 0

    def summary(self) -> str:
        return f"read {self.loaded} of {self.source}'s events, applied {self.applied}"


class RegisterRebuild(rebuild.Rebuild[RegisterOutcome]):
    """Rebuild one service's dossier register from its source's log (decoded by the source
    service itself, as its relay publishes it: the same event ids the live consumer deduplicates
    by), then switch.

    The rows and the source's position commit together per batch (resumable). The switch locks
    the live tables (in the live handler's order), checks that the log is read to its end and
    moves the live tables to ``<service>_register_previous`` and the rebuilt ones in. The live
    consumer may lag behind the log; the rebuilt register is then ahead of it, and the
    consumer's later deliveries of those events are already recorded by their ids.
    """

    lagging = f"{SOURCE}'s log keeps growing faster than it is read"

    def __init__(
        self,
        settings: Settings,
        service: str,
        *,
        command: ServiceCommand,
        target: str | None = None,
        env: Mapping[str, str] | None = None,
        progress: bool = True,
    ) -> None:
        super().__init__(
            {"conninfo": settings.database_url},
            live=service,
            tables=REGISTER_TABLES,
            target=target or f"{service}_register_replay",
            previous=f"{service}_register_previous",
            progress=progress,
        )
        self.service = service
        self.command = command
        self.env = dict(os.environ if env is None else env)

    def outcome(self) -> RegisterOutcome:
        return RegisterOutcome()

    def ddl(self) -> Sequence[str]:
        return (*register_ddl(), rebuild.POSITIONS_DDL)

    def _position(self, conn: psycopg.Connection[Any]) -> int:
        return rebuild.positions(conn, self.target, (SOURCE,))[SOURCE]

    def load(self, outcome: RegisterOutcome, budget: int | None) -> bool:
        with self.connect() as conn:
            position = self._position(conn)
            end = rebuild.log_end(conn, SOURCE)
            todo = rebuild.log_remaining(conn, SOURCE, position, end)
        bar = self.bar(todo if budget is None else min(todo, budget), f"{self.service} register")
        export = StoreExport(self.env, SOURCE, position, command=self.command)
        try:
            outcome.loaded += rebuild.read_batches(
                SOURCE, export.batches(), partial(self._commit, outcome), bar, budget
            )
        finally:
            export.close()
        if bar is not None:
            bar.finish()
        with self.connect() as conn:
            outcome.position = self._position(conn)
            return outcome.position >= rebuild.log_end(conn, SOURCE)

    def _commit(self, outcome: RegisterOutcome, batch: Sequence[Loaded]) -> None:
        """A batch's events, through the live handler's ``apply``, and the position reached."""
        with self.connect() as conn, conn.cursor() as curs:
            for loaded in batch:
                for _, envelope in loaded.envelopes:
                    event = from_cloudevent(envelope)
                    if isinstance(event, REGISTER_EVENTS) and apply(
                        curs, self.target, envelope.id, event
                    ):
                        outcome.applied += 1
            rebuild.set_position(curs, self.target, SOURCE, batch[-1].position)

    def ready(self, conn: psycopg.Connection[Any], outcome: RegisterOutcome) -> bool:
        return self._position(conn) >= rebuild.log_end(conn, SOURCE)


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


def main(
    argv: Sequence[str],
    *,
    services: Sequence[str],
    command: ServiceCommand,
    out: Callable[[str], None] = print,
) -> int:
    """``weerbaar replay --projection <service>-register``: rebuild that service's dossier
    register (one of ``services``, those that keep one; ``command`` starts the source service)."""
    parser = rebuild.parser(
        "weerbaar replay --projection <service>-register",
        f"Rebuild a service's dossier register from {SOURCE}'s log and switch over.",
        "<service>_register_replay",
        "events",
    )
    parser.add_argument("service", choices=services)
    args = parser.parse_args(argv)
    settings = load_settings()
    return rebuild.command(
        parser,
        args,
        f"{args.service}-register",
        live_hash=lambda: register_hash(settings.database_url, args.service),
        build=lambda: RegisterRebuild(settings, args.service, command=command, target=args.target),
        out=out,
    )
