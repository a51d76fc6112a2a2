"""The committed AsyncAPI document is what the code generates, complete, well formed and true."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

import pytest
from jsonschema import Draft7Validator, FormatChecker  # type: ignore[import-untyped]
from pydantic import Field

from shared.contracts import events as ev
from shared.contracts.generate import SCHEMA_DIR, render, schema_file
from shared.contracts.registry import ALL_EVENTS, event_type, subject_for, to_cloudevent
from shared.platform import asyncapi
from tests.contract.examples import EXAMPLES

COMMITTED = asyncapi.DOCS_DIR / asyncapi.JSON_FILE
SCHEMAS_REF = "#/components/schemas/"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(COMMITTED.read_text(encoding="utf-8"))
    return loaded


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"not a local reference: {ref}"
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        assert isinstance(node, dict) and part in node, f"dangling reference: {ref}"
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for item in node for r in refs(item)]
    return []


def payload_validator(document: dict[str, Any], message_key: str) -> Draft7Validator:
    payload_ref = document["components"]["messages"][message_key]["payload"]["$ref"]
    # The whole document as root, so that `#/components/schemas/...` resolves inside it.
    return Draft7Validator({**document, "$ref": payload_ref}, format_checker=FormatChecker())


def key(model_cls: type[ev.PublicEvent]) -> str:
    return f"{model_cls.event_name}.v{model_cls.version}"


def test_committed_document_equals_the_generated_one() -> None:
    assert COMMITTED.read_text(encoding="utf-8") == render(asyncapi.build()), (
        "docs/asyncapi.json is out of date: run python -m shared.platform.asyncapi"
    )


def test_check_passes_on_the_committed_document() -> None:
    assert asyncapi.main(["--check"]) == 0


class RapportVrijgegevenV2(ev.PublicEvent):
    """The report version was released to the werkgever (with the moment of release)."""

    service = ev.Dienst.APPROVAL.value
    event_name: ClassVar[str] = "RapportVrijgegeven"
    version: ClassVar[int] = 2

    aanvraag_id: UUID
    vrijgegeven_op: datetime = Field(description="When the report was released.")


def test_check_fails_naming_the_difference_when_an_event_changes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert asyncapi.run(tmp_path, check=False) == 0
    changed: tuple[type[ev.PublicEvent], ...] = (*ALL_EVENTS, RapportVrijgegevenV2)

    assert asyncapi.run(tmp_path, check=True, models=changed) == 1

    err = capsys.readouterr().err
    assert "out of date" in err
    assert "python -m shared.platform.asyncapi" in err
    assert "nl.weerbaarbestuur.RapportVrijgegeven.v2" in err
    assert "vrijgegeven_op" in err


def test_check_fails_when_the_document_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert asyncapi.main(["--check", "--docs-dir", str(tmp_path)]) == 1
    assert "missing" in capsys.readouterr().err
    assert not (tmp_path / asyncapi.JSON_FILE).exists()


def test_a_new_version_shares_the_channel_of_the_old_one() -> None:
    document = asyncapi.build((*ALL_EVENTS, RapportVrijgegevenV2))
    channel = document["channels"]["RapportVrijgegeven"]

    assert channel["address"] == "weerbaar.approval.RapportVrijgegeven.{aanvraag_id}"
    assert set(channel["messages"]) == {"RapportVrijgegeven.v1", "RapportVrijgegeven.v2"}
    assert document["info"]["version"] != asyncapi.build()["info"]["version"]


def test_document_has_the_shape_of_asyncapi_3(document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] and document["info"]["version"]
    for name, channel in document["channels"].items():
        assert channel["address"].startswith("weerbaar."), name
        assert "{aanvraag_id}" in channel["address"], name
        for parameter in channel["parameters"]:
            assert "{" + parameter + "}" in channel["address"], (name, parameter)
        for message in channel["messages"].values():
            assert message["$ref"].startswith("#/components/messages/")
    for name, operation in document["operations"].items():
        assert operation["action"] == "send", name
        channel_ref = operation["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/")
        for message in operation["messages"]:
            # AsyncAPI 3: an operation's messages are those of its channel.
            assert message["$ref"].startswith(channel_ref + "/messages/"), name
    for name, message in document["components"]["messages"].items():
        assert message["payload"]["$ref"].startswith(SCHEMAS_REF), name
        assert message["headers"]["$ref"].startswith(SCHEMAS_REF), name
    every_ref = refs(document)
    assert every_ref
    for ref in every_ref:
        resolve(document, ref)


def test_every_registered_event_type_is_described(document: dict[str, Any]) -> None:
    messages = document["components"]["messages"]
    by_type = {message["name"]: name for name, message in messages.items()}

    assert set(by_type) == {event_type(m) for m in ALL_EVENTS}
    for model_cls in ALL_EVENTS:
        message = messages[by_type[event_type(model_cls)]]
        assert message["description"], model_cls.__name__
        channel = document["channels"][model_cls.event_name]
        assert f"#/components/messages/{key(model_cls)}" in {
            m["$ref"] for m in channel["messages"].values()
        }
        assert f"{model_cls.event_name}.send" in document["operations"]


def test_document_describes_stream_envelope_and_deduplication(document: dict[str, Any]) -> None:
    description = document["info"]["description"]
    for needle in ("WEERBAAR", "NL GOV", "CloudEvents 1.0", "Nats-Msg-Id", "correlationid"):
        assert needle in description
    assert document["x-nats-jetstream"]["stream"] == "WEERBAAR"
    assert document["x-nats-jetstream"]["deduplication"]["header"] == "Nats-Msg-Id"
    envelope = document["components"]["schemas"]["CloudEvent"]["properties"]
    for extension in ("correlationid", "causationid", "actorrole", "actorid", "traceparent"):
        assert extension in envelope
    assert document["components"]["schemas"]["NatsHeaders"]["required"] == ["Nats-Msg-Id"]


def inline(document: dict[str, Any], node: Any, defs: dict[str, Any]) -> Any:
    """Undo the hoisting: component references become `#/$defs/<original name>` again."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "$ref":
                component = v.removeprefix(SCHEMAS_REF)
                original = component.rsplit(".", 1)[-1]
                if original not in defs:
                    defs[original] = None  # guards against cycles while inlining
                    defs[original] = inline(document, resolve(document, v), defs)
                out[k] = f"#/$defs/{original}"
            else:
                out[k] = inline(document, v, defs)
        return out
    if isinstance(node, list):
        return [inline(document, item, defs) for item in node]
    return node


