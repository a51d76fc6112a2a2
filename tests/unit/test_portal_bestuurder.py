"""Journey 5 without servers: the bestuurder's dossier in plain language, the report read
through the API that records it, consent with what the werkgever will see, the PKVW, the
measures marked done and the toelichting, over a fake of the APIs; and a dossier that is not
this bestuurder's shows nothing of it."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi.testclient import TestClient

from services.portal.adapters import EmbeddedInloggen, HttpApis
from services.portal.application import (
    Conflict,
    Gelukt,
    Geweigerd,
    NietGevonden,
    Ongeldig,
    Uitkomst,
    VeldFout,
)
from services.portal.application.bestuurder import (
    STATUS_UITLEG,
    fouten_uit,
    overzicht_uit,
    pkvw_melding,
)
from services.portal.bootstrap import bootstrap
from shared.platform.settings import PortalSettings

DOSSIER_ID = UUID("6f1c0000-0000-4000-8000-000000000001")
ANDER_DOSSIER = UUID("6f1c0000-0000-4000-8000-000000000002")
RAPPORT_ID = UUID("6f1c0000-0000-4000-8000-0000000000b1")
EIGEN = UUID("6f1c0000-0000-4000-8000-0000000000c1")
VAN_WERKGEVER = UUID("6f1c0000-0000-4000-8000-0000000000c2")
NU = datetime(2026, 5, 13, 9, 0, tzinfo=UTC)
BEVINDING = "De achterdeur heeft geen inbraakwerend slot."


def _dossier(status: str = "goedgekeurd", instemming: str | None = None) -> dict[str, Any]:
    return {
        "aanvraag_id": str(DOSSIER_ID),
        "status": status,
        "ingediend_op": "2026-05-01T08:00:00Z",
        "afspraken": [
            {
                "soort": "gesprek_bestuurder",
                "gepland_op": "2026-05-06T12:00:00Z",
                "status": "gevoerd",
            }
        ],
        "rapport": {
            "rapport_id": str(RAPPORT_ID),
            "goedgekeurde_versie": 2,
            "instemming": instemming,
        },
        "pkvw": {"status": "geen"},
        "maatregelen": [
            {"maatregel_id": str(EIGEN), "uitgevoerd_op": None},
            {"maatregel_id": str(VAN_WERKGEVER), "uitgevoerd_op": None},
        ],
        "toelichtingen": [],
    }


class FakeApis:
    """The services as the bestuurder's pages call them: one dossier is this person's."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.instemming: str | None = None
        self.stap_answer: Uitkomst = Gelukt({})
        self.lijst: list[dict[str, Any]] = [_dossier()]
        self.lijst_answer: Uitkomst | None = None

    def als(self, token: str | None, herkomst: str | None = None) -> FakeApis:
        return self

    def dossiers(self, filters: Mapping[str, str | int]) -> Uitkomst:
        self.calls.append(("dossiers", dict(filters)))
        return self.lijst_answer or Gelukt({}, tuple(self.lijst))

    def dossier(self, aanvraag_id: UUID) -> Uitkomst:
        self.calls.append(("dossier", aanvraag_id))
        if aanvraag_id != DOSSIER_ID:
            return NietGevonden()
        return Gelukt(_dossier())

    def rapport_status(self, rapport_id: UUID) -> Uitkomst:
        return Gelukt(
            {"goedgekeurde_versie": 2, "instemming": self.instemming, "rapport_id": str(rapport_id)}
        )

    def pkvw(self, aanvraag_id: UUID) -> Uitkomst:
        return Gelukt({"status": "verklaring", "geldig": False})

    def lees_rapport(self, rapport_id: UUID) -> Uitkomst:
        self.calls.append(("lees_rapport", rapport_id))
        return Gelukt(
            {
                "rapport_id": str(RAPPORT_ID),
                "aanvraag_id": str(DOSSIER_ID),
                "versie": 2,
                "opgesteld_op": "2026-05-07T10:00:00Z",
                "inhoud": {
                    "bevindingen": {
                        "werk": "Balie zonder afscherming.",
                        "wonen": BEVINDING,
                        "informatie": "Adres te herleiden.",
                        "verplaatsen": "Vaste routes.",
                    },
                    "maatregelen": [
                        {
                            "maatregel_id": str(EIGEN),
                            "domein": "verplaatsen",
                            "omschrijving": "Wissel routes af.",
                            "kosten": "kosteloos",
                            "uitvoerder": "bestuurder",
                            "prioriteit": "middel",
                        },
                        {
                            "maatregel_id": str(VAN_WERKGEVER),
                            "domein": "wonen",
                            "omschrijving": "Hang- en sluitwerk op de achterdeur.",
                            "kosten": "met_kosten",
                            "uitvoerder": "werkgever",
                            "prioriteit": "hoog",
                        },
                    ],
                },
            }
        )

    def maatregelen(self, aanvraag_id: UUID) -> Uitkomst:
        if aanvraag_id != DOSSIER_ID:
            return NietGevonden()
        return Gelukt(
            {
                "aanvraag_id": str(DOSSIER_ID),
                "rapport_id": str(RAPPORT_ID),
                "versie": 2,
                "pkvw": {"status": "geen"},
                "maatregelen": [
                    {"maatregel_id": str(EIGEN), "status": "open", "betaalt": "direct_uitvoerbaar"},
                    {
                        "maatregel_id": str(VAN_WERKGEVER),
                        "status": "open",
                        "betaalt": "wacht_op_pkvw",
                    },
                ],
            }
        )

    def geef_instemming(self, rapport_id: UUID, instemming: bool) -> Uitkomst:
        self.calls.append(("instemming", (rapport_id, instemming)))
        return self.stap_answer

    def meld_pkvw(self, aanvraag_id: UUID, melding: Mapping[str, Any]) -> Uitkomst:
        self.calls.append(("pkvw", dict(melding)))
        return self.stap_answer

    def voer_maatregel_uit(self, maatregel_id: UUID) -> Uitkomst:
        self.calls.append(("uitgevoerd", maatregel_id))
        return self.stap_answer

    def vraag_toelichting_aan(self, aanvraag_id: UUID) -> Uitkomst:
        self.calls.append(("toelichting", aanvraag_id))
        return self.stap_answer


