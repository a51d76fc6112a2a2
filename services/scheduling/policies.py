"""Scheduling's reactions to other services' events, declared in one list (``policies``).

Each reaction turns one public event into one use case of the application, with the inbox entry
that makes a redelivery harmless.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from services.scheduling.application import Scheduling
from shared.contracts import events as public
from shared.contracts.registry import SUBJECT_PREFIX
from shared.platform.consumer import Delivery, Subscription
from shared.platform.model import Clock, Context
from shared.platform.wiring import delivery_context

#: The consumer of the planning's events, in the inbox.
CONSUMER = "scheduling-planning"

Reaction = Callable[[Scheduling, Any, Context, tuple[str, str]], None]


def open_planning(
    app: Scheduling, event: public.AanvraagIngediend, ctx: Context, inbox: tuple[str, str]
) -> None:
    """A new aanvraag: open its planning and contact deadline."""
    app.open(event.aanvraag_id, event.ingediend_op, ctx, inbox)


def stop_na_intrekking(
    app: Scheduling, event: public.AanvraagIngetrokken, ctx: Context, inbox: tuple[str, str]
) -> None:
    """The aanvraag was withdrawn: stop the planning."""
    app.stop(event.aanvraag_id, ctx, inbox, "ingetrokken")


def stop_na_afsluiten(
    app: Scheduling, event: public.DossierAfgesloten, ctx: Context, inbox: tuple[str, str]
) -> None:
    """The dossier was closed: stop the planning."""
    app.stop(event.aanvraag_id, ctx, inbox, "afgesloten")


def noteer_verstrekt(
    app: Scheduling,
    event: public.RapportVerstrektAanBestuurder,
    ctx: Context,
    inbox: tuple[str, str],
) -> None:
    """The bestuurder received the report: from now on they may ask for a toelichting."""
    app.noteer_rapport(event.aanvraag_id, "bestuurder", event.rapport_id, event.versie, ctx, inbox)


def noteer_vrijgegeven(
    app: Scheduling, event: public.RapportVrijgegeven, ctx: Context, inbox: tuple[str, str]
) -> None:
    """The report was released to the werkgever: from now on they may ask for a toelichting."""
    app.noteer_rapport(event.aanvraag_id, "werkgever", event.rapport_id, event.versie, ctx, inbox)


#: What the planning reacts to. One consumer, so it sees a dossier's events in stream order: the
#: planning exists before its withdrawal, closing or report arrives.
REACTIONS: dict[type[public.PublicEvent], Reaction] = {
    public.AanvraagIngediend: open_planning,
    public.AanvraagIngetrokken: stop_na_intrekking,
    public.DossierAfgesloten: stop_na_afsluiten,
    public.RapportVerstrektAanBestuurder: noteer_verstrekt,
    public.RapportVrijgegeven: noteer_vrijgegeven,
}


def subject(event: type[public.PublicEvent]) -> str:
    """The subjects of an event, every dossier's."""
    return f"{SUBJECT_PREFIX}.{event.service}.{event.event_name}.*"


class Reactions:
    """The consumer handler: runs the reaction declared for the delivered event."""

    def __init__(self, app: Scheduling, clock: Clock) -> None:
        self.app = app
        self.clock = clock

    def __call__(self, delivery: Delivery) -> None:
        """Handle one delivery (events without a reaction change nothing)."""
        for event_type, react in REACTIONS.items():
            if isinstance(delivery.event, event_type):
                ctx = delivery_context(delivery, self.clock, "scheduling")
                react(self.app, delivery.event, ctx, (CONSUMER, delivery.envelope.id))
                return


def policies(app: Scheduling, clock: Clock) -> list[Subscription]:
    """Scheduling's subscriptions to other services' events."""
    return [
        Subscription(
            purpose="planning",
            subjects=[subject(event) for event in REACTIONS],
            handler=Reactions(app, clock),
            description="Opens the planning and its contact deadline; stops it on withdrawal "
            "or closing; notes who received the report (for the toelichting).",
        )
    ]
