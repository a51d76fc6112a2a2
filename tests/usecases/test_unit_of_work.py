"""The unit of work on both stores: what a use case writes besides its events commits with them or
not at all, and an ``Idempotency-Key`` is checked and remembered in one place
(``ServiceApplication.change_once``), the same on the in-memory store as in PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID, uuid4

import pytest
from psycopg.sql import SQL

from shared.platform.errors import Ongeldig
from shared.platform.eventstore import Answered, ConcurrencyConflict, Once, ServiceApplication
from shared.platform.idempotency import fingerprint, idempotency_ddl, idempotency_keys
from shared.platform.model import Aggregate, Context, DomainEvent, first_event, next_event, utcnow
from shared.platform.ports import DuplicateKey, MemoryWrite, SideWrite, Statement
from tests.support import private_events_only
from tests.usecases.conftest import STORES, store_env

CTX = Context(now=utcnow(), actor_id="test")


class Geteld(DomainEvent):
    n: int


class Stand(Aggregate):
    n: int


def project(stand: Stand | None, events: Iterable[Any]) -> Stand | None:
    for event in events:
        assert isinstance(event, Geteld)
        stand = Stand(id=event.originator_id, version=event.originator_version, n=event.n)
    return stand


class Teller(ServiceApplication):
    service: ClassVar[str] = "teller"
    ddl: ClassVar[tuple[str, ...]] = (
        "CREATE TABLE IF NOT EXISTS {schema}.sleutels (sleutel text PRIMARY KEY)",
        idempotency_ddl(),
    )

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env, publication_check=private_events_only(self.service))
        self.idempotency = idempotency_keys(self)
        self.sleutels: set[str] = set()  # the in-memory form of the table ``sleutels``

    def sleutel(self, sleutel: str) -> SideWrite:
        """A side write that takes a unique key (``sleutels_pkey`` when taken)."""
        if not self.in_memory:
            return Statement(SQL("INSERT INTO teller.sleutels VALUES (%s)"), (sleutel,))

        def check() -> None:
            if sleutel in self.sleutels:
                raise DuplicateKey("sleutels_pkey")

        return MemoryWrite(apply=lambda: self.sleutels.add(sleutel), check=check)

    def tel(self, teller_id: UUID, n: int, *, key: str | None = None, scope: str = "s") -> Any:
        """Count to ``n`` (nothing when it is there already), once per key."""

        def decide(stand: Stand | None) -> Sequence[DomainEvent]:
            if stand is None:
                return [first_event(Geteld, teller_id, CTX, n=n)]
            return [] if stand.n == n else [next_event(Geteld, stand, CTX, n=n)]

        if key is None:
            return self.change(teller_id, decide, project=project)
        digest = fingerprint({"teller": str(teller_id), "n": n})
        once = Once(self.idempotency, scope, key, digest, {"teller": str(teller_id), "n": n})
        return self.change_once(once, teller_id, decide, project=project)

    def stored(self, teller_id: UUID) -> list[DomainEvent]:
        """The teller's events as stored."""
        return list(self.repository.event_store.get(teller_id))


@pytest.fixture(params=STORES)
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Teller]:
    teller = Teller(store_env(str(request.param), "teller", request, tmp_path))
    try:
        yield teller
    finally:
        teller.close()


def test_a_repeated_key_is_answered_with_the_first_answer(app: Teller) -> None:
    teller_id = uuid4()
    first = app.tel(teller_id, 1, key="k")
    again = app.tel(teller_id, 1, key="k")

    assert isinstance(first, Stand) and first.n == 1
    assert again == Answered({"teller": str(teller_id), "n": 1})
    assert len(app.stored(teller_id)) == 1


def test_a_key_with_another_body_is_refused_and_changes_nothing(app: Teller) -> None:
    teller_id = uuid4()
    app.tel(teller_id, 1, key="k")
    with pytest.raises(Ongeldig) as refused:
        app.tel(teller_id, 2, key="k")
    assert refused.value.errors[0]["rule"] == "reused_with_other_body"
    assert [e.n for e in app.stored(teller_id) if isinstance(e, Geteld)] == [1]
    # The key is the scope's: another scope may use it for another body.
    assert isinstance(app.tel(teller_id, 2, key="k", scope="t"), Stand)


