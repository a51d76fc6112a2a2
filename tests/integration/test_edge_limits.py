"""Limits at the edge, in-process on real PostgreSQL, with the production limits switched on:

- anonymous attempts on a dossier are counted, not recorded one by one: 100 add at most a few
  events to its history; a signed-in caller's refusals are still recorded one by one;
- anonymous attempts are limited per source (429 with ``Retry-After``);
- the public registration is limited per source and per e-mail address (429 + ``Retry-After``);
  a repeat with the same ``Idempotency-Key`` is not counted;
- one person reads one report at most so many times an hour (each read is on record); the next
  is refused with 429 and records nothing, another person still reads it;
- an unknown dossier and someone else's take the same path (the same lookups, the same record);
- headers are capped, a bearer token's length is checked before it is decoded, every answer
  carries ``X-Content-Type-Options: nosniff`` and ``Cache-Control: no-store``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from shared.platform.access import ToegangGeweigerdVastgelegd
from shared.platform.model import utcnow
from tests.integration.inprocess import InProcessSystem, aanmelding, system_on_new_database

pytestmark = pytest.mark.integration

PER_SOURCE_PER_MINUTE = 150
REGISTRATIONS_PER_SOURCE = 30
REGISTRATIONS_PER_ADDRESS = 2
REPORT_READS_PER_HOUR = 3


@pytest.fixture(scope="module")
def system(
    postgres_server_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessSystem]:
    """The five services with the limits on (the suite's default switches them off)."""
    with system_on_new_database(
        postgres_server_url,
        nats_url,
        tmp_path_factory.mktemp("limits"),
        anonymous_requests_per_minute=PER_SOURCE_PER_MINUTE,
        registrations_per_source=REGISTRATIONS_PER_SOURCE,
        registrations_per_address=REGISTRATIONS_PER_ADDRESS,
        report_reads_per_hour=REPORT_READS_PER_HOUR,
        trusted_proxies=("testclient",),
    ) as built:
        yield built


def _from(address: str) -> dict[str, str]:
    """Headers of a request the trusted proxy forwards from ``address``."""
    return {"X-Forwarded-For": f"198.51.100.250, {address}"}


def _end_windows(system: InProcessSystem, service: str) -> None:
    for record_ended in system.components[service].app.pending_records:
        record_ended(utcnow() + timedelta(days=1))


def _refusals(system: InProcessSystem, service: str, mark: int) -> list[ToegangGeweigerdVastgelegd]:
    return system.refusals_since(service, mark)


# --- refusals ------------------------------------------------------------------------------------


def test_a_hundred_anonymous_attempts_add_a_few_events_with_their_count(
    system: InProcessSystem,
) -> None:
    dossier = system.dossier()
    mark = system.mark("intake")
    client = system.clients["intake"]
    for i in range(100):
        headers = _from("203.0.113.7")
        if i % 2:
            headers["Authorization"] = "Bearer not-a-token"
        assert client.get(f"/aanvragen/{dossier.aanvraag_id}", headers=headers).status_code == 401
    during = _refusals(system, "intake", mark)
    assert len(during) == 1, "the window's first attempt at once, the rest counted"
    _end_windows(system, "intake")
    recorded = _refusals(system, "intake", mark)
    assert len(recorded) <= 3
    assert sum(r.aantal or 0 for r in recorded) == 100, "every attempt is counted"
    assert {r.aanvraag_id for r in recorded} == {dossier.aanvraag_id}
    assert all(r.actor_id is None and r.actor_role is None for r in recorded)
    # Ending the windows again records nothing more.
    _end_windows(system, "intake")
    assert len(_refusals(system, "intake", mark)) == len(recorded)


def test_a_signed_in_callers_refusals_are_recorded_one_by_one(system: InProcessSystem) -> None:
    dossier = system.dossier()
    mark = system.mark("intake")
    stranger = system.headers("bestuurder", "bst-vreemd", email="vreemd@example.org")
    for _ in range(5):
        response = system.clients["intake"].get(
            f"/aanvragen/{dossier.aanvraag_id}", headers=stranger
        )
        assert response.status_code == 404
    refusals = _refusals(system, "intake", mark)
    assert len(refusals) == 5
    assert all(r.aantal is None and r.actor_id for r in refusals)


def test_anonymous_attempts_are_limited_per_source(system: InProcessSystem) -> None:
    client = system.clients["scheduling"]
    statuses = [
        client.post(f"/aanvragen/{uuid4()}/contact", headers=_from("203.0.113.99")).status_code
        for _ in range(PER_SOURCE_PER_MINUTE + 5)
    ]
    assert statuses[:PER_SOURCE_PER_MINUTE] == [401] * PER_SOURCE_PER_MINUTE
    assert set(statuses[PER_SOURCE_PER_MINUTE:]) == {429}
    limited = client.post(f"/aanvragen/{uuid4()}/contact", headers=_from("203.0.113.99"))
    assert int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["code"] == "te_vaak"
    # Another source is not held back by it.
    other = client.post(f"/aanvragen/{uuid4()}/contact", headers=_from("203.0.113.100"))
    assert other.status_code == 401


# --- reading a report -------------------------------------------------------------------------


def test_one_person_reads_one_report_a_limited_number_of_times_an_hour(
    system: InProcessSystem,
) -> None:
    d = system.dossier("goedgekeurd")
    client = system.clients["assessment"]
    bestuurder = system.bestuurder(d)
    mark = system.mark("assessment")
    answers = [
        client.get(f"/rapporten/{d.rapport_id}", headers=bestuurder)
        for _ in range(REPORT_READS_PER_HOUR + 2)
    ]
    assert [a.status_code for a in answers] == [200] * REPORT_READS_PER_HOUR + [429, 429]
    refused = answers[-1]
    assert 1 <= int(refused.headers["Retry-After"]) <= 3600
    assert refused.json()["code"] == "te_vaak" and "inhoud" not in refused.json()
    stored = system.stored_since("assessment", mark)
    assert len(stored) == REPORT_READS_PER_HOUR, "each read on record, the refused ones not"
    # Another person (the adviseur who wrote it) is counted on their own.
    adviseur = system.headers("adviseur")
    assert client.get(f"/rapporten/{d.rapport_id}", headers=adviseur).status_code == 200
    assert len(system.stored_since("assessment", mark)) == REPORT_READS_PER_HOUR + 1


# --- the public registration ----------------------------------------------------------------------


def test_registrations_are_limited_per_address(system: InProcessSystem) -> None:
    email = f"veel-{uuid4().hex[:8]}@example.org"
    client = system.clients["intake"]
    mark = system.mark("intake")
    answers = [
        client.post(
            "/aanvragen", json=aanmelding(email, "GM0363"), headers=_from(f"192.0.2.{i + 1}")
        )
        for i in range(REGISTRATIONS_PER_ADDRESS + 1)
    ]
    assert [a.status_code for a in answers] == [201] * REGISTRATIONS_PER_ADDRESS + [429]
    assert int(answers[-1].headers["Retry-After"]) >= 1
    assert email not in answers[-1].text
    stored = system.stored_since("intake", mark)
    assert len(stored) == REGISTRATIONS_PER_ADDRESS, "the refused one stored nothing"


def test_registrations_are_limited_per_source_and_a_repeat_is_not_counted(
    system: InProcessSystem,
) -> None:
    client = system.clients["intake"]
    source = _from("192.0.2.200")
    key = {"Idempotency-Key": f"k-{uuid4().hex}"}
    body = aanmelding(f"r-{uuid4().hex[:8]}@example.org", "GM0363")
    first = client.post("/aanvragen", json=body, headers={**source, **key})
    assert first.status_code == 201
    for _ in range(3):  # a client retrying after a lost answer
        again = client.post("/aanvragen", json=body, headers={**source, **key})
        assert again.status_code == 201
        assert again.json() == first.json()
    statuses = [
        client.post(
            "/aanvragen",
            json=aanmelding(f"r-{uuid4().hex[:8]}@example.org", "GM0363"),
            headers=source,
        ).status_code
        for _ in range(REGISTRATIONS_PER_SOURCE)
    ]
    assert statuses == [201] * (REGISTRATIONS_PER_SOURCE - 1) + [429]


# --- an unknown id and someone else's ----------------------------------------------------------


def _spy(system: InProcessSystem, service: str, name: str, calls: list[str]) -> Callable[[], None]:
    app = system.components[service].app
    original = getattr(app, name)

    def spied(*args: Any, **kwargs: Any) -> Any:
        calls.append(name)
        return original(*args, **kwargs)

    setattr(app, name, spied)
    return lambda: delattr(app, name)


def _spy_parties(system: InProcessSystem, service: str, calls: list[str]) -> Callable[[], None]:
    """Record every question the service asks intake about a dossier's parties."""
    asked = system.clients["intake"]
    original = asked.request

    def spied(method: str, url: Any, *args: Any, **kwargs: Any) -> Any:
        if "/internal/" in str(url):
            calls.append("intake:" + str(url).split("/internal/", 1)[1].split("/", 1)[0])
        return original(method, url, *args, **kwargs)

    asked.request = spied  # type: ignore[method-assign]
    return lambda: delattr(asked, "request")


@pytest.mark.parametrize(
    ("service", "path", "lookups"),
    [
        ("intake", "/aanvragen/{aanvraag_id}", ["toegang"]),
        ("assessment", "/rapporten/{rapport_id}", ["rapport_of_none"]),
        ("approval", "/rapporten/{rapport_id}/status", ["find"]),
    ],
)
def test_an_unknown_id_and_someone_elses_take_the_same_path(
    system: InProcessSystem, service: str, path: str, lookups: list[str]
) -> None:
    """What the service looks up and what it records is the same, so neither the answer nor the
    work behind it tells whether the dossier or report exists."""
    dossier = system.dossier("goedgekeurd")
    stranger = system.headers("bestuurder", "bst-ander", email="ander@example.org")
    known = path.format(aanvraag_id=dossier.aanvraag_id, rapport_id=dossier.rapport_id)
    unknown = path.format(aanvraag_id=uuid4(), rapport_id=uuid4())

    def attempt(url: str) -> tuple[list[str], int, str, tuple[str, str, int]]:
        calls: list[str] = []
        undo = [_spy(system, service, name, calls) for name in lookups]
        undo.append(_spy_parties(system, service, calls))
        mark = system.mark(service)
        try:
            response = system.clients[service].get(url, headers=stranger)
        finally:
            for restore in undo:
                restore()
        (refusal,) = _refusals(system, service, mark)
        return (
            calls,
            response.status_code,
            response.text,
            (
                refusal.actie,
                refusal.reden,
                refusal.status_code,
            ),
        )

    calls_known, status_known, body_known, record_known = attempt(known)
    calls_unknown, status_unknown, body_unknown, record_unknown = attempt(unknown)
    assert status_known == status_unknown == 404
    assert calls_known == calls_unknown and calls_known, "the same lookups"
    assert record_known == record_unknown, "the same refusal on record"
    strip = lambda text: text.split('"instance"')[0]  # noqa: E731 - the trace id differs
    assert strip(body_known) == strip(body_unknown)


# --- headers -------------------------------------------------------------------------------------


def test_headers_over_the_cap_are_refused_before_anything_reads_them(
    system: InProcessSystem,
) -> None:
    mark = system.mark("intake")
    response = system.clients["intake"].post(
        "/aanvragen",
        json=aanmelding(f"h-{uuid4().hex[:8]}@example.org", "GM0363"),
        headers={"X-Filler": "x" * 17_000},
    )
    assert response.status_code == 431
    assert response.headers["content-type"].startswith("application/problem+json")
    assert system.mark("intake") == mark


def test_a_bearer_token_is_measured_before_it_is_decoded(system: InProcessSystem) -> None:
    response = system.clients["intake"].get(
        f"/aanvragen/{uuid4()}", headers={"Authorization": "Bearer " + "a" * 9000}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "token_too_long"


@pytest.mark.parametrize(
    ("service", "path", "auth"),
    [
        ("intake", "/aanvragen/{id}", True),
        ("intake", "/health/live", False),
        ("assessment", "/rapporten/{id}", False),
    ],
)
def test_every_answer_says_nosniff_and_no_store(
    system: InProcessSystem, service: str, path: str, auth: bool
) -> None:
    dossier = system.dossier()
    headers = system.headers("secretariaat") if auth else {}
    response = system.clients[service].get(
        path.format(id=dossier.aanvraag_id if auth else UUID(int=1)), headers=headers
    )
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
