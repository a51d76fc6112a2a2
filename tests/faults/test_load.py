"""Scenario 7: a sustained rate of new dossiers, each taken through every step, for a bounded time;
the latency of every command and of whole dossiers is recorded."""

from __future__ import annotations

import os

import pytest

from tests.faults import harness
from tests.faults.harness import DOSSIERS

#: New dossiers per second (each then takes ~25 steps at its own pace).
RATE_PER_S = float(os.environ.get("WEERBAAR_FAULTS_RATE", "2"))


@pytest.mark.timeout(harness.budget_s())
def test_sustained_load_keeps_every_promise_and_reports_latency() -> None:
    with harness.world("load") as world:
        model = harness.fault_free_model(world)
        log = harness.drive(world, DOSSIERS - 2, workers=64, rate_per_s=RATE_PER_S)
        findings = harness.check(world, log, model)
        body = harness.report(
            "7-load", world, log, findings, rate_per_s=RATE_PER_S, max_in_flight=64
        )
    print(harness.summary(body))
    assert findings.problems() == {}
    assert findings.completed == DOSSIERS - 2
    assert body["latency_ms"]["command"]["p99"] > 0
