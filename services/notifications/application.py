"""Notifications' use cases: plan a notification once, deliver it with retries, log deliveries,
send one that failed for good again; webhook subscriptions and their deliveries (``Webhooks``).

Planning happens when another service's public event arrives (see ``policies``); it stores ids,
kinds and times only. Everything a mail tells a person (the address, the appointment's current
time and video link) is fetched from its owner by the Sender at the moment of sending.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Any, Protocol
from uuid import UUID, uuid4

from eventsourcing.utils import get_topic
from opentelemetry.trace import SpanKind

from services.notifications.domain import notificatie as notificatie_events
from services.notifications.domain import webhooks as webhook_events
from services.notifications.domain.afspraak import Afspraak
from services.notifications.domain.ics import Method, calendar_file
from services.notifications.domain.mail import (
    Attachment,
    MailError,
    OutgoingMail,
    PermanentMailError,
    make_message_id,
)
from services.notifications.domain.notificatie import (
    Notificatie,
    NotificatieBezorging,
    NotificatieMislukt,
    NotificatieVerzonden,
    Ontvanger,
    Partij,
    afspraak_ontvangers,
    mislukt,
    opnieuw,
    plan,
    project,
    vervallen,
    verzonden,
)
from services.notifications.domain.templates import (
    AFSPRAAK_BEVESTIGING,
    AFSPRAAK_GEANNULEERD,
    AFSPRAAK_TEMPLATES,
    AFSPRAAK_VERZET,
    BEVESTIGING_AANVRAAG,
    TEMPLATES,
    calendar_event_for,
    render,
)
from services.notifications.domain.webhooks import (
    Abonnement,
    AbonnementAangemaakt,
    AbonnementFalend,
    AbonnementHersteld,
    AbonnementHistorie,
    AbonnementVerwijderd,
    Claim,
    Eigenaar,
    Filter,
    Gebeurtenis,
    Gezondheid,
    Kies,
    OrganisatieOnbekend,
    RetrySchedule,
    Uitkomst,
    WebhookBezorging,
    bereikt,
    new_secret,
    toegestaan,
    url_fout,
)
from services.notifications.gateway import to_public
from shared.contracts.envelope import CloudEvent
from shared.contracts.events import PublicEvent
from shared.platform.auth import Refusal
from shared.platform.consumer import Delivery, TransientError
from shared.platform.email_address import AdresOngeldig, adres_sleutel, email_address, veilig_adres
from shared.platform.errors import Conflict, FieldError, NietGevonden, Ongeldig
from shared.platform.eventstore import (
    AlreadyProcessed,
    Answered,
    ConcurrencyConflict,
    Once,
    ServiceApplication,
)
from shared.platform.idempotency import fingerprint, idempotency_ddl, idempotency_keys
from shared.platform.keys import open_sealed, seal
from shared.platform.model import Clock, Context, DomainEvent, first_event
from shared.platform.ports import SideWrite
from shared.platform.relay import PublicationCheck
from shared.platform.telemetry import (
    context_from_traceparent,
    current_traceparent,
    metrics_for,
    tracer,
)

log = logging.getLogger(__name__)

# The library resolves a stored topic by importing the module it names; the events' topics name
# the modules they were first stored from, which are gone. Registered here, where the store is,
# so a process that only reads (the relay, a replay) finds them too.
for _event in (*notificatie_events.EVENTS, *webhook_events.EVENTS):
    get_topic(_event)

#: The data key (in the service's key table, wrapped by the KEK like any other) whose bytes key
#: the hash of a confirmation's address: the same for every replica, never stored in clear.
VENSTER_SLEUTEL_ID = UUID("90ff536a-178f-45af-ab94-4c9b4d202728")

#: Parameters stored as ISO text that templates take as datetimes.
_DATETIME_PARAMETERS = frozenset(
    {"contact_deadline", "vorige_gepland_op", "deadline", "vastgesteld_op"}
)
#: Parameters that say which appointment to fetch; the template gets the appointment instead.
_AFSPRAAK_PARAMETERS = frozenset({"afspraak_id", "soort"})


class RecipientUnknown(Exception):
    """The owner of the personal data has no address for this recipient (a permanent failure)."""


class AfspraakOnbekend(Exception):
    """Scheduling does not know the appointment (or answers nonsense): a permanent failure."""

    def __init__(self, reason: str = "afspraak_onbekend") -> None:
        super().__init__(reason)
        self.reason = reason


class Recipients(Protocol):
    """Where the sender asks for an address at the moment of sending (claim-check)."""

    def address(self, aanvraag_id: UUID, ontvanger: Ontvanger) -> str:
        """The recipient's e-mail address; raises RecipientUnknown or a transient error."""
        ...


class MailServer(Protocol):
    """Where the sender hands a composed mail (the SMTP relay: ``adapters.smtp.Mailer``)."""

    def send(self, message: OutgoingMail) -> None:
        """Send it; raises TransientMailError or PermanentMailError (``domain.mail``)."""
        ...


class Appointments(Protocol):
    """Where the sender asks for an appointment's current state at the moment of sending."""

    def afspraak(self, afspraak_id: UUID) -> Afspraak:
        """The appointment; raises AfspraakOnbekend or TransientError."""
        ...


@dataclass(frozen=True)
class Geplande:
    """One notification an event causes: which template, for whom, with which parameters."""

    soort: str
    ontvanger: Ontvanger
    parameters: dict[str, Any]


