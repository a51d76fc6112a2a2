"""The committed JSON Schemas are what the code generates, and they accept what we publish."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]

from shared.contracts import events as ev
from shared.contracts.generate import (
    ENVELOPE_FILE,
    LOCK_FILE,
    SCHEMA_DIR,
    expected_files,
    read_lock,
    schema_file,
)
from shared.contracts.registry import ALL_EVENTS, dataschema_for, to_cloudevent
from tests.contract.examples import EXAMPLES, MOMENT


def load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def test_committed_schema_files_equal_the_generated_ones() -> None:
    expected = expected_files(ALL_EVENTS, read_lock(SCHEMA_DIR))
    committed = {path.name for path in SCHEMA_DIR.glob("*.json")}

    assert committed == set(expected), "run: python -m shared.contracts.generate"
    for name, content in expected.items():
        on_disk = (SCHEMA_DIR / name).read_text(encoding="utf-8")
        assert on_disk == content, f"{name} is out of date: run python -m shared.contracts.generate"


@pytest.mark.parametrize("model_cls", ALL_EVENTS, ids=lambda m: m.__name__)
def test_committed_schema_is_identified_and_described(model_cls: type[ev.PublicEvent]) -> None:
    schema = load(SCHEMA_DIR / schema_file(model_cls))

    assert schema["$id"] == dataschema_for(model_cls)
    assert schema["title"] == model_cls.event_name
    assert schema["description"]
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"{name} has no description in {schema_file(model_cls)}"


@pytest.mark.parametrize("model_cls", ALL_EVENTS, ids=lambda m: m.__name__)
def test_committed_schema_accepts_the_published_data(model_cls: type[ev.PublicEvent]) -> None:
    check = validator(load(SCHEMA_DIR / schema_file(model_cls)))
    data = EXAMPLES[model_cls].model_dump(mode="json")

    check.validate(data)
    check.validate(data | {"veld_uit_een_nieuwere_versie": 1})  # consumers ignore new fields


@pytest.mark.parametrize("model_cls", ALL_EVENTS, ids=lambda m: m.__name__)
def test_committed_schema_refuses_data_without_its_required_fields(
    model_cls: type[ev.PublicEvent],
) -> None:
    schema = load(SCHEMA_DIR / schema_file(model_cls))
    check = validator(schema)
    data = EXAMPLES[model_cls].model_dump(mode="json")

    for name in schema["required"]:
        incomplete = {key: value for key, value in data.items() if key != name}
        assert not check.is_valid(incomplete), f"{name} is required but was not missed"


def test_committed_schema_refuses_an_unknown_status() -> None:
    check = validator(load(SCHEMA_DIR / schema_file(ev.PkvwStatusGewijzigd)))
    data = EXAMPLES[ev.PkvwStatusGewijzigd].model_dump(mode="json")

    assert not check.is_valid(data | {"status": "bijna"})
    assert not check.is_valid(data | {"aanvraag_id": "geen-uuid"})


@pytest.mark.parametrize("model_cls", ALL_EVENTS, ids=lambda m: m.__name__)
def test_envelope_schema_accepts_the_published_cloudevent(model_cls: type[ev.PublicEvent]) -> None:
    check = validator(load(SCHEMA_DIR / ENVELOPE_FILE))
    ce = to_cloudevent(
        EXAMPLES[model_cls], id="evt-1", source="urn:test", time=MOMENT, actorrole="bva"
    )
    document = json.loads(ce.to_json())

    check.validate(document)
    assert not check.is_valid({k: v for k, v in document.items() if k != "specversion"})


def test_version_lock_holds_every_type_string() -> None:
    lock = load(SCHEMA_DIR / LOCK_FILE)
    assert set(lock) >= {f"nl.weerbaarbestuur.{m.event_name}.v{m.version}" for m in ALL_EVENTS}
    assert all(len(digest) == 64 for digest in lock.values())
