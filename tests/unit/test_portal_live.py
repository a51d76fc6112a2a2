"""Live pages without servers: the stream's subjects, the fan-out (only the connections an event
concerns, caps, a connection that never reads), each connection's pushes (only when what the
viewer sees changed, at most one per second, nothing but "gewijzigd", the end of the session or
of access), and ``/live`` refusing whoever may not follow the page."""

from __future__ import annotations

import asyncio
import importlib
import itertools
import re
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from services.portal.adapters import EmbeddedInloggen
from services.portal.adapters.stroom import NatsLuisteraar
from services.portal.application import Gelukt, Geweigerd, NietGevonden, Onbereikbaar, Uitkomst
from services.portal.application.live import (
    BEGIN,
    EINDE,
    GEWIJZIGD,
    HARTSLAG,
    WEG,
    Gebeurtenis,
    Tempo,
    Verdeler,
    Vol,
    stroom,
    uit_onderwerp,
    zicht_uit,
    zicht_van,
)
from services.portal.bootstrap import bootstrap
from shared.platform.settings import PortalSettings
from tools.embedded import free_port

DOSSIER = UUID("6f1c0000-0000-4000-8000-000000000001")
ANDER = UUID("6f1c0000-0000-4000-8000-000000000002")
SNEL = Tempo(hartslag_s=0.2, demping_s=0.3, nakijken_s=0.2, peilen_s=0.02)


# --- the stream's subjects ------------------------------------------------------------------------


def test_a_subject_names_the_event_and_its_dossier_and_nothing_else_is_read() -> None:
    assert uit_onderwerp(f"weerbaar.scheduling.ContactOpgenomen.{DOSSIER}") == Gebeurtenis(
        "ContactOpgenomen", DOSSIER
    )
    # An event of no one dossier still reaches the lists.
    assert uit_onderwerp("weerbaar.intake.ToegangGeweigerd._") == Gebeurtenis(
        "ToegangGeweigerd", None
    )
    assert uit_onderwerp("weerbaar-deadletter.intake.X.y") is None
    assert uit_onderwerp("weerbaar.intake") is None


# --- the fan-out ----------------------------------------------------------------------------------


def test_an_event_flags_only_the_connections_of_its_dossier_and_the_lists() -> None:
    verdeler = Verdeler()
    deze = verdeler.neem("s1", DOSSIER)
    andere = verdeler.neem("s1", ANDER)
    lijst = verdeler.neem("s2", None)
    assert verdeler.verdeel(Gebeurtenis("ContactOpgenomen", DOSSIER)) == 2
    assert deze.signaal.is_set()
    assert not andere.signaal.is_set()
    assert lijst.signaal.is_set()


def test_connections_are_capped_per_session_and_in_all() -> None:
    verdeler = Verdeler(max_per_sessie=2, max_totaal=3)
    eerste = verdeler.neem("s1", DOSSIER)
    verdeler.neem("s1", DOSSIER)
    with pytest.raises(Vol):
        verdeler.neem("s1", ANDER)
    verdeler.neem("s2", DOSSIER)
    with pytest.raises(Vol):
        verdeler.neem("s3", DOSSIER)
    # A connection that ends makes room again.
    verdeler.laat_los(eerste)
    assert verdeler.neem("s1", ANDER).dossier == ANDER
    assert verdeler.aantal == 3


async def test_a_connection_that_never_reads_does_not_hold_up_the_others() -> None:
    verdeler = Verdeler()
    traag = verdeler.neem("traag", DOSSIER)  # its client has gone quiet: nobody reads it
    views = iter(range(1, 1000))

    async def zicht() -> object:
        return next(views)

    snel = verdeler.neem("snel", DOSSIER)
    pushes = stroom(verdeler, snel, zicht, 0, time.time() + 60, SNEL)
    assert await anext(pushes) == BEGIN
    begonnen = time.monotonic()
    for _ in range(10_000):
        verdeler.verdeel(Gebeurtenis("AfspraakGepland", DOSSIER))
    # Flagging is all the fan-out does: ten thousand events are no backlog for anyone.
    assert time.monotonic() - begonnen < 1.0
    assert traag.signaal.is_set()
    assert await asyncio.wait_for(anext(pushes), timeout=2) == GEWIJZIGD
    await pushes.aclose()
    assert verdeler.aantal == 1


