"""The FastAPI application every service starts from.

`create_app` installs: problem+json errors (RFC 9457) that never echo submitted values or stack
traces, a request body limit (413), a span and trace id per request (`X-Trace-Id`, also in every
log line; an incoming `traceparent` is continued), an access log and request metrics by route
template, `/health/live` + `/health/ready`, `/metrics` (Prometheus, `shared.platform.telemetry`),
and Swagger UI at `/docs` from local files (`shared.platform.apidocs`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from http import HTTPStatus
from typing import Any, Final, cast

import psycopg
from eventsourcing.persistence import InterfaceError as ESInterfaceError
from eventsourcing.persistence import OperationalError as ESOperationalError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict
from pydantic_core import PydanticKnownError
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.platform.apidocs import install_api_docs
from shared.platform.errors import (
    Conflict,
    FieldError,
    Geweigerd,
    NietBeschikbaar,
    NietGevonden,
    NietIngelogd,
    Ongeldig,
    TeGroot,
    WeerbaarError,
    field_path,
)
from shared.platform.eventstore import CommitInDoubt, RequestWrites, request_writes
from shared.platform.logging import trace_id_var
from shared.platform.telemetry import (
    HTTP_METHODS,
    UNMATCHED_ROUTE,
    context_from_headers,
    current_trace_ids,
    metrics_for,
    tracer,
)

__all__ = [
    "PROBLEM_JSON",
    "READINESS_TIMEOUT_SECONDS",
    "Problem",
    "ReadinessCheck",
    "add_readiness_check",
    "add_readiness_detail",
    "create_app",
    "problem_response",
]

PROBLEM_JSON: Final = "application/problem+json"
#: The most one readiness check (or detail) may take: a dependency that does not answer within
#: it counts as down, so `/health/ready` says 503 within about a second instead of hanging with it.
#: Checks bound their own work below it (see ``shared.platform.wiring.add_standard_readiness``).
READINESS_TIMEOUT_SECONDS: Final = 1.0

ReadinessCheck = Callable[[], Awaitable[None]]

logger = logging.getLogger("weerbaar.http")
access_logger = logging.getLogger("weerbaar.access")

#: The problem code the request was answered with, for its access log line (a code is a fixed
#: reason the code chose, never input). A list, not a value: an answer made in a copy of the
#: context (a sync route's thread) must still reach the line.
_answered_code: ContextVar[list[str] | None] = ContextVar("weerbaar_answered_code", default=None)

#: Routes polled by machines: their access log lines are DEBUG.
_QUIET_ROUTES: Final = ("/health/", "/metrics")
_TRACEPARENT: Final = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}")
_INTERNAL_ERROR_TITLE: Final = "Interne fout / Internal server error"
_INTERNAL_ERROR_DETAIL: Final = (
    "Er ging iets mis aan onze kant; vermeld de trace_id als u contact opneemt."
)
# Titles for statuses that Starlette/FastAPI raise themselves (404 for an unknown path, ...).
_TITLES: Final[Mapping[int, str]] = {
    cls.status: cls.title
    for cls in (Conflict, Geweigerd, NietBeschikbaar, NietGevonden, NietIngelogd, Ongeldig, TeGroot)
}


class ProblemFieldError(BaseModel):
    """One invalid field of a 422 problem."""

    field: str
    rule: str
    message: str | None = None


class Problem(BaseModel):
    """An RFC 9457 problem document as this project writes it."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    trace_id: str | None = None
    code: str | None = None
    errors: list[ProblemFieldError] | None = None


