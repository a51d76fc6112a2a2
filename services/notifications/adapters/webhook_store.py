"""The webhook store in PostgreSQL (the application's ``WebhookStore``): subscriptions, the dossier
register, deliveries and their attempts, as rows and queries; the use cases that decide and
record events are the application's (``application.Webhooks``).

The deliveries of one message are planned in the transaction that records the message in the
inbox: a redelivered message plans nothing twice, and a planned delivery cannot get lost between
NATS and the sender. A sender claims due deliveries with ``FOR UPDATE SKIP LOCKED`` and a claim
token, so two replicas never send one attempt twice, and each attempt's outcome (status or error
class, duration) goes into ``webhook_pogingen`` with the subscription's health.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from eventsourcing.postgres import PostgresDatastore
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from services.notifications.domain.webhooks import (
    Abonnement,
    Claim,
    Eigenaar,
    Filter,
    Gebeurtenis,
    Gezondheid,
    Kies,
    Poging,
    Uitkomst,
    WebhookBezorging,
    bezorging_id,
)
from services.notifications.projections import where
from shared.contracts import events as public
from shared.contracts.envelope import CloudEvent
from shared.platform.eventstore import AlreadyProcessed, ServiceApplication
from shared.platform.ports import Statement
from shared.platform.telemetry import metrics_for

log = logging.getLogger(__name__)

SCHEMA = "notifications"
ABONNEMENTEN = Identifier(SCHEMA, "webhook_abonnementen")
DOSSIERS = Identifier(SCHEMA, "webhook_dossiers")
BEZORGINGEN = Identifier(SCHEMA, "webhook_bezorgingen")
POGINGEN = Identifier(SCHEMA, "webhook_pogingen")
INBOX = Identifier(SCHEMA, "inbox")

DDL = (
    "CREATE TABLE IF NOT EXISTS {schema}.webhook_abonnementen ("
    " abonnement_id uuid PRIMARY KEY, callback_url text NOT NULL, event_types text[],"
    " organisatie_code text, aanvraag_id uuid, eigenaar text NOT NULL, status text NOT NULL,"
    " versie int NOT NULL, secret_key_id uuid NOT NULL, secret bytea NOT NULL,"
    " aangemaakt_op timestamptz NOT NULL, opeenvolgende_fouten int NOT NULL DEFAULT 0,"
    " falend_sinds timestamptz, laatste_fout text, verwijderd_op timestamptz)",
    "CREATE TABLE IF NOT EXISTS {schema}.webhook_dossiers ("
    " aanvraag_id uuid PRIMARY KEY, organisatie_code text,"
    " vrijgegeven boolean NOT NULL DEFAULT false)",
    "CREATE TABLE IF NOT EXISTS {schema}.webhook_bezorgingen ("
    " bezorging_id uuid PRIMARY KEY, abonnement_id uuid NOT NULL, event_id text NOT NULL,"
    " event_type text NOT NULL, aanvraag_id uuid, body bytea NOT NULL, status text NOT NULL,"
    " pogingen int NOT NULL DEFAULT 0, ronde_start int NOT NULL DEFAULT 0,"
    " volgende_poging timestamptz, claim uuid, geclaimd_tot timestamptz,"
    " aangemaakt_op timestamptz NOT NULL, afgeleverd_op timestamptz,"
    " UNIQUE (abonnement_id, event_id))",
    "CREATE INDEX IF NOT EXISTS webhook_bezorgingen_due"
    " ON {schema}.webhook_bezorgingen (volgende_poging) WHERE status = 'gepland'",
    "CREATE TABLE IF NOT EXISTS {schema}.webhook_pogingen ("
    " bezorging_id uuid NOT NULL, poging int NOT NULL, op timestamptz NOT NULL,"
    " duur_ms int NOT NULL, status_code int, fout text, geslaagd boolean NOT NULL,"
    " PRIMARY KEY (bezorging_id, poging))",
)


def _abonnement(row: DictRow) -> Abonnement:
    return Abonnement.model_validate(dict(row))


_ABONNEMENT_COLUMNS = SQL(
    "abonnement_id, callback_url, event_types, organisatie_code, aanvraag_id, eigenaar, status,"
    " aangemaakt_op, opeenvolgende_fouten, falend_sinds, laatste_fout"
)


class SqlWebhookStore:
    """Subscriptions and deliveries of the notifications service in PostgreSQL."""

    def __init__(self, datastore: PostgresDatastore) -> None:
        self.datastore = datastore

    # --- subscriptions -------------------------------------------------------------------------

    def nieuw(
        self,
        abonnement_id: UUID,
        callback_url: str,
        event_types: Sequence[str] | None,
        organisatie_code: str | None,
        aanvraag_id: UUID | None,
        eigenaar: Eigenaar,
        secret_key_id: UUID,
        secret: bytes,
        now: datetime,
    ) -> Sequence[Statement]:
        """A new subscription's row (version 1, active)."""
        return [
            Statement(
                SQL(
                    "INSERT INTO {} (abonnement_id, callback_url, event_types, organisatie_code,"
                    " aanvraag_id, eigenaar, status, versie, secret_key_id, secret, aangemaakt_op)"
                    " VALUES (%s, %s, %s, %s, %s, %s, 'actief', 1, %s, %s, %s)"
                ).format(ABONNEMENTEN),
                (
                    abonnement_id,
                    callback_url,
                    None if event_types is None else list(event_types),
                    organisatie_code,
                    aanvraag_id,
                    eigenaar,
                    secret_key_id,
                    secret,
                    now,
                ),
            )
        ]

    def verwijderd(self, abonnement_id: UUID, versie: int, now: datetime) -> Sequence[Statement]:
        """A subscription removed at ``versie`` + 1, its planned deliveries lapsed."""
        return [
            Statement(
                SQL(
                    "UPDATE {} SET status = 'verwijderd', versie = %s, verwijderd_op = %s"
                    " WHERE abonnement_id = %s AND versie = %s"
                ).format(ABONNEMENTEN),
                (versie + 1, now, abonnement_id, versie),
            ),
            Statement(
                SQL(
                    "UPDATE {} SET status = 'vervallen', volgende_poging = NULL"
                    " WHERE abonnement_id = %s AND status = 'gepland'"
                ).format(BEZORGINGEN),
                (abonnement_id,),
            ),
        ]

    def gemarkeerd(self, abonnement_id: UUID, versie: int, status: str) -> Sequence[Statement]:
        """A subscription marked ``falend`` or ``actief`` again at ``versie`` + 1."""
        return [
            Statement(
                SQL(
                    "UPDATE {} SET status = %s, versie = %s WHERE abonnement_id = %s"
                    " AND versie = %s AND status <> 'verwijderd'"
                ).format(ABONNEMENTEN),
                (status, versie + 1, abonnement_id, versie),
            )
        ]

    def abonnement(self, abonnement_id: UUID) -> Abonnement | None:
        """One subscription, or None."""
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                SQL("SELECT {} FROM {} WHERE abonnement_id = %s").format(
                    _ABONNEMENT_COLUMNS, ABONNEMENTEN
                ),
                (abonnement_id,),
            ).fetchone()
        return None if row is None else _abonnement(row)

    def geheim(self, abonnement_id: UUID) -> tuple[UUID, bytes] | None:
        """A subscription's sealed secret with the id of the data key that sealed it, or None."""
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                SQL("SELECT secret_key_id, secret FROM {} WHERE abonnement_id = %s").format(
                    ABONNEMENTEN
                ),
                (abonnement_id,),
            ).fetchone()
        return None if row is None else (row["secret_key_id"], bytes(row["secret"]))

    def abonnementen(
        self,
        *,
        werkgever: str | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[Abonnement]:
        """The subscriptions (not the removed ones unless asked for), newest first; with
        ``werkgever``, only that organisation's werkgever subscriptions."""
        clauses = [SQL("status <> 'verwijderd'") if status is None else SQL("status = %s")]
        params: list[Any] = [] if status is None else [status]
        if werkgever is not None:
            clauses.append(SQL("eigenaar = 'werkgever' AND organisatie_code = %s"))
            params.append(werkgever)
        query = SQL("SELECT {} FROM {} WHERE {} ORDER BY aangemaakt_op DESC LIMIT %s").format(
            _ABONNEMENT_COLUMNS, ABONNEMENTEN, SQL(" AND ").join(clauses)
        )
        with self.datastore.get_connection() as conn:
            rows = conn.execute(query, [*params, limit]).fetchall()
        return [_abonnement(row) for row in rows]

    def versie(self, abonnement_id: UUID) -> int | None:
        """A subscription's version (its events so far), or None."""
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                SQL("SELECT versie FROM {} WHERE abonnement_id = %s").format(ABONNEMENTEN),
                (abonnement_id,),
            ).fetchone()
        return None if row is None else int(row["versie"])

    # --- planning deliveries (the consumer) ----------------------------------------------------

    def plannen(
        self,
        consumer: str,
        event: public.PublicEvent,
        envelope: CloudEvent,
        now: datetime,
        kies: Kies,
    ) -> None:
        """The inbox row, the register and the deliveries ``kies`` picks, in one transaction."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {} (consumer, message_id) VALUES (%s, %s)"
                    " ON CONFLICT DO NOTHING RETURNING message_id"
                ).format(INBOX),
                (consumer, envelope.id),
            )
            if curs.fetchone() is None:
                raise AlreadyProcessed(envelope.id)
            # Whatever ``kies`` raises rolls the inbox row back: the message comes back later.
            self._plan(curs, event, envelope, now, kies, self._abonnementen(curs), {})

    def plannen_batch(
        self,
        consumer: str,
        messages: Sequence[tuple[public.PublicEvent, CloudEvent]],
        now: datetime,
        kies: Kies,
    ) -> None:
        """``plannen`` of several messages in one transaction, with the effect of each in turn:
        one statement for their inbox rows, one read of the subscriptions, the register read
        once per dossier; a message already in the inbox (or twice in ``messages``) is planned
        once. Whatever ``kies`` raises undoes it all."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {} (consumer, message_id) SELECT %s, unnest(%s::text[])"
                    " ON CONFLICT DO NOTHING RETURNING message_id"
                ).format(INBOX),
                (consumer, [envelope.id for _, envelope in messages]),
            )
            nieuw = {row["message_id"] for row in curs.fetchall()}
            if not nieuw:
                return
            abonnementen = self._abonnementen(curs)
            register: dict[UUID, tuple[str | None, bool]] = {}
            for event, envelope in messages:
                if envelope.id in nieuw:
                    nieuw.discard(envelope.id)
                    self._plan(curs, event, envelope, now, kies, abonnementen, register)

    def _abonnementen(self, curs: Any) -> list[tuple[UUID, Filter]]:
        """The live subscriptions, each as (id, filter)."""
        curs.execute(
            SQL(
                "SELECT abonnement_id, eigenaar, event_types, organisatie_code, aanvraag_id"
                " FROM {} WHERE status <> 'verwijderd'"
            ).format(ABONNEMENTEN)
        )
        return [
            (
                row["abonnement_id"],
                Filter(
                    eigenaar=row["eigenaar"],
                    event_types=frozenset(row["event_types"])
                    if row["event_types"] is not None
                    else None,
                    organisatie_code=row["organisatie_code"],
                    aanvraag_id=row["aanvraag_id"],
                ),
            )
            for row in curs.fetchall()
        ]

    def _plan(
        self,
        curs: Any,
        event: public.PublicEvent,
        envelope: CloudEvent,
        now: datetime,
        kies: Kies,
        abonnementen: Sequence[tuple[UUID, Filter]],
        register: dict[UUID, tuple[str | None, bool]],
    ) -> None:
        """One message's register entry and deliveries (its inbox row is written)."""
        organisatie, vrijgegeven = self._register(curs, event, register)
        gebeurtenis = Gebeurtenis(
            type(event).event_name, event.aanvraag_id, organisatie, vrijgegeven
        )
        ontvangers = kies(gebeurtenis, abonnementen)
        if not ontvangers:
            return
        body = envelope.to_json()
        for abonnement_id in ontvangers:
            curs.execute(
                SQL(
                    "INSERT INTO {} (bezorging_id, abonnement_id, event_id, event_type,"
                    " aanvraag_id, body, status, volgende_poging, aangemaakt_op)"
                    " VALUES (%s, %s, %s, %s, %s, %s, 'gepland', %s, %s)"
                    " ON CONFLICT (abonnement_id, event_id) DO NOTHING"
                ).format(BEZORGINGEN),
                (
                    bezorging_id(abonnement_id, envelope.id),
                    abonnement_id,
                    envelope.id,
                    envelope.type,
                    event.aanvraag_id,
                    body,
                    now,
                    now,
                ),
            )

    def _register(
        self,
        curs: Any,
        event: public.PublicEvent,
        register: dict[UUID, tuple[str | None, bool]],
    ) -> tuple[str | None, bool]:
        """Update the register with what the event tells; the dossier's organisation, released.
        ``register`` keeps what this transaction read or wrote already (read once per dossier)."""
        aanvraag_id = event.aanvraag_id
        if aanvraag_id is None:
            return None, False
        if isinstance(event, public.AanvraagIngediend | public.RapportVrijgegeven):
            curs.execute(
                SQL(
                    "INSERT INTO {} AS d (aanvraag_id, organisatie_code, vrijgegeven)"
                    " VALUES (%s, %s, %s) ON CONFLICT (aanvraag_id) DO UPDATE SET"
                    " organisatie_code = EXCLUDED.organisatie_code,"
                    " vrijgegeven = d.vrijgegeven OR EXCLUDED.vrijgegeven"
                    " RETURNING organisatie_code, vrijgegeven"
                ).format(DOSSIERS),
                (
                    aanvraag_id,
                    event.organisatie_code,
                    isinstance(event, public.RapportVrijgegeven),
                ),
            )
        elif aanvraag_id in register:
            return register[aanvraag_id]
        else:
            curs.execute(
                SQL("SELECT organisatie_code, vrijgegeven FROM {} WHERE aanvraag_id = %s").format(
                    DOSSIERS
                ),
                (aanvraag_id,),
            )
        row = curs.fetchone()
        register[aanvraag_id] = (
            (row["organisatie_code"], bool(row["vrijgegeven"])) if row else (None, False)
        )
        return register[aanvraag_id]

    # --- sending (the worker) ------------------------------------------------------------------

    def claim_due(self, now: datetime, limit: int, hold: timedelta) -> list[Claim]:
        """Claim due deliveries of live subscriptions; no other sender takes them meanwhile."""
        claim = uuid4()
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "UPDATE {b} SET claim = %s, geclaimd_tot = %s WHERE bezorging_id IN ("
                    " SELECT bezorging_id FROM {b} WHERE status = 'gepland'"
                    " AND volgende_poging <= %s AND (geclaimd_tot IS NULL OR geclaimd_tot < %s)"
                    " ORDER BY volgende_poging LIMIT %s FOR UPDATE SKIP LOCKED)"
                    " RETURNING bezorging_id"
                ).format(b=BEZORGINGEN),
                (claim, now + hold, now, now, limit),
            )
            ids = [row["bezorging_id"] for row in curs.fetchall()]
            if not ids:
                return []
            curs.execute(
                SQL(
                    "SELECT b.bezorging_id, b.abonnement_id, b.event_id, b.body, b.pogingen,"
                    " b.ronde_start, a.callback_url, a.secret_key_id, a.secret"
                    " FROM {} b JOIN {} a USING (abonnement_id)"
                    " WHERE b.bezorging_id = ANY(%s) ORDER BY b.volgende_poging"
                ).format(BEZORGINGEN, ABONNEMENTEN),
                (ids,),
            )
            rows = curs.fetchall()
        return [
            Claim(
                bezorging_id=row["bezorging_id"],
                abonnement_id=row["abonnement_id"],
                event_id=row["event_id"],
                body=bytes(row["body"]),
                callback_url=row["callback_url"],
                secret_key_id=row["secret_key_id"],
                secret=bytes(row["secret"]),
                pogingen=row["pogingen"],
                ronde_start=row["ronde_start"],
                claim=claim,
            )
            for row in rows
        ]

    def vervallen(self, claim: Claim) -> None:
        """The subscription is gone: the delivery will not be attempted."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "UPDATE {} SET status = 'vervallen', volgende_poging = NULL, claim = NULL,"
                    " geclaimd_tot = NULL WHERE bezorging_id = %s AND claim = %s"
                ).format(BEZORGINGEN),
                (claim.bezorging_id, claim.claim),
            )

    def poging(
        self,
        claim: Claim,
        uitkomst: Uitkomst,
        status: str,
        volgende: datetime | None,
        now: datetime,
    ) -> Gezondheid | None:
        """One attempt on record with the delivery's new ``status`` and the subscription's
        health, in one transaction; None when the claim was lost (or the subscription is gone)."""
        poging = claim.pogingen + 1
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "UPDATE {} SET pogingen = %s, status = %s, volgende_poging = %s, claim = NULL,"
                    " geclaimd_tot = NULL,"
                    " afgeleverd_op = CASE WHEN %s THEN %s ELSE afgeleverd_op END"
                    " WHERE bezorging_id = %s AND claim = %s AND status = 'gepland'"
                    " RETURNING bezorging_id"
                ).format(BEZORGINGEN),
                (poging, status, volgende, uitkomst.geslaagd, now, claim.bezorging_id, claim.claim),
            )
            if curs.fetchone() is None:
                # The claim expired and another sender took the delivery (its record counts),
                # or the subscription was removed meanwhile.
                log.warning("webhook claim lost", extra={"bezorging_id": str(claim.bezorging_id)})
                return None
            curs.execute(
                SQL(
                    "INSERT INTO {} (bezorging_id, poging, op, duur_ms, status_code, fout,"
                    " geslaagd) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                ).format(POGINGEN),
                (
                    claim.bezorging_id,
                    poging,
                    now,
                    uitkomst.duur_ms,
                    uitkomst.status_code,
                    uitkomst.fout,
                    uitkomst.geslaagd,
                ),
            )
            if uitkomst.geslaagd:
                curs.execute(
                    SQL(
                        "UPDATE {} SET opeenvolgende_fouten = 0, falend_sinds = NULL"
                        " WHERE abonnement_id = %s"
                        " RETURNING status, versie, opeenvolgende_fouten, falend_sinds,"
                        " organisatie_code"
                    ).format(ABONNEMENTEN),
                    (claim.abonnement_id,),
                )
            else:
                curs.execute(
                    SQL(
                        "UPDATE {} SET opeenvolgende_fouten = opeenvolgende_fouten + 1,"
                        " falend_sinds = coalesce(falend_sinds, %s), laatste_fout = %s"
                        " WHERE abonnement_id = %s"
                        " RETURNING status, versie, opeenvolgende_fouten, falend_sinds,"
                        " organisatie_code"
                    ).format(ABONNEMENTEN),
                    (now, uitkomst.reden, claim.abonnement_id),
                )
            health = curs.fetchone()
        if health is None:
            return None
        return Gezondheid(
            status=health["status"],
            versie=health["versie"],
            opeenvolgende_fouten=health["opeenvolgende_fouten"],
            falend_sinds=health["falend_sinds"],
            organisatie_code=health["organisatie_code"],
        )

    # --- the delivery log and re-sending -------------------------------------------------------

    def bezorgingen(
        self,
        abonnement_id: UUID | None,
        *,
        status: str | None = None,
        limit: int = 100,
        bezorging_id: UUID | None = None,
    ) -> list[WebhookBezorging]:
        """A subscription's deliveries (or one delivery) with their attempts, newest first."""
        condition, params = where(
            abonnement_id=abonnement_id, bezorging_id=bezorging_id, status=status
        )
        query = SQL(
            "SELECT bezorging_id, abonnement_id, event_id, event_type, aanvraag_id, status,"
            " pogingen, volgende_poging, aangemaakt_op, afgeleverd_op FROM {}"
            " WHERE {} ORDER BY aangemaakt_op DESC, bezorging_id LIMIT %s"
        ).format(BEZORGINGEN, condition)
        with self.datastore.get_connection() as conn:
            rows = conn.execute(query, [*params, limit]).fetchall()
            ids = [row["bezorging_id"] for row in rows]
            attempts = conn.execute(
                SQL(
                    "SELECT bezorging_id, poging, op, duur_ms, status_code, fout, geslaagd"
                    " FROM {} WHERE bezorging_id = ANY(%s) ORDER BY poging"
                ).format(POGINGEN),
                (ids,),
            ).fetchall()
        per: dict[UUID, list[Poging]] = {}
        for attempt in attempts:
            per.setdefault(attempt["bezorging_id"], []).append(Poging.model_validate(dict(attempt)))
        return [
            WebhookBezorging.model_validate({**row, "log": per.get(row["bezorging_id"], [])})
            for row in rows
        ]

    def opnieuw(self, bezorging_id: UUID, now: datetime) -> bool:
        """Plan a delivery again now on a fresh schedule; False when its subscription is gone.
        A claim a sender still holds is kept: that sender is sending it now, and a second one
        must not send it at the same time."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "UPDATE {b} SET status = 'gepland', volgende_poging = %(now)s,"
                    " ronde_start = pogingen,"
                    " claim = CASE WHEN geclaimd_tot >= %(now)s THEN claim END,"
                    " geclaimd_tot = CASE WHEN geclaimd_tot >= %(now)s THEN geclaimd_tot END"
                    " WHERE bezorging_id = %(id)s AND abonnement_id IN"
                    " (SELECT abonnement_id FROM {a} WHERE status <> 'verwijderd')"
                    " RETURNING bezorging_id"
                ).format(b=BEZORGINGEN, a=ABONNEMENTEN),
                {"now": now, "id": bezorging_id},
            )
            return curs.fetchone() is not None

    def abonnement_van(self, bezorging_id: UUID) -> UUID | None:
        """The subscription of a delivery, or None when the delivery is unknown."""
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                SQL("SELECT abonnement_id FROM {} WHERE bezorging_id = %s").format(BEZORGINGEN),
                (bezorging_id,),
            ).fetchone()
        return None if row is None else UUID(str(row["abonnement_id"]))


def sql_webhook_store(app: ServiceApplication) -> SqlWebhookStore:
    """The webhook store in PostgreSQL, its tables created when missing."""
    app.create_tables([statement.replace("{schema}", SCHEMA) for statement in DDL])
    return SqlWebhookStore(app.datastore)


# --- metrics -------------------------------------------------------------------------------------


#: The series the collector exposes (deploy/alerts.yml alerts on the first).
WEBHOOK_SERIES = ("weerbaar_webhook_subscriptions", "weerbaar_webhook_deliveries")


class WebhookCollector(Collector):
    """Subscriptions and deliveries by status, counted in PostgreSQL at scrape time.

    ``weerbaar_webhook_subscriptions{status="falend"} > 0`` is the alert: a receiver keeps failing.
    """

    def __init__(self) -> None:
        self.store: weakref.ReferenceType[SqlWebhookStore] | None = None

    def collect(self) -> Iterable[Metric]:
        store = self.store() if self.store is not None else None
        if store is None:
            return []
        try:
            with store.datastore.get_connection() as conn:
                abonnementen = conn.execute(
                    SQL("SELECT status, count(*) AS n FROM {} GROUP BY status").format(ABONNEMENTEN)
                ).fetchall()
                bezorgingen = conn.execute(
                    SQL("SELECT status, count(*) AS n FROM {} GROUP BY status").format(BEZORGINGEN)
                ).fetchall()
        except Exception as exc:  # the database is down: the scrape still answers
            log.warning("webhook metrics unavailable", extra={"error": type(exc).__name__})
            return []
        subscriptions = GaugeMetricFamily(
            WEBHOOK_SERIES[0],
            "Webhook subscriptions by status (actief, falend, verwijderd).",
            labels=["service", "status"],
        )
        for status in ("actief", "falend", "verwijderd"):
            count = next((r["n"] for r in abonnementen if r["status"] == status), 0)
            subscriptions.add_metric([SCHEMA, status], count)
        deliveries = GaugeMetricFamily(
            WEBHOOK_SERIES[1],
            "Webhook deliveries by status (gepland, afgeleverd, opgegeven, vervallen).",
            labels=["service", "status"],
        )
        for status in ("gepland", "afgeleverd", "opgegeven", "vervallen"):
            count = next((r["n"] for r in bezorgingen if r["status"] == status), 0)
            deliveries.add_metric([SCHEMA, status], count)
        return [subscriptions, deliveries]

    def describe(self) -> Iterable[Metric]:
        # Described as empty so registering does not run a query.
        return []


_collector: WebhookCollector | None = None
_collector_lock = threading.Lock()


def watch_webhooks(store: SqlWebhookStore) -> None:
    """Report ``store``'s subscriptions and deliveries in the service's metrics (the latest one
    of the process wins)."""
    global _collector  # noqa: PLW0603 - one collector per process and registry
    with _collector_lock:
        new = _collector is None
        if _collector is None:
            _collector = WebhookCollector()
        _collector.store = weakref.ref(store)
    if new:
        metrics_for(SCHEMA).registry.register(_collector)
