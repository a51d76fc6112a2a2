"""Intake's read model as its use cases need it (the application's ``ReadModel``), in two forms.

- the **access index** (``dossier_access``): who may see a dossier, the bestuurder by a hash of
  their e-mail address and the werkgever by its ``organisatie_code``; written with the
  registration's events, the hash replaced with the forgetting's;
- the **closing policy's events** (``uitvoering_events``): the events it counts the approved
  report's measures from, each kept once;
- what a **destruction** under the retention periods deletes with its GegevensVernietigd (the
  kept public events with its ids: the audit trail and the closing policy's events).

``SqlReadModel`` has them as tables of intake's schema, written in the events' transaction
(PostgreSQL, the system of record); ``MemoryReadModel`` as dicts on the in-memory store, written
with the events by its recorder (``MemoryWrite``). The composition root gives the application
the one of its store; the application never imports this module.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg.sql import SQL

from services.intake.projections.dossier import ACCESS, DDL, EVENTS, UITVOERING, uitvoering
from shared.contracts.envelope import CloudEvent
from shared.platform.consumer import Delivery
from shared.platform.eventstore import ServiceApplication
from shared.platform.ports import DuplicateKey, MemoryWrite, Statement

#: The constraint a second row of one dossier violates.
ACCESS_CONSTRAINT = "dossier_access_pkey"

ACCESS_DDL = (
    "CREATE TABLE IF NOT EXISTS {schema}.dossier_access ("
    " aanvraag_id uuid PRIMARY KEY, bestuurder_email_hash text NOT NULL,"
    " organisatie_code text NOT NULL)",
    "CREATE INDEX IF NOT EXISTS dossier_access_email ON {schema}.dossier_access"
    " (bestuurder_email_hash)",
)


def _aanvraag_id(delivery: Delivery) -> UUID:
    aanvraag_id = delivery.event.aanvraag_id
    assert aanvraag_id is not None
    return aanvraag_id


class SqlReadModel:
    """The read model in PostgreSQL: the access index and the dossier projection's tables in
    intake's schema."""

    def __init__(self, app: ServiceApplication) -> None:
        self.app = app

    @property
    def ddl(self) -> tuple[str, ...]:
        """The tables (``{schema}`` is the service's schema)."""
        return (*ACCESS_DDL, *DDL)

    def registreer_toegang(
        self, aanvraag_id: UUID, bestuurder_email_hash: str, organisatie_code: str
    ) -> Statement:
        """The side statement that records who may see a new dossier."""
        return Statement(
            SQL(
                "INSERT INTO {} (aanvraag_id, bestuurder_email_hash, organisatie_code)"
                " VALUES (%s, %s, %s)"
            ).format(ACCESS),
            (aanvraag_id, bestuurder_email_hash, organisatie_code),
        )

    def vervang_bestuurder_hash(self, aanvraag_id: UUID, bestuurder_email_hash: str) -> Statement:
        """The side statement that replaces the bestuurder's e-mail hash of the dossier."""
        return Statement(
            SQL("UPDATE {} SET bestuurder_email_hash = %s WHERE aanvraag_id = %s").format(ACCESS),
            (bestuurder_email_hash, aanvraag_id),
        )

    def toegang(self, aanvraag_id: UUID) -> tuple[str, str] | None:
        """(bestuurder e-mail hash, organisatie_code) of a dossier, or None when unknown."""
        with self.app.datastore.get_connection() as conn:
            row = conn.execute(
                SQL(
                    "SELECT bestuurder_email_hash, organisatie_code FROM {} WHERE aanvraag_id = %s"
                ).format(ACCESS),
                (aanvraag_id,),
            ).fetchone()
        return None if row is None else (row["bestuurder_email_hash"], row["organisatie_code"])

    def vernietig(self, aanvraag_id: UUID, event_ids: Sequence[str]) -> list[Statement]:
        """Delete the dossier's kept public events with these ids (audit trail and the closing
        policy's events)."""
        ids = list(event_ids)
        return [
            Statement(
                SQL("DELETE FROM {} WHERE aanvraag_id = %s AND event_id = ANY(%s)").format(table),
                (aanvraag_id, ids),
            )
            for table in (EVENTS, UITVOERING)
        ]

    def noteer_uitvoering(self, delivery: Delivery) -> tuple[int, int]:
        """Keep one of the events the closing policy needs (the event id is the key, so a
        redelivery adds nothing) and answer (measures, measures carried out) of its dossier's
        approved report, from all the dossier's kept events.

        One dossier at a time: two replicas handling its last two events at once would each miss
        the other's uncommitted row, and neither would see every measure carried out.
        """
        aanvraag_id = _aanvraag_id(delivery)
        with self.app.datastore.transaction(commit=True) as curs:
            curs.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"weerbaar-afsluiting:{aanvraag_id}",),
            )
            curs.execute(
                SQL(
                    "INSERT INTO {} (event_id, aanvraag_id, envelope) VALUES (%s, %s, %s)"
                    " ON CONFLICT (event_id) DO NOTHING"
                ).format(UITVOERING),
                (delivery.envelope.id, aanvraag_id, delivery.envelope.to_json().decode()),
            )
            curs.execute(
                SQL("SELECT envelope FROM {} WHERE aanvraag_id = %s").format(UITVOERING),
                (aanvraag_id,),
            )
            envelopes = [CloudEvent.model_validate(row["envelope"]) for row in curs.fetchall()]
        return uitvoering(envelopes)