def problem_response(
    status: int,
    title: str,
    *,
    type_uri: str = "about:blank",
    detail: str | None = None,
    code: str | None = None,
    errors: Sequence[FieldError] | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """Build an `application/problem+json` response carrying the current trace id."""
    trace_id = trace_id_var.get()
    body: dict[str, Any] = {"type": type_uri, "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    if trace_id is not None:
        # The path is not echoed: it is caller input. The trace id names this occurrence.
        body["instance"] = f"urn:weerbaar:trace:{trace_id}"
        body["trace_id"] = trace_id
    if code is not None:
        body["code"] = code
        if (answered := _answered_code.get()) is not None:
            answered.append(code)
    if errors is not None:
        body["errors"] = list(errors)
    if extra:
        body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


#: Every 404 reads the same: a dossier the caller may not know about must look exactly like one
#: that does not exist (no specific text, no reason code).
NOT_FOUND_DETAIL = "Niet gevonden."


def _error_response(exc: WeerbaarError, extra: Mapping[str, Any] | None = None) -> JSONResponse:
    hidden = isinstance(exc, NietGevonden)
    return problem_response(
        exc.status,
        exc.title,
        type_uri=exc.type_uri,
        detail=NOT_FOUND_DETAIL if hidden else exc.detail,
        code=None if hidden else exc.code,
        errors=exc.errors if isinstance(exc, Ongeldig) else None,
        headers=exc.headers,
        extra=extra,
    )


#: FastAPI's text for a body it could not parse (other than a plain JSON syntax error).
_FASTAPI_BODY_PARSE_ERROR = "There was an error parsing the body"


def _internal_error_response() -> JSONResponse:
    return problem_response(500, _INTERNAL_ERROR_TITLE, detail=_INTERNAL_ERROR_DETAIL)


# ---------------------------------------------------------------------------------------------
# 422: field and rule, never the input


# Context values that come from the schema (limits, allowed values), not from the input.
_SAFE_CONTEXT_KEYS: Final = frozenset(
    {
        "actual_length",
        "class_name",
        "decimal_places",
        "discriminator",
        "expected",
        "expected_schemes",
        "expected_tags",
        "field_type",
        "ge",
        "gt",
        "le",
        "lt",
        "max_digits",
        "max_length",
        "min_length",
        "multiple_of",
        "pattern",
        "whole_digits",
    }
)
_UNSAFE: Final = "\x00unsafe\x00"
_FIXED_MESSAGES: Final[Mapping[str, str]] = {"json_invalid": "Invalid JSON"}
_FALLBACK_MESSAGE: Final = "Invalid value"


def _safe_message(rule: str, context: Mapping[str, Any] | None) -> str:
    """Rebuild pydantic's message from the rule and the schema-derived context only.

    Messages such as "Input should be a valid UUID, invalid character: found `j` at 0" or a
    validator's "Value error, ..." can quote the input; those parts are dropped.
    """
    if rule in _FIXED_MESSAGES:
        return _FIXED_MESSAGES[rule]
    safe_context = {
        key: value if key in _SAFE_CONTEXT_KEYS else _UNSAFE
        for key, value in (context or {}).items()
    }
    try:
        message = PydanticKnownError(cast(Any, rule), safe_context or None).message()
    except (KeyError, TypeError, ValueError):
        # A custom error type: its message is written by whoever raised it; trust only the rule.
        return _FALLBACK_MESSAGE
    message = re.sub(rf"[,:;]?\s*{re.escape(_UNSAFE)}$", "", message)
    return _FALLBACK_MESSAGE if _UNSAFE in message else message


def _field_errors(errors: Sequence[Any]) -> list[FieldError]:
    result: list[FieldError] = []
    for error in errors:
        rule = str(error.get("type", "invalid"))
        context = error.get("ctx")
        result.append(
            {
                "field": field_path(error.get("loc", ())),
                "rule": rule,
                "message": _safe_message(rule, context if isinstance(context, Mapping) else None),
            }
        )
    return result


# ---------------------------------------------------------------------------------------------
# exception handlers


async def _handle_weerbaar_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, WeerbaarError):  # pragma: no cover - registered for this type only
        raise exc
    return _error_response(exc)


async def _handle_http_exception(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):  # pragma: no cover
        raise exc
    status = exc.status_code
    if status == 400 and exc.detail == _FASTAPI_BODY_PARSE_ERROR:
        # A body FastAPI could not parse (absurd nesting, a huge number, invalid UTF-8) is bad
        # input like any other: 422 naming the body, never the content.
        return _error_response(
            Ongeldig([{"field": "body", "rule": "json_invalid"}], "De body is geen geldige JSON.")
        )
    phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail != phrase else None
    return problem_response(
        status, _TITLES.get(status, phrase), detail=detail, headers=exc.headers or None
    )


async def _handle_validation_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):  # pragma: no cover
        raise exc
    return _error_response(Ongeldig(_field_errors(exc.errors())))


#: The database cannot be reached (down, restarting, no connection free in time): the request
#: may be retried, so 503 with a problem document, never a 500 with the driver's text.
DATABASE_UNAVAILABLE: Final[tuple[type[Exception], ...]] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    ESOperationalError,
    ESInterfaceError,
)


