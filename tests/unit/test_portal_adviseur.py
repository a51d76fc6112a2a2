"""Journey 3 without servers: the report's form read and checked, the API's refusals at their
fields, the differences between two versions, and the adviseur's pages over a fake of the APIs
(appointments, a conversation held with the woningscan, drafting, adding a measure, submitting,
the BVA's reasons beside the text)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from fastapi.testclient import TestClient

from services.portal.adapters import EmbeddedInloggen
from services.portal.application import Conflict, Gelukt, NietGevonden, Ongeldig, Uitkomst, VeldFout
from services.portal.application.adviseur import (
    Invoer,
    MaatregelInvoer,
    Stuk,
    concept,
    controleer,
    fouten_uit,
    verschillen_uit,
    woorden_verschil,
)
from services.portal.bootstrap import bootstrap
from shared.platform.settings import PortalSettings

NU = datetime(2026, 5, 13, 14, 0, tzinfo=UTC)
DOSSIER_ID = UUID("6f1c0000-0000-4000-8000-000000000003")
RAPPORT_ID = UUID("6f1c0000-0000-4000-8000-0000000000b1")
HELD = UUID("6f1c0000-0000-4000-8000-0000000000a1")
LATER = UUID("6f1c0000-0000-4000-8000-0000000000a2")
M1, M2 = uuid4(), uuid4()
BEVINDINGEN = {
    "werk": "Dreigmail op het werk.",
    "wonen": "Geen camera bij de voordeur.",
    "informatie": "Adres staat online.",
    "verplaatsen": "Vaste route naar het stadhuis.",
}


def _formulier(**extra: str) -> dict[str, str]:
    waarden = {f"bevinding-{d}": t for d, t in BEVINDINGEN.items()}
    waarden |= {
        "aantal": "3",
        "m0-domein": "wonen",
        "m0-omschrijving": "Camera bij de voordeur",
        "m0-prioriteit": "hoog",
        "m0-uitvoerder": "werkgever",
        "m0-kosten": "met_kosten",
        "m1-omschrijving": "  ",
        "m2-id": str(M1),
        "m2-domein": "informatie",
        "m2-omschrijving": "Adres laten afschermen",
        "m2-prioriteit": "middel",
        "m2-uitvoerder": "bestuurder",
        "m2-kosten": "kosteloos",
    }
    return waarden | extra


# --- the form ------------------------------------------------------------------------------------


def test_the_form_becomes_the_apis_concept_without_blank_rows_and_keeping_ids() -> None:
    invoer = Invoer.uit_formulier(_formulier())
    body = concept(invoer)
    assert body["bevindingen"] == BEVINDINGEN
    assert body["maatregelen"] == [
        {
            "domein": "wonen",
            "omschrijving": "Camera bij de voordeur",
            "prioriteit": "hoog",
            "uitvoerder": "werkgever",
            "kosten": "met_kosten",
        },
        {
            "maatregel_id": str(M1),
            "domein": "informatie",
            "omschrijving": "Adres laten afschermen",
            "prioriteit": "middel",
            "uitvoerder": "bestuurder",
            "kosten": "kosteloos",
        },
    ]
    # A choice the form never offered is no choice; a row more is one blank row.
    vreemd = Invoer.uit_formulier(_formulier(**{"m0-kosten": "gratis", "m2-id": "x"}))
    assert vreemd.maatregelen[0].kosten == "" and vreemd.maatregelen[2].maatregel_id == ""
    assert len(invoer.met_extra_rij().maatregelen) == 4


def test_what_the_form_lacks_is_named_at_its_field() -> None:
    invoer = Invoer.uit_formulier(_formulier(**{"bevinding-werk": " ", "m2-kosten": ""}))
    fouten = controleer(invoer)
    assert [f.veld for f in fouten.fouten] == ["bevinding-werk", "m2-kosten"]
    kosten = fouten.bij("m2-kosten")
    assert kosten is not None and kosten.tekst == "Kies bij maatregel 3: kosten."
    leeg = controleer(Invoer({d: "x" for d in BEVINDINGEN}, (MaatregelInvoer(),)))
    assert [f.veld for f in leeg.fouten] == ["m0-omschrijving"]


def test_the_apis_422_lands_at_the_row_on_the_page_not_the_index_in_the_body() -> None:
    invoer = Invoer.uit_formulier(_formulier())
    fouten = fouten_uit(
        invoer,
        Ongeldig(
            (
                VeldFout("body.maatregelen.1.omschrijving", "string_too_long"),
                VeldFout("body.bevindingen.wonen", "string_pattern_mismatch"),
            )
        ),
    )
    # The second measure in the body is the third row: the blank second row was left out.
    assert [f.veld for f in fouten.fouten] == ["m2-omschrijving", "bevinding-wonen"]
    conflict = fouten_uit(invoer, Conflict("Nog niet gedaan: de woningscan."))
    assert conflict.melding == "Nog niet gedaan: de woningscan."


# --- the differences between versions ------------------------------------------------------------


def _versie(nummer: int, bevindingen: Mapping[str, str], maatregelen: list[Any]) -> dict[str, Any]:
    return {"versie": nummer, "inhoud": {"bevindingen": bevindingen, "maatregelen": maatregelen}}


def _maatregel(maatregel_id: UUID, omschrijving: str, **velden: str) -> dict[str, Any]:
    return {
        "maatregel_id": str(maatregel_id),
        "domein": "wonen",
        "omschrijving": omschrijving,
        "prioriteit": "hoog",
        "uitvoerder": "werkgever",
        "kosten": "met_kosten",
        **velden,
    }


def test_two_versions_differ_word_by_word_and_measure_by_measure() -> None:
    m3 = uuid4()
    een = _versie(
        1,
        BEVINDINGEN,
        [_maatregel(M1, "Camera bij de voordeur"), _maatregel(M2, "Rolluiken")],
    )
    twee = _versie(
        2,
        {**BEVINDINGEN, "informatie": "Adres en telefoon staan online."},
        [
            _maatregel(M1, "Camera bij de voordeur", prioriteit="middel"),
            _maatregel(m3, "Adres laten afschermen", domein="informatie", kosten="kosteloos"),
        ],
    )
    v = verschillen_uit(str(DOSSIER_ID), een, twee, (1, 2))
    informatie = next(b for b in v.bevindingen if b.domein == "informatie")
    assert informatie.gewijzigd
    assert [(s.soort, s.tekst) for s in informatie.stukken] == [
        ("gelijk", "Adres "),
        ("weg", "staat "),
        ("nieuw", "en telefoon staan "),
        ("gelijk", "online."),
    ]
    assert not next(b for b in v.bevindingen if b.domein == "werk").gewijzigd
    soorten = {m.omschrijving: m.soort for m in v.maatregelen}
    assert soorten == {
        "Camera bij de voordeur": "gewijzigd",
        "Adres laten afschermen": "nieuw",
        "Rolluiken": "vervallen",
    }
    gewijzigd = next(m for m in v.maatregelen if m.soort == "gewijzigd")
    assert [(w.veld, w.was, w.wordt) for w in gewijzigd.wijzigingen] == [
        ("Prioriteit", "Hoog", "Middel")
    ]
    assert v.aantal_gewijzigd == 4
    assert woorden_verschil("Een tekst.", "Een tekst.") == (Stuk("gelijk", "Een tekst."),)


# --- the pages over a fake of the APIs -----------------------------------------------------------


def _afspraak(afspraak_id: UUID, soort: str, gepland_op: str, status: str) -> dict[str, Any]:
    return {
        "afspraak_id": str(afspraak_id),
        "aanvraag_id": str(DOSSIER_ID),
        "soort": soort,
        "vorm": "thuis" if soort == "gesprek_bestuurder" else "digitaal",
        "gepland_op": gepland_op,
        "duur_minuten": 120,
        "adviseur_id": "p-" + "a" * 32,
        "video_link": None,
        "status": status,
        "partijen": ["bestuurder"],
        "gevoerd_op": None,
        "woningscan_uitgevoerd_op": None,
    }


class FakeApis:
    """The services as the adviseur's pages call them; answers as told, calls remembered."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.token: str | None = None
        self.stand: dict[str, Any] | None = None
        self.gevoerd_answer: Uitkomst = Gelukt({})
        self.beoordelingen_answer: Uitkomst = NietGevonden()

    def als(self, token: str | None, herkomst: str | None = None) -> FakeApis:
        self.token = token
        return self

    def mijn_afspraken(self, status: str) -> Uitkomst:
        self.calls.append(("mijn_afspraken", status))
        if status == "gepland":
            return Gelukt(
                {},
                (
                    _afspraak(HELD, "gesprek_bestuurder", "2026-05-13T08:00:00Z", "gepland"),
                    _afspraak(LATER, "gesprek_werkgever", "2026-05-20T08:00:00Z", "gepland"),
                ),
            )
        gehouden = _afspraak(HELD, "gesprek_bestuurder", "2026-05-12T08:00:00Z", "gevoerd")
        return Gelukt({}, (gehouden,))

    def leg_gesprek_vast(self, afspraak_id: UUID, woningscan_uitgevoerd: bool) -> Uitkomst:
        self.calls.append(("gevoerd", (afspraak_id, woningscan_uitgevoerd)))
        return self.gevoerd_answer

    def leg_woningscan_vast(self, afspraak_id: UUID) -> Uitkomst:
        self.calls.append(("woningscan", afspraak_id))
        return Gelukt({})

    def rapporten(self, aanvraag_id: UUID) -> Uitkomst:
        return Gelukt({}, () if self.stand is None else (self.stand,))

    def rapport(self, rapport_id: UUID, versie: int | None = None) -> Uitkomst:
        self.calls.append(("rapport", versie))
        return Gelukt(
            {
                "versie": versie or 1,
                "inhoud": {
                    "bevindingen": BEVINDINGEN,
                    "maatregelen": [_maatregel(M1, "Camera bij de voordeur")],
                },
            }
        )

    def stel_rapport_op(
        self, aanvraag_id: UUID, concept: Mapping[str, Any], idempotency_key: str
    ) -> Uitkomst:
        self.calls.append(("opstellen", (dict(concept), idempotency_key)))
        return Gelukt({"rapport_id": str(RAPPORT_ID), "versie": 1})

    def herzie_rapport(self, rapport_id: UUID, concept: Mapping[str, Any]) -> Uitkomst:
        self.calls.append(("herzien", dict(concept)))
        return Gelukt({"rapport_id": str(RAPPORT_ID), "versie": 2})

    def dien_rapport_in(self, rapport_id: UUID) -> Uitkomst:
        self.calls.append(("indienen", rapport_id))
        return Gelukt({})

    def beoordelingen(self, rapport_id: UUID) -> Uitkomst:
        return self.beoordelingen_answer


