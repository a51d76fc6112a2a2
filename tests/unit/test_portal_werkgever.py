"""Journey 6 without servers: the werkgever's dossier before and after release (nothing of the
report before, nor when the API refuses the read), who pays each measure, the webhook
subscriptions with notifications' refusals at their fields, over a fake of the APIs."""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID, uuid4

import httpx
from fastapi.testclient import TestClient

from services.portal.adapters import EmbeddedInloggen, HttpApis
from services.portal.api.web import Eenmalig
from services.portal.application import (
    Conflict,
    Gelukt,
    Geweigerd,
    NietGevonden,
    Onbereikbaar,
    Ongeldig,
    Uitkomst,
    VeldFout,
)
from services.portal.application.werkgever import (
    abonnement_verzoek,
    fouten_uit,
    rapport_uit,
)
from services.portal.bootstrap import bootstrap
from shared.platform.settings import PortalSettings

DOSSIER_ID = UUID("6f1c0000-0000-0000-0000-000000000001")
RAPPORT_ID = UUID("6f1c0000-0000-0000-0000-000000000002")
EIGEN, VAN_BESTUURDER = uuid4(), uuid4()
ABONNEMENT_ID = UUID("6f1c0000-0000-0000-0000-000000000003")
BEVINDING = "Bevinding werk: de route naar het gemeentehuis is voorspelbaar."
OMSCHRIJVING = "Toegangspas voor de achteringang van het gemeentehuis."

INHOUD: dict[str, Any] = {
    "rapport_id": str(RAPPORT_ID),
    "aanvraag_id": str(DOSSIER_ID),
    "versie": 2,
    "status": "goedgekeurd",
    "inhoud": {
        "bevindingen": {
            "werk": BEVINDING,
            "wonen": "Bevinding wonen.",
            "informatie": "Bevinding informatie.",
            "verplaatsen": "Bevinding verplaatsen.",
        },
        "maatregelen": [
            {"maatregel_id": str(EIGEN), "omschrijving": OMSCHRIJVING},
            {"maatregel_id": str(VAN_BESTUURDER), "omschrijving": "Camera bij de voordeur."},
        ],
    },
}
OVERZICHT: dict[str, Any] = {
    "pkvw": {"status": "verklaring", "geldig_tot": None, "geldig": False},
    "maatregelen": [
        {
            "maatregel_id": str(EIGEN),
            "domein": "werk",
            "kosten": "met_kosten",
            "uitvoerder": "werkgever",
            "prioriteit": "hoog",
            "status": "open",
            "betaalt": "wacht_op_pkvw",
        },
        {
            "maatregel_id": str(VAN_BESTUURDER),
            "domein": "wonen",
            "kosten": "kosteloos",
            "uitvoerder": "bestuurder",
            "prioriteit": "middel",
            "status": "uitgevoerd",
            "uitgevoerd_op": "2026-05-13T10:00:00Z",
            "betaalt": "direct_uitvoerbaar",
        },
    ],
}


