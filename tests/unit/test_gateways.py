"""The gateways: each service's private domain events → public events, without personal data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from services.approval import gateway as approval_gateway
from services.assessment import gateway as assessment_gateway
from services.intake import gateway as intake_gateway
from services.intake.domain import Aanmelding, Aanvraag, Functie, dien_in, project, trek_in
from services.notifications import gateway as notifications_gateway
from services.notifications.domain.notificatie import Notificatie, mislukt, plan, verzonden
from services.notifications.domain.notificatie import project as project_notificatie
from services.notifications.domain.webhooks import RetrySchedule
from services.scheduling import gateway as scheduling_gateway
from services.scheduling.domain import (
    Planning,
    neem_contact_op,
    open_planning,
    stel_verstrijken_vast,
    stop,
)
from services.scheduling.domain import project as project_planning
from shared.contracts import events as public
from shared.contracts.registry import subject_for, to_cloudevent
from shared.platform.access import ToegangGeweigerdVastgelegd
from shared.platform.eventstore import public_event_id
from shared.platform.model import Context, DomainEvent, first_event

NU = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
DEADLINE = datetime(2026, 3, 4, 23, 0, tzinfo=UTC)
Gateway = Callable[[DomainEvent], Sequence[public.PublicEvent]]

# Distinctive values: none of them can occur by accident in a UUID, a timestamp or a code.
PERSONAL = {
    "naam": "Anna de Vries-Bakker",
    "bestuurder_email": "anna.devries@voorbeeld.nl",
    "bestuurder_telefoon": "+31 6 11223344",
    "straat": "Oudegracht",
    "huisnummer": "7 hs",
    "postcode": "3511 XY",
    "woonplaats": "Utrecht",
    "organisatie": "Gemeente Utrecht",
    "contactpersoon": "Piet Jansen",
    "werkgever_email": "p.jansen@utrecht.example",
    "werkgever_telefoon": "030-2861111",
    "reden": "Dreigbrief met kogel in de brievenbus na het raadsdebat.",
}


def aanmelding(functie: Functie = Functie.WETHOUDER, **overrides: Any) -> Aanmelding:
    data: dict[str, Any] = {
        "ingediend_door": "werkgever",
        "bestuurder": {
            "naam": PERSONAL["naam"],
            "functie": functie.value,
            "email": PERSONAL["bestuurder_email"],
            "telefoon": PERSONAL["bestuurder_telefoon"],
            "adres": {
                "straat": PERSONAL["straat"],
                "huisnummer": PERSONAL["huisnummer"],
                "postcode": PERSONAL["postcode"],
                "woonplaats": PERSONAL["woonplaats"],
            },
        },
        "werkgever": {
            "organisatie": PERSONAL["organisatie"],
            "organisatie_code": "GM0344",
            "contactpersoon": PERSONAL["contactpersoon"],
            "email": PERSONAL["werkgever_email"],
            "telefoon": PERSONAL["werkgever_telefoon"],
        },
        "reden": PERSONAL["reden"],
        "verhuizing_gepland": True,
        "toestemming": True,
    }
    data.update(overrides)
    return Aanmelding.model_validate(data)


def leaks(events: Sequence[public.PublicEvent]) -> set[str]:
    """The personal values that appear in the public events, as payload or as envelope."""
    found = set()
    for index, event in enumerate(events):
        assert event.aanvraag_id is not None
        envelope = to_cloudevent(
            event,
            id=public_event_id(event.emitting_service, event.aanvraag_id, 1, index),
            source=f"urn:nl:weerbaarbestuur:{event.emitting_service}",
            time=NU,
        )
        wire = event.model_dump_json() + envelope.to_json().decode() + subject_for(event)
        found |= {name for name, value in PERSONAL.items() if value.lower() in wire.lower()}
    return found


def test_the_leak_check_finds_personal_data_where_it_is() -> None:
    # Guards the check below: the private event does hold every value.
    event = dien_in(uuid4(), aanmelding(), Context(now=NU))
    assert {n for n, v in PERSONAL.items() if v in event.model_dump_json()} == set(PERSONAL)


# --- intake --------------------------------------------------------------------------------------


@pytest.mark.parametrize("functie", list(Functie))
def test_intake_announces_a_registration_without_personal_data(functie: Functie) -> None:
    aanvraag_id = uuid4()
    event = dien_in(aanvraag_id, aanmelding(functie), Context(now=NU, actor_role="aanvrager"))
    announced = intake_gateway.to_public(event)
    assert leaks(announced) == set()
    ingediend = announced[0]
    assert ingediend == public.AanvraagIngediend(
        aanvraag_id=aanvraag_id,
        ingediend_op=NU,
        ingediend_door=public.Partij.WERKGEVER,
        organisatie_code="GM0344",
        binnen_regeling=functie not in {Functie.RAADSLID, Functie.STATENLID, Functie.OVERIG},
        verhuizing_gepland=True,
    )


def test_a_raadslid_gives_aanvraag_ingediend_and_aanvraag_buiten_regeling() -> None:
    aanvraag_id = uuid4()
    event = dien_in(aanvraag_id, aanmelding(Functie.RAADSLID), Context(now=NU))
    announced = intake_gateway.to_public(event)
    assert [type(e) for e in announced] == [public.AanvraagIngediend, public.AanvraagBuitenRegeling]
    assert isinstance(announced[0], public.AanvraagIngediend)
    assert announced[0].binnen_regeling is False
    assert announced[1] == public.AanvraagBuitenRegeling(
        aanvraag_id=aanvraag_id, reden=public.BuitenRegelingReden.RAADSLID
    )


@pytest.mark.parametrize(
    ("functie", "reden"),
    [
        (Functie.STATENLID, public.BuitenRegelingReden.STATENLID),
        (Functie.OVERIG, public.BuitenRegelingReden.OVERIG),
    ],
)
def test_other_registrations_outside_the_regeling_say_why(
    functie: Functie, reden: public.BuitenRegelingReden
) -> None:
    announced = intake_gateway.to_public(dien_in(uuid4(), aanmelding(functie), Context(now=NU)))
    assert len(announced) == 2
    assert isinstance(announced[1], public.AanvraagBuitenRegeling)
    assert announced[1].reden is reden


def test_a_registration_inside_the_regeling_gives_one_event() -> None:
    announced = intake_gateway.to_public(
        dien_in(uuid4(), aanmelding(Functie.BURGEMEESTER), Context(now=NU))
    )
    assert [type(e) for e in announced] == [public.AanvraagIngediend]


def test_submitted_by_the_bestuurder() -> None:
    event = dien_in(uuid4(), aanmelding(ingediend_door="bestuurder"), Context(now=NU))
    ingediend = intake_gateway.to_public(event)[0]
    assert isinstance(ingediend, public.AanvraagIngediend)
    assert ingediend.ingediend_door is public.Partij.BESTUURDER


def ingediende_aanvraag() -> Aanvraag:
    aanvraag = project(None, [dien_in(uuid4(), aanmelding(), Context(now=NU))])
    assert aanvraag is not None
    return aanvraag


@pytest.mark.parametrize(
    ("actor_role", "door_rol"),
    [
        ("secretariaat", public.Rol.SECRETARIAAT),
        ("adviseur,secretariaat", public.Rol.SECRETARIAAT),
        ("bestuurder", public.Rol.BESTUURDER),
        (None, public.Rol.BESTUURDER),
    ],
)
def test_withdrawal_says_under_which_role(actor_role: str | None, door_rol: public.Rol) -> None:
    aanvraag = ingediende_aanvraag()
    later = NU + timedelta(days=1)
    event = trek_in(aanvraag, Context(now=later, actor_id="x-1", actor_role=actor_role))
    announced = intake_gateway.to_public(event)
    assert announced == [
        public.AanvraagIngetrokken(aanvraag_id=aanvraag.id, ingetrokken_op=later, door_rol=door_rol)
    ]
    assert leaks(announced) == set()


def test_intake_ignores_events_it_does_not_announce() -> None:
    class Intern(DomainEvent):
        pass

    assert intake_gateway.to_public(first_event(Intern, uuid4(), Context(now=NU))) == []


# --- scheduling ----------------------------------------------------------------------------------


def geopende_planning(aanvraag_id: UUID) -> Planning:
    event = open_planning(aanvraag_id, NU, DEADLINE, 3, "algemene_termijnenwet", Context(now=NU))
    planning = project_planning(None, [event])
    assert planning is not None
    return planning


def test_scheduling_announces_the_deadline() -> None:
    aanvraag_id = uuid4()
    event = open_planning(aanvraag_id, NU, DEADLINE, 3, "algemene_termijnenwet", Context(now=NU))
    assert scheduling_gateway.to_public(event) == [
        public.ContacttermijnGesteld(
            aanvraag_id=aanvraag_id,
            deadline=DEADLINE,
            werkdagen=3,
            kalender="algemene_termijnenwet",
        )
    ]


def test_scheduling_announces_contact() -> None:
    aanvraag_id = uuid4()
    moment = DEADLINE + timedelta(hours=1)
    event = neem_contact_op(geopende_planning(aanvraag_id), Context(now=moment))
    assert event is not None
    assert scheduling_gateway.to_public(event) == [
        public.ContactOpgenomen(aanvraag_id=aanvraag_id, contact_op=moment, binnen_termijn=False)
    ]


def test_scheduling_announces_a_missed_deadline() -> None:
    aanvraag_id = uuid4()
    moment = DEADLINE + timedelta(minutes=2)
    event = stel_verstrijken_vast(geopende_planning(aanvraag_id), Context(now=moment))
    assert event is not None
    assert scheduling_gateway.to_public(event) == [
        public.ContacttermijnVerstreken(
            aanvraag_id=aanvraag_id, deadline=DEADLINE, vastgesteld_op=moment
        )
    ]


def test_scheduling_does_not_announce_a_stopped_planning() -> None:
    event = stop(geopende_planning(uuid4()), Context(now=NU))
    assert event is not None
    assert scheduling_gateway.to_public(event) == []


# --- notifications -------------------------------------------------------------------------------


def geplande_notificatie(aanvraag_id: UUID) -> Notificatie:
    event = plan(
        aanvraag_id,
        "bevestiging_aanvraag",
        "aanvrager",
        "ev-1",
        {"contact_deadline": DEADLINE.isoformat()},
        Context(now=NU),
    )
    assert notifications_gateway.to_public(event) == []  # planning is internal
    notificatie = project_notificatie(None, [event])
    assert notificatie is not None
    return notificatie


def test_notifications_announce_a_delivery() -> None:
    aanvraag_id = uuid4()
    notificatie = geplande_notificatie(aanvraag_id)
    announced = notifications_gateway.to_public(verzonden(notificatie, Context(now=NU)))
    assert announced == [
        public.NotificatieVerzonden(
            aanvraag_id=aanvraag_id,
            notificatie_id=notificatie.id,
            soort="bevestiging_aanvraag",
            kanaal="email",
            ontvanger_rol=public.Rol.AANVRAGER,
            oorzaak_event_id="ev-1",
            poging=1,
        )
    ]
    assert leaks(announced) == set()


@pytest.mark.parametrize(("permanent", "definitief"), [(False, False), (True, True)])
def test_notifications_announce_a_failure(permanent: bool, definitief: bool) -> None:
    aanvraag_id = uuid4()
    notificatie = geplande_notificatie(aanvraag_id)
    event = mislukt(
        notificatie,
        "smtp_timeout",
        permanent=permanent,
        schema=RetrySchedule((2.0,) * 4, jitter=0),
        ctx=Context(now=NU),
    )
    assert notifications_gateway.to_public(event) == [
        public.NotificatieMislukt(
            aanvraag_id=aanvraag_id,
            notificatie_id=notificatie.id,
            soort="bevestiging_aanvraag",
            kanaal="email",
            ontvanger_rol=public.Rol.AANVRAGER,
            oorzaak_event_id="ev-1",
            poging=1,
            reden_code="smtp_timeout",
            definitief=definitief,
        )
    ]


# --- refusals, every service ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gateway", "dienst"),
    [
        (intake_gateway.to_public, public.Dienst.INTAKE),
        (scheduling_gateway.to_public, public.Dienst.SCHEDULING),
        (assessment_gateway.to_public, public.Dienst.ASSESSMENT),
        (approval_gateway.to_public, public.Dienst.APPROVAL),
        (notifications_gateway.to_public, public.Dienst.NOTIFICATIONS),
    ],
)
@pytest.mark.parametrize("aanvraag_id", [UUID("6f1c2a8e-4b7d-4e11-9a3c-0d5e8f7a9b21"), None])
def test_every_service_announces_its_refusals(
    gateway: Gateway, dienst: public.Dienst, aanvraag_id: UUID | None
) -> None:
    event = first_event(
        ToegangGeweigerdVastgelegd,
        uuid4(),
        Context(now=NU, actor_id="werkgever-9", actor_role="werkgever"),
        aanvraag_id=aanvraag_id,
        actie="GET /aanvragen/{id}",
        reden="niet_van_deze_werkgever",
        status_code=404,
    )
    announced = gateway(event)
    assert announced == [
        public.ToegangGeweigerd(
            aanvraag_id=aanvraag_id,
            dienst=dienst,
            actie="GET /aanvragen/{id}",
            reden="niet_van_deze_werkgever",
            status_code=404,
        )
    ]
    assert subject_for(announced[0]).startswith(f"weerbaar.{dienst.value}.ToegangGeweigerd.")


@pytest.mark.parametrize("gateway", [assessment_gateway.to_public, approval_gateway.to_public])
def test_services_without_domain_events_yet_announce_nothing_else(gateway: Gateway) -> None:
    class Intern(DomainEvent):
        pass

    assert gateway(first_event(Intern, uuid4(), Context(now=NU))) == []
