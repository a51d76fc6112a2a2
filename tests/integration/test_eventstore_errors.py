"""The recorder's failures on real PostgreSQL: each one is recognised, none leaves a trace.

psycopg's pipeline may hand a unique violation back early (while later statements are still being
sent) or only at the sync point; the recorder must recognise it either way, as the redelivery of a
message already processed, as a concurrency conflict or as a duplicate key, and never let a later
"pipeline aborted" stand in for it.
"""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID, uuid4

import pytest
from psycopg.sql import SQL

from shared.platform.eventstore import AlreadyProcessed, ConcurrencyConflict, ServiceApplication
from shared.platform.model import Context, DomainEvent, utcnow
from shared.platform.ports import DuplicateKey, Statement
from shared.platform.settings import Settings
from tests.support import private_events_only

pytestmark = pytest.mark.integration


class Geteld(DomainEvent):
    """A test event with a payload large enough to keep the pipeline busy."""

    n: int
    vulling: str


class Teller(ServiceApplication):
    service: ClassVar[str] = "teller"
    ddl: ClassVar[tuple[str, ...]] = (
        "CREATE TABLE IF NOT EXISTS {schema}.sleutels (sleutel text PRIMARY KEY)",
    )

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env, publication_check=private_events_only(self.service))


def _events(originator: UUID, first_version: int, count: int) -> list[DomainEvent]:
    ctx = Context(now=utcnow(), actor_id="test")
    return [
        Geteld(
            originator_id=originator,
            originator_version=first_version + i,
            **ctx.event_fields(),
            n=i,
            vulling="x" * 2_000,
        )
        for i in range(count)
    ]


def _stored(app: Teller) -> int:
    with app.datastore.get_connection() as conn:
        row = conn.execute(SQL("SELECT count(*) AS n FROM teller.teller_events")).fetchone()
    assert row is not None
    return int(row["n"])


def _padding(count: int) -> list[Statement]:
    return [Statement(SQL("SELECT pg_sleep(0)")) for _ in range(count)]


@pytest.fixture
def app(settings: Settings) -> Teller:
    return Teller(settings.eventsourcing_env("teller"))


def test_a_repeated_inbox_row_is_always_already_processed(app: Teller) -> None:
    # Many rounds, with the duplicate first and a long pipeline behind it: the shape in which
    # the violation comes back before the sync point.
    app.record(*_events(uuid4(), 1, 1), inbox=("c", "m"))
    before = _stored(app)
    for round_ in range(60):
        with pytest.raises(AlreadyProcessed):
            app.record(
                *_events(uuid4(), 1, 1 + round_ % 20),
                inbox=("c", "m"),
                statements=_padding(round_ % 7 * 10),
            )
    assert _stored(app) == before


def test_a_version_taken_by_another_writer_is_a_concurrency_conflict(app: Teller) -> None:
    originator = uuid4()
    app.record(*_events(originator, 1, 3))
    for round_ in range(30):
        with pytest.raises(ConcurrencyConflict):
            app.record(*_events(originator, 2, 1 + round_ % 10), statements=_padding(round_ % 5))
    assert _stored(app) == 3


def test_a_side_statement_on_a_taken_key_is_a_duplicate_key_and_records_nothing(
    app: Teller,
) -> None:
    insert = Statement(SQL("INSERT INTO teller.sleutels VALUES ('k')"))
    app.record(*_events(uuid4(), 1, 1), statements=[insert])
    for round_ in range(30):
        with pytest.raises(DuplicateKey) as raised:
            app.record(*_events(uuid4(), 1, 1 + round_ % 10), statements=[insert])
        assert raised.value.constraint == "sleutels_pkey"
    assert _stored(app) == 1


def test_after_a_violation_the_next_commands_succeed(app: Teller) -> None:
    """A violation reported early leaves no broken state behind (e.g. a prepared statement the
    server skipped): every command after it, on whatever pooled connection, succeeds."""
    app.record(*_events(uuid4(), 1, 1), inbox=("c", "first"))
    for round_ in range(40):
        with pytest.raises(AlreadyProcessed):
            app.record(
                *_events(uuid4(), 1, 1 + round_ % 10),
                inbox=("c", "first"),
                statements=_padding(round_ % 4 * 10),
            )
        app.record(*_events(uuid4(), 1, 2), inbox=("c", f"m{round_}"))
    assert _stored(app) == 1 + 40 * 2
