"""Field-level encryption of personal data with a key per dossier, and what forgetting leaves.

The mapper runs with an in-memory key ring (``MemoryKeys``); the PostgreSQL key store, KEK
rotation and the APIs are tested in ``tests/integration/test_forget.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from services.approval.domain import RapportAfgekeurd
from services.assessment.domain import (
    Concept,
    Onderzoek,
    PkvwStatusGewijzigd,
    RapportOpgesteld,
    inhoud_hash,
    project_rapport,
    stel_op,
)
from services.intake import gateway as intake_gateway
from services.intake.domain import (
    Aanmelding,
    AanvraagIngetrokken,
    AanvraagOntvangen,
    DossierAfgesloten,
    VergetenAanmelding,
    dien_in,
)
from shared.contracts import events as public
from shared.platform.eventstore import PydanticMapper, _NoTranscoder
from shared.platform.keys import KeyEncryptionKeys, KeyStoreError, MemoryKeys, Vergeten
from shared.platform.model import VERGETEN, Context, DomainEvent, first_event

NU = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
CTX = Context(now=NU, actor_id="adv-1", actor_role="adviseur")

AANMELDING: dict[str, Any] = {
    "ingediend_door": "werkgever",
    "bestuurder": {
        "naam": "Anna de Vries",
        "functie": "burgemeester",
        "email": "anna@example.nl",
        "telefoon": "+31 6 12345678",
        "adres": {
            "straat": "Dorpsstraat",
            "huisnummer": "77 zwart",
            "postcode": "1012 AB",
            "woonplaats": "Zaandam",
        },
    },
    "werkgever": {
        "organisatie": "Gemeente Amsterdam",
        "organisatie_code": "GM0363",
        "contactpersoon": "Piet Jansen",
        "email": "p.jansen@example.nl",
        "telefoon": "020-1234567",
    },
    "reden": "Dreigbrieven aan huis.",
    "verhuizing_gepland": True,
    "toestemming": True,
}
PERSONAL = (
    "Anna de Vries", "anna@example.nl", "12345678", "Dorpsstraat", "77 zwart", "1012 AB",
    "Zaandam", "Piet Jansen", "p.jansen@example.nl", "1234567", "Dreigbrieven",
)  # fmt: skip

CONCEPT = Concept.model_validate(
    {
        "bevindingen": {
            "werk": "Dreigmails op het werk.",
            "wonen": "Achterdeur zonder slot.",
            "informatie": "Adres vindbaar via het kadaster.",
            "verplaatsen": "Vaste route naar het stadhuis.",
        },
        "maatregelen": [
            {
                "domein": "wonen",
                "omschrijving": "Inbraakwerend slot op de achterdeur",
                "kosten": "met_kosten",
                "uitvoerder": "werkgever",
                "prioriteit": "hoog",
            }
        ],
    }
)


@pytest.fixture
def keys() -> MemoryKeys:
    return MemoryKeys()


@pytest.fixture
def mapper(keys: MemoryKeys) -> PydanticMapper:
    return PydanticMapper(transcoder=_NoTranscoder(), keys=keys)


def stored_json(stored: StoredEvent) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(stored.state)
    return state


def ontvangen() -> AanvraagOntvangen:
    return dien_in(uuid4(), Aanmelding.model_validate(AANMELDING), CTX)


def rapport_opgesteld(aanvraag_id: UUID) -> RapportOpgesteld:
    onderzocht = Onderzoek(
        id=aanvraag_id,
        version=3,
        gesprekken=frozenset({"gesprek_werkgever", "gesprek_bestuurder"}),
        woningscan=True,
    )
    return stel_op(uuid4(), aanvraag_id, onderzocht, CONCEPT, CTX)


# --- what is stored -------------------------------------------------------------------------------


def test_only_the_personal_fields_are_stored_encrypted(mapper: PydanticMapper) -> None:
    event = ontvangen()
    stored = mapper.to_stored_event(event)

    text = stored.state.decode()
    assert [value for value in PERSONAL if value in text] == []
    state = stored_json(stored)
    aanmelding = state["aanmelding"]
    assert set(aanmelding["bestuurder"]["adres"]) == {"enc", "ct"}
    assert set(aanmelding["reden"]) == {"enc", "ct"}
    # What is not personal stays readable: the dossier's skeleton needs no key.
    assert aanmelding["bestuurder"]["functie"] == "burgemeester"
    assert aanmelding["werkgever"]["organisatie_code"] == "GM0363"
    assert (aanmelding["ingediend_door"], aanmelding["verhuizing_gepland"]) == ("werkgever", True)
    assert state["originator_id"] == str(event.originator_id)
    assert state["timestamp"] == "2026-03-02T09:15:00Z"
    assert state["actor_role"] == "adviseur"


def test_every_value_of_one_dossier_names_the_same_key_and_dossiers_differ(
    mapper: PydanticMapper,
) -> None:
    def key_ids(event: DomainEvent) -> set[str]:
        text = mapper.to_stored_event(event).state.decode()
        return {part.split('"')[0] for part in text.split('"enc":"')[1:]}

    first, second = ontvangen(), ontvangen()
    assert len(key_ids(first)) == 1
    assert len(key_ids(second)) == 1
    assert key_ids(first) != key_ids(second)


def test_the_same_value_encrypts_differently_each_time(mapper: PydanticMapper) -> None:
    event = ontvangen()
    assert mapper.to_stored_event(event).state != mapper.to_stored_event(event).state


def test_an_event_without_personal_values_needs_no_key(
    mapper: PydanticMapper, keys: MemoryKeys
) -> None:
    aanvraag_id = uuid4()
    closed = first_event(
        DossierAfgesloten,
        aanvraag_id,
        CTX,
        reden="alle_maatregelen_uitgevoerd",
        toelichting=None,
        maatregelen_totaal=1,
        maatregelen_uitgevoerd=1,
    )
    pkvw = first_event(PkvwStatusGewijzigd, aanvraag_id, CTX, status="verklaring")

    for event in (closed, pkvw, first_event(AanvraagIngetrokken, aanvraag_id, CTX)):
        assert b'"enc"' not in mapper.to_stored_event(event).state
    assert keys.by_dossier == {}


# --- reading back ---------------------------------------------------------------------------------


def test_round_trip_while_the_key_exists(mapper: PydanticMapper) -> None:
    aanvraag_id = uuid4()
    events: list[DomainEvent] = [
        ontvangen(),
        rapport_opgesteld(aanvraag_id),
        first_event(PkvwStatusGewijzigd, aanvraag_id, CTX, status="certificaat", nummer="PKVW-123"),
        first_event(
            RapportAfgekeurd,
            uuid4(),
            CTX,
            aanvraag_id=aanvraag_id,
            versie=1,
            inhoud_hash="0" * 64,
            redenen=("Slot ontbreekt", "Route niet gewijzigd"),
        ),
    ]
    for event in events:
        loaded = mapper.to_domain_event(mapper.to_stored_event(event))
        assert loaded == event
        assert not loaded.vergeten


def test_a_forgotten_aanmelding_loads_without_its_personal_data(
    mapper: PydanticMapper, keys: MemoryKeys
) -> None:
    event = ontvangen()
    stored = mapper.to_stored_event(event)
    keys.destroy(event.originator_id)

    loaded = mapper.to_domain_event(stored)

    assert isinstance(loaded, AanvraagOntvangen)
    assert loaded.vergeten
    assert loaded.aanmelding == VergetenAanmelding.model_validate(
        {
            "ingediend_door": "werkgever",
            "bestuurder": {"functie": "burgemeester"},
            "werkgever": {"organisatie": "Gemeente Amsterdam", "organisatie_code": "GM0363"},
            "verhuizing_gepland": True,
            "toestemming": True,
        }
    )
    assert (loaded.originator_id, loaded.timestamp, loaded.actor_id) == (
        event.originator_id,
        NU,
        "adv-1",
    )
    # The gateway never needed the personal data: it announces exactly what it did before.
    assert intake_gateway.to_public(loaded) == intake_gateway.to_public(event)


def test_forgotten_texts_read_as_the_placeholder_and_the_rest_stays(
    mapper: PydanticMapper, keys: MemoryKeys
) -> None:
    aanvraag_id = uuid4()
    opgesteld = rapport_opgesteld(aanvraag_id)
    afgekeurd = first_event(
        RapportAfgekeurd,
        uuid4(),
        CTX,
        aanvraag_id=aanvraag_id,
        versie=1,
        inhoud_hash=inhoud_hash(opgesteld.inhoud),
        redenen=("Slot ontbreekt",),
    )
    pkvw = first_event(
        PkvwStatusGewijzigd, aanvraag_id, CTX, status="certificaat", nummer="PKVW-123"
    )
    stored = [mapper.to_stored_event(e) for e in (opgesteld, afgekeurd, pkvw)]
    keys.destroy(aanvraag_id)

    rapport_event, afkeuring, certificaat = (mapper.to_domain_event(s) for s in stored)

    assert rapport_event.inhoud.bevindingen.wonen == VERGETEN
    (maatregel,) = rapport_event.inhoud.maatregelen
    assert maatregel.omschrijving == VERGETEN
    assert maatregel.samenvatting() == opgesteld.inhoud.maatregelen[0].samenvatting()
    # The version keeps the hash it was approved under, not a hash of the placeholders.
    rapport = project_rapport(None, [rapport_event])
    assert rapport is not None
    assert rapport.huidige.inhoud_hash == inhoud_hash(opgesteld.inhoud)
    assert rapport.huidige.vergeten
    assert afkeuring.redenen == (VERGETEN,)
    assert afkeuring.versie == 1
    assert (certificaat.nummer, certificaat.status) == (VERGETEN, public.PkvwStatus.CERTIFICAAT)
    assert all(e.vergeten for e in (rapport_event, afkeuring, certificaat))


def test_no_new_personal_data_is_stored_for_a_forgotten_dossier(
    mapper: PydanticMapper, keys: MemoryKeys
) -> None:
    event = ontvangen()
    keys.destroy(event.originator_id)
    closed = first_event(
        DossierAfgesloten,
        event.originator_id,
        CTX,
        reden="gesloten_door_secretariaat",
        toelichting="Op verzoek gesloten",
        maatregelen_totaal=0,
        maatregelen_uitgevoerd=0,
    )
    with pytest.raises(Vergeten) as refused:
        mapper.to_stored_event(closed)
    assert refused.value.status == 410
    assert "Op verzoek" not in str(refused.value)


# --- integrity ------------------------------------------------------------------------------------


def test_a_ciphertext_moved_to_another_field_or_event_does_not_decrypt(
    mapper: PydanticMapper,
) -> None:
    event = ontvangen()
    stored = mapper.to_stored_event(event)
    state = stored_json(stored)
    bestuurder = state["aanmelding"]["bestuurder"]
    bestuurder["naam"], bestuurder["email"] = bestuurder["email"], bestuurder["naam"]
    swapped = StoredEvent(
        originator_id=stored.originator_id,
        originator_version=stored.originator_version,
        topic=stored.topic,
        state=json.dumps(state).encode(),
    )
    with pytest.raises(KeyStoreError):
        mapper.to_domain_event(swapped)

    later = json.loads(stored.state) | {"originator_version": 2}
    with pytest.raises(KeyStoreError):
        mapper.to_domain_event(
            StoredEvent(
                originator_id=stored.originator_id,
                originator_version=2,
                topic=stored.topic,
                state=json.dumps(later).encode(),
            )
        )


def test_an_encrypted_event_cannot_be_read_without_a_key_ring(mapper: PydanticMapper) -> None:
    stored = mapper.to_stored_event(ontvangen())
    with pytest.raises(KeyStoreError):
        PydanticMapper(transcoder=_NoTranscoder()).to_domain_event(stored)


# --- key-encryption keys on disk ------------------------------------------------------------------


def test_key_encryption_keys_are_private_files_and_the_newest_is_active(tmp_path: Path) -> None:
    keks = KeyEncryptionKeys(tmp_path / "secrets")
    with pytest.raises(KeyStoreError):
        keks.active()
    first = keks.create("1")
    assert keks.create("1") == first  # a second writer keeps the first key
    assert (tmp_path / "secrets" / "kek-1.key").stat().st_mode & 0o777 == 0o600
    assert keks.create_next() == "2"
    assert keks.ids() == ["1", "2"]
    kek_id, kek = keks.active()
    assert kek_id == "2" and kek != first and len(kek) == 32
    with pytest.raises(KeyStoreError):
        keks.retire("2")
    keks.retire("1")
    assert keks.ids() == ["2"]
    with pytest.raises(KeyStoreError):
        KeyEncryptionKeys(tmp_path / "secrets").get("1")