def signed_in(apis: FakeApis, persoon: str = "bst-demo") -> tuple[TestClient, str]:
    app = bootstrap(
        PortalSettings(),
        apis=apis,
        inloggen=EmbeddedInloggen(secrets.token_bytes(32), "weerbaar-embedded", "weerbaar"),
        session_key=secrets.token_bytes(32),
        klok=lambda: NU,
    )
    portal = TestClient(app, base_url="http://portal.test")
    csrf = _csrf(portal.get("/inloggen/demo").text)
    page = portal.post("/inloggen/demo", data={"csrf": csrf, "persoon": persoon})
    return portal, _csrf(page.text)


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


def test_every_status_is_explained_with_what_comes_next() -> None:
    statuses = {
        "ingediend",
        "contact_opgenomen",
        "gesprekken_gepland",
        "gesprekken_gevoerd",
        "rapport_in_opstelling",
        "ter_toetsing",
        "afgekeurd",
        "goedgekeurd",
        "vrijgegeven",
        "instemming_geweigerd",
        "in_uitvoering",
        "afgesloten",
        "ingetrokken",
    }
    assert set(STATUS_UITLEG) == statuses
    assert all(waar and wat_nu for waar, wat_nu in STATUS_UITLEG.values())


def test_my_only_dossier_is_shown_with_where_it_stands_and_a_clear_link() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    page = portal.get("/bestuurder/dossiers")
    assert page.status_code == 200
    mijn = page.text.split('id="mijn-dossiers"')[1].split("</section>")[0]
    assert "Het rapport is goedgekeurd en staat voor u klaar." in mijn
    assert f'href="/bestuurder/dossiers/{DOSSIER_ID}">Open mijn dossier</a>' in mijn
    assert "vrijdag 1 mei 2026" in mijn
    # Intake decides which dossiers are this person's, from the token: no filter names them.
    assert apis.calls == [("dossiers", {"limit": 26})]
    # Nothing of the report is read for the list, and the look-up by number stays.
    assert BEVINDING not in page.text
    assert 'action="/bestuurder/zoeken"' in page.text


