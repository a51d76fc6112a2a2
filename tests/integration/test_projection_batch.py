"""The dossier projection's batch handler has the effect of its one-by-one handler.

Dossiers are taken through the process in-process (every public event handed to intake's
projection one at a time, as a consumer without batches does); every delivery is kept. Then the
projection's tables are emptied and the same deliveries are handed to ``handle_batch`` in batches
of varying size, out of their original order across batches, with a batch repeated as a
redelivery would: every dossier's stored view must be what the one-by-one handler made.
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from psycopg.sql import SQL

from services.intake.projections import audit
from services.intake.projections.dossier import DossierProjection, audit_trail, read_dossier
from shared.contracts.envelope import CloudEvent
from shared.contracts.registry import from_cloudevent
from shared.platform.consumer import Delivery
from shared.platform.relay import POSITION_SCALE, PositionHeader
from tests.integration.inprocess import InProcessSystem
from tests.unit.test_dossier_fold import NOTIFICATIE_BEVESTIGING, T0, ingediend, notificatie

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def system(inprocess_system: InProcessSystem) -> InProcessSystem:
    """The five services in one process, on a database of their own."""
    return inprocess_system


def _views(system: InProcessSystem) -> dict[str, Any]:
    app = system.components["intake"].app
    with app.datastore.transaction(commit=False) as curs:
        curs.execute(
            SQL(
                "SELECT aanvraag_id, zichtbaar, status, organisatie_code, contact_deadline,"
                " deadline_verstreken, ingediend_op, view FROM intake.dossiers"
            )
        )
        rows = curs.fetchall()
    return {str(row["aanvraag_id"]): {k: v for k, v in row.items()} for row in rows}


def test_batches_in_any_order_and_repeated_give_the_one_by_one_views(
    system: InProcessSystem,
) -> None:
    intake = system.components["intake"]
    dossier_sub = next(s for s in intake.subscriptions if s.purpose == "dossier")
    assert dossier_sub.batch_handler is not None, "intake's projection takes batches"
    delivered: list[Delivery] = []
    one_by_one = dossier_sub.handler

    def keep(delivery: Delivery) -> None:
        delivered.append(delivery)
        one_by_one(delivery)

    # The in-process bus hands each delivery to the subscription's handler.
    intake.subscriptions = [
        replace(s, handler=keep) if s is dossier_sub else s for s in intake.subscriptions
    ]
    try:
        for stand in ("ingetrokken", "gepland", "afgekeurd", "vrijgegeven", "vrijgegeven"):
            system.dossier(stand)
    finally:
        intake.subscriptions = [
            dossier_sub if s.purpose == "dossier" else s for s in intake.subscriptions
        ]
    expected = _views(system)
    assert len(expected) == 5 and len(delivered) > 40

    app = intake.app
    with app.datastore.transaction(commit=True) as curs:
        curs.execute(SQL("TRUNCATE intake.dossier_events, intake.dossiers"))
    assert _views(system) == {}

    rng = random.Random(7)
    batches: list[list[Delivery]] = []
    position = 0
    while position < len(delivered):
        size = rng.randint(1, 12)
        batches.append(delivered[position : position + size])
        position += size
    rng.shuffle(batches)  # events of one dossier arrive in different batches, in any order
    batches.insert(len(batches) // 2, batches[0])  # a batch delivered again
    for batch in batches:
        dossier_sub.batch_handler(batch)

    assert _views(system) == expected


def test_events_split_by_a_broker_loss_keep_their_logs_order_in_view_trail_and_export(
    system: InProcessSystem,
) -> None:
    """Two events notifications recorded at one moment; the broker lost its store between them.

    The first arrived before the loss (stream sequence 11, kept); the refilled stream delivers the
    first again (a redelivery, new sequence) and the second with a new, lower sequence (2). The
    view, the audit trail and the audit export list them as the log has them.
    """
    app = system.components["intake"].app
    projection = DossierProjection(app)
    aanvraag_id = uuid4()
    aangemeld = ingediend(aanvraag_id)
    moment = T0 + timedelta(seconds=5)
    mislukt = notificatie(aanvraag_id, NOTIFICATIE_BEVESTIGING, moment, poging=1, mislukt=True)
    verzonden = notificatie(aanvraag_id, NOTIFICATIE_BEVESTIGING, moment, poging=2)

    def delivery(envelope: CloudEvent, sequence: int, notification_id: int) -> Delivery:
        return Delivery(
            envelope=envelope,
            event=from_cloudevent(envelope),
            stream_sequence=sequence,
            attempt=1,
            position=PositionHeader(notification_id, 0, 1),
        )

    projection.handle_batch([delivery(aangemeld, 10, 3), delivery(mislukt, 11, 7)])
    # After the loss: everything again, in the log's order, with new sequences.
    projection.handle_batch([delivery(aangemeld, 1, 3), delivery(mislukt, 1, 7)])
    projection.handle_batch([delivery(verzonden, 2, 8)])

    dossier = read_dossier(app, aanvraag_id)
    assert dossier is not None
    assert [n.status for n in dossier.notificaties] == ["verzonden"]
    in_order = [aangemeld.id, mislukt.id, verzonden.id]
    assert [r.gebeurtenis for r in dossier.tijdlijn] == [
        "AanvraagIngediend",
        "NotificatieMislukt",
        "NotificatieVerzonden",
    ]
    assert [e["id"] for e in audit_trail(app, aanvraag_id)] == in_order
    with app.datastore.get_connection() as conn:
        export = audit.build(conn, aanvraag_id=aanvraag_id)
        kept = conn.execute(
            "SELECT event_id, stream_sequence, log_position FROM intake.dossier_events"
            " WHERE aanvraag_id = %s",
            (aanvraag_id,),
        ).fetchall()
    assert export is not None
    assert [r.event_id for r in export.gebeurtenissen] == in_order
    assert {r["event_id"]: (r["stream_sequence"], r["log_position"]) for r in kept} == {
        aangemeld.id: (10, 3 * POSITION_SCALE),
        mislukt.id: (11, 7 * POSITION_SCALE),
        verzonden.id: (2, 8 * POSITION_SCALE),
    }
