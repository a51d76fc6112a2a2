"""The dossier projection: each case rebuilt from the public events of all services.

The projection keeps every public event of a dossier (``dossier_events``, also the dossier's audit
trail) and a folded view per dossier (``dossiers``). Folding always starts from all the dossier's
events in time order, so the view does not depend on the order in which the stream delivered them,
and a replay gives the same result as live processing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier
from pydantic import BaseModel, ConfigDict

from shared.consumer import Delivery
from shared.contracts.envelope import CloudEvent
from shared.eventstore import ServiceApplication

EVENTS = Identifier("intake", "dossier_events")
DOSSIERS = Identifier("intake", "dossiers")

DDL = (
    "CREATE TABLE IF NOT EXISTS {schema}.dossier_events ("
    " event_id text PRIMARY KEY, aanvraag_id uuid NOT NULL, type text NOT NULL,"
    " time timestamptz NOT NULL, stream_sequence bigint, envelope jsonb NOT NULL,"
    " received_at timestamptz NOT NULL DEFAULT now())",
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
    ingetrokken_op: datetime | None = None
    notificaties: tuple[Notificatie, ...] = ()
    tijdlijn: tuple[TijdlijnRegel, ...] = ()


def _name(envelope: CloudEvent) -> str:
    return envelope.type.split(".")[-2]


def fold(envelopes: Iterable[CloudEvent]) -> Dossier | None:
    """The dossier after these events (any order in, time order applied); None before intake's."""
    ordered = sorted(envelopes, key=lambda e: (e.time, e.id))
    state: dict[str, Any] | None = None
    tijdlijn: list[TijdlijnRegel] = []
    notificaties: dict[str, Notificatie] = {}
    pending: list[CloudEvent] = []
    for envelope in ordered:
        name = _name(envelope)
        data = envelope.data
        if name == "AanvraagIngediend":
            state = {
                "aanvraag_id": data["aanvraag_id"],
                "status": "ingediend",
                "ingediend_op": data["ingediend_op"],
                "ingediend_door": data["ingediend_door"],
                "organisatie_code": data["organisatie_code"],
                "binnen_regeling": data["binnen_regeling"],
                "verhuizing_gepland": data["verhuizing_gepland"],
            }
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
        if state is None:
            pending.append(envelope)
            continue
        for earlier in (*pending, envelope):
            _apply(state, notificaties, _name(earlier), earlier)
        pending.clear()
    if state is None:
        return None
    state["notificaties"] = tuple(notificaties.values())
    state["tijdlijn"] = tuple(tijdlijn)
    return Dossier.model_validate(state)


def _apply(
    state: dict[str, Any],
    notificaties: dict[str, Notificatie],
    name: str,
    envelope: CloudEvent,
) -> None:
    data = envelope.data
    if name == "AanvraagBuitenRegeling":
        state["buiten_regeling_reden"] = data["reden"]
    elif name == "ContacttermijnGesteld":
        state["contact_deadline"] = data["deadline"]
    elif name == "ContactOpgenomen":
        state["contact_op"] = data["contact_op"]
        state["contact_binnen_termijn"] = data["binnen_termijn"]
        if state["status"] == "ingediend":
            state["status"] = "contact_opgenomen"
    elif name == "ContacttermijnVerstreken":
        state["deadline_verstreken"] = True
        state["deadline_verstreken_op"] = data["vastgesteld_op"]
        state.setdefault("contact_deadline", data["deadline"])
    elif name == "AanvraagIngetrokken":
        state["status"] = "ingetrokken"
        state["ingetrokken_op"] = data["ingetrokken_op"]
    elif name in {"NotificatieVerzonden", "NotificatieMislukt"}:
        status = "verzonden"
        if name == "NotificatieMislukt":
            status = "definitief_mislukt" if data["definitief"] else "mislukt"
        notificaties[data["notificatie_id"]] = Notificatie(
            notificatie_id=data["notificatie_id"],
            soort=data["soort"],
            status=status,
            op=envelope.time,
        )


