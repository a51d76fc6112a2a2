"""Scheduling's use cases, on the in-memory store and on PostgreSQL: the same tests, only the store
differs (``store``: ``memory`` by default, ``postgres`` on the session's test server).

They drive the application as its composition root builds it (``bootstrap.application``, with the
read model of its store): the reactions to intake's and approval's events through the declared
policies, the contact, appointments and toelichting as the API calls them. Planning with an
Idempotency-Key remembers the key in a PostgreSQL table, so that one runs on PostgreSQL only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from services.scheduling.application import Idempotency, Scheduling
from services.scheduling.bootstrap import application
from services.scheduling.domain import AfspraakVerzoek
from services.scheduling.domain.calendar import WorkingDayCalendar
from services.scheduling.policies import policies
from shared.contracts import events as public
from shared.contracts.registry import to_cloudevent
from shared.platform.consumer import Delivery, Subscription
from shared.platform.errors import Conflict, NietGevonden, Ongeldig
from shared.platform.eventstore import AlreadyProcessed
from shared.platform.model import Context, FixedClock
from tests.usecases.conftest import STORES, store_env

INGEDIEND = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)  # a Monday
DEADLINE = datetime(2026, 3, 5, 23, 0, tzinfo=UTC)  # the third working day's end, Amsterdam
GESPREK = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)  # Tuesday 11:00 in Amsterdam
ADVISEUR = "p-" + "a" * 32
SECRETARIAAT = Context(now=INGEDIEND + timedelta(hours=1), actor_id="p-" + "s" * 32)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The environment of scheduling's event store: the library's in-memory store, or a fresh
    PostgreSQL database of the session's test server."""
    return store_env(str(request.param), "scheduling", request, tmp_path)


@dataclass
class World:
    """Scheduling on one store, with the feed a running service would get."""

    app: Scheduling
    clock: FixedClock
    subscription: Subscription

    def deliver(self, event: public.PublicEvent, *, event_id: str | None = None) -> None:
        """Hand an event to the declared policy's handler, as the consumer would."""
        envelope = to_cloudevent(
            event,
            id=event_id or str(uuid4()),
            source=f"urn:weerbaar:{event.service}",
            time=self.clock.now(),
            actorid=f"svc-{event.service}",
            actorrole="systeem",
        )
        self.subscription.handler(
            Delivery(envelope=envelope, event=event, stream_sequence=1, attempt=1)
        )

    def ingediend(self, aanvraag_id: UUID | None = None, **kw: str) -> UUID:
        """Intake announced a new aanvraag."""
        aanvraag_id = aanvraag_id or uuid4()
        self.deliver(
            public.AanvraagIngediend(
                aanvraag_id=aanvraag_id,
                ingediend_op=INGEDIEND,
                ingediend_door=public.Partij.BESTUURDER,
                organisatie_code="GM0363",
                binnen_regeling=True,
                verhuizing_gepland=False,
            ),
            **kw,
        )
        return aanvraag_id

    def ingetrokken(self, aanvraag_id: UUID, **kw: str) -> None:
        """Intake announced a withdrawal."""
        self.deliver(
            public.AanvraagIngetrokken(
                aanvraag_id=aanvraag_id, ingetrokken_op=self.clock.now(), door_rol="aanvrager"
            ),
            **kw,
        )

    def verstrekt(self, aanvraag_id: UUID, **kw: str) -> None:
        """Approval announced that the bestuurder received the report."""
        self.deliver(
            public.RapportVerstrektAanBestuurder(
                aanvraag_id=aanvraag_id, rapport_id=uuid4(), versie=1
            ),
            **kw,
        )

    def names(self, aanvraag_id: UUID) -> list[str]:
        """The names of one planning's recorded events, in order."""
        events = (
            self.app.mapper.to_domain_event(notification)
            for notification in self.app.recorder.select_notifications(1, 10_000)
        )
        return [type(event).__name__ for event in events if event.originator_id == aanvraag_id]