# --- one connection's pushes --------------------------------------------------------------------


class Teller:
    """What the viewer sees: a number the test turns up; the calls counted."""

    def __init__(self) -> None:
        self.waarde: object = 0
        self.vragen = 0

    async def __call__(self) -> object:
        self.vragen += 1
        return self.waarde


async def _volgende(pushes: AsyncIterator[str], timeout: float = 2.0) -> str:
    return await asyncio.wait_for(anext(pushes), timeout=timeout)


async def test_a_push_says_only_that_the_page_changed_and_comes_only_when_the_view_did() -> None:
    verdeler = Verdeler()
    abonnement = verdeler.neem("s", DOSSIER)
    teller = Teller()
    pushes = stroom(verdeler, abonnement, teller, 0, time.time() + 60, SNEL)
    assert await _volgende(pushes) == BEGIN
    # An event that changes nothing the viewer sees (e.g. someone else's refused attempt):
    # the viewer's answer is asked again, and nothing is pushed but the heartbeat.
    verdeler.verdeel(Gebeurtenis("ToegangGeweigerd", DOSSIER))
    assert await _volgende(pushes) == HARTSLAG
    # Asked a few times, further apart each time (0, 20, 60, 140 ms of the 200 ms): never a
    # steady stream of calls to the services.
    assert 2 <= teller.vragen <= 5
    teller.waarde = 1
    verdeler.verdeel(Gebeurtenis("ContactOpgenomen", DOSSIER))
    assert await _volgende(pushes) == GEWIJZIGD
    assert GEWIJZIGD == "event: gewijzigd\ndata: gewijzigd\n\n"
    await pushes.aclose()


async def test_the_view_is_asked_again_until_the_read_models_caught_up() -> None:
    verdeler = Verdeler()
    abonnement = verdeler.neem("s", DOSSIER)
    antwoorden = iter([0, 0, 0, 1])

    async def zicht() -> object:
        return next(antwoorden, 1)

    pushes = stroom(verdeler, abonnement, zicht, 0, time.time() + 60, SNEL)
    assert await _volgende(pushes) == BEGIN
    verdeler.verdeel(Gebeurtenis("AfspraakGepland", DOSSIER))
    assert await _volgende(pushes) == GEWIJZIGD
    await pushes.aclose()


async def test_pushes_are_at_most_one_per_damping_interval() -> None:
    verdeler = Verdeler()
    abonnement = verdeler.neem("s", DOSSIER)
    teller = Teller()
    tempo = Tempo(hartslag_s=5, demping_s=0.4, nakijken_s=0.1, peilen_s=0.01)
    pushes = stroom(verdeler, abonnement, teller, 0, time.time() + 60, tempo)
    assert await _volgende(pushes) == BEGIN
    momenten: list[float] = []

    async def druk() -> None:
        # An event with a changed view every 20 ms, for about 1.2 s.
        for n in range(1, 60):
            teller.waarde = n
            verdeler.verdeel(Gebeurtenis("MaatregelUitgevoerd", DOSSIER))
            await asyncio.sleep(0.02)

    begin = time.monotonic()
    bezig = asyncio.create_task(druk())
    while not bezig.done():
        try:
            regel = await asyncio.wait_for(anext(pushes), timeout=0.5)
        except TimeoutError:
            continue
        assert regel == GEWIJZIGD
        momenten.append(time.monotonic())
    duur = time.monotonic() - begin
    await pushes.aclose()
    # Fifty-nine changes, a handful of pushes: never two within the interval.
    assert 2 <= len(momenten) <= duur / 0.4 + 1
    tussen = [b - a for a, b in itertools.pairwise(momenten)]
    assert min(tussen) >= 0.4 - 0.01


