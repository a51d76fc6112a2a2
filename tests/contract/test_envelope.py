"""Public events travel as CloudEvents JSON and come back unchanged; bad input is refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from shared.contracts import events as ev
from shared.contracts.envelope import CloudEvent
from shared.contracts.errors import (
    ContractError,
    InvalidCloudEvent,
    InvalidEvent,
    UnknownEventType,
)
from shared.contracts.registry import (
    ALL_EVENTS,
    from_cloudevent,
    model_for_type,
    to_cloudevent,
)
from tests.contract.examples import AANVRAAG_ID, EXAMPLES

SOURCE = "urn:nl:weerbaarbestuur:service:scheduling"
WHEN = datetime(2025, 3, 3, 11, 15, 30, 123456, tzinfo=timezone(timedelta(hours=1)))
PERSONAL = "jan.jansen@example.nl"


def wire(event: ev.PublicEvent, **extensions: Any) -> bytes:
    return to_cloudevent(event, id="evt-1", source=SOURCE, time=WHEN, **extensions).to_json()


@pytest.mark.parametrize("model_cls", ALL_EVENTS, ids=lambda m: m.__name__)
def test_round_trip_through_cloudevent_json(model_cls: type[ev.PublicEvent]) -> None:
    original = EXAMPLES[model_cls]
    raw = wire(original, correlationid="corr-1", actorrole="secretariaat", actorid="user-42")

    parsed = from_cloudevent(CloudEvent.from_json(raw))

    assert type(parsed) is model_cls
    assert parsed == original


def test_envelope_attributes_follow_the_nl_gov_profile() -> None:
    event = EXAMPLES[ev.AfspraakGepland]
    document = json.loads(
        wire(event, causationid="evt-0", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    )

    assert document["specversion"] == "1.0"
    assert document["id"] == "evt-1"
    assert document["source"] == SOURCE
    assert document["type"] == "nl.weerbaarbestuur.AfspraakGepland.v1"
    assert document["subject"] == str(AANVRAAG_ID)
    assert document["time"] == "2025-03-03T10:15:30.123456Z"
    assert document["datacontenttype"] == "application/json"
    assert document["dataschema"] == "urn:nl:weerbaarbestuur:schema:AfspraakGepland:v1"
    assert document["causationid"] == "evt-0"
    assert document["data"]["gepland_op"] == "2025-03-03T09:30:00Z"


def test_extensions_without_a_value_are_left_out() -> None:
    document = json.loads(wire(EXAMPLES[ev.GesprekGevoerd], actorid="user-42"))

    assert document["actorid"] == "user-42"
    for absent in ("correlationid", "causationid", "actorrole", "traceparent"):
        assert absent not in document


def test_whole_seconds_are_written_without_a_fraction() -> None:
    ce = to_cloudevent(
        EXAMPLES[ev.GesprekGevoerd],
        id="evt-1",
        source=SOURCE,
        time=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    assert json.loads(ce.to_json())["time"] == "2025-01-02T03:04:05Z"


def test_a_time_without_timezone_is_refused() -> None:
    with pytest.raises(ValueError, match="time"):
        to_cloudevent(
            EXAMPLES[ev.GesprekGevoerd], id="evt-1", source=SOURCE, time=datetime(2025, 1, 2)
        )


def test_unknown_fields_in_data_and_envelope_are_ignored() -> None:
    document = json.loads(wire(EXAMPLES[ev.RapportVrijgegeven]))
    document["data"]["veld_uit_een_nieuwere_versie"] = 3
    document["nieuweextensie"] = "x"

    parsed = from_cloudevent(CloudEvent.from_json(json.dumps(document).encode()))

    assert parsed == EXAMPLES[ev.RapportVrijgegeven]


def test_invalid_json_is_refused_clearly() -> None:
    with pytest.raises(InvalidCloudEvent, match="not a valid CloudEvent") as error:
        CloudEvent.from_json(b"{not json " + PERSONAL.encode())
    assert PERSONAL not in str(error.value)


def test_missing_and_invalid_attributes_are_named_but_values_never_echoed() -> None:
    document = json.loads(wire(EXAMPLES[ev.GesprekGevoerd]))
    del document["source"]
    document["actorid"] = PERSONAL

    with pytest.raises(InvalidCloudEvent) as error:
        CloudEvent.from_json(json.dumps(document).encode())

    message = str(error.value)
    assert "source" in message
    assert "actorid" in message
    assert PERSONAL not in message
    assert error.value.__cause__ is None


def test_unknown_type_is_a_domain_error() -> None:
    document = json.loads(wire(EXAMPLES[ev.GesprekGevoerd]))
    document["type"] = "nl.weerbaarbestuur.GesprekGevoerd.v9"

    with pytest.raises(UnknownEventType, match=r"GesprekGevoerd\.v9"):
        from_cloudevent(CloudEvent.from_json(json.dumps(document).encode()))
    with pytest.raises(KeyError):
        model_for_type("nl.weerbaarbestuur.Onbekend.v1")


def test_invalid_data_names_type_and_field_but_never_the_value() -> None:
    document = json.loads(wire(EXAMPLES[ev.AfspraakGepland]))
    document["data"]["adviseur_id"] = PERSONAL
    del document["data"]["soort"]

    with pytest.raises(InvalidEvent) as error:
        from_cloudevent(CloudEvent.from_json(json.dumps(document).encode()))

    message = str(error.value)
    assert "nl.weerbaarbestuur.AfspraakGepland.v1" in message
    assert "adviseur_id" in message
    assert "soort" in message
    assert PERSONAL not in message
    assert isinstance(error.value, ContractError)


def test_subject_must_be_the_dossier_in_data() -> None:
    document = json.loads(wire(EXAMPLES[ev.GesprekGevoerd]))
    document["subject"] = "11111111-2222-4333-8444-555555555555"

    with pytest.raises(InvalidEvent, match="subject"):
        from_cloudevent(CloudEvent.from_json(json.dumps(document).encode()))


def test_event_without_a_dossier_uses_the_geen_dossier_subject() -> None:
    refused = ev.ToegangGeweigerd(
        aanvraag_id=None,
        dienst=ev.Dienst.INTAKE,
        actie="GET /aanvragen",
        reden="rol_ontbreekt",
        status_code=403,
    )
    ce = CloudEvent.from_json(wire(refused))

    assert ce.subject == "geen-dossier"
    assert from_cloudevent(ce) == refused


def test_an_unregistered_model_cannot_be_wrapped() -> None:
    class NietGeregistreerd(ev.PublicEvent):
        """Not part of the contract."""

        service = "intake"

    with pytest.raises(UnknownEventType, match="NietGeregistreerd"):
        to_cloudevent(NietGeregistreerd(aanvraag_id=AANVRAAG_ID), id="e", source=SOURCE, time=WHEN)


def test_a_caller_with_several_roles_is_recorded_with_all_of_them() -> None:
    ce = CloudEvent.from_json(wire(EXAMPLES[ev.GesprekGevoerd], actorrole="bestuurder,werkgever"))
    assert ce.actorrole == "bestuurder,werkgever"


@pytest.mark.parametrize("actorrole", ["Jan Jansen", "bestuurder, werkgever", ""], ids=repr)
def test_an_actor_role_that_is_not_a_role_code_is_refused(actorrole: str) -> None:
    with pytest.raises(ValueError, match="actorrole"):
        wire(EXAMPLES[ev.GesprekGevoerd], actorrole=actorrole)
