"""Scheduling's part of the advice process over HTTP, on real PostgreSQL.

The API is driven with FastAPI's TestClient; other services' public events are handed to the
planning consumer's handler directly; intake's party check is a fake injected through bootstrap.
What a user would notice is asserted: the status code, the answer, and what was recorded (the
service's own store) and announced (its gateway).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi.testclient import TestClient

from services.scheduling.application import Scheduling
from services.scheduling.bootstrap import application, bootstrap
from services.scheduling.domain import AfspraakVerzoek
from services.scheduling.domain.calendar import WorkingDayCalendar
from services.scheduling.gateway import to_public
from shared.contracts import events as public
from shared.contracts.registry import to_cloudevent
from shared.platform.access import ToegangGeweigerdVastgelegd, opaque_actor_id
from shared.platform.auth import Principal, Role
from shared.platform.consumer import Delivery
from shared.platform.errors import Conflict, NietGevonden
from shared.platform.model import Context, DomainEvent, FixedClock
from shared.platform.parties import Partijen
from shared.platform.settings import Settings
from tests.support import token

pytestmark = pytest.mark.integration

NU = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
INGEDIEND = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
LATER = NU + timedelta(days=7)
LINK = "https://video.example.org/kamer/geheim-7f3a?pwd=Zx81"
ORGANISATIE = "GM0363"


class FakeParties:
    """Answers like intake's party check, from dossiers the test registered."""

    def __init__(self) -> None:
        self.dossiers: dict[UUID, tuple[str, str]] = {}
        self.asked = 0

    def of(self, aanvraag_id: UUID, principal: Principal) -> Partijen:
        """The parties this principal is in the dossier."""
        self.asked += 1
        if aanvraag_id not in self.dossiers:
            raise NietGevonden("Onbekend dossier.")
        email, code = self.dossiers[aanvraag_id]
        partijen = set()
        if principal.has_role(Role.bestuurder) and principal.email == email:
            partijen.add("bestuurder")
        if principal.has_role(Role.werkgever) and principal.organisatie == code:
            partijen.add("werkgever")
        return Partijen(partijen=frozenset(partijen), organisatie_code=code)


@dataclass
class World:
    """The scheduling service under test, with helpers to act on it."""

    settings: Settings
    app: Scheduling
    client: TestClient
    parties: FakeParties
    clock: FixedClock
    handler: Any
    headers: dict[str, dict[str, str]] = field(default_factory=dict)

    def auth(self, role: str, **claims: Any) -> dict[str, str]:
        key = f"{role}{sorted(claims.items())}"
        if key not in self.headers:
            sub = claims.pop("sub", f"{role[:3]}-1")
            self.headers[key] = token(self.settings.data_dir, role, sub=sub, **claims)
        return self.headers[key]

    def deliver(self, event: public.PublicEvent, event_id: str | None = None) -> Delivery:
        delivery = Delivery(
            envelope=to_cloudevent(
                event,
                id=event_id or f"test-{uuid4()}",
                source=f"urn:nl:weerbaarbestuur:service:{event.emitting_service}",
                time=self.clock.now(),
            ),
            event=event,
            stream_sequence=1,
            attempt=1,
        )
        self.handler(delivery)
        return delivery

    def dossier(self, *, contact: bool = True) -> UUID:
        aanvraag_id = uuid4()
        self.parties.dossiers[aanvraag_id] = (f"b.{aanvraag_id.hex[:8]}@example.org", ORGANISATIE)
        self.deliver(
            public.AanvraagIngediend(
                aanvraag_id=aanvraag_id,
                ingediend_op=INGEDIEND,
                ingediend_door=public.Partij.BESTUURDER,
                organisatie_code=ORGANISATIE,
                binnen_regeling=True,
                verhuizing_gepland=False,
            )
        )
        if contact:
            response = self.client.post(
                f"/aanvragen/{aanvraag_id}/contact", headers=self.auth("secretariaat")
            )
            assert response.status_code == 200
        return aanvraag_id

    def bestuurder(self, aanvraag_id: UUID) -> dict[str, str]:
        return self.auth("bestuurder", email=self.parties.dossiers[aanvraag_id][0])

    def werkgever(self) -> dict[str, str]:
        return self.auth("werkgever", organisatie=ORGANISATIE)

    def plan(
        self,
        aanvraag_id: UUID,
        soort: str = "gesprek_werkgever",
        headers: dict[str, str] | None = None,
        **body: Any,
    ) -> httpx.Response:
        payload: dict[str, Any] = {
            "soort": soort,
            "gepland_op": LATER.isoformat(),
            "duur_minuten": 60,
            "adviseur_id": "adv-7",
        }
        if soort != "gesprek_bestuurder":
            payload["video_link"] = LINK
        payload.update(body)
        response: httpx.Response = self.client.post(
            f"/aanvragen/{aanvraag_id}/afspraken",
            json=payload,
            headers={**self.auth("secretariaat"), **(headers or {})},
        )
        return response

    def planned(self, aanvraag_id: UUID, soort: str = "gesprek_werkgever", **body: Any) -> UUID:
        response = self.plan(aanvraag_id, soort, **body)
        assert response.status_code == 201, response.text
        return UUID(response.json()["afspraak_id"])

    def hold(self, afspraak_id: UUID, role: str = "secretariaat", **body: Any) -> httpx.Response:
        """Record the conversation as held once its start has come (the clock moves there)."""
        afspraak = self.client.get(f"/afspraken/{afspraak_id}", headers=self.auth("secretariaat"))
        start = datetime.fromisoformat(afspraak.json()["gepland_op"])
        if self.clock.now() < start:
            self.clock.advance_to(start)
        return self.act(afspraak_id, "gevoerd", role, **body)

    def act(
        self, afspraak_id: UUID, step: str, role: str = "secretariaat", **body: Any
    ) -> httpx.Response:
        response: httpx.Response = self.client.post(
            f"/afspraken/{afspraak_id}/{step}", json=body or None, headers=self.auth(role)
        )
        return response

    def recorded(self) -> list[DomainEvent]:
        events = []
        for notification in self.app.recorder.select_notifications(1, 10_000):
            event = self.app.mapper.to_domain_event(notification)
            assert isinstance(event, DomainEvent)
            events.append(event)
        return events

    def names(self, aanvraag_id: UUID) -> list[str]:
        return [type(e).__name__ for e in self.recorded() if e.originator_id == aanvraag_id]

    def announced(self, aanvraag_id: UUID) -> list[public.PublicEvent]:
        return [p for e in self.recorded() if e.originator_id == aanvraag_id for p in to_public(e)]

    def refusals(self) -> list[ToegangGeweigerdVastgelegd]:
        return [e for e in self.recorded() if isinstance(e, ToegangGeweigerdVastgelegd)]


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    clock = FixedClock(NU)
    parties = FakeParties()
    components = bootstrap(settings, clock, parties=parties)
    assert isinstance(components.app, Scheduling)
    (subscription,) = components.subscriptions
    with TestClient(components.api) as client:
        yield World(settings, components.app, client, parties, clock, subscription.handler)
    components.app.close()


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    return body


