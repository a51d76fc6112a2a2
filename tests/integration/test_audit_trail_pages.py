"""GET /aanvragen/{id}/audit by page: the pages together are the whole trail, in its order.

A dossier's trail is made of many events handed to intake's projection on real PostgreSQL, several
services' events at one moment among them (their order within the moment is the projection's
``recorded_order``, not any one column), delivered out of order. Read page by page through the
``Link`` each page gives, the trail must be exactly what the unpaged answer lists: every event
once, in the same order, also when events are recorded between two pages. A position the service
did not give, a page size out of bounds or a parameter given twice is refused with 422, and
nothing else happens.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from httpx import Response

from services.intake.projections.dossier import DossierProjection
from shared.contracts import events as ev
from shared.contracts.envelope import CloudEvent
from shared.contracts.registry import from_cloudevent
from shared.platform.consumer import Delivery
from shared.platform.relay import PositionHeader
from tests.integration.inprocess import InProcessSystem
from tests.unit.test_dossier_fold import T0, ce, geweigerd, ingediend, notificatie

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def system(inprocess_system: InProcessSystem) -> InProcessSystem:
    """The five services in one process, on a database of their own."""
    return inprocess_system


class Trail:
    """One dossier's events handed to intake's projection as the stream would deliver them."""

    def __init__(self, system: InProcessSystem) -> None:
        self.projection = DossierProjection(system.components["intake"].app)
        self.aanvraag_id = uuid4()
        self._sequence = iter(range(1, 1_000_000))
        self._log = {"intake": iter(range(1, 1_000_000)), "notifications": iter(range(1, 10**6))}

    def deliver(self, envelopes: list[CloudEvent], rng: random.Random | None = None) -> None:
        """Deliver the events (each its service's next log place), shuffled when ``rng``."""
        deliveries = [
            Delivery(
                envelope=envelope,
                event=from_cloudevent(envelope),
                stream_sequence=next(self._sequence),
                attempt=1,
                position=PositionHeader(next(self._log[envelope.source.rsplit(":", 1)[-1]]), 0, 1),
            )
            for envelope in envelopes
        ]
        if rng is not None:
            # Arrival order differs from the log's: sequences no longer follow log places.
            sequences = [d.stream_sequence for d in deliveries]
            rng.shuffle(sequences)
            deliveries = [
                Delivery(d.envelope, d.event, s, d.attempt, d.position)
                for d, s in zip(deliveries, sequences, strict=True)
            ]
            rng.shuffle(deliveries)
        for start in range(0, len(deliveries), 40):
            self.projection.handle_batch(deliveries[start : start + 40])


def _history(aanvraag_id: UUID, moments: int, rng: random.Random) -> list[CloudEvent]:
    """The dossier's submission, then up to four events a second from intake and notifications
    (refusals and notifications): many moments share events of both services."""
    events = [ingediend(aanvraag_id)]
    for second in range(1, moments + 1):
        at = T0 + timedelta(seconds=second)
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.5:
                events.append(geweigerd(aanvraag_id, at))
            else:
                events.append(notificatie(aanvraag_id, uuid4(), at, poging=1))
    return events


def _audit(system: InProcessSystem, aanvraag_id: UUID, **params: Any) -> Response:
    response: Response = system.clients["intake"].get(
        f"/aanvragen/{aanvraag_id}/audit", params=params, headers=system.headers("compliance")
    )
    return response


def _whole(system: InProcessSystem, aanvraag_id: UUID) -> list[str]:
    response = _audit(system, aanvraag_id)
    assert response.status_code == 200
    assert "link" not in response.headers, "the unpaged answer is the whole trail, as before"
    return [e["id"] for e in response.json()]


def _pages(system: InProcessSystem, aanvraag_id: UUID, limit: int) -> Iterator[list[str]]:
    """The trail page by page, each next page at the address the last one's Link gives."""
    response = _audit(system, aanvraag_id, limit=limit)
    while True:
        assert response.status_code == 200, response.text
        page = [e["id"] for e in response.json()]
        assert len(page) <= limit
        yield page
        if "next" not in response.links:
            return
        assert response.headers["link"].endswith('>; rel="next"')
        assert len(page) == limit, "a page that has a next is full"
        response = system.clients["intake"].get(
            response.links["next"]["url"], headers=system.headers("compliance")
        )


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 50, 1000])
def test_the_pages_together_are_the_whole_trail_in_its_order(
    system: InProcessSystem, limit: int
) -> None:
    rng = random.Random(limit)
    trail = Trail(system)
    trail.deliver(_history(trail.aanvraag_id, 60, rng), rng)
    whole = _whole(system, trail.aanvraag_id)
    assert len(whole) > 60

    pages = list(_pages(system, trail.aanvraag_id, limit))

    assert [event for page in pages for event in page] == whole
    assert len(pages) == max(1, -(-len(whole) // limit))


def test_events_recorded_between_pages_come_at_the_end_and_none_twice(
    system: InProcessSystem,
) -> None:
    rng = random.Random(11)
    trail = Trail(system)
    trail.deliver(_history(trail.aanvraag_id, 40, rng), rng)
    before = _whole(system, trail.aanvraag_id)
    read: list[str] = []
    later = T0 + timedelta(seconds=41)
    for number, page in enumerate(_pages(system, trail.aanvraag_id, 9)):
        read.extend(page)
        if number in (1, 3):  # while the officer reads: later steps, two of them at one moment
            later += timedelta(seconds=1)
            trail.deliver(
                [
                    geweigerd(trail.aanvraag_id, later),
                    notificatie(trail.aanvraag_id, uuid4(), later, poging=1),
                ]
            )

    after = _whole(system, trail.aanvraag_id)
    assert len(after) == len(before) + 4
    assert read == after
    assert len(set(read)) == len(read)


def test_an_event_arriving_late_before_the_position_is_left_to_the_next_reading(
    system: InProcessSystem,
) -> None:
    """A service's event can reach intake late (its relay held up) with a time the reader has
    passed: the reading goes on without it, listing nothing twice; reading again shows it."""
    rng = random.Random(12)
    trail = Trail(system)
    trail.deliver(_history(trail.aanvraag_id, 20, rng), rng)
    pages = _pages(system, trail.aanvraag_id, 10)
    read = next(pages) + next(pages)
    late = geweigerd(trail.aanvraag_id, T0 + timedelta(seconds=1, microseconds=5))
    trail.deliver([late])
    read += [event for page in pages for event in page]

    after = _whole(system, trail.aanvraag_id)
    assert late.id in after and late.id not in read
    assert read == [event for event in after if event != late.id]


def _forged(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def test_hostile_paging_parameters_are_refused_and_change_nothing(
    system: InProcessSystem,
) -> None:
    rng = random.Random(13)
    trail = Trail(system)
    trail.deliver(_history(trail.aanvraag_id, 10, rng), rng)
    other = Trail(system)
    other.deliver(_history(other.aanvraag_id, 10, rng), rng)
    first = _audit(system, trail.aanvraag_id, limit=3)
    na = first.links["next"]["url"].split("na=", 1)[1]
    other_na = _audit(system, other.aanvraag_id, limit=3).links["next"]["url"].split("na=")[1]
    whole = _whole(system, trail.aanvraag_id)
    marks = {service: system.mark(service) for service in system.components}
    some_event = whole[4]

    hostile: list[tuple[str, list[tuple[str, str]]]] = [
        ("limit", [("limit", "0")]),
        ("limit", [("limit", "-1")]),
        ("limit", [("limit", "1001")]),
        ("limit", [("limit", str(10**9))]),
        ("limit", [("limit", str(10**40))]),
        ("limit", [("limit", "drie")]),
        ("limit", [("limit", "3"), ("limit", "5")]),
        ("na", [("na", na), ("na", na)]),
        ("na", [("na", "")]),
        ("na", [("na", "!!!")]),
        ("na", [("na", na + "==")]),  # padding: not the one encoding the service gives
        ("na", [("na", "A" * 201)]),
        ("na", [("na", "A" * 5)]),  # not base64 of anything
        ("na", [("na", _forged("zomaar"))]),
        ("na", [("na", _forged(f"1772442901000000/{some_event}x"))]),  # no such event
        ("na", [("na", _forged(f"1/{some_event}"))]),  # the event, but not at that time
        ("na", [("na", _forged(f"{10**19 - 1}/{some_event}"))]),  # past any date
        ("na", [("na", _forged(f"-{10**18}/{some_event}"))]),
        ("na", [("na", base64.urlsafe_b64encode(b"\xff\xfe/x").rstrip(b"=").decode())]),
        ("na", [("na", other_na)]),  # another dossier's position
    ]
    for field, query in hostile:
        response = system.clients["intake"].get(
            f"/aanvragen/{trail.aanvraag_id}/audit",
            params=query,
            headers=system.headers("compliance"),
        )
        assert response.status_code == 422, (query, response.status_code, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert [e["field"] for e in problem["errors"]] == [f"query.{field}"], query
        assert "link" not in response.headers

    assert {service: system.mark(service) for service in system.components} == marks
    assert _whole(system, trail.aanvraag_id) == whole
    # The position given still works after all that.
    assert (
        _audit(system, trail.aanvraag_id, limit=3, na=na).json()
        == _audit(system, trail.aanvraag_id).json()[3:6]
    )


def test_an_unknown_dossier_is_404_paged_or_not_and_its_counts_too(
    system: InProcessSystem,
) -> None:
    unknown = uuid4()
    assert _audit(system, unknown).status_code == 404
    assert _audit(system, unknown, limit=5).status_code == 404
    telling = system.clients["intake"].get(
        f"/aanvragen/{unknown}/audit/telling", headers=system.headers("compliance")
    )
    assert telling.status_code == 404


def test_the_counts_are_of_the_whole_trail(system: InProcessSystem) -> None:
    rng = random.Random(14)
    trail = Trail(system)
    anoniem = ce(
        ev.ToegangGeweigerdV2(
            aanvraag_id=trail.aanvraag_id,
            dienst=ev.Dienst.INTAKE,
            actie="ALLE /{alle_routes}",
            reden="niet_ingelogd",
            status_code=401,
            aantal=5,
            venster_van=T0,
            venster_tot=T0 + timedelta(minutes=10),
        ),
        T0 + timedelta(minutes=10),
        id=str(uuid4()),
    )
    trail.deliver([*_history(trail.aanvraag_id, 30, rng), anoniem], rng)
    events = _audit(system, trail.aanvraag_id).json()

    response = system.clients["intake"].get(
        f"/aanvragen/{trail.aanvraag_id}/audit/telling", headers=system.headers("compliance")
    )

    assert response.status_code == 200
    telling = response.json()
    names = [e["type"].split(".")[-2] for e in events]
    assert telling["gebeurtenissen"] == len(events)
    assert telling["per_gebeurtenis"] == {name: names.count(name) for name in set(names)}
    # Each signed-in refusal one attempt; the anonymous window's event the five it counted.
    assert telling["geweigerde_pogingen"] == names.count("ToegangGeweigerd") - 1 + 5
