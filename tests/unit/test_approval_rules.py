"""Approval's domain: four-eyes, exactly the latest version and hash, consent and release."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from services.approval import domain
from services.approval.domain import Beoordeling, VierOgen, project
from services.approval.gateway import to_public
from shared.contracts import events as public
from shared.platform.errors import Conflict
from shared.platform.model import Context, DomainEvent

NU = datetime(2026, 5, 11, 10, 0, tzinfo=UTC)
AUTEUR = "adv-1"
BVA = "bva-1"
ORGANISATIE = "GM0363"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def door(actor_id: str | None, role: str = "bva") -> Context:
    return Context(now=NU, actor_id=actor_id, actor_role=role)


def apply(beoordeling: Beoordeling | None, events: list[DomainEvent]) -> Beoordeling:
    assert events, "the step recorded nothing"
    after = project(beoordeling, events)
    assert after is not None
    return after


def ingediend(
    beoordeling: Beoordeling | None = None, versie: int = 1, auteur: str = AUTEUR
) -> Beoordeling:
    rapport_id = beoordeling.id if beoordeling else uuid4()
    aanvraag_id = beoordeling.aanvraag_id if beoordeling else uuid4()
    events = domain.ontvang_ter_toetsing(
        beoordeling, rapport_id, aanvraag_id, versie, sha(f"v{versie}"), auteur, NU, door(auteur)
    )
    return apply(beoordeling, events)


def goedgekeurd(beoordeling: Beoordeling) -> Beoordeling:
    laatste = beoordeling.laatste
    assert laatste is not None
    return apply(
        beoordeling, domain.keur_goed(beoordeling, laatste.versie, laatste.inhoud_hash, door(BVA))
    )


# --- following assessment -----------------------------------------------------------------------


def test_a_submission_opens_the_review_with_its_version_hash_and_author() -> None:
    beoordeling = ingediend()
    assert beoordeling.version == 2  # opened, then the version
    laatste = beoordeling.laatste
    assert laatste is not None
    assert (laatste.versie, laatste.inhoud_hash, laatste.auteur_id) == (1, sha("v1"), AUTEUR)
    assert beoordeling.auteurs == {AUTEUR}
    assert beoordeling.status == "ter_toetsing"


def test_a_repeated_or_overtaken_submission_changes_nothing() -> None:
    beoordeling = ingediend(ingediend(ingediend(), versie=2), versie=3)
    for versie in (1, 2, 3):
        again = domain.ontvang_ter_toetsing(
            beoordeling,
            beoordeling.id,
            beoordeling.aanvraag_id,
            versie,
            sha(f"v{versie}"),
            AUTEUR,
            NU,
            door(AUTEUR),
        )
        assert again == []


def test_a_draft_before_any_submission_is_in_opstelling() -> None:
    events = domain.neem_bewerking_op(None, uuid4(), uuid4(), 1, AUTEUR, door(AUTEUR))
    beoordeling = apply(None, events)
    assert beoordeling.status == "in_opstelling"
    assert beoordeling.auteurs == {AUTEUR}
    # The same writer again adds nothing.
    again = domain.neem_bewerking_op(
        beoordeling, beoordeling.id, beoordeling.aanvraag_id, 2, AUTEUR, door(AUTEUR)
    )
    assert again == []


# --- four-eyes -----------------------------------------------------------------------------------


def test_the_author_may_not_approve_or_reject() -> None:
    beoordeling = ingediend()
    with pytest.raises(VierOgen):
        domain.keur_goed(beoordeling, 1, sha("v1"), door(AUTEUR))
    with pytest.raises(VierOgen):
        domain.keur_af(beoordeling, 1, sha("v1"), ["Onvolledig."], door(AUTEUR))


def test_a_colleague_who_only_revised_the_report_may_not_decide_either() -> None:
    beoordeling = ingediend()
    revised = domain.neem_bewerking_op(
        beoordeling, beoordeling.id, beoordeling.aanvraag_id, 2, "adv-2", door("adv-2")
    )
    beoordeling = ingediend(apply(beoordeling, revised), versie=2)
    with pytest.raises(VierOgen):
        domain.keur_goed(beoordeling, 2, sha("v2"), door("adv-2"))


def test_a_decision_without_a_known_actor_is_refused() -> None:
    with pytest.raises(VierOgen):
        domain.keur_goed(ingediend(), 1, sha("v1"), door(None))


# --- which version -------------------------------------------------------------------------------


def test_approval_names_the_version_and_hands_it_to_the_bestuurder() -> None:
    beoordeling = ingediend()
    events = domain.keur_goed(beoordeling, 1, sha("v1"), door(BVA))
    approved, handed = events
    assert isinstance(approved, domain.RapportGoedgekeurd)
    assert (approved.versie, approved.inhoud_hash) == (1, sha("v1"))
    assert isinstance(handed, domain.RapportVerstrektAanBestuurder)
    assert handed.originator_version == approved.originator_version + 1
    after = apply(beoordeling, events)
    assert after.status == "goedgekeurd"
    versie = after.versie(1)
    assert versie is not None
    assert (versie.besluit, versie.besloten_door) == ("goedgekeurd", BVA)


def test_nothing_to_decide_before_a_submission() -> None:
    beoordeling = apply(
        None, domain.neem_bewerking_op(None, uuid4(), uuid4(), 1, AUTEUR, door(AUTEUR))
    )
    with pytest.raises(Conflict) as refused:
        domain.keur_goed(beoordeling, 1, sha("v1"), door(BVA))
    assert refused.value.code == "niet_ter_toetsing"


def test_only_the_latest_submitted_version_can_be_decided() -> None:
    beoordeling = ingediend(ingediend(), versie=2)
    for versie in (1, 3):
        with pytest.raises(Conflict) as refused:
            domain.keur_goed(beoordeling, versie, sha(f"v{versie}"), door(BVA))
        assert refused.value.code == "niet_laatste_versie"
        with pytest.raises(Conflict) as refused:
            domain.keur_af(beoordeling, versie, sha(f"v{versie}"), ["x"], door(BVA))
        assert refused.value.code == "niet_laatste_versie"


def test_the_hash_must_match_the_submitted_content() -> None:
    beoordeling = ingediend()
    with pytest.raises(Conflict) as refused:
        domain.keur_goed(beoordeling, 1, sha("iets anders"), door(BVA))
    assert refused.value.code == "inhoud_gewijzigd"
    with pytest.raises(Conflict) as refused:
        domain.keur_af(beoordeling, 1, sha("iets anders"), ["x"], door(BVA))
    assert refused.value.code == "inhoud_gewijzigd"


def test_approving_the_approved_version_again_changes_nothing() -> None:
    beoordeling = goedgekeurd(ingediend())
    assert domain.keur_goed(beoordeling, 1, sha("v1"), door("bva-2")) == []


def test_after_an_approval_nothing_else_is_decided() -> None:
    beoordeling = goedgekeurd(ingediend())
    with pytest.raises(Conflict) as refused:
        domain.keur_af(beoordeling, 1, sha("v1"), ["Toch niet."], door(BVA))
    assert refused.value.code == "al_goedgekeurd"
    later = ingediend(beoordeling, versie=2)
    with pytest.raises(Conflict) as refused:
        domain.keur_goed(later, 2, sha("v2"), door(BVA))
    assert refused.value.code == "al_goedgekeurd"


def test_a_rejected_version_is_revised_and_the_next_one_approved() -> None:
    redenen = ["Domein Wonen ontbreekt.", "Prioriteiten onduidelijk."]
    beoordeling = ingediend()
    rejected = domain.keur_af(beoordeling, 1, sha("v1"), redenen, door(BVA))
    beoordeling = apply(beoordeling, rejected)
    assert beoordeling.status == "afgekeurd"
    versie = beoordeling.versie(1)
    assert versie is not None
    assert versie.redenen == tuple(redenen)

    with pytest.raises(Conflict) as refused:
        domain.keur_goed(beoordeling, 1, sha("v1"), door(BVA))
    assert refused.value.code == "al_afgekeurd"
    # The same rejection again is the same request: no second effect.
    assert domain.keur_af(beoordeling, 1, sha("v1"), redenen, door(BVA)) == []
    with pytest.raises(Conflict) as refused:
        domain.keur_af(beoordeling, 1, sha("v1"), ["Iets anders."], door(BVA))
    assert refused.value.code == "al_afgekeurd"

    beoordeling = ingediend(beoordeling, versie=2)
    assert beoordeling.status == "ter_toetsing"
    beoordeling = goedgekeurd(beoordeling)
    assert beoordeling.status == "goedgekeurd"
    goed = beoordeling.goedgekeurd
    assert goed is not None
    assert goed.versie == 2


# --- consent -------------------------------------------------------------------------------------


def test_consent_only_after_approval() -> None:
    with pytest.raises(Conflict) as refused:
        domain.stem_in(ingediend(), True, ORGANISATIE, door("best-1", "bestuurder"))
    assert refused.value.code == "niet_goedgekeurd"


def test_consent_releases_the_approved_version_to_the_werkgever() -> None:
    beoordeling = goedgekeurd(ingediend())
    consent, released = domain.stem_in(beoordeling, True, ORGANISATIE, door("best-1"))
    assert isinstance(consent, domain.InstemmingGegeven)
    assert isinstance(released, domain.RapportVrijgegeven)
    assert (released.versie, released.organisatie_code) == (1, ORGANISATIE)
    after = apply(beoordeling, [consent, released])
    assert after.status == "vrijgegeven"
    assert domain.stem_in(after, True, ORGANISATIE, door("best-1")) == []
    with pytest.raises(Conflict) as refused:
        domain.stem_in(after, False, ORGANISATIE, door("best-1"))
    assert refused.value.code == "al_vrijgegeven"


def test_a_refusal_is_recorded_once_and_can_become_consent_later() -> None:
    beoordeling = goedgekeurd(ingediend())
    refusal = domain.stem_in(beoordeling, False, ORGANISATIE, door("best-1"))
    assert [type(e) for e in refusal] == [domain.InstemmingGeweigerd]
    beoordeling = apply(beoordeling, refusal)
    assert beoordeling.status == "instemming_geweigerd"
    assert domain.stem_in(beoordeling, False, ORGANISATIE, door("best-1")) == []
    later = domain.stem_in(beoordeling, True, ORGANISATIE, door("best-1"))
    assert [type(e) for e in later] == [domain.InstemmingGegeven, domain.RapportVrijgegeven]
    assert apply(beoordeling, later).status == "vrijgegeven"


# --- gateway -------------------------------------------------------------------------------------


def test_the_public_rejection_counts_the_reasons_but_never_carries_them() -> None:
    beoordeling = ingediend()
    (rejected,) = domain.keur_af(beoordeling, 1, sha("v1"), ["Geheime reden A", "B"], door(BVA))
    (announced,) = to_public(rejected)
    assert announced == public.RapportAfgekeurd(
        aanvraag_id=beoordeling.aanvraag_id,
        rapport_id=beoordeling.id,
        versie=1,
        inhoud_hash=sha("v1"),
        aantal_redenen=2,
    )
    assert "Geheime reden" not in announced.model_dump_json()


def test_every_decision_is_announced_with_its_dossier() -> None:
    beoordeling = ingediend()
    events = domain.keur_goed(beoordeling, 1, sha("v1"), door(BVA))
    beoordeling = apply(beoordeling, events)
    events += domain.stem_in(beoordeling, False, ORGANISATIE, door("best-1"))
    beoordeling = apply(beoordeling, events[2:])
    events += domain.stem_in(beoordeling, True, ORGANISATIE, door("best-1"))
    announced = [p for e in events for p in to_public(e)]
    assert [type(p) for p in announced] == [
        public.RapportGoedgekeurd,
        public.RapportVerstrektAanBestuurder,
        public.InstemmingGeweigerd,
        public.InstemmingGegeven,
        public.RapportVrijgegeven,
    ]
    assert {p.aanvraag_id for p in announced} == {beoordeling.aanvraag_id}
    released = announced[-1]
    assert isinstance(released, public.RapportVrijgegeven)
    assert (released.rapport_id, released.versie, released.organisatie_code) == (
        beoordeling.id,
        1,
        ORGANISATIE,
    )


def test_following_assessment_announces_nothing_of_its_own() -> None:
    events = domain.ontvang_ter_toetsing(
        None, uuid4(), uuid4(), 1, sha("v1"), AUTEUR, NU, door(AUTEUR)
    )
    assert [p for e in events for p in to_public(e)] == []