# --- the happy path ------------------------------------------------------------------------------


def test_both_conversations_are_planned_moved_and_held_and_announced(world: World) -> None:
    aanvraag_id = world.dossier()
    response = world.plan(aanvraag_id, "gesprek_werkgever")
    assert response.status_code == 201
    werkgever = response.json()
    assert response.headers["Location"] == f"/afspraken/{werkgever['afspraak_id']}"
    located = world.client.get(response.headers["Location"], headers=world.auth("adviseur"))
    assert located.json() == werkgever
    assert werkgever == {
        "afspraak_id": werkgever["afspraak_id"],
        "aanvraag_id": str(aanvraag_id),
        "soort": "gesprek_werkgever",
        "vorm": "digitaal",
        "gepland_op": "2026-03-10T10:00:00Z",
        "duur_minuten": 60,
        "adviseur_id": opaque_actor_id("adv-7"),
        "video_link": LINK,
        "status": "gepland",
        "partijen": ["werkgever"],
        "gevoerd_op": None,
        "woningscan_uitgevoerd_op": None,
    }
    bestuurder = world.planned(aanvraag_id, "gesprek_bestuurder")
    werkgever_id = UUID(werkgever["afspraak_id"])

    nieuw = LATER + timedelta(days=1)
    moved = world.act(werkgever_id, "verzetten", "adviseur", gepland_op=nieuw.isoformat())
    assert moved.status_code == 200
    assert moved.json()["gepland_op"] == "2026-03-11T10:00:00Z"
    held = world.hold(werkgever_id, "adviseur", woningscan_uitgevoerd=False)
    assert held.json()["status"] == "gevoerd"
    thuis = world.hold(bestuurder, woningscan_uitgevoerd=True)
    assert thuis.status_code == 200
    assert thuis.json()["woningscan_uitgevoerd_op"] == "2026-03-11T10:00:00Z"

    planning = world.client.get(
        f"/aanvragen/{aanvraag_id}/planning", headers=world.auth("compliance")
    )
    assert planning.status_code == 200
    assert [(a["soort"], a["status"]) for a in planning.json()["afspraken"]] == [
        ("gesprek_werkgever", "gevoerd"),
        ("gesprek_bestuurder", "gevoerd"),
    ]
    assert planning.json()["contact_status"] == "opgenomen"

    announced = world.announced(aanvraag_id)
    assert [type(p).__name__ for p in announced] == [
        "ContacttermijnGesteld",
        "ContactOpgenomen",
        "AfspraakGepland",
        "AfspraakGepland",
        "AfspraakVerzet",
        "GesprekGevoerd",
        "GesprekGevoerd",
        "WoningscanUitgevoerd",
    ]
    assert announced[4] == public.AfspraakVerzet(
        aanvraag_id=aanvraag_id,
        afspraak_id=werkgever_id,
        soort=public.AfspraakSoort.GESPREK_WERKGEVER,
        gepland_op=nieuw,
        vorige_gepland_op=LATER,
    )
    assert all("geheim-7f3a" not in p.model_dump_json() for p in announced)


