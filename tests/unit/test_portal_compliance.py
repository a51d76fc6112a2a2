"""Journey 7 without servers: the audit trail as a timeline with its refusals, a chosen moment
read in Dutch time, the export passed on with its type and a file name of ids only, the legal
hold's form posts, the chains' verification, and the pages for compliance alone."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi.testclient import TestClient

from services.portal.adapters import EmbeddedInloggen, HttpApis
from services.portal.application import (
    Bestand,
    Gelukt,
    Geweigerd,
    NietGevonden,
    Onbereikbaar,
    Ongeldig,
    TeVaak,
    Uitkomst,
    VeldFout,
)
from services.portal.application.compliance import (
    PER_PAGINA,
    STAPPEN_PER_PAGINA,
    Lijstfilters,
    gebeurtenis,
    gekozen_moment,
    lijst_uit,
    stand_uit,
    trailpositie,
    volgende_positie,
)
from services.portal.bootstrap import bootstrap
from shared.platform.settings import PortalSettings

AMS = ZoneInfo("Europe/Amsterdam")
NU = datetime(2026, 5, 13, 9, 0, tzinfo=AMS)
DOSSIER_ID = UUID("6f1c0000-0000-4000-8000-000000000001")
ONBEKEND = UUID("6f1c0000-0000-4000-8000-0000000000ff")


def envelope(naam: str, tijd: str, actorrole: str | None, **data: Any) -> dict[str, Any]:
    """A public event of the trail as intake serves it."""
    dienst = "assessment" if naam in {"ToegangGeweigerd", "RapportIngezien"} else "intake"
    return {
        "specversion": "1.0",
        "id": secrets.token_hex(8),
        "source": f"urn:nl:weerbaarbestuur:{dienst}",
        "type": f"nl.weerbaarbestuur.{naam}.v1",
        "subject": str(DOSSIER_ID),
        "time": tijd,
        "actorrole": actorrole,
        "actorid": "p-" + "a" * 32 if actorrole else None,
        "data": {"aanvraag_id": str(DOSSIER_ID), **data},
    }


TRAIL = [
    envelope("AanvraagIngediend", "2026-05-12T08:00:00Z", "aanvrager"),
    envelope("ContactOpgenomen", "2026-05-12T09:30:05Z", "secretariaat", binnen_termijn=True),
    envelope(
        "ToegangGeweigerd",
        "2026-05-12T10:00:00Z",
        "werkgever",
        dienst="assessment",
        actie="GET /rapporten/{rapport_id}",
        reden="nog_niet_vrijgegeven",
        status_code=403,
    ),
    envelope("RapportIngezien", "2026-05-12T11:00:00Z", "bestuurder", versie=2, rol="bestuurder"),
]
VERIFICATIE = {
    "uitgevoerd": True,
    "in_orde": True,
    "diensten": {"intake": "12 events, chain ok", "assessment": "3 events, chain ok"},
    "toelichting": "in orde",
    "gestart_op": "2026-05-13T07:00:00Z",
}
EXPORT = {
    "reikwijdte": {"aanvraag_id": str(DOSSIER_ID)},
    "gemaakt_op": "2026-05-13T07:00:00Z",
    "verificatie": {k: v for k, v in VERIFICATIE.items() if k != "gestart_op"},
    "gebeurtenissen": [],
}


class FakeApis:
    """Intake's compliance API as the pages call it; answers as told, calls remembered."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.token: str | None = None
        self.hold_answer: Uitkomst = Gelukt({"bewaarplicht": "rechtszaak"})
        self.export_answer: Bestand | Uitkomst | None = None
        self.verificatie_answer: Uitkomst = Gelukt(VERIFICATIE)
        self.trail: list[dict[str, Any]] = list(TRAIL)

    def als(self, token: str | None, herkomst: str | None = None) -> FakeApis:
        self.token = token
        return self

    def dossiers(self, filters: Mapping[str, str | int]) -> Uitkomst:
        self.calls.append(("dossiers", dict(filters)))
        return Gelukt({}, (self._dossier(),))

    def _dossier(self, **extra: Any) -> dict[str, Any]:
        return {
            "aanvraag_id": str(DOSSIER_ID),
            "status": "goedgekeurd",
            "ingediend_op": "2026-05-12T08:00:00Z",
            "organisatie_code": "GM0344",
            "bewaarplicht": None,
            **extra,
        }

    def dossier(self, aanvraag_id: UUID) -> Uitkomst:
        self.calls.append(("dossier", aanvraag_id))
        if aanvraag_id != DOSSIER_ID:
            return NietGevonden()
        return Gelukt(self._dossier(bewaarplicht="klacht"))

    def dossier_per(self, aanvraag_id: UUID, per: datetime) -> Uitkomst:
        self.calls.append(("per", per))
        if per < datetime(2026, 5, 12, 8, tzinfo=UTC):
            return NietGevonden()
        return Gelukt(
            self._dossier(
                status="contact_opgenomen",
                contact_op="2026-05-12T09:30:05Z",
                tijdlijn=[
                    {"tijd": "2026-05-12T08:00:00Z", "gebeurtenis": "AanvraagIngediend"},
                    {
                        "tijd": "2026-05-12T09:30:05Z",
                        "gebeurtenis": "ContactOpgenomen",
                        "rol": "secretariaat",
                    },
                ],
            )
        )

    def audit(self, aanvraag_id: UUID, limit: int | None = None, na: str | None = None) -> Uitkomst:
        """The trail, or a page of it as intake pages: its positions ``pos-<index>``."""
        self.calls.append(("audit", (limit, na)))
        if limit is None and na is None:
            return Gelukt({}, tuple(self.trail))
        start = 0
        if na is not None:
            if not re.fullmatch(r"pos-[0-9]+", na) or int(na[4:]) >= len(self.trail):
                return Ongeldig((VeldFout("query.na", "audit_position"),))
            start = int(na[4:]) + 1
        pagina = self.trail[start : start + (limit or 100)]
        einde = start + len(pagina)
        volgende = None
        if einde < len(self.trail):
            volgende = f"/aanvragen/{aanvraag_id}/audit?limit={limit}&na=pos-{einde - 1}"
        return Gelukt({}, tuple(pagina), volgende)

    def audit_telling(self, aanvraag_id: UUID) -> Uitkomst:
        self.calls.append(("telling", aanvraag_id))
        namen = [e["type"].split(".")[-2] for e in self.trail]
        return Gelukt(
            {
                "gebeurtenissen": len(namen),
                "per_gebeurtenis": {naam: namen.count(naam) for naam in set(namen)},
                "geweigerde_pogingen": sum(
                    e["data"].get("aantal", 1)
                    for e in self.trail
                    if e["type"].split(".")[-2] == "ToegangGeweigerd"
                ),
            }
        )

    def ketenverificatie(self, opnieuw: bool) -> Uitkomst:
        self.calls.append(("verificatie", opnieuw))
        return self.verificatie_answer

    def audit_export(self, aanvraag_id: UUID, formaat: str) -> Bestand | Uitkomst:
        self.calls.append(("export", formaat))
        if self.export_answer is not None:
            return self.export_answer
        if formaat == "json":
            return Bestand([json.dumps(EXPORT).encode()], "application/json")
        if formaat == "csv":
            return Bestand(
                [b"tijd,aanvraag_id\n", f"x,{DOSSIER_ID}\n".encode()],
                "text/csv",
                lambda: self.calls.append(("gesloten", formaat)),
            )
        return Bestand([b"<!DOCTYPE html><title>Auditverslag</title>"], "text/html")

    def leg_bewaarplicht_op(self, aanvraag_id: UUID, reden: str) -> Uitkomst:
        self.calls.append(("leg_op", reden))
        return self.hold_answer

    def hef_bewaarplicht_op(self, aanvraag_id: UUID) -> Uitkomst:
        self.calls.append(("hef_op", aanvraag_id))
        return Gelukt({"bewaarplicht": None})


