"""Notifications' use cases, on the in-memory store and on PostgreSQL: the same tests, only the
store differs (``store``: ``memory``, and ``postgres`` on the session's test server).

They drive the application as its composition root builds it (``bootstrap.application``): the
reactions to intake's, scheduling's and approval's events through the declared policies, the
sender's attempts with a mail server, intake and scheduling of the test's own, re-sending a
mail that failed for good, and the webhooks' use cases (subscribing, removing, a receiver failing
and recovering). The service's own tables (the delivery log, the appointments' tables)
are read through the application's queries and its tables port, whichever store holds them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from services.notifications.application import (
    Gemaakt,
    Notifications,
    RecipientUnknown,
    Sender,
    Webhooks,
)
from services.notifications.bootstrap import application
from services.notifications.domain.afspraak import Afspraak
from services.notifications.domain.mail import OutgoingMail, PermanentMailError, TransientMailError
from services.notifications.domain.notificatie import (
    Notificatie,
    NotificatieGepland,
    NotificatieMislukt,
    NotificatieOpnieuwGepland,
    NotificatieVerzonden,
    Ontvanger,
    notificatie_id,
)
from services.notifications.domain.webhooks import (
    AbonnementAangemaakt,
    AbonnementFalend,
    AbonnementHersteld,
    AbonnementVerwijderd,
    Eigenaar,
    RetrySchedule,
    Uitkomst,
)
from services.notifications.policies import policies
from shared.contracts import events as public
from shared.contracts.registry import to_cloudevent
from shared.platform.consumer import Delivery, Subscription, TransientError
from shared.platform.errors import Conflict, NietGevonden, Ongeldig
from shared.platform.eventstore import AlreadyProcessed
from shared.platform.model import Context, DomainEvent, FixedClock
from tests.usecases.conftest import STORES, store_env

NU = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
GEPLAND_OP = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
SECRETARIAAT = "secretariaat@ccv.nl"
SCHEMA = RetrySchedule((60.0, 600.0), jitter=0.0)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The environment of notifications' event store: the library's in-memory store, or a fresh
    PostgreSQL database of the session's test server."""
    return store_env(str(request.param), "notifications", request, tmp_path)


# --- the other services, as the sender asks them --------------------------------------------------


@dataclass
class MailServer:
    """An SMTP relay: keeps what it accepted; ``fail`` makes the next sends fail."""

    sent: list[OutgoingMail] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)

    def send(self, message: OutgoingMail) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(message)


@dataclass
class Intake:
    """Intake's claim-check: every party of every dossier has an address, unless forgotten."""

    vergeten: set[UUID] = field(default_factory=set)

    def address(self, aanvraag_id: UUID, ontvanger: Ontvanger) -> str:
        if ontvanger == "secretariaat":
            return SECRETARIAAT
        if aanvraag_id in self.vergeten:
            raise RecipientUnknown(ontvanger)
        return f"{ontvanger}.{str(aanvraag_id)[:8]}@voorbeeld.nl"


@dataclass
class Scheduling:
    """Scheduling's claim-check: the appointments it holds."""

    afspraken: dict[UUID, Afspraak] = field(default_factory=dict)

    def afspraak(self, afspraak_id: UUID) -> Afspraak:
        return self.afspraken[afspraak_id]


