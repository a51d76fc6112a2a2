"""Approval on real PostgreSQL: the BVA's decisions, four-eyes, consent and release.

Assessment's and intake's public events are fed to approval's consumer handlers as the consumers
would deliver them; intake's party check is a fake (FakeParties); the API runs in a TestClient.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from services.approval.bootstrap import bootstrap
from services.approval.gateway import to_public
from shared.contracts import events as public
from shared.contracts.registry import to_cloudevent
from shared.platform.access import opaque_actor_id
from shared.platform.auth import Principal, Role
from shared.platform.consumer import Delivery
from shared.platform.errors import NietGevonden
from shared.platform.model import DomainEvent, FixedClock
from shared.platform.parties import DossierParties, Partijen
from shared.platform.runtime import Components
from shared.platform.settings import Settings
from tests.support import token

pytestmark = pytest.mark.integration

NU = datetime(2026, 5, 11, 10, 0, tzinfo=UTC)
ORGANISATIE = "GM0363"
ADVISEUR = "adv-1"
BVA = "bva-1"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class FakeParties(DossierParties):
    """Intake's answer for the dossiers of the test: one bestuurder e-mail and one werkgever."""

    def __init__(self) -> None:
        self.dossiers: dict[UUID, str] = {}

    def of(self, aanvraag_id: UUID, principal: Principal) -> Partijen:
        """The parties this principal is in the dossier."""
        if aanvraag_id not in self.dossiers:
            raise NietGevonden("Onbekend dossier.")
        partijen = set()
        if principal.has_role(Role.bestuurder) and principal.email == self.dossiers[aanvraag_id]:
            partijen.add("bestuurder")
        if principal.has_role(Role.werkgever) and principal.organisatie == ORGANISATIE:
            partijen.add("werkgever")
        return Partijen(partijen=frozenset(partijen), organisatie_code=ORGANISATIE)


@dataclass
class World:
    """The approval service of one test, with helpers to feed events and call its API."""

    settings: Settings
    components: Components
    parties: FakeParties
    client: TestClient

    def deliver(
        self, event: public.PublicEvent, *, actorid: str, event_id: str | None = None
    ) -> None:
        """Hand an event to the subscription that takes its subject, as the consumer would."""
        envelope = to_cloudevent(
            event,
            id=event_id or str(uuid4()),
            source=f"urn:weerbaar:{event.service}",
            time=NU,
            actorid=actorid,
            actorrole="adviseur" if event.service == "assessment" else "aanvrager",
        )
        purpose = "rapporten" if event.service == "assessment" else "register"
        (subscription,) = [s for s in self.components.subscriptions if s.purpose == purpose]
        subscription.handler(Delivery(envelope=envelope, event=event, stream_sequence=1, attempt=1))

    def dossier(self) -> UUID:
        """A dossier intake announced, with a bestuurder the fake parties know."""
        aanvraag_id = uuid4()
        self.parties.dossiers[aanvraag_id] = f"bestuurder.{aanvraag_id.hex[:8]}@example.org"
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

    def rapport(self, aanvraag_id: UUID, *, auteur: str = ADVISEUR) -> UUID:
        """A drafted report (RapportOpgesteld, version 1)."""
        rapport_id = uuid4()
        self.deliver(
            public.RapportOpgesteld(
                aanvraag_id=aanvraag_id,
                rapport_id=rapport_id,
                versie=1,
                aantal_maatregelen=0,
                maatregelen=(),
            ),
            actorid=auteur,
        )
        return rapport_id

    def dien_in(
        self, aanvraag_id: UUID, rapport_id: UUID, versie: int, *, auteur: str = ADVISEUR
    ) -> str:
        """Assessment submitted a version; returns its content hash."""
        inhoud_hash = sha(f"{rapport_id}/{versie}")
        self.deliver(
            public.RapportTerToetsingAangeboden(
                aanvraag_id=aanvraag_id,
                rapport_id=rapport_id,
                versie=versie,
                inhoud_hash=inhoud_hash,
            ),
            actorid=auteur,
        )
        return inhoud_hash

    def bestuurder(self, aanvraag_id: UUID) -> dict[str, str]:
        """The token of the dossier's bestuurder."""
        return token(
            self.settings.data_dir,
            "bestuurder",
            sub="best-1",
            email=self.parties.dossiers[aanvraag_id],
        )

    def as_role(self, role: str, sub: str, **claims: Any) -> dict[str, str]:
        """A token for a role."""
        return token(self.settings.data_dir, role, sub=sub, **claims)

    def published(self) -> list[public.PublicEvent]:
        """Every public event approval's outbox holds, in order."""
        app = self.components.app
        announced: list[public.PublicEvent] = []
        for notification in app.recorder.select_notifications(1, 10_000):
            event = app.mapper.to_domain_event(notification)
            assert isinstance(event, DomainEvent)
            announced.extend(to_public(event))
        return announced

    def decisions(self) -> list[str]:
        """The names of the public events other than refusals, in order."""
        return [
            type(e).__name__ for e in self.published() if not isinstance(e, public.ToegangGeweigerd)
        ]

    def refusals(self) -> list[public.ToegangGeweigerd]:
        """The recorded refusals."""
        return [e for e in self.published() if isinstance(e, public.ToegangGeweigerd)]


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    parties = FakeParties()
    components = bootstrap(settings, FixedClock(NU), parties=parties)
    with TestClient(components.api) as client:
        yield World(settings, components, parties, client)


