"""Assessment on real PostgreSQL: the report, its versions and who may read them, PKVW, measures.

Intake's, scheduling's and approval's public events are fed to assessment's consumer handlers as
the consumers would deliver them; intake's party check is a fake (FakeParties); the API runs in a
TestClient on the service that ``bootstrap`` builds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from psycopg.sql import SQL

from services.assessment.application import Assessment
from services.assessment.bootstrap import bootstrap
from services.assessment.domain import BesluitTeVroeg, Concept, RapportIngezienVastgelegd
from services.assessment.gateway import to_public
from shared.contracts import events as public
from shared.contracts.registry import to_cloudevent
from shared.platform.access import opaque_actor_id
from shared.platform.auth import Principal, Role
from shared.platform.consumer import Delivery, Poison
from shared.platform.errors import NietGevonden
from shared.platform.eventstore import CommitInDoubt
from shared.platform.model import Context, DomainEvent, FixedClock
from shared.platform.parties import DossierParties, Partijen
from shared.platform.runtime import Components
from shared.platform.settings import Settings
from tests.support import token

pytestmark = pytest.mark.integration

NU = datetime(2026, 5, 11, 10, 0, tzinfo=UTC)
ORGANISATIE = "GM0363"
ANDERE_ORGANISATIE = "GM0599"


class FakeParties(DossierParties):
    """Intake's answer for the test's dossiers: one bestuurder e-mail each, one werkgever."""

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


def concept(tag: str = "", *maatregelen: dict[str, Any]) -> dict[str, Any]:
    """A report body with distinctive text (so a leak is easy to find)."""
    return {
        "bevindingen": {
            "werk": f"Bevinding werk {tag}: dreigmails via het algemene adres.",
            "wonen": f"Bevinding wonen {tag}: achterdeur zonder cilinderslot — één risico.",
            "informatie": f"Bevinding informatie {tag}: adres vindbaar via het kadaster.",
            "verplaatsen": f"Bevinding verplaatsen {tag}: vaste route naar het stadhuis.",
        },
        "maatregelen": list(maatregelen)
        or [
            maatregel("wonen", "met_kosten", "werkgever", f"Inbraakwerend slot {tag}"),
            maatregel("informatie", "kosteloos", "bestuurder", f"Adres afschermen {tag}"),
        ],
    }


def maatregel(
    domein: str, kosten: str, uitvoerder: str, omschrijving: str, prioriteit: str = "hoog"
) -> dict[str, Any]:
    """One measure of a report body."""
    return {
        "domein": domein,
        "omschrijving": omschrijving,
        "kosten": kosten,
        "uitvoerder": uitvoerder,
        "prioriteit": prioriteit,
    }


def canonical_sha256(inhoud: dict[str, Any]) -> str:
    """The documented hash: sha256 of the JSON with sorted keys, no white space, UTF-8."""
    text = json.dumps(inhoud, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class World:
    """The assessment service of one test, with helpers to feed events and call its API."""

    settings: Settings
    components: Components
    parties: FakeParties
    clock: FixedClock
    client: TestClient

    @property
    def app(self) -> Assessment:
        """The service's application."""
        assert isinstance(self.components.app, Assessment)
        return self.components.app

    # --- feeding other services' events ----------------------------------------------------------

    def deliver(self, event: public.PublicEvent, *, event_id: str | None = None) -> None:
        """Hand an event to the subscription that takes its type, as the consumer would."""
        envelope = to_cloudevent(
            event,
            id=event_id or str(uuid4()),
            source=f"urn:weerbaar:{event.service}",
            time=NU,
            actorid=f"svc-{event.service}",
            actorrole="systeem",
        )
        (subscription,) = [
            s
            for s in self.components.subscriptions
            if any(subject.split(".")[2] == event.event_name for subject in s.subjects)
        ]
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
            )
        )
        return aanvraag_id

    def gesprek(self, aanvraag_id: UUID, soort: public.AfspraakSoort, **kw: Any) -> None:
        """Scheduling reports a conversation held."""
        self.deliver(
            public.GesprekGevoerd(
                aanvraag_id=aanvraag_id, afspraak_id=uuid4(), soort=soort, gevoerd_op=NU
            ),
            **kw,
        )

    def woningscan(self, aanvraag_id: UUID) -> None:
        """Scheduling reports the woningscan done."""
        self.deliver(
            public.WoningscanUitgevoerd(
                aanvraag_id=aanvraag_id, afspraak_id=uuid4(), uitgevoerd_op=NU
            )
        )

    def onderzocht(self) -> UUID:
        """A dossier whose conversations and woningscan are done."""
        aanvraag_id = self.dossier()
        self.gesprek(aanvraag_id, public.AfspraakSoort.GESPREK_WERKGEVER)
        self.gesprek(aanvraag_id, public.AfspraakSoort.GESPREK_BESTUURDER)
        self.woningscan(aanvraag_id)
        return aanvraag_id

    def besluit(self, soort: type[public.PublicEvent], rapport_id: UUID, versie: int) -> None:
        """Approval's decision about a version, as approval would publish it."""
        stand = self.stand(rapport_id)
        fields: dict[str, Any] = {
            "aanvraag_id": UUID(stand["aanvraag_id"]),
            "rapport_id": rapport_id,
            "versie": versie,
        }
        if soort in (public.RapportGoedgekeurd, public.RapportAfgekeurd):
            fields["inhoud_hash"] = self.hash_van(rapport_id, versie)
        if soort is public.RapportAfgekeurd:
            fields["aantal_redenen"] = 1
        if soort is public.RapportVrijgegeven:
            fields["organisatie_code"] = ORGANISATIE
        self.deliver(soort(**fields))

    # --- tokens ----------------------------------------------------------------------------------

    def als(self, role: str, sub: str | None = None, **claims: Any) -> dict[str, str]:
        """A token for a role."""
        return token(self.settings.data_dir, role, sub=sub or f"{role}-1", **claims)

    def bestuurder(self, aanvraag_id: UUID) -> dict[str, str]:
        """The token of the dossier's bestuurder."""
        return self.als("bestuurder", "best-1", email=self.parties.dossiers[aanvraag_id])

    def werkgever(self, organisatie: str = ORGANISATIE) -> dict[str, str]:
        """The token of a werkgever."""
        return self.als("werkgever", "wg-1", organisatie=organisatie)

    # --- the API ---------------------------------------------------------------------------------

    def stel_op(self, aanvraag_id: UUID, body: dict[str, Any] | None = None, **kw: Any) -> Response:
        """POST the report as the adviseur."""
        headers = {**self.als("adviseur", "adv-1"), **kw.pop("headers", {})}
        return self.client.post(
            f"/aanvragen/{aanvraag_id}/rapport", json=body or concept(), headers=headers
        )

    def nieuw_rapport(self, body: dict[str, Any] | None = None) -> tuple[UUID, UUID]:
        """A dossier with a drafted report."""
        aanvraag_id = self.onderzocht()
        response = self.stel_op(aanvraag_id, body)
        assert response.status_code == 201, response.text
        return aanvraag_id, UUID(response.json()["rapport_id"])

    def herzie(self, rapport_id: UUID, body: dict[str, Any]) -> Response:
        """PUT a new version as the adviseur."""
        return self.client.put(
            f"/rapporten/{rapport_id}", json=body, headers=self.als("adviseur", "adv-1")
        )

    def dien_in(self, rapport_id: UUID) -> Response:
        """Submit the current version as the adviseur."""
        return self.client.post(
            f"/rapporten/{rapport_id}/indienen", headers=self.als("adviseur", "adv-1")
        )

    def lees(
        self, rapport_id: UUID, headers: dict[str, str], versie: int | None = None
    ) -> Response:
        """GET a version of the report."""
        params = {} if versie is None else {"versie": versie}
        return self.client.get(f"/rapporten/{rapport_id}", headers=headers, params=params)

    def stand(self, rapport_id: UUID) -> dict[str, Any]:
        """The report's state (no content) as staff see it."""
        aanvraag_id = self.app.dossier_van_rapport(rapport_id)
        response = self.client.get(
            f"/aanvragen/{aanvraag_id}/rapporten", headers=self.als("compliance")
        )
        assert response.status_code == 200, response.text
        (stand,) = response.json()
        return dict(stand)

    def hash_van(self, rapport_id: UUID, versie: int) -> str:
        """The content hash of a version, as approval got it (without recording a read)."""
        gelezen = self.app.rapport(rapport_id).versie(versie)
        assert gelezen is not None
        return gelezen.inhoud_hash

    def goedgekeurd(self, body: dict[str, Any] | None = None) -> tuple[UUID, UUID]:
        """A dossier with a report whose version 1 the BVA approved."""
        aanvraag_id, rapport_id = self.nieuw_rapport(body)
        assert self.dien_in(rapport_id).status_code == 200
        self.besluit(public.RapportGoedgekeurd, rapport_id, 1)
        return aanvraag_id, rapport_id

    def vrijgegeven(self, body: dict[str, Any] | None = None) -> tuple[UUID, UUID]:
        """A dossier with a report released to the werkgever."""
        aanvraag_id, rapport_id = self.goedgekeurd(body)
        self.besluit(public.InstemmingGegeven, rapport_id, 1)
        self.besluit(public.RapportVrijgegeven, rapport_id, 1)
        return aanvraag_id, rapport_id

    # --- what was recorded -----------------------------------------------------------------------

    def recorded(self) -> list[DomainEvent]:
        """Every domain event in assessment's store, in order."""
        app = self.components.app
        return [
            app.mapper.to_domain_event(n) for n in app.recorder.select_notifications(1, 100_000)
        ]

    def published(self) -> list[public.PublicEvent]:
        """Every public event assessment's outbox would publish, in order."""
        return [announced for event in self.recorded() for announced in to_public(event)]

    def of_type(self, cls: type[Any]) -> list[Any]:
        """The published events of one type."""
        return [e for e in self.published() if isinstance(e, cls)]


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    parties = FakeParties()
    clock = FixedClock(NU)
    components = bootstrap(settings, clock, parties=parties)
    with TestClient(components.api) as client:
        yield World(settings, components, parties, clock, client)


