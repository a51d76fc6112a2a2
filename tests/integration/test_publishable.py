"""Every committed event can be published, and no request can make one that cannot (issue: one
request took a service down for good).

Root causes, each through the real API on PostgreSQL (in-process), then the relay on real NATS:
- a caller's ``X-Correlation-Id`` that is not opaque is replaced before anything is stored;
- a signed token with no role the system knows is refused as a bad token (401), and its refusal
  recorded without an empty role;
- ``actorid`` is a keyed pseudonym of the ``sub``, the same in every service;
- a command whose events have no valid public form stores nothing (500 ``niet_publiceerbaar``);
- a store written by the code before this change (a caller's correlation text, an empty role)
  publishes after the upgrade, with derived metadata, and the relay keeps running;
- a stored event that cannot be published stops the relay at it (the process, its API and the
  rest keep running, reported by metric, readiness and log) until it is told to resume.
"""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import jwt
import psycopg
import pytest

from services.intake.application import Intake
from services.intake.bootstrap import application as intake_application
from services.intake.domain import Aanmelding
from services.intake.gateway import to_public
from shared.platform.access import PSEUDONYM, ToegangGeweigerdVastgelegd, opaque_actor_id
from shared.platform.auth import load_or_create_secret
from shared.platform.errors import NietPubliceerbaar
from shared.platform.model import Context, DomainEvent, first_event, utcnow
from shared.platform.relay import RESUME_PREFIX, OutboxRelay, PublicationCheck, relay_channel
from shared.platform.settings import Settings
from tests.integration.inprocess import InProcessSystem, aanmelding
from tests.support import stream_messages, wait_until
from tools import relaycontrol
from tools.system import System

pytestmark = pytest.mark.integration

HOSTILE_CORRELATION = "not opaque"


@pytest.fixture(scope="module")
def system(inprocess_system: InProcessSystem) -> InProcessSystem:
    """The five services in one process, on a database of their own (this module's)."""
    return inprocess_system


def _signed(system: InProcessSystem, **claims: Any) -> dict[str, str]:
    """A validly signed token with exactly these claims (roles included, known or not)."""
    now = utcnow()
    body = {
        "iss": system.settings.jwt_issuer,
        "aud": system.settings.jwt_audience,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(hours=1),
        **claims,
    }
    import jwt

    secret = load_or_create_secret(system.settings.secret_file)
    return {"Authorization": f"Bearer {jwt.encode(body, secret, algorithm='HS256')}"}


def _stored(system: InProcessSystem, service: str, mark: int) -> list[DomainEvent]:
    return system.stored_since(service, mark)


# --- what a caller sends ---------------------------------------------------------------------


def test_a_correlation_id_that_is_not_opaque_is_replaced_before_it_is_stored(
    system: InProcessSystem,
) -> None:
    mark = system.mark("intake")
    response = system.clients["intake"].post(
        "/aanvragen",
        json=aanmelding(f"c-{uuid4().hex[:8]}@example.org", "GM0363"),
        headers={"X-Correlation-Id": HOSTILE_CORRELATION},
    )
    assert response.status_code == 201, response.text
    said = response.headers["X-Correlation-Id"]
    assert said != HOSTILE_CORRELATION
    (event,) = _stored(system, "intake", mark)
    assert event.correlation_id == said
    # And its public form is valid as it is: nothing to derive at publishing.
    PublicationCheck("intake", to_public, "urn:test:intake")(event)


def test_an_opaque_correlation_id_is_kept(system: InProcessSystem) -> None:
    mark = system.mark("intake")
    chosen = str(uuid4())
    response = system.clients["intake"].post(
        "/aanvragen",
        json=aanmelding(f"c-{uuid4().hex[:8]}@example.org", "GM0363"),
        headers={"X-Correlation-Id": chosen},
    )
    assert response.status_code == 201
    assert response.headers["X-Correlation-Id"] == chosen
    (event,) = _stored(system, "intake", mark)
    assert event.correlation_id == chosen