def submitted(world: World, versie: int = 1) -> tuple[UUID, UUID, str]:
    """A dossier with a report whose versions up to `versie` were submitted."""
    aanvraag_id = world.dossier()
    rapport_id = world.rapport(aanvraag_id)
    inhoud_hash = ""
    for v in range(1, versie + 1):
        inhoud_hash = world.dien_in(aanvraag_id, rapport_id, v)
    return aanvraag_id, rapport_id, inhoud_hash


def approve(world: World, rapport_id: UUID, versie: int, inhoud_hash: str, sub: str = BVA) -> Any:
    return world.client.post(
        f"/rapporten/{rapport_id}/goedkeuren",
        json={"versie": versie, "inhoud_hash": inhoud_hash},
        headers=world.as_role("bva", sub),
    )


def reject(
    world: World,
    rapport_id: UUID,
    versie: int,
    inhoud_hash: str,
    redenen: list[str],
    sub: str = BVA,
) -> Any:
    return world.client.post(
        f"/rapporten/{rapport_id}/afkeuren",
        json={"versie": versie, "inhoud_hash": inhoud_hash, "redenen": redenen},
        headers=world.as_role("bva", sub),
    )


def consent(world: World, aanvraag_id: UUID, rapport_id: UUID, instemming: bool) -> Any:
    return world.client.post(
        f"/rapporten/{rapport_id}/instemming",
        json={"instemming": instemming},
        headers=world.bestuurder(aanvraag_id),
    )


# --- four-eyes -----------------------------------------------------------------------------------


def test_the_author_cannot_approve_or_reject_and_the_attempt_is_recorded(world: World) -> None:
    aanvraag_id, rapport_id, inhoud_hash = submitted(world)

    approved = approve(world, rapport_id, 1, inhoud_hash, sub=ADVISEUR)
    rejected = reject(world, rapport_id, 1, inhoud_hash, ["Zelf afgekeurd."], sub=ADVISEUR)

    assert (approved.status_code, approved.json()["code"]) == (403, "vier_ogen")
    assert (rejected.status_code, rejected.json()["code"]) == (403, "vier_ogen")
    assert world.decisions() == []
    refusals = world.refusals()
    assert [(r.aanvraag_id, r.reden, r.status_code) for r in refusals] == [
        (aanvraag_id, "vier_ogen", 403),
        (aanvraag_id, "vier_ogen", 403),
    ]
    assert refusals[0].actie == "POST /rapporten/{rapport_id}/goedkeuren"
    # Another reviewer may.
    assert approve(world, rapport_id, 1, inhoud_hash).status_code == 200


def test_the_reviews_tell_a_reviewer_whether_four_eyes_keeps_them_from_deciding(
    world: World,
) -> None:
    _, rapport_id, _ = submitted(world)

    def vier_ogen(sub: str) -> Any:
        response = world.client.get(
            f"/rapporten/{rapport_id}/beoordelingen", headers=world.as_role("bva", sub)
        )
        assert response.status_code == 200
        return response.json()["vier_ogen"]

    assert vier_ogen(ADVISEUR) is True
    assert vier_ogen(BVA) is False


def test_a_colleague_who_revised_the_report_cannot_approve_it(world: World) -> None:
    aanvraag_id, rapport_id, _ = submitted(world)
    world.deliver(
        public.RapportHerzien(
            aanvraag_id=aanvraag_id,
            rapport_id=rapport_id,
            versie=2,
            aantal_maatregelen=0,
            maatregelen=(),
        ),
        actorid="adv-2",
    )
    inhoud_hash = world.dien_in(aanvraag_id, rapport_id, 2)

    response = approve(world, rapport_id, 2, inhoud_hash, sub="adv-2")

    assert response.status_code == 403
    assert world.decisions() == []