class FakeApis:
    """The services as the werkgever's pages call them; answers as told, calls remembered."""

    def __init__(self, *, vrijgegeven: bool = False) -> None:
        self.vrijgegeven = vrijgegeven
        self.lees_answer: Uitkomst = Gelukt(INHOUD)
        self.maak_answer: Uitkomst = Gelukt(
            {
                "abonnement_id": str(ABONNEMENT_ID),
                "callback_url": "https://zaken.example.org/weerbaar",
                "event_types": ["RapportVrijgegeven"],
                "status": "actief",
                "aangemaakt_op": "2026-05-13T10:00:00Z",
                "secret": "whsec_Z2VoZWlt",
            }
        )
        self.uitvoer_answer: Uitkomst = Gelukt({"status": "uitgevoerd"})
        self.lijst: list[dict[str, Any]] = [
            {
                "aanvraag_id": str(DOSSIER_ID),
                "status": "goedgekeurd",
                "ingediend_op": "2026-05-12T08:00:00Z",
                "organisatie_code": "GM0344",
                "maatregelen": [],
            }
        ]
        self.lijst_answer: Uitkomst | None = None
        self.calls: list[tuple[str, Any]] = []
        self.token: str | None = None

    def als(self, token: str | None, herkomst: str | None = None) -> FakeApis:
        self.token = token
        return self

    def dossiers(self, filters: Mapping[str, str | int]) -> Uitkomst:
        self.calls.append(("dossiers", dict(filters)))
        return self.lijst_answer or Gelukt({}, tuple(self.lijst))

    def dossier(self, aanvraag_id: UUID) -> Uitkomst:
        self.calls.append(("dossier", aanvraag_id))
        if aanvraag_id != DOSSIER_ID:
            return NietGevonden()
        rapport = {"rapport_id": str(RAPPORT_ID), "instemming": None, "vrijgegeven_op": None}
        if self.vrijgegeven:
            rapport |= {"instemming": "gegeven", "vrijgegeven_op": "2026-05-13T09:00:00Z"}
        return Gelukt(
            {
                "aanvraag_id": str(DOSSIER_ID),
                "status": "vrijgegeven" if self.vrijgegeven else "goedgekeurd",
                "ingediend_op": "2026-05-12T08:00:00Z",
                "organisatie_code": "GM0344",
                "rapport": rapport,
                "maatregelen": [],
            }
        )

    def lees_rapport(self, rapport_id: UUID) -> Uitkomst:
        self.calls.append(("lees_rapport", rapport_id))
        return self.lees_answer

    def maatregelen(self, aanvraag_id: UUID) -> Uitkomst:
        self.calls.append(("maatregelen", aanvraag_id))
        return Gelukt(OVERZICHT)

    def voer_maatregel_uit(self, maatregel_id: UUID) -> Uitkomst:
        self.calls.append(("uitgevoerd", maatregel_id))
        return self.uitvoer_answer

    def abonnementen(self) -> Uitkomst:
        self.calls.append(("abonnementen", None))
        return Gelukt(
            {},
            (
                {
                    "abonnement_id": str(ABONNEMENT_ID),
                    "callback_url": "https://zaken.example.org/weerbaar",
                    "event_types": None,
                    "status": "actief",
                    "aangemaakt_op": "2026-05-13T10:00:00Z",
                },
            ),
        )

    def maak_abonnement(self, verzoek: Mapping[str, Any]) -> Uitkomst:
        self.calls.append(("maak", dict(verzoek)))
        return self.maak_answer

    def verwijder_abonnement(self, abonnement_id: UUID) -> Uitkomst:
        self.calls.append(("verwijder", abonnement_id))
        return Gelukt({}) if abonnement_id == ABONNEMENT_ID else NietGevonden()


def signed_in(apis: FakeApis, persoon: str = "wg-demo") -> tuple[TestClient, str]:
    app = bootstrap(
        PortalSettings(),
        apis=apis,
        inloggen=EmbeddedInloggen(secrets.token_bytes(32), "weerbaar-embedded", "weerbaar"),
        session_key=secrets.token_bytes(32),
    )
    portal = TestClient(app, base_url="http://portal.test")
    csrf = _csrf(portal.get("/inloggen/demo").text)
    page = portal.post("/inloggen/demo", data={"csrf": csrf, "persoon": persoon})
    return portal, _csrf(page.text)


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found.group(1)


# --- the organisation's dossiers -----------------------------------------------------------------


def _rij(n: int) -> dict[str, Any]:
    return {
        "aanvraag_id": str(UUID(int=1000 + n)),
        "status": "ingediend" if n % 2 else "vrijgegeven",
        "ingediend_op": f"2026-05-{30 - n:02d}T08:00:00Z",
        "organisatie_code": "GM0344",
    }


def test_the_list_shows_the_organisations_dossiers_with_their_status_in_words() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    page = portal.get("/werkgever/dossiers")
    assert page.status_code == 200
    tabel = page.text.split('id="dossierlijst"')[1].split("</table>")[0]
    assert f'href="/werkgever/dossiers/{DOSSIER_ID}"' in tabel
    assert "Rapport goedgekeurd" in tabel and "dinsdag 12 mei 2026" in tabel
    # Intake decides whose dossiers they are, from the token: the portal names no organisation.
    assert apis.calls == [("dossiers", {"limit": 26})]
    assert apis.token is not None
    # The look-up by number stays.
    assert 'action="/werkgever/zoeken"' in page.text and 'for="nummer"' in page.text
    assert "Volgende pagina" not in page.text


