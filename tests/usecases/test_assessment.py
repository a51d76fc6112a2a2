"""Assessment's use cases and policies, on the in-memory store and on PostgreSQL: the same tests,
only the store differs (``store``: ``memory``, and ``postgres`` on a fresh database of the
session's test server, marked ``integration``).

They drive the application as its composition root builds it (``bootstrap.application``): the
reactions to scheduling's and approval's events through the declared policies, intake's events
through the register's subscription, the rest as the API calls it. Drafting and revising write the
report's read tables with its events (in PostgreSQL, or their rows in memory), and what reads them
(the dossier's report, a measure's, a refusal's dossier) answers the same on both stores.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from services.assessment import projections
from services.assessment.application import OPSTELLEN, Assessment, Opgesteld
from services.assessment.bootstrap import application
from services.assessment.domain import (
    BesluitTeVroeg,
    Concept,
    Rapport,
    RapportIngezienVastgelegd,
    RapportStatus,
    Weigering,
)
from services.assessment.policies import policies
from shared.contracts import events as public
from shared.contracts.registry import to_cloudevent
from shared.platform.auth import Principal, Refusal, Role
from shared.platform.consumer import Delivery, Poison
from shared.platform.errors import Conflict, Ongeldig
from shared.platform.model import Context, DomainEvent, FixedClock
from tests.usecases.conftest import STORES, store_env

NU = datetime(2026, 5, 11, 10, 0, tzinfo=UTC)
ORGANISATIE = "GM0363"
ADVISEUR = Context(now=NU, actor_id="p-" + "a" * 32, actor_role="adviseur")
COMPLIANCE = Context(now=NU, actor_id="p-" + "c" * 32, actor_role="compliance")
BESTUURDER = Context(now=NU, actor_id="p-" + "d" * 32, actor_role="bestuurder")
WERKGEVER = Context(now=NU, actor_id="p-" + "e" * 32, actor_role="werkgever")


def concept(tag: str, *maatregelen: dict[str, Any]) -> Concept:
    """A report body: a costly measure for the werkgever, a free one for the bestuurder."""
    return Concept.model_validate(
        {
            "bevindingen": {
                "werk": f"Werk {tag}.",
                "wonen": f"Wonen {tag}.",
                "informatie": f"Informatie {tag}.",
                "verplaatsen": f"Verplaatsen {tag}.",
            },
            "maatregelen": list(maatregelen)
            or [
                {
                    "domein": "wonen",
                    "omschrijving": f"Inbraakwerend slot {tag}",
                    "kosten": "met_kosten",
                    "uitvoerder": "werkgever",
                    "prioriteit": "hoog",
                },
                {
                    "domein": "informatie",
                    "omschrijving": f"Adres afschermen {tag}",
                    "kosten": "kosteloos",
                    "uitvoerder": "bestuurder",
                    "prioriteit": "hoog",
                },
            ],
        }
    )


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The environment of assessment's event store: the library's in-memory store, or a fresh
    PostgreSQL database of the session's test server."""
    return store_env(str(request.param), "assessment", request, tmp_path)


