"""Drill: stop and start (the runbook's "Start and stop").

Ctrl-C (SIGTERM) to ``./weerbaar up`` stops every process and server it started; ``./weerbaar up``
again finds everything where it was: the dossiers, the stream, the mail, and nothing twice.
"""

from __future__ import annotations

import pytest

from tests.drills.operator import Operator
from tests.support import stream_messages

pytestmark = pytest.mark.e2e


def test_stop_and_start_keeps_everything_once(operator: Operator) -> None:
    operator.register_many(6)
    before = operator.account()
    stream_before = [m.headers["Nats-Msg-Id"] for m in stream_messages(operator.nats_url)]

    operator.down()
    operator.up()

    # The runbook's start: provisioning again changes nothing of what the stream holds.
    provisioned = operator.runbook("weerbaar provision")
    assert f"stream WEERBAAR: {before.on_stream} messages" in provisioned.stdout
    assert [m.headers["Nats-Msg-Id"] for m in stream_messages(operator.nats_url)] == stream_before
    after = operator.account()
    assert after == before, f"before the stop: {before}; after the start: {after}"

    # Every relay runs again and has published everything: none stopped, nothing to resume.
    # (A relay stopped at an event it cannot publish needs a release that stores one: shown in
    # tests/integration/test_publishable.py.)
    relays = operator.runbook("./weerbaar relay status").stdout
    assert relays.count(": draait,") == 5, relays
    assert "GESTOPT" not in relays
    resumed = operator.runbook("./weerbaar relay resume <service>", **{"<service>": "intake"})
    assert "niets te hervatten" in resumed.stdout

    # And the system goes on.
    operator.register_many(2)
    print(operator.account())
