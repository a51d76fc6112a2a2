"""Metrics (Prometheus) and traces (OpenTelemetry) of one service.

**Metrics.** Each service has its own registry (``metrics_for(service)``), served at ``GET
/metrics`` of its API, or by ``serve_metrics`` in a process that runs no API. Labels hold only
names from the code (service, route template, method, status, event type, consumer, outcome):
never a path, an id or a value someone submitted. The relay lag is read from PostgreSQL at scrape
time (``watch_event_store``), so any process of a service reports it, also when its relay is dead.

**Traces.** A span starts for every HTTP request (continuing an incoming ``traceparent``), every
consumed message (child of the CloudEvent's ``traceparent``) and every e-mail attempt. The
``traceparent`` of the span that records a domain event is stored with it; the relay puts it on
the CloudEvent, however long after the request it publishes. Spans are exported over OTLP/HTTP
when an endpoint is configured (``WEERBAAR_OTEL_EXPORTER_OTLP_ENDPOINT`` or the standard
``OTEL_EXPORTER_OTLP_ENDPOINT``); otherwise the sampler drops every span at its start, and only
the ids (a few random bits per span) are made, so log lines and the CloudEvents still connect.
``tracestate`` is deliberately not carried: it is free text from the caller, and would land in
public events.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

import httpx
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from psycopg.sql import SQL, Identifier

if TYPE_CHECKING:
    from eventsourcing.postgres import PostgresDatastore

    from shared.platform.settings import Settings


class ServiceApplication(Protocol):
    """What the event store's metrics read of a service's application
    (``shared.platform.eventstore.ServiceApplication``, which imports this module)."""

    @property
    def service(self) -> str:
        """The service's name (its schema)."""
        ...

    @property
    def datastore(self) -> PostgresDatastore:
        """The event store's connection pool."""
        ...

    def max_notification_id(self) -> int:
        """The id of the last event in the service's log."""
        ...


__all__ = [
    "ServiceMetrics",
    "configure_tracing",
    "context_from_traceparent",
    "current_trace_ids",
    "current_traceparent",
    "inject_traceparent",
    "metrics_for",
    "serve_metrics",
    "shutdown_tracing",
    "tracer",
    "watch_event_store",
]

log = logging.getLogger(__name__)

#: Methods counted by name; anything else a client sends is counted as OTHER (bounded labels).
HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
#: The route label of a request no route matched (its raw path is caller input).
UNMATCHED_ROUTE: Final = "unmatched"
#: The gauges read from PostgreSQL at scrape time (``watch_event_store``).
RELAY_LAG: Final = "weerbaar_relay_lag_events"
LAST_NOTIFICATION_ID: Final = "weerbaar_event_store_last_notification_id"
LAST_PUBLISHED_AT: Final = "weerbaar_relay_last_published_timestamp_seconds"
RELAY_STOPPED_AT: Final = "weerbaar_relay_stopped_at_event"
STORE_SERIES: Final = (RELAY_LAG, LAST_NOTIFICATION_ID, LAST_PUBLISHED_AT, RELAY_STOPPED_AT)


# --- metrics -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceMetrics:
    """The series one service exposes, in the service's own registry."""

    service: str
    registry: CollectorRegistry
    http_requests: Counter
    http_duration: Histogram
    events_appended: Counter
    relay_published: Counter
    relay_active: Gauge
    consumer_messages: Counter
    consumer_redeliveries: Counter
    consumer_pending: Gauge
    consumer_backlog_known: Gauge
    consumer_ack_pending: Gauge
    consumer_redelivered: Gauge
    dead_letters: Counter
    dead_letters_waiting: Gauge
    mails_sent: Counter
    mails_failed: Counter