def signed_in(apis: FakeApis, persoon: str = "cmp-demo") -> tuple[TestClient, str]:
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


# --- the use cases -------------------------------------------------------------------------------


def test_a_refusal_in_the_trail_says_who_was_refused_what_and_by_which_service() -> None:
    regel = gebeurtenis(TRAIL[2])
    assert regel.geweigerd and not regel.gelezen
    assert regel.wat == "Toegang geweigerd"
    assert regel.rol == "werkgever"
    assert regel.wanneer == "dinsdag 12 mei 2026 om 12:00:00"
    assert ("poging", "GET /rapporten/{rapport_id}") in regel.details
    assert ("geweigerd door", "assessment") in regel.details
    assert ("antwoord", "403") in regel.details
    gelezen = gebeurtenis(TRAIL[3])
    assert gelezen.gelezen and ("versie", "2") in gelezen.details


def test_a_chosen_moment_is_dutch_time_to_the_second() -> None:
    moment = gekozen_moment("2026-05-12T11:30:05")
    assert moment is not None and moment.isoformat() == "2026-05-12T11:30:05+02:00"
    zonder_seconden = gekozen_moment("2026-05-12T11:30")
    assert zonder_seconden is not None and zonder_seconden.second == 0
    for fout in ("", "gisteren", "2026-05-12T11:30:05+00:00", "0001-01-01T00:00"):
        assert gekozen_moment(fout) is None, fout


