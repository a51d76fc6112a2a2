"""Intake's use cases, on the in-memory store and on PostgreSQL: the same tests, only the store
differs (``store``: ``memory`` by default, ``postgres`` on the session's test server, marked
``integration``).

They drive the application as its composition root builds it (``bootstrap.application``, with the
read model of the store): the use cases as the API calls them, the closing policy through the
declared ``policies``. What a use case writes besides its events (a new dossier's data key, its
Idempotency-Key, who may see it; forgetting's destroyed key; a destruction's deletes) is written
with them on either store, and read back through the application's queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from services.intake import domain, policies
from services.intake.application import VERGETEN_HASH, Intake, email_hash
from services.intake.bootstrap import application
from services.intake.domain import Aanmelding
from services.intake.gateway import to_public
from shared.contracts import events as public
from shared.contracts.registry import to_cloudevent
from shared.platform.consumer import Delivery
from shared.platform.errors import Conflict, NietGevonden, Ongeldig, TeVaak
from shared.platform.keys import Vergeten
from shared.platform.model import Context, DomainEvent, FixedClock
from tests.support import aanmelding
from tests.usecases.conftest import STORES, store_env

NU = datetime(2026, 5, 11, 10, 0, tzinfo=UTC)
SECRETARIAAT = "p-" + "s" * 32
BEHEERDER = "p-" + "b" * 32
ADVISEUR = "p-" + "a" * 32


def formulier(**overrides: Any) -> Aanmelding:
    """A valid registration form with distinctive personal data."""
    return Aanmelding.model_validate(aanmelding(**overrides))


def buiten_regeling() -> Aanmelding:
    """A registration by a raadslid: outside the regeling."""
    data = aanmelding()
    data["bestuurder"]["functie"] = "raadslid"
    return Aanmelding.model_validate(data)


def as_actor(actor_id: str | None, role: str) -> Context:
    return Context(now=NU, actor_id=actor_id, actor_role=role)


AANVRAGER = as_actor(None, "aanvrager")


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The environment of intake's event store: the library's in-memory store, or a fresh
    PostgreSQL database of the session's test server."""
    return store_env(str(request.param), "intake", request, tmp_path)


@dataclass
class World:
    """Intake on one store, with the feeds a running service would get."""

    app: Intake
    clock: FixedClock
    times: dict[str, datetime] = field(default_factory=dict)

    def dossier(self, form: Aanmelding | None = None) -> UUID:
        """A registered aanvraag, through the use case."""
        return self.app.dien_aanvraag_in(form or formulier(), AANVRAGER).aanvraag_id

    def delivery(self, event: public.PublicEvent, event_id: str | None = None) -> Delivery:
        """Another service's event as the consumer hands it over; each one a second after the one
        before (the closing policy counts in the events' time order), a redelivery (the same
        ``event_id``) as it was the first time."""
        event_id = event_id or str(uuid4())
        time = self.times.setdefault(event_id, NU + timedelta(seconds=len(self.times) + 1))
        envelope = to_cloudevent(
            event,
            id=event_id,
            source=f"urn:weerbaar:{event.service}",
            time=time,
            actorid=ADVISEUR,
            actorrole="adviseur",
        )
        return Delivery(envelope=envelope, event=event, stream_sequence=1, attempt=1)

    def deliver(self, event: public.PublicEvent, *, event_id: str | None = None) -> None:
        """Hand another service's event to the policy that takes it, as the consumer would."""
        (afsluiting,) = policies.policies(self.app, self.clock)
        afsluiting.handler(self.delivery(event, event_id))

    def recorded(self) -> list[DomainEvent]:
        """Every event intake's store holds, in order."""
        events = []
        for notification in self.app.recorder.select_notifications(1, 10_000):
            event = self.app.mapper.to_domain_event(notification)
            assert isinstance(event, DomainEvent)
            events.append(event)
        return events

    def names(self, aanvraag_id: UUID) -> list[str]:
        """The names of the dossier's recorded events."""
        return [
            type(event).__name__ for event in self.recorded() if event.originator_id == aanvraag_id
        ]


