"""Journey 2 without servers: the contact deadline in working days, the picker's options, the
werkvoorraad's paging links, the API's refusals at their fields, the pages over a fake of the
APIs, and the visitor's address sent on to the services."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from services.portal.adapters import EmbeddedInloggen
from services.portal.api.web import herkomst_van
from services.portal.application import (
    Conflict,
    Gelukt,
    NietGevonden,
    Onbereikbaar,
    Ongeldig,
    Uitkomst,
    VeldFout,
)
from services.portal.application.secretariaat import (
    PER_PAGINA,
    Filters,
    Probleem,
    Werkkalender,
    afspraak_verzoek,
    fouten_uit,
    gepland_op,
    termijn,
    werkvoorraad_uit,
)
from services.portal.bootstrap import bootstrap
from shared.platform.settings import PortalSettings
from shared.platform.throttle import client_source

AMS = ZoneInfo("Europe/Amsterdam")
# Wednesday 13 May 2026; Thursday the 14th is Hemelvaartsdag; 16 and 17 a weekend (so were the
# 9th and 10th).
WERKDAGEN = (
    "2026-05-08",
    "2026-05-11",
    "2026-05-12",
    "2026-05-13",
    "2026-05-15",
    "2026-05-18",
    "2026-05-19",
    "2026-05-20",
)
WERKTIJDEN: dict[str, Any] = {
    "tijdzone": "Europe/Amsterdam",
    "kalender": "algemene_termijnenwet",
    "begin": "08:00:00",
    "einde": "18:00:00",
    "min_duur_minuten": 15,
    "max_duur_minuten": 480,
    "werkdagen": list(WERKDAGEN),
    "vrije_dagen": [{"datum": "2026-05-14", "naam": "Hemelvaartsdag"}],
}
KALENDER = Werkkalender.uit(WERKTIJDEN)
NU = datetime(2026, 5, 13, 9, 0, tzinfo=AMS)


def deadline_na(laatste: str) -> str:
    """The stored deadline: the first moment of the day after the last working day (UTC)."""
    dag = date.fromisoformat(laatste)
    return datetime(dag.year, dag.month, dag.day + 1, tzinfo=AMS).astimezone(UTC).isoformat()


# --- the contact deadline in working days --------------------------------------------------------


def test_the_deadline_counts_working_days_left_skipping_holidays_and_weekends() -> None:
    dossier = {"status": "ingediend", "contact_deadline": deadline_na("2026-05-18")}
    shown = termijn(dossier, KALENDER, NU)
    # Wednesday 13, Friday 15, Monday 18: three, with Hemelvaartsdag and the weekend skipped.
    assert shown.werkdagen_over == 3
    assert shown.tekst == "Nog 3 werkdagen (tot en met maandag 18 mei 2026)"
    assert not shown.verstreken


def test_the_last_day_and_a_passed_deadline_are_said_in_words() -> None:
    vandaag = termijn({"contact_deadline": deadline_na("2026-05-13")}, KALENDER, NU)
    assert vandaag.tekst == "Vandaag is de laatste werkdag"
    voorbij = termijn({"contact_deadline": deadline_na("2026-05-12")}, KALENDER, NU)
    assert voorbij.verstreken
    assert voorbij.tekst == "Termijn verstreken op dinsdag 12 mei 2026"
    # The escalation recorded counts too, whatever the clock says.
    gemeld = termijn(
        {"contact_deadline": deadline_na("2026-05-18"), "deadline_verstreken": True}, KALENDER, NU
    )
    assert gemeld.verstreken


def test_contact_made_ends_the_count() -> None:
    dossier = {
        "contact_deadline": deadline_na("2026-05-12"),
        "contact_op": "2026-05-13T08:00:00Z",
        "contact_binnen_termijn": False,
    }
    shown = termijn(dossier, KALENDER, NU)
    assert shown.tekst == "Contact opgenomen op woensdag 13 mei 2026 (te laat)"
    assert not shown.verstreken


# --- the picker ----------------------------------------------------------------------------------


def test_the_picker_offers_only_working_days_and_starts_that_end_within_the_hours() -> None:
    assert KALENDER.dag_opties(date(2026, 5, 14)) == [
        date(2026, 5, 15),
        date(2026, 5, 18),
        date(2026, 5, 19),
        date(2026, 5, 20),
    ]
    uur = KALENDER.tijd_opties(60)
    assert (uur[0], uur[-1], len(uur)) == (time(8, 0), time(17, 0), 19)
    twee_uur = KALENDER.tijd_opties(120)
    assert twee_uur[-1] == time(16, 0)


def test_the_chosen_day_and_time_are_a_local_moment_with_its_offset() -> None:
    moment = gepland_op({"datum": "2026-05-15", "tijd": "10:30"}, AMS)
    assert moment is not None
    assert moment.isoformat() == "2026-05-15T10:30:00+02:00"
    assert gepland_op({"datum": "vrijdag", "tijd": "10:30"}, AMS) is None
    verzoek = afspraak_verzoek(
        "gesprek_werkgever", moment, {"adviseur": "adv-demo", "video_link": " https://v.nl/1 "}
    )
    assert verzoek == {
        "soort": "gesprek_werkgever",
        "gepland_op": "2026-05-15T10:30:00+02:00",
        "duur_minuten": 60,
        "adviseur_id": "adv-demo",
        "video_link": "https://v.nl/1",
    }
    thuis = afspraak_verzoek("gesprek_bestuurder", moment, {"adviseur": "adv-demo"})
    assert "video_link" not in thuis and thuis["duur_minuten"] == 120


# --- paging and filters --------------------------------------------------------------------------


def _dossiers(n: int) -> list[dict[str, Any]]:
    return [
        {
            "aanvraag_id": str(uuid4()),
            "status": "ingediend",
            "ingediend_op": f"2026-05-12T{10 + i // 60:02d}:{i % 60:02d}:00Z",
            "organisatie_code": "GM0344",
            "binnen_regeling": True,
            "contact_deadline": deadline_na("2026-05-15"),
        }
        for i in range(n)
    ]


def test_a_full_page_links_to_the_next_by_the_keyset_of_its_last_row() -> None:
    rows = _dossiers(PER_PAGINA + 1)
    page = werkvoorraad_uit(rows, KALENDER, Filters(status="ingediend"), NU)
    assert len(page.regels) == PER_PAGINA
    last = rows[PER_PAGINA - 1]
    assert page.volgende == (
        "status=ingediend&na_ingediend_op=2026-05-12T10%3A24%3A00Z"
        f"&na_aanvraag_id={last['aanvraag_id']}"
    )
    assert page.eerste is None
    assert page.regels[0].termijn.tekst.startswith("Nog 2 werkdagen")


def test_the_last_page_has_no_next_and_links_back_to_the_first() -> None:
    filters = Filters.uit(
        {
            "verstreken": "ja",
            "na_ingediend_op": "2026-05-12T10:00:00Z",
            "na_aanvraag_id": str(uuid4()),
        }
    )
    page = werkvoorraad_uit(_dossiers(3), KALENDER, filters, NU)
    assert page.volgende is None
    assert page.eerste == "verstreken=ja"
    assert filters.api_filters()["limit"] == PER_PAGINA + 1
    assert filters.api_filters()["deadline_verstreken"] == "true"


def test_unknown_filters_and_a_broken_keyset_are_dropped() -> None:
    filters = Filters.uit(
        {"status": "bestaat_niet", "na_ingediend_op": "gisteren", "na_aanvraag_id": "x"}
    )
    assert filters == Filters()
    assert filters.api_filters() == {"limit": PER_PAGINA + 1}


# --- the API's refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("regel", "tekst"),
    [
        ("must_be_on_working_day", "Kies een werkdag: geen weekend of feestdag."),
        (
            "must_be_within_working_hours",
            "Het hele gesprek moet binnen de werktijden vallen. De werktijden zijn 08:00–18:00.",
        ),
        ("must_be_in_future", "Kies een moment in de toekomst."),
        (
            "must_be_in_past",
            "Kies een moment dat al voorbij is: achteraf vastleggen is voor een gesprek dat al"
            " heeft plaatsgevonden.",
        ),
    ],
)
def test_the_apis_422_on_the_moment_is_shown_at_the_picker(regel: str, tekst: str) -> None:
    fouten = fouten_uit(
        "plan-gesprek_werkgever", Ongeldig((VeldFout("body.gepland_op", regel),)), "08:00–18:00"
    )
    assert fouten.fout("plan-gesprek_werkgever", "datum") is not None
    assert fouten.fouten[0].tekst == tekst
    assert fouten.fout("plan-gesprek_bestuurder", "datum") is None


def test_other_fields_and_a_409_are_explained_in_dutch() -> None:
    link = fouten_uit("f", Ongeldig((VeldFout("body.video_link", "string_pattern_mismatch"),)), "")
    assert link.fouten[0].veld == "video_link"
    onbekend = fouten_uit("f", Ongeldig((VeldFout("body.iets", "x"),)), "")
    assert onbekend.melding == "Het verzoek is niet aangenomen. Controleer de gegevens."
    conflict = fouten_uit("f", Conflict("Eerst contact opnemen."), "")
    assert conflict.melding is not None
    assert conflict.melding.startswith("Deze stap past nu niet in het proces.")
    assert conflict.melding.endswith("De dienst meldt: Eerst contact opnemen.")
    with pytest.raises(Probleem):
        fouten_uit("f", Onbereikbaar(), "")


# --- the pages over a fake of the APIs ------------------------------------------------------------

DOSSIER_ID = UUID("6f1c0000-0000-4000-8000-000000000001")
AFSPRAAK_ID = UUID("6f1c0000-0000-4000-8000-0000000000a1")


class FakeApis:
    """The services as the secretariat's pages call them; answers as told, calls remembered."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.plan_answer: Uitkomst = Gelukt({"afspraak_id": str(AFSPRAAK_ID)})
        self.verzet_answer: Uitkomst = Gelukt({})
        self.werktijden_gevraagd: list[tuple[date | None, int]] = []
        self.herkomst: str | None = None
        self.token: str | None = None
        #: The dossiers asked for one by one (a search looks its number up this way).
        self.opgezocht: list[UUID] = []

    def als(self, token: str | None, herkomst: str | None = None) -> FakeApis:
        self.token, self.herkomst = token, herkomst
        return self

    def dien_aanvraag_in(self, aanmelding: Mapping[str, Any], idempotency_key: str) -> Uitkomst:
        self.calls.append(("aanmelden", self.token))
        return Gelukt({"aanvraag_id": str(DOSSIER_ID)})

    def dossiers(self, filters: Mapping[str, str | int]) -> Uitkomst:
        self.calls.append(("dossiers", dict(filters)))
        verlopen = {**_dossiers(1)[0], "contact_deadline": deadline_na("2026-05-12")}
        verlopen["aanvraag_id"] = str(DOSSIER_ID)
        return Gelukt({}, (verlopen,))

    def dossier(self, aanvraag_id: UUID) -> Uitkomst:
        self.opgezocht.append(aanvraag_id)
        if aanvraag_id != DOSSIER_ID:
            return NietGevonden()
        return Gelukt(
            {
                "aanvraag_id": str(DOSSIER_ID),
                "status": "contact_opgenomen",
                "ingediend_op": "2026-05-12T08:00:00Z",
                "organisatie_code": "GM0344",
                "binnen_regeling": True,
                "verhuizing_gepland": False,
                "afspraken": [{"afspraak_id": str(AFSPRAAK_ID), "keer_verzet": 2}],
                "tijdlijn": [
                    {"tijd": "2026-05-12T08:00:00Z", "gebeurtenis": "AanvraagIngediend"},
                    {
                        "tijd": "2026-05-13T07:00:00Z",
                        "gebeurtenis": "ContactOpgenomen",
                        "rol": "secretariaat",
                    },
                ],
            }
        )

    def werktijden(self, van: date | None, dagen: int) -> Uitkomst:
        self.werktijden_gevraagd.append((van, dagen))
        return Gelukt(WERKTIJDEN)

    def planning(self, aanvraag_id: UUID) -> Uitkomst:
        return Gelukt(
            {
                "aanvraag_id": str(aanvraag_id),
                "contact_deadline": deadline_na("2026-05-15"),
                "contact_status": "opgenomen",
                "contact_op": "2026-05-13T07:00:00Z",
                "gestopt": None,
                "afspraken": [
                    {
                        "afspraak_id": str(AFSPRAAK_ID),
                        "soort": "gesprek_werkgever",
                        "vorm": "digitaal",
                        "gepland_op": "2026-05-15T08:00:00Z",
                        "duur_minuten": 60,
                        "status": "gepland",
                        "video_link": "https://video.example.org/1",
                    }
                ],
                "toelichtingen": [],
            }
        )

    def neem_contact_op(self, aanvraag_id: UUID) -> Uitkomst:
        self.calls.append(("contact", aanvraag_id))
        return Conflict("De aanvraag is ingetrokken; er wordt niets meer gepland.")

    def plan_afspraak(
        self, aanvraag_id: UUID, verzoek: Mapping[str, Any], idempotency_key: str
    ) -> Uitkomst:
        self.calls.append(("plan", dict(verzoek)))
        return self.plan_answer

    def verzet_afspraak(
        self, afspraak_id: UUID, gepland_op: datetime, *, achteraf: bool = False
    ) -> Uitkomst:
        self.calls.append(("verzet achteraf" if achteraf else "verzet", gepland_op))
        return self.verzet_answer

    def annuleer_afspraak(self, afspraak_id: UUID) -> Uitkomst:
        self.calls.append(("annuleer", afspraak_id))
        return Gelukt({})