def test_several_dossiers_are_a_list_newest_first_and_none_is_said_so() -> None:
    apis = FakeApis()
    apis.lijst = [
        _dossier("ingediend") | {"aanvraag_id": str(ANDER_DOSSIER)},
        _dossier("ingetrokken"),
    ]
    portal, _ = signed_in(apis)
    page = portal.get("/bestuurder/dossiers").text
    tabel = page.split('id="mijn-dossiers"')[1].split("</table>")[0]
    assert tabel.index(str(ANDER_DOSSIER)) < tabel.index(str(DOSSIER_ID))
    assert "Uw aanmelding is ontvangen." in tabel
    assert "U hebt de aanvraag ingetrokken." in tabel
    apis.lijst = []
    assert "Er is nog geen dossier dat bij u hoort." in portal.get("/bestuurder/dossiers").text


def test_a_refused_list_shows_nothing() -> None:
    apis = FakeApis()
    apis.lijst_answer = Geweigerd()
    portal, _ = signed_in(apis)
    page = portal.get("/bestuurder/dossiers")
    assert page.status_code == 403
    assert str(DOSSIER_ID) not in page.text


def test_approvals_consent_is_shown_before_intake_has_heard_of_it() -> None:
    gegeven = overzicht_uit(_dossier(), {"instemming": "gegeven"}, None)
    assert gegeven.status == "vrijgegeven"
    assert "uw werkgever heeft het rapport ontvangen" in gegeven.waar
    geweigerd = overzicht_uit(_dossier(), {"instemming": "geweigerd"}, None)
    assert geweigerd.status == "instemming_geweigerd"
    nog_niet = overzicht_uit(_dossier("ter_toetsing") | {"rapport": None}, None, None)
    assert not nog_niet.rapport_klaar and not nog_niet.toelichting_mogelijk


def test_the_dossier_page_says_where_it_stands_and_never_reads_the_report() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    page = portal.get(f"/bestuurder/dossiers/{DOSSIER_ID}")
    assert page.status_code == 200
    assert "Het rapport is goedgekeurd en staat voor u klaar." in page.text
    assert "Lees het rapport en beslis of uw werkgever het mag ontvangen." in page.text
    assert "Verklaring (het politiekeurmerk is aangevraagd)" in page.text
    assert "lees_rapport" not in [naam for naam, _ in apis.calls]


def test_reading_the_report_goes_through_the_api_that_records_it() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    page = portal.get(f"/bestuurder/dossiers/{DOSSIER_ID}/rapport")
    assert page.status_code == 200
    assert BEVINDING in page.text
    assert ("lees_rapport", RAPPORT_ID) in apis.calls
    # No content in the title (only "Adviesrapport").
    assert re.search(r"<title>Adviesrapport – Weerbaar bestuur</title>", page.text)


@pytest.mark.parametrize("pad", ["rapport", "maatregelen"])
@pytest.mark.parametrize("herkomst", ["cross-site", "same-site", "Cross-Site"])
def test_a_link_from_another_site_reads_nothing_until_the_person_opens_it(
    pad: str, herkomst: str
) -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    url = f"/bestuurder/dossiers/{DOSSIER_ID}/{pad}"
    apis.calls.clear()
    page = portal.get(url, headers={"Sec-Fetch-Site": herkomst})
    # Another site's link records no read: the API is not asked anything, the page shows
    # nothing of the report and offers to open it from the portal itself.
    assert page.status_code == 200
    assert apis.calls == []
    assert BEVINDING not in page.text and "Wissel routes af." not in page.text
    assert "via een link op een andere website" in page.text
    assert re.search(rf'<a [^>]*href="{re.escape(url)}">Rapport openen</a>', page.text)
    assert page.headers["Cache-Control"] == "no-store"

    geopend = portal.get(url, headers={"Sec-Fetch-Site": "same-origin"})
    assert geopend.status_code == 200
    assert apis.calls.count(("lees_rapport", RAPPORT_ID)) == 1
    assert "via een link op een andere website" not in geopend.text


