"""Notifications' use cases: plan a notification once, deliver it with retries, log deliveries."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from psycopg.sql import SQL, Identifier
from pydantic import BaseModel

from services.notifications.domain import (
    Notificatie,
    Ontvanger,
    mislukt,
    plan,
    project,
    verzonden,
)
from services.notifications.mailer import (
    Mailer,
    MailError,
    OutgoingMail,
    PermanentMailError,
    make_message_id,
)
from services.notifications.templates import render
from shared.errors import NietGevonden
from shared.eventstore import (
    AlreadyProcessed,
    Clock,
    ConcurrencyConflict,
    Context,
    DomainEvent,
    ServiceApplication,
    Statement,
)

log = logging.getLogger(__name__)

DELIVERIES = Identifier("notifications", "deliveries")


class RecipientUnknown(Exception):
    """The owner of the personal data has no address for this recipient (a permanent failure)."""


class Recipients(Protocol):
    """Where the sender asks for an address at the moment of sending (claim-check)."""

    def address(self, aanvraag_id: UUID, ontvanger: Ontvanger) -> str:
        """The recipient's e-mail address; raises RecipientUnknown or a transient error."""
        ...


class Bezorging(BaseModel):
    """One line of the delivery log (no addresses, no content)."""

    notificatie_id: UUID
    aanvraag_id: UUID
    soort: str
    ontvanger: str
    status: str
    pogingen: int
    volgende_poging: datetime | None
    bijgewerkt_op: datetime


def _delivery_row(
    notificatie: Notificatie, volgende_poging: datetime | None, now: datetime
) -> Statement:
    return Statement(
        SQL(
            "INSERT INTO {} (notificatie_id, aanvraag_id, soort, ontvanger, status, pogingen,"
            " volgende_poging, bijgewerkt_op) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (notificatie_id) DO UPDATE SET status = EXCLUDED.status,"
            " pogingen = EXCLUDED.pogingen, volgende_poging = EXCLUDED.volgende_poging,"
            " bijgewerkt_op = EXCLUDED.bijgewerkt_op, geclaimd_tot = NULL"
        ).format(DELIVERIES),
        (
            notificatie.id,
            notificatie.aanvraag_id,
            notificatie.soort,
            notificatie.ontvanger,
            notificatie.status,
            notificatie.pogingen,
            volgende_poging,
            now,
        ),
    )


class Notifications(ServiceApplication):
    """The notifications service's application."""

    service = "notifications"
    ddl = (
        "CREATE TABLE IF NOT EXISTS {schema}.deliveries ("
        " notificatie_id uuid PRIMARY KEY, aanvraag_id uuid NOT NULL, soort text NOT NULL,"
        " ontvanger text NOT NULL, status text NOT NULL, pogingen int NOT NULL,"
        " volgende_poging timestamptz, geclaimd_tot timestamptz,"
        " bijgewerkt_op timestamptz NOT NULL)",
        "CREATE INDEX IF NOT EXISTS deliveries_due ON {schema}.deliveries (volgende_poging)"
        " WHERE status = 'gepland'",
        "CREATE INDEX IF NOT EXISTS deliveries_dossier ON {schema}.deliveries (aanvraag_id)",
    )

    def notificatie(self, notificatie_id: UUID) -> Notificatie:
        """One notification."""
        try:
            notificatie: Notificatie = self.repository.get(notificatie_id, projector_func=project)
        except AggregateNotFoundError:
            raise NietGevonden("Onbekende notificatie.") from None
        return notificatie

    def plan(
        self,
        aanvraag_id: UUID,
        soort: str,
        ontvanger: Ontvanger,
        oorzaak_event_id: str,
        parameters: dict[str, Any],
        ctx: Context,
        inbox: tuple[str, str],
    ) -> None:
        """Plan a notification; the same cause, template and recipient plan it only once."""
        event = plan(aanvraag_id, soort, ontvanger, oorzaak_event_id, parameters, ctx)
        notificatie = project(None, [event])
        assert notificatie is not None
        try:
            self.record(
                event, inbox=inbox, statements=[_delivery_row(notificatie, ctx.now, ctx.now)]
            )
        except ConcurrencyConflict:
            raise AlreadyProcessed(inbox[1]) from None

    def claim_due(self, now: datetime, limit: int = 20, hold: float = 60.0) -> list[UUID]:
        """Claim notifications that are due, so that no other sender takes them meanwhile."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "UPDATE {t} SET geclaimd_tot = %s WHERE notificatie_id IN ("
                    " SELECT notificatie_id FROM {t} WHERE status = 'gepland'"
                    " AND volgende_poging <= %s AND (geclaimd_tot IS NULL OR geclaimd_tot < %s)"
                    " ORDER BY volgende_poging LIMIT %s FOR UPDATE SKIP LOCKED)"
                    " RETURNING notificatie_id"
                ).format(t=DELIVERIES),
                (now + timedelta(seconds=hold), now, now, limit),
            )
            return [row["notificatie_id"] for row in curs.fetchall()]

    def record_outcome(self, notificatie: Notificatie, event: DomainEvent, now: datetime) -> None:
        """Record one attempt's outcome with the delivery log row."""
        after = project(notificatie, [event])
        assert after is not None
        volgende = getattr(event, "volgende_poging", None)
        self.record(event, statements=[_delivery_row(after, volgende, now)])

    def bezorgingen(
        self, *, aanvraag_id: UUID | None = None, status: str | None = None, limit: int = 100
    ) -> Sequence[Bezorging]:
        """The delivery log, newest first."""
        clauses = [SQL("true")]
        params: list[Any] = []
        if aanvraag_id is not None:
            clauses.append(SQL("aanvraag_id = %s"))
            params.append(aanvraag_id)
        if status is not None:
            clauses.append(SQL("status = %s"))
            params.append(status)
        query = SQL(
            "SELECT notificatie_id, aanvraag_id, soort, ontvanger, status, pogingen,"
            " volgende_poging, bijgewerkt_op FROM {} WHERE {} ORDER BY bijgewerkt_op DESC LIMIT %s"
        ).format(DELIVERIES, SQL(" AND ").join(clauses))
        with self.datastore.get_connection() as conn:
            rows = conn.execute(query, [*params, limit]).fetchall()
        return [Bezorging.model_validate(dict(row)) for row in rows]