async def test_refused_access_or_an_expired_session_ends_the_stream() -> None:
    verdeler = Verdeler()
    teller = Teller()
    abonnement = verdeler.neem("s", DOSSIER)
    pushes = stroom(verdeler, abonnement, teller, 0, time.time() + 60, SNEL)
    assert await _volgende(pushes) == BEGIN
    teller.waarde = WEG
    verdeler.verdeel(Gebeurtenis("AanvraagIngetrokken", DOSSIER))
    assert await _volgende(pushes) == EINDE
    with pytest.raises(StopAsyncIteration):
        await _volgende(pushes)
    assert verdeler.aantal == 0

    verlopen = verdeler.neem("s", DOSSIER)
    pushes = stroom(verdeler, verlopen, Teller(), 0, time.time() + 0.1, SNEL)
    assert [regel async for regel in pushes] == [BEGIN, EINDE]
    assert verdeler.aantal == 0


async def test_an_expired_access_token_closes_quietly_so_the_browser_reconnects() -> None:
    verdeler = Verdeler()
    abonnement = verdeler.neem("s", DOSSIER)
    nu = time.time()
    pushes = stroom(verdeler, abonnement, Teller(), 0, nu + 60, SNEL, token_verloopt=nu + 0.05)
    # No "einde": the browser connects again, and the portal renews the token on the way.
    assert [regel async for regel in pushes] == [BEGIN]


def test_the_view_is_the_answers_data_or_refused_or_unknown_for_now() -> None:
    gelukt: tuple[Uitkomst, ...] = (Gelukt({"status": "ingediend"}),)
    assert zicht_uit(gelukt) == zicht_uit((Gelukt({"status": "ingediend"}),))
    assert zicht_uit(gelukt) != zicht_uit((Gelukt({"status": "contact_opgenomen"}),))
    assert zicht_uit((Geweigerd(),)) is WEG
    assert zicht_uit((NietGevonden(),)) is WEG
    assert zicht_uit((Onbereikbaar(),)) is None


async def test_without_nats_reachable_the_listener_starts_at_once_and_stops_cleanly() -> None:
    luisteraar = NatsLuisteraar([f"nats://127.0.0.1:{free_port()}"], Verdeler())
    begonnen = time.monotonic()
    await luisteraar.start()
    # The portal's start (and so every page) does not wait for NATS.
    assert time.monotonic() - begonnen < 0.5
    assert not luisteraar.verbonden
    await luisteraar.stop()
    assert not luisteraar.verbonden


# --- /live ---------------------------------------------------------------------------------------