# --- the version and its content -----------------------------------------------------------------


def test_approval_hands_the_version_to_the_bestuurder_in_one_step(world: World) -> None:
    aanvraag_id, rapport_id, inhoud_hash = submitted(world)

    response = approve(world, rapport_id, 1, inhoud_hash)

    assert response.status_code == 200
    assert response.json() == {
        "rapport_id": str(rapport_id),
        "aanvraag_id": str(aanvraag_id),
        "status": "goedgekeurd",
        "laatste_versie": 1,
        "goedgekeurde_versie": 1,
        "instemming": None,
        "vrijgegeven_versie": None,
    }
    assert world.published() == [
        public.RapportGoedgekeurd(
            aanvraag_id=aanvraag_id, rapport_id=rapport_id, versie=1, inhoud_hash=inhoud_hash
        ),
        public.RapportVerstrektAanBestuurder(
            aanvraag_id=aanvraag_id, rapport_id=rapport_id, versie=1
        ),
    ]
    # The same approval again: the same answer, nothing recorded.
    again = approve(world, rapport_id, 1, inhoud_hash, sub="bva-2")
    assert (again.status_code, again.json()) == (200, response.json())
    assert len(world.published()) == 2


def test_an_older_version_cannot_be_decided(world: World) -> None:
    _, rapport_id, _ = submitted(world, versie=2)

    approved = approve(world, rapport_id, 1, sha(f"{rapport_id}/1"))
    rejected = reject(world, rapport_id, 1, sha(f"{rapport_id}/1"), ["Oud."])

    assert (approved.status_code, approved.json()["code"]) == (409, "niet_laatste_versie")
    assert (rejected.status_code, rejected.json()["code"]) == (409, "niet_laatste_versie")
    assert "niet de laatste versie" in approved.json()["detail"]
    assert world.decisions() == []


def test_a_hash_of_other_content_is_refused(world: World) -> None:
    _, rapport_id, _ = submitted(world)

    response = approve(world, rapport_id, 1, sha("andere inhoud"))

    assert (response.status_code, response.json()["code"]) == (409, "inhoud_gewijzigd")
    assert "inhoud is gewijzigd" in response.json()["detail"]
    assert world.decisions() == []


def test_reject_revise_resubmit_approve(world: World) -> None:
    aanvraag_id, rapport_id, hash_v1 = submitted(world)
    redenen = ["Domein Verplaatsen ontbreekt.", "Maatregel 3 zonder prioriteit."]

    rejected = reject(world, rapport_id, 1, hash_v1, redenen)
    assert (rejected.status_code, rejected.json()["status"]) == (200, "afgekeurd")
    assert reject(world, rapport_id, 1, hash_v1, redenen).status_code == 200  # no second effect
    too_late = approve(world, rapport_id, 1, hash_v1)
    assert (too_late.status_code, too_late.json()["code"]) == (409, "al_afgekeurd")

    # The adviseur reads the reasons, revises and submits version 2.
    seen = world.client.get(
        f"/rapporten/{rapport_id}/beoordelingen", headers=world.as_role("adviseur", ADVISEUR)
    )
    assert seen.status_code == 200
    (versie_1,) = seen.json()["versies"]
    assert (versie_1["versie"], versie_1["besluit"], versie_1["redenen"]) == (
        1,
        "afgekeurd",
        redenen,
    )
    assert (versie_1["inhoud_hash"], versie_1["besloten_door"]) == (hash_v1, opaque_actor_id(BVA))
    world.deliver(
        public.RapportHerzien(
            aanvraag_id=aanvraag_id,
            rapport_id=rapport_id,
            versie=2,
            aantal_maatregelen=0,
            maatregelen=(),
        ),
        actorid=ADVISEUR,
    )
    hash_v2 = world.dien_in(aanvraag_id, rapport_id, 2)
    status = world.client.get(
        f"/rapporten/{rapport_id}/status", headers=world.as_role("bva", BVA)
    ).json()
    assert (status["status"], status["laatste_versie"]) == ("ter_toetsing", 2)

    approved = approve(world, rapport_id, 2, hash_v2)

    assert (approved.status_code, approved.json()["goedgekeurde_versie"]) == (200, 2)
    assert world.decisions() == [
        "RapportAfgekeurd",
        "RapportGoedgekeurd",
        "RapportVerstrektAanBestuurder",
    ]
    afgekeurd = world.published()[0]
    assert isinstance(afgekeurd, public.RapportAfgekeurd)
    assert (afgekeurd.versie, afgekeurd.aantal_redenen) == (1, 2)
    # The reasons never leave approval: not in any public event.
    assert not any("Verplaatsen ontbreekt" in e.model_dump_json() for e in world.published())
    versies = world.client.get(
        f"/rapporten/{rapport_id}/beoordelingen", headers=world.as_role("compliance", "aud-1")
    ).json()["versies"]
    assert [(v["versie"], v["besluit"]) for v in versies] == [(1, "afgekeurd"), (2, "goedgekeurd")]


