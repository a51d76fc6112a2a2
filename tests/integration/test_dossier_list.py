"""GET /aanvragen: the secretariat's list with filters answers the stored views as they are.

The list sends the stored views without parsing and re-validating them (the benchmark showed that
was most of its time); what it answers must still be exactly the dossiers the filters select, each
the same view ``GET /aanvragen/{id}`` shows.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.inprocess import InProcessSystem

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def system(inprocess_system: InProcessSystem) -> InProcessSystem:
    """The five services in one process, on a database of their own."""
    return inprocess_system


def _list(system: InProcessSystem, **params: Any) -> list[dict[str, Any]]:
    response = system.clients["intake"].get(
        "/aanvragen", params=params, headers=system.headers("secretariaat")
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    body: list[dict[str, Any]] = response.json()
    return body


def test_filters_select_the_dossiers_and_each_is_the_dossiers_own_view(
    system: InProcessSystem,
) -> None:
    ingediend = {system.dossier("ingediend", "GM0363").aanvraag_id for _ in range(2)}
    contact = {system.dossier("contact", "GM0599").aanvraag_id for _ in range(2)}
    elders = system.dossier("contact", "GM0363").aanvraag_id

    def ids(rows: list[dict[str, Any]]) -> set[str]:
        return {row["aanvraag_id"] for row in rows}

    assert ids(_list(system, status="ingediend")) == {str(i) for i in ingediend}
    assert ids(_list(system, status="contact_opgenomen", organisatie_code="GM0599")) == {
        str(i) for i in contact
    }
    assert ids(_list(system, organisatie_code="GM0363")) == {str(i) for i in {*ingediend, elders}}
    assert ids(_list(system, deadline_verstreken=True)) == set()
    everything = _list(system)
    assert ids(everything) == {str(i) for i in {*ingediend, *contact, elders}}
    assert [row["ingediend_op"] for row in everything] == sorted(
        (row["ingediend_op"] for row in everything), reverse=True
    )
    page = _list(system, limit=2, offset=1)
    assert [row["aanvraag_id"] for row in page] == [row["aanvraag_id"] for row in everything[1:3]]

    for row in everything:
        single = system.clients["intake"].get(
            f"/aanvragen/{row['aanvraag_id']}", headers=system.headers("secretariaat")
        )
        assert single.status_code == 200
        assert row == single.json()


def test_an_unknown_status_is_refused_and_an_empty_selection_is_an_empty_list(
    system: InProcessSystem,
) -> None:
    response = system.clients["intake"].get(
        "/aanvragen", params={"status": "bestaat_niet"}, headers=system.headers("secretariaat")
    )
    assert response.status_code == 422
    assert _list(system, organisatie_code="GM9999") == []
