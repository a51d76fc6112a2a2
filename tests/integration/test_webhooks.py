"""Webhooks on real PostgreSQL, NATS and a real HTTP receiver on loopback.

Public events are published on the stream as the services' relays publish them; the notifications
service's real durable consumer plans the deliveries, and its sender POSTs them to a small HTTP
server in a thread. The receiver is down, answers 500, answers too late, and comes back. Time is a
FixedClock moved to each delivery's next attempt: the retry schedule is the real one, no sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import nats
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg.sql import SQL, Identifier

from services.notifications.adapters.webhook_sender import WebhookSender
from services.notifications.bootstrap import NotificationsComponents, bootstrap
from services.notifications.domain.webhooks import AbonnementFalend, AbonnementHersteld, verify
from shared.contracts import events as public
from shared.contracts.registry import subject_for, to_cloudevent
from shared.platform.consumer import DurableConsumer
from shared.platform.model import DomainEvent, FixedClock
from shared.platform.relay import OutboxRelay
from shared.platform.settings import Settings
from tests.support import stream_messages, token, wait_until
from tools.embedded import free_port

pytestmark = pytest.mark.integration

NU = datetime(2026, 5, 11, 10, 0, tzinfo=UTC)
ORGANISATIE = "GM0363"
ANDERE = "GM0599"


# --- the receiver --------------------------------------------------------------------------------


@dataclass
class Ontvangen:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes
    answered: int | None  # None: answered too late (the sender had given up waiting)


@dataclass
class Receiver:
    """A real HTTP server on loopback that can be down, fail, be slow, or work."""

    port: int
    #: ok, fout (500), traag (answers after the sender's timeout), druppel (trickles its
    #: answer's header a byte at a time, each well within the sender's timeout per read)
    mode: str = "ok"
    received: list[Ontvangen] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    release: threading.Event = field(default_factory=threading.Event)
    tls: ssl.SSLContext | None = None  # HTTPS with this context's certificate
    server_names: list[str | None] = field(default_factory=list)  # TLS SNI of each handshake

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                if receiver.mode == "reuzenkop":
                    # A header far beyond what any answer needs (1 MB in one line).
                    receiver.received.append(Ontvangen(headers, body, None))
                    with contextlib.suppress(OSError):
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Reus: " + b"a" * 1_000_000)
                        self.wfile.write(b"\r\nContent-Length: 0\r\n\r\n")
                    self.close_connection = True
                    return
                if receiver.mode == "druppel":
                    receiver.received.append(Ontvangen(headers, body, None))
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Druppel: ")
                    self.wfile.flush()
                    with contextlib.suppress(OSError):
                        while not receiver.release.wait(0.2):
                            self.wfile.write(b"a")
                            self.wfile.flush()
                    self.close_connection = True
                    return
                if receiver.mode == "traag":
                    # Held until the test releases it, well after the sender stopped waiting.
                    receiver.release.wait(30)
                    receiver.received.append(Ontvangen(headers, body, None))
                    status = 200
                else:
                    status = 200 if receiver.mode == "ok" else 500
                    receiver.received.append(Ontvangen(headers, body, status))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        if self.tls is not None:

            def sni(sock: ssl.SSLSocket, name: str | None, ctx: ssl.SSLContext) -> None:
                receiver.server_names.append(name)

            self.tls.sni_callback = sni
            self.server.socket = self.tls.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def accepted_ids(self) -> list[str]:
        """The webhook-id of every request answered 2xx in time."""
        return [r.headers["webhook-id"] for r in self.received if r.answered == 200]


@contextmanager
def receiver(
    mode: str = "ok", *, up: bool = True, tls: ssl.SSLContext | None = None
) -> Iterator[Receiver]:
    r = Receiver(free_port(), mode, tls=tls)
    if up:
        r.start()
    try:
        yield r
    finally:
        r.release.set()
        r.stop()


# --- the service ---------------------------------------------------------------------------------


@dataclass
class Webhooks:
    """The notifications service on the test's servers, with a clock the test moves."""

    components: NotificationsComponents
    client: TestClient
    clock: FixedClock
    settings: Settings

    def headers(self, role: str, organisatie: str | None = None) -> dict[str, str]:
        claims = {"organisatie": organisatie} if organisatie else {}
        return token(self.settings.data_dir, role, sub=f"{role}-1", **claims)

    def subscribe(
        self, url: str, role: str = "werkgever", organisatie: str | None = ORGANISATIE, **body: Any
    ) -> dict[str, Any]:
        response = self.client.post(
            "/webhooks/abonnementen",
            json={"callback_url": url, **body},
            headers=self.headers(role, organisatie),
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def log(self, abonnement_id: str) -> list[dict[str, Any]]:
        response = self.client.get(
            f"/webhooks/abonnementen/{abonnement_id}/bezorgingen",
            headers=self.headers("compliance"),
            params={"limit": 500},
        )
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found

    def abonnement(self, abonnement_id: str) -> dict[str, Any]:
        response = self.client.get(
            f"/webhooks/abonnementen/{abonnement_id}", headers=self.headers("secretariaat")
        )
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found

    def next_due(self) -> datetime | None:
        """The latest next attempt of the planned deliveries (each round's jitter differs)."""
        with self.components.app.datastore.get_connection() as conn:
            row = conn.execute(
                "SELECT max(volgende_poging) AS due FROM notifications.webhook_bezorgingen"
                " WHERE status = 'gepland'"
            ).fetchone()
        assert row is not None
        due: datetime | None = row["due"]
        return due

    def send_due(self) -> int:
        """Move the clock to the next round of attempts and send what is due."""
        due = self.next_due()
        assert due is not None, "nothing planned"
        self.clock.advance_to(max(due, self.clock.now()))
        return self.components.webhook_sender.run_once()

    def stored(self) -> list[DomainEvent]:
        app = self.components.app
        out = []
        for notification in app.recorder.select_notifications(1, 10_000):
            event = app.mapper.to_domain_event(notification)
            assert isinstance(event, DomainEvent)
            out.append(event)
        return out


@pytest.fixture
def service(settings: Settings) -> Iterator[Webhooks]:
    configured = settings.model_copy(
        update={
            "webhook_allow_private_addresses": True,
            "webhook_timeout_s": 1.5,
            "webhook_failing_after": 3,
        }
    )
    clock = FixedClock(NU)
    components = bootstrap(configured, clock)
    with TestClient(components.api) as client:
        yield Webhooks(components, client, clock, configured)
    components.webhook_sender.close()
    components.app.close()


# --- events on the stream ------------------------------------------------------------------------


def _ingediend(aanvraag_id: uuid.UUID, organisatie: str) -> public.PublicEvent:
    return public.AanvraagIngediend(
        aanvraag_id=aanvraag_id,
        ingediend_op=NU,
        ingediend_door=public.Partij.BESTUURDER,
        organisatie_code=organisatie,
        binnen_regeling=True,
        verhuizing_gepland=False,
    )


def _proces(aanvraag_id: uuid.UUID, organisatie: str) -> list[public.PublicEvent]:
    """A dossier's first steps, one audit event and the report released to the werkgever."""
    rapport_id = uuid.uuid4()
    return [
        _ingediend(aanvraag_id, organisatie),
        public.ContactOpgenomen(aanvraag_id=aanvraag_id, contact_op=NU, binnen_termijn=True),
        public.RapportIngezien(
            aanvraag_id=aanvraag_id,
            rapport_id=rapport_id,
            versie=1,
            rol=public.Rol.BVA,
            ingezien_op=NU,
        ),
        public.RapportVrijgegeven(
            aanvraag_id=aanvraag_id, rapport_id=rapport_id, versie=1, organisatie_code=organisatie
        ),
    ]


async def _publish(settings: Settings, events: list[public.PublicEvent]) -> list[str]:
    nc = await nats.connect(settings.nats_url)
    ids = []
    try:
        js = nc.jetstream()
        for event in events:
            envelope = to_cloudevent(
                event,
                id=str(uuid.uuid4()),
                source=f"urn:nl:weerbaarbestuur:{event.emitting_service}",
                time=NU,
            )
            await js.publish(
                subject_for(event),
                envelope.to_json(),
                stream=settings.stream_name,
                headers={"Nats-Msg-Id": envelope.id},
            )
            ids.append(envelope.id)
    finally:
        await nc.close()
    return ids


@asynccontextmanager
async def consuming(
    service: Webhooks, *, relay: bool = False, replicas: int = 1
) -> AsyncIterator[list[DurableConsumer]]:
    """The webhooks consumer (replicas of it, and the outbox relay) running on real NATS."""
    stop = asyncio.Event()
    [subscription] = [s for s in service.components.subscriptions if s.purpose == "webhooks"]
    consumers = [
        DurableConsumer("notifications", subscription, service.settings) for _ in range(replicas)
    ]
    tasks = [asyncio.create_task(consumer.run(stop)) for consumer in consumers]
    if relay:
        outbox = OutboxRelay(service.components.app, service.components.gateway, service.settings)
        tasks.append(asyncio.create_task(outbox.run(stop)))
    try:
        yield consumers
    finally:
        stop.set()
        await asyncio.gather(*tasks)


def _planned(service: Webhooks) -> int:
    with service.components.app.datastore.get_connection() as conn:
        row = conn.execute("SELECT count(*) AS n FROM notifications.webhook_bezorgingen").fetchone()
    assert row is not None
    return int(row["n"])


async def _wait_planned(service: Webhooks, count: int) -> None:
    async with asyncio.timeout(30):
        while _planned(service) < count:
            await asyncio.sleep(0.05)
    assert _planned(service) == count


# --- the tests -----------------------------------------------------------------------------------


async def test_every_event_is_delivered_through_outages_once_per_id_and_signed(
    service: Webhooks,
) -> None:
    with receiver(up=False) as ours, receiver() as theirs:
        eigen = service.subscribe(ours.url)
        ander = service.subscribe(theirs.url, organisatie=ANDERE)
        alles = service.subscribe(ours.url, role="secretariaat", organisatie=None)
        dossier, ander_dossier = uuid.uuid4(), uuid.uuid4()
        async with consuming(service, relay=True):
            ids = await _publish(
                service.settings, _proces(dossier, ORGANISATIE) + _proces(ander_dossier, ANDERE)
            )
            # werkgever: 3 of 4 (not the read) per own dossier; secretariaat: all 8.
            await _wait_planned(service, 3 + 3 + 8)

            # Down: the connection is refused.
            assert await asyncio.to_thread(service.send_due) == 14
            # 500.
            ours.start()
            ours.mode = "fout"
            assert await asyncio.to_thread(service.send_due) == 11
            # Too slow: the receiver gets it but answers after the sender's timeout.
            ours.mode = "traag"
            assert await asyncio.to_thread(service.send_due) == 11
            assert service.abonnement(eigen["abonnement_id"])["status"] == "falend"
            # The alert's series: two subscriptions failing.
            series = 'weerbaar_webhook_subscriptions{service="notifications",status="falend"} 2.0'
            assert series in service.client.get("/metrics").text
            # Back.
            ours.release.set()
            ours.mode = "ok"
            assert await asyncio.to_thread(service.send_due) == 11
            assert service.next_due() is None

            # The alert went out as a public event, and so did the recovery.
            def announced() -> list[str]:
                return [
                    m.subject.split(".")[2]
                    for m in stream_messages(service.settings.nats_url)
                    if m.subject.startswith("weerbaar.notifications.WebhookAbonnement")
                ]

            await asyncio.to_thread(
                wait_until,
                lambda: sorted(announced()).count("WebhookAbonnementHersteld") == 2,
                what="the alert and the recovery on the stream",
            )
            assert sorted(await asyncio.to_thread(announced)) == (
                ["WebhookAbonnementGefaald"] * 2 + ["WebhookAbonnementHersteld"] * 2
            )

        # The slow phase's requests end once released: 11 each for 500, slow and ok.
        wait_until(lambda: len(ours.received) == 33, what="every request at the receiver")
    eigen_ids = {ids[0], ids[1], ids[3]}
    alle_ids = set(ids)
    # Every event reached its subscriptions. The slow phase's requests reached the receiver too
    # (it just answered late), so it holds some events twice: under the same webhook-id.
    accepted = ours.accepted_ids()
    assert set(accepted) == alle_ids
    assert len(accepted) == len(eigen_ids) + len(alle_ids)
    assert len(ours.received) > len(accepted), "the slow answers arrived too: duplicates"
    assert {r.headers["webhook-id"] for r in ours.received} == alle_ids
    # Another organisation's dossier never reached the werkgever's subscription, and v.v.
    for request in ours.received:
        assert request.headers["content-type"] == "application/cloudevents+json"
    assert {r.headers["webhook-id"] for r in theirs.received} == {ids[4], ids[5], ids[7]}
    for r in theirs.received:
        assert str(ander_dossier) in r.body.decode() and str(dossier) not in r.body.decode()
    # Signatures verify with each subscription's own secret (at the clock of the attempt).
    for r in ours.received:
        stamp = datetime.fromtimestamp(int(r.headers["webhook-timestamp"]), UTC)
        assert verify(eigen["secret"], r.headers, r.body, stamp) or verify(
            alles["secret"], r.headers, r.body, stamp
        )
    for r in theirs.received:
        stamp = datetime.fromtimestamp(int(r.headers["webhook-timestamp"]), UTC)
        assert verify(ander["secret"], r.headers, r.body, stamp)
        assert not verify(eigen["secret"], r.headers, r.body, stamp)
    # The body is the CloudEvent as published.
    messages = await asyncio.to_thread(stream_messages, service.settings.nats_url)
    published = {m.envelope["id"]: m.data for m in messages}
    for r in ours.received:
        assert r.body == published[r.headers["webhook-id"]]

    # The delivery log: four attempts each, with what happened.
    log = service.log(eigen["abonnement_id"])
    assert {b["event_id"] for b in log} == eigen_ids, "never the audit trail to a werkgever"
    for bezorging in log:
        assert bezorging["status"] == "afgeleverd"
        assert [p["poging"] for p in bezorging["log"]] == [1, 2, 3, 4]
        assert [(p["status_code"], p["fout"]) for p in bezorging["log"]] == [
            (None, "verbinding_mislukt"),
            (500, None),
            (None, "timeout"),
            (200, None),
        ]
        assert all(p["duur_ms"] >= 0 for p in bezorging["log"])
    stored = service.stored()
    assert len([e for e in stored if isinstance(e, AbonnementFalend)]) == 2
    assert len([e for e in stored if isinstance(e, AbonnementHersteld)]) == 2
    assert service.abonnement(eigen["abonnement_id"])["status"] == "actief"


async def test_a_receiver_that_trickles_its_answer_is_cut_off_at_the_attempts_deadline(
    service: Webhooks,
) -> None:
    # Each byte comes well within the timeout per read (1.5 s); without a deadline for the
    # whole attempt the sender would wait as long as the receiver likes, past the claim's hold,
    # and another sender would claim the delivery and send it a second time.
    with receiver("druppel") as druppel:
        eigen = service.subscribe(druppel.url)
        async with consuming(service):
            await _publish(service.settings, [_ingediend(uuid.uuid4(), ORGANISATIE)])
            await _wait_planned(service, 1)
        sender = service.components.webhook_sender
        began = time.monotonic()
        assert await asyncio.to_thread(service.send_due) == 1
        took = time.monotonic() - began
    assert len(druppel.received) == 1
    assert took < sender.deadline_s + sender.timeout_s, took
    [bezorging] = service.log(eigen["abonnement_id"])
    [poging] = bezorging["log"]
    assert (poging["geslaagd"], poging["fout"]) == (False, "timeout")
    assert bezorging["status"] == "gepland"  # retried on the schedule


async def test_an_answer_with_a_huge_header_is_a_failed_attempt_not_a_success_or_a_crash(
    service: Webhooks,
) -> None:
    with receiver("reuzenkop") as reus:
        eigen = service.subscribe(reus.url)
        async with consuming(service):
            await _publish(service.settings, [_ingediend(uuid.uuid4(), ORGANISATIE)])
            await _wait_planned(service, 1)
        assert await asyncio.to_thread(service.send_due) == 1
    assert len(reus.received) == 1
    [bezorging] = service.log(eigen["abonnement_id"])
    [poging] = bezorging["log"]
    assert poging["geslaagd"] is False and poging["fout"] == "protocolfout", poging
    assert bezorging["status"] == "gepland"


async def test_a_receiver_down_for_24_hours_still_gets_the_event(service: Webhooks) -> None:
    with receiver(up=False) as ours:
        eigen = service.subscribe(ours.url)
        async with consuming(service):
            [event_id] = await _publish(service.settings, [_ingediend(uuid.uuid4(), ORGANISATIE)])
            await _wait_planned(service, 1)
        first = NU
        attempts = 0
        while (due := service.next_due()) is not None and due - first < timedelta(hours=24):
            assert await asyncio.to_thread(service.send_due) == 1
            attempts += 1
            assert attempts < 10
        assert service.next_due() is not None, "the schedule gave up within 24 hours"
        ours.start()  # back after 24 hours of downtime
        assert await asyncio.to_thread(service.send_due) == 1
    assert ours.accepted_ids() == [event_id]
    [bezorging] = service.log(eigen["abonnement_id"])
    assert bezorging["status"] == "afgeleverd"
    times = [datetime.fromisoformat(p["op"]) for p in bezorging["log"]]
    assert times[-1] - times[0] >= timedelta(hours=24)
    # Each wait is the schedule's delay, stretched by at most the jitter.
    settings = service.settings
    for wait, delay in zip(
        [b - a for a, b in itertools.pairwise(times)],
        settings.webhook_retry_schedule_s,
        strict=False,
    ):
        seconds = wait.total_seconds()
        assert delay <= seconds <= delay * (1 + settings.webhook_jitter) + 0.001


async def test_given_up_delivery_is_sent_again_on_request(service: Webhooks) -> None:
    short = service.settings.model_copy(update={"webhook_retry_schedule_s": (60.0, 60.0)})
    components = bootstrap(short, service.clock)
    short_service = Webhooks(components, TestClient(components.api), service.clock, short)
    try:
        with receiver(up=False) as ours:
            eigen = short_service.subscribe(ours.url)
            async with consuming(short_service):
                [event_id] = await _publish(short, [_ingediend(uuid.uuid4(), ORGANISATIE)])
                await _wait_planned(short_service, 1)
            for _ in range(3):
                assert await asyncio.to_thread(short_service.send_due) == 1
            [bezorging] = short_service.log(eigen["abonnement_id"])
            assert bezorging["status"] == "opgegeven"
            assert short_service.next_due() is None
            assert short_service.abonnement(eigen["abonnement_id"])["status"] == "falend"

            ours.start()
            werkgever = short_service.headers("werkgever", ORGANISATIE)
            other = short_service.headers("werkgever", ANDERE)
            path = f"/webhooks/bezorgingen/{bezorging['bezorging_id']}/opnieuw"
            assert short_service.client.post(path, headers=other).status_code == 404
            response = short_service.client.post(path, headers=werkgever)
            assert response.status_code == 202, response.text
            assert await asyncio.to_thread(short_service.send_due) == 1
            # Sending a delivered one again: the receiver sees the same id twice.
            assert short_service.client.post(path, headers=werkgever).status_code == 202
            assert await asyncio.to_thread(short_service.send_due) == 1
        assert ours.accepted_ids() == [event_id, event_id]
        [bezorging] = short_service.log(eigen["abonnement_id"])
        assert bezorging["status"] == "afgeleverd"
        assert [p["geslaagd"] for p in bezorging["log"]] == [False, False, False, True, True]
    finally:
        short_service.client.close()
        components.webhook_sender.close()
        components.app.close()


async def test_two_replicas_plan_once_and_never_send_one_attempt_twice(
    service: Webhooks,
) -> None:
    second = bootstrap(service.settings, service.clock)
    try:
        with receiver() as ours:
            service.subscribe(ours.url)
            async with consuming(service, replicas=2):
                ids = await _publish(
                    service.settings, [_ingediend(uuid.uuid4(), ORGANISATIE) for _ in range(60)]
                )
                await _wait_planned(service, 60)
            senders = [service.components.webhook_sender, second.webhook_sender]

            def drain(index: int) -> int:
                sent = 0
                for _ in range(50):
                    count = senders[index].run_once()
                    sent += count
                    if count == 0:
                        break
                return sent

            with ThreadPoolExecutor(2) as pool:
                sent = sum(pool.map(drain, [0, 1]))
        assert sent == 60
        assert sorted(ours.accepted_ids()) == sorted(ids)
    finally:
        second.webhook_sender.close()
        second.app.close()


def test_subscriptions_are_an_organisations_own(service: Webhooks) -> None:
    client = service.client
    eigen = service.subscribe("http://127.0.0.1:9/hook")
    assert eigen["secret"].startswith("whsec_")
    assert eigen["organisatie_code"] == ORGANISATIE
    path = f"/webhooks/abonnementen/{eigen['abonnement_id']}"
    werkgever = service.headers("werkgever", ORGANISATIE)
    other = service.headers("werkgever", ANDERE)

    shown = client.get(path, headers=werkgever)
    assert shown.status_code == 200 and "secret" not in shown.json()
    assert client.get(path, headers=other).status_code == 404
    assert client.get(f"{path}/bezorgingen", headers=other).status_code == 404
    assert client.delete(path, headers=other).status_code == 404
    assert client.get("/webhooks/abonnementen", headers=other).json() == []
    assert [
        a["abonnement_id"] for a in client.get("/webhooks/abonnementen", headers=werkgever).json()
    ] == [eigen["abonnement_id"]]
    # Not for another organisation, not for the audit trail.
    refused = client.post(
        "/webhooks/abonnementen",
        json={"callback_url": "http://127.0.0.1:9/", "organisatie_code": ANDERE},
        headers=werkgever,
    )
    assert refused.status_code == 403
    audit = client.post(
        "/webhooks/abonnementen",
        json={"callback_url": "http://127.0.0.1:9/", "event_types": ["RapportIngezien"]},
        headers=werkgever,
    )
    assert audit.status_code == 422
    assert audit.json()["errors"] == [
        {"field": "body.event_types", "rule": "onbekend_of_niet_toegestaan"}
    ]
    # The secretariaat's subscriptions (which may carry the audit trail) are not the werkgever's.
    staff = service.subscribe(
        "http://127.0.0.1:9/staff",
        role="secretariaat",
        organisatie=None,
        organisatie_code=ORGANISATIE,
    )
    staff_path = f"/webhooks/abonnementen/{staff['abonnement_id']}"
    assert client.get(staff_path, headers=werkgever).status_code == 404
    assert client.get(f"{staff_path}/bezorgingen", headers=werkgever).status_code == 404
    assert staff["abonnement_id"] not in {
        a["abonnement_id"] for a in client.get("/webhooks/abonnementen", headers=werkgever).json()
    }
    # Compliance reads, never changes.
    compliance = service.headers("compliance")
    assert client.get(path, headers=compliance).status_code == 200
    assert client.delete(path, headers=compliance).status_code == 403

    removed = client.delete(path, headers=werkgever)
    assert removed.status_code == 200 and removed.json()["status"] == "verwijderd"
    assert client.get("/webhooks/abonnementen", headers=werkgever).json() == []


def test_callback_urls_on_private_addresses_are_refused_unless_allowed(
    settings: Settings,
) -> None:
    components = bootstrap(settings, FixedClock(NU))
    try:
        with TestClient(components.api) as client:
            headers = token(settings.data_dir, "secretariaat", sub="sec-1")
            for url, rule in (
                ("http://127.0.0.1:8005/internal", "prive_adres"),
                ("http://169.254.169.254/latest/meta-data", "prive_adres"),
                ("file:///etc/passwd", "alleen_http_of_https"),
            ):
                response = client.post(
                    "/webhooks/abonnementen", json={"callback_url": url}, headers=headers
                )
                assert response.status_code == 422, url
                assert response.json()["errors"] == [{"field": "body.callback_url", "rule": rule}]
                assert url not in response.text
    finally:
        components.webhook_sender.close()
        components.app.close()


async def test_a_removed_subscription_gets_nothing_more_and_its_secret_is_destroyed(
    service: Webhooks,
) -> None:
    with receiver() as ours:
        eigen = service.subscribe(ours.url)
        async with consuming(service):
            await _publish(service.settings, [_ingediend(uuid.uuid4(), ORGANISATIE)])
            await _wait_planned(service, 1)
            removed = service.client.delete(
                f"/webhooks/abonnementen/{eigen['abonnement_id']}",
                headers=service.headers("werkgever", ORGANISATIE),
            )
            assert removed.status_code == 200
            assert service.next_due() is None
            assert await asyncio.to_thread(service.components.webhook_sender.run_once) == 0
            # Events after the removal plan nothing for it.
            await _publish(service.settings, [_ingediend(uuid.uuid4(), ORGANISATIE)])
            await asyncio.to_thread(
                wait_until,
                lambda: _inbox(service) == 2,
                what="the second event handled",
            )
        assert _planned(service) == 1
        assert ours.received == []
    [bezorging] = service.log(eigen["abonnement_id"])
    assert bezorging["status"] == "vervallen"
    with service.components.app.datastore.get_connection() as conn:
        row = conn.execute(
            "SELECT wrapped_key FROM notifications.dossier_keys WHERE aanvraag_id = %s",
            (uuid.UUID(eigen["abonnement_id"]),),
        ).fetchone()
    assert row is not None and row["wrapped_key"] is None


# --- Idempotency-Key on making a subscription ----------------------------------------------------

MAKEN = "/webhooks/abonnementen"


def _bewaard(service: Webhooks) -> dict[str, int]:
    """What making subscriptions stores: rows, events, data keys (of the secrets), keys."""
    counts = {}
    with service.components.app.datastore.get_connection() as conn:
        for name, table in (
            ("rijen", "webhook_abonnementen"),
            ("datasleutels", "dossier_keys"),
            ("sleutels", "idempotency"),
        ):
            count = SQL("SELECT count(*) AS n FROM {}").format(Identifier("notifications", table))
            row = conn.execute(count).fetchone()
            assert row is not None
            counts[name] = int(row["n"])
    counts["events"] = sum(type(e).__name__ == "AbonnementAangemaakt" for e in service.stored())
    return counts


def _maak(
    service: Webhooks,
    key: str,
    role: str = "werkgever",
    organisatie: str | None = ORGANISATIE,
    **body: Any,
) -> Any:
    return service.client.post(
        MAKEN,
        json={"callback_url": "http://127.0.0.1:9/hook", **body},
        headers={**service.headers(role, organisatie), "Idempotency-Key": key},
    )


def test_a_retried_subscription_with_the_same_idempotency_key_is_made_once(
    service: Webhooks,
) -> None:
    first = _maak(service, "abonnement-1", event_types=["RapportVrijgegeven"])
    again = _maak(service, "abonnement-1", event_types=["RapportVrijgegeven"])
    assert (first.status_code, again.status_code) == (201, 201), again.text
    # The first answer, secret and all: the retrying caller may never have seen it.
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert _bewaard(service) == {"rijen": 1, "datasleutels": 1, "sleutels": 1, "events": 1}
    listed = service.client.get(MAKEN, headers=service.headers("werkgever", ORGANISATIE)).json()
    assert [a["abonnement_id"] for a in listed] == [first.json()["abonnement_id"]]


def test_a_retry_is_answered_even_when_the_organisation_is_at_its_maximum(
    service: Webhooks,
) -> None:
    first = _maak(service, "abonnement-1")
    assert first.status_code == 201, first.text
    service.components.webhooks.max_per_organisatie = 1
    # Only a new subscription counts against the maximum; a retry of the first is answered.
    again = _maak(service, "abonnement-1")
    assert again.status_code == 201, again.text
    assert again.json()["abonnement_id"] == first.json()["abonnement_id"]
    refused = _maak(service, "abonnement-2")
    assert refused.status_code == 409
    assert refused.json()["code"] == "te_veel_abonnementen"
    assert _bewaard(service)["rijen"] == 1


def test_the_same_idempotency_key_with_another_body_is_refused_and_stores_nothing(
    service: Webhooks,
) -> None:
    first = _maak(service, "abonnement-1")
    assert first.status_code == 201, first.text
    before = _bewaard(service)
    for body in (
        {"callback_url": "http://127.0.0.1:9/andere-hook"},
        {"event_types": ["AanvraagIngediend"]},
        {"aanvraag_id": str(uuid.uuid4())},
    ):
        reused = _maak(service, "abonnement-1", **body)
        assert reused.status_code == 422, reused.text
        problem = reused.json()
        assert problem["errors"] == [
            {"field": "header.Idempotency-Key", "rule": "reused_with_other_body"}
        ]
        assert problem["detail"] == "Deze Idempotency-Key is al gebruikt voor een ander verzoek."
    assert _bewaard(service) == before


def test_an_idempotency_key_is_the_callers_and_its_organisations_own(service: Webhooks) -> None:
    # The fixture's werkgevers of both organisations have the same sub: the organisation
    # decides too.
    eigen = _maak(service, "gedeeld-1")
    ander = _maak(service, "gedeeld-1", organisatie=ANDERE)
    staf = _maak(service, "gedeeld-1", role="secretariaat", organisatie=None)
    for response in (eigen, ander, staf):
        assert response.status_code == 201, response.text
        assert "Idempotent-Replayed" not in response.headers
    made = [r.json() for r in (eigen, ander, staf)]
    assert len({m["abonnement_id"] for m in made}) == 3
    assert [m["organisatie_code"] for m in made] == [ORGANISATIE, ANDERE, None]
    assert [m["eigenaar"] for m in made] == ["werkgever", "werkgever", "secretariaat"]
    # Each one's retry is its own first answer.
    assert _maak(service, "gedeeld-1").json() == made[0]
    assert _maak(service, "gedeeld-1", organisatie=ANDERE).json() == made[1]
    assert _maak(service, "gedeeld-1", role="secretariaat", organisatie=None).json() == made[2]
    assert _bewaard(service) == {"rijen": 3, "datasleutels": 3, "sleutels": 3, "events": 3}


def test_two_requests_with_one_key_at_the_same_moment_make_one_subscription(
    service: Webhooks,
) -> None:
    """Both look the key up before either stores it: the key's constraint refuses the second,
    which answers with the first's subscription."""
    with psycopg.connect(service.settings.database_url) as holder:
        # Both requests find no key, then wait at storing theirs until the lock is released.
        holder.execute("LOCK TABLE notifications.idempotency IN SHARE ROW EXCLUSIVE MODE")

        def waiting() -> bool:
            with psycopg.connect(service.settings.database_url) as conn:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO%idempotency%'"
                ).fetchone()
            return row is not None and row[0] == 2

        with ThreadPoolExecutor(2) as pool:
            answers = [pool.submit(_maak, service, "tegelijk-1") for _ in range(2)]
            wait_until(waiting, what="both requests storing their key")
            holder.commit()
            first, second = (a.result() for a in answers)
    assert (first.status_code, second.status_code) == (201, 201), second.text
    assert first.json() == second.json()
    assert sorted(r.headers.get("Idempotent-Replayed", "") for r in (first, second)) == [
        "",
        "true",
    ]
    assert _bewaard(service) == {"rijen": 1, "datasleutels": 1, "sleutels": 1, "events": 1}


