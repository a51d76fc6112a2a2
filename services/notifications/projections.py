r"""Notifications' own tables: the delivery log and the senders' queue (``deliveries``, the
projection ``NOTIFICATIE`` of the notifications), what the service heard of appointments
(``afspraken``, ``toelichtingsverzoeken``) and the confirmations' window per address
(``bevestigingsvenster``): their DDL, rows and queries.

The use cases get them through the application's ``Tables`` port, in the form of the store they
run on (the composition root chooses): ``Tables`` in PostgreSQL, whose rows go into the events'
transaction as SQL statements, or ``MemoryTables`` on the in-memory store, the same rows in dicts
written by ``MemoryWrite``\ s with the events.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.postgres import PostgresDatastore
from psycopg.sql import SQL, Composed, Identifier

from services.notifications.domain.notificatie import (
    Notificatie,
    NotificatieBezorging,
    NotificatieGepland,
    Ontvanger,
    Partij,
    project,
)
from services.notifications.domain.templates import AFSPRAAK_BEVESTIGING, AFSPRAAK_VERZET
from shared.platform.errors import NietGevonden
from shared.platform.eventstore import ServiceApplication
from shared.platform.ports import MemoryWrite, Statement
from shared.platform.projection import AggregateProjection, Table

DELIVERIES = Identifier("notifications", "deliveries")
AFSPRAKEN = Identifier("notifications", "afspraken")
VERZOEKEN = Identifier("notifications", "toelichtingsverzoeken")
BEVESTIGINGSVENSTER = Identifier("notifications", "bevestigingsvenster")


def where(**equal: object) -> tuple[Composed, list[Any]]:
    """A condition that each named column equals its value; a value of None filters nothing."""
    given = [(column, value) for column, value in equal.items() if value is not None]
    clauses = [SQL("true"), *(SQL("{} = %s").format(Identifier(c)) for c, _ in given)]
    return SQL(" AND ").join(clauses), [value for _, value in given]


def _delivery_rows(notificatie: Notificatie) -> dict[str, list[tuple[object, ...]]]:
    """The delivery log's row of one notification."""
    afspraak_id = notificatie.parameters.get("afspraak_id")
    return {
        "deliveries": [
            (
                notificatie.id,
                notificatie.aanvraag_id,
                notificatie.soort,
                notificatie.ontvanger,
                notificatie.status,
                notificatie.pogingen,
                notificatie.volgende_poging,
                notificatie.bijgewerkt_op,
                UUID(afspraak_id) if isinstance(afspraak_id, str) else None,
                notificatie.reden_code,
            )
        ]
    }


#: The delivery log (``GET /notificaties``) and the senders' queue: what is due when. A sender's
#: claim (``geclaimd_tot``) is working state, carried over when a rebuild switches in. Rebuilt by
#: ``weerbaar replay --projection notifications``.
NOTIFICATIE = AggregateProjection[Notificatie](
    service="notifications",
    tables=(
        Table(
            "deliveries",
            columns=(
                "notificatie_id",
                "aanvraag_id",
                "soort",
                "ontvanger",
                "status",
                "pogingen",
                "volgende_poging",
                "bijgewerkt_op",
                "afspraak_id",
                "reden_code",
            ),
            key=("notificatie_id",),
            owner="notificatie_id",
            carried=("geclaimd_tot",),
            ddl=(
                "CREATE TABLE IF NOT EXISTS {schema}.deliveries ("
                " notificatie_id uuid PRIMARY KEY, aanvraag_id uuid NOT NULL, soort text NOT NULL,"
                " ontvanger text NOT NULL, status text NOT NULL, pogingen int NOT NULL,"
                " volgende_poging timestamptz, geclaimd_tot timestamptz,"
                " bijgewerkt_op timestamptz NOT NULL)",
                "CREATE INDEX IF NOT EXISTS deliveries_due ON {schema}.deliveries"
                " (volgende_poging) WHERE status = 'gepland'",
                "CREATE INDEX IF NOT EXISTS deliveries_dossier ON {schema}.deliveries"
                " (aanvraag_id)",
                # Added after the first release: databases of that release get the column here.
                "ALTER TABLE {schema}.deliveries ADD COLUMN IF NOT EXISTS afspraak_id uuid",
                "CREATE INDEX IF NOT EXISTS deliveries_afspraak ON {schema}.deliveries"
                " (afspraak_id) WHERE afspraak_id IS NOT NULL",
                # Added later still: rows written before show no reason until a replay
                # (`weerbaar replay --projection notifications`) or their next attempt.
                "ALTER TABLE {schema}.deliveries ADD COLUMN IF NOT EXISTS reden_code text",
            ),
        ),
    ),
    started_by=(NotificatieGepland,),
    fold=project,
    rows=_delivery_rows,
    description="the delivery log",
)