class Tables(Protocol):
    """The service's own tables as the use cases read and write them: the delivery log, what the
    service heard of appointments, the confirmations' window (``projections.Tables`` in
    PostgreSQL, ``projections.MemoryTables`` on the in-memory store). Writes that belong with the
    events come back as side writes of that store."""

    def rows(self, before: Notificatie | None, after: Notificatie) -> Sequence[SideWrite]:
        """The delivery log's row of a notification that changed."""
        ...

    def released(self, notificatie_id: UUID) -> Sequence[SideWrite]:
        """The sender's claim on the notification given back."""
        ...

    def claim_due(self, now: datetime, limit: int, hold: float = 60.0) -> list[UUID]:
        """Claim due notifications, in the order they fell due."""
        ...

    def dossier_van(self, notificatie_id: UUID) -> UUID | None:
        """The dossier of a notification."""
        ...

    def bezorgingen(
        self,
        *,
        aanvraag_id: UUID | None = None,
        status: str | None = None,
        notificatie_id: UUID | None = None,
        limit: int = 100,
    ) -> list[NotificatieBezorging]:
        """The delivery log, newest first."""
        ...

    def bezorging(self, notificatie_id: UUID) -> NotificatieBezorging:
        """One notification's line of the delivery log."""
        ...

    def verzoek_onthouden(
        self, verzoek_id: str, aanvraag_id: UUID, partij: Partij, aangevraagd_op: datetime
    ) -> None:
        """Remember who asked for a toelichting."""
        ...

    def open_verzoeken(self, aanvraag_id: UUID) -> dict[str, Partij]:
        """The dossier's unanswered toelichting requests: id → party."""
        ...

    def afspraak_gepland(
        self,
        afspraak_id: UUID,
        aanvraag_id: UUID,
        ontvangers: Sequence[Partij],
        beantwoord: Sequence[str],
    ) -> Sequence[SideWrite]:
        """Who hears of a new appointment, and the requests it answers."""
        ...

    def afspraak_gewijzigd(self, afspraak_id: UUID, aanvraag_id: UUID) -> Sequence[SideWrite]:
        """One more change of the appointment."""
        ...

    def ontvangers_van(self, afspraak_id: UUID) -> tuple[Partij, ...]:
        """Who heard of the appointment."""
        ...

    def volgnummer(self, afspraak_id: UUID) -> int:
        """The appointment's calendar SEQUENCE."""
        ...

    def aangekondigd(self, afspraak_id: UUID, ontvanger: Ontvanger) -> bool:
        """Whether a mail announcing the appointment reached this recipient."""
        ...

    def bevestiging_claimen(
        self, sleutel: str, notificatie_id: UUID, now: datetime, venster: timedelta
    ) -> bool:
        """Claim the address's window for this confirmation."""
        ...

    def bevestiging_vrijgeven(self, sleutel: str, notificatie_id: UUID) -> Sequence[SideWrite]:
        """Give the window back."""
        ...