@dataclass
class World:
    """Assessment on one store, with the feeds a running service would get."""

    app: Assessment
    clock: FixedClock

    def deliver(self, event: public.PublicEvent, *, event_id: str | None = None) -> None:
        """Hand an event to the subscription that takes it, as the consumer would."""
        envelope = to_cloudevent(
            event,
            id=event_id or str(uuid4()),
            source=f"urn:weerbaar:{event.service}",
            time=NU,
            actorid=f"svc-{event.service}",
            actorrole="systeem",
        )
        subscriptions = [
            projections.register_subscription(self.app.register),
            *policies(self.app, self.clock),
        ]
        (subscription,) = [
            s
            for s in subscriptions
            if any(subject.split(".")[2] == event.event_name for subject in s.subjects)
        ]
        subscription.handler(Delivery(envelope=envelope, event=event, stream_sequence=1, attempt=1))

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

    def onderzocht(self) -> UUID:
        """A dossier whose conversations and woningscan are done."""
        aanvraag_id = self.dossier()
        self.gesprek(aanvraag_id, public.AfspraakSoort.GESPREK_WERKGEVER)
        self.gesprek(aanvraag_id, public.AfspraakSoort.GESPREK_BESTUURDER)
        self.deliver(
            public.WoningscanUitgevoerd(
                aanvraag_id=aanvraag_id, afspraak_id=uuid4(), uitgevoerd_op=NU
            )
        )
        return aanvraag_id

    def opgesteld(self, aanvraag_id: UUID, tag: str = "v1") -> Rapport:
        """A report drafted by the use case."""
        stand = self.app.stel_rapport_op(aanvraag_id, concept(tag), ADVISEUR).stand
        return self.app.rapport(stand.rapport_id)

    def besluit(
        self, soort: type[public.PublicEvent], rapport: Rapport, versie: int, **kw: Any
    ) -> None:
        """Approval's decision about a version, as approval publishes it."""
        fields: dict[str, Any] = {
            "aanvraag_id": rapport.aanvraag_id,
            "rapport_id": rapport.id,
            "versie": versie,
        }
        if soort in (public.RapportGoedgekeurd, public.RapportAfgekeurd):
            bekend = self.app.rapport_of_none(rapport.id)
            gekozen = bekend.versie(versie) if bekend else None
            fields["inhoud_hash"] = gekozen.inhoud_hash if gekozen else "0" * 64
        if soort is public.RapportAfgekeurd:
            fields["aantal_redenen"] = 1
        if soort is public.RapportVrijgegeven:
            fields["organisatie_code"] = ORGANISATIE
        self.deliver(soort(**fields), **kw)

    def goedgekeurd(self) -> Rapport:
        """A report whose version 1 was submitted and approved."""
        rapport = self.opgesteld(self.onderzocht())
        self.app.dien_rapport_in(rapport.id, ADVISEUR)
        self.besluit(public.RapportGoedgekeurd, rapport, 1)
        return self.app.rapport(rapport.id)

    def recorded(self) -> list[DomainEvent]:
        """Every event assessment's store holds, in order."""
        notifications = self.app.recorder.select_notifications(1, 100_000)
        return [self.app.mapper.to_domain_event(n) for n in notifications]

    def names(self) -> list[str]:
        """The names of the recorded events."""
        return [type(event).__name__ for event in self.recorded()]


def _world(env: dict[str, str]) -> Iterator[World]:
    app = application(env)
    try:
        yield World(app, FixedClock(NU))
    finally:
        app.close()


@pytest.fixture
def world(store: dict[str, str]) -> Iterator[World]:
    yield from _world(store)


# --- the research (scheduling's events) ----------------------------------------------------------


def test_the_research_notes_both_conversations_and_the_woningscan_once(world: World) -> None:
    aanvraag_id = world.dossier()
    world.gesprek(aanvraag_id, public.AfspraakSoort.GESPREK_WERKGEVER, event_id="ev-gesprek")
    world.gesprek(aanvraag_id, public.AfspraakSoort.GESPREK_WERKGEVER, event_id="ev-gesprek")
    world.gesprek(aanvraag_id, public.AfspraakSoort.GESPREK_WERKGEVER)  # announced again
    world.gesprek(aanvraag_id, public.AfspraakSoort.TOELICHTING)  # not part of the research
    world.gesprek(aanvraag_id, public.AfspraakSoort.GESPREK_BESTUURDER)
    world.deliver(
        public.WoningscanUitgevoerd(aanvraag_id=aanvraag_id, afspraak_id=uuid4(), uitgevoerd_op=NU)
    )

    onderzoek = world.app.onderzoek(aanvraag_id)

    assert onderzoek is not None
    assert set(onderzoek.gesprekken) == {"gesprek_werkgever", "gesprek_bestuurder"}
    assert onderzoek.woningscan
    assert world.names() == ["GesprekGenoteerd", "GesprekGenoteerd", "WoningscanGenoteerd"]


# --- the report and approval's decisions ---------------------------------------------------------