class Sender:
    """Delivers due notifications: claim-check the address, render, send, record the outcome.

    A crash after the SMTP server accepted a message and before the outcome was recorded sends it
    again after the claim expires; both copies carry the same Message-ID, so mail clients and the
    test's SMTP server can recognise the duplicate.
    """

    def __init__(
        self,
        app: Notifications,
        mailer: Mailer,
        recipients: Recipients,
        clock: Clock,
        *,
        message_id_domain: str,
        max_pogingen: int = 8,
    ) -> None:
        self.app = app
        self.mailer = mailer
        self.recipients = recipients
        self.clock = clock
        self.message_id_domain = message_id_domain
        self.max_pogingen = max_pogingen

    def run_once(self) -> int:
        """Deliver what is due now; returns the number of attempts made."""
        due = self.app.claim_due(self.clock.now())
        for notificatie_id in due:
            self.deliver(self.app.notificatie(notificatie_id))
        return len(due)

    def deliver(self, notificatie: Notificatie) -> None:
        """One delivery attempt."""
        ctx = Context(now=self.clock.now(), causation_id=notificatie.oorzaak_event_id)
        try:
            address = self.recipients.address(notificatie.aanvraag_id, notificatie.ontvanger)
            subject, text = render(
                notificatie.soort, aanvraag_id=str(notificatie.aanvraag_id), **_params(notificatie)
            )
            self.mailer.send(
                OutgoingMail(
                    to=address,
                    subject=subject,
                    text=text,
                    message_id=make_message_id(
                        notificatie.oorzaak_event_id,
                        notificatie.soort,
                        self.message_id_domain,
                        notificatie.ontvanger,
                    ),
                )
            )
        except (PermanentMailError, RecipientUnknown) as exc:
            reason = getattr(exc, "reason", "ontvanger_onbekend")
            event: DomainEvent = mislukt(
                notificatie, _code(reason), permanent=True, max_pogingen=self.max_pogingen, ctx=ctx
            )
        except (MailError, OSError) as exc:
            reason = getattr(exc, "reason", type(exc).__name__)
            event = mislukt(
                notificatie, _code(reason), permanent=False, max_pogingen=self.max_pogingen, ctx=ctx
            )
        else:
            event = verzonden(notificatie, ctx)
        log.info(
            "notification attempt",
            extra={
                "notificatie_id": str(notificatie.id),
                "soort": notificatie.soort,
                "outcome": type(event).__name__,
            },
        )
        self.app.record_outcome(notificatie, event, ctx.now)


def _params(notificatie: Notificatie) -> dict[str, Any]:
    params = dict(notificatie.parameters)
    if isinstance(params.get("contact_deadline"), str):
        params["contact_deadline"] = datetime.fromisoformat(params["contact_deadline"])
    return params


def _code(reason: str) -> str:
    code = "".join(c if c.isalnum() else "_" for c in reason.lower()).strip("_")
    return (code or "onbekend")[:64]