def test_a_key_taken_at_the_same_moment_is_answered_with_the_winners_answer(app: Teller) -> None:
    ours, theirs = uuid4(), uuid4()
    digest = fingerprint({"teller": str(ours), "n": 1})
    winner = {"teller": str(theirs), "n": 1}
    raced = False

    def decide(stand: Stand | None) -> Sequence[DomainEvent]:
        nonlocal raced
        if not raced:
            # Another request with the same key and body records between this one's look at
            # the key and its commit.
            raced = True
            app.record(
                first_event(Geteld, theirs, CTX, n=1),
                statements=[app.idempotency.remember("s", "k", digest, winner)],
            )
        return [first_event(Geteld, ours, CTX, n=1)]

    answered = app.change_once(
        Once(app.idempotency, "s", "k", digest, {"teller": str(ours), "n": 1}),
        ours,
        decide,
        project=project,
        new=True,
    )

    assert answered == Answered(winner)
    assert app.stored(ours) == []  # this request's events went with its key: not at all
    assert len(app.stored(theirs)) == 1


def test_nothing_decided_remembers_no_key(app: Teller) -> None:
    teller_id = uuid4()
    app.tel(teller_id, 1)
    unchanged = app.tel(teller_id, 1, key="k")
    assert isinstance(unchanged, Stand) and unchanged.version == 1
    assert (
        app.idempotency.earlier("s", "k", fingerprint({"teller": str(teller_id), "n": 1})) is None
    )


def test_forgetting_drops_the_keys_whose_answer_names_the_value(app: Teller) -> None:
    one, two = uuid4(), uuid4()
    app.tel(one, 1, key="k1")
    app.tel(two, 1, key="k2")
    app.record(
        first_event(Geteld, uuid4(), CTX, n=0),
        statements=[app.idempotency.forget("s", "teller", str(one))],
    )
    assert app.idempotency.earlier("s", "k1", fingerprint({"teller": str(one), "n": 1})) is None
    assert app.idempotency.earlier("s", "k2", fingerprint({"teller": str(two), "n": 1})) == {
        "teller": str(two),
        "n": 1,
    }


def test_a_side_write_on_a_taken_key_records_no_event(app: Teller) -> None:
    app.record(first_event(Geteld, uuid4(), CTX, n=1), statements=[app.sleutel("a")])
    refused = uuid4()
    with pytest.raises(DuplicateKey) as raised:
        app.record(
            first_event(Geteld, refused, CTX, n=1),
            statements=[app.sleutel("b"), app.sleutel("a")],
        )
    assert raised.value.constraint == "sleutels_pkey"
    assert app.stored(refused) == []
    # ... nor its other side writes: "b" is free still.
    app.record(first_event(Geteld, uuid4(), CTX, n=1), statements=[app.sleutel("b")])


def test_side_writes_of_a_conflicting_command_are_not_made(app: Teller) -> None:
    teller_id = uuid4()
    app.record(first_event(Geteld, teller_id, CTX, n=1))
    with pytest.raises(ConcurrencyConflict):
        app.record(first_event(Geteld, teller_id, CTX, n=2), statements=[app.sleutel("c")])
    app.record(first_event(Geteld, uuid4(), CTX, n=1), statements=[app.sleutel("c")])


def test_each_store_refuses_the_other_stores_side_writes(app: Teller) -> None:
    foreign: SideWrite
    if app.in_memory:
        foreign = Statement(SQL("INSERT INTO teller.sleutels VALUES ('x')"))
        refused: type[Exception] = NotImplementedError
    else:
        foreign = MemoryWrite(apply=lambda: None)
        refused = TypeError
    teller_id = uuid4()
    with pytest.raises(refused):
        app.record(first_event(Geteld, teller_id, CTX, n=1), statements=[foreign])
    assert app.stored(teller_id) == []
