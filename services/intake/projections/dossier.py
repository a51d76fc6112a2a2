"""The dossier projection: each case rebuilt from the public events of all services.

The projection keeps every public event of a dossier (``dossier_events``, also the dossier's audit
trail) and a folded view per dossier (``dossiers``). Folding always starts from all the dossier's
events in the order they were recorded (``recorded_order``), so the view does not depend on the
order in which the stream delivered them, and a replay gives the same result as live processing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from itertools import groupby
from typing import Any, Literal, NamedTuple, TypeVar
from uuid import UUID

from psycopg.rows import DictRow
from psycopg.sql import SQL, Composed, Identifier
from pydantic import BaseModel, ConfigDict

from shared.contracts import events as ev
from shared.contracts.envelope import CloudEvent
from shared.contracts.registry import model_for_type
from shared.platform.consumer import Delivery, Subscription
from shared.platform.eventstore import ServiceApplication

EVENTS = Identifier("intake", "dossier_events")
DOSSIERS = Identifier("intake", "dossiers")
#: The read model's access index (who may see a dossier; its tables in ``read_model``): the
#: bestuurder's list is the dossiers its e-mail hash is bound to there.
ACCESS = Identifier("intake", "dossier_access")

DDL = (
    "CREATE TABLE IF NOT EXISTS {schema}.dossier_events ("
    " event_id text PRIMARY KEY, aanvraag_id uuid NOT NULL, type text NOT NULL,"
    " time timestamptz NOT NULL, stream_sequence bigint, envelope jsonb NOT NULL,"
    " received_at timestamptz NOT NULL DEFAULT now())",
    # The event's place in its service's log (``notification_id * 64 + index``, from the relay's
    # Weerbaar-Position header; NULL when the message had none): orders events of one moment.
    "ALTER TABLE {schema}.dossier_events ADD COLUMN IF NOT EXISTS log_position bigint",
    "CREATE INDEX IF NOT EXISTS dossier_events_dossier ON {schema}.dossier_events"
    " (aanvraag_id, time, event_id)",
    "CREATE TABLE IF NOT EXISTS {schema}.dossiers ("
    " aanvraag_id uuid PRIMARY KEY, zichtbaar boolean NOT NULL DEFAULT false, status text,"
    " organisatie_code text, contact_deadline timestamptz,"
    " deadline_verstreken boolean NOT NULL DEFAULT false, ingediend_op timestamptz,"
    " bijgewerkt_op timestamptz, view jsonb)",
    "CREATE INDEX IF NOT EXISTS dossiers_status ON {schema}.dossiers (status, ingediend_op)",
    "CREATE INDEX IF NOT EXISTS dossiers_organisatie ON {schema}.dossiers"
    " (organisatie_code, ingediend_op)",
    # The list without a filter, and the secretariat's overdue dossiers, newest first: without
    # these the list sorts every dossier (a sequential scan: ~100 ms at 100,000 dossiers).
    "CREATE INDEX IF NOT EXISTS dossiers_ingediend ON {schema}.dossiers (ingediend_op)",
    "CREATE INDEX IF NOT EXISTS dossiers_verstreken ON {schema}.dossiers"
    " (deadline_verstreken, ingediend_op)",
    "CREATE TABLE IF NOT EXISTS {schema}.uitvoering_events ("
    " event_id text PRIMARY KEY, aanvraag_id uuid NOT NULL, envelope jsonb NOT NULL)",
    "CREATE INDEX IF NOT EXISTS uitvoering_events_dossier ON {schema}.uitvoering_events"
    " (aanvraag_id)",
)

UITVOERING = Identifier("intake", "uitvoering_events")

#: What the closing process listens to: the measures of each version, the approval, the execution.
UITVOERING_SUBJECTS = (
    "weerbaar.assessment.RapportOpgesteld.*",
    "weerbaar.assessment.RapportHerzien.*",
    "weerbaar.approval.RapportGoedgekeurd.*",
    "weerbaar.assessment.MaatregelUitgevoerd.*",
)

Status = Literal[
    "ingediend",
    "contact_opgenomen",
    "gesprekken_gepland",
    "gesprekken_gevoerd",
    "rapport_in_opstelling",
    "ter_toetsing",
    "afgekeurd",
    "goedgekeurd",
    "vrijgegeven",
    "instemming_geweigerd",
    "in_uitvoering",
    "afgesloten",
    "ingetrokken",
]


#: Where a dossier can be once the bestuurder decided on consent: carrying out measures moves it
#: to in_uitvoering from here, and only from here.
_NA_INSTEMMINGSBESLUIT = frozenset({"vrijgegeven", "instemming_geweigerd", "in_uitvoering"})


class TijdlijnRegel(BaseModel):
    """One line of the dossier's timeline: what happened, when, by which role."""

    model_config = ConfigDict(frozen=True)

    tijd: datetime
    gebeurtenis: str
    dienst: str
    rol: str | None = None
    actor_id: str | None = None


class Notificatie(BaseModel):
    """A notification the dossier caused (never its address or content)."""

    model_config = ConfigDict(frozen=True)

    notificatie_id: str
    soort: str
    status: Literal["verzonden", "mislukt", "definitief_mislukt"]
    op: datetime


class Afspraak(BaseModel):
    """An appointment as announced by scheduling (the video link stays there)."""

    model_config = ConfigDict(frozen=True)

    afspraak_id: UUID
    soort: str
    vorm: str
    gepland_op: datetime
    duur_minuten: int
    adviseur_id: str
    status: Literal["gepland", "geannuleerd", "gevoerd"] = "gepland"
    keer_verzet: int = 0
    gevoerd_op: datetime | None = None
    woningscan_uitgevoerd_op: datetime | None = None


class RapportVersie(BaseModel):
    """One version of the report and what was decided about it (never its content)."""

    model_config = ConfigDict(frozen=True)

    versie: int
    opgesteld_op: datetime
    aantal_maatregelen: int
    ter_toetsing_op: datetime | None = None
    inhoud_hash: str | None = None
    besluit: Literal["goedgekeurd", "afgekeurd"] | None = None
    besluit_op: datetime | None = None
    aantal_redenen: int | None = None


