"""Helpers for tests that run against real servers: streams, systems, waiting, test data."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError, ServerError

from shared.contracts.events import PublicEvent
from shared.platform.access import configure_pseudonyms, opaque_actor_id
from shared.platform.auth import issue_token, load_or_create_secret
from shared.platform.model import DomainEvent
from shared.platform.relay import Gateway, PublicationCheck
from shared.platform.settings import SERVICES, Settings
from shared.platform.stream import provision
from tools.embedded import free_port
from tools.mailcatcher import MailCatcher
from tools.system import System

T = TypeVar("T")


def wait_until(check: Callable[[], T | None], timeout: float = 30, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def private_events_only(service: str) -> PublicationCheck:
    """The publication check of a test's own application, whose events are all private: its
    gateway announces none, so there is no public form to refuse."""
    return PublicationCheck(service, lambda event: [])


def gateway_defect(kind: type[DomainEvent], gateway: Gateway) -> Gateway:
    """``gateway`` with a defect: it fails on events of ``kind``, as a later release's mapping
    might, so they have no valid public form."""

    def broken(event: DomainEvent) -> Sequence[PublicEvent]:
        if isinstance(event, kind):
            raise ValueError("a gateway defect")
        return gateway(event)

    return broken


def settings_for(database_url: str, nats_url: str, data_dir: Path, **extra: Any) -> Settings:
    """Settings pointing at the test's servers."""
    return Settings(database_url=database_url, nats_url=nats_url, data_dir=data_dir, **extra)


async def _reset_streams(settings: Settings) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        for name in (settings.stream_name, settings.deadletter_stream_name):
            with suppress(NotFoundError):
                await js.delete_stream(name)
    finally:
        await nc.close()
    # The server answers a delete before its store is gone from disk; on a busy machine a
    # stream of the same name made at once can find it still there (10049, "error creating
    # store for stream"). Then it is made again after the removal had time.
    for attempt in range(_STORE_BUSY_ATTEMPTS):
        try:
            await provision(settings)
            return
        except ServerError as exc:
            if exc.err_code != _STORE_BUSY or attempt == _STORE_BUSY_ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.1 * (attempt + 1))


#: JetStream's "error creating store for stream", and how often a reset tries again after it.
_STORE_BUSY = 10049
_STORE_BUSY_ATTEMPTS = 8


def reset_streams(settings: Settings) -> None:
    """Delete and re-create the streams (the tests run one at a time on the session's NATS)."""
    asyncio.run(_reset_streams(settings))


@dataclass(frozen=True)
class StreamMessage:
    """A message as stored on a stream."""

    sequence: int
    subject: str
    headers: dict[str, str]
    data: bytes

    @property
    def envelope(self) -> dict[str, Any]:
        """The CloudEvent."""
        parsed: dict[str, Any] = json.loads(self.data)
        return parsed


#: Up to this many messages a stream is read one by one; more are read through one consumer
#: of the test's own (a request per message costs a round trip each: thousands after a fault run).
READ_ONE_BY_ONE = 32


async def _messages(nats_url: str, stream: str) -> list[StreamMessage]:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        if info.state.messages == 0:
            return []
        if info.state.messages > READ_ONE_BY_ONE:
            return await _messages_through_consumer(js, stream, info.state.last_seq)
        out = []
        for seq in range(info.state.first_seq, info.state.last_seq + 1):
            try:
                msg = await js.get_msg(stream, seq)
            except NotFoundError:
                continue
            out.append(StreamMessage(seq, msg.subject, dict(msg.headers or {}), msg.data or b""))
        return out
    finally:
        await nc.close()


async def _messages_through_consumer(
    js: JetStreamContext, stream: str, last_seq: int
) -> list[StreamMessage]:
    """Every message up to ``last_seq`` (the stream's end when the read began), in order, in
    batches of an ephemeral consumer that acknowledges nothing; the consumer is deleted
    afterwards (it would count as work waiting on the stream), and is dropped by the server
    after a while should the test die first."""
    consumer = await js.add_consumer(
        stream,
        ConsumerConfig(
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
        ),
    )
    out: list[StreamMessage] = []
    try:
        subscription = await js.pull_subscribe_bind(consumer=consumer.name, stream=stream)
        try:
            while True:
                try:
                    batch = await subscription.fetch(1000, timeout=5)
                except TimeoutError:
                    return out  # nothing more (the messages at the end were deleted)
                for msg in batch:
                    seq = msg.metadata.sequence.stream
                    if seq > last_seq:
                        return out
                    headers = dict(msg.headers or {})
                    out.append(StreamMessage(seq, msg.subject, headers, msg.data or b""))
                    if seq == last_seq or msg.metadata.num_pending == 0:
                        return out
        finally:
            await subscription.unsubscribe()
    finally:
        await js.delete_consumer(stream, consumer.name)