def test_the_dossier_at_a_moment_shows_its_state_then() -> None:
    moment = datetime(2026, 5, 12, 12, tzinfo=AMS)
    stand = stand_uit(
        {
            "aanvraag_id": str(DOSSIER_ID),
            "status": "contact_opgenomen",
            "contact_op": "2026-05-12T09:30:05Z",
            "tijdlijn": [{"tijd": "2026-05-12T08:00:00Z", "gebeurtenis": "AanvraagIngediend"}],
        },
        moment,
    )
    assert stand.bestond and stand.status == "Contact opgenomen"
    assert stand.veld == "2026-05-12T12:00:00"
    assert [r.wat for r in stand.tijdlijn] == ["Aanvraag ingediend"]


def test_the_list_pages_by_the_keyset_of_its_last_row() -> None:
    rijen = [
        {
            "aanvraag_id": f"6f1c0000-0000-4000-8000-{i:012d}",
            "ingediend_op": f"2026-05-12T08:{i % 60:02d}:00Z",
            "status": "ingediend",
            "organisatie_code": "GM0344",
        }
        for i in range(PER_PAGINA + 1)
    ]
    pagina = lijst_uit(rijen, Lijstfilters.uit({"status": "ingediend"}))
    assert len(pagina.regels) == PER_PAGINA
    assert pagina.volgende is not None and "na_aanvraag_id=6f1c0000" in pagina.volgende
    assert Lijstfilters.uit({"status": "onzin", "na_aanvraag_id": "x"}) == Lijstfilters()


# --- the pages -----------------------------------------------------------------------------------


def test_the_dossier_page_shows_the_trail_with_its_refusal_and_the_hold() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    page = portal.get(f"/compliance/dossiers/{DOSSIER_ID}")
    assert page.status_code == 200
    assert "Toegang geweigerd" in page.text
    assert "poging: GET /rapporten/{rapport_id}" in page.text
    assert "Ja, reden: Klacht" in page.text
    assert "Bewaarplicht opheffen" in page.text
    for formaat in ("json", "csv", "html"):
        assert f"/compliance/dossiers/{DOSSIER_ID}/export/{formaat}" in page.text
    assert apis.token is not None  # the officer's own token


