"""Scenarios 2 and 3: the broker restarts (SIGTERM, then SIGKILL) in the middle of the run, and
the broker loses its whole JetStream store in the middle of the run."""

from __future__ import annotations

import shutil
import threading

import pytest

from tests.faults import harness
from tests.faults.harness import DOSSIERS, RunLog
from tests.support import stream_count

#: How long the broker stays down.
DOWN_S = 5.0


@pytest.mark.timeout(harness.budget_s())
def test_broker_stopped_and_killed_mid_run_loses_nothing_and_repeats_nothing() -> None:
    def restarts(log: RunLog, done: threading.Event) -> None:
        world = log.world
        nats = world.system.nats
        assert nats is not None
        for fraction, kind in ((1 / 3, "nats_sigterm"), (2 / 3, "nats_sigkill")):
            if not harness.wait_progress(log, fraction, done, DOSSIERS):
                return
            fault = world.fault(kind, "nats")
            if kind == "nats_sigterm":
                nats.stop()
            else:
                nats.kill()
            done.wait(DOWN_S)  # the outage lasts this long, whatever the run does meanwhile
            nats.start()
            world.healed(fault)

    with harness.world("broker") as world:
        model = harness.fault_free_model(world)
        log = harness.drive(world, DOSSIERS - 2, fault=restarts)
        findings = harness.check(world, log, model)
        body = harness.report("2-broker-restarts", world, log, findings)
    print(harness.summary(body))
    assert body["fault_kinds"] == {"nats_sigterm": 1, "nats_sigkill": 1}
    assert findings.problems() == {}
    assert findings.completed == DOSSIERS - 2
    # The paths the fault must take: consumers and relays lost the broker and came back, and
    # messages delivered but not acknowledged when it went were delivered again.
    assert findings.reconnects > 0, "nothing reconnected: the broker outage path did not run"
    assert findings.redeliveries > 0, "nothing was redelivered after the broker came back"


@pytest.mark.timeout(harness.budget_s())
def test_broker_store_deleted_mid_run_is_refilled_from_postgres_without_second_effects() -> None:
    before: list[int] = []

    def wipe(log: RunLog, done: threading.Event) -> None:
        world = log.world
        nats = world.system.nats
        assert nats is not None
        if not harness.wait_progress(log, 1 / 2, done, DOSSIERS):
            return
        fault = world.fault("jetstream_store_deleted", "nats")
        before.append(stream_count(world.nats_url))
        nats.stop()
        shutil.rmtree(nats.store_dir)
        nats.start()
        world.system.provision()  # the streams are the provisioning's, as after a new install
        world.healed(fault)

    with harness.world("dataloss") as world:
        model = harness.fault_free_model(world)
        log = harness.drive(world, DOSSIERS - 2, fault=wipe)
        findings = harness.check(world, log, model)
        body = harness.report(
            "3-broker-data-loss", world, log, findings, republished_after_loss=before[0]
        )
    print(harness.summary(body))
    assert body["faults_injected"] == 1 and before[0] > 0
    # Everything the stream held before the loss is on it again (none missing), once each, and
    # every dossier has the events and mails of a fault-free one: no effect happened twice.
    assert findings.problems() == {}
    assert findings.mail_duplicates == 0
    assert findings.completed == DOSSIERS - 2
    # The republished events reached the consumers again and their inboxes refused them.
    assert findings.duplicates_refused > 0, "no inbox refused a republished event"