@pytest.mark.parametrize("roles", [[], ["admin"], ["Secretariaat"]], ids=["none", "admin", "case"])
def test_a_token_with_no_known_role_is_refused_as_a_bad_token(
    system: InProcessSystem, roles: list[str]
) -> None:
    dossier = system.dossier()
    marks = {service: system.mark(service) for service in system.components}
    response = system.clients["intake"].get(
        f"/aanvragen/{dossier.aanvraag_id}",
        headers=_signed(system, sub=f"someone-{uuid4().hex[:6]}", roles=roles),
    )
    assert response.status_code == 401
    assert response.json()["code"] == "no_known_role"
    refusals = system.refusals_since("intake", marks["intake"])
    assert refusals, "the refusal is on record"
    for refusal in refusals:
        assert refusal.actor_role is None  # never an empty string
        assert refusal.actor_id is None
        PublicationCheck("intake", to_public, "urn:test:intake")(refusal)


def test_actorid_is_a_keyed_pseudonym_of_the_sub_the_same_in_every_service(
    system: InProcessSystem,
) -> None:
    sub = "jan.jansen@gemeente.example"
    dossier = system.dossier()
    marks = {service: system.mark(service) for service in system.components}
    sec = _signed(system, sub=sub, roles=["secretariaat"])
    not_theirs = _signed(system, sub=sub, roles=["bestuurder"], email="iemand@example.org")
    refused = system.clients["intake"].get(f"/aanvragen/{dossier.aanvraag_id}", headers=not_theirs)
    assert refused.status_code == 404
    contact = system.clients["scheduling"].post(
        f"/aanvragen/{dossier.aanvraag_id}/contact", headers=sec
    )
    assert contact.status_code == 200, contact.text
    intake_refusal = system.refusals_since("intake", marks["intake"])[-1]
    scheduled = _stored(system, "scheduling", marks["scheduling"])[-1]
    pseudonym = opaque_actor_id(sub)
    assert PSEUDONYM.fullmatch(pseudonym)
    assert intake_refusal.actor_id == pseudonym
    assert scheduled.actor_id == pseudonym
    for service, mark in marks.items():
        for event in _stored(system, service, mark):
            assert sub not in event.model_dump_json(), f"{service} stored the raw sub"
    # Even a sub that looks opaque is never stored as itself.
    assert opaque_actor_id("usr-1") != "usr-1"


# --- the check before commit -----------------------------------------------------------------


def test_a_command_whose_event_cannot_be_published_stores_nothing(
    system: InProcessSystem,
) -> None:
    intake = system.components["intake"].app
    check = intake.publication_check
    assert check is not None, "every service's application checks before it records"

    def broken(event: DomainEvent) -> list[Any]:
        raise ValueError("a gateway defect")

    intake.publication_check = PublicationCheck("intake", broken, "urn:test:intake")
    mark = system.mark("intake")
    try:
        response = system.clients["intake"].post(
            "/aanvragen", json=aanmelding(f"c-{uuid4().hex[:8]}@example.org", "GM0363")
        )
    finally:
        intake.publication_check = check
    assert response.status_code == 500
    assert response.json()["code"] == "niet_publiceerbaar"
    assert system.mark("intake") == mark, "nothing stored"


def test_the_check_refuses_metadata_the_contract_refuses(system: InProcessSystem) -> None:
    """A future edge that forgets to check a header is caught before the commit, not after."""
    intake = system.components["intake"].app
    assert isinstance(intake, Intake)
    mark = system.mark("intake")
    with pytest.raises(NietPubliceerbaar):
        intake.dien_aanvraag_in(
            Aanmelding.model_validate(aanmelding(f"c-{uuid4().hex[:8]}@example.org", "GM0363")),
            Context(now=utcnow(), correlation_id=HOSTILE_CORRELATION),
        )
    with pytest.raises(NietPubliceerbaar):
        intake.record(
            first_event(
                ToegangGeweigerdVastgelegd,
                uuid4(),
                Context(now=utcnow(), actor_role=""),
                aanvraag_id=None,
                actie="GET /aanvragen/{aanvraag_id}",
                reden="missing_role",
                status_code=403,
            )
        )
    assert system.mark("intake") == mark