def _new_metrics(service: str) -> ServiceMetrics:
    registry = CollectorRegistry()
    return ServiceMetrics(
        service=service,
        registry=registry,
        http_requests=Counter(
            "weerbaar_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["service", "route", "method", "status"],
            registry=registry,
        ),
        http_duration=Histogram(
            "weerbaar_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ["service", "route", "method"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        ),
        events_appended=Counter(
            "weerbaar_events_appended",
            "Domain events appended to the service's event store, by event type.",
            ["service", "event_type"],
            registry=registry,
        ),
        relay_published=Counter(
            "weerbaar_relay_published",
            "CloudEvents the relay stored on the stream (not counting duplicates it dropped).",
            ["service"],
            registry=registry,
        ),
        relay_active=Gauge(
            "weerbaar_relay_active",
            "1 while this process's relay holds the service's lock and publishes, else 0.",
            ["service"],
            registry=registry,
        ),
        consumer_messages=Counter(
            "weerbaar_consumer_messages",
            "Messages a durable consumer processed, by outcome "
            "(handled, duplicate, retry, failed, deadlettered).",
            ["service", "consumer", "outcome"],
            registry=registry,
        ),
        consumer_redeliveries=Counter(
            "weerbaar_consumer_redeliveries",
            "Messages that arrived again (JetStream num_delivered > 1).",
            ["service", "consumer"],
            registry=registry,
        ),
        consumer_pending=Gauge(
            "weerbaar_consumer_pending_messages",
            "Messages on the stream the consumer has not yet been given (consumer info).",
            ["service", "consumer"],
            registry=registry,
        ),
        consumer_backlog_known=Gauge(
            "weerbaar_consumer_backlog_known",
            "1 while the consumer's numbers (pending, ack pending, redelivered, dead letters"
            " waiting) are fresh from the broker; 0 when it cannot be asked (NATS down, stream"
            " or consumer missing): those series are then absent, not a stale value.",
            ["service", "consumer"],
            registry=registry,
        ),
        consumer_ack_pending=Gauge(
            "weerbaar_consumer_ack_pending_messages",
            "Messages given to the consumer and not yet acknowledged (consumer info).",
            ["service", "consumer"],
            registry=registry,
        ),
        consumer_redelivered=Gauge(
            "weerbaar_consumer_redelivered_messages",
            "Messages the server is redelivering to the consumer (consumer info).",
            ["service", "consumer"],
            registry=registry,
        ),
        dead_letters=Counter(
            "weerbaar_dead_letters",
            "Messages this process sent to the dead-letter stream, by consumer and reason kind.",
            ["service", "consumer", "reason"],
            registry=registry,
        ),
        dead_letters_waiting=Gauge(
            "weerbaar_dead_letters_waiting",
            "Dead letters of the consumer on the dead-letter stream (until removed or re-driven).",
            ["service", "consumer"],
            registry=registry,
        ),
        mails_sent=Counter(
            "weerbaar_mails_sent",
            "E-mails the SMTP server accepted, by template.",
            ["service", "soort"],
            registry=registry,
        ),
        mails_failed=Counter(
            "weerbaar_mails_failed",
            "E-mail attempts that failed, by template; final=true when no attempt follows.",
            ["service", "soort", "final"],
            registry=registry,
        ),
    )


_metrics: dict[str, ServiceMetrics] = {}
_metrics_lock = threading.Lock()


def metrics_for(service: str) -> ServiceMetrics:
    """The metrics of ``service`` in this process (made on first use)."""
    with _metrics_lock:
        found = _metrics.get(service)
        if found is None:
            found = _metrics[service] = _new_metrics(service)
        return found


def reason_kind(reason: str) -> str:
    """A dead letter's reason without detail: ``handler_failed:KeyError`` → ``handler_failed``."""
    kind = reason.split(":", 1)[0]
    return "".join(c if c.isalnum() or c == "_" else "_" for c in kind)[:40] or "unknown"


class _EventStoreCollector(Collector):
    """Relay lag, read from PostgreSQL at scrape time: last notification id − last published."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.app: weakref.ReferenceType[ServiceApplication] | None = None

    def collect(self) -> Iterable[Metric]:
        app = self.app() if self.app is not None else None
        if app is None:
            return []
        try:
            last_id, published_id, published_at, stopped_at = _relay_progress(app)
        except Exception as exc:  # the database is down: the scrape still answers
            error = type(exc).__name__
            log.warning("relay lag unavailable", extra={"service": self.service, "error": error})
            return []
        families = []
        lag = GaugeMetricFamily(
            RELAY_LAG,
            "Last notification id in the service's event store minus the last one the relay "
            "has published (and recorded after the stream acknowledged it).",
            labels=["service"],
        )
        lag.add_metric([self.service], max(0, last_id - published_id))
        families.append(lag)
        last = GaugeMetricFamily(
            LAST_NOTIFICATION_ID,
            "The id of the last event in the service's notification log.",
            labels=["service"],
        )
        last.add_metric([self.service], last_id)
        families.append(last)
        stopped = GaugeMetricFamily(
            RELAY_STOPPED_AT,
            "The notification id of the event the relay stopped at because it cannot publish it"
            " (0 while it publishes): see `weerbaar relay status`.",
            labels=["service"],
        )
        stopped.add_metric([self.service], stopped_at)
        families.append(stopped)
        if published_at is not None:
            when = GaugeMetricFamily(
                LAST_PUBLISHED_AT,
                "When the relay last recorded progress (Unix time).",
                labels=["service"],
            )
            when.add_metric([self.service], published_at)
            families.append(when)
        return families

    def describe(self) -> Iterable[Metric]:
        # Described as empty so registering does not run a query.
        return []


def _relay_progress(app: ServiceApplication) -> tuple[int, int, float | None, int]:
    """Last notification id, last published, when, and where the relay stopped (0: it did not)."""
    last_id = app.max_notification_id()
    state = relay_state(app)
    if state is None:
        return last_id, 0, None, 0
    return last_id, state.published_id, state.published_at, state.stopped_at or 0


@dataclass(frozen=True)
class RelayState:
    """What a service's relay recorded of its progress (``<service>.relay_position``)."""

    published_id: int
    published_at: float
    stopped_at: int | None
    stopped_type: str | None
    stopped_reason: str | None
    stopped_since: float | None


def relay_state(app: ServiceApplication, wait_s: float | None = None) -> RelayState | None:
    """The relay's recorded progress and stop, or None when it never recorded any.

    ``wait_s``: wait at most so long for a connection (readiness must not wait out the pool's
    connect timeout while the database is down).
    """
    table = Identifier(app.service, "relay_position")
    if wait_s is None:
        connection = app.datastore.get_connection()
    else:
        app.datastore.pool.open(wait=False)
        connection = app.datastore.pool.connection(timeout=wait_s)
    with connection as conn:
        exists = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f"{app.service}.relay_position",)
        ).fetchone()
        if not exists or not next(iter(exists.values())):
            return None
        row = conn.execute(
            SQL(
                "SELECT notification_id, extract(epoch FROM published_at) AS at, "
                "to_jsonb(p) AS rest FROM {} p WHERE service = %s"
            ).format(table),
            (app.service,),
        ).fetchone()
    if row is None:
        return None
    # Read as JSON: a relay of an older release has not added the columns of a stop yet.
    rest: dict[str, Any] = row["rest"]
    since = rest.get("gestopt_sinds")
    return RelayState(
        published_id=int(row["notification_id"]),
        published_at=float(row["at"]),
        stopped_at=rest.get("gestopt_bij"),
        stopped_type=rest.get("gestopt_type"),
        stopped_reason=rest.get("gestopt_reden"),
        stopped_since=datetime.fromisoformat(since).timestamp() if since else None,
    )


