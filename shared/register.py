"""A service's local register of the dossiers it has heard of (from intake's public events).

Services that act on a dossier keep their own copy of the few public facts they need, instead of
asking intake at request time: they stay available when intake is not, and the copy is written
exactly once per event (the event id is the primary key of ``register_events``).
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from psycopg.sql import SQL, Identifier

from shared.consumer import Delivery, Subscription
from shared.contracts import events as public
from shared.errors import Conflict, NietGevonden
from shared.eventstore import ServiceApplication

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


class DossierRegister:
    """Keeps the register of one service."""

    def __init__(self, app: ServiceApplication) -> None:
        self.app = app
        self.events = Identifier(app.service, "register_events")
        self.table = Identifier(app.service, "dossier_register")

    def handle(self, delivery: Delivery) -> None:
        """Consumer handler (subscribe it to ``SUBJECTS``)."""
        event = delivery.event
        with self.app.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {} (event_id, aanvraag_id) VALUES (%s, %s)"
                    " ON CONFLICT DO NOTHING RETURNING event_id"
                ).format(self.events),
                (delivery.envelope.id, event.aanvraag_id),
            )
            if curs.fetchone() is None:
                return
            if isinstance(event, public.AanvraagIngediend):
                curs.execute(
                    SQL(
                        "INSERT INTO {} (aanvraag_id, organisatie_code) VALUES (%s, %s)"
                        " ON CONFLICT (aanvraag_id) DO UPDATE"
                        " SET organisatie_code = EXCLUDED.organisatie_code"
                    ).format(self.table),
                    (event.aanvraag_id, event.organisatie_code),
                )
            elif isinstance(event, public.AanvraagIngetrokken | public.DossierAfgesloten):
                column = (
                    "ingetrokken" if isinstance(event, public.AanvraagIngetrokken) else "afgesloten"
                )
                curs.execute(
                    SQL(
                        "INSERT INTO {t} (aanvraag_id, {c}) VALUES (%s, true)"
                        " ON CONFLICT (aanvraag_id) DO UPDATE SET {c} = true"
                    ).format(t=self.table, c=Identifier(column)),
                    (event.aanvraag_id,),
                )

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