# --- planning ------------------------------------------------------------------------------------


def test_nothing_is_planned_before_contact(world: World) -> None:
    aanvraag_id = world.dossier(contact=False)
    body = problem(world.plan(aanvraag_id), 409)
    assert body["code"] == "contact_ontbreekt"
    assert "contact" in body["detail"]
    assert world.names(aanvraag_id) == ["PlanningGeopend"]


def test_an_unknown_dossier_is_not_found(world: World) -> None:
    problem(world.plan(uuid4()), 404)
    problem(world.act(uuid4(), "annuleren"), 404)


def test_one_active_conversation_of_a_kind_and_a_cancelled_one_replanned(world: World) -> None:
    aanvraag_id = world.dossier()
    eerste = world.planned(aanvraag_id, "gesprek_bestuurder")
    assert problem(world.plan(aanvraag_id, "gesprek_bestuurder"), 409)["code"] == (
        "gesprek_bestaat_al"
    )
    assert world.act(eerste, "annuleren").json()["status"] == "geannuleerd"
    tweede = world.planned(aanvraag_id, "gesprek_bestuurder")
    assert tweede != eerste
    world.hold(tweede)
    nog_een = world.plan(
        aanvraag_id, "gesprek_bestuurder", gepland_op=(LATER + timedelta(days=1)).isoformat()
    )
    assert problem(nog_een, 409)["code"] == "gesprek_bestaat_al"
    assert world.names(aanvraag_id).count("AfspraakGepland") == 2


def test_two_replicas_planning_the_same_conversation_at_once_plan_it_once(
    world: World,
) -> None:
    aanvraag_id = world.dossier()
    replicas = [
        application(world.settings.eventsourcing_env("scheduling"), WorkingDayCalendar())
        for _ in range(2)
    ]
    verzoek = AfspraakVerzoek(
        soort="gesprek_werkgever",
        gepland_op=LATER,
        duur_minuten=60,
        adviseur_id="adv-7",
        video_link=LINK,
    )

    def plan(app: Scheduling) -> str:
        try:
            app.plan_afspraak(aanvraag_id, verzoek, Context(now=NU))
        except Conflict:
            return "409"
        return "201"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(plan, replicas))
    assert outcomes == ["201", "409"]
    assert world.names(aanvraag_id).count("AfspraakGepland") == 1
    for replica in replicas:
        replica.close()


