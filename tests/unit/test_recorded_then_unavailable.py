"""A request that committed events and then lost the database (reading its answer back) must not
answer as if nothing happened: 503 ``uitkomst_onbekend``, as after a commit in doubt."""

from __future__ import annotations

import psycopg
from fastapi.testclient import TestClient

from shared.platform.eventstore import note_recorded
from shared.platform.http import COMMIT_IN_DOUBT_CODE, create_app


def _client() -> TestClient:
    app = create_app(service="test", title="test", version="1", max_body_bytes=10_000)

    @app.post("/vastgelegd-dan-weg")
    def recorded_then_gone() -> None:  # a sync endpoint: runs in a worker thread
        note_recorded()  # what ServiceApplication.record does after a commit
        raise psycopg.OperationalError("connection lost")

    @app.post("/weg")
    def gone() -> None:
        raise psycopg.OperationalError("connection lost")

    return TestClient(app, raise_server_exceptions=False)


def test_a_failure_after_a_commit_answers_outcome_unknown() -> None:
    client = _client()
    response = client.post("/vastgelegd-dan-weg")
    assert response.status_code == 503
    assert response.json()["code"] == COMMIT_IN_DOUBT_CODE
    assert "connection lost" not in response.text


def test_a_failure_before_any_commit_stays_database_unreachable() -> None:
    client = _client()
    assert client.post("/vastgelegd-dan-weg").json()["code"] == COMMIT_IN_DOUBT_CODE
    # The mark belongs to its own request: the next one starts without it.
    response = client.post("/weg")
    assert response.status_code == 503
    assert response.json()["code"] == "database_niet_bereikbaar"
