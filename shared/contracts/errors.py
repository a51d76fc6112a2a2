"""Errors raised by the public event contract.

Messages name event types and field locations only, never field values: a value may be personal
data that must not reach a log line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class ContractError(Exception):
    """Base of every error about a message that does not honour the public contract."""


class InvalidCloudEvent(ContractError, ValueError):
    """Raw bytes that are not a valid CloudEvents 1.0 envelope of this project."""


class InvalidEvent(ContractError, ValueError):
    """An envelope whose `data` does not validate against the model of its `type`."""


class UnknownEventType(ContractError, KeyError):
    """An event type or event name that no model in the registry describes."""

    def __str__(self) -> str:
        # KeyError quotes its argument; this error is read by people.
        return str(self.args[0]) if self.args else ""


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> str:
    """Summarise pydantic validation errors as `location (error type)`, without input values."""
    parts = []
    for error in errors:
        location = ".".join(str(part) for part in error.get("loc", ())) or "<root>"
        parts.append(f"{location} ({error.get('type', 'invalid')})")
    return "; ".join(parts)
