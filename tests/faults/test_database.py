"""Scenario 4: PostgreSQL stops immediately (no checkpoint, clients cut off) in the middle of the
run and comes back; meanwhile every API answers 503 with a problem document."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from shared.platform.auth import load_or_create_secret
from shared.platform.settings import SERVICES
from tests.faults import harness
from tests.faults.harness import DOSSIERS, RunLog
from tools.demo import Actors, aanmelding_voor

#: How long the database stays down.
DOWN_S = 6.0


@pytest.mark.timeout(harness.budget_s())
def test_database_outage_answers_503_and_loses_nothing() -> None:
    window: list[float] = []
    probes: list[tuple[str, int, str, str]] = []

    def probe_every_api(log: RunLog) -> None:
        """Commands and reads on each service while the database is down."""
        world = log.world
        actors = Actors(
            load_or_create_secret(world.system.data_dir / "secrets" / "jwt.key"),
            "probe@example.org",
            "GM0363",
        )
        unknown = "00000000-0000-4000-8000-000000000001"
        calls = {
            "intake": ("POST", "/aanvragen", None),
            "scheduling": ("POST", f"/aanvragen/{unknown}/contact", "secretariaat"),
            "assessment": ("GET", f"/aanvragen/{unknown}/maatregelen", "secretariaat"),
            "approval": ("POST", f"/rapporten/{unknown}/instemming", "bestuurder"),
            "notifications": ("GET", "/notificaties", "secretariaat"),
        }

        def probe(client: httpx.Client, service: str) -> None:
            method, path, role = calls[service]
            headers = actors.headers(role) if role else {}
            body = (
                aanmelding_voor(actors.bestuurder_email, "GM0363")
                if service == "intake"
                else {"instemming": True}
            )
            response = client.request(
                method,
                world.system.url(service) + path,
                headers=headers,
                json=body if method == "POST" else None,
            )
            probes.append(
                (
                    service,
                    response.status_code,
                    response.headers.get("content-type", ""),
                    response.text,
                )
            )

        with httpx.Client(timeout=30) as client, ThreadPoolExecutor(len(SERVICES)) as pool:
            # At once: each answer may take the event store's retries (about ten seconds).
            list(pool.map(lambda service: probe(client, service), SERVICES))

    def outage(log: RunLog, done: threading.Event) -> None:
        world = log.world
        postgres = world.system.postgres
        assert postgres is not None
        if not harness.wait_progress(log, 1 / 2, done, DOSSIERS):
            return
        fault = world.fault("postgres_immediate_stop", "postgres")
        postgres.stop_immediately()
        window.append(world.now())
        probe_every_api(log)
        remaining = DOWN_S - (world.now() - window[0])
        done.wait(max(0.0, remaining))  # the outage lasts this long, whatever the run does
        window.append(world.now())
        postgres.start()
        world.healed(fault)

    with harness.world("database") as world:
        model = harness.fault_free_model(world)
        log = harness.drive(world, DOSSIERS - 2, fault=outage)
        findings = harness.check(world, log, model)
        during = [
            a
            for a in log.attempts
            if a.status is not None
            and a.started_s >= window[0]
            and a.started_s + a.elapsed_s <= window[1]
        ]
        body = harness.report(
            "4-database-outage",
            world,
            log,
            findings,
            outage_s=round(window[1] - window[0], 2),
            answers_during_outage=len(during) + len(probes),
            statuses_during_outage=sorted({a.status for a in during} | {p[1] for p in probes}),
        )
    print(harness.summary(body))
    assert findings.problems() == {}
    assert findings.completed == DOSSIERS - 2
    # Consumers met the outage: their handlers failed, the messages were put back and came again.
    assert findings.transient_retries > 0, "no consumer met the outage"
    assert findings.redeliveries > 0, "no message put back during the outage came again"
    # During the outage: 503 problem documents from every service, never a 500 or a trace.
    assert {p[0] for p in probes} == set(SERVICES)
    answers = [(a.service, a.status, a.content_type, a.body) for a in during] + probes
    assert len(answers) > len(SERVICES)
    for service, status, content_type, text in answers:
        assert status == 503, (service, status, text[:300])
        assert content_type.startswith("application/problem+json"), (service, content_type)
        assert '"status":503' in text.replace(" ", ""), text[:300]
        assert "Traceback" not in text and "psycopg" not in text, text[:300]
