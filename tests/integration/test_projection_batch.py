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
from typing import Any

import pytest
from psycopg.sql import SQL

from shared.platform.consumer import Delivery
from tests.integration.inprocess import InProcessSystem

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