def _lange_trail() -> list[dict[str, Any]]:
    """250 steps: the submission, 200 refused attempts, then 49 reads of the report (all on the
    last page, so a count of the page shown would be wrong on the others)."""
    trail = [TRAIL[0]]
    for i in range(200):
        trail.append(
            envelope(
                "ToegangGeweigerd",
                f"2026-05-12T10:{i // 60:02d}:{i % 60:02d}Z",
                "werkgever",
                dienst="assessment",
                actie="GET /rapporten/{rapport_id}",
                reden="nog_niet_vrijgegeven",
                status_code=403,
            )
        )
    for i in range(49):
        trail.append(
            envelope(
                "RapportIngezien", f"2026-05-12T11:00:{i:02d}Z", "bestuurder", versie=2, rol="b"
            )
        )
    return trail


def _stappen(page: str) -> list[str]:
    trail = page.split('id="trail-titel"', 1)[1]
    return re.findall(r'<time datetime="([^"]+)"', trail)


def _link(page: str, tekst: str) -> str | None:
    found = re.search(rf'<a class="utrecht-link" href="([^"]+)">{tekst}</a>', page)
    return None if found is None else found.group(1).replace("&amp;", "&")


def test_a_long_trail_is_shown_a_hundred_steps_a_page_with_the_counts_of_the_whole() -> None:
    apis = FakeApis()
    apis.trail = _lange_trail()
    portal, _ = signed_in(apis)

    eerste = portal.get(f"/compliance/dossiers/{DOSSIER_ID}")
    assert eerste.status_code == 200
    assert len(_stappen(eerste.text)) == STAPPEN_PER_PAGINA
    assert _link(eerste.text, "Eerste pagina") is None
    volgende = _link(eerste.text, "Volgende pagina")
    assert volgende == f"/compliance/dossiers/{DOSSIER_ID}?na=pos-99#trail-titel"
    assert '<nav aria-label="Pagina\'s van het audittrail"' in eerste.text
    # The counts are of the whole trail, not of this page (it holds no read).
    assert '<dd id="inzages">49</dd>' in eerste.text
    assert '<dd id="weigeringen">200</dd>' in eerste.text
    assert "hele audittrail (250 gebeurtenissen)" in eerste.text

    gezien = _stappen(eerste.text)
    pagina = eerste
    while (volgende := _link(pagina.text, "Volgende pagina")) is not None:
        pagina = portal.get(volgende)
        assert pagina.status_code == 200
        assert (
            _link(pagina.text, "Eerste pagina") == f"/compliance/dossiers/{DOSSIER_ID}#trail-titel"
        )
        assert '<dd id="inzages">49</dd>' in pagina.text
        gezien += _stappen(pagina.text)
    assert len(_stappen(pagina.text)) == 50
    assert gezien == [gebeurtenis(e).tijd for e in apis.trail]
    assert [c[1] for c in apis.calls if c[0] == "audit"] == [
        (STAPPEN_PER_PAGINA, None),
        (STAPPEN_PER_PAGINA, "pos-99"),
        (STAPPEN_PER_PAGINA, "pos-199"),
    ]


def test_a_short_trail_is_one_page_without_paging_links() -> None:
    page = signed_in(FakeApis())[0].get(f"/compliance/dossiers/{DOSSIER_ID}")
    assert len(_stappen(page.text)) == len(TRAIL)
    assert "Alle 4 gebeurtenissen staan hieronder." in page.text
    assert "Pagina's van het audittrail" not in page.text
    assert '<dd id="inzages">1</dd>' in page.text and '<dd id="weigeringen">1</dd>' in page.text


@pytest.mark.parametrize(
    ("query", "gevraagd"),
    [
        ("na=", []),
        ("na=%21%21", []),
        ("na=" + "A" * 201, []),
        ("na=pos-1&na=pos-2", []),
        ("na=%00", []),
        ("na=pos-99%0A", []),
        ("na=" + "%C3%A9" * 3, []),
        # Well-formed, but no position intake gave: intake refuses it, the page starts over.
        ("na=pos-999999", ["pos-999999"]),
        ("na=pos-5x", ["pos-5x"]),
    ],
)
def test_a_malformed_or_refused_position_starts_the_trail_at_the_top(
    query: str, gevraagd: list[str]
) -> None:
    apis = FakeApis()
    apis.trail = _lange_trail()
    portal, _ = signed_in(apis)

    page = portal.get(f"/compliance/dossiers/{DOSSIER_ID}?{query}")

    assert page.status_code == 200
    assert _stappen(page.text) == [gebeurtenis(e).tijd for e in apis.trail[:STAPPEN_PER_PAGINA]]
    assert _link(page.text, "Eerste pagina") is None
    # A malformed value never reaches intake; a refused one is asked once, then the top.
    assert [c[1] for c in apis.calls if c[0] == "audit"] == [
        *((STAPPEN_PER_PAGINA, na) for na in gevraagd),
        (STAPPEN_PER_PAGINA, None),
    ]


