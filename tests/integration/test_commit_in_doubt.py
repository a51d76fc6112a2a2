"""A connection lost at COMMIT: the recorder finds out what happened instead of guessing.

A small TCP proxy stands between the service and a real PostgreSQL server and cuts the connection
at the moment the client sends COMMIT: either before passing it on (the transaction is rolled
back) or after the server has committed it and before the answer reaches the client (the commit
took place, the client cannot know). The recorder must report the first as a retried failure and
the second as a success, and when it cannot ask the database (the proxy refuses new connections)
raise ``CommitInDoubt``, which the API answers as 503 ``uitkomst_onbekend``; the retry with the
same Idempotency-Key then gets the first answer, and the dossier exists once.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID, uuid4

import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.sql import SQL

from services.intake.bootstrap import bootstrap as intake_bootstrap
from shared.platform.eventstore import CommitInDoubt, ServiceApplication
from shared.platform.http import COMMIT_IN_DOUBT_CODE
from shared.platform.model import Clock, Context, DomainEvent, utcnow
from tests.support import private_events_only, settings_for
from tools.demo import aanmelding_voor

pytestmark = pytest.mark.integration

Cut = Literal["before_commit", "after_commit"]


class CommitCutter:
    """A TCP proxy to PostgreSQL that loses one connection at its next COMMIT."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._cut: Cut | None = None
        self.refusing = False  # new connections are closed at once (the database "is down")
        self.refuse_after_cut = False
        self.cuts = 0
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def cut_next_commit(self, how: Cut, *, then_refuse: bool = False) -> None:
        with self._lock:
            self._cut = how
            self.refuse_after_cut = then_refuse

    def close(self) -> None:
        self.listener.close()
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self._sockets += [client, server]
            answer_swallowed = threading.Event()
            threading.Thread(
                target=self._to_server, args=(client, server, answer_swallowed), daemon=True
            ).start()
            threading.Thread(
                target=self._to_client, args=(server, client, answer_swallowed), daemon=True
            ).start()

    def _take_cut(self, data: bytes) -> Cut | None:
        with self._lock:
            if self._cut is None or b"COMMIT" not in data:
                return None
            how, self._cut = self._cut, None
            self.cuts += 1
            if self.refuse_after_cut:
                self.refusing = True
            return how

    def _to_server(
        self, client: socket.socket, server: socket.socket, swallow: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                how = self._take_cut(data)
                if how == "before_commit":
                    break
                if how == "after_commit":
                    # The server's answer to this COMMIT never reaches the client; what the
                    # client sends next (the pipeline's Sync) still goes through.
                    swallow.set()
                server.sendall(data)
        _close(client, server)

    def _to_client(
        self, server: socket.socket, client: socket.socket, swallow: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                if swallow.is_set():
                    break
                client.sendall(data)
        _close(client, server)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            sock.close()


@pytest.fixture
def cutter(fresh_database: str) -> Iterator[CommitCutter]:
    parts = urlsplit(fresh_database)
    proxy = CommitCutter(parts.hostname or "127.0.0.1", parts.port or 5432)
    yield proxy
    proxy.close()


def _through(database_url: str, cutter: CommitCutter) -> str:
    parts = urlsplit(database_url)
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{cutter.port}"))


class Geteld(DomainEvent):
    n: int


class Teller(ServiceApplication):
    service: ClassVar[str] = "teller"

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env, publication_check=private_events_only(self.service))


def _teller(database_url: str, cutter: CommitCutter, tmp_path: Path, nats_url: str) -> Teller:
    settings = settings_for(_through(database_url, cutter), nats_url, tmp_path)
    return Teller(settings.eventsourcing_env("teller"))


def _event(originator: UUID, version: int = 1) -> Geteld:
    ctx = Context(now=utcnow(), actor_id="test")
    return Geteld(originator_id=originator, originator_version=version, **ctx.event_fields(), n=1)


def _stored(database_url: str, originator: UUID) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            SQL("SELECT count(*) FROM teller.teller_events WHERE originator_id = %s"),
            (originator,),
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_an_answer_lost_after_the_commit_is_a_success_recorded_once(
    fresh_database: str, cutter: CommitCutter, tmp_path: Path, nats_url: str
) -> None:
    app = _teller(fresh_database, cutter, tmp_path, nats_url)
    originator = uuid4()
    cutter.cut_next_commit("after_commit")
    app.record(_event(originator))  # no exception: the database says it committed
    assert cutter.cuts == 1
    assert _stored(fresh_database, originator) == 1
    app.record(_event(originator, 2))  # the next command finds the first one's version
    assert _stored(fresh_database, originator) == 2


def test_a_connection_lost_before_the_commit_is_rolled_back_and_retried(
    fresh_database: str, cutter: CommitCutter, tmp_path: Path, nats_url: str
) -> None:
    app = _teller(fresh_database, cutter, tmp_path, nats_url)
    originator = uuid4()
    cutter.cut_next_commit("before_commit")
    app.record(_event(originator))  # the recorder's retry commits it
    assert cutter.cuts == 1
    assert _stored(fresh_database, originator) == 1


def test_when_the_database_cannot_tell_the_commit_is_in_doubt_not_retried(
    fresh_database: str, cutter: CommitCutter, tmp_path: Path, nats_url: str
) -> None:
    app = _teller(fresh_database, cutter, tmp_path, nats_url)
    originator = uuid4()
    cutter.cut_next_commit("after_commit", then_refuse=True)
    with pytest.raises(CommitInDoubt) as raised:
        app.record(_event(originator))
    assert _stored(fresh_database, originator) == 1  # it did commit; nobody retried it
    cutter.refusing = False
    assert app.store.transaction_outcome(raised.value.xid) == "committed"


def test_the_api_answers_uitkomst_onbekend_and_the_retry_gets_the_first_answer(
    fresh_database: str, cutter: CommitCutter, tmp_path: Path, nats_url: str
) -> None:
    settings = settings_for(_through(fresh_database, cutter), nats_url, tmp_path)
    built = intake_bootstrap(settings, Clock())
    body = aanmelding_voor("bestuurder.twijfel@example.org", "GM0363")
    headers = {"Idempotency-Key": "twijfel-1"}
    with TestClient(built.api) as client:
        cutter.cut_next_commit("after_commit", then_refuse=True)
        first = client.post("/aanvragen", json=body, headers=headers)
        assert first.status_code == 503
        problem = first.json()
        assert first.headers["content-type"].startswith("application/problem+json")
        assert problem["code"] == COMMIT_IN_DOUBT_CODE
        assert "bestuurder.twijfel" not in first.text
        cutter.refusing = False
        retried = client.post("/aanvragen", json=body, headers=headers)
        assert retried.status_code == 201
    with psycopg.connect(fresh_database) as conn:
        rows = conn.execute(
            "SELECT DISTINCT originator_id FROM intake.intake_events WHERE topic LIKE %s",
            ("%AanvraagOntvangen%",),
        ).fetchall()
    assert [str(r[0]) for r in rows] == [retried.json()["aanvraag_id"]]
