"""The webhook store on the in-memory store (the application's ``WebhookStore``): the rows of
``webhook_store``'s tables in dicts, for the use-case tests.

The rows a use case records with its events (a subscription made, removed, marked failing or
recovered) are ``MemoryWrite`` side writes, applied under the in-memory recorder's lock with the
events; what PostgreSQL does in a transaction of its own (planning a message's deliveries with its
inbox entry, a sender's claim, an attempt with the subscription's health) is done at once under
this store's lock, all of it or (when something raises) none of it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from uuid import UUID, uuid4

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
from shared.contracts import events as public
from shared.contracts.envelope import CloudEvent
from shared.platform.eventstore import AlreadyProcessed, ServiceApplication
from shared.platform.ports import MemoryWrite


@dataclass
class _Abonnement:
    """A row of ``webhook_abonnementen``."""

    abonnement: Abonnement
    versie: int
    secret_key_id: UUID
    secret: bytes
    verwijderd_op: datetime | None = None


@dataclass
class _Bezorging:
    """A row of ``webhook_bezorgingen`` with its rows of ``webhook_pogingen``."""

    bezorging_id: UUID
    abonnement_id: UUID
    event_id: str
    event_type: str
    aanvraag_id: UUID | None
    body: bytes
    status: str
    volgende_poging: datetime | None
    aangemaakt_op: datetime
    pogingen: int = 0
    ronde_start: int = 0
    claim: UUID | None = None
    geclaimd_tot: datetime | None = None
    afgeleverd_op: datetime | None = None
    log: list[Poging] = field(default_factory=list)

    def view(self) -> WebhookBezorging:
        return WebhookBezorging(
            bezorging_id=self.bezorging_id,
            abonnement_id=self.abonnement_id,
            event_id=self.event_id,
            event_type=self.event_type,
            aanvraag_id=self.aanvraag_id,
            status=self.status,
            pogingen=self.pogingen,
            volgende_poging=self.volgende_poging,
            aangemaakt_op=self.aangemaakt_op,
            afgeleverd_op=self.afgeleverd_op,
            log=list(self.log),
        )


class MemoryWebhookStore:
    """Subscriptions and deliveries of the notifications service in memory."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.abonnementen_: dict[UUID, _Abonnement] = {}
        #: aanvraag_id → (organisatie_code, vrijgegeven): ``webhook_dossiers``.
        self.dossiers: dict[UUID, tuple[str | None, bool]] = {}
        self.bezorgingen_: dict[UUID, _Bezorging] = {}
        #: The messages whose deliveries were planned: (consumer, message id).
        self.inbox: set[tuple[str, str]] = set()

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
    ) -> Sequence[MemoryWrite]:
        """A new subscription's row (version 1, active)."""
        row = _Abonnement(
            Abonnement(
                abonnement_id=abonnement_id,
                callback_url=callback_url,
                event_types=None if event_types is None else list(event_types),
                organisatie_code=organisatie_code,
                aanvraag_id=aanvraag_id,
                eigenaar=eigenaar,
                status="actief",
                aangemaakt_op=now,
                opeenvolgende_fouten=0,
                falend_sinds=None,
                laatste_fout=None,
            ),
            versie=1,
            secret_key_id=secret_key_id,
            secret=secret,
        )

        def apply() -> None:
            with self._lock:
                self.abonnementen_[abonnement_id] = row

        return [MemoryWrite(apply=apply)]

    def verwijderd(self, abonnement_id: UUID, versie: int, now: datetime) -> Sequence[MemoryWrite]:
        """A subscription removed at ``versie`` + 1, its planned deliveries lapsed."""

        def apply() -> None:
            with self._lock:
                row = self.abonnementen_.get(abonnement_id)
                if row is not None and row.versie == versie:
                    row.abonnement = row.abonnement.model_copy(update={"status": "verwijderd"})
                    row.versie, row.verwijderd_op = versie + 1, now
                for bezorging in self.bezorgingen_.values():
                    if bezorging.abonnement_id == abonnement_id and bezorging.status == "gepland":
                        bezorging.status, bezorging.volgende_poging = "vervallen", None

        return [MemoryWrite(apply=apply)]

    def gemarkeerd(self, abonnement_id: UUID, versie: int, status: str) -> Sequence[MemoryWrite]:
        """A subscription marked ``falend`` or ``actief`` again at ``versie`` + 1."""

        def apply() -> None:
            with self._lock:
                row = self.abonnementen_.get(abonnement_id)
                if row is None or row.versie != versie or row.abonnement.status == "verwijderd":
                    return
                row.abonnement = row.abonnement.model_copy(update={"status": status})
                row.versie = versie + 1

        return [MemoryWrite(apply=apply)]

    def abonnement(self, abonnement_id: UUID) -> Abonnement | None:
        """One subscription, or None."""
        row = self.abonnementen_.get(abonnement_id)
        return None if row is None else row.abonnement

    def geheim(self, abonnement_id: UUID) -> tuple[UUID, bytes] | None:
        """A subscription's sealed secret with the id of the data key that sealed it, or None."""
        row = self.abonnementen_.get(abonnement_id)
        return None if row is None else (row.secret_key_id, row.secret)

    def abonnementen(
        self, *, werkgever: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[Abonnement]:
        """The subscriptions (not the removed ones unless asked for), newest first; with
        ``werkgever``, only that organisation's werkgever subscriptions."""
        with self._lock:
            found = [
                a
                for a in (row.abonnement for row in self.abonnementen_.values())
                if (a.status != "verwijderd" if status is None else a.status == status)
                and (
                    werkgever is None
                    or (a.eigenaar == "werkgever" and a.organisatie_code == werkgever)
                )
            ]
        found.sort(key=lambda a: a.aangemaakt_op, reverse=True)
        return found[:limit]

    def versie(self, abonnement_id: UUID) -> int | None:
        """A subscription's version (its events so far), or None."""
        row = self.abonnementen_.get(abonnement_id)
        return None if row is None else row.versie

    # --- planning deliveries (the consumer) ----------------------------------------------------

    def plannen(
        self,
        consumer: str,
        event: public.PublicEvent,
        envelope: CloudEvent,
        now: datetime,
        kies: Kies,
    ) -> None:
        """The inbox entry, the register and the deliveries ``kies`` picks, all or nothing."""
        with self._lock:
            if (consumer, envelope.id) in self.inbox:
                raise AlreadyProcessed(envelope.id)
            dossier = self._register(event)
            organisatie, vrijgegeven = dossier if dossier is not None else (None, False)
            gebeurtenis = Gebeurtenis(
                type(event).event_name, event.aanvraag_id, organisatie, vrijgegeven
            )
            abonnementen = [
                (
                    a.abonnement_id,
                    Filter(
                        eigenaar="werkgever" if a.eigenaar == "werkgever" else "secretariaat",
                        event_types=None if a.event_types is None else frozenset(a.event_types),
                        organisatie_code=a.organisatie_code,
                        aanvraag_id=a.aanvraag_id,
                    ),
                )
                for a in (row.abonnement for row in self.abonnementen_.values())
                if a.status != "verwijderd"
            ]
            ontvangers = kies(gebeurtenis, abonnementen)  # raises: nothing is kept
            self.inbox.add((consumer, envelope.id))
            if event.aanvraag_id is not None and dossier is not None:
                self.dossiers[event.aanvraag_id] = dossier
            if not ontvangers:
                return
            body = envelope.to_json()
            planned = {(b.abonnement_id, b.event_id) for b in self.bezorgingen_.values()}
            for abonnement_id in ontvangers:
                if (abonnement_id, envelope.id) in planned:
                    continue
                made = _Bezorging(
                    bezorging_id=bezorging_id(abonnement_id, envelope.id),
                    abonnement_id=abonnement_id,
                    event_id=envelope.id,
                    event_type=envelope.type,
                    aanvraag_id=event.aanvraag_id,
                    body=body,
                    status="gepland",
                    volgende_poging=now,
                    aangemaakt_op=now,
                )
                self.bezorgingen_[made.bezorging_id] = made

    def plannen_batch(
        self,
        consumer: str,
        messages: Sequence[tuple[public.PublicEvent, CloudEvent]],
        now: datetime,
        kies: Kies,
    ) -> None:
        """``plannen`` of each message in turn, one already in the inbox left out. Not one
        unit: when ``kies`` raises, the messages before it stay planned, each with its inbox
        entry, so handling them again one by one (as the consumer does then) plans nothing
        twice."""
        for event, envelope in messages:
            with contextlib.suppress(AlreadyProcessed):
                self.plannen(consumer, event, envelope, now, kies)

    def _register(self, event: public.PublicEvent) -> tuple[str | None, bool] | None:
        """The dossier's register entry with what the event tells (not stored yet), or None."""
        if event.aanvraag_id is None:
            return None
        known = self.dossiers.get(event.aanvraag_id)
        if isinstance(event, public.AanvraagIngediend | public.RapportVrijgegeven):
            vrijgegeven = isinstance(event, public.RapportVrijgegeven)
            return event.organisatie_code, (known is not None and known[1]) or vrijgegeven
        return known

    # --- sending (the worker) ------------------------------------------------------------------

    def claim_due(self, now: datetime, limit: int, hold: timedelta) -> list[Claim]:
        """Claim due deliveries; no other sender takes them meanwhile."""
        claim = uuid4()
        with self._lock:
            due = sorted(
                (
                    b
                    for b in self.bezorgingen_.values()
                    if b.status == "gepland"
                    and b.volgende_poging is not None
                    and b.volgende_poging <= now
                    and (b.geclaimd_tot is None or b.geclaimd_tot < now)
                ),
                key=lambda b: (b.volgende_poging or now, b.bezorging_id),
            )[:limit]
            claims = []
            for b in due:
                b.claim, b.geclaimd_tot = claim, now + hold
                row = self.abonnementen_[b.abonnement_id]
                claims.append(
                    Claim(
                        bezorging_id=b.bezorging_id,
                        abonnement_id=b.abonnement_id,
                        event_id=b.event_id,
                        body=b.body,
                        callback_url=row.abonnement.callback_url,
                        secret_key_id=row.secret_key_id,
                        secret=row.secret,
                        pogingen=b.pogingen,
                        ronde_start=b.ronde_start,
                        claim=claim,
                    )
                )
        return claims

    def vervallen(self, claim: Claim) -> None:
        """A claimed delivery lapses (its subscription is gone)."""
        with self._lock:
            b = self.bezorgingen_.get(claim.bezorging_id)
            if b is not None and b.claim == claim.claim:
                b.status, b.volgende_poging, b.claim, b.geclaimd_tot = "vervallen", None, None, None

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
        poging = claim.pogingen + 1
        with self._lock:
            b = self.bezorgingen_.get(claim.bezorging_id)
            if b is None or b.claim != claim.claim or b.status != "gepland":
                return None
            b.pogingen, b.status, b.volgende_poging = poging, status, volgende
            b.claim, b.geclaimd_tot = None, None
            if uitkomst.geslaagd:
                b.afgeleverd_op = now
            b.log.append(
                Poging(
                    poging=poging,
                    op=now,
                    duur_ms=uitkomst.duur_ms,
                    status_code=uitkomst.status_code,
                    fout=uitkomst.fout,
                    geslaagd=uitkomst.geslaagd,
                )
            )
            row = self.abonnementen_.get(claim.abonnement_id)
            if row is None:
                return None
            a = row.abonnement
            update: dict[str, object]
            if uitkomst.geslaagd:
                update = {"opeenvolgende_fouten": 0, "falend_sinds": None}
            else:
                update = {
                    "opeenvolgende_fouten": a.opeenvolgende_fouten + 1,
                    "falend_sinds": a.falend_sinds or now,
                    "laatste_fout": uitkomst.reden,
                }
            row.abonnement = a = a.model_copy(update=update)
            return Gezondheid(
                status=a.status,
                versie=row.versie,
                opeenvolgende_fouten=a.opeenvolgende_fouten,
                falend_sinds=a.falend_sinds,
                organisatie_code=a.organisatie_code,
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
        with self._lock:
            found = [
                b.view()
                for b in self.bezorgingen_.values()
                if (abonnement_id is None or b.abonnement_id == abonnement_id)
                and (bezorging_id is None or b.bezorging_id == bezorging_id)
                and (status is None or b.status == status)
            ]
        found.sort(key=lambda b: b.bezorging_id)
        found.sort(key=lambda b: b.aangemaakt_op, reverse=True)
        return found[:limit]

    def opnieuw(self, bezorging_id: UUID, now: datetime) -> bool:
        """Plan a delivery again now on a fresh schedule; False when its subscription is gone."""
        with self._lock:
            b = self.bezorgingen_.get(bezorging_id)
            row = None if b is None else self.abonnementen_.get(b.abonnement_id)
            if b is None or row is None or row.abonnement.status == "verwijderd":
                return False
            replaced = replace(b, status="gepland", volgende_poging=now, ronde_start=b.pogingen)
            if b.geclaimd_tot is None or b.geclaimd_tot < now:  # a held claim is kept
                replaced.claim, replaced.geclaimd_tot = None, None
            self.bezorgingen_[bezorging_id] = replaced
            return True

    def abonnement_van(self, bezorging_id: UUID) -> UUID | None:
        """The subscription of a delivery, or None when the delivery is unknown."""
        b = self.bezorgingen_.get(bezorging_id)
        return None if b is None else b.abonnement_id


def memory_webhook_store(app: ServiceApplication) -> MemoryWebhookStore:
    """The webhook store in memory (the application on the in-memory store)."""
    return MemoryWebhookStore()