@pytest.mark.parametrize("herkomst", ["same-origin", "none", None])
def test_the_report_opened_in_the_portal_typed_or_without_the_header_is_read(
    herkomst: str | None,
) -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    headers = {"Sec-Fetch-Site": herkomst} if herkomst is not None else {}
    page = portal.get(f"/bestuurder/dossiers/{DOSSIER_ID}/rapport", headers=headers)
    assert page.status_code == 200 and BEVINDING in page.text
    assert apis.calls.count(("lees_rapport", RAPPORT_ID)) == 1


def test_a_link_from_another_site_to_a_report_still_refuses_another_role() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis, "wg-demo")
    page = portal.get(
        f"/bestuurder/dossiers/{DOSSIER_ID}/rapport", headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert page.status_code == 403 and "Rapport openen" not in page.text


def test_another_bestuurders_dossier_shows_nothing_of_it() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis, "bst2-demo")
    for pad in ("", "/rapport", "/instemming", "/maatregelen"):
        page = portal.get(f"/bestuurder/dossiers/{ANDER_DOSSIER}{pad}")
        assert page.status_code == 404, pad
        assert "Er is geen dossier met dit nummer dat bij u hoort." in page.text
        assert BEVINDING not in page.text
    refused = portal.post(
        f"/bestuurder/dossiers/{ANDER_DOSSIER}/instemming", data={"csrf": csrf, "instemming": "ja"}
    )
    assert refused.status_code == 404
    assert "instemming" not in [naam for naam, _ in apis.calls]