class DossierProjection:
    """Writes the projection; exactly-once per event id, also with several replicas at once."""

    def __init__(self, app: ServiceApplication) -> None:
        self.app = app

    def handle(self, delivery: Delivery) -> None:
        """Consumer handler: store the event and refold its dossier in one transaction."""
        envelope = delivery.envelope
        aanvraag_id = delivery.event.aanvraag_id
        if aanvraag_id is None:
            return  # concerns no one dossier (e.g. a refused list request): nothing to show
        with self.app.datastore.transaction(commit=True) as curs:
            # Serialise writers of one dossier so a fold never misses a concurrent event.
            curs.execute(
                SQL("INSERT INTO {} (aanvraag_id) VALUES (%s) ON CONFLICT DO NOTHING").format(
                    DOSSIERS
                ),
                (aanvraag_id,),
            )
            curs.execute(
                SQL("SELECT 1 FROM {} WHERE aanvraag_id = %s FOR UPDATE").format(DOSSIERS),
                (aanvraag_id,),
            )
            curs.execute(
                SQL(
                    "INSERT INTO {} (event_id, aanvraag_id, type, time, stream_sequence, envelope)"
                    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING"
                    " RETURNING event_id"
                ).format(EVENTS),
                (
                    envelope.id,
                    aanvraag_id,
                    envelope.type,
                    envelope.time,
                    delivery.stream_sequence,
                    envelope.to_json().decode(),
                ),
            )
            if curs.fetchone() is None:
                return  # a redelivery: this event is already in the projection
            curs.execute(
                SQL("SELECT envelope FROM {} WHERE aanvraag_id = %s").format(EVENTS),
                (aanvraag_id,),
            )
            dossier = fold(CloudEvent.model_validate(row["envelope"]) for row in curs.fetchall())
            write_dossier(curs, aanvraag_id, dossier)


def write_dossier(curs: Any, aanvraag_id: UUID, dossier: Dossier | None) -> None:
    """Store a folded dossier (or mark it as not yet visible)."""
    if dossier is None:
        return
    curs.execute(
        SQL(
            "UPDATE {} SET zichtbaar = true, status = %s, organisatie_code = %s,"
            " contact_deadline = %s, deadline_verstreken = %s, ingediend_op = %s,"
            " bijgewerkt_op = now(), view = %s WHERE aanvraag_id = %s"
        ).format(DOSSIERS),
        (
            dossier.status,
            dossier.organisatie_code,
            dossier.contact_deadline,
            dossier.deadline_verstreken,
            dossier.ingediend_op,
            dossier.model_dump_json(),
            aanvraag_id,
        ),
    )


def read_dossier(app: ServiceApplication, aanvraag_id: UUID) -> Dossier | None:
    """The dossier view, or None when the projection does not show it (yet)."""
    with app.datastore.get_connection() as conn:
        row: DictRow | None = conn.execute(
            SQL("SELECT view FROM {} WHERE aanvraag_id = %s AND zichtbaar").format(DOSSIERS),
            (aanvraag_id,),
        ).fetchone()
    return None if row is None else Dossier.model_validate(row["view"])


def list_dossiers(
    app: ServiceApplication,
    *,
    status: str | None = None,
    deadline_verstreken: bool | None = None,
    organisatie_code: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> Sequence[Dossier]:
    """Dossiers for the secretariat, newest first, with filters."""
    clauses = [SQL("zichtbaar")]
    params: list[Any] = []
    if status is not None:
        clauses.append(SQL("status = %s"))
        params.append(status)
    if deadline_verstreken is not None:
        clauses.append(SQL("deadline_verstreken = %s"))
        params.append(deadline_verstreken)
    if organisatie_code is not None:
        clauses.append(SQL("organisatie_code = %s"))
        params.append(organisatie_code)
    query = SQL(
        "SELECT view FROM {} WHERE {} ORDER BY ingediend_op DESC LIMIT %s OFFSET %s"
    ).format(DOSSIERS, SQL(" AND ").join(clauses))
    with app.datastore.get_connection() as conn:
        rows = conn.execute(query, [*params, limit, offset]).fetchall()
    return [Dossier.model_validate(row["view"]) for row in rows]


def audit_trail(app: ServiceApplication, aanvraag_id: UUID) -> list[dict[str, Any]]:
    """Every public event of a dossier, across services, in time order."""
    with app.datastore.get_connection() as conn:
        rows = conn.execute(
            SQL("SELECT envelope FROM {} WHERE aanvraag_id = %s ORDER BY time, event_id").format(
                EVENTS
            ),
            (aanvraag_id,),
        ).fetchall()
    return [
        json.loads(r["envelope"]) if isinstance(r["envelope"], str) else r["envelope"] for r in rows
    ]