@pytest.fixture
def world(store: dict[str, str]) -> Iterator[World]:
    app = application(store)
    try:
        yield World(app, FixedClock(NU))
    finally:
        app.close()


# --- registering ----------------------------------------------------------------------------------


def test_a_registration_keeps_the_form_and_who_may_see_the_dossier(world: World) -> None:
    form = formulier()

    ingediend = world.app.dien_aanvraag_in(form, AANVRAGER)

    assert not ingediend.replayed
    assert world.app.persoonsgegevens(ingediend.aanvraag_id) == form
    assert world.app.aanvraag(ingediend.aanvraag_id).status == "ingediend"
    assert world.app.toegang(ingediend.aanvraag_id) == (
        email_hash(form.bestuurder.email),
        "GM0363",
    )
    assert world.names(ingediend.aanvraag_id) == ["AanvraagOntvangen"]


def test_a_repeated_registration_with_the_same_key_answers_the_first(world: World) -> None:
    app = world.app
    form = formulier()
    first = app.dien_aanvraag_in(form, AANVRAGER, idempotency_key="sleutel-1")
    before = app.max_notification_id()

    again = app.dien_aanvraag_in(form, AANVRAGER, idempotency_key="sleutel-1")

    assert (again.aanvraag_id, again.replayed) == (first.aanvraag_id, True)
    assert app.max_notification_id() == before
    with pytest.raises(Ongeldig):
        app.dien_aanvraag_in(formulier(), AANVRAGER, idempotency_key="sleutel-1")
    assert app.max_notification_id() == before


def test_a_repeated_registration_is_not_counted_against_the_limits(world: World) -> None:
    app = world.app
    admitted: list[Aanmelding] = []
    form = formulier()

    app.dien_aanvraag_in(form, AANVRAGER, idempotency_key="sleutel-2", admit=admitted.append)
    app.dien_aanvraag_in(form, AANVRAGER, idempotency_key="sleutel-2", admit=admitted.append)

    assert admitted == [form]