@pytest.mark.parametrize("model_cls", ALL_EVENTS, ids=lambda m: m.__name__)
def test_data_schema_is_the_committed_json_schema(
    document: dict[str, Any], model_cls: type[ev.PublicEvent]
) -> None:
    committed = json.loads((SCHEMA_DIR / schema_file(model_cls)).read_text(encoding="utf-8"))
    defs: dict[str, Any] = {}
    data = inline(document, document["components"]["schemas"][key(model_cls)], defs)
    if defs:
        data["$defs"] = defs

    assert data == {k: v for k, v in committed.items() if k not in {"$schema", "$id"}}


@pytest.mark.parametrize("model_cls", ALL_EVENTS, ids=lambda m: m.__name__)
def test_published_cloudevent_matches_its_message(
    document: dict[str, Any], model_cls: type[ev.PublicEvent]
) -> None:
    event = EXAMPLES[model_cls]
    ce = to_cloudevent(
        event,
        id="approval:6f1c:3:0",
        source="urn:nl:weerbaarbestuur:approval",
        time=datetime(2025, 3, 3, 9, 30, tzinfo=UTC),
        correlationid="corr-1",
    )
    wire = json.loads(ce.to_json())
    validator = payload_validator(document, key(model_cls))

    validator.validate(wire)
    address = document["channels"][model_cls.event_name]["address"]
    subject = (
        re.escape(address)
        .replace(r"\{service\}", "[a-z]+")
        .replace(r"\{aanvraag_id\}", "(?P<aanvraag_id>[^.]+)")
    )
    match = re.fullmatch(subject, subject_for(event))
    assert match, f"{subject_for(event)} is not on channel {address}"
    assert match["aanvraag_id"] == wire["subject"]


def test_message_rejects_what_is_not_its_event(document: dict[str, Any]) -> None:
    released = EXAMPLES[ev.RapportVrijgegeven]
    ce = to_cloudevent(
        released, id="x-1", source="urn:nl:weerbaarbestuur:approval", time=datetime.now(UTC)
    )
    wire = json.loads(ce.to_json())
    wire["data"].pop("organisatie_code")

    errors = list(payload_validator(document, "RapportVrijgegeven.v1").iter_errors(wire))
    assert errors, "a RapportVrijgegeven without organisatie_code must not match its message"
    wrong_type = json.loads(ce.to_json()) | {"type": "nl.weerbaarbestuur.RapportAfgekeurd.v1"}
    assert list(payload_validator(document, "RapportVrijgegeven.v1").iter_errors(wrong_type))