@pytest.mark.parametrize(
    "key", ["", "a" * 201, "met spatie", "sleutel/1", "sleutel\u00e9", "<script>"]
)
def test_a_malformed_idempotency_key_is_refused_at_the_edge(service: Webhooks, key: str) -> None:
    response = service.client.post(
        MAKEN,
        json={"callback_url": "http://127.0.0.1:9/hook"},
        headers={
            **service.headers("werkgever", ORGANISATIE),
            "Idempotency-Key": key.encode(),  # as bytes: a non-ASCII key as UTF-8
        },
    )
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == ["header.Idempotency-Key"]
    assert _bewaard(service) == {"rijen": 0, "datasleutels": 0, "sleutels": 0, "events": 0}


def test_a_retry_after_the_subscription_was_removed_makes_no_new_one(service: Webhooks) -> None:
    first = _maak(service, "abonnement-1")
    assert first.status_code == 201, first.text
    removed = service.client.delete(
        f"{MAKEN}/{first.json()['abonnement_id']}",
        headers=service.headers("werkgever", ORGANISATIE),
    )
    assert removed.status_code == 200
    before = _bewaard(service)
    again = _maak(service, "abonnement-1")
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "abonnement_verwijderd"
    assert "whsec_" not in again.text
    assert _bewaard(service) == before