@dataclass
class World:
    """Notifications on one store, with the feeds and the neighbours a running service has."""

    app: Notifications
    clock: FixedClock
    subscriptions: list[Subscription]
    mail: MailServer
    intake: Intake
    scheduling: Scheduling
    sender: Sender
    webhooks: Webhooks

    def deliver(
        self, event: public.PublicEvent, *, event_id: str | None = None, webhooks: bool = False
    ) -> str:
        """Hand an event to the handler of the policy that subscribes to it, as the consumer
        would; with ``webhooks``, to the webhooks' consumer (which takes every event) instead."""
        envelope = to_cloudevent(
            event,
            id=event_id or str(uuid4()),
            source=f"urn:weerbaar:{event.emitting_service}",
            time=NU,
        )
        delivery = Delivery(envelope=envelope, event=event, stream_sequence=1, attempt=1)
        subject = f"weerbaar.{event.emitting_service}.{event.event_name}."
        [subscription] = [
            s
            for s in self.subscriptions
            if (s.purpose == "webhooks") == webhooks
            and any(p[:-1] == subject or p == "weerbaar.>" for p in s.subjects)
        ]
        subscription.handler(delivery)
        return envelope.id

    def ingediend(self, aanvraag_id: UUID, *, event_id: str | None = None) -> str:
        """Intake registered a dossier; the CloudEvent id (the notification's cause)."""
        return self.deliver(
            public.AanvraagIngediend(
                aanvraag_id=aanvraag_id,
                ingediend_op=NU,
                ingediend_door=public.Partij.BESTUURDER,
                organisatie_code="GM0363",
                binnen_regeling=True,
                verhuizing_gepland=False,
            ),
            event_id=event_id,
        )

    def recorded(self) -> list[DomainEvent]:
        """Every event notifications' store holds, in order."""
        notifications = self.app.recorder.select_notifications(1, 10_000)
        return [self.app.mapper.to_domain_event(n) for n in notifications]

    def planned(self) -> list[tuple[str, str]]:
        """(template, recipient) of every notification planned, in order."""
        return [
            (e.soort, e.ontvanger) for e in self.recorded() if isinstance(e, NotificatieGepland)
        ]

    def bevestiging(self, aanvraag_id: UUID) -> Notificatie:
        """The registration's confirmation, planned and delivered once (attempt made)."""
        cause = self.ingediend(aanvraag_id)
        notificatie = self.app.notificatie(
            notificatie_id(cause, "bevestiging_aanvraag", "aanvrager")
        )
        self.sender.deliver(notificatie)
        return self.app.notificatie(notificatie.id)


@pytest.fixture
def world(store: dict[str, str]) -> Iterator[World]:
    yield from _world(store)


def _world(env: dict[str, str]) -> Iterator[World]:
    app = application(env)
    clock = FixedClock(NU)
    webhooks = Webhooks(app, clock, SCHEMA, failing_after=5)
    mail, intake, scheduling = MailServer(), Intake(), Scheduling()
    sender = Sender(
        app,
        mail,
        intake,
        scheduling,
        clock,
        message_id_domain="weerbaar.test",
        schema=SCHEMA,
        concurrency=1,
    )
    try:
        yield World(
            app, clock, policies(app, clock, webhooks), mail, intake, scheduling, sender, webhooks
        )
    finally:
        app.close()


# --- the reactions: which event causes which mail, for whom ---------------------------------------


def test_a_registration_plans_one_confirmation_for_whoever_submitted_it(world: World) -> None:
    aanvraag_id = uuid4()

    cause = world.ingediend(aanvraag_id)

    [event] = world.recorded()
    assert isinstance(event, NotificatieGepland)
    assert (event.aanvraag_id, event.soort, event.ontvanger) == (
        aanvraag_id,
        "bevestiging_aanvraag",
        "aanvrager",
    )
    assert event.originator_id == notificatie_id(cause, "bevestiging_aanvraag", "aanvrager")
    assert event.oorzaak_event_id == cause


def test_a_redelivered_event_plans_nothing_twice(world: World) -> None:
    aanvraag_id = uuid4()
    world.ingediend(aanvraag_id, event_id="ev-ingediend")

    with pytest.raises(AlreadyProcessed):
        world.ingediend(aanvraag_id, event_id="ev-ingediend")

    assert world.planned() == [("bevestiging_aanvraag", "aanvrager")]


