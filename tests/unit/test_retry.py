"""A command that loses a concurrency conflict is retried, and answers 409 when it keeps losing."""

from __future__ import annotations

import pytest

from shared.platform.errors import Conflict
from shared.platform.eventstore import ConcurrencyConflict, retry_on_conflict


def test_a_command_that_loses_once_is_retried() -> None:
    calls: list[int] = []

    def command() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise ConcurrencyConflict("someone else was first")
        return "done"

    assert retry_on_conflict(command) == "done"
    assert len(calls) == 2


def test_a_command_that_keeps_losing_answers_409() -> None:
    calls: list[int] = []

    def command() -> None:
        calls.append(1)
        raise ConcurrencyConflict("someone else was first")

    with pytest.raises(Conflict) as raised:
        retry_on_conflict(command, attempts=3)
    assert raised.value.status == 409
    assert len(calls) == 3