def test_a_position_is_passed_on_only_when_it_could_be_one_of_intakes() -> None:
    assert trailpositie(["MTc3MjQ0MjkwMTAwMDAwMC9hYmM"]) == "MTc3MjQ0MjkwMTAwMDAwMC9hYmM"
    assert trailpositie([]) == ""
    assert trailpositie(["a", "b"]) == ""
    assert trailpositie(["a=b"]) == ""
    assert trailpositie(["A" * 201]) == ""
    assert volgende_positie("/aanvragen/x/audit?limit=100&na=abc_-9") == "abc_-9"
    assert volgende_positie("/aanvragen/x/audit?limit=100&na=a&na=b") is None
    assert volgende_positie("/aanvragen/x/audit?limit=100&na=%3Cscript%3E") is None
    assert volgende_positie(None) is None


def test_searching_a_number_opens_the_dossier_or_says_why_not() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    page = portal.get("/compliance/dossiers").text
    zoekformulier = page.split('<form method="post" action="/compliance/zoeken"')[1].split(
        "</form>"
    )[0]
    assert f'name="csrf" value="{csrf}"' in zoekformulier
    found = portal.post(
        "/compliance/zoeken",
        data={"csrf": csrf, "nummer": DOSSIER_ID.hex},
        follow_redirects=False,
    )
    assert found.status_code == 303
    assert found.headers["location"] == f"/compliance/dossiers/{DOSSIER_ID}"
    assert ("dossier", DOSSIER_ID) in apis.calls
    missing = portal.post("/compliance/zoeken", data={"csrf": csrf, "nummer": str(ONBEKEND)})
    assert missing.status_code == 404
    assert 'href="#nummer">Er is geen dossier met dat nummer.' in missing.text
    wrong = portal.post("/compliance/zoeken", data={"csrf": csrf, "nummer": "Jan de Vries"})
    assert wrong.status_code == 422
    assert 'href="#nummer">Dat is geen dossiernummer.' in wrong.text
    assert 'id="nummer-fout"' in wrong.text and 'aria-invalid="true"' in wrong.text
    assert "Jan de Vries" not in wrong.text


def test_a_search_without_its_csrf_token_is_refused_and_looks_nothing_up() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    for data in ({}, {"csrf": "fout"}):
        refused = portal.post("/compliance/zoeken", data={**data, "nummer": str(DOSSIER_ID)})
        assert refused.status_code == 403
        assert "Formulier verlopen" in refused.text
    assert [call for call in apis.calls if call[0] == "dossier"] == []


def test_a_number_in_the_address_is_no_search_and_is_not_looked_up() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    old = portal.get(f"/compliance/zoeken?nummer={DOSSIER_ID}", follow_redirects=False)
    assert old.status_code == 303
    assert old.headers["location"] == "/compliance/dossiers"
    assert [call for call in apis.calls if call[0] == "dossier"] == []


def test_the_moment_goes_to_the_api_with_its_offset_and_an_earlier_one_says_not_yet() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    page = portal.get(f"/compliance/dossiers/{DOSSIER_ID}/per?moment=2026-05-12T12:00:00")
    assert page.status_code == 200
    assert apis.calls[-1] == ("per", datetime(2026, 5, 12, 12, tzinfo=AMS))
    assert "Contact opgenomen" in page.text
    assert (
        "Op dat moment was het dossier nog niet ingediend"
        in portal.get(f"/compliance/dossiers/{DOSSIER_ID}/per?moment=2026-05-01T12:00").text
    )


