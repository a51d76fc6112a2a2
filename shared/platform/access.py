"""Refused access on record: every service writes ToegangGeweigerd for every refused attempt.

A refusal is a domain event of its own (one per refusal, so recording never contends with the
dossier's other writers), committed before the refusal is answered; the gateway of each service
publishes it as the public ToegangGeweigerd.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final
from uuid import UUID, uuid4, uuid5

from shared.contracts import events as public
from shared.contracts.registry import NO_DOSSIER
from shared.platform.auth import Refusal, load_or_create_secret
from shared.platform.eventstore import ConcurrencyConflict, ServiceApplication
from shared.platform.model import Context, DomainEvent, first_event, utcnow
from shared.platform.throttle import THROTTLE_DDL, Throttle


class ToegangGeweigerdVastgelegd(DomainEvent):
    """A refused attempt to read or change a dossier's data."""

    aanvraag_id: UUID | None
    actie: str
    reden: str
    status_code: int
    #: Anonymous attempts, counted per dossier and window (None: one signed-in refusal).
    aantal: int | None = None
    venster_van: datetime | None = None
    venster_tot: datetime | None = None


OPAQUE_SUB = re.compile(r"[A-Za-z0-9._:|-]{1,128}")

#: A pseudonym as ``opaque_actor_id`` makes it: ``p-`` and 32 hex digits.
PSEUDONYM = re.compile(r"p-[0-9a-f]{32}")

_pseudonym_key: bytes | None = None
_pseudonym_lock = threading.Lock()


def configure_pseudonyms(key_file: Path) -> None:
    """Use the key in ``key_file`` (made the first time, mode 0600) for every pseudonym of this
    process. Every service of a deployment must share it: the same person then has the same
    ``actorid`` everywhere (four-eyes compares them across services)."""
    global _pseudonym_key  # noqa: PLW0603 - one key per process, set by the composition root
    key = load_or_create_secret(key_file)
    with _pseudonym_lock:
        _pseudonym_key = key


def _key() -> bytes:
    if _pseudonym_key is None:
        raise RuntimeError("pseudonyms need their key: call configure_pseudonyms first")
    return _pseudonym_key