def signed_in(apis: FakeApis, persoon: str = "adv-demo") -> tuple[TestClient, str]:
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


def test_my_appointments_offer_recording_only_those_that_began() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    page = portal.get("/adviseur/afspraken").text
    assert f"/adviseur/afspraken/{HELD}/gevoerd" in page
    assert f"/adviseur/afspraken/{LATER}/gevoerd" not in page
    assert "De woningscan is tijdens dit gesprek uitgevoerd" in page
    assert ("mijn_afspraken", "gepland") in apis.calls and apis.token is not None

    done = portal.post(
        f"/adviseur/afspraken/{HELD}/gevoerd",
        data={"csrf": csrf, "woningscan": "ja"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert apis.calls[-1] == ("gevoerd", (HELD, True))
    assert "Het gesprek en de woningscan zijn vastgelegd." in portal.get("/adviseur/afspraken").text

    apis.gevoerd_answer = Conflict("Het gesprek is nog niet begonnen.")
    refused = portal.post(f"/adviseur/afspraken/{HELD}/gevoerd", data={"csrf": csrf})
    assert refused.status_code == 409
    assert "Het gesprek is nog niet begonnen." in refused.text
    assert ("gevoerd", (HELD, False)) in apis.calls


def test_a_woningscan_done_after_the_conversation_is_recorded_on_its_own() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    page = portal.get("/adviseur/afspraken").text
    gevoerd = page.split('id="gevoerd-titel"')[1]
    assert "De woningscan is nog niet vastgelegd." in gevoerd
    assert f'href="/adviseur/dossiers/{DOSSIER_ID}/rapport"' in gevoerd
    done = portal.post(
        f"/adviseur/afspraken/{HELD}/woningscan", data={"csrf": csrf}, follow_redirects=False
    )
    assert done.status_code == 303 and apis.calls[-1] == ("woningscan", HELD)
    assert "De woningscan is vastgelegd." in portal.get(done.headers["location"]).text


def test_a_new_report_is_drafted_adding_a_measure_saves_nothing() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    url = f"/adviseur/dossiers/{DOSSIER_ID}/rapport"
    leeg = portal.get(url).text
    assert "Rapport opstellen" in leeg and 'name="m0-omschrijving"' in leeg

    meer = portal.post(url, data={**_formulier(actie="toevoegen"), "csrf": csrf})
    assert meer.status_code == 200
    assert 'name="m3-omschrijving"' in meer.text and "Adres laten afschermen" in meer.text
    assert not [c for c in apis.calls if c[0] in {"opstellen", "herzien"}]

    fout = portal.post(url, data={**_formulier(actie="opslaan"), "csrf": csrf, "m0-domein": ""})
    assert fout.status_code == 422
    assert 'href="#m0-domein"' in fout.text and 'id="m0-domein-fout"' in fout.text
    assert "<title>Fout: Adviesrapport" in fout.text

    sleutel = str(uuid4())
    saved = portal.post(
        url,
        data={**_formulier(actie="opslaan"), "csrf": csrf, "sleutel": sleutel},
        follow_redirects=False,
    )
    assert saved.status_code == 303
    naam, (body, key) = apis.calls[-1]
    assert (naam, key, len(body["maatregelen"])) == ("opstellen", sleutel, 2)


def test_after_a_rejection_the_reasons_stand_beside_the_text_and_a_revision_is_saved() -> None:
    apis = FakeApis()
    apis.stand = {
        "rapport_id": str(RAPPORT_ID),
        "status": "afgekeurd",
        "versie": 1,
        "ingediende_versies": [1],
    }
    apis.beoordelingen_answer = Gelukt(
        {
            "versies": [
                {
                    "versie": 1,
                    "ingediend_op": "2026-05-12T08:00:00Z",
                    "besluit": "afgekeurd",
                    "besloten_op": "2026-05-12T12:00:00Z",
                    "redenen": ["Het domein informatie mist een maatregel."],
                }
            ]
        }
    )
    portal, csrf = signed_in(apis)
    url = f"/adviseur/dossiers/{DOSSIER_ID}/rapport"
    page = portal.get(url).text
    assert "Rapport herzien" in page and "Redenen van de BVA" in page
    assert "Het domein informatie mist een maatregel." in page
    assert "Versie 1 is afgekeurd op dinsdag 12 mei 2026 om 14:00" in page
    assert page.index("Redenen van de BVA") < page.index('name="bevinding-werk"')
    assert "indienen bij de BVA" not in page  # a rejected version is revised first

    saved = portal.post(
        url, data={**_formulier(actie="opslaan"), "csrf": csrf}, follow_redirects=False
    )
    assert saved.status_code == 303 and apis.calls[-1][0] == "herzien"

    apis.stand = {**apis.stand, "status": "concept", "versie": 2}
    draft = portal.get(url).text
    assert "Versie 2 indienen bij de BVA" in draft
    assert "Verschillen tussen de versies bekijken" in draft
    submitted = portal.post(f"{url}/indienen", data={"csrf": csrf}, follow_redirects=False)
    assert submitted.status_code == 303 and apis.calls[-1] == ("indienen", RAPPORT_ID)

    verschil = portal.get(f"{url}/verschillen").text
    assert "Van versie 1 naar versie 2" in verschil
    assert [c for c in apis.calls if c[0] == "rapport"][-2:] == [("rapport", 1), ("rapport", 2)]


def test_a_link_from_another_site_reads_no_version_until_the_adviseur_opens_it() -> None:
    apis = FakeApis()
    apis.stand = {
        "rapport_id": str(RAPPORT_ID),
        "status": "concept",
        "versie": 2,
        "ingediende_versies": [1],
    }
    portal, _ = signed_in(apis)
    basis = f"/adviseur/dossiers/{DOSSIER_ID}/rapport"
    for url in (basis, f"{basis}/verschillen?van=1&naar=2"):
        apis.calls.clear()
        page = portal.get(url, headers={"Sec-Fetch-Site": "cross-site"})
        assert page.status_code == 200 and apis.calls == []
        assert "Camera bij de voordeur" not in page.text
        assert f'href="{url.replace("&", "&amp;")}">Rapport openen</a>' in page.text
        geopend = portal.get(url, headers={"Sec-Fetch-Site": "same-origin"})
        assert geopend.status_code == 200
        assert [c for c in apis.calls if c[0] == "rapport"]


def test_the_pages_are_for_the_adviseur_only() -> None:
    anonymous = TestClient(
        bootstrap(PortalSettings(), apis=FakeApis(), session_key=secrets.token_bytes(32))
    )
    assert anonymous.get("/adviseur/afspraken", follow_redirects=False).status_code == 303
    apis = FakeApis()
    portal, csrf = signed_in(apis, "sec-demo")
    assert portal.get("/adviseur/afspraken").status_code == 403
    assert portal.get(f"/adviseur/dossiers/{DOSSIER_ID}/rapport").status_code == 403
    refused = portal.post(f"/adviseur/dossiers/{DOSSIER_ID}/rapport/indienen", data={"csrf": csrf})
    assert refused.status_code == 403 and apis.calls == []
