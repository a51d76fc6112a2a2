"""Journey 4 without servers: the review queue from intake's list, a version with its hash and
four domains, the decision naming that version and hash, reasons required, four-eyes shown and
a refused decision shown as refused, over a fake of the APIs."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from fastapi.testclient import TestClient

from services.portal.adapters import EmbeddedInloggen
from services.portal.application import Conflict, Gelukt, Geweigerd, NietGevonden, Uitkomst
from services.portal.application.bva import redenen_uit, wachtrij_uit
from services.portal.bootstrap import bootstrap
from shared.platform.settings import PortalSettings

DOSSIER_ID = UUID("6f1c0000-0000-4000-8000-000000000002")
RAPPORT_ID = UUID("6f1c0000-0000-4000-8000-0000000000b1")
HASH_1 = "a" * 64
HASH_2 = "b" * 64


def _versie(versie: int, besluit: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "versie": versie,
        "ingediend_op": "2026-05-13T08:00:00Z",
        "besluit": besluit,
        "inhoud_hash": None,
        "besloten_door": None,
        "besloten_op": "2026-05-13T09:00:00Z" if besluit else None,
        "redenen": [],
        **extra,
    }


class FakeApis:
    """The services as the BVA's pages call them; answers as told, calls remembered."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.vier_ogen = False
        self.besluit: Uitkomst = Gelukt({"status": "afgekeurd"})
        self.versies = [
            _versie(1, "afgekeurd", redenen=["Het domein informatie ontbreekt."]),
            _versie(2),
        ]

    def als(self, token: str | None, herkomst: str | None = None) -> FakeApis:
        return self

    def dossiers(self, filters: Mapping[str, str | int]) -> Uitkomst:
        self.calls.append(("dossiers", dict(filters)))
        return Gelukt({}, tuple(_queue()))

    def beoordelingen(self, rapport_id: UUID) -> Uitkomst:
        if rapport_id != RAPPORT_ID:
            return NietGevonden()
        return Gelukt(
            {
                "rapport_id": str(RAPPORT_ID),
                "aanvraag_id": str(DOSSIER_ID),
                "versies": self.versies,
                "vier_ogen": self.vier_ogen,
            }
        )

    def rapport(self, rapport_id: UUID, versie: int | None = None) -> Uitkomst:
        self.calls.append(("rapport", versie))
        return Gelukt(
            {
                "rapport_id": str(RAPPORT_ID),
                "aanvraag_id": str(DOSSIER_ID),
                "versie": versie,
                "status": "ter_toetsing",
                "inhoud_hash": HASH_2,
                "opgesteld_op": "2026-05-13T07:30:00Z",
                "inhoud": {
                    "bevindingen": {
                        "werk": "Balie zonder afscherming.",
                        "wonen": "Achterdeur zonder inbraakwerend slot.",
                        "informatie": "Adres te herleiden.",
                        "verplaatsen": "Vaste routes.",
                    },
                    "maatregelen": [
                        {
                            "maatregel_id": "6f1c0000-0000-4000-8000-0000000000c1",
                            "domein": "wonen",
                            "omschrijving": "Inbraakwerend hang- en sluitwerk.",
                            "kosten": "met_kosten",
                            "uitvoerder": "werkgever",
                            "prioriteit": "hoog",
                        }
                    ],
                },
                "vergeten": False,
            }
        )

    def keur_goed(self, rapport_id: UUID, versie: int, inhoud_hash: str) -> Uitkomst:
        self.calls.append(("goedkeuren", (versie, inhoud_hash)))
        return self.besluit

    def keur_af(
        self, rapport_id: UUID, versie: int, inhoud_hash: str, redenen: Sequence[str]
    ) -> Uitkomst:
        self.calls.append(("afkeuren", (versie, inhoud_hash, tuple(redenen))))
        return self.besluit


def _queue() -> list[dict[str, Any]]:
    def dossier(nummer: int, ter_toetsing_op: str) -> dict[str, Any]:
        return {
            "aanvraag_id": f"6f1c0000-0000-4000-8000-00000000000{nummer}",
            "status": "ter_toetsing",
            "ingediend_op": "2026-05-01T08:00:00Z",
            "organisatie_code": "GM0344",
            "rapport": {
                "rapport_id": str(RAPPORT_ID)
                if nummer == 2
                else f"6f1c0000-0000-4000-8000-0000000000b{nummer}",
                "versies": [
                    {"versie": 1, "ter_toetsing_op": "2026-05-02T08:00:00Z"},
                    {"versie": 2, "ter_toetsing_op": ter_toetsing_op},
                ],
            },
        }

    return [dossier(3, "2026-05-14T08:00:00Z"), dossier(2, "2026-05-13T08:00:00Z")]