class Rapport(BaseModel):
    """The report's versions, decisions, consent and release."""

    model_config = ConfigDict(frozen=True)

    rapport_id: UUID
    versies: tuple[RapportVersie, ...] = ()
    goedgekeurde_versie: int | None = None
    verstrekt_aan_bestuurder_op: datetime | None = None
    instemming: Literal["gegeven", "geweigerd"] | None = None
    vrijgegeven_op: datetime | None = None
    keer_ingezien: int = 0


class Maatregel(BaseModel):
    """A measure of the approved report: who carries it out, whether it is done, who pays."""

    model_config = ConfigDict(frozen=True)

    maatregel_id: UUID
    domein: str
    kosten: Literal["kosteloos", "met_kosten"]
    uitvoerder: Literal["bestuurder", "werkgever"]
    prioriteit: str
    uitgevoerd_op: datetime | None = None
    uitgevoerd_door: str | None = None
    betaalt: Literal["direct_uitvoerbaar", "werkgever", "wacht_op_pkvw"] | None = None


class Pkvw(BaseModel):
    """The Politiekeurmerk Veilig Wonen track, in parallel with the research."""

    model_config = ConfigDict(frozen=True)

    status: Literal["geen", "verklaring", "certificaat"] = "geen"
    geldig_tot: date | None = None
    gewijzigd_op: datetime | None = None


class Dossier(BaseModel):
    """The case as every service has announced it."""

    model_config = ConfigDict(frozen=True)

    aanvraag_id: UUID
    status: Status
    ingediend_op: datetime
    ingediend_door: str
    organisatie_code: str
    binnen_regeling: bool
    buiten_regeling_reden: str | None = None
    verhuizing_gepland: bool
    contact_deadline: datetime | None = None
    contact_op: datetime | None = None
    contact_binnen_termijn: bool | None = None
    deadline_verstreken: bool = False
    deadline_verstreken_op: datetime | None = None
    afspraken: tuple[Afspraak, ...] = ()
    toelichtingen: tuple[TijdlijnRegel, ...] = ()
    rapport: Rapport | None = None
    pkvw: Pkvw = Pkvw()
    maatregelen: tuple[Maatregel, ...] = ()
    ingetrokken_op: datetime | None = None
    afgesloten_op: datetime | None = None
    afsluit_reden: str | None = None
    persoonsgegevens_vergeten_op: datetime | None = None
    bewaarplicht: str | None = None
    notificaties: tuple[Notificatie, ...] = ()
    tijdlijn: tuple[TijdlijnRegel, ...] = ()

    def met_betalers(self, today: date) -> Dossier:
        """The dossier with, per measure, who pays today (a PKVW certificate can expire)."""
        geldig = (
            self.pkvw.status == "certificaat"
            and self.pkvw.geldig_tot is not None
            and today <= self.pkvw.geldig_tot
        )
        maatregelen = tuple(
            m.model_copy(update={"betaalt": betaler(m.kosten, geldig)}) for m in self.maatregelen
        )
        return self.model_copy(update={"maatregelen": maatregelen})


def betaler(
    kosten: str, pkvw_geldig: bool
) -> Literal["direct_uitvoerbaar", "werkgever", "wacht_op_pkvw"]:
    """Who pays a measure: free ones can be done at once; the werkgever pays the others once
    the bestuurder holds a valid PKVW certificate."""
    if kosten == "kosteloos":
        return "direct_uitvoerbaar"
    return "werkgever" if pkvw_geldig else "wacht_op_pkvw"


def _name(envelope: CloudEvent) -> str:
    return envelope.type.split(".")[-2]


class Place(NamedTuple):
    """Where the projection has an event: the stream sequence it kept (that of the event's first
    arrival, or its log place for a rebuild from the logs) and its place in its service's log
    (None when unknown)."""

    sequence: int
    log_position: int | None = None


_NOWHERE = Place(0)
T = TypeVar("T")


def recorded_order(
    items: Iterable[T],
    *,
    time: Callable[[T], datetime],
    source: Callable[[T], str],
    ident: Callable[[T], str],
    place: Callable[[T], Place],
) -> list[T]:
    """Public events in the order they were recorded: by time; the events of one moment of one
    service in the order of its log; the services' events of one moment interleaved by the stream
    sequence kept (the order they arrived).

    The stream sequence alone is not the log's order: after the broker lost its store and a
    relay published its log again, an event that arrived before the loss keeps its old (high)
    sequence while a later event of the same moment gets a new (low) one. Log places of
    different services cannot be compared, so they only order within a service.
    """

    def by_arrival(item: T) -> tuple[int, str]:
        return place(item).sequence, ident(item)

    out: list[T] = []
    for _, moment in groupby(sorted(items, key=lambda i: (time(i), *by_arrival(i))), key=time):
        events = list(moment)
        if len(events) == 1:
            out.extend(events)
            continue
        lanes: dict[tuple[str, str], list[T]] = {}
        for item in events:  # in order of arrival; an event without a log place is alone
            known = place(item).log_position is not None
            lanes.setdefault((source(item), "" if known else ident(item)), []).append(item)
        queues = [
            deque(sorted(lane, key=lambda i: place(i).log_position or 0)) for lane in lanes.values()
        ]
        while queues:
            first = min(queues, key=lambda q: by_arrival(q[0]))
            out.append(first.popleft())
            if not first:
                queues.remove(first)
    return out


