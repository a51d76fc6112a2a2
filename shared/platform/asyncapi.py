"""Generate the AsyncAPI 3.0 document of the public events; check that the committed one is current.

    python -m shared.platform.asyncapi            # write docs/asyncapi.json
    python -m shared.platform.asyncapi --check    # exit 1 when docs/asyncapi.json is out of date

The document is built from the same code as the JSON Schemas (`shared.contracts.generate`): one
channel per NATS subject `weerbaar.<service>.<EventName>.{aanvraag_id}`, one message per CloudEvent
type on it (every version of an event shares its subject), one `send` operation per channel. Each
message's payload is the CloudEvents envelope with `data` narrowed to the event's schema.

FastStream can generate AsyncAPI from publishers, but its document describes the bare payload (not
the envelope), an invented `correlation_id` header and a placeholder server; correcting all of that
would take more code than writing the document, so it is written here directly.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import NoneType
from typing import Any, get_args

from pydantic import BaseModel

from shared.contracts.envelope import OPAQUE_ID_PATTERN
from shared.contracts.events import Dienst, PublicEvent
from shared.contracts.generate import envelope_schema, render, schema_for, schema_hash
from shared.contracts.registry import (
    ALL_EVENTS,
    NO_DOSSIER,
    STREAM_NAME,
    STREAM_SUBJECTS,
    SUBJECT_PREFIX,
    dataschema_for,
    event_type,
)
from shared.platform.relay import MSG_ID_HEADER, POSITION_HEADER
from shared.platform.settings import Settings

ASYNCAPI_VERSION = "3.0.0"
DOCUMENT_ID = "urn:nl:weerbaarbestuur:asyncapi"
DOCS_DIR = Path(__file__).resolve().parents[2] / "docs"
JSON_FILE = "asyncapi.json"
CONTENT_TYPE = "application/cloudevents+json"
ENVELOPE = "CloudEvent"
HEADERS = "NatsHeaders"
EVERY_SERVICE = "*"

_SCHEMAS_REF = "#/components/schemas/"
_DEFS_REF = "#/$defs/"


def _field_default(model: type[BaseModel], name: str) -> Any:
    return model.model_fields[name].default


def _field_minimum(model: type[BaseModel], name: str) -> Any:
    for constraint in model.model_fields[name].metadata:
        if hasattr(constraint, "ge"):
            return constraint.ge
    return None


def _description() -> str:
    window = _field_default(Settings, "stream_duplicate_window_s")
    minimum = _field_minimum(Settings, "stream_duplicate_window_s")
    return f"""\
The public events of Weerbaar, the case system of the CCV "Weerbaar bestuur" process.

**Transport.** NATS JetStream, stream `{STREAM_NAME}` (subjects `{", ".join(STREAM_SUBJECTS)}`).
Every event is published on `{SUBJECT_PREFIX}.<service>.<EventName>.<aanvraag_id>`; events that
concern no one dossier use `{NO_DOSSIER}` as the last token. Filter one event type with
`{SUBJECT_PREFIX}.*.<EventName>.*`, one dossier with `{SUBJECT_PREFIX}.*.*.<aanvraag_id>`.
The stream keeps all history: a durable pull consumer can replay from sequence 1 or from a time.

**Envelope.** Every message body is a CloudEvents 1.0 event in JSON structured mode, following the
NL GOV CloudEvents profile: `specversion`, `id`, `source`, `type`
(`nl.weerbaarbestuur.<EventName>.v<N>`), `subject` (the aanvraag_id), `time` (RFC 3339, UTC),
`datacontenttype`, `dataschema` (the URN of the data's JSON Schema) and `data`. Extension
attributes: `correlationid`, `causationid`, `actorrole`, `actorid` (opaque, never a name) and
`traceparent`. Ignore extension attributes and data fields you do not know.

**Deduplication.** The `{MSG_ID_HEADER}` header equals the CloudEvent `id`; JetStream drops a
publish whose id it saw within the stream's duplicate window (default {window:g} s, at least
{minimum:g} s). An event re-published after a longer outage gets a new stream sequence with the same
`id`: deduplicate by `id`.

**Ordering.** One service's events are on the stream in the order that service recorded them; there
is no global order across services. Use the CloudEvent `time` for when, the stream sequence for
where in the log.

**Versions.** A type string always means the same schema. A changed event is a new type
`.v<N+1>` on the same subject, published in parallel with the old one for a stated period before the
old one is retired; choose by `type`.

**No personal data.** Subjects and events carry ids, statuses, dates, roles and counts only; names,
addresses, contact details, threat descriptions and report contents stay in the owning service.

