"""Scenario 1: a random service process (API, relay, consumers or workers) is killed with SIGKILL
every few seconds and started again, for the whole run."""

from __future__ import annotations

import os
import random
import threading

import pytest

from tests.faults import harness
from tests.faults.harness import DOSSIERS, RunLog

#: Seconds between kills (the long run keeps it, so more dossiers mean more kills).
KILL_INTERVAL_S = float(os.environ.get("WEERBAAR_FAULTS_KILL_INTERVAL_S", "3"))


@pytest.mark.timeout(harness.budget_s())
def test_processes_killed_at_random_lose_nothing_and_do_nothing_twice() -> None:
    rng = random.Random(int(os.environ.get("WEERBAAR_FAULTS_SEED", "7")))

    def killer(log: RunLog, done: threading.Event) -> None:
        world = log.world
        while not done.wait(KILL_INTERVAL_S):
            victim = harness.random_choice(world.processes(), rng)
            world.kill_and_restart(victim)

    with harness.world("crashes", split=True) as world:
        model = harness.fault_free_model(world)
        log = harness.drive(world, DOSSIERS - 2, fault=killer)
        findings = harness.check(world, log, model)
        body = harness.report("1-crashes", world, log, findings)
    print(harness.summary(body))
    kinds = {f.target.rsplit("-", 1)[1] for f in world.faults}
    assert body["faults_injected"] >= 3 and {"api", "relay", "consumers"} <= kinds, kinds
    assert findings.problems() == {}
    assert findings.redeliveries > 0, "no message was redelivered: the crash path did not run"
    assert findings.completed == DOSSIERS - 2