class WebhookStore(Protocol):
    """What the webhook use cases keep of subscriptions and deliveries: the subscriptions with
    their sealed secrets, the register of dossiers the events told of, the deliveries and their
    attempts (``adapters.webhook_store.SqlWebhookStore`` in PostgreSQL,
    ``adapters.webhook_memory.MemoryWebhookStore`` on the in-memory store). Writes that belong
    with a subscription's events come back as side writes of that store."""

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
    ) -> Sequence[SideWrite]:
        """A new subscription's row (version 1, active)."""
        ...

    def verwijderd(self, abonnement_id: UUID, versie: int, now: datetime) -> Sequence[SideWrite]:
        """A subscription removed at ``versie`` + 1, its planned deliveries lapsed."""
        ...

    def gemarkeerd(self, abonnement_id: UUID, versie: int, status: str) -> Sequence[SideWrite]:
        """A subscription marked ``falend`` or ``actief`` again at ``versie`` + 1."""
        ...

    def abonnement(self, abonnement_id: UUID) -> Abonnement | None:
        """One subscription, or None."""
        ...

    def geheim(self, abonnement_id: UUID) -> tuple[UUID, bytes] | None:
        """A subscription's sealed secret with the id of the data key that sealed it, or None."""
        ...

    def abonnementen(
        self, *, werkgever: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[Abonnement]:
        """The subscriptions (not the removed ones unless asked for), newest first."""
        ...

    def versie(self, abonnement_id: UUID) -> int | None:
        """A subscription's version (its events so far), or None."""
        ...

    def plannen(
        self,
        consumer: str,
        event: PublicEvent,
        envelope: CloudEvent,
        now: datetime,
        kies: Kies,
    ) -> None:
        """In one unit with the inbox entry ``(consumer, envelope id)`` (``AlreadyProcessed`` the
        second time): the register's part of the event, and a delivery for each live
        subscription ``kies`` picks from (id, filter); whatever ``kies`` raises undoes it all."""
        ...

    def plannen_batch(
        self,
        consumer: str,
        messages: Sequence[tuple[PublicEvent, CloudEvent]],
        now: datetime,
        kies: Kies,
    ) -> None:
        """``plannen`` of each message in turn, in one unit; one already in the inbox is left
        out (no ``AlreadyProcessed``); whatever ``kies`` raises undoes it all."""
        ...

    def claim_due(self, now: datetime, limit: int, hold: timedelta) -> list[Claim]:
        """Claim due deliveries; no other sender takes them meanwhile."""
        ...

    def vervallen(self, claim: Claim) -> None:
        """A claimed delivery lapses (its subscription is gone)."""
        ...

    def poging(
        self,
        claim: Claim,
        uitkomst: Uitkomst,
        status: str,
        volgende: datetime | None,
        now: datetime,
    ) -> Gezondheid | None:
        """One attempt on record with the delivery's new ``status`` and the subscription's
        health; None when the claim was lost (or the subscription is gone)."""
        ...

    def bezorgingen(
        self,
        abonnement_id: UUID | None,
        *,
        status: str | None = None,
        limit: int = 100,
        bezorging_id: UUID | None = None,
    ) -> list[WebhookBezorging]:
        """A subscription's deliveries (or one delivery) with their attempts, newest first."""
        ...

    def opnieuw(self, bezorging_id: UUID, now: datetime) -> bool:
        """Plan a delivery again now on a fresh schedule; False when its subscription is gone."""
        ...

    def abonnement_van(self, bezorging_id: UUID) -> UUID | None:
        """The subscription of a delivery, or None when the delivery is unknown."""
        ...


class Notifications(ServiceApplication):
    """The notifications service's application."""

    service = "notifications"

    def __init__(
        self,
        env: dict[str, str],
        *,
        tables: Callable[[ServiceApplication], Tables],
        webhooks: Callable[[ServiceApplication], WebhookStore],
    ) -> None:
        """``tables`` gives the service's own tables on the store ``env`` names, ``webhooks`` the
        webhook store on it (the composition root's choice of their SQL or memory forms)."""
        super().__init__(env, publication_check=PublicationCheck(self.service, to_public))
        self.create_tables((idempotency_ddl(),))
        self.tables = tables(self)
        self.webhook_store = webhooks(self)
        self.idempotency = idempotency_keys(self)

    def notificatie(self, notificatie_id: UUID) -> Notificatie:
        """One notification."""
        return self.load(notificatie_id, project, "Onbekende notificatie.")

    def bezorgingen(
        self,
        *,
        aanvraag_id: UUID | None = None,
        status: str | None = None,
        limit: int = 100,
    ) -> list[NotificatieBezorging]:
        """The delivery log (``GET /notificaties``), newest first."""
        return self.tables.bezorgingen(aanvraag_id=aanvraag_id, status=status, limit=limit)

    def bezorging(self, notificatie_id: UUID) -> NotificatieBezorging:
        """One notification's line of the delivery log (it has one once it is planned)."""
        return self.tables.bezorging(notificatie_id)

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
        self.plan_all(
            aanvraag_id, oorzaak_event_id, [Geplande(soort, ontvanger, parameters)], ctx, inbox
        )

    def plan_all(
        self,
        aanvraag_id: UUID,
        oorzaak_event_id: str,
        geplande: Sequence[Geplande],
        ctx: Context,
        inbox: tuple[str, str],
        statements: Sequence[SideWrite] = (),
    ) -> None:
        """Plan the notifications one event causes, together with its side rows, in one go."""
        events = [
            plan(aanvraag_id, g.soort, g.ontvanger, oorzaak_event_id, g.parameters, ctx)
            for g in geplande
        ]
        rows: list[SideWrite] = []
        for event in events:
            notificatie = project(None, [event])
            assert notificatie is not None
            rows.extend(self.tables.rows(None, notificatie))
        try:
            self.record(*events, inbox=inbox, statements=[*statements, *rows])
        except ConcurrencyConflict:
            raise AlreadyProcessed(inbox[1]) from None

    # --- appointments ----------------------------------------------------------------------------

    def toelichting_gevraagd(
        self, verzoek_id: str, aanvraag_id: UUID, partij: Partij, aangevraagd_op: datetime
    ) -> None:
        """Remember who asked for a toelichting (idempotent: the request's event id is the key)."""
        self.tables.verzoek_onthouden(verzoek_id, aanvraag_id, partij, aangevraagd_op)

    def afspraak_gepland(
        self,
        aanvraag_id: UUID,
        afspraak_id: UUID,
        soort: str,
        oorzaak_event_id: str,
        ctx: Context,
        inbox: tuple[str, str],
    ) -> tuple[Partij, ...]:
        """Plan the confirmation of a new appointment for the parties it concerns."""
        verzoeken = self.tables.open_verzoeken(aanvraag_id) if soort == "toelichting" else {}
        ontvangers = afspraak_ontvangers(soort, verzoeken.values())
        beantwoord = [v for v, partij in verzoeken.items() if partij in ontvangers]
        statements = self.tables.afspraak_gepland(afspraak_id, aanvraag_id, ontvangers, beantwoord)
        parameters = {"afspraak_id": str(afspraak_id), "soort": soort}
        self.plan_all(
            aanvraag_id,
            oorzaak_event_id,
            [Geplande(AFSPRAAK_BEVESTIGING, o, parameters) for o in ontvangers],
            ctx,
            inbox,
            statements,
        )
        return ontvangers

    def afspraak_verzet(
        self,
        aanvraag_id: UUID,
        afspraak_id: UUID,
        soort: str,
        vorige_gepland_op: datetime,
        oorzaak_event_id: str,
        ctx: Context,
        inbox: tuple[str, str],
    ) -> tuple[Partij, ...]:
        """Plan the mail about a moved appointment for whoever heard of it."""
        return self._afspraak_gewijzigd(
            AFSPRAAK_VERZET,
            aanvraag_id,
            afspraak_id,
            soort,
            {"vorige_gepland_op": vorige_gepland_op.isoformat()},
            oorzaak_event_id,
            ctx,
            inbox,
        )

    def afspraak_geannuleerd(
        self,
        aanvraag_id: UUID,
        afspraak_id: UUID,
        soort: str,
        oorzaak_event_id: str,
        ctx: Context,
        inbox: tuple[str, str],
    ) -> tuple[Partij, ...]:
        """Plan the mail about a cancelled appointment for whoever heard of it."""
        return self._afspraak_gewijzigd(
            AFSPRAAK_GEANNULEERD, aanvraag_id, afspraak_id, soort, {}, oorzaak_event_id, ctx, inbox
        )

    def _afspraak_gewijzigd(
        self,
        template: str,
        aanvraag_id: UUID,
        afspraak_id: UUID,
        soort: str,
        extra: dict[str, Any],
        oorzaak_event_id: str,
        ctx: Context,
        inbox: tuple[str, str],
    ) -> tuple[Partij, ...]:
        ontvangers = self.tables.ontvangers_van(afspraak_id) or afspraak_ontvangers(soort)
        # Counted in the transaction that holds the inbox row: once per change, on any replica.
        volgende = self.tables.afspraak_gewijzigd(afspraak_id, aanvraag_id)
        parameters = {"afspraak_id": str(afspraak_id), "soort": soort, **extra}
        self.plan_all(
            aanvraag_id,
            oorzaak_event_id,
            [Geplande(template, o, parameters) for o in ontvangers],
            ctx,
            inbox,
            volgende,
        )
        return ontvangers

    # --- delivery --------------------------------------------------------------------------------

    def record_outcome(
        self,
        notificatie: Notificatie,
        event: DomainEvent,
        now: datetime,
        statements: Sequence[SideWrite] = (),
    ) -> None:
        """Record one attempt's outcome with the delivery log row (and ``statements``)."""
        after = project(notificatie, [event])
        assert after is not None
        self.record(
            event,
            statements=[
                *self.tables.rows(notificatie, after),
                *self.tables.released(notificatie.id),
                *statements,
            ],
        )

    def with_dossier(self, refusal: Refusal) -> Refusal:
        """The refusal with the dossier of the notification its path names, so the dossier's
        audit trail shows it (an unknown notification: none)."""
        if refusal.aanvraag_id is None and "notificatie_id" in refusal.ids:
            aanvraag_id = self.tables.dossier_van(refusal.ids["notificatie_id"])
            if aanvraag_id is not None:
                refusal = replace(refusal, aanvraag_id=aanvraag_id)
        return refusal

    def opnieuw(self, notificatie_id: UUID, ctx: Context) -> Notificatie:
        """Send a notification that failed for good again, now, on a fresh round of the schedule
        (404 when unknown, 409 when it has not failed). Recorded as NotificatieOpnieuwGepland."""

        def decide(notificatie: Notificatie | None) -> list[DomainEvent]:
            if notificatie is None:
                raise NietGevonden("Onbekende notificatie.")
            return [opnieuw(notificatie, ctx)]

        after = self.change(notificatie_id, decide, project=project, statements=self._rows)
        assert after is not None
        return after

    def _rows(self, before: Notificatie | None, after: Notificatie | None) -> Sequence[SideWrite]:
        return () if after is None else self.tables.rows(before, after)


@dataclass(frozen=True)
class Vervalt:
    """The notification no longer applies; nothing is sent."""

    reden_code: str


class Sender:
    """Delivers due notifications: claim-check what the mail needs, render, send, record.

    A crash after the SMTP server accepted a message and before the outcome was recorded sends it
    again after the claim expires; both copies carry the same Message-ID, so mail clients and the
    test's SMTP server can recognise the duplicate.
    """

    def __init__(
        self,
        app: Notifications,
        mailer: MailServer,
        recipients: Recipients,
        appointments: Appointments,
        clock: Clock,
        *,
        message_id_domain: str,
        schema: RetrySchedule,
        organizer: str | None = None,
        concurrency: int = 4,
        batch: int = 20,
        drain_s: float = 10.0,
        bevestiging_venster_s: float = 0.0,
    ) -> None:
        self.app = app
        self.bevestiging_venster = timedelta(seconds=bevestiging_venster_s)
        self.concurrency = concurrency
        self.batch = batch
        self.drain_s = drain_s
        self.mailer = mailer
        self.recipients = recipients
        self.appointments = appointments
        self.clock = clock
        self.message_id_domain = message_id_domain
        self.schema = schema
        self.organizer = parseaddr(organizer)[1] if organizer else f"noreply@{message_id_domain}"
        expose_mail_series(app.service)

    def run_once(self) -> int:
        """Deliver what is due now, a claimed batch at a time until less than a full batch was
        due (or ``drain_s`` has passed); returns the number of attempts made.

        A batch's dossiers are delivered side by side, ``concurrency`` at a time, each dossier's
        mails one after the other in the order they were due: an attempt mostly waits (for the
        claim-check calls, the SMTP server, the database), so one at a time fell behind a
        sustained load (the fault suite's long run: 3.5 mails/s sent while 12/s were planned).
        """
        attempts = 0
        started = time.monotonic()
        while True:
            due = self.app.tables.claim_due(self.clock.now(), self.batch)
            attempts += len(due)
            self._deliver_batch([self.app.notificatie(n) for n in due])
            if len(due) < self.batch or time.monotonic() - started >= self.drain_s:
                return attempts

    def _deliver_batch(self, batch: list[Notificatie]) -> None:
        per_dossier: dict[UUID, list[Notificatie]] = {}
        for notificatie in batch:
            per_dossier.setdefault(notificatie.aanvraag_id, []).append(notificatie)
        queues = list(per_dossier.values())
        if self.concurrency <= 1 or len(queues) <= 1:
            for queue in queues:
                self._deliver_in_order(queue)
            return
        with ThreadPoolExecutor(
            min(self.concurrency, len(queues)), thread_name_prefix="mail-sender"
        ) as pool:
            futures = [pool.submit(self._deliver_in_order, queue) for queue in queues]
        # Every queue ran to its end; then the first failure (recording an outcome) is raised.
        for future in futures:
            future.result()

    def _deliver_in_order(self, queue: list[Notificatie]) -> None:
        for notificatie in queue:
            self.deliver(notificatie)

    def deliver(self, notificatie: Notificatie) -> None:
        """One delivery attempt, in a span that continues the trace of what planned it."""
        with tracer(self.app.service).start_as_current_span(
            "deliver notification",
            context=context_from_traceparent(notificatie.traceparent),
            kind=SpanKind.PRODUCER,
            attributes={"weerbaar.soort": notificatie.soort},
            record_exception=False,  # exception texts may quote an address
        ):
            self._attempt(notificatie)

    def _attempt(self, notificatie: Notificatie) -> None:
        ctx = Context(now=self.clock.now(), causation_id=notificatie.oorzaak_event_id)
        event: DomainEvent
        venster: list[SideWrite] = []  # gives a confirmation's window back if it fails for good
        try:
            mail = self.compose(notificatie, ctx.now)
            if isinstance(mail, OutgoingMail) and self._per_venster(notificatie):
                sleutel = adres_sleutel(mail.to, self.app.keys.for_writing(VENSTER_SLEUTEL_ID).key)
                if self.app.tables.bevestiging_claimen(
                    sleutel, notificatie.id, ctx.now, self.bevestiging_venster
                ):
                    venster.extend(self.app.tables.bevestiging_vrijgeven(sleutel, notificatie.id))
                else:
                    mail = Vervalt("te_vaak_verzonden")
            if isinstance(mail, Vervalt):
                event = vervallen(notificatie, mail.reden_code, ctx)
            else:
                self.mailer.send(mail)
                event = verzonden(notificatie, ctx)
        except (PermanentMailError, RecipientUnknown, AfspraakOnbekend) as exc:
            reason = getattr(exc, "reason", "ontvanger_onbekend")
            event = mislukt(notificatie, _code(reason), permanent=True, schema=self.schema, ctx=ctx)
        except (MailError, OSError, TransientError) as exc:
            # A TransientError's text is a code the claim-check clients chose, never a value;
            # other errors' texts may quote a server's reply (and the address in it).
            if isinstance(exc, TransientError):
                reason = str(exc) or "transient"
            else:
                reason = getattr(exc, "reason", type(exc).__name__)
            event = mislukt(
                notificatie, _code(reason), permanent=False, schema=self.schema, ctx=ctx
            )
        except Exception:
            # A bug, not bad luck: loud in the log, and a counted attempt so that it does not
            # come back every minute for ever.
            log.exception(
                "notification attempt crashed",
                extra={"notificatie_id": str(notificatie.id), "soort": notificatie.soort},
            )
            event = mislukt(
                notificatie,
                "interne_fout",
                permanent=False,
                schema=self.schema,
                ctx=ctx,
            )
        log.info(
            "notification attempt",
            extra={
                "notificatie_id": str(notificatie.id),
                "soort": notificatie.soort,
                "outcome": type(event).__name__,
            },
        )
        metrics = metrics_for(self.app.service)
        if isinstance(event, NotificatieVerzonden):
            metrics.mails_sent.labels(self.app.service, notificatie.soort).inc()
        elif isinstance(event, NotificatieMislukt):
            final = "true" if event.definitief else "false"
            metrics.mails_failed.labels(self.app.service, notificatie.soort, final).inc()
        failed_for_good = isinstance(event, NotificatieMislukt) and event.definitief
        self.app.record_outcome(notificatie, event, ctx.now, venster if failed_for_good else ())

    def _per_venster(self, notificatie: Notificatie) -> bool:
        """Whether the mail counts against its address's window: the registration's confirmation,
        which anyone can cause with anyone's address (other mails follow a staff member's step)."""
        return notificatie.soort == BEVESTIGING_AANVRAAG and self.bevestiging_venster > timedelta(0)

    def compose(self, notificatie: Notificatie, now: datetime) -> OutgoingMail | Vervalt:
        """The mail as it must go out now, or why it no longer applies."""
        params = _params(notificatie)
        attachments: tuple[Attachment, ...] = ()
        afspraak: Afspraak | None = None
        if notificatie.soort in AFSPRAAK_TEMPLATES:
            afspraak = self._afspraak(notificatie, params)
            reden = self._vervalt(notificatie, afspraak, now)
            if reden is not None:
                return Vervalt(reden)
            params = {k: v for k, v in params.items() if k not in _AFSPRAAK_PARAMETERS}
            params |= {"ontvanger": notificatie.ontvanger, "afspraak": afspraak}
        # Asked only now that the mail will go out: no address is handed out for nothing.
        address = _checked(
            notificatie.ontvanger,
            self.recipients.address(notificatie.aanvraag_id, notificatie.ontvanger),
        )
        subject, text = render(
            notificatie.soort, aanvraag_id=str(notificatie.aanvraag_id), **params
        )
        if afspraak is not None:
            attachments = (self._invitation(notificatie, afspraak, address, now),)
        return OutgoingMail(
            to=address,
            subject=subject,
            text=text,
            attachments=attachments,
            message_id=make_message_id(
                notificatie.oorzaak_event_id,
                notificatie.soort,
                self.message_id_domain,
                notificatie.ontvanger,
            ),
            traceparent=current_traceparent(),
        )

    def _afspraak(self, notificatie: Notificatie, params: dict[str, Any]) -> Afspraak:
        afspraak = self.appointments.afspraak(UUID(str(params["afspraak_id"])))
        if afspraak.aanvraag_id != notificatie.aanvraag_id:
            # Never mail one dossier's appointment to another dossier's parties.
            raise AfspraakOnbekend("afspraak_ander_dossier")
        return afspraak

    def _vervalt(self, notificatie: Notificatie, afspraak: Afspraak, now: datetime) -> str | None:
        if not afspraak.met(notificatie.ontvanger):
            # Planned for both parties because nobody was known to have asked (a toelichting);
            # scheduling knows better at the moment of sending.
            return "niet_betrokken"
        if notificatie.soort == AFSPRAAK_GEANNULEERD:
            # Who never heard of the appointment need not hear that it is off.
            if not self.app.tables.aangekondigd(afspraak.afspraak_id, notificatie.ontvanger):
                return "niet_aangekondigd"
            return None
        if afspraak.geannuleerd:
            return "afspraak_geannuleerd"
        if afspraak.gepland_op <= now:
            return "afspraak_begonnen"
        return None

    def _invitation(
        self, notificatie: Notificatie, afspraak: Afspraak, address: str, now: datetime
    ) -> Attachment:
        method: Method = "CANCEL" if notificatie.soort == AFSPRAAK_GEANNULEERD else "REQUEST"
        event = calendar_event_for(
            afspraak,
            notificatie.ontvanger,
            uid_domain=self.message_id_domain,
            sequence=self.app.tables.volgnummer(afspraak.afspraak_id),
            organizer=self.organizer,
            attendee=address,
        )
        return Attachment(
            filename="annulering.ics" if method == "CANCEL" else "uitnodiging.ics",
            content_type=f"text/calendar; method={method}; charset=UTF-8",
            content=calendar_file(event, method, now).encode("utf-8"),
        )


# --- webhooks ------------------------------------------------------------------------------------

#: The inbox's consumer of the webhooks' reaction to every public event.
WEBHOOK_CONSUMER = "notifications-webhooks"


def _secret_aad(abonnement_id: UUID) -> bytes:
    return f"webhook-secret|{abonnement_id}".encode()


def _kies(gebeurtenis: Gebeurtenis, abonnementen: Sequence[tuple[UUID, Filter]]) -> list[UUID]:
    """The subscriptions an event reaches; a transient error while a werkgever's event cannot
    be placed yet (its dossier's organisation unknown: the message comes back later, nothing of
    it kept)."""
    try:
        return [a for a, filter in abonnementen if bereikt(filter, gebeurtenis)]
    except OrganisatieOnbekend:
        raise TransientError("webhook_organisatie_onbekend") from None


@dataclass(frozen=True)
class Gemaakt:
    """The answer to making a subscription: it, with its secret (shown to its maker only);
    ``replayed`` when an Idempotency-Key repeated."""

    abonnement: Abonnement
    secret: bytes
    replayed: bool


class Webhooks:
    """Webhook subscriptions and deliveries: make and remove a subscription, plan the deliveries
    of every public event, record each attempt and the subscription's health (failing,
    recovered), send a delivery again. Events and rows go through the application's store."""

    def __init__(
        self,
        app: Notifications,
        clock: Clock,
        schedule: RetrySchedule,
        failing_after: int,
        *,
        allow_private: bool = False,
        max_per_organisatie: int = 25,
    ) -> None:
        self.app = app
        self.store = app.webhook_store
        self.clock = clock
        self.schedule = schedule
        self.failing_after = failing_after
        #: Live subscriptions one organisation may have: each event is matched against every
        #: live subscription, so an unbounded number would slow every event for everyone.
        self.max_per_organisatie = max_per_organisatie
        #: Callback URLs on private addresses accepted (development only).
        self.allow_private = allow_private

    # --- subscriptions -------------------------------------------------------------------------

    def maak(
        self,
        callback_url: str,
        eigenaar: Eigenaar,
        event_types: Sequence[str] | None,
        organisatie_code: str | None,
        aanvraag_id: UUID | None,
        ctx: Context,
        sleutel: tuple[str, str] | None = None,
    ) -> Gemaakt:
        """Make a subscription; returns it with its secret (shown to its maker, stored sealed).

        The subscription's rules are checked here, whoever calls: a callback URL that may be
        called (``url_fout``), event types its owner may receive (at least one when given), and
        a werkgever's subscription bound to an organisation (without one its filter would reach
        every organisation's dossiers).

        ``sleutel`` is (scope, Idempotency-Key): a repeated request gets the first answer, the
        same subscription with the same secret, and makes nothing; the key is stored with the
        subscription's event, its row and its data key, in one unit of work.
        """
        fouten: list[FieldError] = []
        fout = url_fout(callback_url, self.allow_private)
        if fout is not None:
            fouten.append({"field": "body.callback_url", "rule": fout})
        if event_types is not None and (not event_types or set(event_types) - toegestaan(eigenaar)):
            fouten.append({"field": "body.event_types", "rule": "onbekend_of_niet_toegestaan"})
        if eigenaar == "werkgever" and organisatie_code is None:
            fouten.append({"field": "body.organisatie_code", "rule": "required_for_werkgever"})
        if fouten:
            raise Ongeldig(fouten)
        digest = fingerprint(
            {
                "callback_url": callback_url,
                "eigenaar": eigenaar,
                "event_types": None if event_types is None else list(event_types),
                "organisatie_code": organisatie_code,
                "aanvraag_id": None if aanvraag_id is None else str(aanvraag_id),
            }
        )
        abonnement_id = uuid4()
        key = new_secret()
        types = sorted(set(event_types)) if event_types is not None else None

        def decide(_: AbonnementHistorie | None) -> list[DomainEvent]:
            # Only a new subscription counts (a repeat was answered before this).
            self._onder_maximum(eigenaar, organisatie_code)
            return [
                first_event(
                    AbonnementAangemaakt,
                    abonnement_id,
                    ctx,
                    eigenaar=eigenaar,
                    organisatie_code=organisatie_code,
                    filter_aanvraag_id=aanvraag_id,
                    event_types=tuple(types) if types is not None else None,
                )
            ]

        with contextlib.ExitStack() as new_key:
            writes: list[SideWrite] = []

            def statements(_: AbonnementHistorie | None, __: object) -> list[SideWrite]:
                # The secret is sealed with a data key of its own in the service's key table
                # (under the subscription's id): KEK rotation re-wraps it like any other, and
                # removing the subscription destroys it. The key is made here, once a repeat
                # was answered and the maximum admitted a new one, and stored with the events.
                if not writes:
                    data_key_row = new_key.enter_context(self.app.keys.new_dossier(abonnement_id))
                    data_key = self.app.keys.for_writing(abonnement_id)
                    sealed = seal(data_key.key, key, _secret_aad(abonnement_id))
                    row = self.store.nieuw(
                        abonnement_id,
                        callback_url,
                        types,
                        organisatie_code,
                        aanvraag_id,
                        eigenaar,
                        data_key.key_id,
                        sealed,
                        ctx.now,
                    )
                    writes.extend([data_key_row, *row])
                return writes

            if sleutel is None:
                self.app.change(
                    abonnement_id,
                    decide,
                    project=webhook_events.project,
                    statements=statements,
                    new=True,
                )
                return Gemaakt(self.abonnement(abonnement_id), key, replayed=False)
            once = Once(
                self.app.idempotency, *sleutel, digest, {"abonnement_id": str(abonnement_id)}
            )
            changed = self.app.change_once(
                once,
                abonnement_id,
                decide,
                project=webhook_events.project,
                statements=statements,
                new=True,
            )
        if isinstance(changed, Answered):
            return self._eerder_gemaakt(UUID(changed.result["abonnement_id"]))
        return Gemaakt(self.abonnement(abonnement_id), key, replayed=False)

    def _onder_maximum(self, eigenaar: Eigenaar, organisatie_code: str | None) -> None:
        """409 when a werkgever's organisation has the most live subscriptions it may have."""
        if eigenaar != "werkgever" or organisatie_code is None:
            return
        # Counted before the new one is written: two made at the very same moment may pass
        # together, so the cap can be exceeded by a few, never without bound.
        live = self.store.abonnementen(werkgever=organisatie_code, limit=self.max_per_organisatie)
        if len(live) >= self.max_per_organisatie:
            raise Conflict(
                f"Deze organisatie heeft al {self.max_per_organisatie} webhook-abonnementen,"
                " het maximum; verwijder er eerst een.",
                code="te_veel_abonnementen",
            )

    def _eerder_gemaakt(self, abonnement_id: UUID) -> Gemaakt:
        """The first answer to a repeated request: the subscription it made, with its secret
        (409 once that subscription was removed: its secret is destroyed)."""
        abonnement = self.abonnement(abonnement_id)
        sealed = self.store.geheim(abonnement_id)
        data_key = None if sealed is None else self.app.keys.for_reading(sealed[0])
        if sealed is None or data_key is None:
            raise Conflict(
                "Het abonnement dat met deze Idempotency-Key is gemaakt, is verwijderd; het"
                " geheim bestaat niet meer.",
                code="abonnement_verwijderd",
            )
        key = open_sealed(data_key, sealed[1], _secret_aad(abonnement_id))
        return Gemaakt(abonnement, key, replayed=True)

    def abonnement(self, abonnement_id: UUID) -> Abonnement:
        """One subscription (404 when unknown)."""
        found = self.store.abonnement(abonnement_id)
        if found is None:
            raise NietGevonden("Onbekend abonnement.")
        return found

    def abonnementen(
        self, *, werkgever: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[Abonnement]:
        """The subscriptions (not the removed ones unless asked for), newest first; with
        ``werkgever``, only that organisation's werkgever subscriptions."""
        return self.store.abonnementen(werkgever=werkgever, status=status, limit=limit)

    def verwijder(self, abonnement_id: UUID, ctx: Context) -> Abonnement:
        """Remove a subscription: no more deliveries, its secret destroyed (crypto-shredding)."""
        abonnement = self.abonnement(abonnement_id)
        if abonnement.status == "verwijderd":
            return abonnement
        versie = self.store.versie(abonnement_id)
        if versie is None:
            raise NietGevonden("Onbekend abonnement.")
        event = AbonnementVerwijderd(
            originator_id=abonnement_id,
            originator_version=versie + 1,
            organisatie_code=abonnement.organisatie_code,
            **ctx.event_fields(),
        )
        writes = [
            *self.store.verwijderd(abonnement_id, versie, ctx.now),
            self.app.keys.destroying(
                abonnement_id, ctx.actor_id or "onbekend", "webhook_abonnement_verwijderd", ctx.now
            ),
        ]
        try:
            self.app.record(event, statements=writes)
        except ConcurrencyConflict:
            raise Conflict("Het abonnement werd tegelijk gewijzigd; probeer opnieuw.") from None
        return self.abonnement(abonnement_id)

    # --- planning deliveries (the consumer) ----------------------------------------------------

    def handle(self, delivery: Delivery) -> None:
        """Consumer handler: keep the register and plan a delivery per matching subscription
        (once per message: ``AlreadyProcessed`` the second time)."""
        self.store.plannen(
            WEBHOOK_CONSUMER, delivery.event, delivery.envelope, self.clock.now(), _kies
        )

    def handle_batch(self, deliveries: Sequence[Delivery]) -> None:
        """Consumer batch handler: ``handle`` of each delivery in turn, in one transaction (a
        redelivery is left out; when the batch raises, the consumer hands the messages to
        ``handle`` one by one)."""
        self.store.plannen_batch(
            WEBHOOK_CONSUMER,
            [(d.event, d.envelope) for d in deliveries],
            self.clock.now(),
            _kies,
        )

    # --- sending (the worker) ------------------------------------------------------------------

    def claim_due(self, now: datetime, limit: int, hold: timedelta) -> list[Claim]:
        """Claim due deliveries of live subscriptions; no other sender takes them meanwhile."""
        return self.store.claim_due(now, limit, hold)

    def secret_of(self, claim: Claim) -> bytes | None:
        """The subscription's HMAC key, or None when it was destroyed (subscription removed)."""
        data_key = self.app.keys.for_reading(claim.secret_key_id)
        if data_key is None:
            return None
        return open_sealed(data_key, claim.secret, _secret_aad(claim.abonnement_id))

    def vervallen(self, claim: Claim) -> None:
        """The subscription is gone: the delivery will not be attempted."""
        self.store.vervallen(claim)

    def record_attempt(self, claim: Claim, uitkomst: Uitkomst, now: datetime) -> None:
        """Record one attempt with the delivery's new state and the subscription's health; a
        receiver that keeps failing marks the subscription failing (AbonnementFalend), a
        delivery to a failing one that succeeds marks it recovered (AbonnementHersteld)."""
        poging = claim.pogingen + 1
        if uitkomst.geslaagd:
            status, volgende = "afgeleverd", None
        else:
            volgende = self.schedule.next_attempt(poging - claim.ronde_start, now)
            status = "gepland" if volgende is not None else "opgegeven"
        health = self.store.poging(claim, uitkomst, status, volgende, now)
        if health is None:
            return
        if uitkomst.geslaagd and health.status == "falend":
            self._markeer(
                claim.abonnement_id,
                health.versie,
                "actief",
                AbonnementHersteld,
                now,
                organisatie_code=health.organisatie_code,
            )
        elif (
            not uitkomst.geslaagd
            and health.status == "actief"
            and (health.opeenvolgende_fouten >= self.failing_after or status == "opgegeven")
        ):
            log.error(
                "webhook subscription failing",
                extra={
                    "abonnement_id": str(claim.abonnement_id),
                    "opeenvolgende_fouten": health.opeenvolgende_fouten,
                    "reden": uitkomst.reden,
                },
            )
            self._markeer(
                claim.abonnement_id,
                health.versie,
                "falend",
                AbonnementFalend,
                now,
                organisatie_code=health.organisatie_code,
                opeenvolgende_fouten=health.opeenvolgende_fouten,
                falend_sinds=health.falend_sinds,
                reden_code=uitkomst.reden,
            )
        if status == "opgegeven":
            log.error(
                "webhook delivery given up",
                extra={"bezorging_id": str(claim.bezorging_id), "pogingen": poging},
            )

    def _markeer(
        self,
        abonnement_id: UUID,
        versie: int,
        status: str,
        cls: type[AbonnementFalend] | type[AbonnementHersteld],
        now: datetime,
        **fields: Any,
    ) -> None:
        event = cls(
            originator_id=abonnement_id,
            originator_version=versie + 1,
            timestamp=now,
            actor_id="svc-notifications",
            actor_role="systeem",
            **fields,
        )
        # Another sender (or a removal) may have recorded the change first: that one stands.
        with contextlib.suppress(ConcurrencyConflict):
            self.app.record(event, statements=self.store.gemarkeerd(abonnement_id, versie, status))

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
        return self.store.bezorgingen(
            abonnement_id, status=status, limit=limit, bezorging_id=bezorging_id
        )

    def bezorging(self, bezorging_id: UUID) -> WebhookBezorging:
        """One delivery (404 when unknown)."""
        found = self.bezorgingen(None, bezorging_id=bezorging_id, limit=1)
        if not found:
            raise NietGevonden("Onbekende bezorging.")
        return found[0]

    def opnieuw(self, bezorging_id: UUID, now: datetime) -> WebhookBezorging:
        """Send a delivery again now, on a fresh schedule (409 when its subscription is gone)."""
        if not self.store.opnieuw(bezorging_id, now):
            raise Conflict("Het abonnement is verwijderd.", code="abonnement_verwijderd")
        return self.bezorging(bezorging_id)

    def abonnement_van(self, bezorging_id: UUID) -> Abonnement:
        """The subscription of a delivery (404 when the delivery is unknown)."""
        abonnement_id = self.store.abonnement_van(bezorging_id)
        if abonnement_id is None:
            raise NietGevonden("Onbekende bezorging.")
        return self.abonnement(abonnement_id)


def expose_mail_series(service: str) -> None:
    """Make every series the mail alert reads exist at 0 from the start, for every template.

    ``increase()`` sees nothing of a counter's first step from absent to 1, and ``… == 0`` matches
    no series that does not exist: without this, a process whose every attempt fails from its
    first minute on would never raise WeerbaarMailFailing (deploy/alerts.yml).
    """
    metrics = metrics_for(service)
    for soort in TEMPLATES:
        metrics.mails_sent.labels(service, soort)
        for final in ("true", "false"):
            metrics.mails_failed.labels(service, soort, final)


def _checked(ontvanger: Ontvanger, address: str) -> str:
    """The address as it goes out, checked again: a dossier's party by the rules intake applies
    (an address stored by an older release may break them), the secretariaat's (configuration,
    possibly on a local domain) only for being one bare address safe in a header."""
    try:
        return veilig_adres(address) if ontvanger == "secretariaat" else email_address(address)
    except AdresOngeldig as exc:
        # Sending it again will not help: the notification fails for good, with the rule.
        raise PermanentMailError(f"adres_{exc.rule}") from None


def _params(notificatie: Notificatie) -> dict[str, Any]:
    params = dict(notificatie.parameters)
    for key in _DATETIME_PARAMETERS & params.keys():
        if isinstance(params[key], str):
            params[key] = datetime.fromisoformat(params[key])
    return params


def _code(reason: str) -> str:
    code = "".join(c if c.isalnum() else "_" for c in reason.lower()).strip("_")
    return (code or "onbekend")[:64]