# --- what the code before this change stored ---------------------------------------------------


def _legacy_rows(settings: Settings) -> list[str]:
    """What the code before this change let through: stored without the check (switched off
    here, as that code had none), a caller's correlation text and an empty role."""
    intake = intake_application(settings.eventsourcing_env("intake"))
    intake.publication_check = lambda event: None
    try:
        ids = []
        for _ in range(3):
            result = intake.dien_aanvraag_in(
                Aanmelding.model_validate(aanmelding(f"o-{uuid4().hex[:8]}@example.org", "GM0363")),
                Context(now=utcnow(), correlation_id=HOSTILE_CORRELATION, actor_role="aanvrager"),
            )
            ids.append(str(result.aanvraag_id))
        intake.record(
            first_event(
                ToegangGeweigerdVastgelegd,
                uuid4(),
                Context(now=utcnow(), actor_id="usr-1", actor_role=""),
                aanvraag_id=UUID(ids[0]),
                actie="GET /aanvragen/{aanvraag_id}",
                reden="missing_role",
                status_code=403,
            )
        )
        return ids
    finally:
        intake.close()


def _system(settings: Settings, tmp_path: Path) -> System:
    return System(
        data_dir=tmp_path / "data",
        database_url=settings.database_url,
        nats_url=settings.nats_url,
        smtp=("127.0.0.1", 1),
        extra_env={"WEERBAAR_KEK_DIR": str(settings.kek_path)},
    )


def test_a_store_written_before_the_upgrade_publishes_and_the_relay_keeps_running(
    settings: Settings, tmp_path: Path
) -> None:
    ids = _legacy_rows(settings)
    system = _system(settings, tmp_path)
    relay = system.spawn("intake", roles=("relay",), name="relay")
    try:
        wait_until(
            lambda: len(_intake_messages(settings)) == 4, timeout=60, what="the old rows published"
        )
        after = intake_application(settings.eventsourcing_env("intake"))
        try:
            later = after.dien_aanvraag_in(
                Aanmelding.model_validate(aanmelding(f"n-{uuid4().hex[:8]}@example.org", "GM0363")),
                Context(now=utcnow(), correlation_id=str(uuid4())),
            )
        finally:
            after.close()
        wait_until(
            lambda: len(_intake_messages(settings)) == 5, timeout=60, what="a later event published"
        )
        assert relay.process.poll() is None, "the relay process keeps running"
        log_text = relay.log_path.read_text()
    finally:
        system.stop()
    messages = [json.loads(m.data) for m in _intake_messages(settings)]
    assert {m["subject"] for m in messages} >= {*ids, str(later.aanvraag_id)}
    for message in messages:
        assert message.get("correlationid") != HOSTILE_CORRELATION
        assert message.get("actorrole") != ""
    refusal = next(m for m in messages if m["type"].endswith("ToegangGeweigerd.v1"))
    assert "actorrole" not in refusal
    assert "stored event published with derived metadata" in log_text