def opaque_actor_id(sub: str) -> str:
    """The pseudonym of a person (a token's ``sub``, an adviseur's id): a keyed hash, stable per
    person and the same in every service, never the identity itself, whatever it looks like.

    The key is one of the deployment's secrets: without it a pseudonym cannot be traced back to
    a ``sub`` by trying likely values (an e-mail address, an employee number).
    """
    digest = hmac.new(_key(), sub.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return "p-" + digest[:32]


def legacy_actor_id(sub: str) -> str:
    """The actor id releases before pseudonyms recorded for ``sub`` (the raw ``sub`` when it
    looked opaque, else an unkeyed digest): only to recognise the same person in history
    recorded then (four-eyes), never to write."""
    if OPAQUE_SUB.fullmatch(sub):
        return sub
    return "sub-" + hashlib.sha256(sub.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def actor_role_value(roles: frozenset[str] | set[str]) -> str | None:
    """The ``actorrole`` of a caller: its roles, comma-separated and sorted; None when it has no
    role (the envelope then leaves the attribute out, never an empty string)."""
    return ",".join(sorted(roles)) or None


def record_refusal(app: ServiceApplication, refusal: Refusal) -> None:
    """Store a signed-in caller's refusal in the service's event store (raises when it cannot:
    then no answer)."""
    principal = refusal.principal
    ctx = Context(
        now=utcnow(),
        actor_id=opaque_actor_id(principal.sub) if principal else None,
        actor_role=actor_role_value({role.value for role in principal.roles})
        if principal
        else None,
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


#: The reason of a window's later anonymous attempts, recorded together.
ANONYMOUS_REASON: Final = "zonder_geldig_token"
#: The ``actie`` of a window's later anonymous attempts: they may have tried any route.
ANY_ROUTE: Final = "ALLE /{alle_routes}"
_REFUSAL_IDS: Final = UUID("5c1f3c52-8f0e-4c52-9a35-2b4f1d7e6a90")


class Refusals:
    """Puts refusals on record: a signed-in caller's one by one (``record_refusal``); attempts
    without a valid token, which cannot say who tried, counted per dossier in windows of
    ``window_s`` (the first at once, with its route and reason; the rest as one event with their
    count when the window has ended, by ``record_ended``), and limited per source address (429
    over ``per_source_per_minute``).

    So anonymous traffic can never grow a dossier's history without bound: at most two events
    per dossier, service and window, whatever the number of attempts and routes.
    """

    def __init__(
        self,
        app: ServiceApplication,
        window_s: float,
        per_source_per_minute: int,
        now: Callable[[], datetime] = utcnow,
    ):
        app.create_tables([THROTTLE_DDL])
        self.now = now
        app.pending_records.append(self.record_ended)
        self.app = app
        self.attempts = Throttle(app, "anoniem_geweigerd", window_s)
        self.sources = Throttle(app, "anoniem_bron", 60)
        self.per_source_per_minute = per_source_per_minute

    def __call__(self, refusal: Refusal) -> None:
        """Record (or count) one refusal; 429 when the source is over its limit."""
        if refusal.principal is not None:
            record_refusal(self.app, refusal)
            return
        now = self.now()
        key = str(refusal.aanvraag_id or NO_DOSSIER)
        window = self.attempts.count(key, now)
        if window.count == 1:
            self._record(
                key, window.start, window.end, 1, refusal.actie, refusal.reason, refusal.status
            )
        self.sources.limit(
            refusal.source,
            self.per_source_per_minute,
            now,
            "Te veel verzoeken zonder geldig token vanaf dit adres; probeer het later opnieuw.",
        )

    def record_ended(self, now: datetime | None = None) -> int:
        """Record the attempts of every ended window not yet on record, one event per window;
        how many events were recorded."""
        recorded = 0
        for window in self.attempts.ended(now or self.now()):
            end = window.start + timedelta(seconds=self.attempts.window_s)
            self._record(
                window.key,
                window.start,
                end,
                window.count - window.recorded,
                ANY_ROUTE,
                ANONYMOUS_REASON,
                401,
                total=window.count,
            )
            recorded += 1
        return recorded

    def _record(
        self,
        key: str,
        start: datetime,
        end: datetime,
        aantal: int,
        actie: str,
        reden: str,
        status: int,
        *,
        total: int | None = None,
    ) -> None:
        dossier = key
        marked = aantal if total is None else total
        # One id per window and count: a second process recording the same finds it taken.
        event_id = uuid5(_REFUSAL_IDS, f"{self.app.service}|{key}|{start.isoformat()}|{marked}")
        event = first_event(
            ToegangGeweigerdVastgelegd,
            event_id,
            Context(now=self.now()),
            aanvraag_id=None if dossier == NO_DOSSIER else UUID(dossier),
            actie=actie,
            reden=reden,
            status_code=status,
            aantal=aantal,
            venster_van=start,
            venster_tot=end,
        )
        with contextlib.suppress(ConcurrencyConflict):
            self.app.record(
                event, statements=[self.attempts.recorded_statement(key, start, marked)]
            )


def refusal_to_public(
    event: ToegangGeweigerdVastgelegd, dienst: public.Dienst
) -> public.ToegangGeweigerd:
    """The public announcement of a refusal (v2 with the count, for anonymous attempts)."""
    if event.aantal is not None and event.venster_van and event.venster_tot:
        return public.ToegangGeweigerdV2(
            aanvraag_id=event.aanvraag_id,
            dienst=dienst,
            actie=event.actie,
            reden=event.reden,
            status_code=event.status_code,
            aantal=event.aantal,
            venster_van=event.venster_van,
            venster_tot=event.venster_tot,
        )
    return public.ToegangGeweigerd(
        aanvraag_id=event.aanvraag_id,
        dienst=dienst,
        actie=event.actie,
        reden=event.reden,
        status_code=event.status_code,
    )
