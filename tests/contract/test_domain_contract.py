"""The contract follows domain.md: every listed event has a model, owned by the listed service,
and its type, subject and filters follow the stated conventions."""

from __future__ import annotations

import inspect
from uuid import UUID

import pytest

from shared.contracts import events as ev
from shared.contracts.errors import UnknownEventType
from shared.contracts.registry import (
    ALL_EVENTS,
    NO_DOSSIER,
    STREAM_NAME,
    event_type,
    filter_for_dossier,
    filter_for_type,
    subject_for,
)
from tests.contract.domain import ABSENT, contract_templates, domain_md_present, events_table
from tests.contract.examples import AANVRAAG_ID, EXAMPLES

EVERY_SERVICE = "every service"
PRESENT = domain_md_present()
DOMAIN_EVENTS = (
    [(service, name) for service, names in events_table().items() for name in names]
    if PRESENT
    else []
)
# Anyone's clone runs without ../shared: these tests then report that they did not run and why
# (test_domain_md.py fails instead where CI is set).
pytestmark = pytest.mark.skipif(not PRESENT, reason=ABSENT)
BY_NAME = {model_cls.event_name: model_cls for model_cls in ALL_EVENTS}


def nats_filter_matches(filter_subject: str, subject: str) -> bool:
    """NATS subject matching for filters built from literal tokens and `*`."""
    wanted, tokens = filter_subject.split("."), subject.split(".")
    return len(wanted) == len(tokens) and all(
        w in ("*", t) for w, t in zip(wanted, tokens, strict=True)
    )


def test_domain_md_lists_the_events_of_every_service() -> None:
    table = events_table()
    assert set(table) == {
        "intake", "scheduling", "assessment", "approval", "notifications", EVERY_SERVICE,
    }  # fmt: skip
    assert len(DOMAIN_EVENTS) >= 27


@pytest.mark.parametrize(("service", "event_name"), DOMAIN_EVENTS, ids=str)
def test_every_domain_event_has_a_registered_model_of_its_service(
    service: str, event_name: str
) -> None:
    assert event_name in BY_NAME, f"{event_name} (domain.md, {service}) has no public event model"
    model_cls = BY_NAME[event_name]
    assert model_cls.service == ("*" if service == EVERY_SERVICE else service)


def test_every_public_event_class_is_registered() -> None:
    defined = {
        cls
        for _, cls in inspect.getmembers(ev, inspect.isclass)
        if issubclass(cls, ev.PublicEvent) and cls is not ev.PublicEvent
    }
    assert defined == set(ALL_EVENTS)


def test_stream_name_is_the_one_in_domain_md() -> None:
    assert contract_templates()["stream"] == STREAM_NAME


@pytest.mark.parametrize("model_cls", ALL_EVENTS, ids=lambda m: m.__name__)
def test_type_follows_the_template_in_domain_md(model_cls: type[ev.PublicEvent]) -> None:
    template = contract_templates()["type"]
    expected = template.replace("<EventName>", model_cls.event_name).replace(
        "<N>", str(model_cls.version)
    )
    assert event_type(model_cls) == expected


@pytest.mark.parametrize("model_cls", ALL_EVENTS, ids=lambda m: m.__name__)
def test_subject_follows_the_template_in_domain_md(model_cls: type[ev.PublicEvent]) -> None:
    event = EXAMPLES[model_cls]
    expected = (
        contract_templates()["subject"]
        .replace("<service>", event.emitting_service)
        .replace("<EventName>", model_cls.event_name)
        .replace("<aanvraag_id>", str(event.aanvraag_id or NO_DOSSIER))
    )
    assert event.aanvraag_id in (AANVRAAG_ID, None)
    assert subject_for(event) == expected
    assert nats_filter_matches(filter_for_type(model_cls.event_name), expected)
    assert nats_filter_matches(filter_for_dossier(event.aanvraag_id), expected)


def test_filters_are_the_ones_domain_md_shows_integrators() -> None:
    templates = contract_templates()
    assert filter_for_type("RapportVrijgegeven") == templates["type_filter"]
    assert filter_for_dossier(AANVRAAG_ID) == templates["dossier_filter"].replace(
        "<aanvraag_id>", str(AANVRAAG_ID)
    )


def test_filters_select_only_their_own_type_and_dossier() -> None:
    other_dossier = UUID("11111111-2222-4333-8444-555555555555")
    vrijgegeven = EXAMPLES[ev.RapportVrijgegeven]
    other = vrijgegeven.model_copy(update={"aanvraag_id": other_dossier})
    assert not nats_filter_matches(filter_for_type("RapportGoedgekeurd"), subject_for(vrijgegeven))
    assert not nats_filter_matches(filter_for_dossier(AANVRAAG_ID), subject_for(other))


def test_toegang_geweigerd_is_published_under_the_refusing_service() -> None:
    refused = ev.ToegangGeweigerd(
        aanvraag_id=None,
        dienst=ev.Dienst.APPROVAL,
        actie="POST /rapporten/{id}/goedkeuren",
        reden="auteur_mag_niet_toetsen",
        status_code=403,
    )
    assert subject_for(refused) == "weerbaar.approval.ToegangGeweigerd.geen-dossier"
    assert nats_filter_matches(filter_for_dossier(None), subject_for(refused))


def test_filter_for_an_unknown_event_name_is_refused() -> None:
    with pytest.raises(UnknownEventType, match="RapportVrijgegevn"):
        filter_for_type("RapportVrijgegevn")