def test_a_submitted_version_follows_approvals_decisions_to_its_release(world: World) -> None:
    rapport = world.opgesteld(world.onderzocht())

    ingediend = world.app.dien_rapport_in(rapport.id, ADVISEUR)
    world.besluit(public.RapportGoedgekeurd, rapport, 1, event_id="ev-goedgekeurd")
    world.besluit(public.RapportGoedgekeurd, rapport, 1, event_id="ev-goedgekeurd")
    world.besluit(public.RapportGoedgekeurd, rapport, 1)  # announced again
    goedgekeurd = world.app.rapport(rapport.id)
    world.besluit(public.InstemmingGegeven, rapport, 1)
    world.besluit(public.RapportVrijgegeven, rapport, 1)

    assert ingediend.status is RapportStatus.TER_TOETSING
    assert (goedgekeurd.status, goedgekeurd.goedgekeurde_versie) == (RapportStatus.GOEDGEKEURD, 1)
    assert world.app.rapport(rapport.id).status is RapportStatus.VRIJGEGEVEN
    assert world.names()[-4:] == [
        "RapportTerToetsingAangeboden",
        "GoedkeuringGenoteerd",
        "InstemmingGenoteerd",
        "VrijgaveGenoteerd",
    ]
    with pytest.raises(Conflict) as again:
        world.app.dien_rapport_in(rapport.id, ADVISEUR)
    assert again.value.code == "rapport_goedgekeurd"


def test_a_decision_that_fits_no_submitted_version_is_poison(world: World) -> None:
    rapport = world.opgesteld(world.onderzocht())
    onbekend = rapport.model_copy(update={"id": uuid4()})
    before = world.app.max_notification_id()

    with pytest.raises(Poison):
        world.besluit(public.RapportGoedgekeurd, onbekend, 1)
    with pytest.raises(Poison):  # version 1 was never submitted
        world.besluit(public.RapportAfgekeurd, rapport, 1)

    assert world.app.max_notification_id() == before
    assert world.app.rapport(rapport.id).status is RapportStatus.CONCEPT


def test_a_release_before_its_approval_is_retried_later(world: World) -> None:
    rapport = world.opgesteld(world.onderzocht())
    world.app.dien_rapport_in(rapport.id, ADVISEUR)

    with pytest.raises(BesluitTeVroeg):
        world.besluit(public.RapportVrijgegeven, rapport, 1)
    world.besluit(public.RapportGoedgekeurd, rapport, 1)
    world.besluit(public.InstemmingGegeven, rapport, 1)
    world.besluit(public.RapportVrijgegeven, rapport, 1)

    assert world.app.rapport(rapport.id).status is RapportStatus.VRIJGEGEVEN


def test_a_withdrawn_dossier_takes_no_more_changes(world: World) -> None:
    aanvraag_id = world.onderzocht()
    rapport = world.opgesteld(aanvraag_id)
    world.deliver(
        public.AanvraagIngetrokken(
            aanvraag_id=aanvraag_id, ingetrokken_op=NU, door_rol=public.Rol.BESTUURDER
        )
    )
    before = world.app.max_notification_id()

    with pytest.raises(Conflict) as submitted:
        world.app.dien_rapport_in(rapport.id, ADVISEUR)
    with pytest.raises(Conflict) as pkvw:
        world.app.wijzig_pkvw(aanvraag_id, public.PkvwStatus.VERKLARING, None, None, BESTUURDER)

    assert (submitted.value.code, pkvw.value.code) == ("dossier_ingetrokken",) * 2
    assert world.app.max_notification_id() == before


# --- reading the content -------------------------------------------------------------------------


def test_each_read_is_on_record_and_a_role_reads_only_its_version(world: World) -> None:
    rapport = world.opgesteld(world.onderzocht())
    before = world.app.max_notification_id()

    gelezen = world.app.lees_rapport(rapport, public.Rol.COMPLIANCE, None, COMPLIANCE)
    with pytest.raises(Weigering) as bva:
        world.app.lees_rapport(rapport, public.Rol.BVA, None, COMPLIANCE)

    assert bva.value.reden == "nog_niet_ingediend"
    assert (gelezen.versie, gelezen.inhoud_hash) == (1, rapport.huidige.inhoud_hash)
    (read,) = world.recorded()[before:]
    assert isinstance(read, RapportIngezienVastgelegd)
    assert (read.rapport_id, read.versie, read.rol) == (rapport.id, 1, public.Rol.COMPLIANCE)


# --- PKVW and the measures -----------------------------------------------------------------------