def test_the_list_pages_on_by_the_last_dossier_shown() -> None:
    apis = FakeApis()
    apis.lijst = [_rij(n) for n in range(26)]
    portal, _ = signed_in(apis)
    page = portal.get("/werkgever/dossiers").text
    tabel = page.split('id="dossierlijst"')[1].split("</table>")[0]
    assert tabel.count("/werkgever/dossiers/") == 25
    assert str(UUID(int=1025)) not in tabel
    volgende = re.search(r'href="/werkgever/dossiers\?([^"]+)">Volgende pagina', page)
    assert volgende
    query = volgende.group(1).replace("&amp;", "&")
    assert f"na_aanvraag_id={UUID(int=1024)}" in query
    apis.lijst = [_rij(25)]
    page = portal.get(f"/werkgever/dossiers?{query}").text
    assert apis.calls[-1] == (
        "dossiers",
        {
            "limit": 26,
            "na_ingediend_op": "2026-05-06T08:00:00Z",
            "na_aanvraag_id": str(UUID(int=1024)),
        },
    )
    assert str(UUID(int=1025)) in page and "Eerste pagina" in page
    # A keyset that is not one starts at the top.
    portal.get("/werkgever/dossiers?na_ingediend_op=gisteren&na_aanvraag_id=x")
    assert apis.calls[-1] == ("dossiers", {"limit": 26})


def test_an_empty_list_says_so_and_a_refused_list_shows_nothing() -> None:
    apis = FakeApis()
    apis.lijst = []
    portal, _ = signed_in(apis)
    assert "Uw organisatie heeft nog geen dossiers." in portal.get("/werkgever/dossiers").text
    apis.lijst = [_rij(1)]
    apis.lijst_answer = Geweigerd()
    refused = portal.get("/werkgever/dossiers")
    assert refused.status_code == 403
    assert str(UUID(int=1001)) not in refused.text


# --- a dossier -----------------------------------------------------------------------------------


def test_before_release_the_page_says_so_and_never_asks_for_the_report() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    page = portal.get(f"/werkgever/dossiers/{DOSSIER_ID}")
    assert page.status_code == 200
    assert "Het rapport is nog niet vrijgegeven door de bestuurder." in page.text
    assert BEVINDING not in page.text and OMSCHRIJVING not in page.text
    assert [naam for naam, _ in apis.calls] == ["dossier"]
    assert apis.token is not None


def test_after_release_the_report_its_measures_and_who_pays_are_shown() -> None:
    apis = FakeApis(vrijgegeven=True)
    portal, _ = signed_in(apis)
    page = portal.get(f"/werkgever/dossiers/{DOSSIER_ID}").text
    assert "nog niet vrijgegeven" not in page
    assert BEVINDING in page
    eigen = page.split('id="maatregelen-werkgever"')[1].split("</table>")[0]
    assert OMSCHRIJVING in eigen
    assert "De werkgever, zodra de bestuurder het Politiekeurmerk Veilig Wonen heeft" in eigen
    bestuurder = page.split('id="maatregelen-bestuurder"')[1].split("</table>")[0]
    assert "Geen kosten: kan direct worden uitgevoerd" in bestuurder
    assert "Ja, op woensdag 13 mei 2026" in bestuurder
    assert ("lees_rapport", RAPPORT_ID) in apis.calls


def test_a_link_from_another_site_reads_no_released_report_until_the_werkgever_opens_it() -> None:
    apis = FakeApis(vrijgegeven=True)
    portal, _ = signed_in(apis)
    url = f"/werkgever/dossiers/{DOSSIER_ID}"
    page = portal.get(url, headers={"Sec-Fetch-Site": "same-site"})
    assert page.status_code == 200 and apis.calls == []
    assert BEVINDING not in page.text and OMSCHRIJVING not in page.text
    assert f'href="{url}">Rapport openen</a>' in page.text
    geopend = portal.get(url, headers={"Sec-Fetch-Site": "same-origin"}).text
    assert BEVINDING in geopend
    assert apis.calls.count(("lees_rapport", RAPPORT_ID)) == 1


