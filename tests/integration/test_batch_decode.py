"""Decoding a batch of stored events reads the batch's data keys in one lookup (the relay's path).

One lookup per event was one database round trip per dossier and most of the relay's time (see
bench/README.md, "Relay"). The batch path must decode exactly as the single path does,
forgotten dossiers included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any
from uuid import uuid4

import pytest

from services.intake.application import Intake
from services.intake.bootstrap import application as intake_application
from services.intake.domain import Aanmelding, AanvraagOntvangen, VergetenAanmelding, dien_in
from shared.platform.eventstore import PydanticMapper
from shared.platform.model import Context, utcnow
from shared.platform.settings import Settings
from tests.support import aanmelding

pytestmark = pytest.mark.integration


@pytest.fixture
def intake(settings: Settings) -> Iterator[Intake]:
    """Intake's application on the test's database."""
    app = intake_application(settings.eventsourcing_env("intake"))
    try:
        yield app
    finally:
        app.close()


def test_a_batch_decodes_as_single_events_do_with_one_key_lookup(intake: Intake) -> None:
    ctx = Context(now=utcnow(), actor_role="aanvrager")
    ids = [uuid4() for _ in range(5)]
    for aanvraag_id in ids:
        intake.record(dien_in(aanvraag_id, Aanmelding.model_validate(aanmelding()), ctx))
    forgotten = ids[2]
    assert intake.keys.destroy(forgotten, "test", "verzoek_betrokkene", utcnow())
    stored = intake.recorder.select_notifications(1, 100)
    mapper = intake.mapper
    assert isinstance(mapper, PydanticMapper)
    one_by_one = [mapper.to_domain_event(n) for n in stored]

    lookups = 0
    read = intake.keys.read
    assert read is not None

    def counting() -> AbstractContextManager[Any]:
        nonlocal lookups
        lookups += 1
        return read()

    intake.keys.read = counting
    batch = mapper.to_domain_events(stored)

    assert lookups == 1
    assert batch == one_by_one
    by_id = {event.originator_id: event for event in batch}
    assert by_id.keys() == set(ids)
    for aanvraag_id, event in by_id.items():
        assert isinstance(event, AanvraagOntvangen)
        assert event.vergeten == (aanvraag_id == forgotten)
    kept, gone = by_id[ids[0]], by_id[forgotten]
    assert isinstance(kept, AanvraagOntvangen) and isinstance(gone, AanvraagOntvangen)
    assert isinstance(gone.aanmelding, VergetenAanmelding)
    assert isinstance(kept.aanmelding, Aanmelding) and "@" in kept.aanmelding.bestuurder.email
