"""Approval's use cases, on the in-memory store and on PostgreSQL: the same tests, only the store
differs (``store``: ``memory`` by default, ``postgres`` on the session's test server).

They drive the application as its composition root builds it (``bootstrap.application``): the
reactions to assessment's events through the declared policies, intake's events through the
register's subscription, the decisions and the consent as the API calls them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import pytest

from services.approval import domain, policies, projections
from services.approval.application import Approval
from services.approval.bootstrap import application
from services.approval.domain import Beoordeling
from shared.contracts import events as public
from shared.contracts.registry import to_cloudevent
from shared.platform.access import (
    Refusals,
    ToegangGeweigerdVastgelegd,
    configure_pseudonyms,
    opaque_actor_id,
)
from shared.platform.auth import Principal, Refusal, Role
from shared.platform.consumer import Delivery
from shared.platform.errors import Conflict, NietGevonden
from shared.platform.eventstore import AlreadyProcessed
from shared.platform.memory import MemoryAccessLog
from shared.platform.model import Context, DomainEvent, FixedClock
from shared.platform.ports import AccessLog
from tests.usecases.conftest import STORES, store_env

NU = datetime(2026, 5, 11, 10, 0, tzinfo=UTC)
ORGANISATIE = "GM0363"
ADVISEUR = "p-" + "a" * 32
COLLEGA = "p-" + "c" * 32
BVA = "p-" + "b" * 32
BESTUURDER = "p-" + "d" * 32


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The environment of approval's event store: the library's in-memory store, or a fresh
    PostgreSQL database of the session's test server."""
    return store_env(str(request.param), "approval", request, tmp_path)


@dataclass
class World:
    """Approval on one store, with the feeds a running service would get."""

    app: Approval
    clock: FixedClock
    access_log: AccessLog

    def deliver(
        self, event: public.PublicEvent, *, actorid: str, event_id: str | None = None
    ) -> None:
        """Hand an event to its subscription's handler, as the consumer would."""
        envelope = to_cloudevent(
            event,
            id=event_id or str(uuid4()),
            source=f"urn:weerbaar:{event.service}",
            time=NU,
            actorid=actorid,
            actorrole="adviseur" if event.service == "assessment" else "aanvrager",
        )
        delivery = Delivery(envelope=envelope, event=event, stream_sequence=1, attempt=1)
        if event.service == "intake":
            projections.register_subscription(self.app.register).handler(delivery)
        else:
            policies.subscription(self.app, self.clock).handler(delivery)

    def dossier(self) -> UUID:
        """A dossier intake announced."""
        aanvraag_id = uuid4()
        self.deliver(
            public.AanvraagIngediend(
                aanvraag_id=aanvraag_id,
                ingediend_op=NU,
                ingediend_door=public.Partij.BESTUURDER,
                organisatie_code=ORGANISATIE,
                binnen_regeling=True,
                verhuizing_gepland=False,
            ),
            actorid="svc-intake",
        )
        return aanvraag_id

    def opgesteld(
        self, aanvraag_id: UUID, rapport_id: UUID, *, auteur: str = ADVISEUR, **kw: str
    ) -> None:
        """Assessment drafted version 1."""
        self.deliver(
            public.RapportOpgesteld(
                aanvraag_id=aanvraag_id,
                rapport_id=rapport_id,
                versie=1,
                aantal_maatregelen=0,
                maatregelen=(),
            ),
            actorid=auteur,
            **kw,
        )

    def ingediend(self, aanvraag_id: UUID, rapport_id: UUID, versie: int, **kw: str) -> str:
        """Assessment submitted a version; its content hash."""
        inhoud_hash = sha(f"{rapport_id}/{versie}")
        self.deliver(
            public.RapportTerToetsingAangeboden(
                aanvraag_id=aanvraag_id,
                rapport_id=rapport_id,
                versie=versie,
                inhoud_hash=inhoud_hash,
            ),
            actorid=ADVISEUR,
            **kw,
        )
        return inhoud_hash

    def submitted(self) -> tuple[UUID, UUID, str]:
        """A dossier with a report whose version 1 was drafted and submitted."""
        aanvraag_id = self.dossier()
        rapport_id = uuid4()
        self.opgesteld(aanvraag_id, rapport_id)
        return aanvraag_id, rapport_id, self.ingediend(aanvraag_id, rapport_id, 1)

    def recorded(self) -> list[DomainEvent]:
        """Every event approval's store holds, in order."""
        events = []
        for notification in self.app.recorder.select_notifications(1, 10_000):
            event = self.app.mapper.to_domain_event(notification)
            assert isinstance(event, DomainEvent)
            events.append(event)
        return events

    def names(self) -> list[str]:
        """The names of the recorded events."""
        return [type(event).__name__ for event in self.recorded()]