def test_the_two_requests_that_took_a_service_down_leave_it_running(
    settings: Settings, tmp_path: Path
) -> None:
    """Against a running intake process: the public registration with a correlation id that is
    not opaque, and validly signed tokens without a known role; the process keeps running and
    what it recorded (the registration, the refusals) and what it records afterwards reaches the
    stream."""
    system = _system(settings, tmp_path)
    process = system.spawn("intake", name="intake")
    try:
        system.wait_ready(60)
        secret = load_or_create_secret(settings.secret_file)
        base = f"http://127.0.0.1:{system.ports['intake']}"
        with httpx.Client(base_url=base, timeout=10) as client:
            registered = client.post(
                "/aanvragen",
                json=aanmelding(f"h-{uuid4().hex[:8]}@example.org", "GM0363"),
                headers={"X-Correlation-Id": HOSTILE_CORRELATION},
            )
            assert registered.status_code == 201, registered.text
            aanvraag_id = registered.json()["aanvraag_id"]
            for roles in ([], ["admin"], ["Secretariaat"]):
                now = utcnow()
                token = jwt.encode(
                    {
                        "iss": settings.jwt_issuer,
                        "aud": settings.jwt_audience,
                        "sub": "Jan Jansen <jan@example.org>",
                        "roles": roles,
                        "iat": now,
                        "exp": now + timedelta(minutes=5),
                    },
                    secret,
                    algorithm="HS256",
                )
                refused = client.get(
                    f"/aanvragen/{aanvraag_id}", headers={"Authorization": f"Bearer {token}"}
                )
                assert refused.status_code == 401
            later = client.post(
                "/aanvragen", json=aanmelding(f"l-{uuid4().hex[:8]}@example.org", "GM0363")
            )
            assert later.status_code == 201
        wait_until(
            lambda: later.json()["aanvraag_id"] in _published_subjects(settings),
            timeout=60,
            what="the later registration on the stream",
        )
        assert process.process.poll() is None, "the process keeps running"
    finally:
        system.stop()
    messages = [json.loads(m.data) for m in _intake_messages(settings)]
    assert aanvraag_id in {m["subject"] for m in messages}
    # Anonymous (no known role): counted per dossier, the window's first on record at once.
    assert any(m["type"].endswith("ToegangGeweigerd.v2") for m in messages), "the refusal too"
    raw = b"".join(m.data for m in _intake_messages(settings))
    assert HOSTILE_CORRELATION.encode() not in raw
    assert b"jan@example.org" not in raw and b"Jan Jansen" not in raw


def _intake_messages(settings: Settings) -> list[Any]:
    return [
        m for m in stream_messages(settings.nats_url) if m.subject.startswith("weerbaar.intake.")
    ]


# --- an event no release can publish yet ---------------------------------------------------------


def _unpublishable_row(settings: Settings) -> int:
    """A stored event no public form fits (a defect of some release stored it unchecked): a
    refusal whose route holds a caller's text where the contract wants a template."""
    intake = intake_application(settings.eventsourcing_env("intake"))
    intake.publication_check = lambda event: None  # as that release stored it
    try:
        intake.record(
            first_event(
                ToegangGeweigerdVastgelegd,
                uuid4(),
                Context(now=utcnow(), correlation_id=str(uuid4())),
                aanvraag_id=None,
                actie="GET /aanvragen/jan jansen",
                reden="missing_role",
                status_code=403,
            )
        )
        return intake.max_notification_id()
    finally:
        intake.close()


def _fixed_gateway(event: DomainEvent) -> Any:
    """The fixed release's gateway: it gives such a refusal a route the contract accepts."""
    if isinstance(event, ToegangGeweigerdVastgelegd) and " " in event.actie.split(" ", 1)[1]:
        event = event.model_copy(update={"actie": "GET /{onbekend}"})
    return to_public(event)


def _submit(settings: Settings) -> str:
    intake = intake_application(settings.eventsourcing_env("intake"))
    try:
        result = intake.dien_aanvraag_in(
            Aanmelding.model_validate(aanmelding(f"s-{uuid4().hex[:8]}@example.org", "GM0363")),
            Context(now=utcnow(), correlation_id=str(uuid4())),
        )
        return str(result.aanvraag_id)
    finally:
        intake.close()