def test_the_report_goes_to_the_bestuurder_then_after_consent_to_the_werkgever(
    world: World,
) -> None:
    aanvraag_id, rapport_id = uuid4(), uuid4()

    world.deliver(
        public.RapportVerstrektAanBestuurder(
            aanvraag_id=aanvraag_id, rapport_id=rapport_id, versie=2
        )
    )
    world.deliver(
        public.RapportVrijgegeven(
            aanvraag_id=aanvraag_id, rapport_id=rapport_id, versie=2, organisatie_code="GM0363"
        )
    )

    assert world.planned() == [
        ("rapport_beschikbaar_bestuurder", "bestuurder"),
        ("rapport_beschikbaar_werkgever", "werkgever"),
    ]
    gepland = [e for e in world.recorded() if isinstance(e, NotificatieGepland)]
    assert {e.parameters["rapport_id"] for e in gepland} == {str(rapport_id)}


def test_a_missed_contact_deadline_tells_the_secretariaat(world: World) -> None:
    deadline = datetime(2026, 4, 30, 22, 0, tzinfo=UTC)

    world.deliver(
        public.ContacttermijnVerstreken(
            aanvraag_id=uuid4(), deadline=deadline, vastgesteld_op=deadline + timedelta(seconds=30)
        )
    )

    [event] = world.recorded()
    assert isinstance(event, NotificatieGepland)
    assert (event.soort, event.ontvanger) == ("contacttermijn_verstreken", "secretariaat")
    assert event.parameters["deadline"] == deadline.isoformat()


def test_a_conversation_with_the_werkgever_is_confirmed_to_the_werkgever_only(
    world: World,
) -> None:
    afspraak_id = uuid4()

    world.deliver(
        public.AfspraakGepland(
            aanvraag_id=uuid4(),
            afspraak_id=afspraak_id,
            soort=public.AfspraakSoort("gesprek_werkgever"),
            vorm=public.AfspraakVorm("digitaal"),
            gepland_op=GEPLAND_OP,
            duur_minuten=60,
            adviseur_id="adviseur-7",
        )
    )

    assert world.planned() == [("afspraak_bevestiging", "werkgever")]
    [event] = world.recorded()
    assert isinstance(event, NotificatieGepland)
    assert event.parameters == {"afspraak_id": str(afspraak_id), "soort": "gesprek_werkgever"}


# --- the sender -----------------------------------------------------------------------------------


def test_the_sender_fetches_the_address_and_records_the_mail_as_sent(world: World) -> None:
    aanvraag_id = uuid4()

    notificatie = world.bevestiging(aanvraag_id)

    [mail] = world.mail.sent
    assert mail.to == world.intake.address(aanvraag_id, "aanvrager")
    assert str(aanvraag_id) in mail.subject
    assert (notificatie.status, notificatie.pogingen) == ("verzonden", 1)
    assert isinstance(world.recorded()[-1], NotificatieVerzonden)


def test_a_transient_failure_is_tried_again_on_the_schedule(world: World) -> None:
    world.mail.failures.append(TransientMailError("connection_refused"))

    notificatie = world.bevestiging(uuid4())

    assert (notificatie.status, notificatie.reden_code) == ("gepland", "connection_refused")
    assert notificatie.volgende_poging == NU + timedelta(seconds=60)
    failed = world.recorded()[-1]
    assert isinstance(failed, NotificatieMislukt)
    assert not failed.definitief


def test_an_address_intake_no_longer_has_fails_for_good(world: World) -> None:
    aanvraag_id = uuid4()
    world.intake.vergeten.add(aanvraag_id)

    notificatie = world.bevestiging(aanvraag_id)

    assert (notificatie.status, notificatie.reden_code) == ("mislukt", "ontvanger_onbekend")
    assert world.mail.sent == []


# --- sending a failed mail again (change: load, decide, record) ----------------------------------


def test_a_mail_that_failed_for_good_is_planned_again_once(world: World) -> None:
    world.mail.failures.append(PermanentMailError("recipient_refused", 550))
    notificatie = world.bevestiging(uuid4())
    assert notificatie.status == "mislukt"
    beheerder = Context(now=NU, actor_id="beheerder-1", actor_role="beheerder")

    again = world.app.opnieuw(notificatie.id, beheerder)

    assert (again.status, again.volgende_poging, again.ronde_start) == ("gepland", NU, 1)
    opnieuw = world.recorded()[-1]
    assert isinstance(opnieuw, NotificatieOpnieuwGepland)
    assert opnieuw.actor_role == "beheerder"
    with pytest.raises(Conflict) as refused:
        world.app.opnieuw(notificatie.id, beheerder)
    assert refused.value.code == "niet_mislukt"
    world.sender.deliver(again)
    assert world.app.notificatie(notificatie.id).status == "verzonden"