def as_actor(actor_id: str, role: str) -> Context:
    return Context(now=NU, actor_id=actor_id, actor_role=role)


@pytest.fixture
def world(store: dict[str, str], tmp_path: Path) -> Iterator[World]:
    app = application(store)
    configure_pseudonyms(tmp_path / "pseudonym.key")
    access_log: AccessLog = (
        MemoryAccessLog(app) if app.in_memory else Refusals(app, 60, per_source_per_minute=100)
    )
    try:
        yield World(app, FixedClock(NU), access_log)
    finally:
        app.close()


# --- the reactions to assessment's events --------------------------------------------------------


def test_a_submitted_version_is_ready_for_review(world: World) -> None:
    aanvraag_id, rapport_id, inhoud_hash = world.submitted()

    beoordeling = world.app.beoordeling(rapport_id)

    assert (beoordeling.aanvraag_id, beoordeling.status) == (aanvraag_id, "ter_toetsing")
    assert beoordeling.auteurs == frozenset({ADVISEUR})
    assert [(v.versie, v.inhoud_hash) for v in beoordeling.versies] == [(1, inhoud_hash)]


def test_a_redelivered_submission_has_one_effect(world: World) -> None:
    aanvraag_id = world.dossier()
    rapport_id = uuid4()
    world.opgesteld(aanvraag_id, rapport_id)
    before = world.app.max_notification_id()

    world.ingediend(aanvraag_id, rapport_id, 1, event_id="ev-submission-1")
    world.ingediend(aanvraag_id, rapport_id, 1, event_id="ev-submission-1")
    world.ingediend(aanvraag_id, rapport_id, 1, event_id="ev-submission-2")  # re-announced

    assert world.app.max_notification_id() == before + 1
    assert len(world.app.beoordeling(rapport_id).versies) == 1


def test_a_message_in_the_inbox_has_no_second_effect(world: World) -> None:
    # The inbox, not the rules, stops this one: the same message id with news in it.
    aanvraag_id = world.dossier()
    rapport_id = uuid4()
    world.opgesteld(aanvraag_id, rapport_id, event_id="ev-draft")
    before = world.app.max_notification_id()

    with pytest.raises(AlreadyProcessed):
        world.opgesteld(aanvraag_id, rapport_id, auteur=COLLEGA, event_id="ev-draft")

    assert world.app.max_notification_id() == before
    assert world.app.beoordeling(rapport_id).auteurs == frozenset({ADVISEUR})


def test_a_submission_before_the_draft_still_counts_its_author(world: World) -> None:
    aanvraag_id = world.dossier()
    rapport_id = uuid4()
    inhoud_hash = world.ingediend(aanvraag_id, rapport_id, 1)
    world.opgesteld(aanvraag_id, rapport_id)

    with pytest.raises(domain.VierOgen):
        world.app.keur_goed(rapport_id, 1, inhoud_hash, as_actor(ADVISEUR, "bva"))
    assert world.app.keur_goed(rapport_id, 1, inhoud_hash, as_actor(BVA, "bva")).status == (
        "goedgekeurd"
    )


# --- decisions -----------------------------------------------------------------------------------


def test_approval_hands_the_version_to_the_bestuurder_in_one_step(world: World) -> None:
    _, rapport_id, inhoud_hash = world.submitted()

    beoordeling = world.app.keur_goed(rapport_id, 1, inhoud_hash, as_actor(BVA, "bva"))

    assert beoordeling.status == "goedgekeurd"
    assert beoordeling.versie(1) is not None
    assert world.names()[-2:] == ["RapportGoedgekeurd", "RapportVerstrektAanBestuurder"]
    assert world.app.beoordeling(rapport_id) == beoordeling
    # Asked again, nothing changes and nothing is recorded.
    before = world.app.max_notification_id()
    world.app.keur_goed(rapport_id, 1, inhoud_hash, as_actor(BVA, "bva"))
    assert world.app.max_notification_id() == before