class MemoryReadModel:
    """The same read model on the in-memory store: the access index and the closing policy's
    events as dicts, written by the recorder with the events (``MemoryWrite``). The dossier
    projection itself (its views and audit trail) is PostgreSQL's alone: its consumer runs in the
    service, not in the use cases."""

    ddl: tuple[str, ...] = ()

    def __init__(self) -> None:
        #: aanvraag_id → (bestuurder e-mail hash, organisatie_code)
        self.toegangen: dict[UUID, tuple[str, str]] = {}
        #: event_id → (aanvraag_id, the envelope's JSON as PostgreSQL's jsonb gives it back)
        self.uitvoering_events: dict[str, tuple[UUID, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def registreer_toegang(
        self, aanvraag_id: UUID, bestuurder_email_hash: str, organisatie_code: str
    ) -> MemoryWrite:
        """The write that records who may see a new dossier (``DuplicateKey`` when it has a row,
        as the table's primary key would)."""

        def check() -> None:
            if aanvraag_id in self.toegangen:
                raise DuplicateKey(ACCESS_CONSTRAINT)

        def apply() -> None:
            self.toegangen[aanvraag_id] = (bestuurder_email_hash, organisatie_code)

        return MemoryWrite(apply=apply, check=check)

    def vervang_bestuurder_hash(self, aanvraag_id: UUID, bestuurder_email_hash: str) -> MemoryWrite:
        """The write that replaces the bestuurder's e-mail hash of the dossier (none: nothing)."""

        def apply() -> None:
            toegang = self.toegangen.get(aanvraag_id)
            if toegang is not None:
                self.toegangen[aanvraag_id] = (bestuurder_email_hash, toegang[1])

        return MemoryWrite(apply=apply)

    def toegang(self, aanvraag_id: UUID) -> tuple[str, str] | None:
        """(bestuurder e-mail hash, organisatie_code) of a dossier, or None when unknown."""
        return self.toegangen.get(aanvraag_id)

    def vernietig(self, aanvraag_id: UUID, event_ids: Sequence[str]) -> list[MemoryWrite]:
        """Delete the dossier's kept events with these ids (the closing policy's: the audit
        trail is not kept here)."""
        ids = set(event_ids)

        def apply() -> None:
            with self._lock:
                for event_id in ids:
                    kept = self.uitvoering_events.get(event_id)
                    if kept is not None and kept[0] == aanvraag_id:
                        del self.uitvoering_events[event_id]

        return [MemoryWrite(apply=apply)]

    def noteer_uitvoering(self, delivery: Delivery) -> tuple[int, int]:
        """Keep one of the events the closing policy needs (once per event id) and answer
        (measures, measures carried out) of its dossier's approved report."""
        aanvraag_id = _aanvraag_id(delivery)
        with self._lock:
            self.uitvoering_events.setdefault(
                delivery.envelope.id, (aanvraag_id, json.loads(delivery.envelope.to_json()))
            )
            envelopes = [
                CloudEvent.model_validate(envelope)
                for a, envelope in self.uitvoering_events.values()
                if a == aanvraag_id
            ]
        return uitvoering(envelopes)