def test_a_malformed_moment_is_shown_at_its_field() -> None:
    portal, _ = signed_in(FakeApis())
    page = portal.get(f"/compliance/dossiers/{DOSSIER_ID}/per?moment=gisteren")
    assert page.status_code == 422
    assert 'href="#moment"' in page.text and 'aria-invalid="true"' in page.text
    assert "<title>Fout: " in page.text


@pytest.mark.parametrize(
    ("formaat", "media_type"),
    [("json", "application/json"), ("csv", "text/csv"), ("html", "text/html")],
)
def test_an_export_is_passed_on_as_a_download_named_by_ids_only(
    formaat: str, media_type: str
) -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    answer = portal.get(f"/compliance/dossiers/{DOSSIER_ID}/export/{formaat}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith(media_type)
    assert answer.headers["content-disposition"] == (
        f'attachment; filename="auditverslag-{DOSSIER_ID}.{formaat}"'
    )
    assert answer.headers["cache-control"] == "no-store"
    assert "unsafe-inline" not in answer.headers["content-security-policy"]
    if formaat == "csv":
        # Passed on part by part, and the service's answer let go of once sent.
        assert apis.calls[-1] == ("gesloten", "csv")
    assert answer.content == apis.audit_export(DOSSIER_ID, formaat).lees()  # type: ignore[union-attr]


def test_an_unknown_format_or_a_refused_export_shows_nothing_of_the_dossier() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    assert portal.get(f"/compliance/dossiers/{DOSSIER_ID}/export/xml").status_code == 404
    apis.export_answer = Geweigerd()
    refused = portal.get(f"/compliance/dossiers/{DOSSIER_ID}/export/csv")
    assert refused.status_code == 403
    assert "Geen toegang" in refused.text and str(DOSSIER_ID) not in refused.text


def test_the_chains_verification_is_shown_per_service_with_its_moment() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    page = portal.get("/compliance/verificatie")
    assert page.status_code == 200
    assert "In orde:" in page.text
    assert "12 events, chain ok" in page.text and "3 events, chain ok" in page.text
    # 07:00 UTC on 13 May is 09:00 in the Netherlands (summer time).
    assert "09:00" in page.text and "13 mei 2026" in page.text
    assert apis.calls == [("verificatie", False)]
    # The export is not made for it: a page view does not build a dossier's whole audit export.
    assert all(call[0] != "export" for call in apis.calls)


def test_a_new_verification_is_asked_for_with_the_button() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    page = portal.get("/compliance/verificatie")
    assert 'action="/compliance/verificatie"' in page.text and 'name="opnieuw"' in page.text
    assert portal.get("/compliance/verificatie?opnieuw=true").status_code == 200
    assert apis.calls[-1] == ("verificatie", True)


def test_the_dossier_page_links_to_the_verification() -> None:
    page = signed_in(FakeApis())[0].get(f"/compliance/dossiers/{DOSSIER_ID}")
    assert 'href="/compliance/verificatie"' in page.text


@pytest.mark.parametrize(
    ("verificatie", "getoond"),
    [
        (
            {"uitgevoerd": True, "in_orde": False, "diensten": {"intake": "row 7 modified"}},
            "Niet in orde:",
        ),
        (
            {"uitgevoerd": False, "in_orde": None, "toelichting": "de logs zijn niet leesbaar"},
            "Niet gecontroleerd.",
        ),
        # An answer that does not say it was in order is never shown as in order.
        ({"uitgevoerd": "ja", "in_orde": "ja", "diensten": []}, "Niet gecontroleerd."),
        ({"uitgevoerd": True, "in_orde": None}, "Niet in orde:"),
    ],
)
def test_a_chain_that_did_not_verify_or_was_not_checked_is_said_so(
    verificatie: dict[str, Any], getoond: str
) -> None:
    apis = FakeApis()
    apis.verificatie_answer = Gelukt(verificatie)
    page = signed_in(apis)[0].get("/compliance/verificatie")
    assert page.status_code == 200
    assert getoond in page.text and "In orde:" not in page.text
    diensten = verificatie.get("diensten")
    for tekst in (
        *(diensten.values() if isinstance(diensten, dict) else ()),
        verificatie.get("toelichting", ""),
    ):
        assert tekst in page.text


@pytest.mark.parametrize(("antwoord", "status"), [(Geweigerd(), 403), (Onbereikbaar(), 503)])
def test_a_refused_or_unanswered_verification_is_a_page_of_its_own(
    antwoord: Uitkomst, status: int
) -> None:
    apis = FakeApis()
    apis.verificatie_answer = antwoord
    page = signed_in(apis)[0].get("/compliance/verificatie")
    assert page.status_code == status
    assert "In orde:" not in page.text and "Niet in orde:" not in page.text


def test_a_verification_refused_because_enough_wait_says_so_and_when_to_come_back() -> None:
    apis = FakeApis()
    apis.verificatie_answer = TeVaak()
    page = signed_in(apis)[0].get("/compliance/verificatie?opnieuw=true")
    assert page.status_code == 429
    assert "Er loopt al een controle van de hash-ketens" in page.text
    assert "In orde:" not in page.text and "Niet in orde:" not in page.text


def test_placing_and_lifting_the_hold_are_form_posts_with_csrf() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    pad = f"/compliance/dossiers/{DOSSIER_ID}/bewaarplicht"
    assert portal.post(pad, data={"reden": "rechtszaak"}).status_code == 403
    placed = portal.post(pad, data={"csrf": csrf, "reden": "rechtszaak"})
    assert placed.status_code == 200
    assert ("leg_op", "rechtszaak") in apis.calls
    assert "De bewaarplicht is opgelegd (reden: rechtszaak)" in placed.text
    lifted = portal.post(f"{pad}/opheffen", data={"csrf": csrf})
    assert "De bewaarplicht is opgeheven" in lifted.text
    assert ("hef_op", DOSSIER_ID) in apis.calls


def test_a_hold_without_a_reason_is_shown_at_its_field_and_nothing_is_sent() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    page = portal.post(
        f"/compliance/dossiers/{DOSSIER_ID}/bewaarplicht", data={"csrf": csrf, "reden": ""}
    )
    assert page.status_code == 422
    assert 'href="#reden"' in page.text and 'id="reden-fout"' in page.text
    assert not any(call[0] == "leg_op" for call in apis.calls)
    apis.hold_answer = Ongeldig((VeldFout("body.reden", "enum"),))
    refused = portal.post(
        f"/compliance/dossiers/{DOSSIER_ID}/bewaarplicht", data={"csrf": csrf, "reden": "klacht"}
    )
    assert refused.status_code == 422 and 'id="reden-fout"' in refused.text


def test_the_pages_are_for_compliance_only() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis, "sec-demo")
    assert portal.get(f"/compliance/dossiers/{DOSSIER_ID}").status_code == 403
    assert portal.get(f"/compliance/dossiers/{DOSSIER_ID}/export/json").status_code == 403
    held = portal.post(
        f"/compliance/dossiers/{DOSSIER_ID}/bewaarplicht", data={"csrf": csrf, "reden": "klacht"}
    )
    assert held.status_code == 403
    searched = portal.post("/compliance/zoeken", data={"csrf": csrf, "nummer": str(DOSSIER_ID)})
    assert searched.status_code == 403
    assert not any(call[0] in {"audit", "export", "leg_op", "dossier"} for call in apis.calls)
    start = signed_in(FakeApis())[0].get("/start")
    assert 'href="/compliance/dossiers"' in start.text