def _inbox(service: Webhooks) -> int:
    with service.components.app.datastore.get_connection() as conn:
        row = conn.execute(
            "SELECT count(*) AS n FROM notifications.inbox"
            " WHERE consumer = 'notifications-webhooks'"
        ).fetchone()
    assert row is not None
    return int(row["n"])


async def test_an_event_before_its_dossiers_organisation_is_known_is_retried_not_lost(
    service: Webhooks,
) -> None:
    """Out of order (a redelivery can cause it): the organisation filter waits for the register."""
    with receiver() as ours:
        service.subscribe(ours.url)
        dossier = uuid.uuid4()
        async with consuming(service) as [consumer]:
            contact = public.ContactOpgenomen(
                aanvraag_id=dossier, contact_op=NU, binnen_termijn=True
            )
            ids = await _publish(service.settings, [contact, _ingediend(dossier, ORGANISATIE)])
            await _wait_planned(service, 2)
            assert consumer.redelivered >= 1, "the early event came back"
        assert await asyncio.to_thread(service.send_due) == 2
    assert sorted(ours.accepted_ids()) == sorted(ids)


# --- where a delivery connects (DNS rebinding) ---------------------------------------------------

HOST = "hooks.integrator.example"  # no DNS knows it: only the test's resolver answers for it