def ids(response: Response) -> list[str]:
    """The measure ids of a report's state (POST/PUT answer), in the body's order."""
    return [m["maatregel_id"] for m in response.json()["maatregelen"]]


def measure_ids(world: World, rapport_id: UUID) -> list[str]:
    """The measure ids of the report's latest version."""
    return [m["maatregel_id"] for m in world.stand(rapport_id)["maatregelen"]]


# --- drafting: only after both conversations and the woningscan ----------------------------------


def test_the_report_waits_for_both_conversations_and_the_woningscan(world: World) -> None:
    aanvraag_id = world.dossier()

    response = world.stel_op(aanvraag_id)
    assert response.status_code == 409
    detail = response.json()["detail"]
    for step in ("gesprek met de werkgever", "gesprek met de bestuurder", "woningscan"):
        assert step in detail

    world.gesprek(aanvraag_id, public.AfspraakSoort.GESPREK_WERKGEVER)
    world.gesprek(aanvraag_id, public.AfspraakSoort.TOELICHTING)  # not part of the research
    detail = world.stel_op(aanvraag_id).json()["detail"]
    assert "gesprek met de werkgever" not in detail.split("Nog niet gedaan:")[1]
    assert "gesprek met de bestuurder" in detail

    world.gesprek(aanvraag_id, public.AfspraakSoort.GESPREK_BESTUURDER)
    response = world.stel_op(aanvraag_id)
    assert response.status_code == 409
    assert response.json()["detail"].endswith("Nog niet gedaan: de woningscan.")
    assert world.of_type(public.RapportOpgesteld) == []

    world.woningscan(aanvraag_id)
    response = world.stel_op(aanvraag_id)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "concept"
    assert body["versie"] == 1
    assert response.headers["Location"] == f"/rapporten/{body['rapport_id']}"
    (opgesteld,) = world.of_type(public.RapportOpgesteld)
    assert opgesteld.rapport_id == UUID(body["rapport_id"])
    assert opgesteld.aanvraag_id == aanvraag_id