def test_an_unknown_notification_cannot_be_sent_again(world: World) -> None:
    before = world.app.max_notification_id()

    with pytest.raises(NietGevonden):
        world.app.opnieuw(uuid4(), Context(now=NU, actor_role="secretariaat"))

    assert world.app.max_notification_id() == before


# --- the service's own tables: the delivery log, the queue, who asked for a toelichting ----------


def test_the_delivery_log_and_the_queue_follow_each_attempt(world: World) -> None:
    aanvraag_id = uuid4()
    world.ingediend(aanvraag_id)
    [planned] = world.app.bezorgingen(aanvraag_id=aanvraag_id)
    assert (planned.status, planned.pogingen) == ("gepland", 0)

    due = world.app.tables.claim_due(NU, 10)
    assert due == [planned.notificatie_id]
    assert world.app.tables.claim_due(NU, 10) == [], "claimed: no other sender takes it"
    world.mail.failures.append(PermanentMailError("recipient_refused", 550))
    world.sender.deliver(world.app.notificatie(planned.notificatie_id))
    [failed] = world.app.bezorgingen(aanvraag_id=aanvraag_id)
    assert (failed.status, failed.reden_code) == ("mislukt", "recipient_refused")

    world.app.opnieuw(planned.notificatie_id, Context(now=NU, actor_role="secretariaat"))

    assert world.app.bezorging(planned.notificatie_id).status == "gepland"
    with pytest.raises(NietGevonden):
        world.app.bezorging(uuid4())
    assert world.app.tables.claim_due(NU, 10) == [planned.notificatie_id]


def test_a_toelichting_is_confirmed_to_the_party_that_asked(world: World) -> None:
    aanvraag_id, afspraak_id = uuid4(), uuid4()
    world.deliver(
        public.ToelichtingAangevraagd(
            aanvraag_id=aanvraag_id, aangevraagd_door=public.Partij.WERKGEVER, aangevraagd_op=NU
        )
    )

    world.deliver(
        public.AfspraakGepland(
            aanvraag_id=aanvraag_id,
            afspraak_id=afspraak_id,
            soort=public.AfspraakSoort("toelichting"),
            vorm=public.AfspraakVorm("digitaal"),
            gepland_op=GEPLAND_OP,
            duur_minuten=30,
            adviseur_id="adviseur-7",
        )
    )

    assert world.planned() == [("afspraak_bevestiging", "werkgever")]
    assert world.app.tables.ontvangers_van(afspraak_id) == ("werkgever",)
    assert world.app.tables.open_verzoeken(aanvraag_id) == {}, "the request is answered"


# --- webhooks: subscribing, unsubscribing, a receiver failing and recovering --------------------

WERKGEVER = Context(now=NU, actor_id="werkgever-1", actor_role="werkgever")
HOLD = timedelta(seconds=60)


def _subscribed(world: World) -> tuple[UUID, bytes]:
    gemaakt = world.webhooks.maak(
        "https://ontvanger.example/hook",
        "werkgever",
        ["AanvraagIngediend", "AanvraagIngediend"],
        "GM0363",
        None,
        WERKGEVER,
    )
    return gemaakt.abonnement.abonnement_id, gemaakt.secret