_store_collectors: dict[str, _EventStoreCollector] = {}


def watch_event_store(app: ServiceApplication) -> None:
    """Report the relay lag of ``app``'s service (the latest application of a service wins)."""
    with _metrics_lock:
        collector = _store_collectors.get(app.service)
        new = collector is None
        if collector is None:
            collector = _store_collectors[app.service] = _EventStoreCollector(app.service)
    collector.app = weakref.ref(app)
    if new:
        metrics_for(app.service).registry.register(collector)


def serve_metrics(service: str, host: str, port: int) -> None:
    """Serve ``/metrics`` of ``service`` on its own port (a process without the API role)."""
    start_http_server(port, addr=host, registry=metrics_for(service).registry)
    log.info("metrics served", extra={"port": port})


# --- traces --------------------------------------------------------------------------------------

_propagator: Final = TraceContextTextMapPropagator()
_providers: dict[str, TracerProvider] = {}
#: Without an exporter: spans are dropped at their start, only their ids are made.
_OFF_PROVIDER: Final = TracerProvider(sampler=ALWAYS_OFF)


def _otlp_endpoint(settings: Settings | None) -> str | None:
    configured = settings.otel_exporter_otlp_endpoint if settings is not None else None
    return (
        configured
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or (os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    )


def configure_tracing(service: str, settings: Settings | None = None) -> bool:
    """Export ``service``'s spans over OTLP/HTTP when an endpoint is configured; True if so."""
    endpoint = _otlp_endpoint(settings)
    if not endpoint:
        return False
    # Imported only when used: the exporter pulls in protobuf and an HTTP client.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter,
    )

    resource = Resource.create(
        {"service.name": f"weerbaar-{service}", "service.namespace": "weerbaar"}
    )
    provider = TracerProvider(resource=resource)
    if settings is not None and settings.otel_exporter_otlp_endpoint:
        # Like the standard variable: a base URL, the signal's path appended.
        exporter = OTLPSpanExporter(
            endpoint=settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
        )
    else:
        exporter = OTLPSpanExporter()  # reads the standard OTEL_EXPORTER_OTLP_* variables
    provider.add_span_processor(BatchSpanProcessor(exporter))
    _providers[service] = provider
    log.info("tracing exported over OTLP", extra={"service": service})
    return True


def shutdown_tracing() -> None:
    """Flush and stop the exporters (at process exit)."""
    for provider in _providers.values():
        provider.shutdown()
    _providers.clear()


def tracer(service: str) -> trace.Tracer:
    """The tracer of ``service``: exporting when configured, id-only otherwise."""
    return _providers.get(service, _OFF_PROVIDER).get_tracer(f"weerbaar.{service}")


def context_from_traceparent(traceparent: str | None) -> otel_context.Context | None:
    """The parent context a ``traceparent`` names (None without a valid one: a new trace)."""
    if not traceparent:
        return None
    extracted = _propagator.extract({"traceparent": traceparent})
    span = trace.get_current_span(extracted)
    return extracted if span.get_span_context().is_valid else None


def context_from_headers(headers: Iterable[tuple[str, str]]) -> otel_context.Context | None:
    """The parent context of an incoming request's ``traceparent`` header, if valid."""
    for name, value in headers:
        if name.lower() == "traceparent":
            return context_from_traceparent(value.strip())
    return None


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, or None outside one."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return (
        f"00-{span_context.trace_id:032x}-{span_context.span_id:016x}-"
        f"{int(span_context.trace_flags):02x}"
    )


def inject_traceparent(request: httpx.Request) -> None:
    """An httpx request hook: a call to another service continues the current trace."""
    traceparent = current_traceparent()
    if traceparent is not None:
        request.headers["traceparent"] = traceparent


def current_trace_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span in hex, or None outside one."""
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return f"{span_context.trace_id:032x}", f"{span_context.span_id:016x}"