def test_a_redelivered_conversation_is_noted_once(world: World) -> None:
    aanvraag_id = world.dossier()
    world.gesprek(aanvraag_id, public.AfspraakSoort.GESPREK_WERKGEVER, event_id="ev-gesprek-1")
    world.gesprek(aanvraag_id, public.AfspraakSoort.GESPREK_WERKGEVER, event_id="ev-gesprek-1")
    world.gesprek(aanvraag_id, public.AfspraakSoort.GESPREK_WERKGEVER)  # a second, same kind
    assert len(world.recorded()) == 1


def test_one_report_per_dossier_and_a_retried_draft_has_one_effect(world: World) -> None:
    aanvraag_id = world.onderzocht()
    first = world.stel_op(aanvraag_id, headers={"Idempotency-Key": "rapport-1"})
    again = world.stel_op(aanvraag_id, headers={"Idempotency-Key": "rapport-1"})
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert len(world.of_type(public.RapportOpgesteld)) == 1

    other = world.stel_op(aanvraag_id)
    assert other.status_code == 409
    assert "al een rapport" in other.json()["detail"]
    assert first.json()["rapport_id"] not in other.text

    other_dossier = world.onderzocht()
    reused = world.stel_op(other_dossier, headers={"Idempotency-Key": "rapport-1"})
    assert reused.status_code == 422
    assert len(world.of_type(public.RapportOpgesteld)) == 1


def test_unknown_withdrawn_or_closed_dossiers_take_no_report_steps(world: World) -> None:
    assert world.stel_op(uuid4()).status_code == 404

    aanvraag_id, rapport_id = world.nieuw_rapport()
    world.deliver(
        public.AanvraagIngetrokken(
            aanvraag_id=aanvraag_id, ingetrokken_op=NU, door_rol=public.Rol.BESTUURDER
        )
    )
    assert world.herzie(rapport_id, concept("na intrekking")).status_code == 409
    assert world.dien_in(rapport_id).status_code == 409
    pkvw = world.client.post(
        f"/aanvragen/{aanvraag_id}/pkvw",
        json={"status": "verklaring"},
        headers=world.bestuurder(aanvraag_id),
    )
    assert (pkvw.status_code, pkvw.json()["code"]) == (409, "dossier_ingetrokken")

    gesloten = world.onderzocht()
    world.deliver(
        public.DossierAfgesloten(
            aanvraag_id=gesloten,
            afgesloten_op=NU,
            reden=public.AfsluitReden.GESLOTEN_DOOR_SECRETARIAAT,
            maatregelen_totaal=0,
            maatregelen_uitgevoerd=0,
        )
    )
    response = world.stel_op(gesloten)
    assert response.status_code == 409
    assert response.json()["code"] == "dossier_afgesloten"
    assert len(world.of_type(public.RapportOpgesteld)) == 1
    assert world.of_type(public.RapportHerzien) == []
    assert world.of_type(public.RapportTerToetsingAangeboden) == []
    assert world.of_type(public.PkvwStatusGewijzigd) == []


# --- versions: revise only in draft or after rejection -------------------------------------------