@pytest.fixture
def world(store: dict[str, str]) -> Iterator[World]:
    app = application(store, WorkingDayCalendar())
    clock = FixedClock(INGEDIEND + timedelta(minutes=1))
    [subscription] = policies(app, clock)
    try:
        yield World(app, clock, subscription)
    finally:
        app.close()


def gesprek_bestuurder(gepland_op: datetime = GESPREK) -> AfspraakVerzoek:
    return AfspraakVerzoek(
        soort="gesprek_bestuurder", gepland_op=gepland_op, duur_minuten=60, adviseur_id=ADVISEUR
    )


# --- the reactions to intake's and approval's events ---------------------------------------------


def test_the_planning_listens_to_intake_and_approval_in_one_consumer(world: World) -> None:
    assert world.subscription.purpose == "planning"
    assert world.subscription.subjects == [
        "weerbaar.intake.AanvraagIngediend.*",
        "weerbaar.intake.AanvraagIngetrokken.*",
        "weerbaar.intake.DossierAfgesloten.*",
        "weerbaar.approval.RapportVerstrektAanBestuurder.*",
        "weerbaar.approval.RapportVrijgegeven.*",
    ]


def test_an_aanvraag_opens_its_planning_with_the_contact_deadline(world: World) -> None:
    aanvraag_id = world.ingediend()

    planning = world.app.planning(aanvraag_id)

    assert (planning.deadline, planning.contact_status) == (DEADLINE, "open")
    assert world.names(aanvraag_id) == ["PlanningGeopend"]


def test_a_redelivered_or_reannounced_aanvraag_opens_one_planning(world: World) -> None:
    aanvraag_id = world.ingediend(event_id="ev-ingediend")
    before = world.app.max_notification_id()

    with pytest.raises(AlreadyProcessed):
        world.ingediend(aanvraag_id, event_id="ev-ingediend")
    with pytest.raises(AlreadyProcessed):
        world.ingediend(aanvraag_id, event_id="ev-ingediend-again")

    assert world.app.max_notification_id() == before


def test_a_withdrawal_stops_the_planning_and_cancels_what_was_planned(world: World) -> None:
    aanvraag_id = world.ingediend()
    world.app.neem_contact_op(aanvraag_id, SECRETARIAAT)
    gepland = world.app.plan_afspraak(aanvraag_id, gesprek_bestuurder(), SECRETARIAAT)

    world.ingetrokken(aanvraag_id, event_id="ev-ingetrokken")
    world.ingetrokken(aanvraag_id, event_id="ev-ingetrokken")  # a redelivery changes nothing

    planning, afspraak = world.app.afspraak(gepland.afspraak.afspraak_id)
    assert (planning.contact_status, planning.gestopt_reden) == ("gestopt", "ingetrokken")
    assert afspraak.status == "geannuleerd"
    assert world.names(aanvraag_id)[-2:] == ["PlanningGestopt", "AfspraakGeannuleerd"]
    with pytest.raises(Conflict) as refused:
        world.app.plan_afspraak(aanvraag_id, gesprek_bestuurder(), SECRETARIAAT)
    assert refused.value.code == "dossier_ingetrokken"


def test_a_withdrawal_of_an_unknown_dossier_waits_for_its_planning(world: World) -> None:
    with pytest.raises(NietGevonden):
        world.ingetrokken(uuid4())


def test_a_toelichting_only_once_the_report_reached_the_party(world: World) -> None:
    aanvraag_id = world.ingediend()
    with pytest.raises(Conflict) as refused:
        world.app.vraag_toelichting_aan(aanvraag_id, "bestuurder", SECRETARIAAT)
    assert refused.value.code == "rapport_niet_ontvangen"

    world.verstrekt(aanvraag_id)
    world.verstrekt(aanvraag_id)  # re-announced: noted once
    _, toelichting = world.app.vraag_toelichting_aan(aanvraag_id, "bestuurder", SECRETARIAAT)
    _, again = world.app.vraag_toelichting_aan(aanvraag_id, "bestuurder", SECRETARIAAT)

    assert again == toelichting
    assert world.names(aanvraag_id) == [
        "PlanningGeopend",
        "RapportOntvangen",
        "ToelichtingAangevraagd",
    ]