def test_a_read_the_api_refuses_shows_nothing_of_the_report() -> None:
    apis = FakeApis(vrijgegeven=True)
    apis.lees_answer = Geweigerd()
    portal, _ = signed_in(apis)
    page = portal.get(f"/werkgever/dossiers/{DOSSIER_ID}").text
    assert "Het rapport is nog niet vrijgegeven door de bestuurder." in page
    assert BEVINDING not in page and OMSCHRIJVING not in page


def test_another_organisations_dossier_is_not_found_and_shows_nothing() -> None:
    portal, csrf = signed_in(FakeApis(vrijgegeven=True), "wg-ander-demo")
    other = uuid4()
    page = portal.get(f"/werkgever/dossiers/{other}")
    assert page.status_code == 404
    assert "Dossier niet gevonden" in page.text and str(other) not in page.text
    searched = portal.post("/werkgever/zoeken", data={"csrf": csrf, "nummer": str(other)})
    assert searched.status_code == 404
    assert 'href="#nummer">Er is geen dossier met dat nummer voor uw organisatie.' in searched.text
    assert str(other) not in searched.text


def test_searching_a_number_opens_the_dossier() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    page = portal.get("/werkgever/dossiers").text
    zoekformulier = page.split('<form method="post" action="/werkgever/zoeken"')[1].split(
        "</form>"
    )[0]
    assert f'name="csrf" value="{csrf}"' in zoekformulier
    found = portal.post(
        "/werkgever/zoeken",
        data={"csrf": csrf, "nummer": str(DOSSIER_ID)},
        follow_redirects=False,
    )
    assert found.status_code == 303
    assert found.headers["location"] == f"/werkgever/dossiers/{DOSSIER_ID}"
    assert ("dossier", DOSSIER_ID) in apis.calls
    wrong = portal.post("/werkgever/zoeken", data={"csrf": csrf, "nummer": "Jan de Vries"})
    assert wrong.status_code == 422
    assert 'href="#nummer">Dat is geen dossiernummer.' in wrong.text
    assert 'id="nummer-fout"' in wrong.text and 'aria-invalid="true"' in wrong.text
    assert "Jan de Vries" not in wrong.text


def test_a_search_without_its_csrf_token_is_refused_and_looks_nothing_up() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    for data in ({}, {"csrf": "fout"}):
        refused = portal.post("/werkgever/zoeken", data={**data, "nummer": str(DOSSIER_ID)})
        assert refused.status_code == 403
        assert "Formulier verlopen" in refused.text
    assert [call for call in apis.calls if call[0] == "dossier"] == []


def test_a_number_in_the_address_is_no_search_and_is_not_looked_up() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    old = portal.get(f"/werkgever/zoeken?nummer={DOSSIER_ID}", follow_redirects=False)
    assert old.status_code == 303
    assert old.headers["location"] == "/werkgever/dossiers"
    assert [call for call in apis.calls if call[0] == "dossier"] == []


def test_the_pages_are_for_the_werkgever_only() -> None:
    anonymous = TestClient(
        bootstrap(PortalSettings(), apis=FakeApis(), session_key=secrets.token_bytes(32))
    )
    assert anonymous.get("/werkgever/dossiers", follow_redirects=False).status_code == 303
    apis = FakeApis()
    portal, csrf = signed_in(apis, "sec-demo")
    assert portal.get("/werkgever/webhooks").status_code == 403
    assert portal.post("/werkgever/webhooks", data={"csrf": csrf}).status_code == 403
    searched = portal.post("/werkgever/zoeken", data={"csrf": csrf, "nummer": str(DOSSIER_ID)})
    assert searched.status_code == 403
    assert [call for call in apis.calls if call[0] == "dossier"] == []