def signed_in(apis: FakeApis, persoon: str = "sec-demo") -> tuple[TestClient, str]:
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


def test_the_werkvoorraad_marks_an_overdue_deadline_in_words() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    page = portal.get("/secretariaat/werkvoorraad?status=ingediend&verstreken=ja")
    assert page.status_code == 200
    assert "Te laat: Termijn verstreken op dinsdag 12 mei 2026" in page.text
    assert apis.calls[-1] == (
        "dossiers",
        {"limit": PER_PAGINA + 1, "status": "ingediend", "deadline_verstreken": "true"},
    )
    assert apis.token is not None


def test_searching_a_number_opens_the_dossier_or_says_why_not() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    page = portal.get("/secretariaat/werkvoorraad").text
    zoekformulier = page.split('<form method="post" action="/secretariaat/zoeken"')[1].split(
        "</form>"
    )[0]
    assert f'name="csrf" value="{csrf}"' in zoekformulier
    found = portal.post(
        "/secretariaat/zoeken",
        data={"csrf": csrf, "nummer": str(DOSSIER_ID)},
        follow_redirects=False,
    )
    assert found.status_code == 303
    assert found.headers["location"] == f"/secretariaat/dossiers/{DOSSIER_ID}"
    assert apis.opgezocht == [DOSSIER_ID]
    onbekend = uuid4()
    missing = portal.post(
        "/secretariaat/zoeken",
        data={"csrf": csrf, "nummer": str(onbekend)},
        follow_redirects=False,
    )
    assert missing.status_code == 404
    assert 'href="#nummer">Er is geen dossier met dat nummer.' in missing.text
    assert str(onbekend) not in missing.text
    wrong = portal.post(
        "/secretariaat/zoeken",
        data={"csrf": csrf, "nummer": "Jan de Vries"},
        follow_redirects=False,
    )
    assert wrong.status_code == 422
    # Said at the search field and in the summary that links to it, as every form's error;
    # what was typed is not given back.
    assert 'href="#nummer">Dat is geen dossiernummer.' in wrong.text
    assert 'id="nummer-fout"' in wrong.text and 'aria-invalid="true"' in wrong.text
    assert "Jan de Vries" not in wrong.text
    # The page is the werkvoorraad still, to search again from.
    assert "Te laat: Termijn verstreken op dinsdag 12 mei 2026" in wrong.text