# --- contact and its deadline --------------------------------------------------------------------


def test_a_missed_deadline_is_escalated_once(world: World) -> None:
    aanvraag_id = world.ingediend()

    assert world.app.escalate_overdue(DEADLINE - timedelta(seconds=1)) == 0
    assert world.app.escalate_overdue(DEADLINE) == 1
    assert world.app.escalate_overdue(DEADLINE + timedelta(hours=1)) == 0

    assert world.app.planning(aanvraag_id).contact_status == "verstreken"
    assert world.names(aanvraag_id).count("ContacttermijnVerstreken") == 1


def test_contact_in_time_is_not_escalated(world: World) -> None:
    aanvraag_id = world.ingediend()
    late = world.ingediend()

    planning = world.app.neem_contact_op(aanvraag_id, SECRETARIAAT)
    assert world.app.neem_contact_op(aanvraag_id, SECRETARIAAT) == planning  # once

    assert world.app.overdue(DEADLINE) == [late]
    assert world.app.escalate_overdue(DEADLINE) == 1
    assert planning.contact_status == "opgenomen"


# --- appointments --------------------------------------------------------------------------------


def test_an_appointment_is_planned_moved_and_held_with_the_woningscan(world: World) -> None:
    aanvraag_id = world.ingediend()
    with pytest.raises(Conflict):  # contact first
        world.app.plan_afspraak(aanvraag_id, gesprek_bestuurder(), SECRETARIAAT)
    world.app.neem_contact_op(aanvraag_id, SECRETARIAAT)

    gepland = world.app.plan_afspraak(aanvraag_id, gesprek_bestuurder(), SECRETARIAAT)
    afspraak_id = gepland.afspraak.afspraak_id
    later = GESPREK + timedelta(hours=2)
    _, verzet = world.app.verzet_afspraak(afspraak_id, later, None, SECRETARIAAT)
    na_het_gesprek = Context(now=later + timedelta(hours=1), actor_id=ADVISEUR)
    _, gevoerd = world.app.leg_gesprek_vast(afspraak_id, True, na_het_gesprek)

    assert (gepland.aanvraag_id, gepland.replayed) == (aanvraag_id, False)
    assert verzet.gepland_op == later
    assert (gevoerd.status, gevoerd.woningscan_uitgevoerd_op) == ("gevoerd", na_het_gesprek.now)
    assert world.app.aanvraag_van(afspraak_id) == aanvraag_id
    assert world.names(aanvraag_id)[-4:] == [
        "AfspraakGepland",
        "AfspraakVerzet",
        "GesprekGevoerd",
        "WoningscanUitgevoerd",
    ]


def test_an_adviseur_finds_their_own_appointments_by_status(world: World) -> None:
    eerste, tweede = world.ingediend(), world.ingediend()
    for aanvraag_id in (eerste, tweede):
        world.app.neem_contact_op(aanvraag_id, SECRETARIAAT)
    later = world.app.plan_afspraak(
        eerste, gesprek_bestuurder(GESPREK + timedelta(days=1)), SECRETARIAAT
    ).afspraak.afspraak_id
    vroeg = world.app.plan_afspraak(tweede, gesprek_bestuurder(), SECRETARIAAT).afspraak.afspraak_id
    ander = AfspraakVerzoek(
        soort="gesprek_werkgever",
        gepland_op=GESPREK,
        duur_minuten=60,
        adviseur_id="p-" + "b" * 32,
        video_link="https://video.example.org/kamer/1",
    )
    world.app.plan_afspraak(tweede, ander, SECRETARIAAT)
    na_het_gesprek = Context(now=GESPREK + timedelta(hours=2), actor_id=ADVISEUR)
    world.app.leg_gesprek_vast(vroeg, False, na_het_gesprek)

    def gevonden(status: str) -> list[tuple[UUID, UUID]]:
        return [
            (planning.id, afspraak.afspraak_id)
            for planning, afspraak in world.app.afspraken_van(ADVISEUR, status, 10)
        ]

    assert gevonden("gepland") == [(eerste, later)]
    assert gevonden("gevoerd") == [(tweede, vroeg)]
    assert world.app.afspraken_van("p-" + "c" * 32, "gepland", 10) == []