def signed_in(apis: FakeApis, persoon: str = "bva-demo") -> tuple[TestClient, str]:
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


def test_the_queue_lists_the_latest_submitted_version_longest_waiting_first() -> None:
    queue = wachtrij_uit(_queue())
    assert [w.aanvraag_id[-1] for w in queue.rapporten] == ["2", "3"]
    assert queue.rapporten[0].versie == 2
    assert queue.rapporten[0].ingediend_op == "woensdag 13 mei 2026 om 10:00"
    assert not queue.meer


def test_the_queue_shows_the_reports_waiting_longest_when_intake_lists_more_than_a_page() -> None:
    # Intake lists newest registration first; the longest waiting may be registered last.
    lijst = []
    for n in range(150):
        wacht_sinds = f"2026-05-{1 + n // 24:02d}T{n % 24:02d}:00:00+00:00"
        lijst.append(
            {
                "aanvraag_id": f"00000000-0000-0000-0000-{n:012d}",
                "ingediend_op": "2026-04-01T09:00:00+00:00",
                "organisatie_code": "GM0344",
                "rapport": {
                    "rapport_id": f"10000000-0000-0000-0000-{n:012d}",
                    "versies": [{"versie": 1, "ter_toetsing_op": wacht_sinds}],
                },
            }
        )
    queue = wachtrij_uit(list(reversed(lijst)))
    assert len(queue.rapporten) == 100 and queue.meer
    assert queue.rapporten[0].aanvraag_id.endswith("000000000000"), "the longest waiting first"
    assert queue.rapporten[-1].aanvraag_id.endswith("000000000099")
    assert wachtrij_uit(lijst[:5], vol=True).meer, "intake's list was cut off"


def test_the_queue_page_asks_intake_only_for_the_reports_awaiting_review() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    page = portal.get("/bva/toetsing")
    assert page.status_code == 200
    assert f'href="/bva/rapporten/{RAPPORT_ID}"' in page.text
    assert apis.calls[0] == ("dossiers", {"status": "ter_toetsing", "limit": 500})


def test_the_report_page_shows_the_version_its_hash_the_four_domains_and_earlier_reasons() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    page = portal.get(f"/bva/rapporten/{RAPPORT_ID}").text
    # The version awaiting review is the one read.
    assert ("rapport", 2) in apis.calls
    assert HASH_2 in page
    for domein in ("Werk", "Wonen", "Informatie (digitaal)", "Verplaatsen"):
        assert f">{domein}</h2>" in page
    assert "Inbraakwerend hang- en sluitwerk." in page
    assert "Het domein informatie ontbreekt." in page
    assert "Versie 2 goedkeuren" in page and " disabled" not in page


def test_a_link_from_another_site_reads_no_version_until_the_reviewer_opens_it() -> None:
    apis = FakeApis()
    portal, _ = signed_in(apis)
    url = f"/bva/rapporten/{RAPPORT_ID}"
    apis.calls.clear()
    page = portal.get(url, headers={"Sec-Fetch-Site": "cross-site"})
    assert page.status_code == 200 and apis.calls == []
    assert HASH_2 not in page.text and "Inbraakwerend hang- en sluitwerk." not in page.text
    assert f'href="{url}">Rapport openen</a>' in page.text
    geopend = portal.get(url, headers={"Sec-Fetch-Site": "same-origin"})
    assert geopend.status_code == 200 and HASH_2 in geopend.text
    assert [c for c in apis.calls if c[0] == "rapport"] == [("rapport", 2)]