def test_a_search_without_its_csrf_token_is_refused_and_looks_nothing_up() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    for data in ({}, {"csrf": "fout"}):
        refused = portal.post(
            "/secretariaat/zoeken",
            data={**data, "nummer": str(DOSSIER_ID)},
            follow_redirects=False,
        )
        assert refused.status_code == 403
        assert "Formulier verlopen" in refused.text
    assert apis.opgezocht == []


def test_a_number_in_the_address_is_no_search_and_is_not_looked_up() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    old = portal.get(f"/secretariaat/zoeken?nummer={DOSSIER_ID}", follow_redirects=False)
    assert old.status_code == 303
    assert old.headers["location"] == "/secretariaat/werkvoorraad"
    assert apis.opgezocht == []


def test_the_dossier_page_shows_the_timeline_and_the_plan_forms() -> None:
    portal, _ = signed_in(FakeApis())
    page = portal.get(f"/secretariaat/dossiers/{DOSSIER_ID}").text
    assert "Contact opgenomen" in page and "Aanvraag ingediend" in page
    assert "Gesprek met de bestuurder plannen" in page
    # The werkgever conversation is planned: it can be moved and cancelled, not planned again.
    assert "Gesprek met de werkgever plannen" not in page
    assert "Gesprek met de werkgever annuleren" in page
    assert "(2 keer verzet)" in page
    assert '<option value="2026-05-15">vrijdag 15 mei 2026</option>' in page
    assert "2026-05-14" not in page.split('id="plannen-titel"')[1]