def test_the_pkvw_moves_forward_only(world: World) -> None:
    aanvraag_id = world.dossier()

    geen = world.app.pkvw(aanvraag_id, BESTUURDER)
    verklaring = world.app.wijzig_pkvw(
        aanvraag_id, public.PkvwStatus.VERKLARING, None, None, BESTUURDER
    )
    certificaat = world.app.wijzig_pkvw(
        aanvraag_id, public.PkvwStatus.CERTIFICAAT, date(2026, 5, 1), "PKVW-1", BESTUURDER
    )
    before = world.app.max_notification_id()
    same = world.app.wijzig_pkvw(
        aanvraag_id, public.PkvwStatus.CERTIFICAAT, date(2026, 5, 1), "PKVW-1", BESTUURDER
    )
    with pytest.raises(Conflict) as back:
        world.app.wijzig_pkvw(aanvraag_id, public.PkvwStatus.VERKLARING, None, None, BESTUURDER)

    assert (geen.status, geen.geldig) == (public.PkvwStatus.GEEN, False)
    assert (verklaring.status, verklaring.geldig) == (public.PkvwStatus.VERKLARING, False)
    assert (certificaat.geldig, certificaat.geldig_tot) == (True, date(2036, 5, 1))
    assert same == certificaat == world.app.pkvw(aanvraag_id, BESTUURDER)
    assert back.value.code == "pkvw_terug"
    assert world.app.max_notification_id() == before


def test_measures_are_carried_out_by_their_uitvoerder_and_paid_once_the_pkvw_is_valid(
    world: World,
) -> None:
    rapport = world.goedgekeurd()
    slot, afschermen = (m.maatregel_id for m in rapport.huidige.inhoud.maatregelen)
    bestuurder = frozenset({public.Partij.BESTUURDER})
    werkgever = frozenset({public.Partij.WERKGEVER})

    with pytest.raises(Weigering) as niet_de_uitvoerder:
        world.app.voer_maatregel_uit(rapport.id, afschermen, werkgever, WERKGEVER)
    with pytest.raises(Conflict) as niet_vrijgegeven:
        world.app.voer_maatregel_uit(rapport.id, slot, werkgever, WERKGEVER)
    uitgevoerd = world.app.voer_maatregel_uit(rapport.id, afschermen, bestuurder, BESTUURDER)
    world.besluit(public.InstemmingGegeven, rapport, 1)
    world.besluit(public.RapportVrijgegeven, rapport, 1)
    wacht = world.app.maatregelen(world.app.rapport(rapport.id), WERKGEVER)
    with pytest.raises(Conflict) as zonder_pkvw:
        world.app.voer_maatregel_uit(rapport.id, slot, werkgever, WERKGEVER)
    world.app.wijzig_pkvw(
        rapport.aanvraag_id, public.PkvwStatus.CERTIFICAAT, date(2026, 5, 1), None, BESTUURDER
    )
    betaald = world.app.voer_maatregel_uit(rapport.id, slot, werkgever, WERKGEVER)
    before = world.app.max_notification_id()
    again = world.app.voer_maatregel_uit(rapport.id, slot, werkgever, WERKGEVER)

    assert niet_de_uitvoerder.value.reden == "niet_de_uitvoerder"
    assert niet_vrijgegeven.value.code == "nog_niet_vrijgegeven"
    assert zonder_pkvw.value.code == "wacht_op_pkvw"
    assert set(uitgevoerd.uitgevoerd) == {afschermen}
    assert [(m.status, m.betaalt) for m in wacht.maatregelen] == [
        ("open", "wacht_op_pkvw"),
        ("uitgevoerd", "direct_uitvoerbaar"),
    ]
    assert set(betaald.uitgevoerd) == {slot, afschermen} and again == betaald
    assert world.app.max_notification_id() == before
    overzicht = world.app.maatregelen(betaald, WERKGEVER)
    assert [(m.status, m.betaalt) for m in overzicht.maatregelen] == [
        ("uitgevoerd", "werkgever"),
        ("uitgevoerd", "direct_uitvoerbaar"),
    ]


# --- drafting and revising: the read tables -----------------------------------------------------


