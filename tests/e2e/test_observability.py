"""What an operator sees of the running services: /metrics of every process, one trace per request.

The services run as processes on real PostgreSQL and NATS, with the test's SMTP server.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import nats
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.platform.settings import SERVICES
from tests.support import (
    aanmelding,
    personal_values,
    reset_streams,
    settings_for,
    stream_messages,
    system_on,
    token,
    wait_until,
)
from tools.mailcatcher import MailCatcher, free_port, list_messages
from tools.system import System

pytestmark = pytest.mark.e2e

Samples = list[tuple[str, dict[str, str], float]]

#: A route of each service that needs a token: asked without one, it answers 401 and the
#: service records the refusal (an event appended).
PROTECTED = {
    "intake": "/aanvragen/{aanvraag_id}",
    "scheduling": "/aanvragen/{aanvraag_id}/planning",
    "assessment": "/aanvragen/{aanvraag_id}/rapporten",
    "approval": "/rapporten/{rapport_id}/status",
    "notifications": "/notificaties",
}


def concrete(template: str, value: str) -> str:
    """The route template with every parameter filled in."""
    return re.sub(r"\{[a-z_]+\}", value, template)


def scrape(url: str) -> tuple[str, Samples]:
    """The text of ``url`` (a /metrics endpoint) and its samples."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    samples = [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    ]
    return response.text, samples


def total(samples: Samples, name: str, **labels: str) -> float | None:
    """The sum of the samples of ``name`` whose labels include ``labels`` (None: no such series)."""
    found = [v for n, lab, v in samples if n == name and labels.items() <= lab.items()]
    return sum(found) if found else None


def log_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            lines.append(entry)
    return lines


# --- one trace from the request to the e-mail ----------------------------------------------------


def test_one_trace_from_the_request_to_the_mail_and_through_the_logs(
    system: System, catcher: MailCatcher
) -> None:
    trace_id = secrets.token_hex(16)
    caller_span = secrets.token_hex(8)
    body = aanmelding()
    with httpx.Client(timeout=10) as client:
        response = client.post(
            f"{system.url('intake')}/aanvragen",
            json=body,
            headers={"traceparent": f"00-{trace_id}-{caller_span}-01"},
        )
        assert response.status_code == 201
        assert response.headers["X-Trace-Id"] == trace_id
        aanvraag_id = response.json()["aanvraag_id"]
        other = client.post(f"{system.url('intake')}/aanvragen", json=aanmelding())
        assert other.status_code == 201

    # The e-mail it caused carries the trace (the SMTP server stored the header).
    mails = wait_until(
        lambda: (m := list_messages(catcher.directory)) and len(m) == 2 and m,
        timeout=60,
        what="both confirmation mails",
    )
    headers = {mail.to[0]: mail.message()["Traceparent"] for mail in mails}
    ours = headers[body["bestuurder"]["email"]]
    assert ours is not None, "the mail carries a Traceparent header"
    version, mail_trace, mail_span, _ = str(ours).split("-")
    assert (version, mail_trace) == ("00", trace_id), "the mail continues the request's trace"
    assert mail_span != caller_span
    others = [
        str(h).split("-")[1] for to, h in headers.items() if to != body["bestuurder"]["email"]
    ]
    assert others and trace_id not in others, "another request is another trace"

    # On the stream: the request's event, and what the other services did because of it.
    def traced_sources() -> set[str]:
        return {
            m.envelope["source"].rsplit(":", 1)[-1]
            for m in stream_messages(system.nats_url or "")
            if m.envelope.get("traceparent", "").split("-")[1:2] == [trace_id]
        }

    sources = wait_until(
        lambda: (s := traced_sources()) >= {"intake", "scheduling", "notifications"} and s,
        timeout=60,
        what="intake's, scheduling's and notifications' events in the trace",
    )
    assert sources <= set(SERVICES)
    ingediend = [
        m
        for m in stream_messages(system.nats_url or "")
        if m.subject == f"weerbaar.intake.AanvraagIngediend.{aanvraag_id}"
    ]
    assert ingediend[0].envelope["traceparent"].split("-")[1] == trace_id

    # The log lines of the request and of the mail's delivery carry the same trace id.
    logs = system.data_dir / "logs"
    request_lines = [
        line
        for line in log_lines(logs / "intake.log")
        if line.get("trace_id") == trace_id and line.get("message") == "request"
    ]
    # The request itself, and the address notifications asked for (the claim-check) in it.
    assert sorted((line["route"], line["status"]) for line in request_lines) == [
        ("/aanvragen", 201),
        ("/internal/aanvragen/{aanvraag_id}/ontvanger", 200),
    ]
    attempts = wait_until(
        lambda: [
            line
            for line in log_lines(logs / "notifications.log")
            if line.get("trace_id") == trace_id and line.get("message") == "notification attempt"
        ],
        what="the delivery's log line with the trace id",
    )
    assert attempts[0]["outcome"] == "NotificatieVerzonden"
    assert attempts[0]["span_id"] == mail_span, "the line of the attempt that sent the mail"


# --- metrics of every process --------------------------------------------------------------------


@pytest.fixture
def split_system(
    tmp_path: Path, fresh_database: str, nats_url: str, catcher: MailCatcher
) -> Iterator[System]:
    """Every service with all roles, except intake: its API without its relay (started later)."""
    reset_streams(settings_for(fresh_database, nats_url, tmp_path))
    running = system_on(tmp_path / "data", fresh_database, nats_url, catcher)
    running.data_dir.mkdir(parents=True)
    try:
        for service in SERVICES:
            roles = ("api", "consumers", "workers") if service == "intake" else ("all",)
            running.spawn(service, roles=roles)
        running.wait_ready(timeout=90)
        yield running
    finally:
        running.stop()