def test_a_relay_stopped_at_an_unpublishable_event_keeps_the_process_serving_and_says_so(
    settings: Settings, tmp_path: Path
) -> None:
    before = _submit(settings)
    blocked_at = _unpublishable_row(settings)
    behind = _submit(settings)
    system = _system(settings, tmp_path)
    process = system.spawn("intake", name="intake")  # API, relay, consumers, workers
    port = system.ports["intake"]
    try:
        wait_until(
            lambda: "relay stopped at an event it cannot publish" in process.log_path.read_text(),
            timeout=60,
            what="the relay stopping at the event",
        )
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            metrics = client.get("/metrics").text
            ready = client.get("/health/ready").json()
            answered = client.post(
                "/aanvragen",
                json=aanmelding(f"a-{uuid4().hex[:8]}@example.org", "GM0363"),
            )
        # The operator's view: `weerbaar relay status` names the event; `resume` without a
        # fixed release finds the relay stopped there again.
        said: list[str] = []
        assert relaycontrol.status(settings.database_url, out=said.append) == 1
        assert any(f"GESTOPT bij gebeurtenis {blocked_at}" in line for line in said)
        again: list[str] = []
        assert relaycontrol.resume(settings.database_url, "intake", 30, out=again.append) == 1
        assert f"opnieuw gestopt bij {blocked_at}" in again[-1]
        assert process.process.poll() is None, "the process keeps running"
        log_text = process.log_path.read_text()
    finally:
        system.stop_process(process, signal.SIGTERM)
        system.stop()
    assert answered.status_code == 201, "the API keeps serving"
    assert f'weerbaar_relay_stopped_at_event{{service="intake"}} {blocked_at}.0' in metrics
    assert ready["details"]["relay"]["gestopt_bij"] == blocked_at
    assert str(blocked_at) in log_text
    published = {m.subject.rsplit(".", 1)[-1] for m in _intake_messages(settings)}
    assert before in published, "what came before the event is published"
    assert behind not in published, "nothing after it: the stream keeps the log's order"


def test_a_stopped_relay_resumes_when_told_after_the_fix(settings: Settings) -> None:
    """The relay of a release that cannot publish the event stops at it; told to resume without
    a fix it stops there again; the fixed release's gateway, told to resume, publishes it and
    everything behind it, in order."""
    before = _submit(settings)
    blocked_at = _unpublishable_row(settings)
    behind = _submit(settings)
    intake = intake_application(settings.eventsourcing_env("intake"))

    async def scenario() -> None:
        relay = OutboxRelay(intake, to_public, settings, poll_interval_s=0.2)
        stop = asyncio.Event()
        task = asyncio.create_task(relay.run(stop))
        try:
            await _until(lambda: _stopped_at(settings) == blocked_at, "the relay stopping")
            first_stop = await asyncio.to_thread(_stop, settings)
            assert first_stop is not None and first_stop[0] == blocked_at
            published = await asyncio.to_thread(_published_subjects, settings)
            assert before in published
            assert behind not in published
            _resume(settings)
            # The stop is cleared and made again at once (a few milliseconds apart): what shows
            # that it stopped again is a later stop at the same event.
            await _until(lambda: _stopped_again(settings, first_stop), "stopping again")
            relay.gateway = _fixed_gateway  # the fixed release is deployed
            _resume(settings)
            await _until(
                lambda: behind in _published_subjects(settings), "the events behind it published"
            )
            assert await asyncio.to_thread(_stopped_at, settings) is None
            assert not task.done(), "the relay never ended"
        finally:
            stop.set()
            await task

    try:
        asyncio.run(scenario())
    finally:
        intake.close()
    subjects = [m.subject for m in _intake_messages(settings)]
    assert any(".ToegangGeweigerd.geen-dossier" in s for s in subjects)


def _published_subjects(settings: Settings) -> set[str]:
    return {m.subject.rsplit(".", 1)[-1] for m in _intake_messages(settings)}


def _stopped_at(settings: Settings) -> int | None:
    with psycopg.connect(settings.database_url) as conn:
        exists = conn.execute("SELECT to_regclass('intake.relay_position')").fetchone()
        if exists is None or exists[0] is None:
            return None  # the relay has not started yet
        row = conn.execute("SELECT gestopt_bij FROM intake.relay_position").fetchone()
    return None if row is None else row[0]


def _stop(settings: Settings) -> tuple[int, datetime] | None:
    """Where and since when the relay is stopped (one read), or None while it is not."""
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT gestopt_bij, gestopt_sinds FROM intake.relay_position"
        ).fetchone()
    return None if row is None or row[0] is None else (row[0], row[1])


def _stopped_again(settings: Settings, first: tuple[int, datetime]) -> bool:
    """Whether the relay stopped at the same event again, after its first stop."""
    stop = _stop(settings)
    return stop is not None and stop[0] == first[0] and stop[1] > first[1]


def _resume(settings: Settings) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_notify(%s, %s)", (relay_channel("intake"), RESUME_PREFIX + "t"))


async def _until(check: Any, what: str, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(check):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)
