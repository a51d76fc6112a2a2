"""Metrics and trace context as an operator and a scraper see them (no servers needed).

Each test uses a service name of its own: the registries live for the whole process.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, cast
from uuid import UUID, uuid4

import pytest
import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from services.notifications.adapters.smtp import Mailer, SmtpConfig, build_email
from services.notifications.adapters.webhook_store import WEBHOOK_SERIES
from services.notifications.application import Notifications, Sender, expose_mail_series
from services.notifications.domain.mail import OutgoingMail
from services.notifications.domain.templates import TEMPLATES
from services.notifications.domain.webhooks import RetrySchedule
from shared.platform.eventstore import PydanticMapper, _NoTranscoder
from shared.platform.http import create_app
from shared.platform.logging import JsonFormatter
from shared.platform.model import DomainEvent, FixedClock
from shared.platform.settings import Settings
from shared.platform.stream_tail import STREAM_AHEAD
from shared.platform.telemetry import (
    STORE_SERIES,
    configure_tracing,
    context_from_traceparent,
    current_traceparent,
    metrics_for,
    reason_kind,
    shutdown_tracing,
    tracer,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "alerts.yml"


def _service() -> str:
    return f"svc{uuid4().hex[:8]}"


def _samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


@pytest.fixture
def service() -> str:
    return _service()


@pytest.fixture
def client(service: str) -> Iterator[TestClient]:
    app: FastAPI = create_app(service=service, title="t", version="1")

    @app.get("/aanvragen/{aanvraag_id}")
    def one(aanvraag_id: UUID) -> dict[str, str]:
        return {"traceparent": current_traceparent() or ""}

    with TestClient(app) as test_client:
        yield test_client


def test_requests_are_counted_by_route_template_never_by_raw_path(
    client: TestClient, service: str
) -> None:
    dossier = str(uuid4())
    assert client.get(f"/aanvragen/{dossier}").status_code == 200
    assert client.get("/aanvragen/not-a-uuid").status_code == 422
    assert client.get(f"/bestaat/niet/{dossier}").status_code == 404
    assert client.request("BREW", "/aanvragen/x").status_code in (404, 405)

    response = client.get("/metrics")  # no token needed
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert dossier not in response.text and "not-a-uuid" not in response.text
    assert "/bestaat" not in response.text and "BREW" not in response.text

    requests = {
        (labels["route"], labels["method"], labels["status"]): value
        for name, labels, value in _samples(response.text)
        if name == "weerbaar_http_requests_total" and labels["service"] == service
    }
    assert requests[("/aanvragen/{aanvraag_id}", "GET", "200")] == 1
    assert requests[("/aanvragen/{aanvraag_id}", "GET", "422")] == 1
    assert requests[("unmatched", "GET", "404")] == 1
    assert sum(v for (_, method, _), v in requests.items() if method == "OTHER") == 1
    durations = [
        value
        for name, labels, value in _samples(response.text)
        if name == "weerbaar_http_request_duration_seconds_count"
        and labels["route"] == "/aanvragen/{aanvraag_id}"
        and labels["method"] == "GET"
    ]
    assert durations == [2]


def test_a_service_shows_its_own_metrics_only(client: TestClient, service: str) -> None:
    other = _service()
    metrics_for(other).mails_sent.labels(other, "bevestiging_aanvraag").inc()
    text = client.get("/metrics").text
    assert other not in text


def test_an_incoming_traceparent_is_continued_in_a_span_of_our_own(client: TestClient) -> None:
    response = client.get(f"/aanvragen/{uuid4()}", headers={"traceparent": INCOMING})
    assert response.headers["x-trace-id"] == TRACE_ID
    inside = response.json()["traceparent"]
    version, trace_id, span_id, _ = inside.split("-")
    assert (version, trace_id) == ("00", TRACE_ID)
    assert span_id != "00f067aa0ba902b7", "the request has a span of its own"


def test_without_a_traceparent_each_request_starts_a_trace(client: TestClient) -> None:
    first = client.get(f"/aanvragen/{uuid4()}").json()["traceparent"]
    second = client.get(f"/aanvragen/{uuid4()}").json()["traceparent"]
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", first)
    assert int(first[-2:], 16) & 1 == 0, "not sampled: there is no exporter"
    assert first.split("-")[1] != second.split("-")[1]


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"ff-{TRACE_ID}-00f067aa0ba902b7-01",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
    ],
)
def test_an_invalid_traceparent_starts_a_new_trace(value: str | None) -> None:
    assert context_from_traceparent(value) is None


def test_a_log_line_outside_a_request_carries_the_spans_trace_id() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    logger = logging.getLogger("test.telemetry")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with tracer("test").start_as_current_span(
            "consume", context=context_from_traceparent(INCOMING)
        ):
            logger.warning("in a consumer")
        logger.warning("outside")
    finally:
        logger.removeHandler(handler)
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["trace_id"] == TRACE_ID and len(inside["span_id"]) == 16
    assert outside["trace_id"] is None and "span_id" not in outside


class Gebeurd(DomainEvent):
    wat: str


def test_the_traceparent_is_stored_with_an_event_and_left_out_without_one() -> None:
    mapper = PydanticMapper(transcoder=_NoTranscoder())
    event = Gebeurd(
        originator_id=uuid4(),
        originator_version=1,
        timestamp=datetime(2026, 5, 11, tzinfo=UTC),
        wat="iets",
    )
    plain = mapper.to_stored_event(event)
    assert b"traceparent" not in plain.state, "events without a trace are stored as before"
    traced = mapper.to_stored_event(event.model_copy(update={"traceparent": INCOMING}))
    again = mapper.to_domain_event(traced)
    assert again.traceparent == INCOMING
    assert mapper.to_domain_event(plain).traceparent is None


def test_the_mail_carries_the_traceparent_header() -> None:
    mail = OutgoingMail(
        to="iemand@example.org",
        subject="Bevestiging",
        text="Tekst",
        message_id="<weerbaar.abc@weerbaarbestuur.local>",
        traceparent=INCOMING,
    )
    email = build_email(mail, "noreply@weerbaarbestuur.local", datetime.now(UTC))
    assert email["Traceparent"] == INCOMING
    with pytest.raises(ValueError, match="traceparent"):
        OutgoingMail.model_validate({**mail.model_dump(), "traceparent": "x\r\nBcc: a@b.c"})


def test_a_dead_letters_reason_label_keeps_only_its_kind() -> None:
    assert reason_kind("handler_failed:KeyError") == "handler_failed"
    assert reason_kind("invalid_event:InvalidEvent") == "invalid_event"
    assert reason_kind("") == "unknown"


def _exposed_series(service: str) -> set[str]:
    # WEBHOOK_SERIES: notifications only; STREAM_AHEAD: judged against NATS at scrape time.
    names = set(STORE_SERIES) | set(WEBHOOK_SERIES) | {STREAM_AHEAD}
    for family in metrics_for(service).registry.collect():
        suffixes = {
            "counter": ("_total",),
            "histogram": ("_bucket", "_sum", "_count"),
            "gauge": ("",),
        }[family.type]
        names.update(family.name + suffix for suffix in suffixes)
    return names


def test_every_alert_rule_uses_series_a_service_exposes() -> None:
    document = yaml.safe_load(ALERTS.read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert rules, "deploy/alerts.yml has rules"
    exposed = _exposed_series(_service())
    for rule in rules:
        assert {"alert", "expr", "labels", "annotations"} <= rule.keys(), rule
        assert rule["labels"]["severity"] in {"page", "ticket"}
        assert "runbook" in rule["annotations"], rule["alert"]
        used = set(re.findall(r"\bweerbaar_[a-z_]+\b", rule["expr"]))
        assert used, rule["alert"]
        assert used <= exposed, f"{rule['alert']} uses unknown series {used - exposed}"
    alerts = {rule["alert"] for rule in rules}
    assert {
        "WeerbaarDeadLetter",
        "WeerbaarRelayLagGrowing",
        "WeerbaarRelayStoppedAtEvent",
        "WeerbaarStreamAheadOfStore",
    } <= alerts


def _mail_rule() -> dict[str, object]:
    document = yaml.safe_load(ALERTS.read_text())
    [rule] = [
        rule
        for group in document["groups"]
        for rule in group["rules"]
        if rule["alert"] == "WeerbaarMailFailing"
    ]
    return dict(rule)


def _selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """Each series the expression reads, with its label matchers (``name{a="b"}``)."""
    found = []
    for name, matchers in re.findall(r"\b(weerbaar_[a-z_]+)(?:\{([^}]*)\})?", expr):
        labels = dict(re.findall(r'([a-z_]+)="([^"]*)"', matchers))
        found.append((name, labels))
    return found


def _exposition(service: str) -> list[tuple[str, dict[str, str], float]]:
    from prometheus_client import generate_latest

    return _samples(generate_latest(metrics_for(service).registry).decode())


def test_the_mail_alerts_series_exist_at_zero_for_every_template_from_the_start() -> None:
    """``increase()`` does not see a counter's first step from nothing to 1, and ``== 0`` matches
    no missing series: a series the rule reads must be there, at 0, before the first mail."""
    expr = str(_mail_rule()["expr"])
    selectors = _selectors(expr)
    assert {name for name, _ in selectors} == {
        "weerbaar_mails_failed_total",
        "weerbaar_mails_sent_total",
    }
    fresh = _service()
    assert not [s for s in _exposition(fresh) if s[0].startswith("weerbaar_mails_")], (
        "a registry on its own exposes no mail series: the check below would pass for nothing"
    )
    service = _service()
    sender = Sender(
        cast(Notifications, SimpleNamespace(service=service)),
        Mailer(SmtpConfig(host="127.0.0.1", from_address="noreply@weerbaarbestuur.local")),
        recipients=cast(Any, None),
        appointments=cast(Any, None),
        clock=FixedClock(datetime(2026, 12, 6, tzinfo=UTC)),
        message_id_domain="weerbaarbestuur.local",
        schema=RetrySchedule((5.0,)),
    )
    assert sender.app.service == service
    samples = _exposition(service)
    for name, matchers in selectors:
        for soort in TEMPLATES:
            wanted = {"service": service, "soort": soort, **matchers}
            values = [
                value
                for sample, labels, value in samples
                if sample == name and wanted.items() <= labels.items()
            ]
            assert values, f"{name}{matchers} for {soort} is not exposed at start"
            assert set(values) == {0.0}
    expose_mail_series(service)  # a second bootstrap in one process changes nothing
    assert _exposition(service) == samples


class _Collector(BaseHTTPRequestHandler):
    """A stand-in OTLP/HTTP collector: keeps every export request it receives."""

    received: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.received.append(
            (self.path, self.headers.get("Content-Type", ""), self.rfile.read(length))
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def test_spans_are_exported_over_otlp_when_an_endpoint_is_configured(tmp_path: Path) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    service = _service()
    settings = Settings(
        database_url="postgresql://x@127.0.0.1/x",
        nats_url="nats://127.0.0.1:4222",
        data_dir=tmp_path,
        otel_exporter_otlp_endpoint=f"http://127.0.0.1:{server.server_port}",
    )
    try:
        assert configure_tracing(service, settings)
        with tracer(service).start_as_current_span(
            "request", context=context_from_traceparent(INCOMING)
        ):
            pass
        shutdown_tracing()  # flushes the batch
    finally:
        server.shutdown()
        thread.join(5)
    [(path, content_type, body)] = _Collector.received
    assert path == "/v1/traces" and content_type == "application/x-protobuf"
    request = ExportTraceServiceRequest.FromString(body)
    [resource_spans] = request.resource_spans
    names = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert names["service.name"] == f"weerbaar-{service}"
    [span] = resource_spans.scope_spans[0].spans
    assert span.name == "request" and span.trace_id.hex() == TRACE_ID


def test_without_an_endpoint_nothing_is_exported(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    service = _service()
    assert not configure_tracing(service, None)
    with tracer(service).start_as_current_span("request") as span:
        assert not span.is_recording(), "no exporter: the span is dropped at its start"
        assert span.get_span_context().is_valid, "its ids still connect logs and events"