@pytest.mark.parametrize(
    ("callback_url", "eigenaar", "event_types", "organisatie", "field", "rule"),
    [
        ("http://169.254.169.254/latest/meta-data", "werkgever", None, "GM0363",
         "body.callback_url", "prive_adres"),
        ("file:///etc/passwd", "secretariaat", None, None, "body.callback_url", None),
        ("https://ontvanger.example/hook", "werkgever", ["RapportIngezien"], "GM0363",
         "body.event_types", "onbekend_of_niet_toegestaan"),
        ("https://ontvanger.example/hook", "secretariaat", [], None,
         "body.event_types", "onbekend_of_niet_toegestaan"),
        ("https://ontvanger.example/hook", "secretariaat", ["Onbekend"] * 10_000, None,
         "body.event_types", "onbekend_of_niet_toegestaan"),
        ("https://ontvanger.example/hook", "werkgever", None, None,
         "body.organisatie_code", "required_for_werkgever"),
    ],
)  # fmt: skip
def test_a_subscription_that_breaks_a_rule_is_refused_by_the_use_case_and_stores_nothing(
    world: World,
    callback_url: str,
    eigenaar: Eigenaar,
    event_types: list[str] | None,
    organisatie: str | None,
    field: str,
    rule: str | None,
) -> None:
    # Whoever calls it (the API, a command, a later route): the rules are the use case's.
    with pytest.raises(Ongeldig) as refused:
        world.webhooks.maak(callback_url, eigenaar, event_types, organisatie, None, WERKGEVER)
    [fout] = refused.value.errors
    assert fout["field"] == field
    if rule is not None:
        assert fout["rule"] == rule
    assert world.webhooks.store.abonnementen() == []


def _ingediend(aanvraag_id: UUID) -> public.AanvraagIngediend:
    return public.AanvraagIngediend(
        aanvraag_id=aanvraag_id,
        ingediend_op=NU,
        ingediend_door=public.Partij.BESTUURDER,
        organisatie_code="GM0363",
        binnen_regeling=True,
        verhuizing_gepland=False,
    )


def test_a_subscription_is_made_with_its_secret_and_gets_the_events_it_asks_for(
    world: World,
) -> None:
    abonnement_id, key = _subscribed(world)

    abonnement = world.webhooks.abonnement(abonnement_id)
    assert (abonnement.status, abonnement.eigenaar, abonnement.organisatie_code) == (
        "actief",
        "werkgever",
        "GM0363",
    )
    assert abonnement.event_types == ["AanvraagIngediend"]
    assert [a.abonnement_id for a in world.webhooks.abonnementen(werkgever="GM0363")] == [
        abonnement_id
    ]
    assert world.webhooks.abonnementen(werkgever="GM0999") == []
    [made] = world.recorded()
    assert isinstance(made, AbonnementAangemaakt)
    assert (made.originator_id, made.originator_version) == (abonnement_id, 1)
    assert (made.eigenaar, made.organisatie_code, made.event_types) == (
        "werkgever",
        "GM0363",
        ("AanvraagIngediend",),
    )

    event_id = world.deliver(_ingediend(uuid4()), webhooks=True)
    with pytest.raises(AlreadyProcessed):
        world.deliver(_ingediend(uuid4()), event_id=event_id, webhooks=True)

    [bezorging] = world.webhooks.bezorgingen(abonnement_id)
    assert (bezorging.event_id, bezorging.status, bezorging.pogingen) == (event_id, "gepland", 0)
    [claim] = world.webhooks.claim_due(NU, 10, HOLD)
    assert world.webhooks.claim_due(NU, 10, HOLD) == [], "claimed: no other sender takes it"
    assert world.webhooks.secret_of(claim) == key


def test_an_organisation_has_at_most_its_cap_of_live_subscriptions(world: World) -> None:
    world.webhooks.max_per_organisatie = 3
    made = [_subscribed(world)[0] for _ in range(3)]
    with pytest.raises(Conflict) as refused:
        _subscribed(world)
    assert refused.value.code == "te_veel_abonnementen"
    assert len(world.webhooks.abonnementen(werkgever="GM0363")) == 3
    # Another organisation and the secretariaat have their own room.
    world.webhooks.maak("https://ander.example/hook", "werkgever", None, "GM0999", None, WERKGEVER)
    world.webhooks.maak("https://sec.example/hook", "secretariaat", None, None, None, WERKGEVER)
    # A removed one makes room again.
    world.webhooks.verwijder(made[0], WERKGEVER)
    _subscribed(world)
    assert len(world.webhooks.abonnementen(werkgever="GM0363")) == 3