#: Every table of the service's own (the webhooks' are the webhook store's), created at start.
DDL: tuple[str, ...] = (
    *NOTIFICATIE.ddl,
    # Per appointment: who heard of it (a toelichting's recipients) and how often it changed
    # (the calendar file's SEQUENCE, so clients replace their entry rather than add one).
    "CREATE TABLE IF NOT EXISTS {schema}.afspraken ("
    " afspraak_id uuid PRIMARY KEY, aanvraag_id uuid NOT NULL, ontvangers text[],"
    " volgnummer int NOT NULL DEFAULT 0)",
    # Who asked for a toelichting, until a planned toelichting answers the request.
    "CREATE TABLE IF NOT EXISTS {schema}.toelichtingsverzoeken ("
    " verzoek_id text PRIMARY KEY, aanvraag_id uuid NOT NULL, partij text NOT NULL,"
    " aangevraagd_op timestamptz NOT NULL, afspraak_id uuid)",
    "CREATE INDEX IF NOT EXISTS toelichtingsverzoeken_open"
    " ON {schema}.toelichtingsverzoeken (aanvraag_id) WHERE afspraak_id IS NULL",
    # The last registration confirmation per address (a keyed hash, never the address),
    # kept for the window only: at most one confirmation per address per window.
    "CREATE TABLE IF NOT EXISTS {schema}.bevestigingsvenster ("
    " adres_sleutel text PRIMARY KEY, notificatie_id uuid NOT NULL,"
    " verzonden_op timestamptz NOT NULL)",
    "CREATE INDEX IF NOT EXISTS bevestigingsvenster_op"
    " ON {schema}.bevestigingsvenster (verzonden_op)",
)


