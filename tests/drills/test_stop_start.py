"""Drill: stop and start (the runbook's "Start and stop").

Ctrl-C (SIGTERM) to ``./weerbaar up`` while clients register dossiers stops every process and
server it started; ``./weerbaar up`` again finds everything where it was: the dossiers, the stream
(the same messages in the same order, then the new ones), the mail, and nothing twice. A client
whose request went unanswered during the stop retries with its Idempotency-Key once the system is
back: nothing needed draining.
"""

from __future__ import annotations

import time

import pytest

from tests.drills.operator import Operator
from tests.support import stream_messages

pytestmark = pytest.mark.e2e


def _stream_ids(operator: Operator) -> list[str]:
    return [m.headers["Nats-Msg-Id"] for m in stream_messages(operator.nats_url)]


def test_stop_and_start_under_load_keeps_everything_once(operator: Operator) -> None:
    operator.register_many(4)
    before = operator.account()
    stream_before = _stream_ids(operator)

    with operator.load() as load:
        load.wait_for(3)
        stopping = time.monotonic()
        operator.down()
        # The runbook: each service exits within 30 s of SIGTERM (up then stops the servers).
        stopped_in = time.monotonic() - stopping
        assert stopped_in < 45
        operator.up()
        load.wait_for(3)
    print(
        f"stopped in {stopped_in:.1f} s; {len(load.registrations)} registrations during the"
        f" drill, {load.refused} attempts refused and retried"
    )

    # The runbook's start: provisioning again changes nothing of what the stream holds.
    provisioned = operator.runbook("weerbaar provision")
    assert "stream WEERBAAR:" in provisioned.stdout
    after = operator.account()
    assert _stream_ids(operator)[: len(stream_before)] == stream_before
    assert after.dossiers == before.dossiers + len(load.registrations)
    assert after.mails == before.mails + len(load.registrations)

    # Every relay runs again and has published everything: none stopped, nothing to resume.
    # (A relay stopped at an event it cannot publish needs a release that stores one: shown in
    # tests/integration/test_publishable.py.)
    relays = operator.runbook("./weerbaar relay status").stdout
    assert relays.count(": draait,") == 5, relays
    assert "GESTOPT" not in relays
    resumed = operator.runbook("./weerbaar relay resume <service>", **{"<service>": "intake"})
    assert "niets te hervatten" in resumed.stdout
    print(after)