The `info.version` is a digest of every type string and its schema: it changes only when a type
is added, changed or retired.
"""


def _contract_version(models: Sequence[type[PublicEvent]]) -> str:
    # Descriptions may be reworded in place; the lock's canonical hashes ignore them.
    entries = {event_type(m): schema_hash(schema_for(m)) for m in models}
    digest = hashlib.sha256(json.dumps(entries, sort_keys=True).encode("utf-8")).hexdigest()
    return f"sha256-{digest[:16]}"


def _rewrite_refs(node: Any, names: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        result = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(_DEFS_REF):
                result[key] = _SCHEMAS_REF + names[value.removeprefix(_DEFS_REF)]
            else:
                result[key] = _rewrite_refs(value, names)
        return result
    if isinstance(node, list):
        return [_rewrite_refs(item, names) for item in node]
    return node


def _as_component(
    schema: Mapping[str, Any], owner: str, components: dict[str, Any]
) -> dict[str, Any]:
    """A published JSON Schema as an AsyncAPI component: its `$defs` become shared components.

    `$schema` and `$id` are left out so that references resolve against this document. A
    definition already present under the same name with other content gets the owner as prefix.
    """
    definitions: Mapping[str, Any] = schema.get("$defs", {})
    names = {name: name for name in definitions}
    # Renaming one definition changes the references in others: repeat until nothing clashes.
    while True:
        rewritten_defs = {name: _rewrite_refs(d, names) for name, d in definitions.items()}
        clashes = [
            name
            for name, definition in rewritten_defs.items()
            if components.get(names[name], definition) != definition
        ]
        if not clashes:
            break
        names.update({name: f"{owner}.{name}" for name in clashes})
    for name, definition in rewritten_defs.items():
        components[names[name]] = definition
    body = {k: v for k, v in schema.items() if k not in {"$schema", "$id", "$defs"}}
    rewritten: dict[str, Any] = _rewrite_refs(body, names)
    return rewritten


def _key(model_cls: type[PublicEvent]) -> str:
    return f"{model_cls.event_name}.v{model_cls.version}"


def _address(model_cls: type[PublicEvent]) -> str:
    service = "{service}" if model_cls.service == EVERY_SERVICE else model_cls.service
    return f"{SUBJECT_PREFIX}.{service}.{model_cls.event_name}.{{aanvraag_id}}"


def _may_lack_dossier(model_cls: type[PublicEvent]) -> bool:
    return NoneType in get_args(model_cls.model_fields["aanvraag_id"].annotation)


def _parameters(models: Sequence[type[PublicEvent]]) -> dict[str, Any]:
    dossier = "The aanvraag_id (UUID) of the dossier; the CloudEvent `subject`."
    if any(_may_lack_dossier(m) for m in models):
        dossier += f" `{NO_DOSSIER}` when the event concerns no one dossier."
    parameters: dict[str, Any] = {
        "aanvraag_id": {"description": dossier, "location": "$message.payload#/subject"}
    }
    if any(m.service == EVERY_SERVICE for m in models):
        parameters = {
            "service": {
                "description": "The service that published the event.",
                "enum": [d.value for d in Dienst],
            },
            **parameters,
        }
    return parameters


def _publisher(models: Sequence[type[PublicEvent]]) -> str:
    service = models[0].service
    return "every service" if service == EVERY_SERVICE else service


def _message(model_cls: type[PublicEvent]) -> dict[str, Any]:
    doc = (model_cls.__doc__ or "").strip()
    summary = doc.splitlines()[0] if doc else model_cls.event_name
    return {
        "name": event_type(model_cls),
        "title": f"{model_cls.event_name} v{model_cls.version}",
        "summary": summary,
        "description": doc,
        "contentType": CONTENT_TYPE,
        "headers": {"$ref": _SCHEMAS_REF + HEADERS},
        "payload": {"$ref": f"{_SCHEMAS_REF}{ENVELOPE}.{_key(model_cls)}"},
        "correlationId": {
            "description": "Shared by every event that one request or process set in motion.",
            "location": "$message.payload#/correlationid",
        },
        "tags": [{"name": _publisher([model_cls])}],
    }


def _envelope_for(model_cls: type[PublicEvent]) -> dict[str, Any]:
    return {
        "title": f"{ENVELOPE} {event_type(model_cls)}",
        "description": f"The CloudEvent that carries {model_cls.event_name} v{model_cls.version}.",
        "allOf": [{"$ref": _SCHEMAS_REF + ENVELOPE}],
        "type": "object",
        "properties": {
            "type": {"const": event_type(model_cls)},
            "dataschema": {"const": dataschema_for(model_cls)},
            "data": {"$ref": _SCHEMAS_REF + _key(model_cls)},
        },
    }


def _headers_schema() -> dict[str, Any]:
    return {
        "title": "NATS headers",
        "type": "object",
        "properties": {
            MSG_ID_HEADER: {
                "type": "string",
                "pattern": OPAQUE_ID_PATTERN,
                "description": "The CloudEvent `id`. JetStream drops a second publish with "
                "the same id within the stream's duplicate window.",
            },
            POSITION_HEADER: {
                "type": "string",
                "description": "The publishing relay's own bookkeeping; not part of the contract.",
            },
        },
        "required": [MSG_ID_HEADER],
    }


def _channels_by_subject(
    models: Sequence[type[PublicEvent]],
) -> dict[str, list[type[PublicEvent]]]:
    channels: dict[str, list[type[PublicEvent]]] = {}
    for model_cls in models:
        same_name = channels.setdefault(model_cls.event_name, [])
        if same_name and _address(same_name[0]) != _address(model_cls):
            raise ValueError(f"{model_cls.event_name} is published on two different subjects")
        same_name.append(model_cls)
    return channels


def build(models: Sequence[type[PublicEvent]] = ALL_EVENTS) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the public events."""
    schemas: dict[str, Any] = {
        ENVELOPE: _as_component(envelope_schema(), ENVELOPE, {}),
        HEADERS: _headers_schema(),
    }
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for name, versions in _channels_by_subject(models).items():
        for model_cls in versions:
            key = _key(model_cls)
            schemas[key] = _as_component(schema_for(model_cls), key, schemas)
            schemas[f"{ENVELOPE}.{key}"] = _envelope_for(model_cls)
            messages[key] = _message(model_cls)
        publisher = _publisher(versions)
        channels[name] = {
            "address": _address(versions[0]),
            "title": name,
            "summary": messages[_key(versions[-1])]["summary"],
            "description": f"Every {name} event, published by {publisher}: "
            + ", ".join(f"`{event_type(m)}`" for m in versions)
            + f". Stream `{STREAM_NAME}`; filter `{SUBJECT_PREFIX}.*.{name}.*`.",
            "messages": {_key(m): {"$ref": f"#/components/messages/{_key(m)}"} for m in versions},
            "parameters": _parameters(versions),
            "x-nats-stream": STREAM_NAME,
        }
        operations[f"{name}.send"] = {
            "action": "send",
            "title": f"{publisher} publishes {name}",
            "channel": {"$ref": f"#/channels/{name}"},
            "messages": [{"$ref": f"#/channels/{name}/messages/{_key(m)}"} for m in versions],
            "tags": [{"name": publisher}],
        }
    window = _field_default(Settings, "stream_duplicate_window_s")
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": DOCUMENT_ID,
        "info": {
            "title": "Weerbaar public events",
            "version": _contract_version(models),
            "description": _description(),
            "tags": [{"name": name} for name in dict.fromkeys(_publisher([m]) for m in models)],
        },
        "defaultContentType": CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
        "x-nats-jetstream": {
            "stream": STREAM_NAME,
            "subjects": list(STREAM_SUBJECTS),
            "retention": "all history (replay from sequence 1)",
            "deduplication": {
                "header": MSG_ID_HEADER,
                "value": "the CloudEvent id",
                "defaultWindowSeconds": window,
                "minimumWindowSeconds": _field_minimum(Settings, "stream_duplicate_window_s"),
            },
            "envelope": "CloudEvents 1.0, JSON structured mode, NL GOV CloudEvents profile",
        },
    }