def test_the_same_idempotency_key_plans_once(world: World) -> None:
    aanvraag_id = world.dossier()
    key = {"Idempotency-Key": "plan-werkgever-1"}
    first = world.plan(aanvraag_id, headers=key)
    again = world.plan(aanvraag_id, headers=key)
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json()["afspraak_id"] == first.json()["afspraak_id"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert world.names(aanvraag_id).count("AfspraakGepland") == 1
    # The key with another body, or for another dossier, is a mistake of the caller.
    other = world.plan(aanvraag_id, duur_minuten=90, headers=key)
    assert problem(other, 422)["errors"][0]["rule"] == "reused_with_other_body"
    problem(world.plan(world.dossier(), headers=key), 422)


@pytest.mark.parametrize(
    ("soort", "change", "field_name", "rule"),
    [
        (
            "gesprek_werkgever",
            {"gepland_op": NU.isoformat()},
            "body.gepland_op",
            "must_be_in_future",
        ),
        (
            "gesprek_werkgever",
            {"gepland_op": (NU - timedelta(days=1)).isoformat()},
            "body.gepland_op",
            "must_be_in_future",
        ),
        ("gesprek_werkgever", {"gepland_op": "2026-03-10T10:00:00"}, "body.gepland_op", None),
        (
            "gesprek_werkgever",
            {"gepland_op": "2026-03-14T10:00:00+01:00"},  # a Saturday
            "body.gepland_op",
            "must_be_on_working_day",
        ),
        (
            "gesprek_bestuurder",
            {"gepland_op": "2026-03-10T17:30:00+01:00"},  # ends at 18:30
            "body.gepland_op",
            "must_be_within_working_hours",
        ),
        ("gesprek_werkgever", {"achteraf": True}, "body.gepland_op", "must_be_in_past"),
        ("gesprek_werkgever", {"achteraf": "ja"}, "body.achteraf", None),
        ("gesprek_werkgever", {"duur_minuten": 14}, "body.duur_minuten", None),
        ("gesprek_werkgever", {"duur_minuten": 481}, "body.duur_minuten", None),
        ("gesprek_werkgever", {"adviseur_id": "anna@ccv.nl"}, "body.adviseur_id", None),
        ("gesprek_werkgever", {"video_link": None}, "body.video_link", "required_for_digitaal"),
        (
            "gesprek_werkgever",
            {"video_link": "http://x.example/geheim-7f3a"},
            "body.video_link",
            None,
        ),
        ("gesprek_bestuurder", {"video_link": LINK}, "body.video_link", "not_allowed_for_thuis"),
        ("gesprek_werkgever", {"partij": "werkgever"}, "body.partij", "only_for_toelichting"),
        ("gesprek_werkgever", {"vorm": "thuis"}, "body.vorm", None),
    ],
)
def test_input_that_breaks_a_rule_is_422_and_not_echoed(
    world: World, soort: str, change: dict[str, Any], field_name: str, rule: str | None
) -> None:
    aanvraag_id = world.dossier()
    response = world.plan(aanvraag_id, soort, **change)
    body = problem(response, 422)
    assert field_name in [e["field"] for e in body["errors"]]
    if rule is not None:
        assert rule in [e["rule"] for e in body["errors"]]
    assert "geheim-7f3a" not in response.text
    assert "anna@ccv.nl" not in response.text
    assert "AfspraakGepland" not in world.names(aanvraag_id)


# --- when appointments lie -----------------------------------------------------------------------


def test_planning_and_moving_outside_working_hours_is_refused_and_nothing_stored(
    world: World,
) -> None:
    aanvraag_id = world.dossier()
    avond = "2026-03-10T18:30:00+01:00"
    hemelvaart = "2026-05-14T10:00:00+02:00"  # a Thursday, and an Atw feestdag
    for gepland_op, rule in (
        (avond, "must_be_within_working_hours"),
        (hemelvaart, "must_be_on_working_day"),
    ):
        response = world.plan(aanvraag_id, gepland_op=gepland_op)
        body = problem(response, 422)
        assert [(e["field"], e["rule"]) for e in body["errors"]] == [("body.gepland_op", rule)]
        assert "werktijden (08:00–18:00, Europe/Amsterdam" in body["detail"]
        assert gepland_op[:10] not in response.text and gepland_op[11:16] not in response.text
    assert "AfspraakGepland" not in world.names(aanvraag_id)

    afspraak_id = world.planned(aanvraag_id)  # Tue 10 Mar, 11:00-12:00 in Amsterdam
    # The appointment as a whole: moved to 17:30, or lengthened past 18:00, it would run late.
    for change in (
        {"gepland_op": "2026-03-11T17:30:00+01:00"},
        {"gepland_op": "2026-03-11T16:00:00+01:00", "duur_minuten": 150},
        {"gepland_op": hemelvaart},
    ):
        moved = world.act(afspraak_id, "verzetten", **change)
        assert problem(moved, 422)["errors"][0]["field"] == "body.gepland_op"
    edge = world.act(afspraak_id, "verzetten", gepland_op="2026-03-11T17:00:00+01:00")
    assert (edge.status_code, edge.json()["gepland_op"]) == (200, "2026-03-11T16:00:00Z")
    assert world.names(aanvraag_id).count("AfspraakVerzet") == 1


def test_the_working_hours_are_a_setting(settings: Settings) -> None:
    later_start = settings.model_copy(update={"working_hours_start": time(9, 30)})
    clock, parties = FixedClock(NU), FakeParties()
    components = bootstrap(later_start, clock, parties=parties)
    assert isinstance(components.app, Scheduling)
    (subscription,) = components.subscriptions
    with TestClient(components.api) as client:
        world = World(later_start, components.app, client, parties, clock, subscription.handler)
        aanvraag_id = world.dossier()
        vroeg = world.plan(aanvraag_id, gepland_op="2026-03-10T09:00:00+01:00")
        assert problem(vroeg, 422)["errors"][0]["rule"] == "must_be_within_working_hours"
        assert "09:30–18:00" in vroeg.json()["detail"]
        assert world.plan(aanvraag_id, gepland_op="2026-03-10T09:30:00+01:00").status_code == 201
    components.app.close()


def test_the_working_days_and_hours_are_served_from_the_calendar_that_plans(
    world: World,
) -> None:
    # Hemelvaartsdag 2026 is Thursday 14 May; the 16th and 17th are a weekend.
    response = world.client.get(
        "/werktijden", params={"van": "2026-05-13", "dagen": 6}, headers=world.auth("secretariaat")
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["tijdzone"] == "Europe/Amsterdam"
    assert (body["begin"], body["einde"]) == ("08:00:00", "18:00:00")
    assert body["werkdagen"] == ["2026-05-13", "2026-05-15", "2026-05-18"]
    assert body["vrije_dagen"] == [{"datum": "2026-05-14", "naam": "Hemelvaartsdag"}]
    # Without `van`: from today in the calendar's zone (the clock's 3 March 2026, a Tuesday).
    today = world.client.get("/werktijden", headers=world.auth("secretariaat")).json()
    assert today["werkdagen"][0] == "2026-03-03"
    far = world.client.get(
        "/werktijden", params={"van": "2101-01-03"}, headers=world.auth("secretariaat")
    )
    assert problem(far, 422)["errors"][0]["rule"] == "outside_calendar_years"


def test_a_conversation_is_recorded_as_held_only_after_its_start(world: World) -> None:
    aanvraag_id = world.dossier()
    thuis = world.planned(aanvraag_id, "gesprek_bestuurder")  # starts at LATER
    for moment in (NU, LATER - timedelta(seconds=1)):
        world.clock.advance_to(moment)
        early = world.act(thuis, "gevoerd", "adviseur", woningscan_uitgevoerd=True)
        body = problem(early, 409)
        assert body["code"] == "nog_niet_begonnen"
        assert "nog niet begonnen" in body["detail"]
    names = world.names(aanvraag_id)
    assert "GesprekGevoerd" not in names and "WoningscanUitgevoerd" not in names
    world.clock.advance_to(LATER)
    held = world.act(thuis, "gevoerd", "adviseur", woningscan_uitgevoerd=True)
    assert (held.status_code, held.json()["gevoerd_op"]) == (200, "2026-03-10T10:00:00Z")


def test_an_appointment_that_took_place_is_recorded_afterwards(world: World) -> None:
    aanvraag_id = world.dossier()
    vanochtend = "2026-03-03T09:00:00+01:00"  # NU is 11:00 in Amsterdam
    werkgever = world.planned(aanvraag_id, gepland_op=vanochtend, achteraf=True)
    assert world.act(werkgever, "gevoerd").json()["status"] == "gevoerd"
    # A planned conversation moved on the day and held: its time corrected afterwards.
    thuis = world.planned(aanvraag_id, "gesprek_bestuurder")
    in_toekomst = world.act(thuis, "verzetten", gepland_op=vanochtend)
    assert problem(in_toekomst, 422)["errors"][0]["rule"] == "must_be_in_future"
    moved = world.act(thuis, "verzetten", gepland_op="2026-03-03T10:00:00+01:00", achteraf=True)
    assert moved.json()["gepland_op"] == "2026-03-03T09:00:00Z"
    assert world.act(thuis, "gevoerd", woningscan_uitgevoerd=True).status_code == 200
    assert world.names(aanvraag_id)[-6:] == [
        "AfspraakGepland",
        "GesprekGevoerd",
        "AfspraakGepland",
        "AfspraakVerzet",
        "GesprekGevoerd",
        "WoningscanUitgevoerd",
    ]
    recorded = [e for e in world.recorded() if e.originator_id == aanvraag_id]
    assert [getattr(e, "achteraf", None) for e in recorded[-6:]] == [
        True,
        None,
        False,
        True,
        None,
        None,
    ]


# --- moving, cancelling, holding -----------------------------------------------------------------


def test_moving_only_while_planned_and_the_same_time_again_changes_nothing(world: World) -> None:
    aanvraag_id = world.dossier()
    afspraak_id = world.planned(aanvraag_id)
    same = world.act(afspraak_id, "verzetten", gepland_op=LATER.isoformat())
    assert same.status_code == 200
    assert "AfspraakVerzet" not in world.names(aanvraag_id)

    langer = world.act(afspraak_id, "verzetten", gepland_op=LATER.isoformat(), duur_minuten=90)
    assert langer.json()["duur_minuten"] == 90
    verleden = world.act(afspraak_id, "verzetten", gepland_op=(NU - timedelta(hours=1)).isoformat())
    assert problem(verleden, 422)["errors"][0]["rule"] == "must_be_in_future"
    problem(world.act(afspraak_id, "verzetten", gepland_op=LATER.isoformat(), duur_minuten=5), 422)
    assert world.names(aanvraag_id).count("AfspraakVerzet") == 1

    world.hold(afspraak_id)
    held = world.act(afspraak_id, "verzetten", gepland_op=(LATER + timedelta(days=1)).isoformat())
    assert problem(held, 409)["code"] == "al_gevoerd"

    cancelled = world.planned(
        aanvraag_id, "gesprek_bestuurder", gepland_op=(LATER + timedelta(days=1)).isoformat()
    )
    world.act(cancelled, "annuleren")
    later = world.act(cancelled, "verzetten", gepland_op=(LATER + timedelta(days=2)).isoformat())
    assert problem(later, 409)["code"] == "geannuleerd"
    assert world.names(aanvraag_id).count("AfspraakVerzet") == 1


def test_cancelling_once_and_never_after_the_conversation(world: World) -> None:
    aanvraag_id = world.dossier()
    afspraak_id = world.planned(aanvraag_id)
    assert world.act(afspraak_id, "annuleren", "adviseur").json()["status"] == "geannuleerd"
    again = world.act(afspraak_id, "annuleren")
    assert (again.status_code, again.json()["status"]) == (200, "geannuleerd")
    assert world.names(aanvraag_id).count("AfspraakGeannuleerd") == 1

    gehouden = world.planned(aanvraag_id)
    world.hold(gehouden)
    assert problem(world.act(gehouden, "annuleren"), 409)["code"] == "al_gevoerd"
    cancellations = [
        p for p in world.announced(aanvraag_id) if isinstance(p, public.AfspraakGeannuleerd)
    ]
    assert cancellations == [
        public.AfspraakGeannuleerd(
            aanvraag_id=aanvraag_id,
            afspraak_id=afspraak_id,
            soort=public.AfspraakSoort.GESPREK_WERKGEVER,
        )
    ]


def test_a_conversation_is_held_once_and_not_when_cancelled(world: World) -> None:
    aanvraag_id = world.dossier()
    afspraak_id = world.planned(aanvraag_id)
    assert world.hold(afspraak_id).json()["gevoerd_op"] == "2026-03-10T10:00:00Z"
    world.clock.advance_to(LATER + timedelta(hours=3))
    again = world.act(afspraak_id, "gevoerd", woningscan_uitgevoerd=False)
    assert (again.status_code, again.json()["gevoerd_op"]) == (200, "2026-03-10T10:00:00Z")
    assert world.names(aanvraag_id).count("GesprekGevoerd") == 1

    cancelled = world.planned(
        aanvraag_id, "gesprek_bestuurder", gepland_op=(LATER + timedelta(days=1)).isoformat()
    )
    world.act(cancelled, "annuleren")
    assert problem(world.act(cancelled, "gevoerd"), 409)["code"] == "geannuleerd"
    problem(world.act(uuid4(), "gevoerd"), 404)
    # A flag that is not a JSON boolean is refused.
    problem(world.act(afspraak_id, "gevoerd", woningscan_uitgevoerd="ja"), 422)


def test_the_woningscan_belongs_to_the_conversation_at_home(world: World) -> None:
    aanvraag_id = world.dossier()
    werkgever = world.planned(aanvraag_id, "gesprek_werkgever")
    response = world.act(werkgever, "gevoerd", woningscan_uitgevoerd=True)
    assert problem(response, 422)["errors"][0]["rule"] == "only_in_gesprek_bestuurder"
    assert "GesprekGevoerd" not in world.names(aanvraag_id)
    world.hold(werkgever)
    assert problem(world.act(werkgever, "woningscan", "adviseur"), 409)["code"] == (
        "geen_gesprek_bestuurder"
    )
    assert "WoningscanUitgevoerd" not in world.names(aanvraag_id)


def test_a_woningscan_done_later_is_recorded_once_by_the_adviseur(world: World) -> None:
    aanvraag_id = world.dossier()
    thuis = world.planned(aanvraag_id, "gesprek_bestuurder")
    assert problem(world.act(thuis, "woningscan", "adviseur"), 409)["code"] == "niet_gevoerd"
    world.hold(thuis, woningscan_uitgevoerd=False)
    problem(world.act(thuis, "woningscan", "secretariaat"), 403)
    world.clock.advance_to(LATER + timedelta(days=2))
    scan = world.act(thuis, "woningscan", "adviseur")
    assert scan.json()["woningscan_uitgevoerd_op"] == "2026-03-12T10:00:00Z"
    again = world.act(thuis, "woningscan", "adviseur")
    assert again.status_code == 200
    assert world.names(aanvraag_id).count("WoningscanUitgevoerd") == 1
    assert world.announced(aanvraag_id)[-1] == public.WoningscanUitgevoerd(
        aanvraag_id=aanvraag_id, afspraak_id=thuis, uitgevoerd_op=LATER + timedelta(days=2)
    )


# --- toelichting ---------------------------------------------------------------------------------


def verstrekt(aanvraag_id: UUID) -> public.RapportVerstrektAanBestuurder:
    return public.RapportVerstrektAanBestuurder(
        aanvraag_id=aanvraag_id, rapport_id=uuid4(), versie=1
    )


def vrijgegeven(aanvraag_id: UUID) -> public.RapportVrijgegeven:
    return public.RapportVrijgegeven(
        aanvraag_id=aanvraag_id, rapport_id=uuid4(), versie=1, organisatie_code=ORGANISATIE
    )


def test_the_bestuurder_asks_for_a_toelichting_after_receiving_the_report(world: World) -> None:
    aanvraag_id = world.dossier()
    url = f"/aanvragen/{aanvraag_id}/toelichting"
    early = problem(world.client.post(url, headers=world.bestuurder(aanvraag_id)), 409)
    assert early["code"] == "rapport_niet_ontvangen"
    assert "bestuurder is verstrekt" in early["detail"]
    problem(world.plan(aanvraag_id, "toelichting"), 409)

    world.deliver(verstrekt(aanvraag_id))
    response = world.client.post(url, headers=world.bestuurder(aanvraag_id))
    assert response.status_code == 200
    assert response.json() == {
        "aanvraag_id": str(aanvraag_id),
        "partij": "bestuurder",
        "aangevraagd_op": "2026-03-03T10:00:00Z",
        "status": "open",
        "afspraak_id": None,
    }
    again = world.client.post(url, headers=world.bestuurder(aanvraag_id))
    assert (again.status_code, again.json()["status"]) == (200, "open")
    assert world.announced(aanvraag_id)[-1] == public.ToelichtingAangevraagd(
        aanvraag_id=aanvraag_id, aangevraagd_door=public.Partij.BESTUURDER, aangevraagd_op=NU
    )
    assert world.names(aanvraag_id).count("ToelichtingAangevraagd") == 1

    # The werkgever has not received the report: the bestuurder's consent comes first.
    werkgever = problem(world.client.post(url, headers=world.werkgever()), 409)
    assert "vrijgegeven" in werkgever["detail"]

    planned = world.plan(aanvraag_id, "toelichting")
    assert planned.status_code == 201
    assert (planned.json()["vorm"], planned.json()["partijen"]) == ("digitaal", ["bestuurder"])
    planning = world.client.get(
        f"/aanvragen/{aanvraag_id}/planning", headers=world.auth("secretariaat")
    ).json()
    assert planning["rapport_ontvangen"] == ["bestuurder"]
    assert [(t["partij"], t["status"]) for t in planning["toelichtingen"]] == [
        ("bestuurder", "gepland")
    ]


def test_the_werkgever_asks_for_a_toelichting_after_the_release(world: World) -> None:
    aanvraag_id = world.dossier()
    world.deliver(verstrekt(aanvraag_id))
    url = f"/aanvragen/{aanvraag_id}/toelichting"
    problem(world.client.post(url, headers=world.werkgever()), 409)
    release = world.deliver(vrijgegeven(aanvraag_id))
    # The same event delivered again (a redelivery) has no second effect.
    world.handler(release)
    assert world.names(aanvraag_id).count("RapportOntvangen") == 2
    response = world.client.post(url, headers=world.werkgever())
    assert (response.status_code, response.json()["partij"]) == (200, "werkgever")
    assert world.announced(aanvraag_id)[-1] == public.ToelichtingAangevraagd(
        aanvraag_id=aanvraag_id, aangevraagd_door=public.Partij.WERKGEVER, aangevraagd_op=NU
    )


def test_someone_elses_dossier_is_not_found_and_the_attempt_recorded(world: World) -> None:
    aanvraag_id = world.dossier()
    world.deliver(verstrekt(aanvraag_id))
    world.deliver(vrijgegeven(aanvraag_id))
    url = f"/aanvragen/{aanvraag_id}/toelichting"
    vreemde = world.auth("bestuurder", email="iemand.anders@example.org")
    andere_gemeente = world.auth("werkgever", organisatie="GM0599")
    for headers in (vreemde, andere_gemeente):
        problem(world.client.post(url, headers=headers), 404)
    refusals = world.refusals()
    assert [(r.aanvraag_id, r.reden, r.status_code, r.actie) for r in refusals] == [
        (aanvraag_id, "niet_eigen_dossier", 404, "POST /aanvragen/{aanvraag_id}/toelichting")
    ] * 2
    assert "ToelichtingAangevraagd" not in world.names(aanvraag_id)
    assert [type(p).__name__ for p in to_public(refusals[0])] == ["ToegangGeweigerd"]


# --- who may do what -----------------------------------------------------------------------------


def test_roles_without_the_right_are_refused_and_recorded(world: World) -> None:
    aanvraag_id = world.dossier()
    afspraak_id = world.planned(aanvraag_id)
    plan_url = f"/aanvragen/{aanvraag_id}/afspraken"
    attempts = [
        ("adviseur", "post", plan_url),
        ("bestuurder", "post", plan_url),
        ("werkgever", "post", f"/afspraken/{afspraak_id}/verzetten"),
        ("bestuurder", "post", f"/afspraken/{afspraak_id}/annuleren"),
        ("compliance", "post", f"/afspraken/{afspraak_id}/gevoerd"),
        ("secretariaat", "post", f"/afspraken/{afspraak_id}/woningscan"),
        ("secretariaat", "post", f"/aanvragen/{aanvraag_id}/toelichting"),
        ("bestuurder", "get", f"/aanvragen/{aanvraag_id}/planning"),
        ("secretariaat", "get", f"/internal/afspraken/{afspraak_id}"),
        ("werkgever", "get", f"/afspraken/{afspraak_id}"),
        ("dienst", "post", plan_url),
    ]
    for role, method, url in attempts:
        response = world.client.request(method, url, json={}, headers=world.auth(role))
        assert response.status_code == 403, (role, url)
    refusals = world.refusals()
    assert len(refusals) == len(attempts)
    assert {r.reden for r in refusals} == {"missing_role"}
    # Refusals on an appointment are filed under its dossier, for the audit trail.
    assert {r.aanvraag_id for r in refusals} == {aanvraag_id}
    assert world.names(aanvraag_id).count("AfspraakGepland") == 1
    assert world.client.post(plan_url, json={}).status_code == 401


# --- withdrawal and closing ----------------------------------------------------------------------


def test_after_withdrawal_nothing_moves_and_planned_appointments_are_cancelled(
    world: World,
) -> None:
    aanvraag_id = world.dossier()
    world.deliver(verstrekt(aanvraag_id))
    gehouden = world.planned(aanvraag_id, "gesprek_werkgever")
    world.hold(gehouden)
    thuis = world.planned(
        aanvraag_id, "gesprek_bestuurder", gepland_op=(LATER + timedelta(days=1)).isoformat()
    )
    intrekking = world.deliver(
        public.AanvraagIngetrokken(
            aanvraag_id=aanvraag_id,
            ingetrokken_op=world.clock.now(),
            door_rol=public.Rol.BESTUURDER,
        )
    )
    world.handler(intrekking)  # redelivered: one effect
    assert world.names(aanvraag_id)[-2:] == ["PlanningGestopt", "AfspraakGeannuleerd"]
    assert world.names(aanvraag_id).count("PlanningGestopt") == 1
    assert world.announced(aanvraag_id)[-1] == public.AfspraakGeannuleerd(
        aanvraag_id=aanvraag_id,
        afspraak_id=thuis,
        soort=public.AfspraakSoort.GESPREK_BESTUURDER,
    )
    before = len(world.recorded())

    opnieuw = world.plan(
        aanvraag_id, "gesprek_bestuurder", gepland_op=(LATER + timedelta(days=1)).isoformat()
    )
    assert problem(opnieuw, 409)["code"] == "dossier_ingetrokken"
    later = (LATER + timedelta(days=2)).isoformat()
    problem(world.act(thuis, "verzetten", gepland_op=later), 409)
    problem(world.act(thuis, "gevoerd"), 409)
    url = f"/aanvragen/{aanvraag_id}/toelichting"
    problem(world.client.post(url, headers=world.bestuurder(aanvraag_id)), 409)
    assert world.act(thuis, "annuleren").status_code == 200  # already cancelled
    assert world.act(gehouden, "gevoerd").status_code == 200  # already held
    assert len(world.recorded()) == before
    planning = world.client.get(
        f"/aanvragen/{aanvraag_id}/planning", headers=world.auth("adviseur")
    ).json()
    assert (planning["gestopt"], planning["contact_status"]) == ("ingetrokken", "gestopt")


def test_a_closed_dossier_takes_no_more_steps(world: World) -> None:
    aanvraag_id = world.dossier()
    world.deliver(
        public.DossierAfgesloten(
            aanvraag_id=aanvraag_id,
            afgesloten_op=NU,
            reden=public.AfsluitReden.GESLOTEN_DOOR_SECRETARIAAT,
            maatregelen_totaal=0,
            maatregelen_uitgevoerd=0,
        )
    )
    assert problem(world.plan(aanvraag_id), 409)["code"] == "dossier_afgesloten"
    response = world.client.post(
        f"/aanvragen/{aanvraag_id}/contact", headers=world.auth("secretariaat")
    )
    assert problem(response, 409)["code"] == "dossier_afgesloten"
    # A report event after closing changes nothing.
    world.deliver(verstrekt(aanvraag_id))
    assert world.names(aanvraag_id)[-1] == "PlanningGestopt"


# --- the claim check for notifications -----------------------------------------------------------


def test_the_internal_endpoint_hands_the_video_link_to_services_only(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    aanvraag_id = world.dossier()
    afspraak_id = world.planned(aanvraag_id)
    url = f"/internal/afspraken/{afspraak_id}"
    with caplog.at_level(logging.INFO):
        response = world.client.get(url, headers=world.auth("dienst", sub="svc-notifications"))
    assert response.status_code == 200
    body = response.json()
    assert {k: body[k] for k in ("afspraak_id", "aanvraag_id", "soort", "vorm", "status")} == {
        "afspraak_id": str(afspraak_id),
        "aanvraag_id": str(aanvraag_id),
        "soort": "gesprek_werkgever",
        "vorm": "digitaal",
        "status": "gepland",
    }
    assert (body["gepland_op"], body["duur_minuten"], body["adviseur_id"]) == (
        "2026-03-10T10:00:00Z",
        60,
        opaque_actor_id("adv-7"),  # the adviseur's pseudonym, never the id as given
    )
    assert body["video_link"] == LINK
    handed_out = [r for r in caplog.records if r.getMessage() == "private data handed out"]
    assert len(handed_out) == 1
    assert handed_out[0].__dict__["afspraak_id"] == str(afspraak_id)
    assert handed_out[0].__dict__["to"] == "svc-notifications"
    assert all("geheim-7f3a" not in r.getMessage() + str(r.__dict__) for r in caplog.records)

    thuis = world.planned(aanvraag_id, "gesprek_bestuurder")
    home = world.client.get(f"/internal/afspraken/{thuis}", headers=world.auth("dienst"))
    assert (home.json()["vorm"], home.json()["video_link"]) == ("thuis", None)
    problem(world.client.get(f"/internal/afspraken/{uuid4()}", headers=world.auth("dienst")), 404)
    for role in ("secretariaat", "adviseur", "compliance", "bestuurder"):
        problem(world.client.get(url, headers=world.auth(role)), 403)
    problem(world.client.get(url), 401)