class Tables:
    """The service's own tables in PostgreSQL, as the use cases and the API read and write them."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore

    # --- the delivery log and the senders' queue ---------------------------------------------

    def rows(self, before: Notificatie | None, after: Notificatie) -> Sequence[Statement]:
        """The delivery log's row of a notification that changed, as statements."""
        return NOTIFICATIE.statements(before, after)

    def released(self, notificatie_id: UUID) -> Sequence[Statement]:
        """The sender's claim on a notification given back (its attempt is on record)."""
        return [
            Statement(
                SQL("UPDATE {} SET geclaimd_tot = NULL WHERE notificatie_id = %s").format(
                    DELIVERIES
                ),
                (notificatie_id,),
            )
        ]

    def claim_due(self, now: datetime, limit: int, hold: float = 60.0) -> list[UUID]:
        """Claim notifications that are due, so that no other sender takes them meanwhile; in the
        order they fell due (an UPDATE's RETURNING keeps no order of its own)."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "WITH claimed AS (UPDATE {t} SET geclaimd_tot = %s WHERE notificatie_id IN ("
                    " SELECT notificatie_id FROM {t} WHERE status = 'gepland'"
                    " AND volgende_poging <= %s AND (geclaimd_tot IS NULL OR geclaimd_tot < %s)"
                    " ORDER BY volgende_poging LIMIT %s FOR UPDATE SKIP LOCKED)"
                    " RETURNING notificatie_id, volgende_poging)"
                    " SELECT notificatie_id FROM claimed ORDER BY volgende_poging, notificatie_id"
                ).format(t=DELIVERIES),
                (now + timedelta(seconds=hold), now, now, limit),
            )
            return [row["notificatie_id"] for row in curs.fetchall()]

    def dossier_van(self, notificatie_id: UUID) -> UUID | None:
        """The dossier of a notification (None when unknown)."""
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                SQL("SELECT aanvraag_id FROM {} WHERE notificatie_id = %s").format(DELIVERIES),
                (notificatie_id,),
            ).fetchone()
        return None if row is None else UUID(str(row["aanvraag_id"]))

    def bezorgingen(
        self,
        *,
        aanvraag_id: UUID | None = None,
        status: str | None = None,
        notificatie_id: UUID | None = None,
        limit: int = 100,
    ) -> list[NotificatieBezorging]:
        """The delivery log, newest first."""
        condition, params = where(
            notificatie_id=notificatie_id, aanvraag_id=aanvraag_id, status=status
        )
        query = SQL(
            "SELECT notificatie_id, aanvraag_id, soort, ontvanger, status, pogingen,"
            " volgende_poging, bijgewerkt_op, reden_code FROM {} WHERE {}"
            " ORDER BY bijgewerkt_op DESC LIMIT %s"
        ).format(DELIVERIES, condition)
        with self.datastore.get_connection() as conn:
            rows = conn.execute(query, [*params, limit]).fetchall()
        return [NotificatieBezorging.model_validate(dict(row)) for row in rows]

    def bezorging(self, notificatie_id: UUID) -> NotificatieBezorging:
        """One notification's line of the delivery log (it has one once it is planned; 404
        when there is none)."""
        found = self.bezorgingen(notificatie_id=notificatie_id, limit=1)
        if not found:
            raise NietGevonden("Onbekende notificatie.")
        return found[0]

    # --- appointments --------------------------------------------------------------------------

    def verzoek_onthouden(
        self, verzoek_id: str, aanvraag_id: UUID, partij: Partij, aangevraagd_op: datetime
    ) -> None:
        """Remember who asked for a toelichting (idempotent: the request's event id is the key)."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {} (verzoek_id, aanvraag_id, partij, aangevraagd_op)"
                    " VALUES (%s, %s, %s, %s) ON CONFLICT (verzoek_id) DO NOTHING"
                ).format(VERZOEKEN),
                (verzoek_id, aanvraag_id, partij, aangevraagd_op),
            )

    def open_verzoeken(self, aanvraag_id: UUID) -> dict[str, Partij]:
        """The dossier's toelichting requests no planned toelichting answered yet: id → party."""
        with self.datastore.get_connection() as conn:
            rows = conn.execute(
                SQL(
                    "SELECT verzoek_id, partij FROM {} WHERE aanvraag_id = %s"
                    " AND afspraak_id IS NULL"
                ).format(VERZOEKEN),
                (aanvraag_id,),
            ).fetchall()
        return {row["verzoek_id"]: row["partij"] for row in rows}

    def afspraak_gepland(
        self,
        afspraak_id: UUID,
        aanvraag_id: UUID,
        ontvangers: Sequence[Partij],
        beantwoord: Sequence[str],
    ) -> Sequence[Statement]:
        """Who hears of a new appointment, and the requests it answers, as statements."""
        statements = [
            Statement(
                SQL(
                    "INSERT INTO {} (afspraak_id, aanvraag_id, ontvangers) VALUES (%s, %s, %s)"
                    " ON CONFLICT (afspraak_id) DO UPDATE SET ontvangers = EXCLUDED.ontvangers"
                ).format(AFSPRAKEN),
                (afspraak_id, aanvraag_id, list(ontvangers)),
            )
        ]
        if beantwoord:
            statements.append(
                Statement(
                    SQL("UPDATE {} SET afspraak_id = %s WHERE verzoek_id = ANY(%s)").format(
                        VERZOEKEN
                    ),
                    (afspraak_id, list(beantwoord)),
                )
            )
        return statements

    def afspraak_gewijzigd(self, afspraak_id: UUID, aanvraag_id: UUID) -> Sequence[Statement]:
        """One more change of the appointment (its calendar SEQUENCE), as a statement."""
        return [
            Statement(
                SQL(
                    "INSERT INTO {} AS a (afspraak_id, aanvraag_id, volgnummer)"
                    " VALUES (%s, %s, 1)"
                    " ON CONFLICT (afspraak_id) DO UPDATE SET volgnummer = a.volgnummer + 1"
                ).format(AFSPRAKEN),
                (afspraak_id, aanvraag_id),
            )
        ]

    def ontvangers_van(self, afspraak_id: UUID) -> tuple[Partij, ...]:
        """Who heard of the appointment (none when it is unknown here)."""
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                SQL("SELECT ontvangers FROM {} WHERE afspraak_id = %s").format(AFSPRAKEN),
                (afspraak_id,),
            ).fetchone()
        return tuple(row["ontvangers"] or ()) if row else ()

    def volgnummer(self, afspraak_id: UUID) -> int:
        """How often the appointment changed since it was planned (its calendar SEQUENCE)."""
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                SQL("SELECT volgnummer FROM {} WHERE afspraak_id = %s").format(AFSPRAKEN),
                (afspraak_id,),
            ).fetchone()
        return int(row["volgnummer"]) if row else 0

    def aangekondigd(self, afspraak_id: UUID, ontvanger: Ontvanger) -> bool:
        """Whether a mail announcing the appointment (planned or moved) reached this recipient."""
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                SQL(
                    "SELECT 1 FROM {} WHERE afspraak_id = %s AND ontvanger = %s"
                    " AND soort = ANY(%s) AND status = 'verzonden' LIMIT 1"
                ).format(DELIVERIES),
                (afspraak_id, ontvanger, [AFSPRAAK_BEVESTIGING, AFSPRAAK_VERZET]),
            ).fetchone()
        return row is not None

    # --- at most one registration confirmation per address per window --------------------------

    def bevestiging_claimen(
        self, sleutel: str, notificatie_id: UUID, now: datetime, venster: timedelta
    ) -> bool:
        """Claim the address's window for this confirmation: False when another one was sent (or
        is being sent) to it within ``venster``; True for the first, and for its own retries.

        One statement decides, so two senders with two registrations of one address side by
        side cannot both send. Entries older than the window are removed on the way.
        """
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL("DELETE FROM {} WHERE verzonden_op <= %s").format(BEVESTIGINGSVENSTER),
                (now - venster,),
            )
            curs.execute(
                SQL(
                    "INSERT INTO {} AS v (adres_sleutel, notificatie_id, verzonden_op)"
                    " VALUES (%s, %s, %s) ON CONFLICT (adres_sleutel) DO UPDATE"
                    " SET verzonden_op = v.verzonden_op"
                    " WHERE v.notificatie_id = EXCLUDED.notificatie_id RETURNING 1"
                ).format(BEVESTIGINGSVENSTER),
                (sleutel, notificatie_id, now),
            )
            return curs.fetchone() is not None

    def bevestiging_vrijgeven(self, sleutel: str, notificatie_id: UUID) -> Sequence[Statement]:
        """Give the window back (recorded with a confirmation that failed for good: none went)."""
        return [
            Statement(
                SQL("DELETE FROM {} WHERE adres_sleutel = %s AND notificatie_id = %s").format(
                    BEVESTIGINGSVENSTER
                ),
                (sleutel, notificatie_id),
            )
        ]


