"""An aggregate projection's live statements: only what changed, in one upsert per table."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID, uuid4

import pytest

from shared.platform.model import Aggregate, DomainEvent
from shared.platform.projection import AggregateProjection, Table


class Lijst(Aggregate):
    items: tuple[tuple[str, str], ...] = ()


class LijstGemaakt(DomainEvent):
    pass


def _fold(lijst: Lijst | None, events: Iterable[DomainEvent]) -> Lijst | None:
    return lijst


def _rows(lijst: Lijst) -> dict[str, list[tuple[object, ...]]]:
    return {
        "lijsten": [(lijst.id, len(lijst.items))],
        "items": [(naam, lijst.id, waarde) for naam, waarde in lijst.items],
    }


LIJST = AggregateProjection[Lijst](
    service="voorbeeld",
    tables=(
        Table("lijsten", ("lijst_id", "aantal"), ("lijst_id",), "lijst_id", ()),
        Table("items", ("naam", "lijst_id", "waarde"), ("naam",), "lijst_id", ()),
    ),
    started_by=(LijstGemaakt,),
    fold=_fold,
    rows=_rows,
)


def test_a_new_aggregate_writes_all_its_rows_one_upsert_per_table() -> None:
    lijst = Lijst(id=uuid4(), version=1, items=(("a", "1"), ("b", "2")))
    statements = LIJST.statements(None, lijst)
    assert len(statements) == 2
    assert statements[0].sql.as_string(None) == (
        'INSERT INTO "voorbeeld"."lijsten" ("lijst_id", "aantal") VALUES (%s, %s)'
        ' ON CONFLICT ("lijst_id") DO UPDATE SET "aantal" = EXCLUDED."aantal"'
    )
    assert list(statements[1].params) == ["a", lijst.id, "1", "b", lijst.id, "2"]


def test_only_changed_rows_are_written_and_gone_rows_deleted() -> None:
    lijst_id = uuid4()
    before = Lijst(id=lijst_id, version=1, items=(("a", "1"), ("b", "2"), ("c", "3")))
    after = Lijst(id=lijst_id, version=2, items=(("a", "1"), ("b", "9")))
    statements = LIJST.statements(before, after)
    sql = [s.sql.as_string(None) for s in statements]
    assert sql[0].startswith('INSERT INTO "voorbeeld"."lijsten"')  # the count changed
    assert sql[1].startswith('INSERT INTO "voorbeeld"."items"')
    assert list(statements[1].params) == ["b", lijst_id, "9"]  # only b changed
    assert sql[2] == 'DELETE FROM "voorbeeld"."items" WHERE ("naam") = (%s)'
    assert list(statements[2].params) == ["c"]
    assert len(statements) == 3


def test_no_change_no_statement_and_a_target_schema_when_asked() -> None:
    lijst = Lijst(id=uuid4(), version=1, items=(("a", "1"),))
    assert LIJST.statements(lijst, lijst.model_copy(update={"version": 2})) == []
    rebuilt = LIJST.statements(None, lijst, "voorbeeld_replay")
    assert all('"voorbeeld_replay".' in s.sql.as_string(None) for s in rebuilt)


def test_a_table_of_keys_only_ignores_a_row_it_has() -> None:
    table = Table("koppel", ("a", "b"), ("a", "b"), "a", ())
    assert (
        table.upsert("s", [(1, 2)])
        .sql.as_string(None)
        .endswith('ON CONFLICT ("a", "b") DO NOTHING')
    )


def test_rows_for_an_unknown_table_or_a_key_outside_the_columns_are_errors() -> None:
    odd = AggregateProjection[Lijst](
        service="voorbeeld",
        tables=LIJST.tables,
        started_by=(LijstGemaakt,),
        fold=_fold,
        rows=lambda lijst: {"elders": [(lijst.id,)]},
    )
    with pytest.raises(ValueError, match="elders"):
        odd.statements(None, Lijst(id=UUID(int=1), version=1))
    with pytest.raises(ValueError, match="key and owner"):
        Table("t", ("a",), ("b",), "a", ())