def test_planning_sends_the_chosen_local_moment_and_a_refusal_shows_at_the_field() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    form = {
        "csrf": csrf,
        "soort": "gesprek_bestuurder",
        "datum": "2026-05-15",
        "tijd": "16:00",
        "adviseur": "adv-demo",
        "sleutel": str(uuid4()),
    }
    done = portal.post(
        f"/secretariaat/dossiers/{DOSSIER_ID}/afspraken", data=form, follow_redirects=False
    )
    assert done.status_code == 303
    assert apis.calls[-1][1]["gepland_op"] == "2026-05-15T16:00:00+02:00"
    assert "De afspraak is gepland." in portal.get(done.headers["location"]).text

    apis.plan_answer = Ongeldig((VeldFout("body.gepland_op", "must_be_within_working_hours"),))
    refused = portal.post(f"/secretariaat/dossiers/{DOSSIER_ID}/afspraken", data=form)
    assert refused.status_code == 422
    assert 'id="plan-gesprek_bestuurder-datum-fout"' in refused.text
    assert 'href="#plan-gesprek_bestuurder-datum"' in refused.text
    assert "<title>Fout: Dossier" in refused.text


def test_a_step_out_of_order_is_explained_in_dutch() -> None:
    portal, csrf = signed_in(FakeApis())
    response = portal.post(f"/secretariaat/dossiers/{DOSSIER_ID}/contact", data={"csrf": csrf})
    assert response.status_code == 409
    assert "Deze stap past nu niet in het proces." in response.text
    assert "er wordt niets meer gepland" in response.text