@dataclass
class Dns:
    """The resolver the service is built with: answers per name, and who asked what."""

    answers: dict[str, list[list[str]]] = field(default_factory=dict)  # per name: one per call
    asked: list[str] = field(default_factory=list)

    def resolve(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        answers = self.answers[host]
        return answers.pop(0) if len(answers) > 1 else answers[0]


@contextmanager
def resolving(settings: Settings, dns: Dns, **update: Any) -> Iterator[Webhooks]:
    """The notifications service built with the test's resolver."""
    configured = settings.model_copy(update={"webhook_timeout_s": 1.5, **update})
    clock = FixedClock(NU)
    components = bootstrap(configured, clock, resolver=dns.resolve)
    try:
        with TestClient(components.api) as client:
            yield Webhooks(components, client, clock, configured)
    finally:
        components.webhook_sender.close()
        components.app.close()


async def test_a_host_that_resolves_inward_at_delivery_is_refused_and_nothing_reaches_it(
    settings: Settings,
) -> None:
    dns = Dns({HOST: [["93.184.215.14"]]})  # public when subscribed
    with (
        resolving(settings, dns, webhook_allow_private_addresses=False) as service,
        receiver() as local,
    ):
        eigen = service.subscribe(f"http://{HOST}:{local.port}/hook")
        async with consuming(service):
            await _publish(service.settings, [_ingediend(uuid.uuid4(), ORGANISATIE)])
            await _wait_planned(service, 1)
        for inward in ("127.0.0.1", "::ffff:127.0.0.1"):
            dns.answers[HOST] = [[inward]]  # rebound to loopback before the delivery
            dns.asked.clear()
            assert await asyncio.to_thread(service.send_due) == 1
            assert dns.asked == [HOST]

        assert local.received == []
        [bezorging] = service.log(eigen["abonnement_id"])
        assert bezorging["status"] == "gepland"  # retried on the schedule, in case DNS is fixed
        assert [(p["fout"], p["geslaagd"], p["status_code"]) for p in bezorging["log"]] == [
            ("prive_adres", False, None),
            ("prive_adres", False, None),
        ]


async def test_the_delivery_connects_to_the_address_it_checked_under_the_host_name(
    settings: Settings,
) -> None:
    # A second resolution would get an address where nothing listens.
    dns = Dns({HOST: [["127.0.0.1"], ["192.0.2.1"]]})
    with resolving(settings, dns, webhook_allow_private_addresses=True) as service:
        with receiver() as local:
            service.subscribe(f"http://{HOST}:{local.port}/hook")
            async with consuming(service):
                [event_id] = await _publish(
                    service.settings, [_ingediend(uuid.uuid4(), ORGANISATIE)]
                )
                await _wait_planned(service, 1)
            assert await asyncio.to_thread(service.send_due) == 1

        assert local.accepted_ids() == [event_id]
        assert local.received[0].headers["host"] == f"{HOST}:{local.port}"
        assert dns.asked == [HOST]


def _certificate(tmp_path: Any, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A self-signed certificate for ``name``: the receiver's context and one that trusts it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime.now(UTC) - timedelta(hours=1))
        .not_valid_after(datetime.now(UTC) + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


async def test_tls_is_verified_against_the_host_name_not_the_address(
    settings: Settings, tmp_path: Any
) -> None:
    other = "ander.integrator.example"  # resolves to the same receiver; its certificate is HOST's
    dns = Dns({HOST: [["127.0.0.1"]], other: [["127.0.0.1"]]})
    server_tls, trusting = _certificate(tmp_path, HOST)
    with (
        resolving(settings, dns, webhook_allow_private_addresses=True) as service,
        receiver(tls=server_tls) as local,
    ):
        eigen = service.subscribe(f"https://{HOST}:{local.port}/hook")
        ander = service.subscribe(f"https://{other}:{local.port}/hook")
        async with consuming(service):
            [event_id] = await _publish(service.settings, [_ingediend(uuid.uuid4(), ORGANISATIE)])
            await _wait_planned(service, 2)
        sender = WebhookSender(
            service.components.webhooks,
            service.clock,
            timeout_s=1.5,
            allow_private=True,
            resolver=dns.resolve,
            verify=trusting,
        )
        try:
            assert await asyncio.to_thread(sender.run_once) == 2
        finally:
            sender.close()

        assert local.accepted_ids() == [event_id]
        assert local.received[0].headers["host"] == f"{HOST}:{local.port}"
        assert sorted(local.server_names, key=str) == sorted([HOST, other])  # SNI: the names
        [delivered] = service.log(eigen["abonnement_id"])
        assert delivered["status"] == "afgeleverd"
        [refused] = service.log(ander["abonnement_id"])
        assert [(p["fout"], p["geslaagd"]) for p in refused["log"]] == [
            ("verbinding_mislukt", False)
        ]
