"""What a caller and an operator see of `shared.platform.http`: problem+json errors that never echo
input, body limits, trace ids, health checks, and JSON logs."""

import io
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.platform.errors import Conflict
from shared.platform.http import add_readiness_check, create_app
from shared.platform.logging import JsonFormatter, configure_logging

LIMIT = 1000

# Distinctive fake personal data: none of it may come back in a response or a log line.
NAME = "Johanna Fictief-Verzonnen"
EMAIL = "johanna.fictief@verzonnen.example"
MARKERS = ("johanna", "fictief", "verzonnen")


def assert_no_personal_data(text: str) -> None:
    lowered = text.lower()
    for marker in MARKERS:
        assert marker not in lowered, f"{marker!r} leaked into: {text}"


class Soort(StrEnum):
    gesprek_werkgever = "gesprek_werkgever"
    gesprek_bestuurder = "gesprek_bestuurder"
    toelichting = "toelichting"


class Invoer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    naam: str = Field(max_length=10)
    email: str = Field(pattern=r"^[a-z.]+@gemeente\.nl$")
    soort: Soort
    organisatie_code: Literal["GM0363", "PV27"]
    afspraak_id: UUID
    aantal: int
    opmerking: str

    @field_validator("opmerking")
    @classmethod
    def _geen_namen(cls, value: str) -> str:
        # A careless validator that quotes the input: the handler must not pass it on.
        raise ValueError(f"{value!r} bevat een naam")


INVALID_BODY = {
    "naam": NAME,
    "email": EMAIL,
    "soort": EMAIL,
    "organisatie_code": NAME,
    "afspraak_id": "johanna-fictief",
    "aantal": NAME,
    "opmerking": NAME,
    EMAIL: NAME,
}


def _valid_body() -> dict[str, Any]:
    return {
        "naam": "J",
        "email": "j@gemeente.nl",
        "soort": "toelichting",
        "organisatie_code": "GM0363",
        "afspraak_id": str(uuid4()),
        "aantal": 1,
    }


class App:
    def __init__(self) -> None:
        self.handled: list[str] = []
        self.ready: dict[str, Exception | None] = {"database": None, "nats": None}
        self.app: FastAPI = create_app(
            service="test", title="Test", version="0", max_body_bytes=LIMIT
        )
        app = self.app

        class Kort(BaseModel):
            naam: str

        @app.post("/aanvragen", status_code=201)
        def dien_in(invoer: Kort) -> dict[str, str]:
            self.handled.append("aanvragen")
            return {"naam_lengte": str(len(invoer.naam))}

        @app.post("/volledig")
        def volledig(invoer: Invoer) -> dict[str, str]:
            self.handled.append("volledig")
            return {}

        @app.post("/upload")
        async def upload(request: Request) -> dict[str, int]:
            body = await request.body()
            self.handled.append("upload")
            return {"bytes": len(body)}

        @app.get("/zoek")
        def zoek(status: Soort) -> dict[str, str]:
            return {"status": status}

        @app.get("/aanvragen/{aanvraag_id}")
        def lees(aanvraag_id: UUID) -> dict[str, str]:
            return {"aanvraag_id": str(aanvraag_id)}

        @app.post("/aanvragen/{aanvraag_id}/intrekken")
        def trek_in(aanvraag_id: UUID) -> None:
            raise Conflict("De aanvraag is al ingetrokken.", code="al_ingetrokken")

        @app.get("/boom")
        def boom() -> None:
            raise RuntimeError("kapot")

        @app.get("/boom-validatie")
        def boom_validatie() -> None:
            Invoer.model_validate(INVALID_BODY)

        for name in self.ready:
            add_readiness_check(app, name, self._check(name))

        self.client = TestClient(app, raise_server_exceptions=False)

    def _check(self, name: str) -> Callable[[], Any]:
        async def check() -> None:
            error = self.ready[name]
            if error is not None:
                raise error

        return check


@pytest.fixture
def svc() -> App:
    return App()


@pytest.fixture
def logs() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        # The service's own lines: the test client (httpx) logs the URLs it requests.
        yield lambda: [
            line
            for line in map(json.loads, stream.getvalue().splitlines())
            if line["logger"] not in ("httpx", "asyncio")
        ]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"]
    assert body["trace_id"] == response.headers["x-trace-id"]
    return body


# --- 422 -----------------------------------------------------------------------------------------