def test_a_rejection_keeps_its_reasons_and_a_revision_can_be_approved(world: World) -> None:
    aanvraag_id, rapport_id, v1 = world.submitted()

    afgekeurd = world.app.keur_af(
        rapport_id, 1, v1, ["Maatregel 2 ontbreekt.", "Onjuiste datum."], as_actor(BVA, "bva")
    )
    v2 = world.ingediend(aanvraag_id, rapport_id, 2)
    goedgekeurd = world.app.keur_goed(rapport_id, 2, v2, as_actor(BVA, "bva"))

    assert afgekeurd.status == "afgekeurd"
    eerste = goedgekeurd.versie(1)
    assert eerste is not None
    assert (eerste.besluit, eerste.redenen) == (
        "afgekeurd",
        ("Maatregel 2 ontbreekt.", "Onjuiste datum."),
    )
    assert (eerste.besloten_door, goedgekeurd.status) == (BVA, "goedgekeurd")
    rejections = [e for e in world.recorded() if isinstance(e, domain.RapportAfgekeurd)]
    assert [e.redenen for e in rejections] == [("Maatregel 2 ontbreekt.", "Onjuiste datum.")]


def test_a_hash_of_other_content_or_an_old_version_is_refused(world: World) -> None:
    aanvraag_id, rapport_id, v1 = world.submitted()
    world.app.keur_af(rapport_id, 1, v1, ["Onvolledig."], as_actor(BVA, "bva"))
    v2 = world.ingediend(aanvraag_id, rapport_id, 2)
    before = world.app.max_notification_id()

    with pytest.raises(Conflict):
        world.app.keur_goed(rapport_id, 2, sha("iets anders"), as_actor(BVA, "bva"))
    with pytest.raises(Conflict):
        world.app.keur_goed(rapport_id, 1, v1, as_actor(BVA, "bva"))

    assert world.app.max_notification_id() == before
    assert world.app.keur_goed(rapport_id, 2, v2, as_actor(BVA, "bva")).status == "goedgekeurd"


# --- four-eyes and the access log ----------------------------------------------------------------


def test_the_author_cannot_decide_and_the_refusal_is_on_the_dossiers_record(
    world: World,
) -> None:
    aanvraag_id, rapport_id, inhoud_hash = world.submitted()
    before = world.app.max_notification_id()

    with pytest.raises(domain.VierOgen):
        world.app.keur_goed(rapport_id, 1, inhoud_hash, as_actor(ADVISEUR, "bva"))
    with pytest.raises(domain.VierOgen):
        world.app.keur_af(rapport_id, 1, inhoud_hash, ["Zelf."], as_actor(ADVISEUR, "bva"))
    assert world.app.max_notification_id() == before

    # The API answers 403 vier_ogen and puts the refusal on record, on the report's dossier.
    refusal = Refusal(
        actie="POST /rapporten/{rapport_id}/goedkeuren",
        reason="vier_ogen",
        status=403,
        principal=Principal(sub="adviseur-1", roles=frozenset({Role.bva})),
        aanvraag_id=None,
        ids={"rapport_id": rapport_id},
    )
    world.access_log(world.app.with_dossier(refusal))

    (recorded,) = world.recorded()[before:]
    assert isinstance(recorded, ToegangGeweigerdVastgelegd)
    assert (recorded.aanvraag_id, recorded.reden, recorded.status_code) == (
        aanvraag_id,
        "vier_ogen",
        403,
    )
    assert recorded.actor_id == opaque_actor_id("adviseur-1")
    assert world.app.beoordeling(rapport_id).status == "ter_toetsing"


