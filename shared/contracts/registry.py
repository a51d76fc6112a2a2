"""One registry of the public events: CloudEvent type ↔ model ↔ NATS subject ↔ schema id."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from uuid import UUID

from pydantic import ValidationError

from shared.contracts import events as ev
from shared.contracts.envelope import CloudEvent
from shared.contracts.errors import InvalidEvent, UnknownEventType, describe_errors

STREAM_NAME = "WEERBAAR"
SUBJECT_PREFIX = "weerbaar"
STREAM_SUBJECTS = (f"{SUBJECT_PREFIX}.>",)
"""The subjects the `WEERBAAR` stream captures."""
TYPE_PREFIX = "nl.weerbaarbestuur"
SCHEMA_URN_PREFIX = "urn:nl:weerbaarbestuur:schema"
NO_DOSSIER = "geen-dossier"
"""Subject token (and CloudEvent `subject`) of an event that concerns no one dossier."""

ALL_EVENTS: tuple[type[ev.PublicEvent], ...] = (
    # intake
    ev.AanvraagIngediend,
    ev.AanvraagIngetrokken,
    ev.AanvraagBuitenRegeling,
    ev.DossierAfgesloten,
    ev.PersoonsgegevensVergeten,
    ev.PersoonsgegevensVerstrekt,
    ev.BewaarplichtOpgelegd,
    ev.BewaarplichtOpgeheven,
    ev.GegevensVernietigd,
    # scheduling
    ev.ContactOpgenomen,
    ev.ContacttermijnGesteld,
    ev.ContacttermijnVerstreken,
    ev.AfspraakGepland,
    ev.AfspraakVerzet,
    ev.AfspraakGeannuleerd,
    ev.GesprekGevoerd,
    ev.WoningscanUitgevoerd,
    ev.ToelichtingAangevraagd,
    # assessment
    ev.RapportOpgesteld,
    ev.RapportHerzien,
    ev.RapportTerToetsingAangeboden,
    ev.RapportIngezien,
    ev.PkvwStatusGewijzigd,
    ev.MaatregelUitgevoerd,
    # approval
    ev.RapportGoedgekeurd,
    ev.RapportAfgekeurd,
    ev.RapportVerstrektAanBestuurder,
    ev.InstemmingGegeven,
    ev.InstemmingGeweigerd,
    ev.RapportVrijgegeven,
    # notifications
    ev.NotificatieVerzonden,
    ev.NotificatieMislukt,
    ev.WebhookAbonnementGefaald,
    ev.WebhookAbonnementHersteld,
    # every service
    ev.ToegangGeweigerd,
    ev.ToegangGeweigerdV2,
)


def event_type(model_cls: type[ev.PublicEvent]) -> str:
    """CloudEvent `type` of a model: `nl.weerbaarbestuur.<EventName>.v<N>`."""
    return f"{TYPE_PREFIX}.{model_cls.event_name}.v{model_cls.version}"


def dataschema_for(model_cls: type[ev.PublicEvent]) -> str:
    """CloudEvent `dataschema` (and JSON Schema `$id`) of a model."""
    return f"{SCHEMA_URN_PREFIX}:{model_cls.event_name}:v{model_cls.version}"


def _build_registry() -> Mapping[str, type[ev.PublicEvent]]:
    registry: dict[str, type[ev.PublicEvent]] = {}
    for model_cls in ALL_EVENTS:
        type_str = event_type(model_cls)
        if type_str in registry:
            raise RuntimeError(f"two models claim event type {type_str}")
        registry[type_str] = model_cls
    return MappingProxyType(registry)


REGISTRY: Mapping[str, type[ev.PublicEvent]] = _build_registry()
"""Every public event type string mapped to its model."""

EVENT_NAMES: frozenset[str] = frozenset(model_cls.event_name for model_cls in ALL_EVENTS)


def model_for_type(type_str: str) -> type[ev.PublicEvent]:
    """The model of a CloudEvent `type`; raise `UnknownEventType` when there is none."""
    try:
        return REGISTRY[type_str]
    except KeyError:
        raise UnknownEventType(f"unknown event type: {type_str!r}") from None


def _subject_token(aanvraag_id: UUID | None) -> str:
    return NO_DOSSIER if aanvraag_id is None else str(aanvraag_id)


def subject_for(event: ev.PublicEvent) -> str:
    """NATS subject of an event: `weerbaar.<service>.<EventName>.<aanvraag_id>`."""
    return ".".join(
        (
            SUBJECT_PREFIX,
            event.emitting_service,
            type(event).event_name,
            _subject_token(event.aanvraag_id),
        )
    )


def filter_for_type(event_name: str) -> str:
    """NATS filter subject for every event of one name, from any service and dossier."""
    if event_name not in EVENT_NAMES:
        raise UnknownEventType(f"unknown event name: {event_name!r}")
    return f"{SUBJECT_PREFIX}.*.{event_name}.*"


def filter_for_dossier(aanvraag_id: UUID | None) -> str:
    """NATS filter subject for every event of one dossier (None: events of no one dossier)."""
    return f"{SUBJECT_PREFIX}.*.*.{_subject_token(aanvraag_id)}"


def to_cloudevent(
    event: ev.PublicEvent,
    *,
    id: str,
    source: str,
    time: datetime,
    correlationid: str | None = None,
    causationid: str | None = None,
    actorrole: str | None = None,
    actorid: str | None = None,
    traceparent: str | None = None,
) -> CloudEvent:
    """Wrap a public event in its CloudEvent envelope."""
    model_cls = type(event)
    if REGISTRY.get(event_type(model_cls)) is not model_cls:
        raise UnknownEventType(f"{model_cls.__name__} is not a registered public event")
    return CloudEvent(
        id=id,
        source=source,
        type=event_type(model_cls),
        subject=_subject_token(event.aanvraag_id),
        time=time,
        dataschema=dataschema_for(model_cls),
        data=event.model_dump(mode="json"),
        correlationid=correlationid,
        causationid=causationid,
        actorrole=actorrole,
        actorid=actorid,
        traceparent=traceparent,
    )


def from_cloudevent(ce: CloudEvent) -> ev.PublicEvent:
    """The public event inside an envelope, validated against the model of its `type`.

    Raises `UnknownEventType` for a type without a model and `InvalidEvent` when `data` does not
    validate or does not match the envelope's `subject`.
    """
    model_cls = model_for_type(ce.type)
    try:
        event = model_cls.model_validate(ce.data)
    except ValidationError as exc:
        # `from None`: the pydantic error quotes the input, which may hold personal data.
        raise InvalidEvent(
            f"invalid data for {ce.type}: {describe_errors(exc.errors(include_input=False))}"
        ) from None
    if ce.subject != _subject_token(event.aanvraag_id):
        raise InvalidEvent(f"invalid {ce.type}: subject does not match data.aanvraag_id")
    return event
