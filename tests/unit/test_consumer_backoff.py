"""The back-off of a message that met an outage: short at first, long later."""

from __future__ import annotations

from shared.platform.consumer import SERVER_MAX_DELIVER, transient_retry_delay


def test_a_brief_outage_costs_a_message_at_most_a_few_seconds_once_it_is_over() -> None:
    assert [transient_retry_delay(a) for a in range(1, 5)] == [1.0, 2.0, 4.0, 4.0]
    assert max(transient_retry_delay(a) for a in range(1, 31)) == 4.0


def test_a_long_outage_is_outlasted_for_hours_before_the_server_gives_up() -> None:
    total = sum(transient_retry_delay(a) for a in range(1, SERVER_MAX_DELIVER))
    assert total > 8 * 3600