def test_moving_and_cancelling_are_form_posts_with_csrf() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    base = f"/secretariaat/dossiers/{DOSSIER_ID}/afspraken/{AFSPRAAK_ID}"
    assert portal.post(f"{base}/annuleren", data={}).status_code == 403
    moved = portal.post(
        f"{base}/verzetten", data={"csrf": csrf, "datum": "2026-05-18", "tijd": "09:00"}
    )
    assert moved.status_code == 200 and "De afspraak is verzet." in moved.text
    assert apis.calls[-1] == ("verzet", datetime(2026, 5, 18, 9, 0, tzinfo=AMS))
    cancelled = portal.post(f"{base}/annuleren", data={"csrf": csrf})
    assert "De afspraak is geannuleerd." in cancelled.text


def test_the_pages_are_for_the_secretariat_only() -> None:
    anonymous = TestClient(
        bootstrap(PortalSettings(), apis=FakeApis(), session_key=secrets.token_bytes(32))
    )
    assert anonymous.get("/secretariaat/werkvoorraad", follow_redirects=False).status_code == 303
    apis = FakeApis()
    portal, csrf = signed_in(apis, "bva-demo")
    assert portal.get("/secretariaat/werkvoorraad").status_code == 403
    searched = portal.post("/secretariaat/zoeken", data={"csrf": csrf, "nummer": str(DOSSIER_ID)})
    assert searched.status_code == 403
    assert apis.opgezocht == []


# --- the visitor's address, sent on ---------------------------------------------------------------

PORTAL_ADDRESS = "127.0.0.2"


def _request(peer: str, forwarded: str | None = None) -> Request:
    headers = [] if forwarded is None else [(b"x-forwarded-for", forwarded.encode())]
    return Request({"type": "http", "client": (peer, 5000), "headers": headers})


def _source_at_intake(herkomst: str) -> str:
    """What intake counts: the portal is its trusted proxy."""
    return client_source(_request(PORTAL_ADDRESS, herkomst), (PORTAL_ADDRESS,))


def test_two_visitors_are_counted_apart_and_none_can_spoof_another() -> None:
    eerste = herkomst_van(_request("203.0.113.5"), ())
    tweede = herkomst_van(_request("198.51.100.7"), ())
    assert (_source_at_intake(eerste), _source_at_intake(tweede)) == (
        "203.0.113.5",
        "198.51.100.7",
    )
    # A visitor who claims another address keeps their own: theirs is appended last.
    spoofed = herkomst_van(_request("203.0.113.5", "198.51.100.7"), ())
    assert spoofed == "198.51.100.7, 203.0.113.5"
    assert _source_at_intake(spoofed) == "203.0.113.5"
    # Rubbish in the header is not passed on.
    assert herkomst_van(_request("203.0.113.5", "evil\tvalue, , 10.0.0.1"), ()) == (
        "10.0.0.1, 203.0.113.5"
    )


