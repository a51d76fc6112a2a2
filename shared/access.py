"""Refused access on record: every service writes ToegangGeweigerd for every refused attempt.

A refusal is a domain event of its own (one per refusal, so recording never contends with the
dossier's other writers), committed before the refusal is answered; the gateway of each service
publishes it as the public ToegangGeweigerd.
"""

from __future__ import annotations

import hashlib
import re
from uuid import UUID, uuid4

from shared.auth import Refusal
from shared.contracts import events as public
from shared.eventstore import Context, DomainEvent, ServiceApplication, first_event, utcnow


class ToegangGeweigerdVastgelegd(DomainEvent):
    """A refused attempt to read or change a dossier's data."""

    aanvraag_id: UUID | None
    actie: str
    reden: str
    status_code: int


OPAQUE_SUB = re.compile(r"[A-Za-z0-9._:|-]{1,128}")


def opaque_actor_id(sub: str) -> str:
    """The token subject as an opaque id; a subject that is not opaque (e.g. an e-mail address
    from an OIDC provider) is replaced by a digest so it never reaches a public event."""
    if OPAQUE_SUB.fullmatch(sub):
        return sub
    return "sub-" + hashlib.sha256(sub.encode()).hexdigest()[:24]


def record_refusal(app: ServiceApplication, refusal: Refusal) -> None:
    """Store a refusal in the service's event store (raises when it cannot: then no answer)."""
    principal = refusal.principal
    ctx = Context(
        now=utcnow(),
        actor_id=opaque_actor_id(principal.sub) if principal else None,
        actor_role=",".join(sorted(principal.roles)) if principal else None,
    )
    app.record(
        first_event(
            ToegangGeweigerdVastgelegd,
            uuid4(),
            ctx,
            aanvraag_id=refusal.aanvraag_id,
            actie=refusal.actie,
            reden=refusal.reason,
            status_code=refusal.status,
        )
    )


def refusal_to_public(
    event: ToegangGeweigerdVastgelegd, dienst: public.Dienst
) -> public.ToegangGeweigerd:
    """The public announcement of a refusal."""
    return public.ToegangGeweigerd(
        aanvraag_id=event.aanvraag_id,
        dienst=dienst,
        actie=event.actie,
        reden=event.reden,
        status_code=event.status_code,
    )