def test_revise_only_in_draft_or_after_rejection_and_submit_each_version_once(
    world: World,
) -> None:
    aanvraag_id, rapport_id = world.nieuw_rapport(concept("v1"))

    v2 = world.herzie(rapport_id, concept("v2"))
    assert v2.status_code == 200, v2.text
    assert (v2.json()["versie"], v2.json()["status"]) == (2, "concept")

    ingediend = world.dien_in(rapport_id)
    assert ingediend.status_code == 200
    assert ingediend.json()["status"] == "ter_toetsing"
    assert world.herzie(rapport_id, concept("v3")).status_code == 409  # under review
    twice = world.dien_in(rapport_id)
    assert twice.status_code == 409
    assert twice.json()["code"] == "versie_al_ingediend"

    world.besluit(public.RapportAfgekeurd, rapport_id, 2)
    assert world.stand(rapport_id)["status"] == "afgekeurd"
    assert world.dien_in(rapport_id).status_code == 409  # the rejected version again

    v3 = world.herzie(rapport_id, concept("v3"))
    assert (v3.status_code, v3.json()["versie"], v3.json()["status"]) == (200, 3, "concept")
    v4 = world.herzie(rapport_id, concept("v4"))  # a draft may be revised again
    assert (v4.status_code, v4.json()["versie"]) == (200, 4)
    assert world.dien_in(rapport_id).json()["status"] == "ter_toetsing"

    world.besluit(public.RapportGoedgekeurd, rapport_id, 4)
    assert world.stand(rapport_id)["status"] == "goedgekeurd"
    assert world.herzie(rapport_id, concept("v5")).status_code == 409
    assert world.dien_in(rapport_id).status_code == 409

    assert [e.versie for e in world.of_type(public.RapportHerzien)] == [2, 3, 4]
    assert [e.versie for e in world.of_type(public.RapportTerToetsingAangeboden)] == [2, 4]
    assert world.stand(rapport_id)["ingediende_versies"] == [2, 4]
    assert aanvraag_id == UUID(world.stand(rapport_id)["aanvraag_id"])


def test_the_same_content_again_is_no_new_version_and_kept_measures_keep_their_ids(
    world: World,
) -> None:
    body = concept("v1")
    _, rapport_id = world.nieuw_rapport(body)
    first_ids = measure_ids(world, rapport_id)

    same = world.herzie(rapport_id, body)
    assert (same.status_code, same.json()["versie"]) == (200, 1)
    assert world.of_type(public.RapportHerzien) == []

    # Keep the first measure by naming its id (with new text), replace the second.
    gewijzigd = concept("v1")
    gewijzigd["maatregelen"][0]["maatregel_id"] = first_ids[0]
    gewijzigd["maatregelen"][0]["omschrijving"] = "Inbraakwerend slot, ander model"
    gewijzigd["maatregelen"][1]["omschrijving"] = "Iets heel anders"
    v2 = world.herzie(rapport_id, gewijzigd)
    assert v2.status_code == 200
    assert ids(v2)[0] == first_ids[0]
    assert ids(v2)[1] not in first_ids

    vreemd = concept("v3")
    vreemd["maatregelen"][0]["maatregel_id"] = str(uuid4())
    response = world.herzie(rapport_id, vreemd)
    assert response.status_code == 422
    assert response.json()["errors"][0]["rule"] == "onbekende_maatregel"


def test_every_version_is_kept_and_compliance_reads_each_one(world: World) -> None:
    _, rapport_id = world.nieuw_rapport(concept("v1"))
    assert world.dien_in(rapport_id).status_code == 200
    world.besluit(public.RapportAfgekeurd, rapport_id, 1)
    assert world.herzie(rapport_id, concept("v2")).status_code == 200
    assert world.herzie(rapport_id, concept("v3")).status_code == 200

    for versie in (1, 2, 3):
        response = world.lees(rapport_id, world.als("compliance"), versie)
        assert response.status_code == 200, response.text
        assert response.json()["versie"] == versie
        assert f"Bevinding werk v{versie}:" in response.json()["inhoud"]["bevindingen"]["werk"]
    latest = world.lees(rapport_id, world.als("compliance"))
    assert latest.json()["versie"] == 3
    assert world.lees(rapport_id, world.als("compliance"), 4).status_code == 404


def test_the_submitted_hash_names_the_exact_content(world: World) -> None:
    _, rapport_id = world.nieuw_rapport(concept("v1"))
    world.dien_in(rapport_id)
    world.besluit(public.RapportAfgekeurd, rapport_id, 1)
    world.herzie(rapport_id, concept("v2"))
    world.dien_in(rapport_id)

    submitted = world.of_type(public.RapportTerToetsingAangeboden)
    assert [s.versie for s in submitted] == [1, 2]
    for event in submitted:
        gelezen = world.lees(rapport_id, world.als("bva", "bva-1"), event.versie).json()
        assert event.inhoud_hash == canonical_sha256(gelezen["inhoud"])
        assert gelezen["inhoud_hash"] == event.inhoud_hash
    assert submitted[0].inhoud_hash != submitted[1].inhoud_hash


# --- who reads what, when ------------------------------------------------------------------------

Verwacht = dict[str, int | str]  # reader → version read, or the refusal's reason