def stream_messages(nats_url: str, stream: str = "WEERBAAR") -> list[StreamMessage]:
    """Every message on a stream, in order."""
    return asyncio.run(_messages(nats_url, stream))


async def _count(nats_url: str, stream: str, subject: str | None) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(stream, subjects_filter=subject)
        if subject is None:
            return int(info.state.messages)
        return sum((info.state.subjects or {}).values())
    finally:
        await nc.close()


def stream_count(nats_url: str, subject: str | None = None, stream: str = "WEERBAAR") -> int:
    """How many messages a stream holds (on a subject filter, when given)."""
    return asyncio.run(_count(nats_url, stream, subject))


def pseudonym(data_dir: Path, sub: str) -> str:
    """The ``actorid`` the system whose data directory is ``data_dir`` records for ``sub``."""
    configure_pseudonyms(data_dir / "secrets" / "pseudonym.key")
    return opaque_actor_id(sub)


def token(data_dir: Path, role: str, **claims: Any) -> dict[str, str]:
    """An Authorization header for a role, signed with the system's embedded secret."""
    secret = load_or_create_secret(data_dir / "secrets" / "jwt.key")
    value = issue_token(
        secret, role=role, issuer="weerbaar-embedded", audience="weerbaar", **claims
    )
    return {"Authorization": f"Bearer {value}"}


def aanmelding(**overrides: Any) -> dict[str, Any]:
    """A registration with distinctive personal data (so leaks are easy to find)."""
    tag = secrets.token_hex(4)
    body: dict[str, Any] = {
        "ingediend_door": "bestuurder",
        "bestuurder": {
            "naam": f"Bestuurder Naam{tag}",
            "functie": "burgemeester",
            "email": f"bestuurder.{tag}@example.org",
            "telefoon": f"+31 6 {int(tag, 16) % 100000000:08d}",
            "adres": {
                "straat": f"Geheimstraat{tag}",
                "huisnummer": "7",
                "postcode": "1234 AB",
                "woonplaats": f"Woonplaats{tag}",
            },
        },
        "werkgever": {
            "organisatie": "Gemeente Testdorp",
            "organisatie_code": "GM0363",
            "contactpersoon": f"Contact Persoon{tag}",
            "email": f"werkgever.{tag}@example.org",
            "telefoon": "020 1234567",
        },
        "reden": f"Dreigbrief ontvangen, kenmerk Dreiging{tag}.",
        "verhuizing_gepland": False,
        "toestemming": True,
    }
    body.update(overrides)
    return body


def personal_values(body: dict[str, Any]) -> list[str]:
    """The personal data in a registration, as the strings a leak would contain."""
    b, w = body["bestuurder"], body["werkgever"]
    return [
        b["naam"],
        b["email"],
        b["telefoon"],
        b["adres"]["straat"],
        b["adres"]["woonplaats"],
        w["contactpersoon"],
        w["email"],
        body["reden"],
    ]


@contextmanager
def mail_catcher(directory: Path) -> Iterator[MailCatcher]:
    """A real SMTP server for the test."""
    catcher = MailCatcher(directory, port=0)
    catcher.start()
    try:
        yield catcher
    finally:
        catcher.stop()


def system_on(
    data_dir: Path, database_url: str, nats_url: str, catcher: MailCatcher, **extra_env: str
) -> System:
    """A System on the test's servers and SMTP server, on free ports."""
    return System(
        data_dir=data_dir,
        database_url=database_url,
        nats_url=nats_url,
        smtp=("127.0.0.1", catcher.port),
        extra_env=dict(extra_env),
        preferred_ports={service: free_port() for service in SERVICES},
    )


def get_json(client: httpx.Client, url: str, headers: dict[str, str]) -> Any:
    """GET that returns the JSON body of a 200, or None."""
    response = client.get(url, headers=headers)
    return response.json() if response.status_code == 200 else None