def run(docs_dir: Path, *, check: bool, models: Sequence[type[PublicEvent]] = ALL_EVENTS) -> int:
    """Write (or with `check`, compare) the AsyncAPI document; return the exit status."""
    expected = render(build(models))
    path = docs_dir / JSON_FILE
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if current == expected:
        return 0
    if check:
        if current is None:
            print(f"missing: {path} (run python -m shared.platform.asyncapi)", file=sys.stderr)
            return 1
        diff = difflib.unified_diff(
            current.splitlines(),
            expected.splitlines(),
            f"{path} (committed)",
            f"{path} (generated)",
            lineterm="",
        )
        lines = list(diff)
        print(f"out of date: {path} (run python -m shared.platform.asyncapi)", file=sys.stderr)
        for line in lines[:60]:
            print(line, file=sys.stderr)
        if len(lines) > 60:
            print(f"... {len(lines) - 60} more diff lines", file=sys.stderr)
        return 1
    docs_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(expected, encoding="utf-8")
    print(f"wrote {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the AsyncAPI document, or with `--check` report how it is out of date."""
    parser = argparse.ArgumentParser(
        prog="python -m shared.platform.asyncapi",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 showing the difference"
    )
    parser.add_argument(
        "--docs-dir", type=Path, default=DOCS_DIR, help="folder of the committed document"
    )
    args = parser.parse_args(argv)
    return run(args.docs_dir, check=args.check)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