def test_read_matrix_by_state_and_role(world: World) -> None:
    aanvraag_id, rapport_id = world.nieuw_rapport(concept("v1"))
    andere_bestuurder = world.als("bestuurder", "best-9", email="iemand.anders@example.org")
    lezers = {
        "adviseur": world.als("adviseur", "adv-1"),
        "compliance": world.als("compliance", "comp-1"),
        "bva": world.als("bva", "bva-1"),
        "bestuurder": world.bestuurder(aanvraag_id),
        "werkgever": world.werkgever(),
        "andere_bestuurder": andere_bestuurder,
        "andere_werkgever": world.werkgever(ANDERE_ORGANISATIE),
        "secretariaat": world.als("secretariaat", "sec-1"),
    }
    vreemd = {
        "andere_bestuurder": "niet_eigen_dossier",
        "andere_werkgever": "niet_eigen_dossier",
        "secretariaat": "missing_role",
    }

    def check(state: str, verwacht: Verwacht) -> None:
        for lezer, headers in lezers.items():
            expected = verwacht.get(lezer, vreemd.get(lezer))
            reads = len(world.of_type(public.RapportIngezien))
            refusals = world.of_type(public.ToegangGeweigerd)
            response = world.lees(rapport_id, headers)
            where = f"{state}/{lezer}"
            if isinstance(expected, int):
                assert response.status_code == 200, where
                assert response.json()["versie"] == expected, where
                assert response.headers["Cache-Control"] == "no-store"
                (read,) = world.of_type(public.RapportIngezien)[reads:]
                assert (read.rapport_id, read.versie, read.rol.value) == (
                    rapport_id,
                    expected,
                    lezer,
                ), where
                assert read.aanvraag_id == aanvraag_id
            else:
                assert response.status_code in (403, 404), where
                assert "Bevinding" not in response.text, where
                (refusal,) = world.of_type(public.ToegangGeweigerd)[len(refusals) :]
                assert refusal.reden == expected, where
                assert refusal.status_code == response.status_code, where
                assert refusal.aanvraag_id == aanvraag_id, where
                assert refusal.actie == "GET /rapporten/{rapport_id}", where
                assert len(world.of_type(public.RapportIngezien)) == reads, where

    check(
        "concept",
        {
            "adviseur": 1,
            "compliance": 1,
            "bva": "nog_niet_ingediend",
            "bestuurder": "nog_niet_goedgekeurd",
            "werkgever": "nog_niet_vrijgegeven",
        },
    )
    world.dien_in(rapport_id)
    check(
        "ter_toetsing",
        {
            "adviseur": 1,
            "compliance": 1,
            "bva": 1,
            "bestuurder": "nog_niet_goedgekeurd",
            "werkgever": "nog_niet_vrijgegeven",
        },
    )
    world.besluit(public.RapportAfgekeurd, rapport_id, 1)
    world.herzie(rapport_id, concept("v2"))
    check(
        "afgekeurd_en_herzien",
        {
            "adviseur": 2,
            "compliance": 2,
            "bva": 1,  # the submitted version, not the new draft
            "bestuurder": "nog_niet_goedgekeurd",
            "werkgever": "nog_niet_vrijgegeven",
        },
    )
    world.dien_in(rapport_id)
    world.besluit(public.RapportGoedgekeurd, rapport_id, 2)
    approved: Verwacht = {"adviseur": 2, "compliance": 2, "bva": 2, "bestuurder": 2}
    check("goedgekeurd", {**approved, "werkgever": "nog_niet_vrijgegeven"})
    world.besluit(public.InstemmingGeweigerd, rapport_id, 2)
    assert world.stand(rapport_id)["status"] == "instemming_geweigerd"
    check("instemming_geweigerd", {**approved, "werkgever": "nog_niet_vrijgegeven"})
    world.besluit(public.InstemmingGegeven, rapport_id, 2)
    world.besluit(public.RapportVrijgegeven, rapport_id, 2)
    assert world.stand(rapport_id)["status"] == "vrijgegeven"
    check("vrijgegeven", {**approved, "werkgever": 2})


def test_each_role_reads_only_its_versions(world: World) -> None:
    aanvraag_id, rapport_id = world.nieuw_rapport(concept("v1"))
    world.dien_in(rapport_id)
    world.besluit(public.RapportAfgekeurd, rapport_id, 1)
    world.herzie(rapport_id, concept("v2"))
    world.dien_in(rapport_id)
    world.besluit(public.RapportAfgekeurd, rapport_id, 2)
    world.herzie(rapport_id, concept("v3"))
    bva = world.als("bva", "bva-1")

    assert world.lees(rapport_id, bva, 1).json()["versie"] == 1
    refused = world.lees(rapport_id, bva, 3)
    assert (refused.status_code, refused.json()["code"]) == (403, "versie_niet_ingediend")
    assert world.lees(rapport_id, world.als("adviseur"), 1).status_code == 200

    world.dien_in(rapport_id)
    world.besluit(public.RapportGoedgekeurd, rapport_id, 3)
    world.besluit(public.InstemmingGegeven, rapport_id, 3)
    world.besluit(public.RapportVrijgegeven, rapport_id, 3)
    for headers in (world.bestuurder(aanvraag_id), world.werkgever()):
        assert world.lees(rapport_id, headers).json()["versie"] == 3
        older = world.lees(rapport_id, headers, 1)
        assert (older.status_code, older.json()["code"]) == (403, "niet_de_goedgekeurde_versie")
    assert [r.reden for r in world.of_type(public.ToegangGeweigerd)] == [
        "versie_niet_ingediend",
        "niet_de_goedgekeurde_versie",
        "niet_de_goedgekeurde_versie",
    ]


