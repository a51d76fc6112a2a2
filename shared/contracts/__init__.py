"""The public event contract: CloudEvent envelope, event models, registry and JSON Schemas."""

from shared.contracts.envelope import CloudEvent
from shared.contracts.errors import (
    ContractError,
    InvalidCloudEvent,
    InvalidEvent,
    UnknownEventType,
)
from shared.contracts.events import PublicEvent
from shared.contracts.registry import (
    ALL_EVENTS,
    STREAM_NAME,
    SUBJECT_PREFIX,
    dataschema_for,
    event_type,
    filter_for_dossier,
    filter_for_type,
    from_cloudevent,
    model_for_type,
    subject_for,
    to_cloudevent,
)

__all__ = [
    "ALL_EVENTS",
    "STREAM_NAME",
    "SUBJECT_PREFIX",
    "CloudEvent",
    "ContractError",
    "InvalidCloudEvent",
    "InvalidEvent",
    "PublicEvent",
    "UnknownEventType",
    "dataschema_for",
    "event_type",
    "filter_for_dossier",
    "filter_for_type",
    "from_cloudevent",
    "model_for_type",
    "subject_for",
    "to_cloudevent",
]