@pytest.mark.parametrize(
    "redenen",
    [[], ["x"] * 21, [""], ["x" * 2001], "één reden", [42]],
    ids=["none", "too_many", "empty", "too_long", "not_a_list", "not_text"],
)
def test_a_rejection_needs_1_to_20_reasons_of_1_to_2000_characters(
    world: World, redenen: Any
) -> None:
    _, rapport_id, inhoud_hash = submitted(world)

    response = reject(world, rapport_id, 1, inhoud_hash, redenen)

    assert response.status_code == 422
    assert world.decisions() == []


# --- consent -------------------------------------------------------------------------------------


def test_consent_refused_then_given_later_releases_with_the_organisation(world: World) -> None:
    aanvraag_id, rapport_id, inhoud_hash = submitted(world)

    early = consent(world, aanvraag_id, rapport_id, True)
    assert (early.status_code, early.json()["code"]) == (409, "niet_goedgekeurd")
    assert approve(world, rapport_id, 1, inhoud_hash).status_code == 200

    refused = consent(world, aanvraag_id, rapport_id, False)
    assert (refused.status_code, refused.json()["status"]) == (200, "instemming_geweigerd")
    assert consent(world, aanvraag_id, rapport_id, False).status_code == 200  # recorded once
    given = consent(world, aanvraag_id, rapport_id, True)
    assert given.status_code == 200
    assert (given.json()["status"], given.json()["vrijgegeven_versie"]) == ("vrijgegeven", 1)

    assert world.decisions() == [
        "RapportGoedgekeurd",
        "RapportVerstrektAanBestuurder",
        "InstemmingGeweigerd",
        "InstemmingGegeven",
        "RapportVrijgegeven",
    ]
    assert world.published()[-1] == public.RapportVrijgegeven(
        aanvraag_id=aanvraag_id, rapport_id=rapport_id, versie=1, organisatie_code=ORGANISATIE
    )
    # Consenting again changes nothing; a release cannot be undone.
    assert consent(world, aanvraag_id, rapport_id, True).status_code == 200
    undo = consent(world, aanvraag_id, rapport_id, False)
    assert (undo.status_code, undo.json()["code"]) == (409, "al_vrijgegeven")
    assert "al vrijgegeven" in undo.json()["detail"]
    assert len(world.decisions()) == 5


def test_consent_must_be_a_json_boolean(world: World) -> None:
    aanvraag_id, rapport_id, inhoud_hash = submitted(world)
    approve(world, rapport_id, 1, inhoud_hash)

    response = world.client.post(
        f"/rapporten/{rapport_id}/instemming",
        json={"instemming": "ja"},
        headers=world.bestuurder(aanvraag_id),
    )

    assert response.status_code == 422
    assert world.decisions() == ["RapportGoedgekeurd", "RapportVerstrektAanBestuurder"]


def test_a_bestuurder_of_another_dossier_gets_404_and_the_attempt_is_recorded(
    world: World,
) -> None:
    aanvraag_id, rapport_id, inhoud_hash = submitted(world)
    approve(world, rapport_id, 1, inhoud_hash)
    stranger = world.as_role("bestuurder", "best-9", email="iemand.anders@example.org")

    response = world.client.post(
        f"/rapporten/{rapport_id}/instemming", json={"instemming": True}, headers=stranger
    )
    status = world.client.get(f"/rapporten/{rapport_id}/status", headers=stranger)

    assert response.status_code == 404
    assert status.status_code == 404
    assert [(r.aanvraag_id, r.reden, r.status_code) for r in world.refusals()] == [
        (aanvraag_id, "niet_eigen_dossier", 404),
        (aanvraag_id, "niet_eigen_dossier", 404),
    ]
    assert world.decisions() == ["RapportGoedgekeurd", "RapportVerstrektAanBestuurder"]


# --- who sees the status -------------------------------------------------------------------------


