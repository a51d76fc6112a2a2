"""Journey 3 in Chromium: the adviseur finds both conversations among their appointments,
records them as held (the one at home with the woningscan), writes the report over the four
domains with several measures, saves it as a draft and submits it; the BVA rejects it with a
reason; the adviseur sees the reason beside the text, revises, submits version 2 and reads the
differences between the versions.

The secretariat's steps (contact, both conversations planned) and the BVA's rejection are
driven through the APIs; every step of the adviseur is taken in the browser, through the
portal as ``./weerbaar up`` runs it. The browser may reach only loopback; every page visited
must have no axe-core violation at all, and its screenshot is saved
(``test-artifacts/screenshots/portal``, not committed).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from services.scheduling.domain.calendar import WorkingDayCalendar
from tests.browser.conftest import BrowserPage, no_axe_violations
from tests.browser.stappen import artikel, maatregel, melding, sla_op
from tests.support import aanmelding, token, wait_until
from tools.system import System

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

INTAKE, SCHEDULING, ASSESSMENT, APPROVAL = "intake", "scheduling", "assessment", "approval"
#: The demo adviseur the portal's development sign-in offers (its ``sub``).
ADVISEUR = "adv-demo"
GESPREKSDUUR = timedelta(minutes=90)
REDEN = "Voor het domein informatie ontbreekt een maatregel tegen het online adres."


def _call(
    system: System, method: str, service: str, path: str, headers: dict[str, str], **kw: Any
) -> httpx.Response:
    return httpx.request(method, f"{system.url(service)}{path}", headers=headers, timeout=10, **kw)


def dossier_met_gesprekken(system: System) -> tuple[str, dict[str, str]]:
    """A dossier whose two conversations the secretariat has planned with the demo adviseur,
    at working-hour slots that have passed (recorded ``achteraf``, as ``weerbaar demo`` does:
    a conversation is held only once its start has passed)."""
    answer = httpx.post(f"{system.url(INTAKE)}/aanvragen", json=aanmelding(), timeout=10)
    assert answer.status_code == 201, answer.text
    aanvraag_id: str = answer.json()["aanvraag_id"]
    secretariaat = token(system.data_dir, "secretariaat", sub="sec-test")

    def contact() -> bool | None:
        response = _call(
            system, "POST", SCHEDULING, f"/aanvragen/{aanvraag_id}/contact", secretariaat
        )
        return response.status_code == 200 or None

    wait_until(contact, timeout=30, what="scheduling to know the dossier")
    kalender = WorkingDayCalendar()
    werkgever = kalender.latest_start(datetime.now(UTC), GESPREKSDUUR)
    thuis = kalender.latest_start(werkgever - GESPREKSDUUR, GESPREKSDUUR)
    afspraken: dict[str, str] = {}
    for soort, moment, extra in (
        ("gesprek_werkgever", werkgever, {"video_link": "https://video.example.org/k/3"}),
        ("gesprek_bestuurder", thuis, {}),
    ):
        response = _call(
            system,
            "POST",
            SCHEDULING,
            f"/aanvragen/{aanvraag_id}/afspraken",
            secretariaat,
            json={
                "soort": soort,
                "gepland_op": moment.isoformat(),
                "duur_minuten": int(GESPREKSDUUR.total_seconds() // 60),
                "adviseur_id": ADVISEUR,
                "achteraf": True,
                **extra,
            },
        )
        assert response.status_code == 201, response.text
        afspraken[soort] = response.json()["afspraak_id"]
    bva = token(system.data_dir, "bva", sub="bva-test")
    wait_until(
        lambda: (
            _call(system, "GET", ASSESSMENT, f"/aanvragen/{aanvraag_id}/rapporten", bva).status_code
            == 200
            or None
        ),
        timeout=30,
        what="assessment to know the dossier",
    )
    return aanvraag_id, afspraken


def rapport_stand(system: System, aanvraag_id: str) -> dict[str, Any] | None:
    """The report's state as assessment serves it (read as the BVA: no content, no read)."""
    response = _call(
        system,
        "GET",
        ASSESSMENT,
        f"/aanvragen/{aanvraag_id}/rapporten",
        token(system.data_dir, "bva", sub="bva-test"),
    )
    assert response.status_code == 200, response.text
    lijst: list[dict[str, Any]] = response.json()
    return lijst[0] if lijst else None