def test_one_report_per_dossier_found_by_its_dossier_and_its_measures(world: World) -> None:
    aanvraag_id = world.dossier()
    with pytest.raises(Conflict) as te_vroeg:
        world.app.stel_rapport_op(aanvraag_id, concept("v1"), ADVISEUR)
    world.gesprek(aanvraag_id, public.AfspraakSoort.GESPREK_WERKGEVER)
    world.gesprek(aanvraag_id, public.AfspraakSoort.GESPREK_BESTUURDER)
    world.deliver(
        public.WoningscanUitgevoerd(aanvraag_id=aanvraag_id, afspraak_id=uuid4(), uitgevoerd_op=NU)
    )
    sleutel = ("POST /aanvragen/{aanvraag_id}/rapport|adv-1", "key-1")

    eerste = world.app.stel_rapport_op(aanvraag_id, concept("v1"), ADVISEUR, sleutel)
    herhaald = world.app.stel_rapport_op(aanvraag_id, concept("v1"), ADVISEUR, sleutel)
    with pytest.raises(Conflict) as tweede:
        world.app.stel_rapport_op(aanvraag_id, concept("v1"), ADVISEUR)

    rapport_id = eerste.stand.rapport_id
    assert te_vroeg.value.code == "onderzoek_niet_afgerond"
    assert (eerste.replayed, herhaald.replayed, herhaald.stand) == (False, True, eerste.stand)
    assert tweede.value.code == "rapport_bestaat_al"
    assert world.app.rapport_van(aanvraag_id) == rapport_id
    assert world.app.dossier_van_rapport(rapport_id) == aanvraag_id
    for maatregel in eerste.stand.maatregelen:
        assert world.app.maatregel_plaats(maatregel.maatregel_id) == (rapport_id, aanvraag_id)
    assert world.names().count("RapportOpgesteld") == 1


def test_a_retried_draft_gets_the_first_answer_and_a_key_answers_one_request(
    world: World,
) -> None:
    aanvraag_id = world.dossier()
    ander_dossier = world.onderzocht()
    sleutel = (f"{OPSTELLEN}|adv-1", "key-1")

    # Refused: nothing decided, so nothing remembered with the key.
    with pytest.raises(Conflict) as te_vroeg:
        world.app.stel_rapport_op(aanvraag_id, concept("v1"), ADVISEUR, sleutel)
    world.gesprek(aanvraag_id, public.AfspraakSoort.GESPREK_WERKGEVER)
    world.gesprek(aanvraag_id, public.AfspraakSoort.GESPREK_BESTUURDER)
    world.deliver(
        public.WoningscanUitgevoerd(aanvraag_id=aanvraag_id, afspraak_id=uuid4(), uitgevoerd_op=NU)
    )
    eerste = world.app.stel_rapport_op(aanvraag_id, concept("v1"), ADVISEUR, sleutel)
    herhaald = world.app.stel_rapport_op(aanvraag_id, concept("v1"), ADVISEUR, sleutel)
    with pytest.raises(Ongeldig) as ander_verzoek:
        world.app.stel_rapport_op(aanvraag_id, concept("v2"), ADVISEUR, sleutel)
    with pytest.raises(Ongeldig) as ander_dossier_zelfde_sleutel:
        world.app.stel_rapport_op(ander_dossier, concept("v1"), ADVISEUR, sleutel)
    with pytest.raises(Conflict) as andere_sleutel:
        world.app.stel_rapport_op(aanvraag_id, concept("v1"), ADVISEUR, (sleutel[0], "key-2"))

    assert te_vroeg.value.code == "onderzoek_niet_afgerond"
    assert eerste.replayed is False
    assert herhaald == Opgesteld(eerste.stand, replayed=True)
    for hergebruikt in (ander_verzoek, ander_dossier_zelfde_sleutel):
        assert hergebruikt.value.errors == [
            {"field": "header.Idempotency-Key", "rule": "reused_with_other_body"}
        ]
    assert andere_sleutel.value.code == "rapport_bestaat_al"
    assert world.app.rapport_van(aanvraag_id) == eerste.stand.rapport_id
    assert world.app.rapport_van(ander_dossier) is None
    assert world.names().count("RapportOpgesteld") == 1


def _meanwhile(
    monkeypatch: pytest.MonkeyPatch, world: World, other_request: Callable[[], Opgesteld]
) -> list[Opgesteld]:
    """Two requests at the same moment: the next request that asks the read tables for the
    dossier's report is told there is none, and the other request drafts one before it goes on.
    Returns (once it ran) the other request's answer."""
    read_model = world.app.read_model
    rapport_van = read_model.rapport_van
    other: list[Opgesteld] = []
    raced: list[bool] = []

    def found_then_overtaken(aanvraag_id: UUID) -> UUID | None:
        found = rapport_van(aanvraag_id)
        if not raced:
            raced.append(True)
            other.append(other_request())
        return found

    monkeypatch.setattr(read_model, "rapport_van", found_then_overtaken)
    return other