def fold(
    envelopes: Iterable[CloudEvent], places: Mapping[str, Place] | None = None
) -> Dossier | None:
    """The dossier after these events (any order in, the order recorded applied; see
    ``recorded_order``); None before intake's.

    Events recorded together share a timestamp; their places, when given, keep them in the order
    they were recorded.
    """
    known = places or {}
    ordered = recorded_order(
        envelopes,
        time=lambda e: e.time,
        source=lambda e: e.source,
        ident=lambda e: e.id,
        place=lambda e: known.get(e.id, _NOWHERE),
    )
    if not any(_name(e) == "AanvraagIngediend" for e in ordered):
        return None
    folding = _Fold()
    tijdlijn: list[TijdlijnRegel] = []
    # AanvraagIngediend first: another service's event may carry an earlier timestamp.
    ordered.sort(key=lambda e: _name(e) != "AanvraagIngediend")
    for envelope in ordered:
        name = _name(envelope)
        if name != "ToegangGeweigerd":
            tijdlijn.append(
                TijdlijnRegel(
                    tijd=envelope.time,
                    gebeurtenis=name,
                    dienst=envelope.source.rsplit(":", 1)[-1],
                    rol=envelope.actorrole,
                    actor_id=envelope.actorid,
                )
            )
        folding.apply(envelope)
    state = folding.collected()
    state["tijdlijn"] = tuple(sorted(tijdlijn, key=lambda r: r.tijd))  # stable: ties keep order
    return Dossier.model_validate(state)


def uitvoering(envelopes: Iterable[CloudEvent]) -> tuple[int, int]:
    """(measures of the approved report, how many of them are carried out)."""
    folding = _Fold(status="ingediend")
    for envelope in sorted(envelopes, key=lambda e: (e.time, e.id)):
        folding.apply(envelope)
    maatregelen = folding.collected()["maatregelen"]
    return len(maatregelen), sum(1 for m in maatregelen if m.uitgevoerd_op is not None)


_Handler = Callable[["_Fold", Any, CloudEvent], None]
#: One handler per public event type the dossier shows.
_HANDLERS: dict[type[ev.PublicEvent], _Handler] = {}
#: The public event types that change nothing in the dossier (its audit trail keeps them): every
#: public event is either handled or named here, so a new one is a decision
#: (``tests/unit/test_adding_an_event.py``).
NOT_SHOWN: frozenset[type[ev.PublicEvent]] = frozenset(
    {
        ev.ToegangGeweigerd,  # refusals: the audit trail's, not the dossier's
        ev.ToegangGeweigerdV2,
        ev.PersoonsgegevensVerstrekt,  # hand-outs of personal data: the audit trail's
        ev.GegevensVernietigd,  # the retention's destroying of kept public events
        ev.WebhookAbonnementGefaald,  # an organisation's webhook states: no dossier's
        ev.WebhookAbonnementHersteld,
    }
)


def _handles(*types: type[ev.PublicEvent]) -> Callable[[_Handler], _Handler]:
    def register(handler: _Handler) -> _Handler:
        for event_type in types:
            _HANDLERS[event_type] = handler
        return handler

    return register