class FakeApis:
    """The dossier DOSSIER exists; a werkgever of another organisation is refused it (404)."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.calls: list[tuple[str, Any, str | None]] = []

    def als(self, token: str | None, herkomst: str | None = None) -> FakeApis:
        self.token = token
        return self

    def dossier(self, aanvraag_id: UUID) -> Uitkomst:
        self.calls.append(("dossier", aanvraag_id, self.token))
        if aanvraag_id != DOSSIER:
            return NietGevonden()
        return Gelukt({"aanvraag_id": str(DOSSIER), "status": "ingediend"})

    def dossiers(self, filters: dict[str, Any]) -> Uitkomst:
        self.calls.append(("dossiers", filters, self.token))
        return Gelukt({}, ({"aanvraag_id": str(DOSSIER)},))


def portaal(
    apis: FakeApis, verdeler: Verdeler | None, uren: float = 8.0
) -> tuple[TestClient, EmbeddedInloggen]:
    inloggen = EmbeddedInloggen(secrets.token_bytes(32), "weerbaar-embedded", "weerbaar")
    app = bootstrap(
        PortalSettings(portal_session_hours=uren),
        apis=apis,  # type: ignore[arg-type]
        inloggen=inloggen,
        session_key=secrets.token_bytes(32),
        live=(verdeler, None),
    )
    return TestClient(app, base_url="http://portal.test"), inloggen


def log_in(portal: TestClient, persoon: str) -> None:
    found = re.search(r'name="csrf" value="([^"]+)"', portal.get("/inloggen/demo").text)
    assert found
    portal.post("/inloggen/demo", data={"csrf": found.group(1), "persoon": persoon})


def test_live_is_refused_without_sign_in() -> None:
    apis = FakeApis()
    portal, _ = portaal(apis, Verdeler())
    answer = portal.get(f"/live?dossier={DOSSIER}")
    assert answer.status_code == 401
    assert "text/event-stream" not in answer.headers["content-type"]
    assert apis.calls == []


def test_live_for_a_dossier_the_viewer_may_not_see_has_no_stream_and_no_content() -> None:
    apis = FakeApis()
    verdeler = Verdeler()
    portal, _ = portaal(apis, verdeler)
    log_in(portal, "wg-ander-demo")
    vreemd = uuid4()
    answer = portal.get(f"/live?dossier={vreemd}")
    assert answer.status_code == 404
    assert "text/event-stream" not in answer.headers["content-type"]
    assert str(vreemd) not in answer.text
    # Asked with the viewer's own token, and nothing left open.
    assert [(naam, aid) for naam, aid, _ in apis.calls] == [("dossier", vreemd)]
    assert apis.calls[0][2] is not None
    assert verdeler.aantal == 0


def test_a_list_is_followed_only_by_the_role_whose_list_it_is() -> None:
    apis = FakeApis()
    portal, _ = portaal(apis, Verdeler())
    log_in(portal, "wg-demo")
    assert portal.get("/live?lijst=werkvoorraad").status_code == 403
    assert portal.get("/live?lijst=iets").status_code == 403
    assert portal.get("/live").status_code == 400
    assert apis.calls == []


def test_live_streams_to_a_viewer_who_may_see_the_dossier_until_the_session_ends() -> None:
    apis = FakeApis()
    verdeler = Verdeler()
    # A session of three seconds: the stream ends with it (the test client reads to the end).
    portal, _ = portaal(apis, verdeler, uren=3 / 3600)
    log_in(portal, "sec-demo")
    answer = portal.get(f"/live?dossier={DOSSIER}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/event-stream")
    assert answer.headers["cache-control"] == "no-store"
    assert answer.text.startswith(BEGIN)
    assert answer.text.endswith(EINDE)
    assert str(DOSSIER) not in answer.text
    assert verdeler.aantal == 0


def test_without_the_stream_the_pages_still_work_and_live_says_there_is_nothing() -> None:
    apis = FakeApis()
    portal, _ = portaal(apis, None)
    log_in(portal, "sec-demo")
    assert portal.get(f"/live?dossier={DOSSIER}").status_code == 204


def test_live_pages_name_what_they_follow_on_main_and_load_the_script() -> None:
    apis = FakeApis()
    portal, _ = portaal(apis, Verdeler())
    page = portal.get("/")
    assert '<script src="/static/live.js" defer></script>' in page.text
    assert 'id="live-melding"' in page.text
    # A page that does not follow anything has no data-live.
    assert "data-live" not in page.text


# --- which pages follow what ---------------------------------------------------------------------

#: Each live page: its journey's unit-test module (its fake APIs and sign-in), its address and
#: what it follows.
LIVE_PAGINAS = [
    ("secretariaat", "/secretariaat/werkvoorraad", "lijst=werkvoorraad"),
    ("secretariaat", "/secretariaat/dossiers/{id}", "dossier={id}"),
    ("bva", "/bva/toetsing", "lijst=toetsing"),
    ("adviseur", "/adviseur/afspraken", "lijst=afspraken"),
    ("adviseur", "/adviseur/dossiers/{id}/rapport", "dossier={id}"),
    ("compliance", "/compliance/dossiers/{id}", "dossier={id}"),
    ("bestuurder", "/bestuurder/dossiers/{id}", "dossier={id}"),
    ("werkgever", "/werkgever/dossiers/{id}", "dossier={id}"),
]


@pytest.mark.parametrize(("rol", "adres", "volgt"), LIVE_PAGINAS)
def test_every_live_page_names_what_it_follows_on_main(rol: str, adres: str, volgt: str) -> None:
    journey = importlib.import_module(f"tests.unit.test_portal_{rol}")
    portal, _ = journey.signed_in(journey.FakeApis())
    aanvraag_id = journey.DOSSIER_ID
    page = portal.get(adres.format(id=aanvraag_id))
    assert page.status_code == 200, page.text
    main = re.search(r"<main [^>]*>", page.text)
    assert main
    assert f'data-live="/live?{volgt.format(id=aanvraag_id)}"' in main.group(0)


def test_a_page_answering_a_form_post_is_not_live() -> None:
    """Its address is the post's: fetching it again would not show the page (405)."""
    journey = importlib.import_module("tests.unit.test_portal_secretariaat")
    portal, csrf = journey.signed_in(journey.FakeApis())
    aanvraag_id = journey.DOSSIER_ID
    shown = portal.get(f"/secretariaat/dossiers/{aanvraag_id}")
    assert 'data-live="' in shown.text
    posted = portal.post(
        f"/secretariaat/dossiers/{aanvraag_id}/afspraken",
        data={"csrf": csrf, "soort": "gesprek_bestuurder", "datum": "", "tijd": ""},
    )
    assert posted.status_code == 422, posted.text[:300]
    assert "data-live=" not in posted.text