class MemoryTables:
    r"""The same tables on the in-memory store, as dicts: the rows a use case writes are
    ``MemoryWrite``\ s, applied under the in-memory recorder's lock with the events they come
    with; what PostgreSQL writes in a transaction of its own (a sender's claim, a toelichting
    request, a confirmation's window) is written at once under this store's lock."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        #: notificatie_id → the delivery log's row (``_delivery_rows``'s columns) and its claim.
        self.deliveries: dict[UUID, dict[str, Any]] = {}
        #: afspraak_id → (aanvraag_id, ontvangers or None, volgnummer).
        self.afspraken: dict[UUID, tuple[UUID, tuple[Partij, ...] | None, int]] = {}
        #: verzoek_id → (aanvraag_id, partij, aangevraagd_op, the afspraak that answered it).
        self.verzoeken: dict[str, tuple[UUID, Partij, datetime, UUID | None]] = {}
        #: adres_sleutel → (notificatie_id, verzonden_op).
        self.venster: dict[str, tuple[UUID, datetime]] = {}

    # --- the delivery log and the senders' queue ---------------------------------------------

    def rows(self, before: Notificatie | None, after: Notificatie) -> Sequence[MemoryWrite]:
        """The delivery log's row of a notification that changed (its claim carried over)."""
        [row] = _delivery_rows(after)["deliveries"]
        columns = NOTIFICATIE.tables[0].columns
        new = dict(zip(columns, row, strict=True))

        def apply() -> None:
            with self._lock:
                old = self.deliveries.get(after.id)
                new["geclaimd_tot"] = None if old is None else old["geclaimd_tot"]
                self.deliveries[after.id] = new

        return [MemoryWrite(apply=apply)]

    def released(self, notificatie_id: UUID) -> Sequence[MemoryWrite]:
        """The sender's claim on a notification given back (its attempt is on record)."""

        def apply() -> None:
            with self._lock:
                row = self.deliveries.get(notificatie_id)
                if row is not None:
                    row["geclaimd_tot"] = None

        return [MemoryWrite(apply=apply)]

    def claim_due(self, now: datetime, limit: int, hold: float = 60.0) -> list[UUID]:
        """Claim notifications that are due, in the order they fell due."""
        with self._lock:
            due = sorted(
                (row["volgende_poging"], row["notificatie_id"])
                for row in self.deliveries.values()
                if row["status"] == "gepland"
                and row["volgende_poging"] is not None
                and row["volgende_poging"] <= now
                and (row["geclaimd_tot"] is None or row["geclaimd_tot"] < now)
            )[:limit]
            for _, notificatie_id in due:
                self.deliveries[notificatie_id]["geclaimd_tot"] = now + timedelta(seconds=hold)
        return [notificatie_id for _, notificatie_id in due]

    def dossier_van(self, notificatie_id: UUID) -> UUID | None:
        """The dossier of a notification (None when unknown)."""
        row = self.deliveries.get(notificatie_id)
        return None if row is None else UUID(str(row["aanvraag_id"]))

    def bezorgingen(
        self,
        *,
        aanvraag_id: UUID | None = None,
        status: str | None = None,
        notificatie_id: UUID | None = None,
        limit: int = 100,
    ) -> list[NotificatieBezorging]:
        """The delivery log, newest first."""
        wanted = {"notificatie_id": notificatie_id, "aanvraag_id": aanvraag_id, "status": status}
        with self._lock:
            rows = [
                dict(row)
                for row in self.deliveries.values()
                if all(v is None or row[c] == v for c, v in wanted.items())
            ]
        rows.sort(key=lambda row: row["bijgewerkt_op"], reverse=True)
        return [NotificatieBezorging.model_validate(row) for row in rows[:limit]]

    def bezorging(self, notificatie_id: UUID) -> NotificatieBezorging:
        """One notification's line of the delivery log (it has one once it is planned; 404
        when there is none)."""
        found = self.bezorgingen(notificatie_id=notificatie_id, limit=1)
        if not found:
            raise NietGevonden("Onbekende notificatie.")
        return found[0]

    # --- appointments --------------------------------------------------------------------------

    def verzoek_onthouden(
        self, verzoek_id: str, aanvraag_id: UUID, partij: Partij, aangevraagd_op: datetime
    ) -> None:
        """Remember who asked for a toelichting (idempotent: the request's event id is the key)."""
        with self._lock:
            self.verzoeken.setdefault(verzoek_id, (aanvraag_id, partij, aangevraagd_op, None))

    def open_verzoeken(self, aanvraag_id: UUID) -> dict[str, Partij]:
        """The dossier's toelichting requests no planned toelichting answered yet: id → party."""
        with self._lock:
            return {
                verzoek_id: partij
                for verzoek_id, (dossier, partij, _, afspraak_id) in self.verzoeken.items()
                if dossier == aanvraag_id and afspraak_id is None
            }

    def afspraak_gepland(
        self,
        afspraak_id: UUID,
        aanvraag_id: UUID,
        ontvangers: Sequence[Partij],
        beantwoord: Sequence[str],
    ) -> Sequence[MemoryWrite]:
        """Who hears of a new appointment, and the requests it answers."""

        def apply() -> None:
            with self._lock:
                dossier, _, volgnummer = self.afspraken.get(afspraak_id, (aanvraag_id, None, 0))
                self.afspraken[afspraak_id] = (dossier, tuple(ontvangers), volgnummer)
                for verzoek_id in beantwoord:
                    if verzoek_id in self.verzoeken:
                        dossier_id, partij, op, _ = self.verzoeken[verzoek_id]
                        self.verzoeken[verzoek_id] = (dossier_id, partij, op, afspraak_id)

        return [MemoryWrite(apply=apply)]

    def afspraak_gewijzigd(self, afspraak_id: UUID, aanvraag_id: UUID) -> Sequence[MemoryWrite]:
        """One more change of the appointment (its calendar SEQUENCE)."""

        def apply() -> None:
            with self._lock:
                if afspraak_id not in self.afspraken:
                    self.afspraken[afspraak_id] = (aanvraag_id, None, 1)
                    return
                dossier, ontvangers, volgnummer = self.afspraken[afspraak_id]
                self.afspraken[afspraak_id] = (dossier, ontvangers, volgnummer + 1)

        return [MemoryWrite(apply=apply)]

    def ontvangers_van(self, afspraak_id: UUID) -> tuple[Partij, ...]:
        """Who heard of the appointment (none when it is unknown here)."""
        found = self.afspraken.get(afspraak_id)
        return tuple(found[1] or ()) if found else ()

    def volgnummer(self, afspraak_id: UUID) -> int:
        """How often the appointment changed since it was planned (its calendar SEQUENCE)."""
        found = self.afspraken.get(afspraak_id)
        return found[2] if found else 0

    def aangekondigd(self, afspraak_id: UUID, ontvanger: Ontvanger) -> bool:
        """Whether a mail announcing the appointment (planned or moved) reached this recipient."""
        with self._lock:
            return any(
                row["afspraak_id"] == afspraak_id
                and row["ontvanger"] == ontvanger
                and row["soort"] in (AFSPRAAK_BEVESTIGING, AFSPRAAK_VERZET)
                and row["status"] == "verzonden"
                for row in self.deliveries.values()
            )

    # --- at most one registration confirmation per address per window --------------------------

    def bevestiging_claimen(
        self, sleutel: str, notificatie_id: UUID, now: datetime, venster: timedelta
    ) -> bool:
        """Claim the address's window for this confirmation (``Tables.bevestiging_claimen``)."""
        with self._lock:
            for key in [k for k, (_, op) in self.venster.items() if op <= now - venster]:
                del self.venster[key]
            held = self.venster.get(sleutel)
            if held is None:
                self.venster[sleutel] = (notificatie_id, now)
                return True
            return held[0] == notificatie_id

    def bevestiging_vrijgeven(self, sleutel: str, notificatie_id: UUID) -> Sequence[MemoryWrite]:
        """Give the window back (recorded with a confirmation that failed for good)."""

        def apply() -> None:
            with self._lock:
                held = self.venster.get(sleutel)
                if held is not None and held[0] == notificatie_id:
                    del self.venster[sleutel]

        return [MemoryWrite(apply=apply)]


def sql_tables(app: ServiceApplication) -> Tables:
    """The tables in PostgreSQL, created when missing (the application on PostgreSQL)."""
    app.create_tables(DDL)
    return Tables(app.datastore)


def memory_tables(app: ServiceApplication) -> MemoryTables:
    """The tables in memory (the application on the in-memory store)."""
    return MemoryTables()
