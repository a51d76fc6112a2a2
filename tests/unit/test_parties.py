"""Asking intake's dossier registry who a caller is: its outages are 503s with a code."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from uuid import uuid4

import pytest

from shared.platform.auth import Principal, Role
from shared.platform.errors import NietBeschikbaar
from shared.platform.parties import REGISTRY_UNREACHABLE_CODE, DossierParties
from tools.embedded import free_port

CALLER = Principal(sub="usr-1", roles=frozenset({Role.bestuurder}), email="b@example.org")


class _Answer(http.server.BaseHTTPRequestHandler):
    status = 500

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def registry() -> Iterator[tuple[str, type[_Answer]]]:
    """A real HTTP server on 127.0.0.1 answering every POST with ``status``."""
    handler = type("Answer", (_Answer,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_an_unreachable_registry_is_a_503_with_its_code() -> None:
    parties = DossierParties(f"http://127.0.0.1:{free_port()}", lambda: "token", timeout_s=2)
    with pytest.raises(NietBeschikbaar) as raised:
        parties.of(uuid4(), CALLER)
    assert raised.value.code == REGISTRY_UNREACHABLE_CODE
    assert "127.0.0.1" not in str(raised.value.detail)


def test_a_registry_that_fails_is_a_503_with_its_code(
    registry: tuple[str, type[_Answer]],
) -> None:
    url, handler = registry
    handler.status = 500
    with pytest.raises(NietBeschikbaar) as raised:
        DossierParties(url, lambda: "token").of(uuid4(), CALLER)
    assert raised.value.code == REGISTRY_UNREACHABLE_CODE


def test_an_unknown_dossier_makes_the_caller_no_party_as_someone_elses_does(
    registry: tuple[str, type[_Answer]],
) -> None:
    """The service then refuses it as it refuses someone else's dossier (the same path)."""
    url, handler = registry
    handler.status = 404
    answer = DossierParties(url, lambda: "token").of(uuid4(), CALLER)
    assert answer.partijen == frozenset()
    assert answer.organisatie_code is None