# --- a list is compared as its page shows it ------------------------------------------------------


def test_the_werkvoorraad_is_asked_with_the_pages_own_filters_and_start() -> None:
    """A secretariat on the third page of overdue dossiers must be told of a change there, not
    only of one among the first hundred of all dossiers."""
    apis = FakeApis()
    pagina = {
        "lijst": "werkvoorraad",
        "status": "ingediend",
        "verstreken": "ja",
        "na_ingediend_op": "2026-12-01T10:00:00+00:00",
        "na_aanvraag_id": str(ANDER),
    }
    zicht_van(apis, None, "werkvoorraad", pagina)()
    assert apis.calls[-1][:2] == (
        "dossiers",
        {
            "limit": 26,
            "status": "ingediend",
            "deadline_verstreken": "true",
            "na_ingediend_op": "2026-12-01T10:00:00+00:00",
            "na_aanvraag_id": str(ANDER),
        },
    )
    # What the page would drop, the live connection drops too.
    zicht_van(
        apis, None, "werkvoorraad", {"status": "alles", "limit": "100000", "na_aanvraag_id": "x"}
    )()
    assert apis.calls[-1][:2] == ("dossiers", {"limit": 26})


def test_the_review_queue_is_asked_as_its_page_asks_it() -> None:
    apis = FakeApis()
    zicht_van(apis, None, "toetsing", {"status": "ingediend", "limit": "3"})()
    assert apis.calls[-1][:2] == ("dossiers", {"status": "ter_toetsing", "limit": 500})


def test_a_filtered_werkvoorraad_follows_its_own_filters_live() -> None:
    journey = importlib.import_module("tests.unit.test_portal_secretariaat")
    portal, _ = journey.signed_in(journey.FakeApis())
    page = portal.get("/secretariaat/werkvoorraad?status=ingediend&verstreken=ja&lijst=toetsing")
    main = re.search(r"<main [^>]*>", page.text)
    assert main
    assert (
        'data-live="/live?lijst=werkvoorraad&amp;status=ingediend&amp;verstreken=ja"'
        in main.group(0)
    )