def test_reads_do_not_contend_with_the_adviseur_revising(world: World) -> None:
    _, rapport_id = world.nieuw_rapport(concept("v0"))
    app = world.app
    reader = Context(now=NU, actor_id="comp-1", actor_role="compliance")
    writer = Context(now=NU, actor_id="adv-1", actor_role="adviseur")

    def read(_: int) -> int:
        return app.lees_rapport(app.rapport(rapport_id), public.Rol.COMPLIANCE, 1, reader).versie

    def revise(n: int) -> int:
        return app.herzie_rapport(
            rapport_id, Concept.model_validate(concept(f"v{n}")), writer
        ).version

    with ThreadPoolExecutor(8) as pool:
        reads = [pool.submit(read, n) for n in range(40)]
        writes = [pool.submit(revise, n) for n in range(1, 6)]
        assert [r.result() for r in reads] == [1] * 40
        assert all(w.result() > 1 for w in writes)
    assert len(world.of_type(public.RapportIngezien)) == 40
    assert len(world.of_type(public.RapportHerzien)) == 5


def test_a_read_that_cannot_be_recorded_shows_nothing(world: World) -> None:
    _, rapport_id = world.nieuw_rapport(concept("geheim"))
    app = world.components.app
    # A real failure of the store, for reads only: PostgreSQL refuses the insert.
    with app.datastore.transaction(commit=True) as curs:
        curs.execute(
            SQL(
                "CREATE FUNCTION assessment.weiger_inzage() RETURNS trigger LANGUAGE plpgsql AS"
                " $$ BEGIN RAISE EXCEPTION 'inzage geweigerd door test'; END $$"
            )
        )
        curs.execute(
            SQL(
                "CREATE TRIGGER weiger_inzage BEFORE INSERT ON assessment.assessment_events"
                " FOR EACH ROW WHEN (NEW.topic LIKE '%%:RapportIngezienVastgelegd')"
                " EXECUTE FUNCTION assessment.weiger_inzage()"
            )
        )
    response = world.lees(rapport_id, world.als("compliance"))
    assert response.status_code == 503
    assert response.json()["code"] == "inzage_niet_vastgelegd"
    assert "geheim" not in response.text
    assert world.of_type(public.RapportIngezien) == []