class _Fold:
    """A dossier while its events are folded into it, one handler per event type."""

    def __init__(self, status: str | None = None) -> None:
        self.state: dict[str, Any] = {} if status is None else {"status": status}
        self.notificaties: dict[UUID, Notificatie] = {}
        self.afspraken: dict[UUID, dict[str, Any]] = {}
        self.toelichtingen: list[TijdlijnRegel] = []
        self.rapport: dict[str, Any] | None = None
        self.versies: dict[int, dict[str, Any]] = {}
        self.maatregelen_per_versie: dict[int, tuple[ev.MaatregelSamenvatting, ...]] = {}
        self.uitgevoerd: dict[UUID, tuple[datetime, str]] = {}
        self.pkvw: dict[str, Any] = {"status": "geen"}

    def apply(self, envelope: CloudEvent) -> None:
        """Fold one event in: its envelope's data as the contract's model of its type."""
        model = model_for_type(envelope.type)
        handler = _HANDLERS.get(model)
        if handler is not None:
            handler(self, model.model_validate(envelope.data), envelope)

    @property
    def status(self) -> str | None:
        status = self.state.get("status")
        return None if status is None else str(status)

    def to(self, new: str) -> None:
        """Move the dossier on, unless it has ended (withdrawn or closed)."""
        if self.status not in {"ingetrokken", "afgesloten"}:
            self.state["status"] = new

    def collected(self) -> dict[str, Any]:
        rapport = None
        goedgekeurd: int | None = None
        if self.rapport is not None:
            goedgekeurd = self.rapport.get("goedgekeurde_versie")
            rapport = Rapport.model_validate(
                {**self.rapport, "versies": [self.versies[v] for v in sorted(self.versies)]}
            )
        maatregelen = []
        if goedgekeurd is not None:
            for m in self.maatregelen_per_versie.get(goedgekeurd, ()):
                done = self.uitgevoerd.get(m.maatregel_id)
                maatregelen.append(
                    Maatregel.model_validate(
                        {
                            **m.model_dump(mode="json"),
                            "uitgevoerd_op": done[0] if done else None,
                            "uitgevoerd_door": done[1] if done else None,
                        }
                    )
                )
        return {
            **self.state,
            "notificaties": tuple(self.notificaties.values()),
            "afspraken": tuple(Afspraak.model_validate(a) for a in self.afspraken.values()),
            "toelichtingen": tuple(self.toelichtingen),
            "rapport": rapport,
            "pkvw": Pkvw.model_validate(self.pkvw),
            "maatregelen": tuple(maatregelen),
        }

    def beide(self, *statussen: str) -> bool:
        """Whether both conversations (werkgever and bestuurder) are in one of these states."""
        soorten = {
            a["soort"] for a in self.afspraken.values() if a.get("status", "gepland") in statussen
        }
        return {"gesprek_werkgever", "gesprek_bestuurder"} <= soorten

    # --- intake ----------------------------------------------------------------------------------

    @_handles(ev.AanvraagIngediend)
    def _ingediend(self, event: ev.AanvraagIngediend, envelope: CloudEvent) -> None:
        self.state.update(
            aanvraag_id=event.aanvraag_id,
            status=self.status or "ingediend",
            ingediend_op=event.ingediend_op,
            ingediend_door=event.ingediend_door,
            organisatie_code=event.organisatie_code,
            binnen_regeling=event.binnen_regeling,
            verhuizing_gepland=event.verhuizing_gepland,
        )

    @_handles(ev.AanvraagBuitenRegeling)
    def _buiten_regeling(self, event: ev.AanvraagBuitenRegeling, envelope: CloudEvent) -> None:
        self.state["buiten_regeling_reden"] = event.reden

    @_handles(ev.AanvraagIngetrokken)
    def _ingetrokken(self, event: ev.AanvraagIngetrokken, envelope: CloudEvent) -> None:
        self.to("ingetrokken")
        self.state["ingetrokken_op"] = event.ingetrokken_op

    @_handles(ev.DossierAfgesloten)
    def _afgesloten(self, event: ev.DossierAfgesloten, envelope: CloudEvent) -> None:
        self.to("afgesloten")
        self.state["afgesloten_op"] = event.afgesloten_op
        self.state["afsluit_reden"] = event.reden

    @_handles(ev.PersoonsgegevensVergeten)
    def _vergeten(self, event: ev.PersoonsgegevensVergeten, envelope: CloudEvent) -> None:
        self.state["persoonsgegevens_vergeten_op"] = event.vergeten_op

    @_handles(ev.BewaarplichtOpgelegd)
    def _bewaarplicht(self, event: ev.BewaarplichtOpgelegd, envelope: CloudEvent) -> None:
        self.state["bewaarplicht"] = event.reden

    @_handles(ev.BewaarplichtOpgeheven)
    def _bewaarplicht_opgeheven(
        self, event: ev.BewaarplichtOpgeheven, envelope: CloudEvent
    ) -> None:
        self.state["bewaarplicht"] = None

    # --- scheduling ------------------------------------------------------------------------------

    @_handles(ev.ContacttermijnGesteld)
    def _termijn(self, event: ev.ContacttermijnGesteld, envelope: CloudEvent) -> None:
        self.state["contact_deadline"] = event.deadline

    @_handles(ev.ContactOpgenomen)
    def _contact(self, event: ev.ContactOpgenomen, envelope: CloudEvent) -> None:
        self.state["contact_op"] = event.contact_op
        self.state["contact_binnen_termijn"] = event.binnen_termijn
        if self.status == "ingediend":
            self.to("contact_opgenomen")

    @_handles(ev.ContacttermijnVerstreken)
    def _verstreken(self, event: ev.ContacttermijnVerstreken, envelope: CloudEvent) -> None:
        self.state["deadline_verstreken"] = True
        self.state["deadline_verstreken_op"] = event.vastgesteld_op
        self.state.setdefault("contact_deadline", event.deadline)

    @_handles(ev.AfspraakGepland)
    def _gepland(self, event: ev.AfspraakGepland, envelope: CloudEvent) -> None:
        self.afspraken[event.afspraak_id] = {
            "afspraak_id": event.afspraak_id,
            "soort": event.soort,
            "vorm": event.vorm,
            "gepland_op": event.gepland_op,
            "duur_minuten": event.duur_minuten,
            "adviseur_id": event.adviseur_id,
        }
        if self.status == "contact_opgenomen" and self.beide("gepland", "gevoerd"):
            self.to("gesprekken_gepland")

    @_handles(ev.AfspraakVerzet)
    def _verzet(self, event: ev.AfspraakVerzet, envelope: CloudEvent) -> None:
        afspraak = self.afspraken.get(event.afspraak_id)
        if afspraak is not None:
            afspraak["gepland_op"] = event.gepland_op
            afspraak["keer_verzet"] = afspraak.get("keer_verzet", 0) + 1

    @_handles(ev.AfspraakGeannuleerd)
    def _geannuleerd(self, event: ev.AfspraakGeannuleerd, envelope: CloudEvent) -> None:
        afspraak = self.afspraken.get(event.afspraak_id)
        if afspraak is not None:
            afspraak["status"] = "geannuleerd"

    @_handles(ev.GesprekGevoerd)
    def _gevoerd(self, event: ev.GesprekGevoerd, envelope: CloudEvent) -> None:
        afspraak = self.afspraken.get(event.afspraak_id)
        if afspraak is None:
            return
        afspraak["status"] = "gevoerd"
        afspraak["gevoerd_op"] = event.gevoerd_op
        if self.status in {"contact_opgenomen", "gesprekken_gepland"} and self.beide("gevoerd"):
            self.to("gesprekken_gevoerd")

    @_handles(ev.WoningscanUitgevoerd)
    def _woningscan(self, event: ev.WoningscanUitgevoerd, envelope: CloudEvent) -> None:
        afspraak = self.afspraken.get(event.afspraak_id)
        if afspraak is not None:
            afspraak["woningscan_uitgevoerd_op"] = event.uitgevoerd_op

    @_handles(ev.ToelichtingAangevraagd)
    def _toelichting(self, event: ev.ToelichtingAangevraagd, envelope: CloudEvent) -> None:
        self.toelichtingen.append(
            TijdlijnRegel(
                tijd=event.aangevraagd_op,
                gebeurtenis="ToelichtingAangevraagd",
                dienst="scheduling",
                rol=event.aangevraagd_door,
            )
        )

    # --- assessment ------------------------------------------------------------------------------

    @_handles(ev.RapportOpgesteld, ev.RapportHerzien)
    def _versie(self, event: ev.RapportOpgesteld | ev.RapportHerzien, envelope: CloudEvent) -> None:
        self.rapport = self.rapport or {"rapport_id": event.rapport_id}
        self.versies[event.versie] = {
            "versie": event.versie,
            "opgesteld_op": envelope.time,
            "aantal_maatregelen": event.aantal_maatregelen,
        }
        self.maatregelen_per_versie[event.versie] = event.maatregelen
        self.to("rapport_in_opstelling")

    @_handles(ev.RapportTerToetsingAangeboden)
    def _ter_toetsing(self, event: ev.RapportTerToetsingAangeboden, envelope: CloudEvent) -> None:
        if event.versie in self.versies:
            self.versies[event.versie].update(
                ter_toetsing_op=envelope.time, inhoud_hash=event.inhoud_hash
            )
            self.to("ter_toetsing")

    @_handles(ev.RapportIngezien)
    def _ingezien(self, event: ev.RapportIngezien, envelope: CloudEvent) -> None:
        if self.rapport is not None:
            self.rapport["keer_ingezien"] = self.rapport.get("keer_ingezien", 0) + 1

    @_handles(ev.PkvwStatusGewijzigd)
    def _pkvw(self, event: ev.PkvwStatusGewijzigd, envelope: CloudEvent) -> None:
        self.pkvw = {
            "status": event.status,
            "geldig_tot": event.geldig_tot,
            "gewijzigd_op": envelope.time,
        }

    @_handles(ev.MaatregelUitgevoerd)
    def _uitgevoerd(self, event: ev.MaatregelUitgevoerd, envelope: CloudEvent) -> None:
        self.uitgevoerd[event.maatregel_id] = (event.uitgevoerd_op, event.uitgevoerd_door)
        # Before the bestuurder decided on consent the dossier stays goedgekeurd (it waits on
        # that decision: the secretariat's list of pending consents); the decision then moves
        # it straight on to in_uitvoering.
        if self.status in _NA_INSTEMMINGSBESLUIT:
            self.to("in_uitvoering")

    # --- approval --------------------------------------------------------------------------------

    @_handles(ev.RapportGoedgekeurd)
    def _goedgekeurd(self, event: ev.RapportGoedgekeurd, envelope: CloudEvent) -> None:
        if event.versie in self.versies:
            self.versies[event.versie].update(
                besluit="goedgekeurd", besluit_op=envelope.time, aantal_redenen=None
            )
            assert self.rapport is not None
            self.rapport["goedgekeurde_versie"] = event.versie
            self.to("goedgekeurd")

    @_handles(ev.RapportAfgekeurd)
    def _afgekeurd(self, event: ev.RapportAfgekeurd, envelope: CloudEvent) -> None:
        if event.versie in self.versies:
            self.versies[event.versie].update(
                besluit="afgekeurd", besluit_op=envelope.time, aantal_redenen=event.aantal_redenen
            )
            self.to("afgekeurd")

    @_handles(ev.RapportVerstrektAanBestuurder)
    def _verstrekt(self, event: ev.RapportVerstrektAanBestuurder, envelope: CloudEvent) -> None:
        if self.rapport is not None:
            self.rapport["verstrekt_aan_bestuurder_op"] = envelope.time

    @_handles(ev.InstemmingGegeven)
    def _instemming(self, event: ev.InstemmingGegeven, envelope: CloudEvent) -> None:
        if self.rapport is not None:
            self.rapport["instemming"] = "gegeven"

    @_handles(ev.InstemmingGeweigerd)
    def _geweigerd(self, event: ev.InstemmingGeweigerd, envelope: CloudEvent) -> None:
        if self.rapport is not None:
            self.rapport["instemming"] = "geweigerd"
            if self.status == "goedgekeurd":
                self.to("in_uitvoering" if self.uitgevoerd else "instemming_geweigerd")

    @_handles(ev.RapportVrijgegeven)
    def _vrijgegeven(self, event: ev.RapportVrijgegeven, envelope: CloudEvent) -> None:
        if self.rapport is not None:
            self.rapport["vrijgegeven_op"] = envelope.time
            if self.status in {"goedgekeurd", "instemming_geweigerd"}:
                self.to("in_uitvoering" if self.uitgevoerd else "vrijgegeven")

    # --- notifications ---------------------------------------------------------------------------

    @_handles(ev.NotificatieVerzonden, ev.NotificatieMislukt)
    def _notificatie(
        self, event: ev.NotificatieVerzonden | ev.NotificatieMislukt, envelope: CloudEvent
    ) -> None:
        status: Literal["verzonden", "mislukt", "definitief_mislukt"] = "verzonden"
        if isinstance(event, ev.NotificatieMislukt):
            status = "definitief_mislukt" if event.definitief else "mislukt"
        self.notificaties[event.notificatie_id] = Notificatie(
            notificatie_id=str(event.notificatie_id),
            soort=event.soort,
            status=status,
            op=envelope.time,
        )


