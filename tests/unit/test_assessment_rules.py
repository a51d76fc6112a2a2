"""Assessment's domain: drafting, versions, the hash, decisions, who reads what, PKVW, measures."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest

from services.assessment.domain import (
    BesluitPastNiet,
    BesluitTeVroeg,
    Concept,
    GesprekGenoteerd,
    Maatregel,
    Onderzoek,
    PkvwStatusGewijzigd,
    Rapport,
    RapportHerzien,
    RapportStatus,
    Weigering,
    dien_in,
    herzie,
    inhoud_hash,
    lees,
    leesbare_versie,
    noteer_afkeuring,
    noteer_gesprek,
    noteer_goedkeuring,
    noteer_instemming,
    noteer_vrijgave,
    noteer_woningscan,
    project_onderzoek,
    project_rapport,
    stel_op,
    tien_jaar_na,
    vandaag,
    voer_uit,
    wie_betaalt,
    wijzig_pkvw,
)
from services.assessment.gateway import to_public
from shared.contracts import events as public
from shared.contracts.events import Domein, Kosten, Partij, PkvwStatus, Rol
from shared.platform.errors import Conflict, Ongeldig
from shared.platform.model import Context, DomainEvent

NU = datetime(2026, 5, 11, 10, 0, tzinfo=UTC)
AANVRAAG = UUID("6f1c2a8e-4b7d-4e11-9a3c-0d5e8f7a9b21")


def ctx(moment: datetime = NU) -> Context:
    return Context(now=moment, actor_id="adv-1", actor_role="adviseur")


def body(tag: str = "v1", *maatregelen: dict[str, Any]) -> Concept:
    return Concept.model_validate(
        {
            "bevindingen": {
                "werk": f"werk {tag}",
                "wonen": f"wonen {tag}",
                "informatie": f"informatie {tag}",
                "verplaatsen": f"verplaatsen {tag}",
            },
            "maatregelen": list(maatregelen)
            or [
                maatregel("wonen", "met_kosten", "werkgever", "Slot"),
                maatregel("werk", "kosteloos", "bestuurder", "Route"),
            ],
        }
    )


def maatregel(
    domein: str, kosten: str, uitvoerder: str, omschrijving: str, **extra: Any
) -> dict[str, Any]:
    return {
        "domein": domein,
        "omschrijving": omschrijving,
        "kosten": kosten,
        "uitvoerder": uitvoerder,
        "prioriteit": "hoog",
        **extra,
    }


def ids() -> Iterator[UUID]:
    n = 0
    while True:
        n += 1
        yield UUID(int=n)


def note(onderzoek: Onderzoek | None, event: DomainEvent | None) -> Onderzoek:
    assert event is not None
    after = project_onderzoek(onderzoek, [event])
    assert after is not None
    return after


def onderzocht() -> Onderzoek:
    """Both conversations held and the woningscan done."""
    onderzoek = note(None, noteer_gesprek(None, AANVRAAG, "gesprek_werkgever", uuid4(), NU, ctx()))
    onderzoek = note(
        onderzoek, noteer_gesprek(onderzoek, AANVRAAG, "gesprek_bestuurder", uuid4(), NU, ctx())
    )
    return note(onderzoek, noteer_woningscan(onderzoek, AANVRAAG, uuid4(), NU, ctx()))


def apply(rapport: Rapport, event: DomainEvent | None) -> Rapport:
    assert event is not None
    after = project_rapport(rapport, [event])
    assert after is not None
    return after


def opgesteld(concept: Concept | None = None) -> Rapport:
    nieuw = ids()
    event = stel_op(uuid4(), AANVRAAG, onderzocht(), concept or body(), ctx(), lambda: next(nieuw))
    rapport = project_rapport(None, [event])
    assert rapport is not None
    return rapport


def ingediend(rapport: Rapport) -> Rapport:
    return apply(rapport, dien_in(rapport, ctx()))


def goedgekeurd(concept: Concept | None = None) -> Rapport:
    rapport = ingediend(opgesteld(concept))
    return apply(rapport, noteer_goedkeuring(rapport, 1, rapport.huidige.inhoud_hash, ctx()))


def vrijgegeven(concept: Concept | None = None) -> Rapport:
    rapport = goedgekeurd(concept)
    rapport = apply(rapport, noteer_instemming(rapport, 1, True, ctx()))
    return apply(rapport, noteer_vrijgave(rapport, 1, ctx()))


def met_pkvw(afgegeven_op: date) -> Onderzoek:
    return note(
        None, wijzig_pkvw(None, AANVRAAG, PkvwStatus.CERTIFICAAT, afgegeven_op, "N-1", ctx())
    )


# --- drafting ------------------------------------------------------------------------------------


def test_drafting_waits_for_both_conversations_and_the_woningscan() -> None:
    onderzoek = None
    with pytest.raises(Conflict) as missing:
        stel_op(uuid4(), AANVRAAG, onderzoek, body(), ctx())
    assert "het gesprek met de werkgever, het gesprek met de bestuurder, de woningscan" in str(
        missing.value
    )
    onderzoek = note(None, noteer_gesprek(None, AANVRAAG, "gesprek_bestuurder", uuid4(), NU, ctx()))
    with pytest.raises(Conflict) as missing:
        stel_op(uuid4(), AANVRAAG, onderzoek, body(), ctx())
    assert "gesprek met de bestuurder" not in str(missing.value).split("Nog niet gedaan:")[1]

    rapport_id = uuid4()
    first = stel_op(rapport_id, AANVRAAG, onderzocht(), body(), ctx(), lambda: UUID(int=7))
    assert (first.originator_id, first.originator_version) == (rapport_id, 1)
    assert [m.maatregel_id for m in first.inhoud.maatregelen] == [UUID(int=7), UUID(int=7)]


def test_a_conversation_or_scan_is_noted_once() -> None:
    onderzoek = onderzocht()
    assert noteer_gesprek(onderzoek, AANVRAAG, "gesprek_werkgever", uuid4(), NU, ctx()) is None
    assert noteer_woningscan(onderzoek, AANVRAAG, uuid4(), NU, ctx()) is None
    assert onderzoek.version == 3
    assert isinstance(
        noteer_gesprek(None, AANVRAAG, "gesprek_werkgever", uuid4(), NU, ctx()), GesprekGenoteerd
    )


def test_a_blank_finding_or_too_many_measures_is_invalid() -> None:
    with pytest.raises(ValueError, match="string_pattern_mismatch"):
        Concept.model_validate(
            {
                **body().model_dump(),
                "bevindingen": {
                    "werk": "  \n ",
                    "wonen": "x",
                    "informatie": "x",
                    "verplaatsen": "x",
                },
            }
        )
    te_veel = [maatregel("werk", "kosteloos", "bestuurder", f"m{i}") for i in range(101)]
    with pytest.raises(ValueError, match="too_long"):
        Concept.model_validate({**body().model_dump(), "maatregelen": te_veel})
    with pytest.raises(ValueError, match="string_too_long"):
        body("x", maatregel("werk", "kosteloos", "bestuurder", "o" * 2001))


# --- versions and measure ids --------------------------------------------------------------------


def test_revision_keeps_named_and_unchanged_measures_and_gives_new_ones_new_ids() -> None:
    rapport = opgesteld()
    slot, route = (m.maatregel_id for m in rapport.huidige.inhoud.maatregelen)
    nieuw = body(
        "v2",
        maatregel("werk", "kosteloos", "bestuurder", "Route"),  # unchanged: keeps its id
        maatregel("wonen", "met_kosten", "werkgever", "Beter slot", maatregel_id=str(slot)),
        maatregel("verplaatsen", "kosteloos", "bestuurder", "Nieuw"),
    )
    event = herzie(rapport, nieuw, ctx(), lambda: UUID(int=99))
    assert isinstance(event, RapportHerzien)
    assert event.versie == 2
    assert [m.maatregel_id for m in event.inhoud.maatregelen] == [route, slot, UUID(int=99)]
    rapport = apply(rapport, event)
    assert [v.versie for v in rapport.versies] == [1, 2]
    eerste = rapport.versie(1)
    assert eerste is not None
    assert eerste.inhoud.bevindingen.werk == "werk v1"


def test_the_same_content_again_is_no_new_version() -> None:
    rapport = opgesteld()
    assert herzie(rapport, body(), ctx()) is None


@pytest.mark.parametrize(
    ("given", "rule"),
    [("unknown", "onbekende_maatregel"), ("twice", "dubbele_maatregel")],
)
def test_a_measure_id_must_be_this_reports_and_named_once(given: str, rule: str) -> None:
    rapport = opgesteld()
    slot = str(rapport.huidige.inhoud.maatregelen[0].maatregel_id)
    first = str(uuid4()) if given == "unknown" else slot
    with pytest.raises(Ongeldig) as invalid:
        herzie(
            rapport,
            body(
                "v2",
                maatregel("werk", "kosteloos", "bestuurder", "a", maatregel_id=first),
                maatregel("werk", "kosteloos", "bestuurder", "b", maatregel_id=slot),
            ),
            ctx(),
        )
    assert invalid.value.errors[-1]["rule"] == rule


def test_the_state_machine_of_revise_submit_and_decisions() -> None:
    rapport = opgesteld()
    assert rapport.status is RapportStatus.CONCEPT
    rapport = ingediend(rapport)
    assert rapport.status is RapportStatus.TER_TOETSING
    with pytest.raises(Conflict, match="ter toetsing"):
        herzie(rapport, body("v2"), ctx())
    with pytest.raises(Conflict):
        dien_in(rapport, ctx())

    rapport = apply(rapport, noteer_afkeuring(rapport, 1, ctx()))
    assert rapport.status is RapportStatus.AFGEKEURD
    with pytest.raises(Conflict, match="herzie"):
        dien_in(rapport, ctx())
    rapport = apply(rapport, herzie(rapport, body("v2"), ctx()))
    assert (rapport.status, rapport.huidige.versie) == (RapportStatus.CONCEPT, 2)
    rapport = apply(rapport, herzie(rapport, body("v3"), ctx()))
    rapport = ingediend(rapport)
    assert rapport.ingediend == (1, 3)
    rapport = apply(rapport, noteer_goedkeuring(rapport, 3, rapport.huidige.inhoud_hash, ctx()))
    assert rapport.status is RapportStatus.GOEDGEKEURD
    for step in (lambda: herzie(rapport, body("v4"), ctx()), lambda: dien_in(rapport, ctx())):
        with pytest.raises(Conflict, match="goedgekeurd"):
            step()

    rapport = apply(rapport, noteer_instemming(rapport, 3, False, ctx()))
    assert rapport.status is RapportStatus.INSTEMMING_GEWEIGERD
    rapport = apply(rapport, noteer_instemming(rapport, 3, True, ctx()))
    assert rapport.status is RapportStatus.GOEDGEKEURD
    rapport = apply(rapport, noteer_vrijgave(rapport, 3, ctx()))
    assert rapport.status is RapportStatus.VRIJGEGEVEN
    assert noteer_instemming(rapport, 3, False, ctx()) is None  # an older refusal, late


def test_a_submission_carries_the_hash_of_that_versions_content() -> None:
    rapport = opgesteld()
    event = dien_in(rapport, ctx())
    assert (event.versie, event.inhoud_hash) == (1, inhoud_hash(rapport.huidige.inhoud))


def test_the_hash_is_sha256_of_the_canonical_json() -> None:
    concept = body("één", maatregel("werk", "kosteloos", "bestuurder", "Route"))
    inhoud = stel_op(uuid4(), AANVRAAG, onderzocht(), concept, ctx(), lambda: UUID(int=1)).inhoud
    expected = (
        '{"bevindingen":{"informatie":"informatie één","verplaatsen":"verplaatsen één",'
        '"werk":"werk één","wonen":"wonen één"},"maatregelen":[{"domein":"werk",'
        '"kosten":"kosteloos","maatregel_id":"00000000-0000-0000-0000-000000000001",'
        '"omschrijving":"Route","prioriteit":"hoog","uitvoerder":"bestuurder"}]}'
    )
    assert inhoud_hash(inhoud) == hashlib.sha256(expected.encode("utf-8")).hexdigest()
    changed = inhoud.model_copy(
        update={"bevindingen": inhoud.bevindingen.model_copy(update={"werk": "werk één."})}
    )
    assert inhoud_hash(changed) != inhoud_hash(inhoud)


# --- approval's decisions ------------------------------------------------------------------------


def test_decisions_must_name_a_submitted_version_and_its_content() -> None:
    rapport = opgesteld()
    with pytest.raises(BesluitPastNiet):  # never submitted
        noteer_goedkeuring(rapport, 1, rapport.huidige.inhoud_hash, ctx())
    rapport = ingediend(rapport)
    with pytest.raises(BesluitPastNiet):
        noteer_goedkeuring(rapport, 1, "0" * 64, ctx())
    with pytest.raises(BesluitPastNiet):
        noteer_afkeuring(rapport, 2, ctx())
    with pytest.raises(BesluitTeVroeg):
        noteer_vrijgave(rapport, 1, ctx())
    with pytest.raises(BesluitTeVroeg):
        noteer_instemming(rapport, 1, True, ctx())

    afgekeurd = apply(rapport, noteer_afkeuring(rapport, 1, ctx()))
    assert noteer_afkeuring(afgekeurd, 1, ctx()) is None
    with pytest.raises(BesluitPastNiet):  # a rejected version is never approved
        noteer_goedkeuring(afgekeurd, 1, rapport.huidige.inhoud_hash, ctx())

    approved = goedgekeurd()
    assert noteer_goedkeuring(approved, 1, approved.huidige.inhoud_hash, ctx()) is None
    with pytest.raises(BesluitPastNiet):
        noteer_vrijgave(approved, 2, ctx())
    released = vrijgegeven()
    assert noteer_vrijgave(released, 1, ctx()) is None


# --- who reads which version ---------------------------------------------------------------------


def states() -> dict[str, Rapport]:
    """One report in each state; versions 1 and 2 submitted (1 rejected), 2 approved."""
    concept = opgesteld()
    ter_toetsing = ingediend(concept)
    afgekeurd = apply(ter_toetsing, noteer_afkeuring(ter_toetsing, 1, ctx()))
    herzien = apply(afgekeurd, herzie(afgekeurd, body("v2"), ctx()))
    opnieuw = ingediend(herzien)
    approved = apply(opnieuw, noteer_goedkeuring(opnieuw, 2, opnieuw.huidige.inhoud_hash, ctx()))
    geweigerd = apply(approved, noteer_instemming(approved, 2, False, ctx()))
    released = apply(geweigerd, noteer_vrijgave(geweigerd, 2, ctx()))
    return {
        "concept": concept,
        "ter_toetsing": ter_toetsing,
        "herzien": herzien,
        "goedgekeurd": approved,
        "instemming_geweigerd": geweigerd,
        "vrijgegeven": released,
    }


Uitkomst = tuple[int | str, int | str, int | str]


def steeds(reden: str) -> Uitkomst:
    return (reden, reden, reden)


# state → role → what reading gives (a version, or the refusal's reason) when asking for no
# version (the role's default), for version 1 and for version 2
MATRIX: dict[str, dict[Rol, Uitkomst]] = {
    "concept": {
        Rol.BVA: steeds("nog_niet_ingediend"),
        Rol.BESTUURDER: steeds("nog_niet_goedgekeurd"),
        Rol.WERKGEVER: steeds("nog_niet_vrijgegeven"),
    },
    "ter_toetsing": {
        Rol.BVA: (1, 1, "versie_niet_ingediend"),
        Rol.BESTUURDER: steeds("nog_niet_goedgekeurd"),
    },
    "herzien": {
        Rol.ADVISEUR: (2, 1, 2),
        Rol.COMPLIANCE: (2, 1, 2),
        Rol.BVA: (1, 1, "versie_niet_ingediend"),
        Rol.BESTUURDER: steeds("nog_niet_goedgekeurd"),
    },
    "goedgekeurd": {
        Rol.BVA: (2, 1, 2),
        Rol.BESTUURDER: (2, "niet_de_goedgekeurde_versie", 2),
        Rol.WERKGEVER: steeds("nog_niet_vrijgegeven"),
    },
    "instemming_geweigerd": {
        Rol.BESTUURDER: (2, "niet_de_goedgekeurde_versie", 2),
        Rol.WERKGEVER: steeds("nog_niet_vrijgegeven"),
    },
    "vrijgegeven": {
        Rol.COMPLIANCE: (2, 1, 2),
        Rol.BESTUURDER: (2, "niet_de_goedgekeurde_versie", 2),
        Rol.WERKGEVER: (2, "niet_de_goedgekeurde_versie", 2),
    },
}


@pytest.mark.parametrize(
    ("state", "rol"), [(state, rol) for state, rows in MATRIX.items() for rol in rows]
)
def test_read_rules_by_state_role_and_version(state: str, rol: Rol) -> None:
    rapport = states()[state]
    for gevraagd, expected in zip((None, 1, 2), MATRIX[state][rol], strict=True):
        if isinstance(expected, int):
            assert leesbare_versie(rapport, rol, gevraagd) == expected, gevraagd
        else:
            with pytest.raises(Weigering) as refused:
                leesbare_versie(rapport, rol, gevraagd)
            assert refused.value.reden == expected, gevraagd


def test_every_read_is_its_own_record() -> None:
    rapport = goedgekeurd()
    reader = Context(now=NU, actor_id="best-1", actor_role="bestuurder")
    first, second = (
        lees(rapport, 1, Rol.BESTUURDER, reader),
        lees(rapport, 1, Rol.BESTUURDER, reader),
    )
    assert first.originator_id != second.originator_id
    assert first.originator_version == second.originator_version == 1
    assert (first.rapport_id, first.aanvraag_id, first.rol, first.ingezien_op) == (
        rapport.id,
        AANVRAAG,
        Rol.BESTUURDER,
        NU,
    )
    assert first.actor_id == "best-1"


# --- PKVW ----------------------------------------------------------------------------------------


def test_pkvw_moves_forward_and_the_same_status_again_changes_nothing() -> None:
    event = wijzig_pkvw(None, AANVRAAG, PkvwStatus.VERKLARING, None, None, ctx())
    assert isinstance(event, PkvwStatusGewijzigd)
    assert (event.originator_id, event.originator_version, event.geldig_tot) == (AANVRAAG, 1, None)
    onderzoek = project_onderzoek(None, [event])
    assert wijzig_pkvw(onderzoek, AANVRAAG, PkvwStatus.VERKLARING, None, None, ctx()) is None
    cert = wijzig_pkvw(onderzoek, AANVRAAG, PkvwStatus.CERTIFICAAT, date(2026, 1, 5), "A1", ctx())
    assert cert is not None
    assert (cert.geldig_tot, cert.nummer) == (date(2036, 1, 5), "A1")
    onderzoek = project_onderzoek(onderzoek, [cert])
    with pytest.raises(Conflict):
        wijzig_pkvw(onderzoek, AANVRAAG, PkvwStatus.VERKLARING, None, None, ctx())
    same = wijzig_pkvw(onderzoek, AANVRAAG, PkvwStatus.CERTIFICAAT, date(2026, 1, 5), None, ctx())
    assert same is None
    older = wijzig_pkvw(onderzoek, AANVRAAG, PkvwStatus.CERTIFICAAT, date(2025, 1, 5), None, ctx())
    assert older is None
    renewed = wijzig_pkvw(
        onderzoek, AANVRAAG, PkvwStatus.CERTIFICAAT, date(2026, 5, 1), None, ctx()
    )
    assert renewed is not None
    assert renewed.geldig_tot == date(2036, 5, 1)


@pytest.mark.parametrize(
    ("status", "afgegeven_op", "nummer", "rule"),
    [
        (PkvwStatus.CERTIFICAAT, None, None, "verplicht_bij_certificaat"),
        (PkvwStatus.CERTIFICAAT, date(2026, 5, 12), None, "niet_in_de_toekomst"),
        (PkvwStatus.VERKLARING, None, "A1", "alleen_bij_certificaat"),
        (PkvwStatus.GEEN, None, None, "niet_terug_naar_geen"),
    ],
)
def test_pkvw_input_rules(
    status: PkvwStatus, afgegeven_op: date | None, nummer: str | None, rule: str
) -> None:
    with pytest.raises(Ongeldig) as invalid:
        wijzig_pkvw(None, AANVRAAG, status, afgegeven_op, nummer, ctx())
    assert [e["rule"] for e in invalid.value.errors] == [rule]


def test_ten_years_and_the_dutch_calendar_day() -> None:
    assert tien_jaar_na(date(2020, 3, 1)) == date(2030, 3, 1)
    assert tien_jaar_na(date(2024, 2, 29)) == date(2034, 2, 28)
    assert vandaag(datetime(2026, 5, 11, 21, 59, tzinfo=UTC)) == date(2026, 5, 11)
    assert vandaag(datetime(2026, 5, 11, 22, 0, tzinfo=UTC)) == date(2026, 5, 12)


# --- measures and who pays -----------------------------------------------------------------------


def one(kosten: str, uitvoerder: str = "werkgever") -> Maatregel:
    return Maatregel(
        maatregel_id=uuid4(),
        domein=Domein.WONEN,
        omschrijving="x",
        kosten=Kosten(kosten),
        uitvoerder=Partij(uitvoerder),
        prioriteit=public.Prioriteit.HOOG,
    )


def test_who_pays_depends_on_the_costs_and_a_valid_certificate() -> None:
    assert wie_betaalt(one("kosteloos"), None, date(2026, 5, 11))[0] == "direct_uitvoerbaar"
    assert wie_betaalt(one("met_kosten"), None, date(2026, 5, 11))[0] == "wacht_op_pkvw"
    verklaring = note(None, wijzig_pkvw(None, AANVRAAG, PkvwStatus.VERKLARING, None, None, ctx()))
    assert wie_betaalt(one("met_kosten"), verklaring, date(2026, 5, 11))[0] == "wacht_op_pkvw"
    onderzoek = met_pkvw(date(2016, 5, 11))
    assert wie_betaalt(one("met_kosten"), onderzoek, date(2026, 5, 11))[0] == "werkgever"
    betaler, uitleg = wie_betaalt(one("met_kosten"), onderzoek, date(2026, 5, 12))
    assert betaler == "wacht_op_pkvw"
    assert "verlopen" in uitleg


def test_a_measure_is_carried_out_by_its_uitvoerder_in_the_right_state() -> None:
    concept = body(
        "m",
        maatregel("werk", "kosteloos", "bestuurder", "a"),
        maatregel("wonen", "met_kosten", "werkgever", "b"),
        maatregel("wonen", "met_kosten", "bestuurder", "c"),
    )
    zelf, camera, lamp = (m.maatregel_id for m in opgesteld(concept).huidige.inhoud.maatregelen)
    bestuurder, werkgever = frozenset({Partij.BESTUURDER}), frozenset({Partij.WERKGEVER})

    with pytest.raises(Conflict, match="nog niet goedgekeurd"):
        voer_uit(opgesteld(concept), zelf, bestuurder, None, ctx())
    approved = goedgekeurd(concept)
    with pytest.raises(Conflict, match="niet bij de goedgekeurde versie"):
        voer_uit(approved, uuid4(), bestuurder, None, ctx())
    with pytest.raises(Weigering):
        voer_uit(approved, camera, bestuurder, None, ctx())
    with pytest.raises(Conflict, match="nog niet vrijgegeven"):
        voer_uit(approved, camera, werkgever, met_pkvw(date(2026, 1, 1)), ctx())
    assert voer_uit(approved, lamp, bestuurder, None, ctx()) is not None  # at own cost
    done = apply(approved, voer_uit(approved, zelf, bestuurder, None, ctx()))
    assert voer_uit(done, zelf, bestuurder, None, ctx()) is None

    released = vrijgegeven(concept)
    with pytest.raises(Conflict, match="wacht op PKVW"):
        voer_uit(released, camera, werkgever, None, ctx())
    with pytest.raises(Conflict, match="wacht op PKVW"):
        voer_uit(released, camera, werkgever, met_pkvw(date(2016, 5, 10)), ctx())
    event = voer_uit(released, camera, werkgever, met_pkvw(date(2016, 5, 11)), ctx())
    assert event is not None
    assert (event.uitgevoerd_door, event.kosten, event.uitgevoerd_op) == (
        Partij.WERKGEVER,
        Kosten.MET_KOSTEN,
        NU,
    )


# --- gateway -------------------------------------------------------------------------------------


def test_the_gateway_publishes_summaries_never_the_text() -> None:
    rapport = opgesteld()
    stored = [
        stel_op(rapport.id, AANVRAAG, onderzocht(), body(), ctx(), lambda: UUID(int=3)),
        herzie(rapport, body("v2"), ctx()),
        dien_in(rapport, ctx()),
        lees(rapport, 1, Rol.COMPLIANCE, ctx()),
        wijzig_pkvw(None, AANVRAAG, PkvwStatus.CERTIFICAAT, date(2026, 1, 1), "GEHEIM-1", ctx()),
    ]
    announced = [p for event in stored if event for p in to_public(event)]
    assert [type(p).__name__ for p in announced] == [
        "RapportOpgesteld",
        "RapportHerzien",
        "RapportTerToetsingAangeboden",
        "RapportIngezien",
        "PkvwStatusGewijzigd",
    ]
    first = announced[0]
    assert isinstance(first, public.RapportOpgesteld)
    assert (first.versie, first.aantal_maatregelen) == (1, 2)
    assert first.maatregelen[0] == public.MaatregelSamenvatting(
        maatregel_id=UUID(int=3),
        domein=Domein.WONEN,
        kosten=Kosten.MET_KOSTEN,
        uitvoerder=Partij.WERKGEVER,
        prioriteit=public.Prioriteit.HOOG,
    )
    assert isinstance(announced[1], public.RapportHerzien)
    assert announced[1].versie == 2
    payloads = json.dumps([p.model_dump(mode="json") for p in announced])
    for text in ("Slot", "Route", "werk v", "GEHEIM-1"):
        assert text not in payloads


def test_decisions_and_conversations_are_noted_not_published_again() -> None:
    approved = goedgekeurd()
    noted = [
        noteer_gesprek(None, AANVRAAG, "gesprek_werkgever", uuid4(), NU, ctx()),
        noteer_woningscan(None, AANVRAAG, uuid4(), NU, ctx()),
        noteer_vrijgave(approved, 1, ctx()),
        noteer_instemming(approved, 1, False, ctx()),
    ]
    assert all(event is not None and to_public(event) == [] for event in noted)
