"""The event store's pydantic mapper: round trips, validation on load, upcasting, public ids."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

import pytest
from eventsourcing.compressor import ZlibCompressor
from eventsourcing.cryptography import AESCipher
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import Environment, get_topic
from pydantic import ValidationError

from services.intake.domain import Aanmelding, AanvraagIngetrokken, AanvraagOntvangen, dien_in
from services.notifications.domain.notificatie import NotificatieMislukt
from services.scheduling.domain import PlanningGeopend
from shared.contracts.envelope import OPAQUE_ID_PATTERN
from shared.platform.eventstore import PydanticMapper, _NoTranscoder, decode_event, public_event_id
from shared.platform.model import Aggregate, Context, DomainEvent, first_event, next_event

NU = datetime(2026, 3, 2, 9, 15, 30, 123456, tzinfo=UTC)


def mapper(**kwargs: Any) -> PydanticMapper:
    """The mapper as ``ServiceApplication.construct_mapper`` builds it."""
    return PydanticMapper(transcoder=_NoTranscoder(), **kwargs)


def aanmelding() -> Aanmelding:
    return Aanmelding.model_validate(
        {
            "ingediend_door": "bestuurder",
            "bestuurder": {
                "naam": "Anna de Vries",
                "functie": "raadslid",
                "email": "anna@example.nl",
                "telefoon": "+31 6 12345678",
                "adres": {
                    "straat": "Dorpsstraat",
                    "huisnummer": "12a",
                    "postcode": "1012 AB",
                    "woonplaats": "Amsterdam",
                },
            },
            "werkgever": {
                "organisatie": "Gemeente Amsterdam",
                "organisatie_code": "GM0363",
                "contactpersoon": "Piet Jansen",
                "email": "p.jansen@example.nl",
                "telefoon": "020-1234567",
            },
            "reden": "Dreigbrieven.",
            "toestemming": True,
        }
    )


CTX = Context(
    now=NU,
    actor_id="sec-1",
    actor_role="adviseur,secretariaat",
    correlation_id="corr-1",
    causation_id="cause-1",
)


def domain_events() -> list[DomainEvent]:
    """Events with nested models, optional datetimes and enums: what the services store."""
    aanvraag_id = uuid4()
    return [
        dien_in(aanvraag_id, aanmelding(), CTX),
        first_event(AanvraagIngetrokken, aanvraag_id, CTX).model_copy(
            update={"originator_version": 2}
        ),
        first_event(
            PlanningGeopend,
            aanvraag_id,
            CTX,
            ingediend_op=NU,
            deadline=datetime(2026, 3, 4, 23, 0, tzinfo=UTC),
            werkdagen=3,
            kalender="algemene_termijnenwet",
        ),
        first_event(
            NotificatieMislukt,
            uuid4(),
            CTX,
            aanvraag_id=aanvraag_id,
            soort="bevestiging_aanvraag",
            ontvanger="aanvrager",
            oorzaak_event_id="ev-1",
            poging=1,
            reden_code="smtp_timeout",
            definitief=False,
            volgende_poging=None,
        ),
    ]


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("event", domain_events(), ids=lambda e: type(e).__name__)
def test_round_trip_gives_an_equal_event(event: DomainEvent) -> None:
    m = mapper()
    stored = m.to_stored_event(event)
    assert stored.originator_id == event.originator_id
    assert stored.originator_version == event.originator_version
    assert stored.topic == get_topic(type(event))
    loaded = m.to_domain_event(stored)
    assert type(loaded) is type(event)
    assert loaded == event


def test_stored_state_is_plain_json_without_a_version_for_v1() -> None:
    event = dien_in(uuid4(), aanmelding(), CTX)
    state = json.loads(mapper().to_stored_event(event).state)
    assert "class_version" not in state
    assert state["aanmelding"]["bestuurder"]["functie"] == "raadslid"
    assert state["timestamp"] == "2026-03-02T09:15:30.123456Z"


@pytest.mark.parametrize("event", domain_events(), ids=lambda e: type(e).__name__)
def test_round_trip_with_compression_and_encryption(event: DomainEvent) -> None:
    cipher = AESCipher(Environment(env={"CIPHER_KEY": AESCipher.create_key(16)}))
    m = mapper(compressor=ZlibCompressor(), cipher=cipher)
    stored = m.to_stored_event(event)
    assert b"Anna" not in stored.state
    assert m.to_domain_event(stored) == event


# --- validation on load --------------------------------------------------------------------------


def stored(event: DomainEvent, **changes: Any) -> StoredEvent:
    original = mapper().to_stored_event(event)
    state = json.loads(original.state) | changes
    return StoredEvent(
        originator_id=original.originator_id,
        originator_version=original.originator_version,
        topic=original.topic,
        state=json.dumps(state).encode(),
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"timestamp": "not a moment"},
        {"originator_id": "not-a-uuid"},
        {"onbekend_veld": 1},  # extra fields are refused
        {"originator_version": "eerste"},
    ],
)
def test_corrupt_state_raises_a_validation_error(changes: dict[str, Any]) -> None:
    event = dien_in(uuid4(), aanmelding(), CTX)
    with pytest.raises(ValidationError):
        mapper().to_domain_event(stored(event, **changes))


def test_missing_field_raises_a_validation_error() -> None:
    event = dien_in(uuid4(), aanmelding(), CTX)
    original = mapper().to_stored_event(event)
    state = json.loads(original.state)
    del state["aanmelding"]
    with pytest.raises(ValidationError):
        decode_event(original.topic, json.dumps(state).encode())


@pytest.mark.parametrize(
    ("part", "field", "value"),
    [
        ("werkgever", "organisatie_code", "GM363"),
        ("bestuurder", "functie", "koning"),
        (None, "toestemming", False),
    ],
)
def test_decode_validates_nested_rules_too(part: str | None, field: str, value: object) -> None:
    event = dien_in(uuid4(), aanmelding(), CTX)
    state = json.loads(mapper().to_stored_event(event).state)
    target = state["aanmelding"] if part is None else state["aanmelding"][part]
    target[field] = value
    with pytest.raises(ValidationError):
        decode_event(get_topic(AanvraagOntvangen), json.dumps(state).encode())


def test_a_topic_that_is_not_a_domain_event_is_refused() -> None:
    with pytest.raises(TypeError):
        decode_event(get_topic(Aggregate), b"{}")


# --- upcasting -----------------------------------------------------------------------------------


class DreigingGemeld(DomainEvent):
    """A test event in its third version: v1 had ``omschrijving``, v2 added ``ernst``."""

    class_version: ClassVar[int] = 3

    samenvatting: str
    ernst: int

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> dict[str, Any]:
        """v2 added ``ernst``; old events were all rated 1."""
        return state | {"ernst": 1}

    @staticmethod
    def upcast_v2_v3(state: dict[str, Any]) -> dict[str, Any]:
        """v3 renamed ``omschrijving`` to ``samenvatting``."""
        state = dict(state)
        state["samenvatting"] = state.pop("omschrijving")
        return state


class MeldingOntvangen(DomainEvent):
    """A test event in its second version: v2 added ``kanaal``."""

    class_version: ClassVar[int] = 2

    kanaal: str

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> dict[str, Any]:
        """Before v2 every report came by telephone."""
        return state | {"kanaal": "telefoon"}


def v1_state(**fields: Any) -> bytes:
    """Stored state as an earlier release wrote it: no ``class_version``."""
    return json.dumps(
        {
            "originator_id": "6f1c2a8e-4b7d-4e11-9a3c-0d5e8f7a9b21",
            "originator_version": 1,
            "timestamp": "2024-05-01T08:00:00Z",
            "actor_id": None,
            "actor_role": None,
            "correlation_id": None,
            "causation_id": None,
            **fields,
        }
    ).encode()


def test_a_v1_event_is_upcast_to_v2() -> None:
    event = decode_event(get_topic(MeldingOntvangen), v1_state())
    assert isinstance(event, MeldingOntvangen)
    assert event.kanaal == "telefoon"
    assert event.originator_id == UUID("6f1c2a8e-4b7d-4e11-9a3c-0d5e8f7a9b21")


def test_a_v1_event_is_upcast_step_by_step_to_v3() -> None:
    event = decode_event(get_topic(DreigingGemeld), v1_state(omschrijving="brief"))
    assert isinstance(event, DreigingGemeld)
    assert (event.samenvatting, event.ernst) == ("brief", 1)


def test_a_v2_event_is_only_upcast_from_v2() -> None:
    state = json.loads(v1_state(omschrijving="brief", ernst=4)) | {"class_version": 2}
    event = decode_event(get_topic(DreigingGemeld), json.dumps(state).encode())
    assert isinstance(event, DreigingGemeld)
    assert (event.samenvatting, event.ernst) == ("brief", 4)


def test_a_current_version_event_is_stored_with_its_version_and_not_upcast() -> None:
    m = mapper()
    event = first_event(MeldingOntvangen, uuid4(), CTX, kanaal="email")
    record = m.to_stored_event(event)
    assert json.loads(record.state)["class_version"] == 2
    assert m.to_domain_event(record) == event  # kanaal stays "email", not "telefoon"


# --- context and public ids ----------------------------------------------------------------------


def test_first_and_next_event_carry_the_context() -> None:
    aanvraag_id = uuid4()
    first = first_event(MeldingOntvangen, aanvraag_id, CTX, kanaal="email")
    assert (first.originator_id, first.originator_version) == (aanvraag_id, 1)
    assert (
        first.timestamp,
        first.actor_id,
        first.actor_role,
        first.correlation_id,
        first.causation_id,
    ) == (NU, "sec-1", "adviseur,secretariaat", "corr-1", "cause-1")
    state = Aggregate(id=aanvraag_id, version=7)
    following = next_event(MeldingOntvangen, state, Context(now=NU), kanaal="post")
    assert (following.originator_id, following.originator_version) == (aanvraag_id, 8)
    assert following.actor_id is None


def test_public_event_id_is_deterministic() -> None:
    aanvraag_id = UUID("6f1c2a8e-4b7d-4e11-9a3c-0d5e8f7a9b21")
    first = public_event_id("intake", aanvraag_id, 1, 0)
    assert first == public_event_id("intake", aanvraag_id, 1, 0)
    # A changed id would defeat the stream's deduplication of a re-sent message.
    assert first == "c39c36ea-b785-50e2-b278-a41150711b37"
    assert UUID(first)
    assert re.fullmatch(OPAQUE_ID_PATTERN, first)


def test_public_event_id_differs_by_index_version_originator_and_service() -> None:
    aanvraag_id = uuid4()
    ids = {
        public_event_id("intake", aanvraag_id, 1, 0),
        public_event_id("intake", aanvraag_id, 1, 1),
        public_event_id("intake", aanvraag_id, 2, 0),
        public_event_id("intake", uuid4(), 1, 0),
        public_event_id("scheduling", aanvraag_id, 1, 0),
    }
    assert len(ids) == 5