def test_the_werkgever_records_its_measure_or_is_told_why_not_yet() -> None:
    apis = FakeApis(vrijgegeven=True)
    apis.uitvoer_answer = Conflict("Deze maatregel wacht op PKVW.")
    portal, csrf = signed_in(apis)
    page = portal.get(f"/werkgever/dossiers/{DOSSIER_ID}").text
    eigen = page.split('id="maatregelen-werkgever"')[1].split("</table>")[0]
    path = f"/werkgever/dossiers/{DOSSIER_ID}/maatregelen/{EIGEN}/uitgevoerd"
    assert f'action="{path}"' in eigen
    # Only the werkgever's own measures can be recorded here.
    assert "/uitgevoerd" not in page.split('id="maatregelen-bestuurder"')[1]
    refused = portal.post(path, data={"csrf": csrf})
    assert refused.status_code == 409
    assert "De dienst meldt: Deze maatregel wacht op PKVW." in refused.text
    assert "<title>Fout: Dossier" in refused.text
    apis.uitvoer_answer = Gelukt({"status": "uitgevoerd"})
    done = portal.post(path, data={"csrf": csrf}, follow_redirects=False)
    assert done.headers["location"] == f"/werkgever/dossiers/{DOSSIER_ID}"
    assert "De maatregel is vastgelegd als uitgevoerd." in portal.get(done.headers["location"]).text
    assert apis.calls.count(("uitgevoerd", EIGEN)) == 2


def test_a_certificate_is_shown_with_its_last_valid_day() -> None:
    overzicht = {
        **OVERZICHT,
        "pkvw": {"status": "certificaat", "geldig_tot": "2036-05-12", "geldig": True},
    }
    rapport = rapport_uit(INHOUD, overzicht)
    assert rapport.pkvw == "Certificaat, geldig tot en met maandag 12 mei 2036"
    assert [b[0] for b in rapport.bevindingen] == [
        "Werk",
        "Wonen",
        "Informatie (digitaal)",
        "Verplaatsen",
    ]


# --- webhook subscriptions -----------------------------------------------------------------------


def test_a_new_subscription_shows_its_secret_once() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    listed = portal.get("/werkgever/webhooks").text
    assert "https://zaken.example.org/weerbaar" in listed
    made = portal.post(
        "/werkgever/webhooks",
        data={
            "csrf": csrf,
            "callback_url": " https://zaken.example.org/weerbaar ",
            "gebeurtenis-RapportVrijgegeven": "ja",
            "gebeurtenis-Onbekend": "ja",
        },
    )
    assert made.status_code == 200
    assert [r.status_code for r in made.history] == [303]
    assert str(made.url).endswith("/werkgever/webhooks/aangemaakt")
    assert "whsec_Z2VoZWlt" in made.text
    assert "Berichten gaan naar" in made.text
    assert apis.calls.count(("abonnementen", None)) == 2  # the form, and the page after
    assert [c for c in apis.calls if c[0] == "maak"] == [
        (
            "maak",
            {
                "callback_url": "https://zaken.example.org/weerbaar",
                "event_types": ["RapportVrijgegeven"],
            },
        )
    ]
    # The secret was shown once: a reload of that page goes to the list, without it.
    again = portal.get("/werkgever/webhooks/aangemaakt")
    assert str(again.url).endswith("/werkgever/webhooks") and "whsec_" not in again.text
    assert "whsec_" not in portal.get("/werkgever/webhooks").text


def _formulier_sleutel(page: str) -> str:
    found = re.search(r'name="sleutel" value="([^"]+)"', page)
    assert found
    return found.group(1)


def test_the_same_form_sent_twice_makes_one_subscription() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    sleutel = _formulier_sleutel(portal.get("/werkgever/webhooks").text)
    data = {"csrf": csrf, "sleutel": sleutel, "callback_url": "https://zaken.example.org/w"}
    eerste = portal.post("/werkgever/webhooks", data=data, follow_redirects=False)
    assert eerste.status_code == 303
    assert eerste.headers["location"] == "/werkgever/webhooks/aangemaakt"
    # A double click or the form sent again from the history: no second call, and the
    # subscription made the first time is shown with its secret.
    tweede = portal.post("/werkgever/webhooks", data=data)
    assert "whsec_Z2VoZWlt" in tweede.text
    assert [c[0] for c in apis.calls].count("maak") == 1
    # A form shown anew has a key of its own: that one is a new subscription.
    nieuw = _formulier_sleutel(portal.get("/werkgever/webhooks").text)
    assert nieuw != sleutel
    portal.post("/werkgever/webhooks", data=data | {"sleutel": nieuw})
    assert [c[0] for c in apis.calls].count("maak") == 2