def test_a_repeated_idempotency_key_answers_with_the_first_subscription(world: World) -> None:
    sleutel = ("POST /webhooks/abonnementen|werkgever-1|werkgever:GM0363", "abonnement-1")

    def maak(url: str = "https://ontvanger.example/hook") -> Gemaakt:
        return world.webhooks.maak(url, "werkgever", None, "GM0363", None, WERKGEVER, sleutel)

    first, again = maak(), maak()
    assert (first.replayed, again.replayed) == (False, True)
    assert again.abonnement.abonnement_id == first.abonnement.abonnement_id
    assert again.secret == first.secret
    with pytest.raises(Ongeldig) as reused:
        maak("https://andere.example/hook")
    assert reused.value.errors == [
        {"field": "header.Idempotency-Key", "rule": "reused_with_other_body"}
    ]
    assert [type(e) for e in world.recorded()] == [AbonnementAangemaakt]
    assert len(world.webhooks.abonnementen()) == 1
    # Once removed, its secret is gone: the repeat cannot be answered, and makes nothing.
    world.webhooks.verwijder(first.abonnement.abonnement_id, WERKGEVER)
    with pytest.raises(Conflict) as removed:
        maak()
    assert removed.value.code == "abonnement_verwijderd"
    assert [type(e) for e in world.recorded()] == [AbonnementAangemaakt, AbonnementVerwijderd]


def test_a_removed_subscription_gets_nothing_more_and_its_secret_is_destroyed(
    world: World,
) -> None:
    abonnement_id, _ = _subscribed(world)
    world.deliver(_ingediend(uuid4()), webhooks=True)
    [claim] = world.webhooks.claim_due(NU, 10, HOLD)

    removed = world.webhooks.verwijder(abonnement_id, WERKGEVER)

    assert removed.status == "verwijderd"
    verwijderd = world.recorded()[-1]
    assert isinstance(verwijderd, AbonnementVerwijderd)
    assert (verwijderd.originator_version, verwijderd.organisatie_code) == (2, "GM0363")
    assert world.webhooks.abonnementen() == []
    assert [a.abonnement_id for a in world.webhooks.abonnementen(status="verwijderd")] == [
        abonnement_id
    ]
    [bezorging] = world.webhooks.bezorgingen(abonnement_id)
    assert bezorging.status == "vervallen"
    assert world.webhooks.secret_of(claim) is None
    world.webhooks.record_attempt(claim, Uitkomst(True, 5, status_code=204), NU)
    assert world.webhooks.bezorging(bezorging.bezorging_id).status == "vervallen"
    with pytest.raises(Conflict):
        world.webhooks.opnieuw(bezorging.bezorging_id, NU)
    events = len(world.recorded())
    assert world.webhooks.verwijder(abonnement_id, WERKGEVER).status == "verwijderd"
    assert len(world.recorded()) == events, "removing twice records nothing more"
    world.deliver(_ingediend(uuid4()), webhooks=True)
    assert len(world.webhooks.bezorgingen(abonnement_id)) == 1


def test_planning_a_delivery_again_while_a_sender_sends_it_gives_no_second_sender(
    world: World,
) -> None:
    abonnement_id, _ = _subscribed(world)
    world.deliver(_ingediend(uuid4()), webhooks=True)
    [claim] = world.webhooks.claim_due(NU, 10, HOLD)  # a sender is sending it now
    [bezorging] = world.webhooks.bezorgingen(abonnement_id)

    again = world.webhooks.opnieuw(bezorging.bezorging_id, NU)

    assert (again.status, again.volgende_poging) == ("gepland", NU)
    assert world.webhooks.claim_due(NU, 10, HOLD) == [], "no second sender while it is held"
    world.webhooks.record_attempt(claim, Uitkomst(True, 5, status_code=204), NU)
    assert world.webhooks.bezorging(bezorging.bezorging_id).status == "afgeleverd"
    # A claim whose sender stopped (its hold over) does not stop the new plan.
    world.deliver(_ingediend(uuid4()), webhooks=True)
    [stalled] = world.webhooks.claim_due(NU, 10, HOLD)
    later = NU + HOLD + timedelta(seconds=1)
    world.webhooks.opnieuw(stalled.bezorging_id, later)
    [taken] = world.webhooks.claim_due(later, 10, HOLD)
    assert taken.bezorging_id == stalled.bezorging_id and taken.claim != stalled.claim


