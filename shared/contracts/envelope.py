"""The CloudEvents 1.0 envelope (JSON structured mode, NL GOV profile) around every public event."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
)
from pydantic.config import JsonDict
from pydantic_core import to_json

from shared.contracts.errors import InvalidCloudEvent, describe_errors

# Opaque identifiers: no whitespace and no '@', so a name or an e-mail address cannot pass as one.
OPAQUE_ID_PATTERN = r"^[A-Za-z0-9._:|-]{1,128}$"
EVENT_TYPE_PATTERN = r"^nl\.weerbaarbestuur\.[A-Z][A-Za-z0-9]*\.v[1-9][0-9]*$"
TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
ACTOR_ROLE_PATTERN = r"^[a-z][a-z_]{0,31}(,[a-z][a-z_]{0,31}){0,7}$"

_EXTENSIONS = ("correlationid", "causationid", "actorrole", "actorid", "traceparent")


def as_utc(value: datetime) -> datetime:
    """Return an aware datetime converted to UTC."""
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(as_utc)]


def format_rfc3339(value: datetime) -> str:
    """Format an aware datetime as RFC 3339 in UTC with a `Z` suffix."""
    utc = value.astimezone(UTC)
    if utc.microsecond:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def _require_always_emitted(schema: JsonDict) -> None:
    # Defaults make these optional when constructing, yet every serialised event carries them,
    # and CloudEvents requires `specversion`: the published schema says so.
    properties = schema.get("properties")
    required = schema.get("required")
    if isinstance(properties, dict) and isinstance(required, list):
        always = {"specversion", "datacontenttype", *(str(name) for name in required)}
        schema["required"] = [name for name in properties if name in always]


class CloudEvent(BaseModel):
    """A public event in CloudEvents 1.0 JSON structured mode, following the NL GOV profile.

    The `data` member holds the event itself; its shape is the JSON Schema named by `dataschema`.
    Unknown extension attributes are ignored when parsing.
    """

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        title="CloudEvent",
        json_schema_extra=_require_always_emitted,
    )

    specversion: Literal["1.0"] = Field(
        default="1.0", description="CloudEvents specification version."
    )
    id: str = Field(
        pattern=OPAQUE_ID_PATTERN,
        description="Stable, unique event id; also the NATS `Nats-Msg-Id` used for deduplication.",
    )
    source: str = Field(
        min_length=1,
        description="URI reference of the emitting service (configurable per deployment).",
    )
    type: str = Field(
        pattern=EVENT_TYPE_PATTERN,
        description="Event type with its contract version: `nl.weerbaarbestuur.<EventName>.v<N>`.",
    )
    subject: str = Field(
        min_length=1,
        description="The aanvraag_id of the dossier, or `geen-dossier` when none applies.",
    )
    time: UtcDatetime = Field(description="When the event happened (RFC 3339, UTC).")
    datacontenttype: Literal["application/json"] = Field(
        default="application/json", description="Media type of `data`."
    )
    dataschema: str = Field(
        min_length=1,
        description="URN of the JSON Schema of `data`: "
        "`urn:nl:weerbaarbestuur:schema:<EventName>:v<N>`.",
    )
    data: dict[str, Any] = Field(
        description="The event payload: ids, statuses, dates, roles, counts; never personal data."
    )
    correlationid: str | None = Field(
        default=None,
        pattern=OPAQUE_ID_PATTERN,
        description="Extension: id shared by every event one request or process set in motion.",
    )
    causationid: str | None = Field(
        default=None,
        pattern=OPAQUE_ID_PATTERN,
        description="Extension: id of the event or request that directly caused this event.",
    )
    actorrole: str | None = Field(
        default=None,
        pattern=ACTOR_ROLE_PATTERN,
        description="Extension: role(s) under which the actor acted, comma-separated "
        "(e.g. `secretariaat`, `bestuurder,werkgever`).",
    )
    actorid: str | None = Field(
        default=None,
        pattern=OPAQUE_ID_PATTERN,
        description="Extension: opaque id of the actor (token `sub`); never a name or e-mail.",
    )
    traceparent: str | None = Field(
        default=None,
        pattern=TRACEPARENT_PATTERN,
        description="Extension: W3C Trace Context `traceparent` of the operation that emitted it.",
    )

    @field_serializer("time")
    def _serialise_time(self, value: datetime) -> str:
        return format_rfc3339(value)

    def to_json(self) -> bytes:
        """Serialise in structured mode; extension attributes without a value are left out."""
        document = self.model_dump(mode="json")
        for name in _EXTENSIONS:
            if document[name] is None:
                del document[name]
        return to_json(document)

    @classmethod
    def from_json(cls, raw: bytes | str) -> CloudEvent:
        """Parse a structured-mode CloudEvent; raise `InvalidCloudEvent` naming what is wrong."""
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            # `from None`: the pydantic error quotes the input, which may hold personal data.
            raise InvalidCloudEvent(
                f"not a valid CloudEvent: {describe_errors(exc.errors(include_input=False))}"
            ) from None
