"""Notifications' domain: one notification per (cause event, template, recipient role).

A notification is planned exactly once (its id derives from what caused it), then delivered by the
sender with retries; every attempt's outcome is an event. The recipient's address is never stored
here: the sender fetches it from its owner (claim-check) at the moment of sending.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID, uuid5

from shared.eventstore import Aggregate, Context, DomainEvent, first_event, next_event

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


class NotificatieMislukt(Poging):
    """An attempt failed; ``definitief`` when no further attempt will be made."""

    reden_code: str
    definitief: bool
    volgende_poging: datetime | None


class NotificatieVervallen(DomainEvent):
    """The notification no longer applies (e.g. its appointment was cancelled before it went out).

    Not an attempt: nothing was sent, so no public event announces it; the delivery log shows it.
    """

    aanvraag_id: UUID
    soort: str
    ontvanger: Ontvanger
    oorzaak_event_id: str
    reden_code: str


class Notificatie(Aggregate):
    """One notification and its delivery attempts."""

    aanvraag_id: UUID
    soort: str
    ontvanger: Ontvanger
    oorzaak_event_id: str
    parameters: dict[str, Any]
    status: Status = "gepland"
    pogingen: int = 0
    #: When the next attempt is due (None: no further attempt), and when it last changed.
    volgende_poging: datetime | None = None
    bijgewerkt_op: datetime
    #: The trace of what planned it: each attempt continues it (and the mail carries it).
    traceparent: str | None = None


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


def backoff(poging: int) -> timedelta:
    """Wait before the next attempt: 2, 4, 8 … seconds, at most an hour."""
    return timedelta(seconds=min(3600, 2**poging))


def mislukt(
    notificatie: Notificatie,
    reden_code: str,
    *,
    permanent: bool,
    max_pogingen: int,
    ctx: Context,
) -> NotificatieMislukt:
    """Record a failed attempt; the last allowed attempt, or a permanent error, is final."""
    poging = notificatie.pogingen + 1
    definitief = permanent or poging >= max_pogingen
    return next_event(
        NotificatieMislukt,
        notificatie,
        ctx,
        **_about(notificatie),
        poging=poging,
        reden_code=reden_code,
        definitief=definitief,
        volgende_poging=None if definitief else ctx.now + backoff(poging),
    )


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
            update |= {"status": "verzonden", "pogingen": event.poging}
        elif isinstance(event, NotificatieMislukt):
            update |= {"pogingen": event.poging, "volgende_poging": event.volgende_poging}
            if event.definitief:
                update["status"] = "mislukt"
        elif isinstance(event, NotificatieVervallen):
            update["status"] = "vervallen"
        notificatie = notificatie.model_copy(update=update)
    return notificatie
