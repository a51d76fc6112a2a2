"""GET /aanvragen: the secretariat's list with filters answers the stored views as they are.

The list sends the stored views without parsing and re-validating them (the benchmark showed that
was most of its time); what it answers must still be exactly the dossiers the filters select, each
the same view ``GET /aanvragen/{id}`` shows.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.inprocess import InProcessSystem, aanmelding

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


def test_an_offset_is_refused_together_with_the_keyset(system: InProcessSystem) -> None:
    keyset = {
        "na_ingediend_op": "2026-01-05T10:00:00+00:00",
        "na_aanvraag_id": "00000000-0000-4000-8000-000000000000",
    }
    headers = system.headers("secretariaat")
    response = system.clients["intake"].get(
        "/aanvragen", params={**keyset, "offset": 5000}, headers=headers
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.offset"
    for params in (keyset, {"offset": 5}):
        assert system.clients["intake"].get("/aanvragen", params=params, headers=headers).is_success


# --- a party's own list --------------------------------------------------------------------------


def _party_list(
    system: InProcessSystem, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    response = system.clients["intake"].get("/aanvragen", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: list[dict[str, Any]] = response.json()
    return body


def _ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["aanvraag_id"] for row in rows]


def test_a_werkgever_lists_only_its_own_organisations_dossiers(system: InProcessSystem) -> None:
    eigen = [system.dossier("ingediend", "GM0363").aanvraag_id for _ in range(2)]
    contact = system.dossier("contact", "GM0363").aanvraag_id
    ander = system.dossier("ingediend", "GM0599").aanvraag_id
    werkgever = system.headers("werkgever", "wg-1", organisatie="GM0363")

    rows = _party_list(system, werkgever)
    assert {str(i) for i in (*eigen, contact)} <= set(_ids(rows))
    assert str(ander) not in _ids(rows)
    assert {row["organisatie_code"] for row in rows} == {"GM0363"}
    # The whole list is the secretariat's list of that organisation, newest first.
    assert _ids(rows) == _ids(_list(system, organisatie_code="GM0363"))
    # Its own organisation named, and other filters, narrow the list; they never widen it.
    assert _ids(_party_list(system, werkgever, organisatie_code="GM0363")) == _ids(rows)
    assert str(contact) in _ids(_party_list(system, werkgever, status="contact_opgenomen"))
    assert {r["status"] for r in _party_list(system, werkgever, status="ingediend")} == {
        "ingediend"
    }

    # A filter on another organisation is refused, on record, and answers nothing of it.
    mark = system.mark("intake")
    crafted = system.clients["intake"].get(
        "/aanvragen", params={"organisatie_code": "GM0599"}, headers=werkgever
    )
    assert (crafted.status_code, crafted.json()["code"]) == (403, "andere_organisatie")
    assert str(ander) not in crafted.text
    (refusal,) = system.refusals_since("intake", mark)
    assert (refusal.actie, refusal.status_code, refusal.actor_role) == (
        "GET /aanvragen",
        403,
        "werkgever",
    )

    # The other organisation's werkgever sees its own dossier, and none of the first one's.
    anderen = _party_list(system, system.headers("werkgever", "wg-9", organisatie="GM0599"))
    assert str(ander) in _ids(anderen)
    assert not {str(i) for i in (*eigen, contact)} & set(_ids(anderen))

    # A werkgever token without an organisation lists nothing: refused on record.
    mark = system.mark("intake")
    zonder = system.clients["intake"].get("/aanvragen", headers=system.headers("werkgever"))
    assert (zonder.status_code, zonder.json()["code"]) == (403, "geen_organisatie")
    assert len(system.refusals_since("intake", mark)) == 1


def test_a_werkgevers_rows_show_no_measures_before_the_release(system: InProcessSystem) -> None:
    goedgekeurd = system.dossier("goedgekeurd", "GM0344")
    vrijgegeven = system.dossier("vrijgegeven", "GM0344")
    werkgever = system.headers("werkgever", "wg-1", organisatie="GM0344")

    rows = {row["aanvraag_id"]: row for row in _party_list(system, werkgever)}
    assert _dossier(system, goedgekeurd.aanvraag_id)["maatregelen"], "the report has measures"
    assert rows[str(goedgekeurd.aanvraag_id)]["maatregelen"] == []
    assert rows[str(vrijgegeven.aanvraag_id)]["maatregelen"]
    # Each row is exactly what the werkgever's GET /aanvragen/{id} shows it.
    for aanvraag_id, row in rows.items():
        single = system.clients["intake"].get(f"/aanvragen/{aanvraag_id}", headers=werkgever)
        assert single.status_code == 200
        assert row == single.json()


def test_a_bestuurder_lists_only_the_dossiers_bound_to_its_email(system: InProcessSystem) -> None:
    eerste = system.dossier("contact", "GM0363")
    # A second dossier of the same bestuurder, at another organisation.
    tweede = system.call(
        "intake", "POST", "/aanvragen", json=aanmelding(eerste.email, "GM0599"), expect=201
    )["aanvraag_id"]
    system.pump()
    vreemd = system.dossier("contact", "GM0363")  # another bestuurder, same organisation
    bestuurder = system.bestuurder(eerste)

    rows = _party_list(system, bestuurder)
    assert sorted(_ids(rows)) == sorted([tweede, str(eerste.aanvraag_id)]), "own dossiers"
    # Newest first, ties by number (the in-process clock stands still).
    assert [(r["ingediend_op"], r["aanvraag_id"]) for r in rows] == sorted(
        ((r["ingediend_op"], r["aanvraag_id"]) for r in rows), reverse=True
    )
    # The binding is the e-mail's hash, as for GET /aanvragen/{id}: case does not matter.
    hoofdletters = system.headers("bestuurder", "bst-1", email=eerste.email.upper())
    assert _ids(_party_list(system, hoofdletters)) == _ids(rows)
    for row in rows:
        single = system.clients["intake"].get(
            f"/aanvragen/{row['aanvraag_id']}", headers=bestuurder
        )
        assert single.status_code == 200
        assert row == single.json()

    # Crafted filters only narrow the own list: never another bestuurder's dossier.
    for params in (
        {"organisatie_code": "GM0363"},
        {"organisatie_code": "GM0599"},
        {"status": "contact_opgenomen"},
        {"status": "ingediend"},
        {"deadline_verstreken": False},
        {"offset": 1},
        {"limit": 500},
    ):
        selected = _ids(_party_list(system, bestuurder, **params))
        assert set(selected) <= set(_ids(rows)), params
        assert str(vreemd.aanvraag_id) not in selected, params
    assert _ids(_party_list(system, bestuurder, organisatie_code="GM0599")) == [tweede]
    assert _ids(_party_list(system, bestuurder, status="contact_opgenomen")) == [
        str(eerste.aanvraag_id)
    ]

    # Keyset paging walks the own list, one at a time.
    page = _party_list(system, bestuurder, limit=1)
    assert _ids(page) == _ids(rows)[:1]
    after = _party_list(
        system,
        bestuurder,
        limit=1,
        na_ingediend_op=page[0]["ingediend_op"],
        na_aanvraag_id=page[0]["aanvraag_id"],
    )
    assert _ids(after) == _ids(rows)[1:]

    # The other bestuurder sees its own dossier only; an unknown e-mail sees an empty list.
    assert _ids(_party_list(system, system.bestuurder(vreemd))) == [str(vreemd.aanvraag_id)]
    niemand = system.headers("bestuurder", "bst-8", email="niemand@example.org")
    assert _party_list(system, niemand) == []

    # A bestuurder token without an e-mail lists nothing: refused on record.
    mark = system.mark("intake")
    zonder = system.clients["intake"].get("/aanvragen", headers=system.headers("bestuurder"))
    assert (zonder.status_code, zonder.json()["code"]) == (403, "geen_email")
    assert len(system.refusals_since("intake", mark)) == 1