def test_a_colleague_who_revised_the_report_cannot_approve_it(world: World) -> None:
    aanvraag_id, rapport_id, _ = world.submitted()
    world.deliver(
        public.RapportHerzien(
            aanvraag_id=aanvraag_id,
            rapport_id=rapport_id,
            versie=2,
            aantal_maatregelen=0,
            maatregelen=(),
        ),
        actorid=COLLEGA,
    )
    v2 = world.ingediend(aanvraag_id, rapport_id, 2)

    with pytest.raises(domain.VierOgen):
        world.app.keur_goed(rapport_id, 2, v2, as_actor(COLLEGA, "bva"))


# --- change: load, decide, record, again when another writer came first ------------------------


def test_a_decision_that_lost_to_another_writer_is_taken_again_on_what_is_there_now(
    world: World,
) -> None:
    aanvraag_id, rapport_id, inhoud_hash = world.submitted()
    seen: list[frozenset[str]] = []

    def approve_while_the_colleague_revises(found: Beoordeling | None) -> list[DomainEvent]:
        assert found is not None
        seen.append(found.auteurs)
        if len(seen) == 1:  # between this load and its record, the colleague's revision lands
            world.deliver(
                public.RapportHerzien(
                    aanvraag_id=aanvraag_id,
                    rapport_id=rapport_id,
                    versie=2,
                    aantal_maatregelen=0,
                    maatregelen=(),
                ),
                actorid=COLLEGA,
            )
        return domain.keur_goed(found, 1, inhoud_hash, as_actor(COLLEGA, "bva"))

    with pytest.raises(domain.VierOgen):
        world.app.change(rapport_id, approve_while_the_colleague_revises, project=domain.project)

    assert seen == [frozenset({ADVISEUR}), frozenset({ADVISEUR, COLLEGA})]
    assert world.app.beoordeling(rapport_id).status == "ter_toetsing"


# --- consent -------------------------------------------------------------------------------------


def test_consent_refused_then_given_releases_to_the_organisation(world: World) -> None:
    _, rapport_id, inhoud_hash = world.submitted()
    world.app.keur_goed(rapport_id, 1, inhoud_hash, as_actor(BVA, "bva"))

    bestuurder = as_actor(BESTUURDER, "bestuurder")

    geweigerd = world.app.stem_in(rapport_id, False, ORGANISATIE, bestuurder)
    gegeven = world.app.stem_in(rapport_id, True, ORGANISATIE, bestuurder)

    assert (geweigerd.status, gegeven.status) == ("instemming_geweigerd", "vrijgegeven")
    released = [e for e in world.recorded() if isinstance(e, domain.RapportVrijgegeven)]
    assert [(e.versie, e.organisatie_code) for e in released] == [(1, ORGANISATIE)]
    with pytest.raises(Conflict):
        world.app.stem_in(rapport_id, False, ORGANISATIE, bestuurder)


def test_consent_before_approval_is_refused(world: World) -> None:
    _, rapport_id, _ = world.submitted()

    with pytest.raises(Conflict) as refused:
        world.app.stem_in(rapport_id, True, ORGANISATIE, as_actor(BESTUURDER, "bestuurder"))

    assert refused.value.code == "niet_goedgekeurd"


# --- the dossier register ------------------------------------------------------------------------


def test_a_withdrawn_dossier_takes_no_more_decisions(world: World) -> None:
    aanvraag_id, rapport_id, inhoud_hash = world.submitted()
    world.deliver(
        public.AanvraagIngetrokken(
            aanvraag_id=aanvraag_id, ingetrokken_op=NU, door_rol=public.Rol.BESTUURDER
        ),
        actorid="svc-intake",
    )

    with pytest.raises(Conflict) as refused:
        world.app.keur_goed(rapport_id, 1, inhoud_hash, as_actor(BVA, "bva"))

    assert refused.value.code == "dossier_ingetrokken"


def test_an_unknown_report_or_dossier_is_not_found(world: World) -> None:
    with pytest.raises(NietGevonden):
        world.app.keur_goed(uuid4(), 1, sha("x"), as_actor(BVA, "bva"))
    rapport_id = uuid4()
    world.opgesteld(uuid4(), rapport_id)  # a dossier intake never announced
    inhoud_hash = world.ingediend(world.app.beoordeling(rapport_id).aanvraag_id, rapport_id, 1)
    with pytest.raises(NietGevonden):
        world.app.keur_goed(rapport_id, 1, inhoud_hash, as_actor(BVA, "bva"))