def test_a_read_whose_commit_is_in_doubt_says_so_and_shows_nothing(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection lost at COMMIT: the read may be on record, so the answer is 503
    uitkomst_onbekend (as for every command), not inzage_niet_vastgelegd (found by the
    database-outage scenario: a read answered "not recorded" that was recorded)."""
    _, rapport_id = world.nieuw_rapport(concept("geheim"))
    recorder = world.components.app.recorder
    insert = recorder.insert_events

    def committed_then_lost(*args: Any, **kwargs: Any) -> Any:
        insert(*args, **kwargs)
        raise CommitInDoubt("1")

    monkeypatch.setattr(recorder, "insert_events", committed_then_lost)
    response = world.lees(rapport_id, world.als("compliance"))
    assert response.status_code == 503
    assert response.json()["code"] == "uitkomst_onbekend"
    assert "geheim" not in response.text


def test_the_reader_is_in_the_envelope_and_no_content_is_public(world: World) -> None:
    aanvraag_id, rapport_id = world.goedgekeurd(concept("vertrouwelijk"))
    assert world.lees(rapport_id, world.bestuurder(aanvraag_id)).status_code == 200

    (read,) = [e for e in world.recorded() if isinstance(e, RapportIngezienVastgelegd)]
    assert read.actor_id == opaque_actor_id("best-1")  # a pseudonym, never the sub
    assert read.actor_role == "bestuurder"
    assert read.ingezien_op == NU

    (opgesteld,) = world.of_type(public.RapportOpgesteld)
    assert opgesteld.aantal_maatregelen == 2
    assert [(m.domein, m.kosten, m.uitvoerder) for m in opgesteld.maatregelen] == [
        (public.Domein.WONEN, public.Kosten.MET_KOSTEN, public.Partij.WERKGEVER),
        (public.Domein.INFORMATIE, public.Kosten.KOSTELOOS, public.Partij.BESTUURDER),
    ]
    payloads = json.dumps([e.model_dump(mode="json") for e in world.published()])
    for secret in ("vertrouwelijk", "Bevinding", "Inbraakwerend", "Adres afschermen", "@"):
        assert secret not in payloads


# --- approval's decisions ------------------------------------------------------------------------


def test_decisions_are_noted_once_and_a_decision_that_does_not_fit_is_poison(
    world: World,
) -> None:
    aanvraag_id, rapport_id = world.nieuw_rapport()
    world.dien_in(rapport_id)
    goed = public.RapportGoedgekeurd(
        aanvraag_id=aanvraag_id,
        rapport_id=rapport_id,
        versie=1,
        inhoud_hash=world.hash_van(rapport_id, 1),
    )
    before = len(world.recorded())
    world.deliver(goed, event_id="ev-goed")
    world.deliver(goed, event_id="ev-goed")  # redelivered
    world.deliver(goed)  # the same decision published again
    assert len(world.recorded()) == before + 1

    with pytest.raises(Poison):
        world.deliver(goed.model_copy(update={"versie": 2}))
    with pytest.raises(Poison):
        world.deliver(goed.model_copy(update={"rapport_id": uuid4()}))
    other_aanvraag, other_rapport = world.nieuw_rapport()
    world.dien_in(other_rapport)
    with pytest.raises(Poison):  # a hash that is not the submitted content
        world.deliver(
            goed.model_copy(update={"aanvraag_id": other_aanvraag, "rapport_id": other_rapport})
        )


def test_a_release_before_its_approval_is_retried_not_dropped(world: World) -> None:
    aanvraag_id, rapport_id = world.nieuw_rapport()
    world.dien_in(rapport_id)
    vrij = public.RapportVrijgegeven(
        aanvraag_id=aanvraag_id, rapport_id=rapport_id, versie=1, organisatie_code=ORGANISATIE
    )
    with pytest.raises(BesluitTeVroeg):  # a failure the consumer retries, not poison
        world.deliver(vrij, event_id="ev-vrij")
    world.besluit(public.RapportGoedgekeurd, rapport_id, 1)
    world.deliver(vrij, event_id="ev-vrij")  # the redelivery now applies
    assert world.stand(rapport_id)["status"] == "vrijgegeven"


# --- PKVW ----------------------------------------------------------------------------------------


def test_pkvw_moves_forward_only_and_keeps_the_number_private(world: World) -> None:
    aanvraag_id = world.dossier()  # parallel to the research: no conversation needed
    bestuurder = world.bestuurder(aanvraag_id)
    url = f"/aanvragen/{aanvraag_id}/pkvw"

    other = world.als("bestuurder", "best-9", email="iemand.anders@example.org")
    refused = world.client.post(url, json={"status": "verklaring"}, headers=other)
    assert refused.status_code == 404
    assert world.of_type(public.ToegangGeweigerd)[-1].reden == "niet_eigen_dossier"
    assert (
        world.client.post(url, json={"status": "verklaring"}, headers=world.werkgever()).status_code
        == 403
    )
    assert (
        world.client.post(
            f"/aanvragen/{uuid4()}/pkvw", json={"status": "verklaring"}, headers=bestuurder
        ).status_code
        == 404
    )

    response = world.client.post(url, json={"status": "verklaring"}, headers=bestuurder)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "verklaring"
    again = world.client.post(url, json={"status": "verklaring"}, headers=bestuurder)
    assert again.status_code == 200
    assert len(world.of_type(public.PkvwStatusGewijzigd)) == 1

    invalid = [
        ({"status": "certificaat"}, "verplicht_bij_certificaat"),
        (
            {"status": "certificaat", "afgegeven_op": (NU + timedelta(days=1)).date().isoformat()},
            "niet_in_de_toekomst",
        ),
        ({"status": "verklaring", "nummer": "PKVW-123"}, "alleen_bij_certificaat"),
    ]
    for body, rule in invalid:
        response = world.client.post(url, json=body, headers=bestuurder)
        assert response.status_code == 422, body
        assert response.json()["errors"][0]["rule"] == rule

    certificaat = {"status": "certificaat", "afgegeven_op": "2024-02-29", "nummer": "PKVW-98765"}
    response = world.client.post(url, json=certificaat, headers=bestuurder)
    assert response.status_code == 200
    assert response.json()["geldig_tot"] == "2034-02-28"
    assert response.json()["geldig"] is True
    assert "PKVW-98765" not in response.text
    back = world.client.post(url, json={"status": "verklaring"}, headers=bestuurder)
    assert back.status_code == 409

    events = world.of_type(public.PkvwStatusGewijzigd)
    assert [(e.status, e.geldig_tot) for e in events] == [
        (public.PkvwStatus.VERKLARING, None),
        (public.PkvwStatus.CERTIFICAAT, date(2034, 2, 28)),
    ]
    assert "PKVW-98765" not in json.dumps([e.model_dump(mode="json") for e in world.published()])
    shown = world.client.get(url, headers=world.werkgever())
    assert (shown.status_code, shown.json()["status"]) == (200, "certificaat")


# --- measures and who pays -----------------------------------------------------------------------

MAATREGELEN = concept(
    "m",
    maatregel("werk", "kosteloos", "bestuurder", "Route wisselen"),
    maatregel("wonen", "met_kosten", "werkgever", "Camera bij de voordeur"),
    maatregel("wonen", "met_kosten", "bestuurder", "Buitenlamp met sensor", "laag"),
    maatregel("informatie", "kosteloos", "werkgever", "Adres uit de website halen", "middel"),
)


def overzicht(world: World, aanvraag_id: UUID, headers: dict[str, str]) -> Response:
    return world.client.get(f"/aanvragen/{aanvraag_id}/maatregelen", headers=headers)


def voer_uit(world: World, maatregel_id: str, headers: dict[str, str]) -> Response:
    return world.client.post(f"/maatregelen/{maatregel_id}/uitgevoerd", headers=headers)


def betaalt(response: Response) -> list[str]:
    return [m["betaalt"] for m in response.json()["maatregelen"]]


def test_measures_follow_approval_release_and_the_pkvw(world: World) -> None:
    aanvraag_id, rapport_id = world.nieuw_rapport(MAATREGELEN)
    bestuurder, werkgever = world.bestuurder(aanvraag_id), world.werkgever()
    zelf, camera, lamp, website = measure_ids(world, rapport_id)

    refused = overzicht(world, aanvraag_id, bestuurder)
    assert (refused.status_code, refused.json()["code"]) == (403, "nog_niet_goedgekeurd")
    assert overzicht(world, aanvraag_id, world.als("adviseur")).status_code == 409
    assert voer_uit(world, zelf, bestuurder).status_code == 409

    world.dien_in(rapport_id)
    world.besluit(public.RapportGoedgekeurd, rapport_id, 1)
    lijst = overzicht(world, aanvraag_id, bestuurder)
    assert lijst.status_code == 200
    assert betaalt(lijst) == [
        "direct_uitvoerbaar",
        "wacht_op_pkvw",
        "wacht_op_pkvw",
        "direct_uitvoerbaar",
    ]
    assert "PKVW" in lijst.json()["maatregelen"][1]["toelichting"]
    assert "Camera" not in lijst.text  # descriptions are report content
    refused = overzicht(world, aanvraag_id, werkgever)
    assert (refused.status_code, refused.json()["code"]) == (403, "nog_niet_vrijgegeven")
    assert voer_uit(world, website, werkgever).status_code == 409  # not released yet

    done = voer_uit(world, zelf, bestuurder)
    assert done.status_code == 200, done.text
    assert voer_uit(world, zelf, bestuurder).status_code == 200  # twice: one effect
    assert len(world.of_type(public.MaatregelUitgevoerd)) == 1
    assert voer_uit(world, lamp, bestuurder).status_code == 200  # own cost, no PKVW needed
    not_his = voer_uit(world, camera, bestuurder)
    assert (not_his.status_code, not_his.json()["code"]) == (403, "niet_de_uitvoerder")
    other = world.als("bestuurder", "best-9", email="iemand.anders@example.org")
    assert voer_uit(world, zelf, other).status_code == 404
    assert voer_uit(world, str(uuid4()), bestuurder).status_code == 404

    assert overzicht(world, aanvraag_id, world.als("secretariaat")).status_code == 200

    world.besluit(public.InstemmingGegeven, rapport_id, 1)
    world.besluit(public.RapportVrijgegeven, rapport_id, 1)
    assert overzicht(world, aanvraag_id, werkgever).status_code == 200
    wacht = voer_uit(world, camera, werkgever)
    assert (wacht.status_code, wacht.json()["code"]) == (409, "wacht_op_pkvw")
    assert "wacht op PKVW" in wacht.json()["detail"]
    assert voer_uit(world, website, werkgever).status_code == 200  # kosteloos: at once

    world.client.post(
        f"/aanvragen/{aanvraag_id}/pkvw",
        json={"status": "certificaat", "afgegeven_op": "2025-09-01"},
        headers=bestuurder,
    )
    lijst = overzicht(world, aanvraag_id, werkgever)
    assert betaalt(lijst)[1:3] == ["werkgever", "werkgever"]
    assert lijst.json()["pkvw"]["geldig"] is True
    assert voer_uit(world, camera, werkgever).status_code == 200

    statuses = [m["status"] for m in overzicht(world, aanvraag_id, werkgever).json()["maatregelen"]]
    assert statuses == ["uitgevoerd"] * 4
    uitgevoerd = world.of_type(public.MaatregelUitgevoerd)
    assert [(str(e.maatregel_id), e.uitgevoerd_door) for e in uitgevoerd] == [
        (zelf, public.Partij.BESTUURDER),
        (lamp, public.Partij.BESTUURDER),
        (website, public.Partij.WERKGEVER),
        (camera, public.Partij.WERKGEVER),
    ]
    assert uitgevoerd[-1] == public.MaatregelUitgevoerd(
        aanvraag_id=aanvraag_id,
        maatregel_id=UUID(camera),
        rapport_id=rapport_id,
        domein=public.Domein.WONEN,
        kosten=public.Kosten.MET_KOSTEN,
        uitgevoerd_door=public.Partij.WERKGEVER,
        uitgevoerd_op=NU,
    )
    refusals = world.of_type(public.ToegangGeweigerd)
    assert {r.aanvraag_id for r in refusals} == {aanvraag_id}


def test_an_expired_certificate_means_waiting_for_pkvw_again(world: World) -> None:
    aanvraag_id, _ = world.vrijgegeven(MAATREGELEN)
    bestuurder, werkgever = world.bestuurder(aanvraag_id), world.werkgever()
    camera = overzicht(world, aanvraag_id, werkgever).json()["maatregelen"][1]["maatregel_id"]
    world.client.post(
        f"/aanvragen/{aanvraag_id}/pkvw",
        json={"status": "certificaat", "afgegeven_op": "2016-05-11"},
        headers=bestuurder,
    )
    # Valid through 11 May 2026 (Amsterdam), expired from the 12th.
    assert betaalt(overzicht(world, aanvraag_id, werkgever))[1] == "werkgever"
    world.clock.advance_to(datetime(2026, 5, 11, 22, 30, tzinfo=UTC))  # 00:30 on the 12th
    lijst = overzicht(world, aanvraag_id, werkgever)
    assert betaalt(lijst)[1] == "wacht_op_pkvw"
    assert "verlopen" in lijst.json()["maatregelen"][1]["toelichting"]
    assert lijst.json()["pkvw"]["geldig"] is False
    assert voer_uit(world, camera, werkgever).status_code == 409

    renewed = world.client.post(
        f"/aanvragen/{aanvraag_id}/pkvw",
        json={"status": "certificaat", "afgegeven_op": "2026-05-12"},
        headers=bestuurder,
    )
    assert renewed.json()["geldig_tot"] == "2036-05-12"
    assert betaalt(overzicht(world, aanvraag_id, werkgever))[1] == "werkgever"
    assert voer_uit(world, camera, werkgever).status_code == 200