def test_422_names_each_field_and_rule_but_never_the_submitted_values(
    svc: App, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    response = svc.client.post("/volledig", json=INVALID_BODY)
    body = _problem(response, 422)
    assert_no_personal_data(response.text)
    assert_no_personal_data(json.dumps(logs()))
    rules = {error["field"]: error["rule"] for error in body["errors"]}
    assert rules == {
        "body.naam": "string_too_long",
        "body.email": "string_pattern_mismatch",
        "body.soort": "enum",
        "body.organisatie_code": "literal_error",
        "body.afspraak_id": "uuid_parsing",
        "body.aantal": "int_parsing",
        "body.opmerking": "value_error",
        "body.*": "extra_forbidden",  # the unknown key was an e-mail address: masked
    }
    messages = {error["field"]: error["message"] for error in body["errors"]}
    assert messages["body.naam"] == "String should have at most 10 characters"
    assert messages["body.soort"] == (
        "Input should be 'gesprek_werkgever', 'gesprek_bestuurder' or 'toelichting'"
    )
    assert messages["body.afspraak_id"] == "Input should be a valid UUID"
    assert svc.handled == []


def test_422_for_a_query_enum_does_not_echo_the_value(svc: App) -> None:
    response = svc.client.get("/zoek", params={"status": EMAIL})
    body = _problem(response, 422)
    assert body["errors"][0]["field"] == "query.status"
    assert_no_personal_data(response.text)


def test_422_for_broken_json_does_not_echo_the_document(svc: App) -> None:
    response = svc.client.post(
        "/aanvragen",
        content=f'{{"naam": "{NAME}", '.encode(),
        headers={"content-type": "application/json"},
    )
    body = _problem(response, 422)
    assert body["errors"][0]["rule"] == "json_invalid"
    assert_no_personal_data(response.text)


def test_openapi_documents_422_as_problem_json(svc: App) -> None:
    schema = svc.client.get("/openapi.json").json()
    response_422 = schema["paths"]["/volledig"]["post"]["responses"]["422"]
    assert list(response_422["content"]) == ["application/problem+json"]
    assert response_422["content"]["application/problem+json"]["schema"] == {
        "$ref": "#/components/schemas/Problem"
    }
    assert "HTTPValidationError" not in json.dumps(schema)
    assert "errors" in schema["components"]["schemas"]["Problem"]["properties"]


# --- other problems ------------------------------------------------------------------------------


def test_a_step_out_of_order_is_a_409_problem_with_its_reason(svc: App) -> None:
    body = _problem(svc.client.post(f"/aanvragen/{uuid4()}/intrekken"), 409)
    assert body["detail"] == "De aanvraag is al ingetrokken."
    assert body["code"] == "al_ingetrokken"
    assert body["type"] == "urn:weerbaar:problem:conflict"


def test_unknown_route_and_wrong_method_are_problems(svc: App) -> None:
    _problem(svc.client.get("/bestaat-niet"), 404)
    response = svc.client.delete("/zoek")
    _problem(response, 405)
    assert response.headers["allow"] == "GET"


def test_500_shows_no_stack_trace_but_logs_one_with_the_trace_id(
    svc: App, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    response = svc.client.get("/boom")
    body = _problem(response, 500)
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    assert "kapot" not in response.text
    assert "test_http.py" not in response.text
    [error] = [line for line in logs() if line["message"] == "unhandled error"]
    assert error["trace_id"] == body["trace_id"]
    assert error["level"] == "ERROR"
    assert "Traceback" in error["exc"]
    assert "RuntimeError: kapot" in error["exc"]
    assert "in boom" in error["exc"]


def test_an_unexpected_validation_error_keeps_the_input_out_of_the_log(
    svc: App, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    response = svc.client.get("/boom-validatie")
    _problem(response, 500)
    assert_no_personal_data(response.text)
    [error] = [line for line in logs() if line["message"] == "unhandled error"]
    assert "ValidationError" in error["exc"]
    assert "naam: string_too_long" in error["exc"]
    assert_no_personal_data(json.dumps(logs()))


# --- 413 -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/aanvragen", "/upload"])
def test_413_for_a_large_body_with_content_length(svc: App, path: str) -> None:
    response = svc.client.post(path, content=b"x" * (LIMIT + 1))
    assert response.request.headers["content-length"] == str(LIMIT + 1)
    _problem(response, 413)
    assert svc.handled == []


@pytest.mark.parametrize("path", ["/aanvragen", "/upload"])
def test_413_for_a_large_body_without_content_length(svc: App, path: str) -> None:
    response = svc.client.post(path, content=iter([b"x" * (LIMIT + 1)]))
    assert "content-length" not in response.request.headers
    _problem(response, 413)
    assert svc.handled == []


@pytest.mark.parametrize("path", ["/aanvragen", "/upload"])
async def test_413_for_a_chunked_body_stops_reading_at_the_limit(svc: App, path: str) -> None:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(20):
            sent += 1
            yield b"x" * 300

    transport = httpx.ASGITransport(app=svc.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(path, content=chunks())
    assert "content-length" not in response.request.headers
    _problem(response, 413)
    assert sent == 4  # 1,200 bytes: the fourth chunk crossed the limit, the rest was never read
    assert svc.handled == []


def test_bodies_within_the_limit_are_accepted_both_ways(svc: App) -> None:
    body = json.dumps({"naam": "x" * (LIMIT - 20)}).encode()
    assert len(body) <= LIMIT
    as_json = {"content-type": "application/json"}
    assert svc.client.post("/aanvragen", content=body, headers=as_json).status_code == 201
    chunked = iter([body[:100], body[100:]])
    assert svc.client.post("/aanvragen", content=chunked, headers=as_json).status_code == 201
    assert svc.client.post("/upload", content=b"x" * LIMIT).json() == {"bytes": LIMIT}


# --- trace id and access log ---------------------------------------------------------------------


def test_incoming_traceparent_is_reused_as_trace_id(svc: App) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    response = svc.client.get(
        "/health/live", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    )
    assert response.headers["x-trace-id"] == trace_id


@pytest.mark.parametrize(
    "traceparent", [None, "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01"]
)
def test_a_fresh_trace_id_is_made_without_a_valid_traceparent(
    svc: App, traceparent: str | None
) -> None:
    headers = {"traceparent": traceparent} if traceparent else {}
    first = svc.client.get("/health/live", headers=headers).headers["x-trace-id"]
    second = svc.client.get("/health/live", headers=headers).headers["x-trace-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first != second
    assert first != "0" * 32


def test_access_log_has_route_template_status_and_duration_not_the_raw_url(
    svc: App, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    aanvraag_id = uuid4()
    response = svc.client.get(f"/aanvragen/{aanvraag_id}", params={"email": EMAIL})
    [line] = [line for line in logs() if line["logger"] == "weerbaar.access"]
    assert line["route"] == "/aanvragen/{aanvraag_id}"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert line["duration_ms"] >= 0
    assert line["trace_id"] == response.headers["x-trace-id"]
    assert str(aanvraag_id) not in json.dumps(line)
    assert_no_personal_data(json.dumps(logs()))


def test_access_log_names_the_problem_code_of_a_refusal(
    svc: App, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    assert svc.client.post(f"/aanvragen/{uuid4()}/intrekken").status_code == 409
    svc.client.get(f"/aanvragen/{uuid4()}")
    refused, read = [line for line in logs() if line["logger"] == "weerbaar.access"]
    assert (refused["status"], refused["code"]) == (409, "al_ingetrokken")
    assert "code" not in read


# --- health --------------------------------------------------------------------------------------


def test_live_and_ready_answer_200_when_every_check_passes(svc: App) -> None:
    assert svc.client.get("/health/live").json() == {"status": "ok"}
    ready = svc.client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ok",
        "checks": {"database": "ok", "nats": "ok"},
        "details": {},
    }


def test_ready_answers_503_naming_the_failing_check_without_its_secrets(
    svc: App, logs: Callable[[], list[dict[str, Any]]]
) -> None:
    svc.ready["nats"] = ConnectionError("nats://relay:hunter2@10.0.0.7:4222 refused")
    response = svc.client.get("/health/ready")
    body = _problem(response, 503)
    assert body["failing"] == ["nats"]
    assert body["checks"] == {"database": "ok", "nats": "failed"}
    assert "nats" in body["detail"]
    assert "hunter2" not in response.text
    assert "10.0.0.7" not in response.text
    [warning] = [line for line in logs() if line["message"] == "readiness check failed"]
    assert warning["check"] == "nats"
    assert "hunter2" not in json.dumps(warning)
    # Live stays up: a missing dependency is not a reason to restart the process.
    assert svc.client.get("/health/live").status_code == 200


# --- configure_logging ---------------------------------------------------------------------------


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide loggers; put them back for the other tests."""
    names = ["", "httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.asgi", "uvicorn.access"]
    loggers = [logging.getLogger(name) for name in names]
    saved = [(lg.handlers[:], lg.filters[:], lg.level, lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        for lg, (handlers, filters, level, propagate) in zip(loggers, saved, strict=True):
            lg.handlers, lg.filters, lg.propagate = handlers, filters, propagate
            lg.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_configure_logging_writes_one_json_object_per_line_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("intake", "INFO")
    log = logging.getLogger("services.intake.test")
    log.info("aanvraag opgeslagen", extra={"aanvraag_id": "6f1c"})
    log.debug("not at INFO")
    try:
        raise ValueError("bad state")
    except ValueError:
        log.exception("failed")
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /zoek?email=%s"', EMAIL)
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["message"] for line in lines] == ["aanvraag opgeslagen", "failed"]
    first = lines[0]
    assert first["service"] == "intake"
    assert first["level"] == "INFO"
    assert first["logger"] == "services.intake.test"
    assert first["aanvraag_id"] == "6f1c"
    assert first["trace_id"] is None
    assert first["time"].endswith("+00:00")
    assert "ValueError: bad state" in lines[1]["exc"]
    logging.getLogger("httpx").info("HTTP Request: GET http://intake/x?email=%s", EMAIL)
    assert capsys.readouterr().err == ""
