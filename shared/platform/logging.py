"""JSON logging: one object per line on stderr, tagged with the service and the trace id.

Our code never passes personal data to a logger. Exception text is the one thing we do not write
ourselves, so the formatter renders pydantic validation errors without their input values.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Mapping, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final

from fastapi.exceptions import ValidationException
from pydantic import ValidationError

from shared.platform.errors import field_path
from shared.platform.telemetry import current_trace_ids

__all__ = [
    "UVICORN_RUN_OPTIONS",
    "JsonFormatter",
    "configure_logging",
    "current_trace_id",
    "trace_id_var",
]

#: The trace id of the request being handled; set by the middleware in `shared.platform.http`.
trace_id_var: ContextVar[str | None] = ContextVar("weerbaar_trace_id", default=None)

#: Pass these to `uvicorn.run`/`uvicorn.Config` so uvicorn neither replaces our handlers nor
#: writes its own access log (which contains query strings).
UVICORN_RUN_OPTIONS: Final[Mapping[str, Any]] = {"log_config": None, "access_log": False}

_RECORD_ATTRIBUTES: Final[frozenset[str]] = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None))
) | {"message", "asctime", "taskName"}


def current_trace_id() -> str | None:
    """The trace id of the current request, or None outside a request."""
    return trace_id_var.get()


def _safe_exception_message(exc: BaseException) -> str:
    # The str() of pydantic's and FastAPI's validation errors quotes the input values, which may
    # be personal data; name only where and which rule.
    items: Sequence[Any]
    if isinstance(exc, ValidationError):
        items = exc.errors(include_input=False, include_url=False)
    elif isinstance(exc, ValidationException):
        items = exc.errors()
    else:
        return str(exc)
    parts = []
    for item in items:
        loc = item.get("loc", ()) if isinstance(item, Mapping) else ()
        rule = item.get("type", "?") if isinstance(item, Mapping) else "?"
        parts.append(f"{field_path(loc)}: {rule}")
    return f"{len(parts)} validation error(s): " + "; ".join(parts)


def _format_exception(exc: BaseException) -> str:
    """Format `exc` with its chain like `traceback`, but with safe exception messages."""
    chain: list[tuple[BaseException, str | None]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    link: str | None = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, "direct cause"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, "context"
        else:
            current = None
    lines: list[str] = []
    for item, item_link in reversed(chain):
        lines.append("Traceback (most recent call last):\n")
        lines.extend(traceback.format_tb(item.__traceback__))
        lines.append(f"{type(item).__module__}.{type(item).__qualname__}: ")
        lines.append(_safe_exception_message(item) + "\n")
        if item_link == "direct cause":
            lines.append("\nThe above exception was the direct cause of the following:\n\n")
        elif item_link == "context":
            lines.append("\nDuring handling of the above exception, another occurred:\n\n")
    return "".join(lines).rstrip("\n")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, service, logger, message, trace_id, extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        """Return the record as a single line of JSON."""
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": getattr(record, "trace_id", None) or trace_id_var.get(),
        }
        span = current_trace_ids()
        if span is not None:
            # In a consumer or the mail sender there is no request: the span names the trace.
            entry["trace_id"] = entry["trace_id"] or span[0]
            entry["span_id"] = span[1]
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            entry["exc"] = _format_exception(record.exc_info[1])
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


class _DropAll(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return False


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every log record as JSON to stderr; silence uvicorn's own access log."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    for existing in root.handlers[:]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())

    for name in ("uvicorn", "uvicorn.error", "uvicorn.asgi"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers = []
        uvicorn_logger.propagate = True
    # uvicorn's access log writes the raw path with its query string; `shared.platform.http` logs
    # the route template instead. A filter survives uvicorn's own dictConfig, `disabled` does not.
    # httpx logs every request URL, query string included, at INFO.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)

    access = logging.getLogger("uvicorn.access")
    access.handlers = []
    access.propagate = False
    if not any(isinstance(f, _DropAll) for f in access.filters):
        access.addFilter(_DropAll())