def test_status_for_staff_and_the_dossiers_parties_only(world: World) -> None:
    aanvraag_id, rapport_id, _ = submitted(world)
    url = f"/rapporten/{rapport_id}/status"

    for headers in (
        world.as_role("bva", BVA),
        world.as_role("adviseur", ADVISEUR),
        world.as_role("compliance", "aud-1"),
        world.bestuurder(aanvraag_id),
        world.as_role("werkgever", "wg-1", organisatie=ORGANISATIE),
    ):
        response = world.client.get(url, headers=headers)
        assert response.status_code == 200
        assert response.json()["status"] == "ter_toetsing"

    other_werkgever = world.as_role("werkgever", "wg-2", organisatie="GM0014")
    assert world.client.get(url, headers=other_werkgever).status_code == 404
    assert world.client.get(url, headers=world.as_role("secretariaat", "sec-1")).status_code == 403
    bestuurder_reads_reasons = world.client.get(
        f"/rapporten/{rapport_id}/beoordelingen", headers=world.bestuurder(aanvraag_id)
    )
    assert bestuurder_reads_reasons.status_code == 403


def test_an_unknown_report_is_404(world: World) -> None:
    unknown = uuid4()
    bva = world.as_role("bva", BVA)

    assert world.client.get(f"/rapporten/{unknown}/beoordelingen", headers=bva).status_code == 404
    assert world.client.get(f"/rapporten/{unknown}/status", headers=bva).status_code == 404
    assert approve(world, unknown, 1, sha("x")).status_code == 404


# --- the dossier's life --------------------------------------------------------------------------


def test_a_withdrawn_dossier_takes_no_more_decisions(world: World) -> None:
    aanvraag_id, rapport_id, inhoud_hash = submitted(world)
    world.deliver(
        public.AanvraagIngetrokken(
            aanvraag_id=aanvraag_id, ingetrokken_op=NU, door_rol=public.Rol.BESTUURDER
        ),
        actorid="best-1",
    )

    approved = approve(world, rapport_id, 1, inhoud_hash)
    rejected = reject(world, rapport_id, 1, inhoud_hash, ["Te laat."])

    assert (approved.status_code, approved.json()["code"]) == (409, "dossier_ingetrokken")
    assert (rejected.status_code, rejected.json()["code"]) == (409, "dossier_ingetrokken")
    assert world.decisions() == []


def test_a_closed_dossier_takes_no_consent(world: World) -> None:
    aanvraag_id, rapport_id, inhoud_hash = submitted(world)
    approve(world, rapport_id, 1, inhoud_hash)
    world.deliver(
        public.DossierAfgesloten(
            aanvraag_id=aanvraag_id,
            afgesloten_op=NU,
            reden=public.AfsluitReden.GESLOTEN_DOOR_SECRETARIAAT,
            maatregelen_totaal=0,
            maatregelen_uitgevoerd=0,
        ),
        actorid="sec-1",
    )

    response = consent(world, aanvraag_id, rapport_id, True)

    assert (response.status_code, response.json()["code"]) == (409, "dossier_afgesloten")
    assert world.decisions() == ["RapportGoedgekeurd", "RapportVerstrektAanBestuurder"]


def test_a_redelivered_submission_has_one_effect(world: World) -> None:
    aanvraag_id = world.dossier()
    rapport_id = world.rapport(aanvraag_id)
    submission = public.RapportTerToetsingAangeboden(
        aanvraag_id=aanvraag_id, rapport_id=rapport_id, versie=1, inhoud_hash=sha("v1")
    )
    events_before = world.components.app.max_notification_id()

    world.deliver(submission, actorid=ADVISEUR, event_id="ev-submission-1")
    world.deliver(submission, actorid=ADVISEUR, event_id="ev-submission-1")
    world.deliver(submission, actorid=ADVISEUR, event_id="ev-submission-2")  # a re-announcement

    assert world.components.app.max_notification_id() == events_before + 1
    assert approve(world, rapport_id, 1, sha("v1")).status_code == 200


def test_a_submission_that_arrives_before_the_draft_still_counts(world: World) -> None:
    aanvraag_id = world.dossier()
    rapport_id = uuid4()
    inhoud_hash = world.dien_in(aanvraag_id, rapport_id, 1)
    world.deliver(
        public.RapportOpgesteld(
            aanvraag_id=aanvraag_id,
            rapport_id=rapport_id,
            versie=1,
            aantal_maatregelen=0,
            maatregelen=(),
        ),
        actorid=ADVISEUR,
    )

    assert approve(world, rapport_id, 1, inhoud_hash, sub=ADVISEUR).status_code == 403
    assert approve(world, rapport_id, 1, inhoud_hash).status_code == 200
