"""Approval's gateway: private domain events → public events."""

from __future__ import annotations

from collections.abc import Sequence

from shared.access import ToegangGeweigerdVastgelegd, refusal_to_public
from shared.contracts import events as public
from shared.eventstore import DomainEvent


def to_public(event: DomainEvent) -> Sequence[public.PublicEvent]:
    """The public events that announce one domain event."""
    if isinstance(event, ToegangGeweigerdVastgelegd):
        return [refusal_to_public(event, public.Dienst.APPROVAL)]
    return []