class DossierProjection:
    """Writes the projection; exactly-once per event id, also with several replicas at once."""

    def __init__(self, app: ServiceApplication) -> None:
        self.app = app

    def handle(self, delivery: Delivery) -> None:
        """Consumer handler: store the event and refold its dossier in one transaction (a batch
        of one: the consumer hands over one message at a time on redeliveries and after a
        failed batch)."""
        self.handle_batch([delivery])

    def handle_batch(self, deliveries: Sequence[Delivery]) -> None:
        """Consumer batch handler: the same effect as ``handle`` on each delivery, in one
        transaction, with each dossier folded once (not once per event).

        The dossiers' rows are locked in one order (their ids sorted), so two replicas handling
        overlapping batches wait for each other instead of deadlocking.
        """
        by_dossier: dict[UUID, list[Delivery]] = {}
        for delivery in deliveries:
            aanvraag_id = delivery.event.aanvraag_id
            if aanvraag_id is not None:
                by_dossier.setdefault(aanvraag_id, []).append(delivery)
        if not by_dossier:
            return
        ids = sorted(by_dossier)
        rows = [
            (
                d.envelope.id,
                aanvraag_id,
                d.envelope.type,
                d.envelope.time,
                d.stream_sequence,
                None if d.position is None else d.position.log_position,
                d.envelope.to_json().decode(),
            )
            for aanvraag_id in ids
            for d in by_dossier[aanvraag_id]
        ]
        with self.app.datastore.transaction(commit=True) as curs:
            curs.execute(
                SQL(
                    "INSERT INTO {} (aanvraag_id) SELECT unnest(%s::uuid[]) ON CONFLICT DO NOTHING"
                ).format(DOSSIERS),
                (ids,),
            )
            curs.execute(
                SQL(
                    "SELECT 1 FROM {} WHERE aanvraag_id = ANY(%s) ORDER BY aanvraag_id FOR UPDATE"
                ).format(DOSSIERS),
                (ids,),
            )
            changed = sorted(set(store_events(curs, EVENTS, rows)))
            if not changed:
                return  # every one a redelivery: already in the projection
            purge_destroyed(curs, changed, EVENTS, UITVOERING)
            refold_many(curs, changed, EVENTS, DOSSIERS)


