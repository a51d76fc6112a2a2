"""Scenario 5: one consumer process is paused (SIGSTOP) longer than its ack wait while a second
replica of it runs, then resumed (SIGCONT): the replica takes over what the paused one held, and
the paused one, resumed, finds it handled."""

from __future__ import annotations

import signal
import threading

import pytest

from tests.faults import harness
from tests.faults.harness import ACK_WAIT_S, DOSSIERS, RunLog
from tools.system import System

#: Each pause lasts this long: well past the ack wait.
PAUSE_S = 2.5 * ACK_WAIT_S


def second_intake_consumer(system: System) -> None:
    """Intake's consumers once more, beside the consumers in intake's own process."""
    system.spawn("intake", ("consumers",), name="intake-consumers-2")


@pytest.mark.timeout(harness.budget_s())
def test_a_stalled_consumer_is_taken_over_by_its_replica() -> None:
    def stall(log: RunLog, done: threading.Event) -> None:
        world = log.world
        paused = next(p for p in world.processes() if p.log_path.stem == "intake-consumers-2")
        # Until a pause caught the process holding messages (bounded: at most six pauses).
        for fraction in (0.2, 0.35, 0.5, 0.65, 0.8, 0.9):
            if not harness.wait_progress(log, fraction, done, DOSSIERS):
                return
            before = harness.log_lines(world, "message redelivered")
            fault = world.fault("sigstop", paused.log_path.stem)
            paused.process.send_signal(signal.SIGSTOP)
            done.wait(PAUSE_S)  # the stall lasts this long, whatever the run does meanwhile
            paused.process.send_signal(signal.SIGCONT)
            world.healed(fault)
            if harness.log_lines(world, "message redelivered") > before:
                return

    with harness.world("stalled", extra=second_intake_consumer) as world:
        model = harness.fault_free_model(world)
        log = harness.drive(world, DOSSIERS - 2, fault=stall)
        findings = harness.check(world, log, model)
        body = harness.report("5-stalled-consumer", world, log, findings)
    print(harness.summary(body))
    assert body["faults_injected"] >= 1
    assert findings.redeliveries > 0, "the replica took nothing over: the stall path did not run"
    assert findings.problems() == {}
    assert findings.completed == DOSSIERS - 2