# --- the adapter ---------------------------------------------------------------------------------


def _apis(handler: Any) -> HttpApis:
    urls = {s: f"http://{s}.test" for s in ("intake", "scheduling", "assessment")}
    urls |= {s: f"http://{s}.test" for s in ("approval", "notifications")}
    return HttpApis(urls, "token", httpx.MockTransport(handler))


def test_the_adapter_asks_for_the_export_and_passes_only_the_type_asked_for() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.params["formaat"] == "csv":
            return httpx.Response(200, text="a,b\n", headers={"content-type": "text/csv"})
        if request.url.params["formaat"] == "json":
            return httpx.Response(404, json={"detail": "Onbekend dossier."})
        return httpx.Response(200, text="<script>", headers={"content-type": "text/plain"})

    apis = _apis(handler)
    csv = apis.audit_export(DOSSIER_ID, "csv")
    assert isinstance(csv, Bestand) and csv.media_type == "text/csv"
    assert csv.lees() == b"a,b\n"
    assert seen[0].url.path == "/audit/export"
    assert seen[0].url.params["aanvraag_id"] == str(DOSSIER_ID)
    assert seen[0].headers["authorization"] == "Bearer token"
    assert apis.audit_export(DOSSIER_ID, "html") == Onbereikbaar()
    assert apis.audit_export(DOSSIER_ID, "json") == NietGevonden()