def test_a_receiver_that_keeps_failing_marks_its_subscription_failing_until_it_recovers(
    world: World,
) -> None:
    abonnement_id, _ = _subscribed(world)
    world.deliver(_ingediend(uuid4()), webhooks=True)
    now = NU
    for _ in range(SCHEMA.attempts):  # every attempt of the schedule fails: given up
        [claim] = world.webhooks.claim_due(now, 10, HOLD)
        world.webhooks.record_attempt(claim, Uitkomst(False, 12, status_code=500), now)
        now += timedelta(seconds=600)

    [bezorging] = world.webhooks.bezorgingen(abonnement_id)
    assert (bezorging.status, bezorging.pogingen) == ("opgegeven", SCHEMA.attempts)
    assert [p.status_code for p in bezorging.log] == [500] * SCHEMA.attempts
    abonnement = world.webhooks.abonnement(abonnement_id)
    assert (abonnement.status, abonnement.opeenvolgende_fouten) == ("falend", SCHEMA.attempts)
    assert (abonnement.falend_sinds, abonnement.laatste_fout) == (NU, "http_500")
    falend = world.recorded()[-1]
    assert isinstance(falend, AbonnementFalend)
    assert (falend.originator_version, falend.opeenvolgende_fouten, falend.reden_code) == (
        2,
        SCHEMA.attempts,
        "http_500",
    )
    assert falend.falend_sinds == NU

    again = world.webhooks.opnieuw(bezorging.bezorging_id, now)
    assert (again.status, again.volgende_poging) == ("gepland", now)
    [claim] = world.webhooks.claim_due(now, 10, HOLD)
    world.webhooks.record_attempt(claim, Uitkomst(True, 8, status_code=204), now)

    assert world.webhooks.bezorging(bezorging.bezorging_id).status == "afgeleverd"
    abonnement = world.webhooks.abonnement(abonnement_id)
    assert (abonnement.status, abonnement.opeenvolgende_fouten) == ("actief", 0)
    assert abonnement.falend_sinds is None
    hersteld = world.recorded()[-1]
    assert isinstance(hersteld, AbonnementHersteld)
    assert (hersteld.originator_version, hersteld.organisatie_code) == (3, "GM0363")


def _webhook_history(aanvraag_id: UUID) -> list[public.PublicEvent]:
    """A dossier's events as the webhooks' consumer sees them: a measure carried out before and
    after the release (a werkgever's subscription gets only the second)."""
    rapport_id = uuid4()

    def uitgevoerd() -> public.MaatregelUitgevoerd:
        return public.MaatregelUitgevoerd(
            aanvraag_id=aanvraag_id,
            maatregel_id=uuid4(),
            rapport_id=rapport_id,
            domein=public.Domein.WONEN,
            kosten=public.Kosten.MET_KOSTEN,
            uitgevoerd_door=public.Partij.WERKGEVER,
            uitgevoerd_op=NU,
        )

    return [
        _ingediend(aanvraag_id),
        public.ContactOpgenomen(aanvraag_id=aanvraag_id, contact_op=NU, binnen_termijn=True),
        uitgevoerd(),
        public.RapportVrijgegeven(
            aanvraag_id=aanvraag_id, rapport_id=rapport_id, versie=1, organisatie_code="GM0363"
        ),
        uitgevoerd(),
    ]