def test_a_second_conversation_of_a_kind_is_refused(world: World) -> None:
    aanvraag_id = world.ingediend()
    world.app.neem_contact_op(aanvraag_id, SECRETARIAAT)
    world.app.plan_afspraak(aanvraag_id, gesprek_bestuurder(), SECRETARIAAT)

    with pytest.raises(Conflict) as refused:
        world.app.plan_afspraak(aanvraag_id, gesprek_bestuurder(), SECRETARIAAT)

    assert refused.value.code == "gesprek_bestaat_al"


def test_a_cancelled_appointment_stays_cancelled(world: World) -> None:
    aanvraag_id = world.ingediend()
    world.app.neem_contact_op(aanvraag_id, SECRETARIAAT)
    afspraak_id = world.app.plan_afspraak(
        aanvraag_id, gesprek_bestuurder(), SECRETARIAAT
    ).afspraak.afspraak_id

    world.app.annuleer_afspraak(afspraak_id, SECRETARIAAT)
    _, afspraak = world.app.annuleer_afspraak(afspraak_id, SECRETARIAAT)

    assert afspraak.status == "geannuleerd"
    assert world.names(aanvraag_id).count("AfspraakGeannuleerd") == 1


def test_an_unknown_appointment_is_not_found(world: World) -> None:
    with pytest.raises(NietGevonden):
        world.app.annuleer_afspraak(uuid4(), SECRETARIAAT)


def test_a_repeated_idempotency_key_answers_with_the_first_appointment(world: World) -> None:
    aanvraag_id = world.ingediend()
    world.app.neem_contact_op(aanvraag_id, SECRETARIAAT)
    key = Idempotency(scope="POST /aanvragen/{id}/afspraken p-x", key="k-1")

    first = world.app.plan_afspraak(aanvraag_id, gesprek_bestuurder(), SECRETARIAAT, key)
    again = world.app.plan_afspraak(aanvraag_id, gesprek_bestuurder(), SECRETARIAAT, key)

    assert (first.replayed, again.replayed) == (False, True)
    assert again.afspraak == first.afspraak
    assert world.names(aanvraag_id).count("AfspraakGepland") == 1
    # The same key with another body is refused, and changes nothing.
    with pytest.raises(Ongeldig) as refused:
        later = gesprek_bestuurder(GESPREK + timedelta(days=1))
        world.app.plan_afspraak(aanvraag_id, later, SECRETARIAAT, key)
    assert refused.value.errors[0]["rule"] == "reused_with_other_body"
    assert world.names(aanvraag_id).count("AfspraakGepland") == 1
    # Another caller's scope is another key.
    other = Idempotency(scope="POST /aanvragen/{id}/afspraken p-y", key="k-1")
    werkgever = AfspraakVerzoek(
        soort="gesprek_werkgever",
        gepland_op=GESPREK,
        duur_minuten=60,
        adviseur_id=ADVISEUR,
        video_link="https://video.example.org/kamer-2",
    )
    third = world.app.plan_afspraak(aanvraag_id, werkgever, SECRETARIAAT, other)
    assert not third.replayed
    assert world.names(aanvraag_id).count("AfspraakGepland") == 2