def test_the_adapter_sends_the_moment_and_the_hold() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/audit"):
            return httpx.Response(404, json={"detail": "Onbekend dossier."})
        return httpx.Response(200, json={"bewaarplicht": None})

    apis = _apis(handler)
    apis.dossier_per(DOSSIER_ID, datetime(2026, 5, 12, 12, tzinfo=AMS))
    assert seen[-1].url.params["per"] == "2026-05-12T12:00:00+02:00"
    apis.leg_bewaarplicht_op(DOSSIER_ID, "toezicht")
    assert (seen[-1].method, json.loads(seen[-1].content)) == ("POST", {"reden": "toezicht"})
    apis.hef_bewaarplicht_op(DOSSIER_ID)
    assert (seen[-1].method, seen[-1].url.path) == (
        "DELETE",
        f"/aanvragen/{DOSSIER_ID}/bewaarplicht",
    )
    assert apis.audit(DOSSIER_ID) == NietGevonden()
    assert "limit" not in seen[-1].url.params and "na" not in seen[-1].url.params


def test_the_adapter_asks_for_a_page_and_hands_on_the_next_ones_address() -> None:
    seen: list[httpx.Request] = []
    volgende = f"/aanvragen/{DOSSIER_ID}/audit?limit=100&na=MTIzL2E"

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path.endswith("/telling"):
            return httpx.Response(200, json={"gebeurtenissen": 3})
        if request.url.params.get("na") == "MTIzL2E":
            return httpx.Response(200, json=[TRAIL[3]])
        return httpx.Response(200, json=TRAIL[:3], headers={"Link": f'<{volgende}>; rel="next"'})

    apis = _apis(handler)
    eerste = apis.audit(DOSSIER_ID, 100)
    assert eerste == Gelukt({}, tuple(TRAIL[:3]), volgende)
    assert dict(seen[-1].url.params) == {"limit": "100"}
    laatste = apis.audit(DOSSIER_ID, 100, "MTIzL2E")
    assert laatste == Gelukt({}, (TRAIL[3],), None)
    assert dict(seen[-1].url.params) == {"limit": "100", "na": "MTIzL2E"}
    assert apis.audit_telling(DOSSIER_ID) == Gelukt({"gebeurtenissen": 3})
    assert seen[-1].url.path == f"/aanvragen/{DOSSIER_ID}/audit/telling"


@pytest.mark.parametrize(
    "link",
    ["garbage", ";;;", '<>; rel="next"', "<" + "a" * 100_000 + '>; rel="next"', ",,,<", ""],
)
def test_a_malformed_or_huge_link_header_gives_no_next_page_and_no_error(link: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=TRAIL[:3], headers={"Link": link})

    uitkomst = _apis(handler).audit(DOSSIER_ID, 100)
    assert isinstance(uitkomst, Gelukt) and len(uitkomst.lijst) == 3
    assert volgende_positie(uitkomst.volgende) is None