def test_approving_names_the_version_and_hash_read() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    form = {"csrf": csrf, "versie": "2", "inhoud_hash": HASH_2}
    done = portal.post(f"/bva/rapporten/{RAPPORT_ID}/goedkeuren", data=form, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/bva/toetsing"
    assert apis.calls[-1] == ("goedkeuren", (2, HASH_2))
    assert "Het rapport is goedgekeurd." in portal.get("/bva/toetsing").text


def test_rejecting_needs_reasons_at_their_field() -> None:
    apis = FakeApis()
    portal, csrf = signed_in(apis)
    form = {"csrf": csrf, "versie": "2", "inhoud_hash": HASH_2, "redenen": "  \n "}
    refused = portal.post(f"/bva/rapporten/{RAPPORT_ID}/afkeuren", data=form)
    assert refused.status_code == 422
    assert 'id="redenen-fout"' in refused.text and 'href="#redenen"' in refused.text
    assert "<title>Fout: Rapport ter toetsing" in refused.text
    assert not any(call[0] == "afkeuren" for call in apis.calls)

    form["redenen"] = "Eerste reden.\n\nTweede reden.\n"
    done = portal.post(f"/bva/rapporten/{RAPPORT_ID}/afkeuren", data=form, follow_redirects=False)
    assert done.status_code == 303
    assert apis.calls[-1] == ("afkeuren", (2, HASH_2, ("Eerste reden.", "Tweede reden.")))


def test_a_rejected_latest_version_says_a_revision_comes_and_offers_no_decision() -> None:
    apis = FakeApis()
    apis.versies = [_versie(1, "afgekeurd", redenen=["Het domein informatie ontbreekt."])]
    portal, _ = signed_in(apis)
    page = portal.get(f"/bva/rapporten/{RAPPORT_ID}").text
    assert ("rapport", 1) in apis.calls
    assert 'id="herziening"' in page and "goedkeuren</button>" not in page


def test_the_author_sees_the_decision_disabled_with_the_reason() -> None:
    apis = FakeApis()
    apis.vier_ogen = True
    portal, _ = signed_in(apis)
    page = portal.get(f"/bva/rapporten/{RAPPORT_ID}").text
    assert "vier-ogenprincipe" in page
    assert page.count(" disabled") == 3  # both buttons and the reasons


def test_a_decision_the_api_refuses_shows_the_refusal_and_nothing_of_the_report() -> None:
    apis = FakeApis()
    apis.besluit = Geweigerd()
    portal, csrf = signed_in(apis)
    form = {"csrf": csrf, "versie": "2", "inhoud_hash": HASH_2}
    refused = portal.post(f"/bva/rapporten/{RAPPORT_ID}/goedkeuren", data=form)
    assert refused.status_code == 403
    assert "Besluit geweigerd" in refused.text and "niets vastgelegd" in refused.text
    assert HASH_2 not in refused.text and "Inbraakwerend" not in refused.text


def test_a_decision_out_of_date_is_explained_on_the_page() -> None:
    apis = FakeApis()
    apis.besluit = Conflict("Dit is niet de laatste versie die ter toetsing is aangeboden.")
    portal, csrf = signed_in(apis)
    form = {"csrf": csrf, "versie": "2", "inhoud_hash": HASH_2}
    response = portal.post(f"/bva/rapporten/{RAPPORT_ID}/goedkeuren", data=form)
    assert response.status_code == 409
    assert "er is intussen al over deze versie beslist" in response.text


def test_a_form_without_a_version_and_hash_is_refused() -> None:
    portal, csrf = signed_in(FakeApis())
    response = portal.post(
        f"/bva/rapporten/{RAPPORT_ID}/goedkeuren", data={"csrf": csrf, "versie": "x"}
    )
    assert response.status_code == 422


def test_the_pages_are_for_the_bva_only() -> None:
    portal, _ = signed_in(FakeApis(), "sec-demo")
    assert portal.get("/bva/toetsing").status_code == 403
    assert portal.get(f"/bva/rapporten/{RAPPORT_ID}").status_code == 403


def test_the_adviseur_as_bva_signs_in_with_the_adviseurs_subject() -> None:
    inloggen = EmbeddedInloggen(secrets.token_bytes(32), "weerbaar-embedded", "weerbaar")
    ingelogd = inloggen.log_in("adv-bva-demo")
    assert ingelogd is not None and (ingelogd.sub, ingelogd.rol) == ("adv-demo", "bva")


def test_reasons_are_one_per_line_within_the_apis_limits() -> None:
    assert redenen_uit("a\nb") == (("a", "b"), None)
    assert redenen_uit("\n".join(["x"] * 21))[1] is not None
    assert redenen_uit("x" * 2001)[1] is not None