def test_the_consent_page_says_what_the_werkgever_will_see_and_records_the_choice() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    page = portal.get(f"/bestuurder/dossiers/{DOSSIER_ID}/instemming")
    assert "Als u instemt, ziet uw werkgever" in page.text
    assert "het hele goedgekeurde rapport (versie 2)" in page.text
    assert "Uw werkgever krijgt het rapport niet en ziet de maatregelen niet." in page.text
    done = portal.post(
        f"/bestuurder/dossiers/{DOSSIER_ID}/instemming",
        data={"csrf": csrf, "instemming": "ja"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert ("instemming", (RAPPORT_ID, True)) in apis.calls
    apis.instemming = "gegeven"
    after = portal.get(done.headers["location"])
    assert "U hebt ingestemd. Uw werkgever ontvangt het rapport." in after.text
    assert 'name="instemming"' not in after.text  # final: nothing left to choose


def test_consent_without_a_choice_is_an_error_at_the_field() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    page = portal.post(f"/bestuurder/dossiers/{DOSSIER_ID}/instemming", data={"csrf": csrf})
    assert page.status_code == 422
    assert 'href="#instemming-instemming"' in page.text
    assert 'id="instemming-instemming-fout"' in page.text
    assert "<title>Fout: Delen met uw werkgever" in page.text
    assert "instemming" not in [naam for naam, _ in apis.calls]


def test_the_pkvw_is_sent_as_the_api_wants_and_its_refusal_is_shown_at_the_field() -> None:
    melding, fouten = pkvw_melding(
        {"status": "certificaat", "afgegeven_op": "2026-05-01", "nummer": " PKVW-1 "}
    )
    assert melding == {"status": "certificaat", "afgegeven_op": "2026-05-01", "nummer": "PKVW-1"}
    assert pkvw_melding({"status": "verklaring", "afgegeven_op": ""})[0] == {"status": "verklaring"}
    geen, fouten = pkvw_melding({"afgegeven_op": "morgen"})
    assert geen is None and {f.veld for f in fouten.fouten} == {"status", "afgegeven_op"}

    apis = FakeApis()
    apis.stap_answer = Ongeldig((VeldFout("body.afgegeven_op", "verplicht_bij_certificaat"),))
    portal, csrf = signed_in(apis)
    page = portal.post(
        f"/bestuurder/dossiers/{DOSSIER_ID}/pkvw", data={"csrf": csrf, "status": "certificaat"}
    )
    assert page.status_code == 422
    assert "Vul de datum van afgifte van het certificaat in." in page.text
    assert 'href="#pkvw-afgegeven_op"' in page.text
    assert 'id="pkvw-afgegeven_op"' in page.text


def test_a_409_is_explained_and_a_refusal_ends_the_page() -> None:
    fouten = fouten_uit("toelichting", Conflict("Nog niet ontvangen."), {})
    assert fouten.melding and "Deze stap past nu niet in het proces." in fouten.melding
    apis = FakeApis()
    apis.stap_answer = Geweigerd()
    portal, csrf = signed_in(apis)
    page = portal.post(
        f"/bestuurder/dossiers/{DOSSIER_ID}/maatregelen/{VAN_WERKGEVER}/uitgevoerd",
        data={"csrf": csrf},
    )
    assert page.status_code == 403
    assert "Hang- en sluitwerk" not in page.text


def test_my_measures_can_be_marked_done_and_the_werkgevers_cannot() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    page = portal.get(f"/bestuurder/dossiers/{DOSSIER_ID}/maatregelen")
    assert "Wissel routes af." in page.text
    assert "Kost niets: u kunt deze maatregel direct uitvoeren." in page.text
    assert f"/maatregelen/{EIGEN}/uitgevoerd" in page.text
    assert f"/maatregelen/{VAN_WERKGEVER}/uitgevoerd" not in page.text
    done = portal.post(
        f"/bestuurder/dossiers/{DOSSIER_ID}/maatregelen/{EIGEN}/uitgevoerd",
        data={"csrf": csrf},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert ("uitgevoerd", EIGEN) in apis.calls


@pytest.mark.parametrize("persoon", ["sec-demo", "wg-demo"])
def test_the_pages_are_for_the_bestuurder_only(persoon: str) -> None:
    portal, csrf = signed_in(FakeApis(), persoon)
    page = portal.get(f"/bestuurder/dossiers/{DOSSIER_ID}")
    assert page.status_code == 403
    assert "Deze pagina is voor de bestuurder." in page.text
    zoek = portal.post(
        "/bestuurder/zoeken",
        data={"csrf": csrf, "nummer": str(DOSSIER_ID)},
        follow_redirects=False,
    )
    assert zoek.status_code == 403
    assert "Deze pagina is voor de bestuurder." in zoek.text


def test_a_toelichting_is_asked_for() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    done = portal.post(f"/bestuurder/dossiers/{DOSSIER_ID}/toelichting", data={"csrf": csrf})
    assert done.status_code == 200
    assert "Uw verzoek om een toelichting is ontvangen." in done.text
    assert ("toelichting", DOSSIER_ID) in apis.calls


def test_searching_a_number_opens_my_dossier_or_says_why_not() -> None:
    portal, csrf = signed_in(FakeApis())
    page = portal.get("/bestuurder/dossiers").text
    zoekformulier = page.split('<form method="post" action="/bestuurder/zoeken"')[1].split(
        "</form>"
    )[0]
    assert f'name="csrf" value="{csrf}"' in zoekformulier
    gevonden = portal.post(
        "/bestuurder/zoeken",
        data={"csrf": csrf, "nummer": str(DOSSIER_ID)},
        follow_redirects=False,
    )
    assert gevonden.status_code == 303
    assert gevonden.headers["location"] == f"/bestuurder/dossiers/{DOSSIER_ID}"
    zoek = portal.post("/bestuurder/zoeken", data={"csrf": csrf, "nummer": "Jan de Vries"})
    assert zoek.status_code == 422
    assert 'href="#nummer">Dat is geen dossiernummer.' in zoek.text
    assert 'id="nummer-fout"' in zoek.text and 'aria-invalid="true"' in zoek.text
    assert "Jan de Vries" not in zoek.text


def test_searching_another_bestuurders_number_shows_nothing_of_it() -> None:
    portal, csrf = signed_in(FakeApis(), "bst2-demo")
    zoek = portal.post("/bestuurder/zoeken", data={"csrf": csrf, "nummer": str(ANDER_DOSSIER)})
    assert zoek.status_code == 404
    assert "Er is geen dossier met dit nummer dat bij u hoort." in zoek.text
    assert BEVINDING not in zoek.text


def test_a_search_without_its_csrf_token_is_refused() -> None:
    portal, _ = signed_in(FakeApis())
    for data in ({}, {"csrf": "fout"}):
        refused = portal.post(
            "/bestuurder/zoeken",
            data={**data, "nummer": str(DOSSIER_ID)},
            follow_redirects=False,
        )
        assert refused.status_code == 403
        assert "Formulier verlopen" in refused.text


def test_a_number_in_the_address_is_no_search_and_is_not_looked_up() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    old = portal.get(f"/bestuurder/zoeken?nummer={DOSSIER_ID}", follow_redirects=False)
    assert old.status_code == 303
    assert old.headers["location"] == "/bestuurder/dossiers"
    assert [call for call in apis.calls if call[0] == "dossier"] == []


def test_the_adapters_call_each_owner_with_the_bestuurders_token() -> None:
    seen: list[tuple[str, str, str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(
            (
                request.url.host,
                request.method,
                request.url.path,
                request.content,
            )
        )
        assert request.headers["authorization"] == "Bearer tok"
        return httpx.Response(200, json={})

    urls = {s: f"http://{s}.test" for s in ("intake", "scheduling", "assessment", "approval")}
    apis = HttpApis(urls, transport=httpx.MockTransport(handler)).als("tok")
    apis.lees_rapport(RAPPORT_ID)
    apis.pkvw(DOSSIER_ID)
    apis.meld_pkvw(DOSSIER_ID, {"status": "verklaring"})
    apis.maatregelen(DOSSIER_ID)
    apis.voer_maatregel_uit(EIGEN)
    apis.rapport_status(RAPPORT_ID)
    apis.geef_instemming(RAPPORT_ID, False)
    apis.vraag_toelichting_aan(DOSSIER_ID)
    assert [(host, method, path) for host, method, path, _ in seen] == [
        ("assessment.test", "GET", f"/rapporten/{RAPPORT_ID}"),
        ("assessment.test", "GET", f"/aanvragen/{DOSSIER_ID}/pkvw"),
        ("assessment.test", "POST", f"/aanvragen/{DOSSIER_ID}/pkvw"),
        ("assessment.test", "GET", f"/aanvragen/{DOSSIER_ID}/maatregelen"),
        ("assessment.test", "POST", f"/maatregelen/{EIGEN}/uitgevoerd"),
        ("approval.test", "GET", f"/rapporten/{RAPPORT_ID}/status"),
        ("approval.test", "POST", f"/rapporten/{RAPPORT_ID}/instemming"),
        ("scheduling.test", "POST", f"/aanvragen/{DOSSIER_ID}/toelichting"),
    ]
    assert json.loads(seen[2][3]) == {"status": "verklaring"}
    assert json.loads(seen[6][3]) == {"instemming": False}


def test_the_two_demo_bestuurders_are_told_apart_on_the_sign_in_page() -> None:
    portal, _ = signed_in(FakeApis())
    page = portal.get("/inloggen/demo").text
    for sleutel in ("bst-demo", "bst2-demo"):
        assert f'aria-describedby="persoon-{sleutel}"' in page
        assert f'id="persoon-{sleutel}"' in page
    assert "andere.bestuurder@example.org" in page