def test_a_refused_form_is_tried_again_with_the_same_key() -> None:
    apis = FakeApis()
    apis.maak_answer = Onbereikbaar()
    portal, csrf = signed_in(apis)
    sleutel = _formulier_sleutel(portal.get("/werkgever/webhooks").text)
    data = {"csrf": csrf, "sleutel": sleutel, "callback_url": "https://zaken.example.org/w"}
    assert portal.post("/werkgever/webhooks", data=data).status_code == 503
    apis.maak_answer = FakeApis().maak_answer
    assert "whsec_Z2VoZWlt" in portal.post("/werkgever/webhooks", data=data).text
    assert [c[0] for c in apis.calls].count("maak") == 2


def test_posts_of_one_key_that_arrive_together_make_one_call() -> None:
    eenmalig = Eenmalig()
    begonnen, los = threading.Event(), threading.Event()
    calls: list[int] = []

    def doe() -> Uitkomst:
        calls.append(1)
        begonnen.set()
        assert los.wait(timeout=10)
        return Gelukt({"abonnement_id": str(ABONNEMENT_ID)})

    uitkomsten: list[Uitkomst] = []
    eerste = threading.Thread(target=lambda: uitkomsten.append(eenmalig.eens("k", doe)))
    eerste.start()
    assert begonnen.wait(timeout=10)
    tweede = threading.Thread(target=lambda: uitkomsten.append(eenmalig.eens("k", doe)))
    tweede.start()
    los.set()
    eerste.join(timeout=10)
    tweede.join(timeout=10)
    assert calls == [1]
    assert len(uitkomsten) == 2 and uitkomsten[0] is uitkomsten[1]
    # Another key is another post.
    assert isinstance(eenmalig.eens("ander", doe), Gelukt) and calls == [1, 1]


def test_notifications_refusal_of_the_address_is_shown_at_the_field() -> None:
    apis = FakeApis()
    apis.maak_answer = Ongeldig((VeldFout("body.callback_url", "prive_adres"),))
    portal, csrf = signed_in(apis)
    refused = portal.post(
        "/werkgever/webhooks",
        data={
            "csrf": csrf,
            "callback_url": "https://127.0.0.1/hook",
            "gebeurtenis-GesprekGevoerd": "ja",
        },
    )
    assert refused.status_code == 422
    assert 'id="callback_url-fout"' in refused.text
    assert 'href="#callback_url"' in refused.text
    assert 'aria-invalid="true"' in refused.text
    assert "geen localhost of een intern netwerkadres" in refused.text
    assert 'value="https://127.0.0.1/hook"' in refused.text
    assert (
        'id="gebeurtenis-GesprekGevoerd" name="gebeurtenis-GesprekGevoerd" value="ja" checked'
        in refused.text
    )
    assert "<title>Fout: Webhook-abonnementen" in refused.text


def test_an_empty_address_is_refused_without_asking_notifications() -> None:
    verzoek, fouten = abonnement_verzoek({"callback_url": "  "})
    assert verzoek is None and fouten.fout("callback_url") is not None
    refused_types = fouten_uit(
        Ongeldig((VeldFout("body.event_types", "onbekend_of_niet_toegestaan"),)),
        abonnement_verzoek({"callback_url": "https://x.example"})[1],
    )
    assert refused_types.fout("gebeurtenissen") is not None


