"""Notifications' domain: one notification per (cause event, template, recipient role).

A notification is planned exactly once (its id derives from what caused it), then delivered by the
sender with retries on a schedule (the webhooks' ``RetrySchedule``); every attempt's outcome is an
event. One that failed for good can be sent again on request (a fresh round of the schedule). The
recipient's address is never stored here: the sender fetches it from its owner (claim-check) at
the moment of sending.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar, Literal
from uuid import UUID, uuid5

from pydantic import BaseModel

from services.notifications.domain.webhooks import RetrySchedule
from shared.platform.errors import Conflict
from shared.platform.model import Aggregate, Context, DomainEvent, first_event, next_event

#: Each stored event's ``TOPIC`` is where it was defined when the first ones were stored
#: (``services.notifications.domain``): the store, the relay, a replay and the projection's rebuild
#: find them by it, so it never changes when the code moves.
NOTIFICATION_NAMESPACE = UUID("5d7b0c43-2f0e-4a57-9b7d-0e4f1c2a9d61")

Ontvanger = Literal["aanvrager", "bestuurder", "werkgever", "secretariaat"]
Status = Literal["gepland", "verzonden", "mislukt", "vervallen"]
Partij = Literal["bestuurder", "werkgever"]

PARTIJEN: tuple[Partij, ...] = ("bestuurder", "werkgever")
#: Who is told about an appointment of each kind; a toelichting goes to whoever asked for it.
AFSPRAAK_ONTVANGERS: dict[str, tuple[Partij, ...]] = {
    "gesprek_werkgever": ("werkgever",),
    "gesprek_bestuurder": ("bestuurder",),
    "toelichting": PARTIJEN,
}


def notificatie_id(oorzaak_event_id: str, soort: str, ontvanger: str) -> UUID:
    """The stable id of the notification that one event causes for one recipient."""
    return uuid5(NOTIFICATION_NAMESPACE, f"{oorzaak_event_id}/{soort}/{ontvanger}")


class NotificatieGepland(DomainEvent):
    """A notification must go out (its parameters hold no personal data)."""

    TOPIC: ClassVar[str] = "services.notifications.domain:NotificatieGepland"

    aanvraag_id: UUID
    soort: str
    ontvanger: Ontvanger
    oorzaak_event_id: str
    parameters: dict[str, Any]


class Poging(DomainEvent):
    """The outcome of one delivery attempt (self-describing, so the gateway needs no lookup)."""

    aanvraag_id: UUID
    soort: str
    ontvanger: Ontvanger
    oorzaak_event_id: str
    poging: int


class NotificatieVerzonden(Poging):
    """The SMTP server accepted the message."""

    TOPIC: ClassVar[str] = "services.notifications.domain:NotificatieVerzonden"


class NotificatieMislukt(Poging):
    """An attempt failed; ``definitief`` when no further attempt will be made."""

    TOPIC: ClassVar[str] = "services.notifications.domain:NotificatieMislukt"

    reden_code: str
    definitief: bool
    volgende_poging: datetime | None


class NotificatieVervallen(DomainEvent):
    """The notification no longer applies (e.g. its appointment was cancelled before it went out).

    Not an attempt: nothing was sent, so no public event announces it; the delivery log shows it.
    """

    TOPIC: ClassVar[str] = "services.notifications.domain:NotificatieVervallen"

    aanvraag_id: UUID
    soort: str
    ontvanger: Ontvanger
    oorzaak_event_id: str
    reden_code: str


class NotificatieOpnieuwGepland(DomainEvent):
    """Someone asked for a notification that failed for good to be sent again (a new round of
    attempts). Not an attempt itself, so no public event announces it; the delivery log shows it.
    """

    TOPIC: ClassVar[str] = "services.notifications.domain:NotificatieOpnieuwGepland"

    aanvraag_id: UUID
    soort: str
    ontvanger: Ontvanger
    oorzaak_event_id: str


class Notificatie(Aggregate):
    """One notification and its delivery attempts."""

    aanvraag_id: UUID
    soort: str
    ontvanger: Ontvanger
    oorzaak_event_id: str
    parameters: dict[str, Any]
    status: Status = "gepland"
    pogingen: int = 0
    #: The attempts made before the current round (a re-send starts a new round of the schedule).
    ronde_start: int = 0
    #: Why the last attempt failed, or why the notification lapsed (a code, never a server's text).
    reden_code: str | None = None
    #: When the next attempt is due (None: no further attempt), and when it last changed.
    volgende_poging: datetime | None = None
    bijgewerkt_op: datetime
    #: The trace of what planned it: each attempt continues it (and the mail carries it).
    traceparent: str | None = None


class NotificatieBezorging(BaseModel):
    """One line of the delivery log (no addresses, no content)."""

    notificatie_id: UUID
    aanvraag_id: UUID
    soort: str
    ontvanger: str
    status: str
    pogingen: int
    volgende_poging: datetime | None
    bijgewerkt_op: datetime
    #: Why the last attempt failed (or why it lapsed): a code such as ``connection_refused`` or
    #: ``recipient_refused``, never the server's reply; None once sent (and before any attempt).
    reden_code: str | None = None


def plan(
    aanvraag_id: UUID,
    soort: str,
    ontvanger: Ontvanger,
    oorzaak_event_id: str,
    parameters: dict[str, Any],
    ctx: Context,
) -> NotificatieGepland:
    """Plan a notification (its id makes a second plan of the same one a conflict)."""
    return first_event(
        NotificatieGepland,
        notificatie_id(oorzaak_event_id, soort, ontvanger),
        ctx,
        aanvraag_id=aanvraag_id,
        soort=soort,
        ontvanger=ontvanger,
        oorzaak_event_id=oorzaak_event_id,
        parameters=parameters,
    )


def verzonden(notificatie: Notificatie, ctx: Context) -> NotificatieVerzonden:
    """Record a successful delivery."""
    return next_event(
        NotificatieVerzonden,
        notificatie,
        ctx,
        **_about(notificatie),
        poging=notificatie.pogingen + 1,
    )


def _about(notificatie: Notificatie) -> dict[str, Any]:
    return {
        "aanvraag_id": notificatie.aanvraag_id,
        "soort": notificatie.soort,
        "ontvanger": notificatie.ontvanger,
        "oorzaak_event_id": notificatie.oorzaak_event_id,
    }


def vervallen(notificatie: Notificatie, reden_code: str, ctx: Context) -> NotificatieVervallen:
    """Record that a planned notification will not be sent because it no longer applies."""
    if notificatie.status != "gepland":
        raise ValueError("only a planned notification can lapse")
    return next_event(
        NotificatieVervallen, notificatie, ctx, **_about(notificatie), reden_code=reden_code
    )


def afspraak_ontvangers(soort: str, verzoekers: Iterable[str] = ()) -> tuple[Partij, ...]:
    """Who hears about an appointment: its party, or for a toelichting the parties who asked.

    A toelichting nobody is known to have asked for (the request was not seen) goes to both.
    """
    try:
        ontvangers = AFSPRAAK_ONTVANGERS[soort]
    except KeyError:
        raise ValueError("unknown kind of appointment") from None
    wanted = set(verzoekers)
    asked = tuple(partij for partij in ontvangers if partij in wanted)
    return asked or ontvangers


def mislukt(
    notificatie: Notificatie,
    reden_code: str,
    *,
    permanent: bool,
    schema: RetrySchedule,
    ctx: Context,
) -> NotificatieMislukt:
    """Record a failed attempt; a permanent error, or the last attempt of the schedule's round,
    is final. Otherwise the next attempt is due when the schedule says."""
    poging = notificatie.pogingen + 1
    volgende = None if permanent else schema.next_attempt(poging - notificatie.ronde_start, ctx.now)
    return next_event(
        NotificatieMislukt,
        notificatie,
        ctx,
        **_about(notificatie),
        poging=poging,
        reden_code=reden_code,
        definitief=volgende is None,
        volgende_poging=volgende,
    )


def opnieuw(notificatie: Notificatie, ctx: Context) -> NotificatieOpnieuwGepland:
    """Send a notification that failed for good again, now, with a fresh round of attempts.

    The mail keeps its Message-ID (it derives from the cause, the template and the recipient),
    so a receiver that did get an earlier copy can recognise this one as the same mail.
    """
    if notificatie.status != "mislukt":
        raise Conflict(
            "Alleen een mislukte notificatie kan opnieuw worden verzonden.",
            code="niet_mislukt",
        )
    return next_event(NotificatieOpnieuwGepland, notificatie, ctx, **_about(notificatie))


def project(notificatie: Notificatie | None, events: Iterable[DomainEvent]) -> Notificatie | None:
    """Rebuild a Notificatie from its events."""
    for event in events:
        if isinstance(event, NotificatieGepland):
            notificatie = Notificatie(
                id=event.originator_id,
                version=event.originator_version,
                aanvraag_id=event.aanvraag_id,
                soort=event.soort,
                ontvanger=event.ontvanger,
                oorzaak_event_id=event.oorzaak_event_id,
                parameters=event.parameters,
                volgende_poging=event.timestamp,
                bijgewerkt_op=event.timestamp,
                traceparent=event.traceparent,
            )
            continue
        assert notificatie is not None
        update: dict[str, object] = {
            "version": event.originator_version,
            "bijgewerkt_op": event.timestamp,
            "volgende_poging": None,
        }
        if isinstance(event, NotificatieVerzonden):
            update |= {"status": "verzonden", "pogingen": event.poging, "reden_code": None}
        elif isinstance(event, NotificatieMislukt):
            update |= {
                "pogingen": event.poging,
                "volgende_poging": event.volgende_poging,
                "reden_code": event.reden_code,
            }
            if event.definitief:
                update["status"] = "mislukt"
        elif isinstance(event, NotificatieVervallen):
            update |= {"status": "vervallen", "reden_code": event.reden_code}
        elif isinstance(event, NotificatieOpnieuwGepland):
            # Due at once; the failed round's reason stays on show until the next attempt.
            update |= {
                "status": "gepland",
                "volgende_poging": event.timestamp,
                "ronde_start": notificatie.pogingen,
            }
        notificatie = notificatie.model_copy(update=update)
    return notificatie


#: Every event a notification is stored as.
EVENTS: tuple[type[DomainEvent], ...] = (
    NotificatieGepland,
    NotificatieVerzonden,
    NotificatieMislukt,
    NotificatieVervallen,
    NotificatieOpnieuwGepland,
)