def test_behind_the_portals_own_proxy_the_visitor_is_the_proxys_last_entry() -> None:
    proxy = "10.1.1.1"
    herkomst = herkomst_van(_request(proxy, "198.51.100.9, 203.0.113.5"), (proxy,))
    assert herkomst == "198.51.100.9, 203.0.113.5"
    assert _source_at_intake(herkomst) == "203.0.113.5"


def test_the_portal_sends_the_visitors_address_on_with_a_registration() -> None:
    apis = FakeApis()
    app = bootstrap(PortalSettings(), apis=apis, session_key=secrets.token_bytes(32))
    portal = TestClient(app, client=("203.0.113.5", 5000))
    csrf = _csrf(portal.get("/aanmelden").text)
    portal.post(
        "/aanmelden",
        data={"csrf": csrf, "ingediend_door": "bestuurder"},
        headers={"X-Forwarded-For": "198.51.100.7"},
    )
    assert apis.herkomst == "198.51.100.7, 203.0.113.5"
    assert apis.calls[-1] == ("aanmelden", None)


# --- a conversation held at another moment, recorded afterwards ----------------------------------


def test_the_calendar_is_asked_from_two_weeks_back_so_that_past_days_can_be_chosen() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    portal.get(f"/secretariaat/dossiers/{DOSSIER_ID}")
    # 13 May 07:00 UTC, fifteen days back; then those days and six weeks ahead.
    assert apis.werktijden_gevraagd == [(date(2026, 4, 28), 57)]
    assert KALENDER.eerdere_dagen(date(2026, 5, 13)) == [
        date(2026, 5, 13),
        date(2026, 5, 12),
        date(2026, 5, 11),
        date(2026, 5, 8),
    ]
    assert KALENDER.eerdere_dagen(date(2026, 5, 27)) == [
        date(2026, 5, 20),
        date(2026, 5, 19),
        date(2026, 5, 18),
        date(2026, 5, 15),
        date(2026, 5, 13),
    ], "two weeks back, not further"


def test_a_planned_conversation_held_earlier_is_recorded_afterwards_at_that_moment() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    base = f"/secretariaat/dossiers/{DOSSIER_ID}/afspraken/{AFSPRAAK_ID}"
    page = portal.get(f"/secretariaat/dossiers/{DOSSIER_ID}").text
    achteraf = page.split(f'action="{base}/achteraf"')[1].split("</form>")[0]
    # Past working days only (today included: the time decides), the latest first.
    assert re.findall(r'<option value="(2026-[0-9-]+)"', achteraf) == [
        "2026-05-13",
        "2026-05-12",
        "2026-05-11",
        "2026-05-08",
    ]
    assert portal.post(f"{base}/achteraf", data={"datum": "2026-05-12"}).status_code == 403
    done = portal.post(
        f"{base}/achteraf",
        data={"csrf": csrf, "datum": "2026-05-12", "tijd": "10:00"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert apis.calls[-1] == ("verzet achteraf", datetime(2026, 5, 12, 10, 0, tzinfo=AMS))
    assert "Het gesprek is achteraf vastgelegd" in portal.get(done.headers["location"]).text

    # A moment still to come is the API's to refuse, and shown at this form's field.
    apis.verzet_answer = Ongeldig((VeldFout("body.gepland_op", "must_be_in_past"),))
    refused = portal.post(
        f"{base}/achteraf", data={"csrf": csrf, "datum": "2026-05-13", "tijd": "17:00"}
    )
    assert refused.status_code == 422
    assert f'id="achteraf-{AFSPRAAK_ID}-datum-fout"' in refused.text
    assert "achteraf vastleggen is voor een gesprek dat al heeft plaatsgevonden" in refused.text
    # Moving it into the future is still a move, never recorded afterwards.
    portal.post(f"{base}/verzetten", data={"csrf": csrf, "datum": "2026-05-18", "tijd": "09:00"})
    assert apis.calls[-1][0] == "verzet"