def test_removing_a_subscription_is_a_form_post_with_csrf() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    path = f"/werkgever/webhooks/{ABONNEMENT_ID}/verwijderen"
    assert portal.post(path, data={}).status_code == 403
    done = portal.post(path, data={"csrf": csrf})
    assert "Het abonnement is verwijderd." in done.text
    assert apis.calls[-2] == ("verwijder", ABONNEMENT_ID)
    gone = portal.post(f"/werkgever/webhooks/{uuid4()}/verwijderen", data={"csrf": csrf})
    assert "Dit abonnement bestaat niet (meer)." in gone.text


# --- the calls, over HTTP ------------------------------------------------------------------------


def test_the_adapters_call_the_services_own_endpoints_with_the_persons_token() -> None:
    seen: list[tuple[str, str, str, bytes]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(
            (request.method, str(request.url), request.headers["authorization"], request.content)
        )
        return httpx.Response(200, json=[] if request.method == "GET" else {})

    urls = {"assessment": "http://assessment.test", "notifications": "http://notifications.test"}
    apis = HttpApis(urls, transport=httpx.MockTransport(handler)).als("tok")
    apis.lees_rapport(RAPPORT_ID)
    apis.maatregelen(DOSSIER_ID)
    apis.voer_maatregel_uit(EIGEN)
    apis.abonnementen()
    apis.maak_abonnement({"callback_url": "https://x.example"})
    apis.verwijder_abonnement(ABONNEMENT_ID)
    assert [(method, url) for method, url, _, _ in seen] == [
        ("GET", f"http://assessment.test/rapporten/{RAPPORT_ID}"),
        ("GET", f"http://assessment.test/aanvragen/{DOSSIER_ID}/maatregelen"),
        ("POST", f"http://assessment.test/maatregelen/{EIGEN}/uitgevoerd"),
        ("GET", "http://notifications.test/webhooks/abonnementen"),
        ("POST", "http://notifications.test/webhooks/abonnementen"),
        ("DELETE", f"http://notifications.test/webhooks/abonnementen/{ABONNEMENT_ID}"),
    ]
    assert {token for _, _, token, _ in seen} == {"Bearer tok"}
    assert json.loads(seen[4][3]) == {"callback_url": "https://x.example"}


class Stopwatch:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.nu = 1000.0

    def __call__(self) -> float:
        return self.nu


def test_a_kept_outcome_is_forgotten_after_its_time_and_the_form_then_counts_as_new() -> None:
    klok = Stopwatch()
    eenmalig = Eenmalig(klok)
    calls: list[str] = []

    def doe(naam: str) -> Callable[[], Uitkomst]:
        return lambda: calls.append(naam) or Gelukt({"naam": naam})

    eenmalig.eens("a", doe("a"))
    klok.nu += Eenmalig.BEWAAR_S / 2
    eenmalig.eens("b", doe("b"))
    eenmalig.eens("a", doe("a"))  # kept: no second call
    assert calls == ["a", "b"]
    klok.nu += Eenmalig.BEWAAR_S / 2 + 1
    eenmalig.eens("a", doe("a"))  # a's time is up; b's is not
    eenmalig.eens("b", doe("b"))
    assert calls == ["a", "b", "a"]
    klok.nu += Eenmalig.BEWAAR_S + 1
    eenmalig.eens("b", doe("b"))
    assert calls == ["a", "b", "a", "b"]


def test_a_post_still_under_way_is_not_forgotten_however_long_it_takes() -> None:
    klok = Stopwatch()
    eenmalig = Eenmalig(klok)
    begonnen, los = threading.Event(), threading.Event()
    calls: list[int] = []

    def traag() -> Uitkomst:
        calls.append(1)
        begonnen.set()
        assert los.wait(timeout=10)
        return Gelukt({})

    eerste = threading.Thread(target=lambda: eenmalig.eens("k", traag))
    eerste.start()
    assert begonnen.wait(timeout=10)
    klok.nu += 10 * Eenmalig.BEWAAR_S
    eenmalig.eens("ander", lambda: Gelukt({}))  # forgets what expired: not the running one
    tweede = threading.Thread(target=lambda: eenmalig.eens("k", traag))
    tweede.start()
    los.set()
    eerste.join(timeout=10)
    tweede.join(timeout=10)
    assert calls == [1]
