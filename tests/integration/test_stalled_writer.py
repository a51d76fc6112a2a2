"""A writer stalled in the middle of a transaction holds the event store's table lock.

A consumer or relay process stopped (SIGSTOP, a long GC pause, a starved machine) between the
event store's ``LOCK TABLE`` and its ``COMMIT`` keeps every other writer of that service waiting.
A command must then not hang and not fail obscurely: after the lock timeout (three tries) the API
answers 503 problem+json ``database_bezet``, records nothing, and the log line names the SQLSTATE
(55P03) so an operator can tell it from a database outage. Once the holder goes on, the client's
retry succeeds, once.
"""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from services.intake.bootstrap import bootstrap as intake_bootstrap
from shared.platform.http import DATABASE_BUSY_CODE, LOCK_NOT_AVAILABLE
from shared.platform.model import Clock
from tests.support import settings_for
from tools.demo import aanmelding_voor

pytestmark = pytest.mark.integration


def _registrations(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM intake.intake_events WHERE topic LIKE %s",
            ("%AanvraagOntvangen%",),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_command_behind_a_stalled_writer_answers_503_database_bezet_and_records_nothing(
    fresh_database: str, nats_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_for(fresh_database, nats_url, tmp_path, postgres_lock_timeout_s=1)
    built = intake_bootstrap(settings, Clock())
    body = aanmelding_voor("bestuurder.vastgelopen@example.org", "GM0363")
    headers = {"Idempotency-Key": "vastgelopen-1"}
    with TestClient(built.api) as client, psycopg.connect(fresh_database) as holder:
        # The stalled writer: inside a transaction, holding the lock the event store takes.
        holder.execute("LOCK TABLE intake.intake_events IN EXCLUSIVE MODE")
        with caplog.at_level(logging.WARNING, logger="shared.platform.http"):
            answer = client.post("/aanvragen", json=body, headers=headers)
        assert answer.status_code == 503
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.headers["retry-after"] == "2"
        assert answer.json()["code"] == DATABASE_BUSY_CODE
        assert "vastgelopen" not in answer.text
        logged = [r for r in caplog.records if r.getMessage() == "database unavailable"]
        assert [(getattr(r, "sqlstate", None), getattr(r, "cause_type", None)) for r in logged] == [
            (LOCK_NOT_AVAILABLE, "LockNotAvailable")
        ]
        holder.rollback()  # the stalled process goes on
        assert _registrations(fresh_database) == 0
        retried = client.post("/aanvragen", json=body, headers=headers)
        assert retried.status_code == 201
    assert _registrations(fresh_database) == 1