#: The problem code of a 503 after which the command may or may not have been recorded.
COMMIT_IN_DOUBT_CODE: Final = "uitkomst_onbekend"


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from (the event store wraps psycopg's errors)."""
    chain = [exc]
    while (cause := chain[-1].__cause__) is not None and len(chain) < 10:
        chain.append(cause)
    return chain


#: A lock not granted within ``postgres_lock_timeout_s``: another writer holds it (slow, or a
#: stalled process mid-transaction). The database is up; the request may be retried.
LOCK_NOT_AVAILABLE: Final = "55P03"
#: The problem code of a 503 after a lock timeout.
DATABASE_BUSY_CODE: Final = "database_bezet"
_IN_DOUBT_DETAIL: Final = (
    "De database viel weg terwijl de opdracht werd vastgelegd; of dat gelukt is, is nog"
    " onbekend. Herhaal het verzoek met dezelfde Idempotency-Key (dan volgt het eerste"
    " antwoord), of lees de toestand na voordat u het opnieuw probeert."
)
_BUSY_DETAIL: Final = (
    "De gegevens worden op dit moment door een ander proces bijgewerkt; probeer het zo opnieuw."
)


def _unavailable(message: str, detail: str, code: str) -> Callable[..., Awaitable[Response]]:
    """A handler answering 503 problem+json with ``code`` (retry after 2 s); the log line names
    only the exception's type and the database's SQLSTATE (never its message, which may quote
    data)."""

    async def handle(request: Request, exc: Exception) -> Response:
        causes = _causes(exc)
        sqlstate = next(
            (state for c in causes if isinstance(state := getattr(c, "sqlstate", None), str)),
            None,
        )
        logger.warning(
            message,
            extra={
                "error_type": type(exc).__name__,
                # e.g. PoolTimeout (every connection busy, or none could be made) or
                # LockNotAvailable; never the message, which may quote data
                "cause_type": type(causes[-1]).__name__,
                "sqlstate": sqlstate,
            },
        )
        writes = request_writes.get()
        if writes is not None and writes.recorded:
            # The request's events are committed and then the database failed (reading the
            # answer back, a second step): to the client the outcome is open, as after a commit
            # in doubt. Retrying with the same key, or reading first, is what is safe.
            said, problem_code = _IN_DOUBT_DETAIL, COMMIT_IN_DOUBT_CODE
        elif sqlstate == LOCK_NOT_AVAILABLE:
            said, problem_code = _BUSY_DETAIL, DATABASE_BUSY_CODE
        else:
            said, problem_code = detail, code
        return _error_response(
            NietBeschikbaar(said, code=problem_code, headers={"Retry-After": "2"})
        )

    return handle


_handle_database_unavailable = _unavailable(
    "database unavailable",
    "De database is tijdelijk niet bereikbaar; probeer het zo opnieuw.",
    "database_niet_bereikbaar",
)
_handle_commit_in_doubt = _unavailable("commit in doubt", _IN_DOUBT_DETAIL, COMMIT_IN_DOUBT_CODE)


async def _handle_unexpected(request: Request, exc: Exception) -> Response:
    # Reached only for errors raised outside `_RequestContext` (e.g. in an outer middleware).
    logger.error("unhandled error", exc_info=exc)
    return _internal_error_response()


# ---------------------------------------------------------------------------------------------
# middleware


def _trace_id_from(headers: Headers) -> str:
    match = _TRACEPARENT.fullmatch(headers.get("traceparent", "").strip().lower())
    if match and match.group(1) != "ff" and match.group(2) != "0" * 32:
        return match.group(2)
    return secrets.token_hex(16)


def _route_template(scope: Scope) -> str | None:
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else None


class _RequestContext:
    """Span and trace id, metrics and access log by route template, and the last line of
    defence against a 500."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service
        self.metrics = metrics_for(service)
        self.tracer = tracer(service)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        method = scope["method"] if scope["method"] in HTTP_METHODS else "OTHER"
        with self.tracer.start_as_current_span(
            method,
            context=context_from_headers(headers.items()),
            kind=SpanKind.SERVER,
            record_exception=False,  # exception texts may quote input; the log has the type
            set_status_on_exception=False,
        ) as span:
            ids = current_trace_ids()
            trace_id = ids[0] if ids is not None else _trace_id_from(headers)
            status = await self._handle(scope, receive, send, trace_id)
            route = _route_template(scope) or UNMATCHED_ROUTE
            span.update_name(f"{method} {route}")
            span.set_attributes(
                {
                    "http.request.method": method,
                    "http.route": route,
                    "http.response.status_code": status,
                }
            )
            if status >= 500:
                span.set_status(StatusCode.ERROR)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, trace_id: str) -> int:
        token = trace_id_var.set(trace_id)
        writes = request_writes.set(RequestWrites())
        answered: list[str] = []
        answered_token = _answered_code.set(answered)
        started_at = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_trace_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers.append("X-Trace-Id", trace_id)
                _secure_headers(headers, scope)
            await send(message)

        try:
            await self.app(scope, receive, send_with_trace_id)
        except Exception:
            logger.exception("unhandled error", extra={"route": _route_template(scope)})
            if response_started:
                raise
            await _internal_error_response()(scope, receive, send_with_trace_id)
        finally:
            route = _route_template(scope)
            elapsed = time.perf_counter() - started_at
            line: dict[str, Any] = {
                "method": scope["method"],
                "route": route,
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            }
            if answered:
                line["code"] = answered[-1]
            access_logger.log(
                logging.DEBUG if route and route.startswith(_QUIET_ROUTES) else logging.INFO,
                "request",
                extra=line,
            )
            _answered_code.reset(answered_token)
            trace_id_var.reset(token)
            request_writes.reset(writes)
            method = scope["method"] if scope["method"] in HTTP_METHODS else "OTHER"
            labels = (self.service, route or UNMATCHED_ROUTE, method)
            self.metrics.http_requests.labels(*labels, str(status)).inc()
            self.metrics.http_duration.labels(*labels).observe(elapsed)
        return status


def _secure_headers(headers: MutableHeaders, scope: Scope) -> None:
    """Headers on every answer: no content sniffing; nothing kept by a cache (answers carry
    personal data, and a route that may be cached says so itself); the correlation id the
    request's events were recorded under, when it has one
    (``shared.platform.wiring.correlation_of``)."""
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Cache-Control", "no-store")
    state = scope.get("state")
    correlation = state.get("correlation_id") if isinstance(state, dict) else None
    if isinstance(correlation, str):
        headers["X-Correlation-Id"] = correlation


#: All request headers together, names and values, at most (bytes); a bigger request gets 431.
MAX_HEADER_BYTES: Final = 16_384


class _HeaderLimit:
    """Answer 431 to a request whose headers together exceed ``MAX_HEADER_BYTES``, before any
    of them is parsed (a token, a cookie, a correlation id)."""

    def __init__(self, app: ASGIApp, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope.get("headers", ()))
            if size > self.max_header_bytes:
                await problem_response(
                    431,
                    "Headers te groot / Request header fields too large",
                    detail=f"De headers samen mogen hoogstens {self.max_header_bytes} bytes zijn.",
                    code="headers_te_groot",
                )(scope, receive, send)
                return
        await self.app(scope, receive, send)


class _BodySizeLimit:
    """Answer 413 to a body over the limit, whether it announces its length or is chunked."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        # An unparsable length is left to the server; the streamed bytes are counted anyway.
        if (
            declared is not None
            and declared.strip().isdigit()
            and int(declared) > self.max_body_bytes
        ):
            await self._too_large()(scope, receive, send)
            return

        received = 0
        exceeded = False
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    exceeded = True
                    raise self._error()
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal response_started
            if exceeded:
                # The app may turn the aborted read into its own 400; the answer is 413.
                return
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not response_started:
            await self._too_large()(scope, receive, send)

    def _error(self) -> TeGroot:
        return TeGroot(f"De body mag hoogstens {self.max_body_bytes} bytes zijn.")

    def _too_large(self) -> JSONResponse:
        return _error_response(self._error())


# ---------------------------------------------------------------------------------------------
# health


def add_readiness_check(app: FastAPI, name: str, check: ReadinessCheck) -> None:
    """Register `check` (raises when not ready) under `name` for `/health/ready`."""
    app.state.readiness.append((name, check))


#: Something `/health/ready` reports without failing on it (the service still serves): a dict
#: to show under `details.<name>`, or None when there is nothing to say.
ReadinessDetail = Callable[[], Awaitable[dict[str, Any] | None]]


def add_readiness_detail(app: FastAPI, name: str, detail: ReadinessDetail) -> None:
    """Register `detail` under `name`: shown in `/health/ready`'s `details` when it says
    something (a relay stopped at an event, say); a detail that fails is left out."""
    app.state.readiness_details.append((name, detail))


async def _details(app: FastAPI) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, detail in app.state.readiness_details:
        try:
            said = await asyncio.wait_for(detail(), timeout=READINESS_TIMEOUT_SECONDS)
        except Exception as exc:
            logger.warning(
                "readiness detail failed", extra={"detail": name, "error_type": type(exc).__name__}
            )
            continue
        if said is not None:
            found[name] = said
    return found


_URL_CREDENTIALS: Final = re.compile(r"(?<=://)[^/@\s]+@")
_DSN_PASSWORD: Final = re.compile(r"(?i)(password|passwd|pwd|token|secret)=\S+")


def _redact(text: str) -> str:
    return _DSN_PASSWORD.sub(r"\1=***", _URL_CREDENTIALS.sub("***@", text))


async def _run_check(name: str, check: ReadinessCheck) -> bool:
    try:
        await asyncio.wait_for(check(), timeout=READINESS_TIMEOUT_SECONDS)
    except Exception as exc:
        logger.warning(
            "readiness check failed",
            extra={"check": name, "error_type": type(exc).__name__, "error": _redact(str(exc))},
        )
        return False
    return True


def _install_health(app: FastAPI) -> None:
    @app.get("/health/live", tags=["health"], summary="The process is running")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @app.get(
        "/health/ready",
        tags=["health"],
        summary="Every dependency answers",
        responses={503: {"model": Problem, "content": {PROBLEM_JSON: {}}}},
    )
    async def ready() -> Response:
        checks: list[tuple[str, ReadinessCheck]] = list(app.state.readiness)
        results, details = await asyncio.gather(
            asyncio.gather(*(_run_check(name, check) for name, check in checks)), _details(app)
        )
        names = [name for name, _ in checks]
        outcome = {name: "ok" if ok else "failed" for name, ok in zip(names, results, strict=True)}
        failing = [name for name, state in outcome.items() if state != "ok"]
        if failing:
            return _error_response(
                NietBeschikbaar(f"Niet gereed / Not ready: {', '.join(failing)}", code="not_ready"),
                extra={"checks": outcome, "failing": failing, "details": details},
            )
        return JSONResponse({"status": "ok", "checks": outcome, "details": details})


# ---------------------------------------------------------------------------------------------
# metrics


def _install_metrics(app: FastAPI, service: str) -> None:
    registry = metrics_for(service).registry

    # Without auth, for the scraper: every label is a name from the code, never caller input.
    # A plain `def`: collecting reads the relay's progress from PostgreSQL.
    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


# ---------------------------------------------------------------------------------------------
# OpenAPI


_PROBLEM_REF: Final = "#/components/schemas/Problem"


def _document_problems(schema: dict[str, Any]) -> None:
    """Describe 422 as problem+json instead of FastAPI's HTTPValidationError."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem_schema = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    components.update(problem_schema.pop("$defs", {}))
    components["Problem"] = problem_schema
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses") if isinstance(operation, dict) else None
            if isinstance(responses, dict) and "422" in responses:
                responses["422"] = {
                    "description": Ongeldig.title,
                    "content": {PROBLEM_JSON: {"schema": {"$ref": _PROBLEM_REF}}},
                }
    # HTTPValidationError refers to ValidationError, so it has to go first.
    for unused in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{unused}" not in repr(schema):
            components.pop(unused, None)


class _WeerbaarApp(FastAPI):
    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            _document_problems(super().openapi())
        assert self.openapi_schema is not None
        return self.openapi_schema


def create_app(
    *, service: str, title: str, version: str, max_body_bytes: int = 1_000_000
) -> FastAPI:
    """A FastAPI app with the project's errors, limits, tracing, access log and health routes."""
    # FastAPI's own /docs and /redoc load their files from a CDN: shared.platform.apidocs.
    app = _WeerbaarApp(title=title, version=version, docs_url=None, redoc_url=None)
    app.state.service = service
    app.state.readiness = []
    app.state.readiness_details = []
    app.add_exception_handler(WeerbaarError, _handle_weerbaar_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    for unavailable in DATABASE_UNAVAILABLE:
        app.add_exception_handler(unavailable, _handle_database_unavailable)
    app.add_exception_handler(CommitInDoubt, _handle_commit_in_doubt)
    app.add_exception_handler(Exception, _handle_unexpected)
    # Added last = outermost: the trace id is set before the size check answers.
    app.add_middleware(_BodySizeLimit, max_body_bytes=max_body_bytes)
    app.add_middleware(_HeaderLimit)
    app.add_middleware(_RequestContext, service=service)
    _install_health(app)
    _install_metrics(app, service)
    install_api_docs(app)
    return app