def test_a_data_key_is_made_only_for_a_registration_that_is_recorded(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A repeat (answered from its key) and a refusal by the limits make no data key: the
    # refused path is the one a flood of registrations takes.
    app = world.app
    made: list[UUID] = []
    new_dossier = app.keys.new_dossier

    def counted(aanvraag_id: UUID) -> Any:
        made.append(aanvraag_id)
        return new_dossier(aanvraag_id)

    monkeypatch.setattr(app.keys, "new_dossier", counted)
    form = formulier()
    first = app.dien_aanvraag_in(form, AANVRAGER, idempotency_key="sleutel-3")
    again = app.dien_aanvraag_in(form, AANVRAGER, idempotency_key="sleutel-3")

    def refuse(_: Aanmelding) -> None:
        raise TeVaak("Te veel aanmeldingen.", retry_after_s=60)

    with pytest.raises(TeVaak):
        app.dien_aanvraag_in(formulier(), AANVRAGER, admit=refuse)

    assert again.replayed and again.aanvraag_id == first.aanvraag_id
    assert made == [first.aanvraag_id]
    assert app.persoonsgegevens(first.aanvraag_id) == form


# --- outside the regeling ----------------------------------------------------------------------


def test_an_aanvraag_outside_the_regeling_is_kept_and_announced_as_such(world: World) -> None:
    aanvraag_id = world.dossier(buiten_regeling())

    aanvraag = world.app.aanvraag(aanvraag_id)

    assert aanvraag.status == "ingediend"
    assert not aanvraag.binnen_regeling
    (ontvangen,) = world.recorded()
    announced = to_public(ontvangen)
    assert [type(event).__name__ for event in announced] == [
        "AanvraagIngediend",
        "AanvraagBuitenRegeling",
    ]
    assert announced[1] == public.AanvraagBuitenRegeling(
        aanvraag_id=aanvraag_id, reden=public.BuitenRegelingReden.RAADSLID
    )


def test_an_aanvraag_inside_the_regeling_is_announced_without_a_reason(world: World) -> None:
    aanvraag_id = world.dossier()

    (ontvangen,) = world.recorded()

    assert world.app.aanvraag(aanvraag_id).binnen_regeling
    assert [type(event).__name__ for event in to_public(ontvangen)] == ["AanvraagIngediend"]


# --- withdrawing ----------------------------------------------------------------------------------


def test_a_withdrawal_is_recorded_once(world: World) -> None:
    aanvraag_id = world.dossier()

    world.app.trek_aanvraag_in(aanvraag_id, AANVRAGER)
    world.app.trek_aanvraag_in(aanvraag_id, AANVRAGER)

    assert world.app.aanvraag(aanvraag_id).status == "ingetrokken"
    assert world.names(aanvraag_id) == ["AanvraagOntvangen", "AanvraagIngetrokken"]


def test_a_withdrawn_dossier_is_not_closed(world: World) -> None:
    aanvraag_id = world.dossier()
    world.app.trek_aanvraag_in(aanvraag_id, AANVRAGER)

    with pytest.raises(Conflict):
        world.app.sluit_dossier_af(
            aanvraag_id, "gesloten_door_secretariaat", "dubbel", 0, 0, AANVRAGER
        )

    assert world.names(aanvraag_id) == ["AanvraagOntvangen", "AanvraagIngetrokken"]


def test_an_unknown_dossier_is_not_found(world: World) -> None:
    with pytest.raises(NietGevonden):
        world.app.trek_aanvraag_in(uuid4(), AANVRAGER)
    with pytest.raises(NietGevonden):
        world.app.leg_bewaarplicht_op(uuid4(), "rechtszaak", as_actor(BEHEERDER, "compliance"))

    assert world.recorded() == []


# --- closing --------------------------------------------------------------------------------------


def test_a_dossier_is_closed_once_and_then_no_longer_withdrawn(world: World) -> None:
    aanvraag_id = world.dossier()
    secretariaat = as_actor(SECRETARIAAT, "secretariaat")

    first = world.app.sluit_dossier_af(
        aanvraag_id, "gesloten_door_secretariaat", "afgerond", 0, 0, secretariaat
    )
    again = world.app.sluit_dossier_af(
        aanvraag_id, "gesloten_door_secretariaat", "afgerond", 0, 0, secretariaat
    )

    assert (first, again) == (True, False)
    assert world.app.aanvraag(aanvraag_id).status == "afgesloten"
    with pytest.raises(Conflict):
        world.app.trek_aanvraag_in(aanvraag_id, AANVRAGER)
    assert world.names(aanvraag_id) == ["AanvraagOntvangen", "DossierAfgesloten"]


def test_closing_for_carried_out_measures_needs_them_all(world: World) -> None:
    aanvraag_id = world.dossier()
    systeem = as_actor("svc-intake", "systeem")

    with pytest.raises(Conflict):
        world.app.sluit_dossier_af(aanvraag_id, "alle_maatregelen_uitgevoerd", None, 2, 1, systeem)

    assert world.app.aanvraag(aanvraag_id).status == "ingediend"


# --- legal holds ----------------------------------------------------------------------------------


def test_a_legal_hold_is_placed_and_lifted_once_each(world: World) -> None:
    aanvraag_id = world.dossier()
    compliance = as_actor(BEHEERDER, "compliance")

    placed = [world.app.leg_bewaarplicht_op(aanvraag_id, "rechtszaak", compliance) for _ in "ab"]
    held = world.app.aanvraag(aanvraag_id).bewaarplicht
    lifted = [world.app.hef_bewaarplicht_op(aanvraag_id, compliance) for _ in "ab"]

    assert (placed, held, lifted) == ([True, False], "rechtszaak", [True, False])
    assert world.app.aanvraag(aanvraag_id).bewaarplicht is None
    assert world.names(aanvraag_id) == [
        "AanvraagOntvangen",
        "BewaarplichtOpgelegd",
        "BewaarplichtOpgeheven",
    ]


def test_nothing_is_destroyed_under_a_legal_hold(world: World) -> None:
    aanvraag_id = world.dossier()
    beheerder = as_actor(BEHEERDER, "beheerder")
    world.app.sluit_dossier_af(aanvraag_id, "gesloten_door_secretariaat", None, 0, 0, beheerder)
    world.app.leg_bewaarplicht_op(aanvraag_id, "rechtszaak", beheerder)

    with pytest.raises(Conflict):
        world.app.vernietig(aanvraag_id, "RapportIngezien", ["ev-1"], NU, beheerder)

    assert "GegevensVernietigd" not in world.names(aanvraag_id)


def test_nothing_is_destroyed_while_the_dossier_runs(world: World) -> None:
    aanvraag_id = world.dossier()

    with pytest.raises(Conflict):
        world.app.vernietig(
            aanvraag_id, "RapportIngezien", ["ev-1"], NU, as_actor(BEHEERDER, "beheerder")
        )

    assert world.names(aanvraag_id) == ["AanvraagOntvangen"]


def test_a_destruction_after_the_hold_is_lifted_is_recorded(world: World) -> None:
    app = world.app
    aanvraag_id = world.dossier()
    beheerder = as_actor(BEHEERDER, "beheerder")
    app.sluit_dossier_af(aanvraag_id, "gesloten_door_secretariaat", None, 0, 0, beheerder)
    app.leg_bewaarplicht_op(aanvraag_id, "rechtszaak", beheerder)
    app.hef_bewaarplicht_op(aanvraag_id, beheerder)

    app.vernietig(aanvraag_id, "RapportIngezien", ["ev-1", "ev-2"], NU, beheerder)

    destroyed = [e for e in world.recorded() if isinstance(e, domain.GegevensVernietigd)]
    assert [(e.soort, e.aantal, e.tot) for e in destroyed] == [("RapportIngezien", 2, NU)]


# --- the closing policy ---------------------------------------------------------------------------


def _maatregel() -> public.MaatregelSamenvatting:
    return public.MaatregelSamenvatting(
        maatregel_id=uuid4(),
        domein=public.Domein.WONEN,
        kosten=public.Kosten.MET_KOSTEN,
        uitvoerder=public.Partij.WERKGEVER,
        prioriteit=public.Prioriteit.HOOG,
    )


def _uitgevoerd(
    aanvraag_id: UUID, rapport_id: UUID, maatregel: public.MaatregelSamenvatting
) -> public.MaatregelUitgevoerd:
    return public.MaatregelUitgevoerd(
        aanvraag_id=aanvraag_id,
        maatregel_id=maatregel.maatregel_id,
        rapport_id=rapport_id,
        domein=maatregel.domein,
        kosten=maatregel.kosten,
        uitgevoerd_door=maatregel.uitvoerder,
        uitgevoerd_op=NU,
    )


def test_the_dossier_closes_when_every_measure_of_the_approved_report_is_done(
    world: World,
) -> None:
    aanvraag_id = world.dossier()
    rapport_id = uuid4()
    maatregelen = (_maatregel(), _maatregel())
    world.deliver(
        public.RapportOpgesteld(
            aanvraag_id=aanvraag_id,
            rapport_id=rapport_id,
            versie=1,
            aantal_maatregelen=2,
            maatregelen=maatregelen,
        )
    )
    world.deliver(
        public.RapportGoedgekeurd(
            aanvraag_id=aanvraag_id, rapport_id=rapport_id, versie=1, inhoud_hash="0a" * 32
        )
    )
    world.deliver(_uitgevoerd(aanvraag_id, rapport_id, maatregelen[0]), event_id="ev-1")
    world.deliver(_uitgevoerd(aanvraag_id, rapport_id, maatregelen[0]), event_id="ev-1")
    assert world.app.aanvraag(aanvraag_id).status == "ingediend"  # one of two

    world.deliver(_uitgevoerd(aanvraag_id, rapport_id, maatregelen[1]), event_id="ev-2")
    world.deliver(_uitgevoerd(aanvraag_id, rapport_id, maatregelen[1]), event_id="ev-2")

    assert world.app.aanvraag(aanvraag_id).status == "afgesloten"
    closed = [e for e in world.recorded() if isinstance(e, domain.DossierAfgesloten)]
    assert [
        (e.reden, e.maatregelen_totaal, e.maatregelen_uitgevoerd, e.causation_id) for e in closed
    ] == [("alle_maatregelen_uitgevoerd", 2, 2, "ev-2")]


def test_the_closing_policy_leaves_a_withdrawn_dossier_alone(world: World) -> None:
    aanvraag_id = world.dossier()
    world.app.trek_aanvraag_in(aanvraag_id, AANVRAGER)
    rapport_id = uuid4()
    maatregel = _maatregel()
    world.deliver(
        public.RapportOpgesteld(
            aanvraag_id=aanvraag_id,
            rapport_id=rapport_id,
            versie=1,
            aantal_maatregelen=1,
            maatregelen=(maatregel,),
        )
    )
    world.deliver(
        public.RapportGoedgekeurd(
            aanvraag_id=aanvraag_id, rapport_id=rapport_id, versie=1, inhoud_hash="0b" * 32
        )
    )

    world.deliver(_uitgevoerd(aanvraag_id, rapport_id, maatregel))

    assert world.app.aanvraag(aanvraag_id).status == "ingetrokken"
    assert world.names(aanvraag_id) == ["AanvraagOntvangen", "AanvraagIngetrokken"]


def test_a_destruction_deletes_the_kept_events_it_names_and_no_others(world: World) -> None:
    aanvraag_id = world.dossier()
    rapport_id = uuid4()
    maatregelen = (_maatregel(), _maatregel())
    world.deliver(
        public.RapportOpgesteld(
            aanvraag_id=aanvraag_id,
            rapport_id=rapport_id,
            versie=1,
            aantal_maatregelen=2,
            maatregelen=maatregelen,
        )
    )
    goedgekeurd = public.RapportGoedgekeurd(
        aanvraag_id=aanvraag_id, rapport_id=rapport_id, versie=1, inhoud_hash="0c" * 32
    )
    world.deliver(goedgekeurd, event_id="ev-goedgekeurd")
    uitgevoerd = world.delivery(_uitgevoerd(aanvraag_id, rapport_id, maatregelen[0]), "ev-1")
    assert world.app.noteer_uitvoering(uitgevoerd) == (2, 1)
    beheerder = as_actor(BEHEERDER, "beheerder")
    world.app.sluit_dossier_af(aanvraag_id, "gesloten_door_secretariaat", None, 0, 0, beheerder)

    world.app.vernietig(aanvraag_id, "RapportGoedgekeurd", ["ev-goedgekeurd"], NU, beheerder)

    # The approval is gone: no measures of an approved report to count.
    assert world.app.noteer_uitvoering(uitgevoerd) == (0, 0)
    # The report and the measure carried out were kept: an approval under a new id counts them.
    world.deliver(goedgekeurd, event_id="ev-goedgekeurd-2")
    assert world.app.noteer_uitvoering(uitgevoerd) == (2, 1)


# --- forgetting -----------------------------------------------------------------------------------


def test_forgetting_destroys_the_personal_data_once(world: World) -> None:
    app = world.app
    form = formulier()
    aanvraag_id = app.dien_aanvraag_in(form, AANVRAGER, idempotency_key="sleutel-3").aanvraag_id
    beheerder = as_actor(BEHEERDER, "beheerder")

    first = app.vergeet_persoonsgegevens(
        aanvraag_id, "verzoek_betrokkene", ["scheduling"], beheerder
    )
    again = app.vergeet_persoonsgegevens(aanvraag_id, "verzoek_betrokkene", [], beheerder)

    assert (first, again) == (True, False)
    with pytest.raises(Vergeten):
        app.persoonsgegevens(aanvraag_id)
    assert app.toegang(aanvraag_id) == (VERGETEN_HASH, "GM0363")
    (vergeten,) = [e for e in world.recorded() if isinstance(e, domain.PersoonsgegevensVergeten)]
    assert vergeten.diensten == ("intake", "scheduling")
    # The registration's idempotency key (a digest of the form) went too: the same form under
    # the same key is a new registration.
    anew = app.dien_aanvraag_in(form, AANVRAGER, idempotency_key="sleutel-3")
    assert (anew.replayed, anew.aanvraag_id != aanvraag_id) == (False, True)
