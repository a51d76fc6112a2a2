"""Public events carry ids, statuses, dates, roles and counts only, and cannot be changed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from shared.contracts import events as ev
from shared.contracts.generate import schema_for
from shared.contracts.registry import ALL_EVENTS
from tests.contract.examples import AANVRAAG_ID, EXAMPLES, MOMENT

# Field names that would suggest personal data or free text in a public payload.
FORBIDDEN_NAME_PARTS = (
    "naam", "name", "adres", "address", "straat", "postcode", "woonplaats", "email", "mail",
    "telefoon", "phone", "geboorte", "bsn", "omschrijving", "beschrijving", "tekst", "text",
    "opmerking", "bericht", "dreiging", "bevinding", "inhoud", "toelichting",
)  # fmt: skip
ALLOWED_NAMES = {"inhoud_hash"}  # a hash of the content, never the content
STRING_FORMATS = {"uuid", "date", "date-time"}


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    return schema["$defs"][ref.rsplit("/", 1)[1]] if ref else node


def string_branches(schema: dict[str, Any], prop: dict[str, Any]) -> list[dict[str, Any]]:
    branches = [resolve(schema, b) for b in prop.get("anyOf", [prop])]
    return [b for b in branches if b.get("type") == "string"]


@pytest.mark.parametrize("model_cls", ALL_EVENTS, ids=lambda m: m.__name__)
def test_no_field_name_suggests_personal_data(model_cls: type[ev.PublicEvent]) -> None:
    for name in model_cls.model_fields:
        if name in ALLOWED_NAMES:
            continue
        assert not any(part in name for part in FORBIDDEN_NAME_PARTS), (
            f"{model_cls.__name__}.{name} looks like personal data or free text"
        )


@pytest.mark.parametrize("model_cls", ALL_EVENTS, ids=lambda m: m.__name__)
def test_no_field_accepts_free_text(model_cls: type[ev.PublicEvent]) -> None:
    schema = schema_for(model_cls)
    for name, prop in schema["properties"].items():
        for branch in string_branches(schema, prop):
            constrained = (
                "pattern" in branch
                or "enum" in branch
                or "const" in branch
                or branch.get("format") in STRING_FORMATS
            )
            assert constrained, f"{model_cls.__name__}.{name} accepts free text"


@pytest.mark.parametrize("model_cls", ALL_EVENTS, ids=lambda m: m.__name__)
def test_every_event_and_field_is_described(model_cls: type[ev.PublicEvent]) -> None:
    assert model_cls.__doc__
    for name, field in model_cls.model_fields.items():
        assert field.description, f"{model_cls.__name__}.{name} has no description"


@pytest.mark.parametrize("model_cls", ALL_EVENTS, ids=lambda m: m.__name__)
def test_every_event_but_refusals_and_webhook_health_needs_a_dossier(
    model_cls: type[ev.PublicEvent],
) -> None:
    data = EXAMPLES[model_cls].model_dump(mode="json")
    data["aanvraag_id"] = None
    without_dossier = (
        ev.ToegangGeweigerd,
        ev.ToegangGeweigerdV2,
        ev.WebhookAbonnementGefaald,
        ev.WebhookAbonnementHersteld,
    )
    if model_cls in without_dossier:
        assert model_cls.model_validate(data).aanvraag_id is None
    else:
        with pytest.raises(ValidationError, match="aanvraag_id"):
            model_cls.model_validate(data)


@pytest.mark.parametrize("model_cls", ALL_EVENTS, ids=lambda m: m.__name__)
def test_events_cannot_be_changed_after_creation(model_cls: type[ev.PublicEvent]) -> None:
    with pytest.raises(ValidationError, match="frozen"):
        EXAMPLES[model_cls].aanvraag_id = AANVRAAG_ID  # type: ignore[misc]


def test_event_name_defaults_to_the_class_name_and_version_to_1() -> None:
    assert ev.RapportVrijgegeven.event_name == "RapportVrijgegeven"
    assert ev.RapportVrijgegeven.version == 1


@pytest.mark.parametrize(
    "adviseur_id", ["jan.jansen@example.nl", "Jan Jansen", "", "x" * 129], ids=repr
)
def test_an_actor_id_that_could_be_a_name_or_address_is_refused(adviseur_id: str) -> None:
    data = EXAMPLES[ev.AfspraakGepland].model_dump() | {"adviseur_id": adviseur_id}
    with pytest.raises(ValidationError, match="adviseur_id"):
        ev.AfspraakGepland.model_validate(data)


@pytest.mark.parametrize(
    "actie",
    ["GET /aanvragen?email=jan@example.nl", "GET rapporten", "read the report of J. Jansen"],
    ids=repr,
)
def test_a_refused_action_is_a_route_template_only(actie: str) -> None:
    data = EXAMPLES[ev.ToegangGeweigerd].model_dump() | {"actie": actie}
    with pytest.raises(ValidationError, match="actie"):
        ev.ToegangGeweigerd.model_validate(data)


@pytest.mark.parametrize("code", ["GM0363", "PV27", "WS0155"])
def test_organisatie_code_accepts_cbs_codes(code: str) -> None:
    data = EXAMPLES[ev.RapportVrijgegeven].model_dump() | {"organisatie_code": code}
    assert ev.RapportVrijgegeven.model_validate(data).organisatie_code == code


@pytest.mark.parametrize("code", ["Gemeente Amsterdam", "GM363", "gm0363", "XX0363"])
def test_organisatie_code_refuses_anything_else(code: str) -> None:
    data = EXAMPLES[ev.RapportVrijgegeven].model_dump() | {"organisatie_code": code}
    with pytest.raises(ValidationError, match="organisatie_code"):
        ev.RapportVrijgegeven.model_validate(data)


def test_timestamps_are_normalised_to_utc() -> None:
    data = EXAMPLES[ev.GesprekGevoerd].model_dump(mode="json")
    data["gevoerd_op"] = "2025-03-03T10:30:00+01:00"

    parsed = ev.GesprekGevoerd.model_validate(data)

    assert parsed.gevoerd_op == MOMENT
    assert parsed.model_dump(mode="json")["gevoerd_op"] == "2025-03-03T09:30:00Z"