def keur_af(system: System, aanvraag_id: str) -> None:
    """The BVA rejects the submitted version, with a reason (once approval heard of it), and
    assessment hears of the rejection."""
    stand = rapport_stand(system, aanvraag_id)
    assert stand is not None and stand["status"] == "ter_toetsing"
    bva = token(system.data_dir, "bva", sub="bva-test")
    body = {"versie": stand["versie"], "inhoud_hash": stand["inhoud_hash"], "redenen": [REDEN]}

    def afgekeurd() -> bool | None:
        response = _call(
            system, "POST", APPROVAL, f"/rapporten/{stand['rapport_id']}/afkeuren", bva, json=body
        )
        assert response.status_code in (200, 404, 409), response.text
        return response.status_code == 200 or None

    wait_until(afgekeurd, timeout=30, what="approval to know the submitted version")
    wait_until(
        lambda: (rapport_stand(system, aanvraag_id) or {}).get("status") == "afgekeurd" or None,
        timeout=30,
        what="assessment to know of the rejection",
    )


def test_the_adviseur_records_the_conversations_and_writes_and_revises_the_report(
    running_system: System, portal_url: str, offline_page: BrowserPage
) -> None:
    aanvraag_id, afspraken = dossier_met_gesprekken(running_system)
    page = offline_page.page

    page.goto(f"{portal_url}/inloggen")
    page.get_by_role("button", name="Inloggen als Adviseur CCV").click()
    page.get_by_role("link", name="Mijn afspraken").click()
    expect(page.locator("h1")).to_have_text("Mijn afspraken")
    werkgever = artikel(page, "Gesprek met de werkgever")
    thuis = artikel(page, "Gesprek met de bestuurder")
    expect(werkgever).to_contain_text(aanvraag_id)
    expect(werkgever).to_contain_text("digitaal (videoverbinding)")
    expect(thuis).to_contain_text("bij de bestuurder thuis")
    no_axe_violations(offline_page, "adviseur-afspraken")

    werkgever.get_by_role("button", name="Gesprek met de werkgever vastleggen als gevoerd").click()
    melding(page, "Het gesprek is vastgelegd als gevoerd.")
    thuis = artikel(page, "Gesprek met de bestuurder")
    thuis.get_by_label("De woningscan is tijdens dit gesprek uitgevoerd").check()
    thuis.get_by_role("button", name="Gesprek met de bestuurder vastleggen als gevoerd").click()
    melding(page, "Het gesprek en de woningscan zijn vastgelegd.")
    gevoerd = page.locator("section[aria-labelledby=gevoerd-titel]")
    expect(gevoerd.locator("article")).to_have_count(2)
    expect(page.locator("section[aria-labelledby=open-titel]")).to_contain_text(
        "U hebt geen geplande afspraken."
    )
    no_axe_violations(offline_page, "adviseur-afspraken-gevoerd")
    planning = _call(
        running_system,
        "GET",
        SCHEDULING,
        f"/afspraken/{afspraken['gesprek_bestuurder']}",
        token(running_system.data_dir, "secretariaat", sub="sec-test"),
    ).json()
    assert planning["status"] == "gevoerd" and planning["woningscan_uitgevoerd_op"]

    # The report: four domains, two measures (the second added with its own button).
    gevoerd.get_by_role("link", name="adviesrapport van dit dossier").first.click()
    expect(page.locator("h1")).to_contain_text(aanvraag_id)
    assert page.url.endswith(f"/adviseur/dossiers/{aanvraag_id}/rapport")
    expect(page.locator("#inhoud-titel")).to_have_text("Rapport opstellen")
    no_axe_violations(offline_page, "adviseur-rapport-nieuw")
    page.get_by_label("Werk", exact=True).fill("Dreigende berichten via het algemene nummer.")
    page.get_by_label("Wonen", exact=True).fill("De voordeur is vanaf de straat niet te zien.")
    page.get_by_label("Informatie (digitaal)").fill("Het woonadres staat in een openbaar register.")
    page.get_by_label("Verplaatsen", exact=True).fill("Elke dag dezelfde route naar het werk.")
    maatregel(page, 0, "Wonen", "Camera en verlichting bij de voordeur", "Hoog", "De werkgever")
    page.get_by_role("button", name="Nog een maatregel toevoegen").click()
    maatregel(page, 1, "Verplaatsen", "Wisselende routes naar het werk", "Middel", "De bestuurder")
    # Its costs are not chosen: the page says so at the field, and keeps what was written.
    page.get_by_label("Kosten").first.select_option(label="Met kosten")
    page.get_by_role("button", name="Opslaan als concept").click()
    expect(page).to_have_title(re.compile("^Fout: Adviesrapport"))
    expect(page.locator("#m1-kosten-fout")).to_contain_text("Kies bij maatregel 2: kosten.")
    expect(page.locator("#m1-kosten")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Werk", exact=True)).to_have_value(
        "Dreigende berichten via het algemene nummer."
    )
    no_axe_violations(offline_page, "adviseur-rapport-fout")
    page.locator("#m1-kosten").select_option(label="Kosteloos")
    sla_op(page)
    melding(page, "Het rapport is opgeslagen als concept.")
    expect(page.locator("#rapport-status")).to_have_text("Concept: nog niet ingediend")
    expect(page.locator("#rapport-versie")).to_have_text("Versie 1")
    expect(page.get_by_label("Omschrijving").nth(1)).to_have_value(
        "Wisselende routes naar het werk"
    )
    no_axe_violations(offline_page, "adviseur-rapport-concept")

    page.get_by_role("button", name="Versie 1 indienen bij de BVA").click()
    melding(page, "Het rapport is ter toetsing aangeboden aan de BVA.")
    expect(page.locator("#rapport-status")).to_have_text("Ter toetsing bij de BVA")
    expect(page.get_by_role("button", name="Opslaan als concept")).to_have_count(0)
    no_axe_violations(offline_page, "adviseur-rapport-ter-toetsing")

    # The BVA rejects version 1 (through its API); the reason stands beside the text.
    keur_af(running_system, aanvraag_id)
    page.reload()
    expect(page.locator("#rapport-status")).to_contain_text("Afgekeurd door de BVA")
    expect(page.locator("#inhoud-titel")).to_have_text("Rapport herzien")
    redenen = page.get_by_role("complementary", name="Redenen van de BVA")
    expect(redenen).to_contain_text("Versie 1 is afgekeurd op")
    expect(redenen).to_contain_text(REDEN)
    tekst, kant = page.locator("#bevinding-werk").bounding_box(), redenen.bounding_box()
    assert tekst is not None and kant is not None and kant["x"] > tekst["x"] + tekst["width"]
    no_axe_violations(offline_page, "adviseur-rapport-afgekeurd")

    page.get_by_label("Informatie (digitaal)").fill(
        "Het woonadres en het telefoonnummer staan in een openbaar register."
    )
    page.get_by_label("Prioriteit").first.select_option(label="Middel")
    maatregel(page, 2, "Informatie (digitaal)", "Afscherming van het adres aanvragen", "Hoog")
    veld = page.locator("fieldset:has(> legend:text-is('Maatregel 3'))")
    veld.get_by_label("Wie voert hem uit").select_option(label="De bestuurder")
    veld.get_by_label("Kosten").select_option(label="Kosteloos")
    page.get_by_role("button", name="Opslaan als concept").click()
    melding(page, "Het rapport is opgeslagen als concept.")
    expect(page.locator("#rapport-versie")).to_have_text("Versie 2")
    expect(redenen).to_contain_text(REDEN)
    page.get_by_role("button", name="Versie 2 indienen bij de BVA").click()
    melding(page, "Het rapport is ter toetsing aangeboden aan de BVA.")
    stand = rapport_stand(running_system, aanvraag_id)
    assert stand is not None
    assert (stand["status"], stand["versie"], stand["ingediende_versies"]) == (
        "ter_toetsing",
        2,
        [1, 2],
    )
    assert len(stand["maatregelen"]) == 3

    # The differences between version 1 (rejected) and version 2.
    page.get_by_role("link", name="Verschillen tussen de versies bekijken").click()
    expect(page.locator("h1")).to_have_text("Verschillen tussen versies")
    expect(page.locator("#samenvatting")).to_contain_text("Van versie 1 naar versie 2")
    informatie = page.locator("#verschil-informatie")
    expect(informatie.locator("ins")).to_contain_text("en het telefoonnummer staan")
    expect(informatie.locator("del")).to_contain_text("staat")
    expect(page.locator("#verschil-werk ins")).to_have_count(0)
    lijst = page.locator("#maatregel-verschillen")
    expect(lijst).to_contain_text("Nieuw (Informatie (digitaal)): Afscherming van het adres")
    expect(lijst).to_contain_text("Prioriteit: Hoog → Middel")
    expect(lijst).to_contain_text("Ongewijzigd (Verplaatsen)")
    no_axe_violations(offline_page, "adviseur-rapport-verschillen")

    assert offline_page.outside == [], "the page tried to leave loopback"
    # The refused save came back as 422 and the early ones as 409, which Chromium reports.
    assert [e for e in offline_page.errors if not re.search(r"status of 4(22|09)", e)] == []