def store_events(curs: Any, table: Identifier, rows: Sequence[tuple[Any, ...]]) -> list[UUID]:
    """Keep public events (rows of event id, dossier id, type, time, stream sequence, log place
    and the envelope's JSON) in one statement; the dossier of every event stored (one entry per
    event the projection did not have). The cursor returns rows as dicts."""
    curs.execute(
        SQL(
            "INSERT INTO {} (event_id, aanvraag_id, type, time, stream_sequence, log_position,"
            " envelope) SELECT * FROM unnest(%b::text[], %b::uuid[], %b::text[],"
            " %b::timestamptz[], %b::bigint[], %b::bigint[], %b::text[]::jsonb[])"
            " ON CONFLICT (event_id) DO NOTHING RETURNING aanvraag_id"
        ).format(table),
        # Every column as a binary array (%b): the text format escapes every element (a regular
        # expression over every id, type and time; every quote of every JSON document), which
        # cost more than the rest of the statement.
        [list(column) for column in zip(*rows, strict=True)],
    )
    return [row["aanvraag_id"] for row in curs.fetchall()]


def refold_many(
    curs: Any, aanvraag_ids: Sequence[UUID], events: Identifier, dossiers: Identifier
) -> None:
    """``refold`` for several dossiers (each once) whose rows the caller holds locked: one read,
    a fold each, and one write for them all."""
    write_dossiers(curs, fold_many(curs, aanvraag_ids, events), dossiers)


def fold_many(
    curs: Any, aanvraag_ids: Sequence[UUID], events: Identifier
) -> list[tuple[UUID, Dossier | None]]:
    """Several dossiers folded from the events the projection holds of them, read in one query
    (the cursor returns rows as dicts); in the order of ``aanvraag_ids``."""
    curs.execute(
        SQL(
            "SELECT aanvraag_id, envelope, stream_sequence, log_position FROM {}"
            " WHERE aanvraag_id = ANY(%s)"
        ).format(events),
        (list(aanvraag_ids),),
    )
    grouped: dict[UUID, list[Mapping[str, Any]]] = {a: [] for a in aanvraag_ids}
    for row in curs.fetchall():
        grouped[row["aanvraag_id"]].append(row)
    return [(a, fold_rows(grouped[a])) for a in aanvraag_ids]


DESTROYED_TYPE = "nl.weerbaarbestuur.GegevensVernietigd.v1"


def purge_destroyed(
    curs: Any, aanvraag_id: UUID | Sequence[UUID], events: Identifier, uitvoering: Identifier
) -> None:
    """Remove what a recorded destruction (GegevensVernietigd) covers: every entry of its type
    recorded up to its ``tot``, of one dossier or several. Retention deleted them already; this
    keeps them out when they come again (a redelivery, a rebuild from the event stores or the
    stream)."""
    ids = [aanvraag_id] if isinstance(aanvraag_id, UUID) else list(aanvraag_id)
    # Nearly always none of them has a destruction on record: one cheap look instead of the two
    # deletes (the costliest statements of a registration's projection otherwise).
    curs.execute(
        SQL("SELECT 1 FROM {} WHERE aanvraag_id = ANY(%s) AND type = %s LIMIT 1").format(events),
        (ids, DESTROYED_TYPE),
    )
    if curs.fetchone() is None:
        return
    covered = SQL(
        "SELECT e.event_id FROM {events} e JOIN {events} d ON d.aanvraag_id = e.aanvraag_id"
        " WHERE e.aanvraag_id = ANY(%(ids)s) AND d.type = %(destroyed)s"
        " AND split_part(e.type, '.', 3) = d.envelope->'data'->>'soort'"
        " AND e.time <= (d.envelope->'data'->>'tot')::timestamptz"
    ).format(events=events)
    for table in (uitvoering, events):
        curs.execute(
            SQL("DELETE FROM {} WHERE aanvraag_id = ANY(%(ids)s) AND event_id IN ({})").format(
                table, covered
            ),
            {"ids": ids, "destroyed": DESTROYED_TYPE},
        )


def refold(curs: Any, aanvraag_id: UUID, events: Identifier, dossiers: Identifier) -> None:
    """Fold the dossier from every event the projection holds of it and store the view.

    Holds the dossier's row lock first (as the projection's writers do): a fold from events read
    before another writer's commit must never overwrite that writer's newer view.
    """
    curs.execute(
        SQL("SELECT 1 FROM {} WHERE aanvraag_id = %s FOR UPDATE").format(dossiers), (aanvraag_id,)
    )
    curs.execute(
        SQL("SELECT envelope, stream_sequence, log_position FROM {} WHERE aanvraag_id = %s").format(
            events
        ),
        (aanvraag_id,),
    )
    write_dossier(curs, aanvraag_id, fold_rows(curs.fetchall()), dossiers)


def fold_rows(rows: Sequence[Mapping[str, Any]]) -> Dossier | None:
    """Fold stored rows (``envelope``, ``stream_sequence``, ``log_position``) of one dossier."""
    return fold((CloudEvent.model_validate(row["envelope"]) for row in rows), places(rows))


def _row_place(row: Mapping[str, Any]) -> Place:
    """A stored row's place (its ``stream_sequence`` and ``log_position``)."""
    return Place(row["stream_sequence"] or 0, row["log_position"])


def places(rows: Iterable[Mapping[str, Any]]) -> dict[str, Place]:
    """Per event id, its place as stored rows (``envelope``, ``stream_sequence``,
    ``log_position``) have it."""
    return {row["envelope"]["id"]: _row_place(row) for row in rows}


