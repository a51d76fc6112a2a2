"""A new dossier's data key is stored in the same transaction as the dossier's first events.

Before, registering committed the key in a transaction of its own and then the events: two
commits per registration (see bench/README.md, "Command commit rate"). Now both are stored or
neither.
"""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import DataError
from psycopg.sql import SQL

from services.intake.application import Intake
from services.intake.bootstrap import application as intake_application
from services.intake.domain import Aanmelding, dien_in
from shared.platform.model import Context, utcnow
from shared.platform.ports import DuplicateKey, Statement
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


def _keys_of(settings: Settings, aanvraag_id: UUID) -> list[UUID]:
    with psycopg.connect(settings.database_url) as conn:
        rows = conn.execute(
            "SELECT key_id FROM intake.dossier_keys WHERE aanvraag_id = %s", (aanvraag_id,)
        ).fetchall()
    return [row[0] for row in rows]


def _events_of(intake: Intake, aanvraag_id: UUID) -> int:
    return sum(
        1 for n in intake.recorder.select_notifications(1, 1000) if n.originator_id == aanvraag_id
    )


def test_a_registration_stores_its_key_with_its_events(intake: Intake, settings: Settings) -> None:
    body = aanmelding()
    result = intake.dien_aanvraag_in(
        Aanmelding.model_validate(body), Context(now=utcnow()), "sleutel-1"
    )

    assert len(_keys_of(settings, result.aanvraag_id)) == 1
    assert _events_of(intake, result.aanvraag_id) == 1
    assert (
        intake.persoonsgegevens(result.aanvraag_id).bestuurder.email == body["bestuurder"]["email"]
    )


def test_when_the_events_fail_the_new_key_is_not_stored_either(
    intake: Intake, settings: Settings
) -> None:
    aanvraag_id = uuid4()
    event = dien_in(aanvraag_id, Aanmelding.model_validate(aanmelding()), Context(now=utcnow()))
    failing = Statement(SQL("SELECT 1 / 0"))
    with pytest.raises(DataError), intake.keys.new_dossier(aanvraag_id) as key_row:
        intake.record(event, statements=[key_row, failing])

    assert _keys_of(settings, aanvraag_id) == []
    assert _events_of(intake, aanvraag_id) == 0
    # Outside the block the dossier gets its key the ordinary way.
    made = intake.keys.for_writing(aanvraag_id)
    assert _keys_of(settings, aanvraag_id) == [made.key_id]


def test_a_forgotten_dossier_cannot_get_a_new_key_with_new_events(
    intake: Intake, settings: Settings
) -> None:
    aanvraag_id = uuid4()
    assert intake.keys.destroy(aanvraag_id, "test", "verzoek_betrokkene", utcnow())  # tombstone
    event = dien_in(aanvraag_id, Aanmelding.model_validate(aanmelding()), Context(now=utcnow()))
    with pytest.raises(DuplicateKey), intake.keys.new_dossier(aanvraag_id) as key_row:
        intake.record(event, statements=[key_row])

    assert _events_of(intake, aanvraag_id) == 0