@pytest.mark.parametrize("andere_sleutel", ["key-1", "key-2", None])
def test_of_two_drafts_at_the_same_moment_one_makes_the_report(
    world: World, monkeypatch: pytest.MonkeyPatch, andere_sleutel: str | None
) -> None:
    aanvraag_id = world.onderzocht()
    scope = f"{OPSTELLEN}|adv-1"
    other = _meanwhile(
        monkeypatch,
        world,
        lambda: world.app.stel_rapport_op(
            aanvraag_id,
            concept("v1"),
            ADVISEUR,
            None if andere_sleutel is None else (scope, andere_sleutel),
        ),
    )

    if andere_sleutel == "key-1":
        # The same key: the first answer, whichever of the two recorded it.
        later = world.app.stel_rapport_op(aanvraag_id, concept("v1"), ADVISEUR, (scope, "key-1"))
        (first,) = other
        assert later == Opgesteld(first.stand, replayed=True)
    else:
        # Another key, or none: the read tables' unique key refuses the second report.
        with pytest.raises(Conflict) as refused:
            world.app.stel_rapport_op(aanvraag_id, concept("v1"), ADVISEUR, (scope, "key-1"))
        # Nothing was recorded with the refused request's key: retried, it is refused again.
        with pytest.raises(Conflict) as retried:
            world.app.stel_rapport_op(aanvraag_id, concept("v1"), ADVISEUR, (scope, "key-1"))
        (first,) = other
        assert refused.value.code == retried.value.code == "rapport_bestaat_al"
    assert first.replayed is False
    assert world.app.rapport_van(aanvraag_id) == first.stand.rapport_id
    assert world.names().count("RapportOpgesteld") == 1


def test_a_revision_adds_its_new_measures_to_the_read_tables(world: World) -> None:
    rapport = world.opgesteld(world.onderzocht(), "v1")
    slot = rapport.huidige.inhoud.maatregelen[0]
    nieuw = {
        "domein": "verplaatsen",
        "omschrijving": "Wisselende route",
        "kosten": "kosteloos",
        "uitvoerder": "bestuurder",
        "prioriteit": "middel",
    }
    behouden = slot.model_dump(mode="json")
    tweede = concept("v1", behouden, nieuw)

    herzien = world.app.herzie_rapport(rapport.id, tweede, ADVISEUR)
    before = world.app.max_notification_id()
    again = world.app.herzie_rapport(rapport.id, tweede, ADVISEUR)

    assert herzien.huidige.versie == 2 and again == herzien
    assert world.app.max_notification_id() == before
    kept, toegevoegd = herzien.huidige.inhoud.maatregelen
    assert kept.maatregel_id == slot.maatregel_id
    assert toegevoegd.maatregel_id not in rapport.maatregel_ids()
    # Every measure of any version stays findable: the one version 2 dropped too.
    assert len(herzien.maatregel_ids()) == 3
    for maatregel_id in herzien.maatregel_ids():
        assert world.app.maatregel_plaats(maatregel_id) == (rapport.id, rapport.aanvraag_id)


def test_a_refusal_on_a_report_or_measure_is_put_on_its_dossier(world: World) -> None:
    rapport = world.opgesteld(world.onderzocht())
    maatregel_id = rapport.huidige.inhoud.maatregelen[0].maatregel_id

    def refusal(ids: dict[str, UUID]) -> Refusal:
        return Refusal(
            actie="GET /rapporten/{rapport_id}",
            reason="niet_eigen_dossier",
            status=404,
            principal=Principal(sub="bestuurder-2", roles=frozenset({Role.bestuurder})),
            aanvraag_id=None,
            ids=ids,
        )

    assert world.app.with_dossier(refusal({"rapport_id": rapport.id})).aanvraag_id == (
        rapport.aanvraag_id
    )
    assert world.app.with_dossier(refusal({"maatregel_id": maatregel_id})).aanvraag_id == (
        rapport.aanvraag_id
    )
    assert world.app.with_dossier(refusal({"rapport_id": uuid4()})).aanvraag_id is None