def test_a_batch_of_messages_plans_the_webhook_deliveries_one_by_one_would(world: World) -> None:
    """The webhooks' consumer takes a fetch in one transaction: the same deliveries as handling
    each message in turn, a message twice in the batch or already handled planned once."""
    subscribers = {
        eigenaar + (organisatie or ""): world.webhooks.maak(
            "https://ontvanger.example/hook", eigenaar, None, organisatie, None, WERKGEVER
        ).abonnement.abonnement_id
        for eigenaar, organisatie in (
            ("werkgever", "GM0363"),
            ("werkgever", "GM0999"),
            ("secretariaat", None),
        )
    }
    [webhooks] = [s for s in world.subscriptions if s.purpose == "webhooks"]
    assert webhooks.batch_handler is not None

    def deliveries(events: list[public.PublicEvent]) -> list[Delivery]:
        return [
            Delivery(
                envelope=to_cloudevent(
                    e, id=str(uuid4()), source=f"urn:weerbaar:{e.emitting_service}", time=NU
                ),
                event=e,
                stream_sequence=1,
                attempt=1,
            )
            for e in events
        ]

    one, batched = uuid4(), uuid4()
    for delivery in deliveries(_webhook_history(one)):
        webhooks.handler(delivery)
    batch = deliveries(_webhook_history(batched))
    webhooks.handler(batch[0])  # handled before the batch came (a redelivery in it)
    webhooks.batch_handler([*batch, batch[2]])  # and one message twice in the fetch

    def planned(aanvraag_id: UUID) -> dict[str, list[str]]:
        return {
            name: sorted(
                b.event_type.split(".")[-2]
                for b in world.webhooks.bezorgingen(abonnement_id)
                if b.aanvraag_id == aanvraag_id
            )
            for name, abonnement_id in subscribers.items()
        }

    assert planned(one) == {
        "werkgeverGM0363": [
            "AanvraagIngediend",
            "ContactOpgenomen",
            "MaatregelUitgevoerd",
            "RapportVrijgegeven",
        ],
        "werkgeverGM0999": [],
        "secretariaat": sorted(
            [
                "AanvraagIngediend",
                "ContactOpgenomen",
                "MaatregelUitgevoerd",
                "MaatregelUitgevoerd",
                "RapportVrijgegeven",
            ]
        ),
    }
    assert planned(batched) == planned(one)
    # Every message of the batch is in the inbox: handled again, it plans nothing.
    for delivery in batch:
        with pytest.raises(AlreadyProcessed):
            webhooks.handler(delivery)


def test_a_batch_with_an_event_that_cannot_be_placed_yet_is_settled_one_by_one(
    world: World,
) -> None:
    """A message whose dossier's organisation is not known yet makes the batch raise (a transient
    error, never a stop); handled one by one afterwards, as the consumer does, the others are
    planned once and that one waits until its dossier is known."""
    abonnement_id = world.webhooks.maak(
        "https://ontvanger.example/hook", "werkgever", None, "GM0363", None, WERKGEVER
    ).abonnement.abonnement_id
    [webhooks] = [s for s in world.subscriptions if s.purpose == "webhooks"]
    assert webhooks.batch_handler is not None
    known, unknown = uuid4(), uuid4()
    events: list[public.PublicEvent] = [
        _ingediend(known),
        public.ContactOpgenomen(aanvraag_id=unknown, contact_op=NU, binnen_termijn=True),
    ]
    batch = [
        Delivery(
            envelope=to_cloudevent(e, id=str(uuid4()), source="urn:weerbaar:x", time=NU),
            event=e,
            stream_sequence=1,
            attempt=1,
        )
        for e in events
    ]
    with pytest.raises(TransientError):
        webhooks.batch_handler(batch)
    with contextlib.suppress(AlreadyProcessed):  # the memory store kept the first (not one unit)
        webhooks.handler(batch[0])
    with pytest.raises(TransientError):
        webhooks.handler(batch[1])
    world.deliver(_ingediend(unknown), webhooks=True)
    webhooks.handler(batch[1])
    planned = sorted(
        (str(b.aanvraag_id), b.event_type.split(".")[-2])
        for b in world.webhooks.bezorgingen(abonnement_id)
    )
    assert planned == sorted(
        [
            (str(known), "AanvraagIngediend"),
            (str(unknown), "AanvraagIngediend"),
            (str(unknown), "ContactOpgenomen"),
        ]
    )
