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


def test_the_bva_lists_only_the_dossiers_whose_report_awaits_review(
    system: InProcessSystem,
) -> None:
    wacht = system.dossier("ter_toetsing", "GM0599").aanvraag_id
    system.dossier("ingediend", "GM0599")
    intake = system.clients["intake"]
    bva = system.headers("bva")

    queue = intake.get("/aanvragen", params={"status": "ter_toetsing"}, headers=bva)
    assert queue.status_code == 200
    assert str(wacht) in {row["aanvraag_id"] for row in queue.json()}
    assert {row["status"] for row in queue.json()} == {"ter_toetsing"}
    # Any other selection stays the secretariat's and compliance's, refused on record.
    for params in ({}, {"status": "ingediend"}, {"organisatie_code": "GM0599"}):
        response = intake.get("/aanvragen", params=params, headers=bva)
        assert (response.status_code, response.json()["code"]) == (403, "alleen_ter_toetsing")


def _dossier(system: InProcessSystem, aanvraag_id: object) -> dict[str, Any]:
    response = system.clients["intake"].get(
        f"/aanvragen/{aanvraag_id}", headers=system.headers("secretariaat")
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _consent(system: InProcessSystem, d: Any, instemming: bool) -> None:
    system.call(
        "approval",
        "POST",
        f"/rapporten/{d.rapport_id}/instemming",
        system.bestuurder(d),
        json={"instemming": instemming},
    )
    system.pump()


def test_a_measure_carried_out_before_consent_keeps_the_dossier_among_pending_consents(
    system: InProcessSystem,
) -> None:
    d = system.dossier("goedgekeurd")
    system.call(
        "assessment",
        "POST",
        f"/maatregelen/{d.maatregel_bestuurder}/uitgevoerd",
        system.bestuurder(d),
    )
    system.pump()

    dossier = _dossier(system, d.aanvraag_id)
    assert dossier["status"] == "goedgekeurd"
    assert {m["maatregel_id"]: bool(m["uitgevoerd_op"]) for m in dossier["maatregelen"]} == {
        str(d.maatregel_bestuurder): True,
        str(d.maatregel_werkgever): False,
    }
    pending = {row["aanvraag_id"] for row in _list(system, status="goedgekeurd")}
    assert str(d.aanvraag_id) in pending

    # The bestuurder refuses, and then consents after all: from the decision on, the measure
    # carried out moves the dossier on.
    _consent(system, d, False)
    assert _dossier(system, d.aanvraag_id)["status"] == "in_uitvoering"
    assert str(d.aanvraag_id) not in {r["aanvraag_id"] for r in _list(system, status="goedgekeurd")}
    _consent(system, d, True)
    dossier = _dossier(system, d.aanvraag_id)
    assert (dossier["status"], dossier["rapport"]["instemming"]) == ("in_uitvoering", "gegeven")
    assert dossier["rapport"]["vrijgegeven_op"] is not None


def test_a_refused_consent_turned_into_consent_releases_the_dossier(
    system: InProcessSystem,
) -> None:
    d = system.dossier("geweigerd")
    assert _dossier(system, d.aanvraag_id)["status"] == "instemming_geweigerd"
    _consent(system, d, True)
    dossier = _dossier(system, d.aanvraag_id)
    assert (dossier["status"], dossier["rapport"]["instemming"]) == ("vrijgegeven", "gegeven")
    # Consent once given is final.
    undo = system.clients["approval"].post(
        f"/rapporten/{d.rapport_id}/instemming",
        json={"instemming": False},
        headers=system.bestuurder(d),
    )
    assert (undo.status_code, undo.json()["code"]) == (409, "al_vrijgegeven")
    # The werkgever may now read the report and carry out its measure.
    werkgever = system.headers("werkgever", "wg-1", organisatie=d.organisatie)
    assert (
        system.clients["assessment"]
        .get(f"/rapporten/{d.rapport_id}", headers=werkgever)
        .status_code
        == 200
    )
    system.call("assessment", "POST", f"/maatregelen/{d.maatregel_werkgever}/uitgevoerd", werkgever)
    system.pump()
    assert _dossier(system, d.aanvraag_id)["status"] == "in_uitvoering"


def test_keyset_paging_walks_the_list_without_gaps_or_repeats(system: InProcessSystem) -> None:
    for _ in range(3):
        system.dossier("ingediend", "GM0344")
    everything = _list(system, organisatie_code="GM0344")
    assert len(everything) >= 3
    walked: list[str] = []
    params: dict[str, Any] = {"organisatie_code": "GM0344", "limit": 2}
    while True:
        page = _list(system, **params)
        walked += [row["aanvraag_id"] for row in page]
        if len(page) < 2:
            break
        params |= {
            "na_ingediend_op": page[-1]["ingediend_op"],
            "na_aanvraag_id": page[-1]["aanvraag_id"],
        }
    assert walked == [row["aanvraag_id"] for row in everything]


def test_keyset_paging_needs_both_of_its_keys(system: InProcessSystem) -> None:
    response = system.clients["intake"].get(
        "/aanvragen",
        params={"na_ingediend_op": "2026-01-05T10:00:00+00:00"},
        headers=system.headers("secretariaat"),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.na_aanvraag_id"
