"""Generate the published JSON Schemas of the public events and guard their versions.

    python -m shared.contracts.generate            # write shared/contracts/schemas/
    python -m shared.contracts.generate --check    # exit 1 when a committed file is out of date

`schemas/versions.lock.json` maps each type string to the SHA-256 of its schema. A published type
string always means the same schema: when a model's schema changes, its `version` must change too,
and generation refuses until it does. Only titles and descriptions may change in place.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from shared.contracts.envelope import CloudEvent
from shared.contracts.events import PublicEvent
from shared.contracts.registry import ALL_EVENTS, SCHEMA_URN_PREFIX, dataschema_for, event_type

SCHEMA_DIR = Path(__file__).parent / "schemas"
LOCK_FILE = "versions.lock.json"
ENVELOPE_FILE = "cloudevent.json"
ENVELOPE_SCHEMA_ID = f"{SCHEMA_URN_PREFIX}:CloudEvent"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

# Keywords that document a schema without changing which instances it accepts.
_ANNOTATIONS = frozenset({"title", "description", "examples", "$comment"})
# Keywords whose object keys are names (of properties, definitions), not keywords.
_NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})


def schema_file(model_cls: type[PublicEvent]) -> str:
    """File name of a model's schema: `<EventName>.v<N>.json`."""
    return f"{model_cls.event_name}.v{model_cls.version}.json"


def _with_header(schema_id: str, title: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    # Identity and documentation first, shared definitions last: the order a reader wants.
    head = {"$schema": JSON_SCHEMA_DIALECT, "$id": schema_id, "title": title}
    if "description" in schema:
        head["description"] = schema["description"]
    body = {k: v for k, v in schema.items() if k not in {"title", "description", "$defs"}}
    tail = {"$defs": schema["$defs"]} if "$defs" in schema else {}
    return {**head, **body, **tail}


def schema_for(model_cls: type[PublicEvent]) -> dict[str, Any]:
    """JSON Schema of a model's `data`, with the dataschema URN as `$id`."""
    schema = _with_header(
        dataschema_for(model_cls), model_cls.event_name, model_cls.model_json_schema()
    )
    if not schema.get("description"):
        raise ValueError(f"{model_cls.__name__} has no docstring to describe its schema")
    return schema


def envelope_schema() -> dict[str, Any]:
    """JSON Schema of the CloudEvent envelope."""
    return _with_header(ENVELOPE_SCHEMA_ID, "CloudEvent", CloudEvent.model_json_schema())


def _without_annotations(node: Any, *, names: bool = False) -> Any:
    if isinstance(node, dict):
        if names:
            return {key: _without_annotations(value) for key, value in node.items()}
        return {
            key: _without_annotations(value, names=key in _NAME_MAPS)
            for key, value in node.items()
            if key not in _ANNOTATIONS
        }
    if isinstance(node, list):
        return [_without_annotations(item) for item in node]
    return node


def schema_hash(schema: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical form of a schema: annotations removed, keys sorted, compact."""
    canonical = json.dumps(
        _without_annotations(schema), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def lock_violations(models: Iterable[type[PublicEvent]], lock: Mapping[str, str]) -> list[str]:
    """One message per locked type whose schema changed while its version did not."""
    return [
        f"{event_type(model_cls)}: the schema changed but the version did not; a published "
        f"type is immutable, so add a model with version = {model_cls.version + 1} "
        "(or undo the change)"
        for model_cls in models
        if event_type(model_cls) in lock
        and lock[event_type(model_cls)] != schema_hash(schema_for(model_cls))
    ]


def updated_lock(models: Iterable[type[PublicEvent]], lock: Mapping[str, str]) -> dict[str, str]:
    """The lock with new type strings added; existing entries are never changed or removed."""
    result = dict(lock)
    for model_cls in models:
        result.setdefault(event_type(model_cls), schema_hash(schema_for(model_cls)))
    return dict(sorted(result.items()))


def render(document: Mapping[str, Any]) -> str:
    """The committed text of a JSON document."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def read_lock(schema_dir: Path) -> dict[str, str]:
    """The committed version lock; empty when there is none yet."""
    path = schema_dir / LOCK_FILE
    if not path.exists():
        return {}
    loaded = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in loaded.items()
    ):
        raise ValueError(f"{path} is not an object of type string to sha256")
    return loaded


def expected_files(models: Sequence[type[PublicEvent]], lock: Mapping[str, str]) -> dict[str, str]:
    """File name → content of everything generation writes into the schema folder."""
    files = {schema_file(model_cls): render(schema_for(model_cls)) for model_cls in models}
    files[ENVELOPE_FILE] = render(envelope_schema())
    files[LOCK_FILE] = render(updated_lock(models, lock))
    return files


def run(schema_dir: Path, *, check: bool, models: Sequence[type[PublicEvent]] = ALL_EVENTS) -> int:
    """Write (or with `check`, compare) the schema folder; return the exit status."""
    try:
        lock = read_lock(schema_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    violations = lock_violations(models, lock)
    for message in violations:
        print(f"error: {message}", file=sys.stderr)
    if violations:
        return 1

    expected = expected_files(models, lock)
    stale = sorted(path for path in schema_dir.glob("*.json") if path.name not in expected)
    outdated = [
        schema_dir / name
        for name, content in expected.items()
        if not (schema_dir / name).exists()
        or (schema_dir / name).read_text(encoding="utf-8") != content
    ]
    if check:
        for path in outdated:
            print(f"out of date: {path} (run python -m shared.contracts.generate)", file=sys.stderr)
        for path in stale:
            print(f"unexpected: {path} (no model generates it)", file=sys.stderr)
        return 1 if outdated or stale else 0

    schema_dir.mkdir(parents=True, exist_ok=True)
    for path in outdated:
        path.write_text(expected[path.name], encoding="utf-8")
        print(f"wrote {path}")
    for path in stale:
        print(f"warning: {path} is generated by no model; delete it if the type is retired")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the schemas, or with `--check` report each committed file out of date."""
    parser = argparse.ArgumentParser(
        prog="python -m shared.contracts.generate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 naming each file out of date"
    )
    parser.add_argument(
        "--schema-dir", type=Path, default=SCHEMA_DIR, help="folder of the schemas and the lock"
    )
    args = parser.parse_args(argv)
    return run(args.schema_dir, check=args.check)


if __name__ == "__main__":
    raise SystemExit(main())