async def _publish_poison(nats_url: str, subjects: list[str]) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        for subject in subjects:
            await js.publish(subject, b'{"not": "a cloudevent"}', stream="WEERBAAR")
    finally:
        await nc.close()


def test_metrics_of_every_service_and_of_a_relay_process(
    split_system: System, catcher: MailCatcher
) -> None:
    system = split_system
    metrics = {service: f"{system.url(service)}/metrics" for service in SERVICES}
    body = aanmelding()
    catcher.fail(1, 451)  # the first attempt at the mail is refused for now, the next goes out
    unknown = str(uuid4())
    with httpx.Client(timeout=10) as client:
        created = client.post(f"{system.url('intake')}/aanvragen", json=body)
        assert created.status_code == 201
        aanvraag_id = created.json()["aanvraag_id"]
        secretariaat = token(system.data_dir, "secretariaat")
        hidden = client.get(f"{system.url('intake')}/aanvragen/{unknown}", headers=secretariaat)
        assert hidden.status_code == 404
        for service, route in PROTECTED.items():
            refused = client.get(system.url(service) + concrete(route, unknown))
            assert refused.status_code == 401, service

    # Intake runs no relay yet: what it committed waits, and its /metrics shows that.
    _, intake = scrape(metrics["intake"])
    lag = total(intake, "weerbaar_relay_lag_events", service="intake")
    assert lag is not None and lag >= 1
    assert total(intake, "weerbaar_relay_active") is None, "no relay in this process"
    appended = total(intake, "weerbaar_events_appended_total", event_type="AanvraagOntvangen")
    assert appended == 1

    # A relay in a process of its own serves its metrics on its own port.
    relay_port = free_port()
    system.spawn("intake", roles=("relay",), name="intake-relay", metrics_port=relay_port)
    relay_metrics = f"http://127.0.0.1:{relay_port}/metrics"

    def relay_caught_up() -> Samples | None:
        try:
            _, samples = scrape(relay_metrics)
        except httpx.HTTPError:
            return None
        active = total(samples, "weerbaar_relay_active", service="intake") == 1
        done = total(samples, "weerbaar_relay_lag_events", service="intake") == 0
        return samples if active and done else None

    relayed = wait_until(relay_caught_up, timeout=60, what="the relay process caught up")
    published = total(relayed, "weerbaar_relay_published_total", service="intake")
    assert published is not None and published >= 1
    assert total(relayed, "weerbaar_http_requests_total") is None, "that process has no API"
    _, intake = scrape(metrics["intake"])
    assert total(intake, "weerbaar_relay_lag_events", service="intake") == 0

    # The mail went out at the second attempt.
    def mail_counted() -> Samples | None:
        _, samples = scrape(metrics["notifications"])
        sent = total(samples, "weerbaar_mails_sent_total", soort="bevestiging_aanvraag")
        return samples if sent == 1 else None

    notifications = wait_until(mail_counted, timeout=60, what="the sent mail counted")
    assert total(notifications, "weerbaar_mails_failed_total", final="false") == 1
    # Every template's series exists from the start (the alert needs it), at 0 here.
    assert total(notifications, "weerbaar_mails_failed_total", final="true") == 0
    assert len(list_messages(catcher.directory)) == 1

    # Messages no consumer can read end as dead letters, counted where they were refused.
    asyncio.run(
        _publish_poison(
            system.nats_url or "",
            [
                f"weerbaar.intake.AanvraagIngediend.{uuid4()}",  # intake, scheduling, notifications
                f"weerbaar.assessment.RapportOpgesteld.{uuid4()}",  # approval (and intake)
                f"weerbaar.approval.RapportGoedgekeurd.{uuid4()}",  # assessment (and intake)
            ],
        )
    )

    def dead_letters_everywhere() -> dict[str, tuple[str, Samples]] | None:
        scraped = {service: scrape(url) for service, url in metrics.items()}
        for _, samples in scraped.values():
            if not total(samples, "weerbaar_dead_letters_total", reason="invalid_cloudevent"):
                return None
            if not total(samples, "weerbaar_dead_letters_waiting"):
                return None  # the gauge an alert uses (consumer info, every 5 s)
        return scraped

    scraped = wait_until(dead_letters_everywhere, timeout=60, what="a dead letter per service")

    personal = personal_values(body)
    for service, (text, samples) in scraped.items():
        routes = {lab["route"] for n, lab, _ in samples if n == "weerbaar_http_requests_total"}
        assert PROTECTED[service] in routes, f"{service}: {routes}"
        assert total(samples, "weerbaar_http_requests_total", method="GET", status="401"), service
        assert total(samples, "weerbaar_http_request_duration_seconds_count"), service
        assert total(samples, "weerbaar_events_appended_total"), service
        assert total(samples, "weerbaar_relay_lag_events", service=service) is not None, service
        consumers = {
            lab["consumer"] for n, lab, _ in samples if n == "weerbaar_consumer_pending_messages"
        }
        assert consumers and all(c.startswith(f"{service}-") for c in consumers), service
        assert total(samples, "weerbaar_consumer_redeliveries_total") is not None, service
        assert total(samples, "weerbaar_consumer_messages_total", outcome="deadlettered"), service
        # Labels are names from the code: no id, no path, nothing anyone submitted.
        for value in (aanvraag_id, unknown, *personal):
            assert value not in text, f"{service} /metrics shows {value!r}"
