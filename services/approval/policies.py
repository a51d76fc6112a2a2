"""Approval's reactions to other services' events, declared in one list (``POLICIES``); ``policies``
gives the consumers that run them, as every service's ``policies`` does.

Each reaction turns one public event into one use case of the application, with the inbox entry
that makes a redelivery harmless. The subscription that feeds them is built from the list.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.approval.application import Approval
from shared.contracts import events as public
from shared.contracts.registry import SUBJECT_PREFIX
from shared.platform.consumer import Delivery, Subscription
from shared.platform.model import Clock, Context
from shared.platform.wiring import delivery_context

#: The consumer of assessment's report events, in the inbox.
CONSUMER = "approval-rapporten"


def neem_bewerking_op(
    app: Approval, event: Any, delivery: Delivery, ctx: Context, inbox: tuple[str, str]
) -> None:
    """A version was drafted or revised: remember who wrote it (four-eyes needs it)."""
    assert isinstance(event, public.RapportOpgesteld | public.RapportHerzien)
    app.neem_bewerking_op(
        event.rapport_id, event.aanvraag_id, event.versie, delivery.envelope.actorid, ctx, inbox
    )


def ontvang_ter_toetsing(
    app: Approval, event: Any, delivery: Delivery, ctx: Context, inbox: tuple[str, str]
) -> None:
    """A version was submitted for review, with its content hash and who submitted it."""
    assert isinstance(event, public.RapportTerToetsingAangeboden)
    app.ontvang_ter_toetsing(
        event.rapport_id,
        event.aanvraag_id,
        event.versie,
        event.inhoud_hash,
        delivery.envelope.actorid,
        delivery.envelope.time,
        ctx,
        inbox,
    )


@dataclass(frozen=True)
class Policy:
    """One reaction: the public event it takes and the use case it runs."""

    event: type[public.PublicEvent]
    react: Callable[[Approval, Any, Delivery, Context, tuple[str, str]], None]

    @property
    def subject(self) -> str:
        """The subjects of the event, every dossier's."""
        return f"{SUBJECT_PREFIX}.{self.event.service}.{self.event.event_name}.*"


POLICIES: tuple[Policy, ...] = (
    Policy(public.RapportOpgesteld, neem_bewerking_op),
    Policy(public.RapportHerzien, neem_bewerking_op),
    Policy(public.RapportTerToetsingAangeboden, ontvang_ter_toetsing),
)


def handler(app: Approval, clock: Clock) -> Callable[[Delivery], None]:
    """The consumer handler that runs the reaction declared for each delivered event."""

    def react(delivery: Delivery) -> None:
        for policy in POLICIES:
            if isinstance(delivery.event, policy.event):
                ctx = delivery_context(delivery, clock, "approval")
                policy.react(app, delivery.event, delivery, ctx, (CONSUMER, delivery.envelope.id))
                return

    return react


def subscription(app: Approval, clock: Clock) -> Subscription:
    """The durable consumer of the events in ``POLICIES`` (purpose ``rapporten``)."""
    return Subscription(
        purpose="rapporten",
        subjects=[policy.subject for policy in POLICIES],
        handler=handler(app, clock),
        description="Follows the report's versions, their content hashes and writers.",
    )


def policies(app: Approval, clock: Clock) -> list[Subscription]:
    """The service's reactions to other services' events, as the consumers that run them."""
    return [subscription(app, clock)]