def stored_in_recorded_order(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Stored rows (``envelope`` as a dict, ``stream_sequence``, ``log_position``, ``time``) in
    the order their events were recorded (``recorded_order``)."""
    return recorded_order(
        rows,
        time=lambda r: r["time"],
        source=lambda r: r["envelope"]["source"],
        ident=lambda r: r["envelope"]["id"],
        place=_row_place,
    )


def write_dossier(
    curs: Any, aanvraag_id: UUID, dossier: Dossier | None, table: Identifier = DOSSIERS
) -> None:
    """Store a folded dossier (or mark it as not visible: not yet, or no longer after retention)."""
    write_dossiers(curs, [(aanvraag_id, dossier)], table)


def write_dossiers(
    curs: Any, folded: Sequence[tuple[UUID, Dossier | None]], table: Identifier = DOSSIERS
) -> None:
    """``write_dossier`` for several dossiers: the ones not (or no longer) visible in one
    statement, the visible ones as one prepared statement sent for each without waiting for the
    answers (psycopg's ``executemany`` pipelines them). One ``UPDATE … FROM unnest(…)`` for all was
    measured and was slower: the views would travel as one array literal, escaped element by
    element."""
    hidden = [aanvraag_id for aanvraag_id, dossier in folded if dossier is None]
    if hidden:
        curs.execute(
            SQL(
                "UPDATE {} SET zichtbaar = false, status = NULL, organisatie_code = NULL,"
                " contact_deadline = NULL, deadline_verstreken = false, ingediend_op = NULL,"
                " view = NULL WHERE aanvraag_id = ANY(%s) AND zichtbaar"
            ).format(table),
            (hidden,),
        )
    shown = [
        (*_view_columns(dossier), aanvraag_id)
        for aanvraag_id, dossier in folded
        if dossier is not None
    ]
    if shown:
        curs.executemany(
            SQL(
                "UPDATE {} SET zichtbaar = true, status = %s, organisatie_code = %s,"
                " contact_deadline = %s, deadline_verstreken = %s, ingediend_op = %s,"
                " bijgewerkt_op = now(), view = %s WHERE aanvraag_id = %s"
            ).format(table),
            shown,
        )


def copy_dossiers(
    curs: Any, folded: Sequence[tuple[UUID, Dossier | None]], table: Identifier, now: datetime
) -> None:
    """Write folded dossiers that have no row yet with one ``COPY`` (a rebuild's fresh table):
    the same row ``INSERT`` of the id and then ``write_dossier`` leave (``now``: the transaction's
    time, as ``now()`` gives it to those), one statement for them all."""
    columns = SQL(
        "COPY {} (aanvraag_id, zichtbaar, status, organisatie_code, contact_deadline,"
        " deadline_verstreken, ingediend_op, bijgewerkt_op, view) FROM STDIN"
    ).format(table)
    with curs.copy(columns) as copy:
        for aanvraag_id, dossier in folded:
            if dossier is None:
                copy.write_row((aanvraag_id, False, None, None, None, False, None, None, None))
            else:
                *listed, view = _view_columns(dossier)
                copy.write_row((aanvraag_id, True, *listed, now, view))


def _view_columns(dossier: Dossier) -> tuple[Any, ...]:
    """A visible dossier's columns: status, organisatie_code, contact_deadline,
    deadline_verstreken, ingediend_op and the view's JSON (what the list filters on, then what it
    sends)."""
    return (
        dossier.status,
        dossier.organisatie_code,
        dossier.contact_deadline,
        dossier.deadline_verstreken,
        dossier.ingediend_op,
        dossier.model_dump_json(),
    )


def read_dossier(app: ServiceApplication, aanvraag_id: UUID) -> Dossier | None:
    """The dossier view, or None when the projection does not show it (yet)."""
    with app.datastore.get_connection() as conn:
        row: DictRow | None = conn.execute(
            SQL("SELECT view FROM {} WHERE aanvraag_id = %s AND zichtbaar").format(DOSSIERS),
            (aanvraag_id,),
        ).fetchone()
    return None if row is None else Dossier.model_validate(row["view"])


def read_dossier_per(app: ServiceApplication, aanvraag_id: UUID, per: datetime) -> Dossier | None:
    """The dossier as it was recorded at ``per``: folded from the events recorded until then.

    An event's ``time`` is when its service recorded it, so a later event (a decision, a
    correction) never changes what this returns for an earlier moment.
    """
    with app.datastore.get_connection() as conn:
        rows = conn.execute(
            SQL(
                "SELECT envelope, stream_sequence, log_position FROM {}"
                " WHERE aanvraag_id = %s AND time <= %s"
            ).format(EVENTS),
            (aanvraag_id, per),
        ).fetchall()
    return fold_rows(rows)


def _list_query(
    column: str,
    status: str | None,
    deadline_verstreken: bool | None,
    organisatie_code: str | None,
    limit: int,
    offset: int,
    na: tuple[datetime, UUID] | None = None,
    bestuurder_email_hash: str | None = None,
) -> tuple[Composed, list[Any]]:
    clauses: list[SQL | Composed] = [SQL("zichtbaar")]
    params: list[Any] = []
    if na is not None:
        # Keyset paging: the rows after the last one shown, found through the index on
        # ingediend_op (the first clause starts the index scan there; the row comparison breaks
        # ties), so a page deep in 100,000 dossiers costs what the first one does.
        clauses.append(SQL("ingediend_op <= %s AND (ingediend_op, aanvraag_id) < (%s, %s)"))
        params.extend([na[0], na[0], na[1]])
    if status is not None:
        clauses.append(SQL("status = %s"))
        params.append(status)
    if deadline_verstreken is not None:
        clauses.append(SQL("deadline_verstreken = %s"))
        params.append(deadline_verstreken)
    if organisatie_code is not None:
        clauses.append(SQL("organisatie_code = %s"))
        params.append(organisatie_code)
    if bestuurder_email_hash is not None:
        # The bestuurder's own dossiers: exactly those the access index binds its e-mail hash
        # to, the rule GET /aanvragen/{id} applies (found through the index on the hash).
        clauses.append(
            SQL(
                "aanvraag_id IN (SELECT aanvraag_id FROM {} WHERE bestuurder_email_hash = %s)"
            ).format(ACCESS)
        )
        params.append(bestuurder_email_hash)
    query = SQL(
        "SELECT {} FROM {} WHERE {} ORDER BY ingediend_op DESC, aanvraag_id DESC LIMIT %s OFFSET %s"
    ).format(SQL(column), DOSSIERS, SQL(" AND ").join(clauses))
    return query, [*params, limit, offset]


def list_dossiers_json(
    app: ServiceApplication,
    *,
    status: str | None = None,
    deadline_verstreken: bool | None = None,
    organisatie_code: str | None = None,
    limit: int = 100,
    offset: int = 0,
    na: tuple[datetime, UUID] | None = None,
) -> bytes:
    """The same list as a JSON array of the stored views, as they are stored.

    Each view was written from a validated ``Dossier`` (``write_dossier``), so the list need not
    parse, validate and serialise up to 500 of them again: that took most of the list's time.
    ``na``: the (ingediend_op, aanvraag_id) of the last dossier of the previous page (keyset
    paging; the list is ordered newest first, ties by id).
    """
    query, params = _list_query(
        "view::text AS view", status, deadline_verstreken, organisatie_code, limit, offset, na
    )
    with app.datastore.get_connection() as conn:
        rows = conn.execute(query, params, prepare=True).fetchall()
    return ("[" + ",".join(row["view"] for row in rows) + "]").encode()


def list_dossiers(
    app: ServiceApplication,
    *,
    status: str | None = None,
    deadline_verstreken: bool | None = None,
    organisatie_code: str | None = None,
    bestuurder_email_hash: str | None = None,
    limit: int = 100,
    offset: int = 0,
    na: tuple[datetime, UUID] | None = None,
) -> list[Dossier]:
    """The list as dossiers (parsed, to be redacted for a party): the same selection and order
    as ``list_dossiers_json``, narrowed to one bestuurder's dossiers by ``bestuurder_email_hash``.
    """
    query, params = _list_query(
        "view",
        status,
        deadline_verstreken,
        organisatie_code,
        limit,
        offset,
        na,
        bestuurder_email_hash,
    )
    with app.datastore.get_connection() as conn:
        rows = conn.execute(query, params, prepare=True).fetchall()
    return [Dossier.model_validate(row["view"]) for row in rows]


def audit_trail(app: ServiceApplication, aanvraag_id: UUID) -> list[dict[str, Any]]:
    """Every public event of a dossier, across services, in the order recorded."""
    with app.datastore.get_connection() as conn:
        rows = conn.execute(
            SQL(
                "SELECT time, envelope, stream_sequence, log_position FROM {}"
                " WHERE aanvraag_id = %s"
            ).format(EVENTS),
            (aanvraag_id,),
        ).fetchall()
    return [r["envelope"] for r in stored_in_recorded_order(rows)]


class TrailPosition(NamedTuple):
    """A row of the audit trail a page ends with: its time and its event id."""

    time: datetime
    event_id: str


class TrailPage(NamedTuple):
    """A page of the audit trail: its events in the order recorded, and the last one's
    position when more follow (None on the last page)."""

    events: list[dict[str, Any]]
    next: TrailPosition | None


def audit_trail_page(
    app: ServiceApplication, aanvraag_id: UUID, limit: int, after: TrailPosition | None = None
) -> TrailPage | None:
    """At most ``limit`` events of the audit trail in the order recorded, from its start or
    after the row at ``after`` (keyset paging); None when ``after`` is no row of this dossier.

    The order is by time first, so a page starts where the last one ended whatever arrived
    since at later times. Within one moment the order depends on all of that moment's events
    (``recorded_order``), so every moment a page touches is read whole: the rows from
    ``after``'s moment up to the moment of the ``limit + 1``-th row after it, through the index
    on (aanvraag_id, time), and ordered as the whole trail orders them.
    """
    start: list[Any] = [] if after is None else [after.time]
    query = SQL(
        "SELECT time, envelope, stream_sequence, log_position FROM {events}"
        " WHERE aanvraag_id = %s{lower} AND time <= COALESCE("
        "(SELECT time FROM {events} WHERE aanvraag_id = %s{beyond}"
        " ORDER BY time OFFSET %s LIMIT 1), 'infinity')"
    ).format(
        events=EVENTS,
        lower=SQL(" AND time >= %s" if start else ""),
        beyond=SQL(" AND time > %s" if start else ""),
    )
    params = [aanvraag_id, *start, aanvraag_id, *start, limit]
    with app.datastore.get_connection() as conn:
        rows = conn.execute(query, params).fetchall()
    ordered = stored_in_recorded_order(rows)
    if after is not None:
        at = next(
            (
                i
                for i, r in enumerate(ordered)
                if r["time"] == after.time and r["envelope"]["id"] == after.event_id
            ),
            None,
        )
        if at is None:
            return None
        ordered = ordered[at + 1 :]
    page = ordered[:limit]
    last = page[-1] if page and len(ordered) > limit else None
    return TrailPage(
        [r["envelope"] for r in page],
        None if last is None else TrailPosition(last["time"], last["envelope"]["id"]),
    )


def audit_counts(app: ServiceApplication, aanvraag_id: UUID) -> tuple[dict[str, int], int]:
    """How many events of each kind (by event name) the dossier's audit trail holds, and how
    many refused attempts its refusals stand for (a refusal of anonymous attempts counted
    together carries their number, ``aantal``)."""
    with app.datastore.get_connection() as conn:
        rows = conn.execute(
            SQL(
                "SELECT split_part(type, '.', 3) AS name, count(*) AS events,"
                # A stored envelope passed its contract (``aantal`` a positive integer); read
                # defensively all the same: no stored row can make the count fail.
                " sum(CASE WHEN jsonb_typeof(envelope->'data'->'aantal') = 'number'"
                " THEN (envelope->'data'->>'aantal')::numeric ELSE 1 END)"
                " FILTER (WHERE split_part(type, '.', 3) = 'ToegangGeweigerd') AS attempts"
                " FROM {} WHERE aanvraag_id = %s GROUP BY 1"
            ).format(EVENTS),
            (aanvraag_id,),
        ).fetchall()
    counts = {r["name"]: int(r["events"]) for r in rows}
    return counts, sum(int(r["attempts"] or 0) for r in rows)


def subscription(app: ServiceApplication) -> Subscription:
    """The consumer that keeps the dossier projection (purpose ``dossier``)."""
    projection = DossierProjection(app)
    return Subscription(
        purpose="dossier",
        subjects=["weerbaar.>"],
        handler=projection.handle,
        batch_handler=projection.handle_batch,
        description="The dossier projection: every public event of every service.",
    )
