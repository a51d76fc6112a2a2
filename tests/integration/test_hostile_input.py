"""Hostile input against every service's API, in-process on real PostgreSQL: no server error.

- Bodies above the configured size answer 413, declared or streamed, before anything is stored.
- Absurd nesting and sizes answer 422, and nothing reaches the event store.
- A hand-rolled mutation run (always on): every operation of every OpenAPI document, with a token
  its rule admits, gets broken bodies, every field of a valid body replaced by hostile values,
  hostile path and query parameters; no answer is a 5xx, every error is problem+json without the
  submitted value, and no refused request (400/413/422) stored anything.
- The same operations with hostile headers: ``X-Correlation-Id``, ``Idempotency-Key`` and
  ``traceparent`` with odd values, ``Authorization`` with garbage, forged tokens, validly signed
  tokens without a known role and with odd subjects; first all at once on a dossier in which the
  command is accepted (so they reach the event store), then one by one. No 5xx, no echo, and every
  event stored since the request is publishable (the relay's own ``cloudevents_for``) and holds
  no hostile value: not in its data, not as correlation, causation or actor id or trace.
- Schemathesis against every OpenAPI document (ASGI, in-process), when the package is installed:
  a short, derandomised run by default; ``WEERBAAR_FUZZ_EXAMPLES=1000`` makes it a long one. The
  documents it is given also declare ``X-Correlation-Id``, ``Idempotency-Key`` and ``traceparent``
  on every operation, so it fuzzes those headers too; a caller's correlation id may be stored
  only when it is opaque (a UUID or hex).
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import jwt
import pytest
from httpx import Response

from shared.platform.auth import Role, load_or_create_secret
from shared.platform.model import DomainEvent
from shared.platform.relay import cloudevents_for
from tests.integration.inprocess import (
    ADVISEUR_SUB,
    NU,
    ORGANISATIE,
    SERVICES,
    Dossier,
    Endpoint,
    InProcessSystem,
    aanmelding,
    admitted_roles,
    rapport_inhoud,
    system_on_new_database,
)

pytestmark = pytest.mark.integration

LIMIT = 32_768  # the configured body limit of this module's services (bytes)
MARKER = "Zq7HOSTILE"  # in every hostile string, so an echo in an error answer is easy to find
SCHEMATHESIS_EXAMPLES = int(os.environ.get("WEERBAAR_FUZZ_EXAMPLES", "15"))
#: Statuses that refuse the input itself: nothing may have been stored.
INPUT_REFUSED = frozenset({400, 413, 422, 431})


@pytest.fixture(scope="module")
def system(
    postgres_server_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessSystem]:
    """The five services with a small body limit, on a database of their own."""
    data_dir: Path = tmp_path_factory.mktemp("hostile")
    with system_on_new_database(
        postgres_server_url, nats_url, data_dir, max_body_bytes=LIMIT
    ) as built:
        yield built


@pytest.fixture(scope="module")
def dossier(system: InProcessSystem) -> Dossier:
    """A dossier with every kind of id (appointment, report, measures)."""
    return system.dossier("vrijgegeven")


def stored_anywhere(system: InProcessSystem, marks: Mapping[str, int]) -> dict[str, list[str]]:
    """The events each service stored since ``marks`` (only services that stored any)."""
    found = {s: [type(e).__name__ for e in system.stored_since(s, m)] for s, m in marks.items()}
    return {service: names for service, names in found.items() if names}


def marks(system: InProcessSystem) -> dict[str, int]:
    """The last stored event of every service."""
    return {service: system.mark(service) for service in SERVICES}


# --- who calls: a token the route's rule admits ---------------------------------------------------

#: Preferred caller per admitted role set: staff first (they reach the deepest code).
PREFERENCE = (
    Role.adviseur,
    Role.secretariaat,
    Role.bva,
    Role.compliance,
    Role.dienst,
    Role.bestuurder,
    Role.werkgever,
)


def caller(system: InProcessSystem, d: Dossier, roles: frozenset[Role] | None) -> dict[str, str]:
    """Headers of a caller the rule admits (the dossier's own party where it takes one)."""
    if roles is None:
        return {}
    role = next(r for r in PREFERENCE if r in roles)
    if role is Role.bestuurder:
        return system.bestuurder(d)
    if role is Role.werkgever:
        return system.headers("werkgever", "wg-1", organisatie=d.organisatie)
    if role is Role.adviseur:
        return system.headers("adviseur", ADVISEUR_SUB)
    return system.headers(role.value)


# --- valid bodies, the starting point of the mutations -------------------------------------------


@dataclass(frozen=True)
class Voorbeeld:
    """A valid body of an operation and the dossier state in which it is accepted."""

    stand: str
    body: Callable[[Dossier], Any]


VOORBEELDEN: Mapping[tuple[str, str, str], Voorbeeld] = {
    ("intake", "POST", "/aanvragen"): Voorbeeld(
        "ingediend", lambda d: aanmelding("fuzz@example.org", ORGANISATIE)
    ),
    ("intake", "POST", "/aanvragen/{aanvraag_id}/bewaarplicht"): Voorbeeld(
        "ingediend", lambda d: {"reden": "onderzoek"}
    ),
    ("intake", "POST", "/aanvragen/{aanvraag_id}/afsluiten"): Voorbeeld(
        "vrijgegeven", lambda d: {"toelichting": "Klaar."}
    ),
    ("intake", "POST", "/internal/aanvragen/{aanvraag_id}/partij"): Voorbeeld(
        "ingediend", lambda d: {"email": d.email, "organisatie": d.organisatie}
    ),
    ("scheduling", "POST", "/aanvragen/{aanvraag_id}/afspraken"): Voorbeeld(
        "contact",
        lambda d: {
            "soort": "gesprek_werkgever",
            "gepland_op": (NU + timedelta(days=9)).isoformat(),
            "duur_minuten": 30,
            "adviseur_id": ADVISEUR_SUB,
            "video_link": "https://video.example.org/kamer-3",
        },
    ),
    ("scheduling", "POST", "/afspraken/{afspraak_id}/verzetten"): Voorbeeld(
        "gepland",
        lambda d: {"gepland_op": (NU + timedelta(days=10)).isoformat(), "duur_minuten": 45},
    ),
    ("scheduling", "POST", "/afspraken/{afspraak_id}/gevoerd"): Voorbeeld(
        "gepland", lambda d: {"woningscan_uitgevoerd": False}
    ),
    ("assessment", "POST", "/aanvragen/{aanvraag_id}/rapport"): Voorbeeld(
        "onderzocht", lambda d: rapport_inhoud()
    ),
    ("assessment", "PUT", "/rapporten/{rapport_id}"): Voorbeeld(
        "concept", lambda d: rapport_inhoud("herzien")
    ),
    ("assessment", "POST", "/aanvragen/{aanvraag_id}/pkvw"): Voorbeeld(
        "ingediend",
        lambda d: {"status": "certificaat", "afgegeven_op": "2026-05-01", "nummer": "PKVW-0001"},
    ),
    ("approval", "POST", "/rapporten/{rapport_id}/goedkeuren"): Voorbeeld(
        "ter_toetsing", lambda d: {"versie": 1, "inhoud_hash": d.inhoud_hash}
    ),
    ("approval", "POST", "/rapporten/{rapport_id}/afkeuren"): Voorbeeld(
        "ter_toetsing",
        lambda d: {"versie": 1, "inhoud_hash": d.inhoud_hash, "redenen": ["Te summier."]},
    ),
    ("approval", "POST", "/rapporten/{rapport_id}/instemming"): Voorbeeld(
        "goedgekeurd", lambda d: {"instemming": True}
    ),
    ("notifications", "POST", "/webhooks/abonnementen"): Voorbeeld(
        "ingediend",
        lambda d: {
            "callback_url": "https://integrator.example.org/weerbaar",
            "event_types": ["RapportVrijgegeven"],
            "organisatie_code": ORGANISATIE,
            "aanvraag_id": str(d.aanvraag_id),
        },
    ),
}


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


#: Values a field of a valid body is replaced by, one at a time.
HOSTILE_VALUES: tuple[Any, ...] = (
    MARKER + "A" * 5_000,  # far over any text limit, within the body limit
    f"{MARKER}\u0000nul",
    f"{MARKER}\ud800",  # a lone surrogate: valid JSON escape, not encodable as UTF-8
    f"{MARKER}\r\nX-Injected: 1",
    "",
    -1,
    10**30,
    1.5,
    float("inf"),  # json.dumps writes Infinity, which Python's parser accepts
    float("nan"),
    True,
    None,
    [],
    {"onbekend": MARKER},
    [[[[[[[[[[MARKER]]]]]]]]]],
)

#: Whole bodies that are not what any operation expects (raw bytes, sent as JSON).
HOSTILE_BODIES: tuple[bytes, ...] = (
    b"",
    b"null",
    b"[]",
    b"{}",
    b'"' + MARKER.encode() + b'"',
    b"1e999",
    b"-" + b"9" * 5_000,
    b'{"' + MARKER.encode() + b'":',
    b"\xff\xfe" + MARKER.encode(),
    _deep(5_000).encode(),
    b'{"a":' * 2_000 + b"1" + b"}" * 2_000,
    b"[" + b"0," * 5_000 + b"0]",
)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {k: _replaced(v, rest, new) if k == head else v for k, v in value.items()}
    return [_replaced(v, rest, new) if i == head else v for i, v in enumerate(value)]


def mutations(body: Any) -> Iterator[bytes]:
    """Every field of ``body`` replaced by every hostile value, a missing and an extra field."""
    for leaf in _leaves(body):
        for hostile in HOSTILE_VALUES:
            yield json.dumps(_replaced(body, leaf, hostile)).encode()
    if isinstance(body, dict):
        for key in body:
            yield json.dumps({k: v for k, v in body.items() if k != key}).encode()
        # An unknown field named by the caller: its name is checked in its own test below.
        yield json.dumps({**body, "onbekend_veld": MARKER}).encode()


# --- the operations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One operation of a service's OpenAPI document, with what calling it takes."""

    endpoint: Endpoint
    roles: frozenset[Role] | None
    takes_body: bool
    query: tuple[str, ...]

    def url(self, d: Dossier, override: str | None = None) -> str:
        """The path with the dossier's ids (or ``override`` for every id)."""
        ids = {
            "aanvraag_id": d.aanvraag_id,
            "afspraak_id": d.afspraak_werkgever,
            "rapport_id": d.rapport_id,
            "maatregel_id": d.maatregel_bestuurder,
            "file": "AanvraagIngediend.v1.json",
            "abonnement_id": d.abonnement_id or uuid4(),
            "bezorging_id": d.bezorging_id or uuid4(),
            "notificatie_id": d.notificatie_id or uuid4(),
        }
        return self.endpoint.path.format(**{k: override or v for k, v in ids.items()})


def operations(system: InProcessSystem) -> list[Operation]:
    """Every operation of every service's OpenAPI document, health checks excepted."""
    rules = admitted_roles(system.apps)
    found = []
    for service, app in system.apps.items():
        for path, methods in app.openapi()["paths"].items():
            if path.startswith("/health/"):
                continue
            for method, spec in methods.items():
                endpoint = Endpoint(service, method.upper(), path)
                query = tuple(p["name"] for p in spec.get("parameters", []) if p["in"] == "query")
                found.append(Operation(endpoint, rules[endpoint], "requestBody" in spec, query))
    return found


def problems_of(
    system: InProcessSystem, response: Response, before: Mapping[str, int]
) -> list[str]:
    """What is wrong with the answer to a hostile request: a server error, an error that is not
    problem+json or echoes the submitted value, something stored although the input was refused."""
    request = response.request
    what = f"{request.method} {request.url.path[:100]} -> {response.status_code}"
    found = []
    if response.status_code >= 500:
        found.append(f"{what}: server error {response.text[:200]}")
    if response.status_code >= 400:
        if not response.headers["content-type"].startswith("application/problem+json"):
            found.append(f"{what}: not problem+json")
        if MARKER in response.text:
            found.append(f"{what}: the error echoes the input")
    if response.status_code in INPUT_REFUSED:
        stored = stored_anywhere(system, before)
        if stored:
            found.append(f"{what}: stored {stored}")
    return found


@dataclass
class Run:
    """Sends hostile requests and keeps what went wrong."""

    system: InProcessSystem
    sent: int = 0
    problems: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)

    def send(
        self,
        op: Operation,
        url: str,
        headers: Mapping[str, str],
        *,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
    ) -> None:
        """One hostile request, checked."""
        # Without the bus running, a request can only store events in its own service.
        before = {op.endpoint.service: self.system.mark(op.endpoint.service)}
        all_headers = dict(headers)
        if content is not None:
            all_headers["content-type"] = "application/json"
        response = self.system.clients[op.endpoint.service].request(
            op.endpoint.method, url, headers=all_headers, content=content, params=params
        )
        self.sent += 1
        self.statuses[response.status_code] += 1
        self.problems.extend(problems_of(self.system, response, before))


def test_mutated_requests_get_no_server_error(system: InProcessSystem, dossier: Dossier) -> None:
    ops = operations(system)
    assert {op.endpoint.service for op in ops} == set(SERVICES)
    run = Run(system)
    for op in ops:
        headers = caller(system, dossier, op.roles)
        # Hostile path parameters: a random id, text, a NUL, something very long.
        if "{" in op.endpoint.path:
            for override in (str(uuid4()), MARKER, "%00", "9" * 4_000, "..%2F..%2Fetc"):
                run.send(op, op.url(dossier, override), headers)
        url = op.url(dossier)
        for name in op.query:
            for value in ("", "-1", "9" * 60, f"{MARKER}\u0000", "[]", "true"):
                run.send(op, url, headers, params={name: value})
        if op.endpoint.method == "GET":
            continue
        for body in HOSTILE_BODIES:
            run.send(op, url, headers, content=body)
        example = VOORBEELDEN.get((op.endpoint.service, op.endpoint.method, op.endpoint.path))
        assert (example is not None) == op.takes_body, f"{op.endpoint}: a body example is needed"
        if example is not None:
            # A dossier in which the valid body is accepted, so hostile values that pass
            # validation reach the use case and the event store.
            d = system.dossier(example.stand)
            for content in mutations(example.body(d)):
                run.send(op, op.url(d), caller(system, d, op.roles), content=content)

    print(f"hostile requests: {run.sent}, answers: {dict(sorted(run.statuses.items()))}")
    assert run.problems == []
    assert run.sent > 1_000
    # The run reached the use cases, not only the validation in front of them.
    assert run.statuses[200] + run.statuses[201] > 50


# --- hostile headers ------------------------------------------------------------------------------

#: Header values any client can send (bytes: obs-text and control characters, which an ASGI
#: server's parser would refuse but which reach the app in-process).
HOSTILE_HEADER_VALUES: tuple[str | bytes, ...] = (
    f"not opaque {MARKER}",
    f"{MARKER}@example.org",
    f"{MARKER}.looks-opaque",
    f"{MARKER}|a:b",
    MARKER + "x" * 10_000,
    f"{MARKER}\tTAB",
    f"=?utf-8?q?{MARKER}?=",
    f"{MARKER}<script>",
    f"{MARKER}\xff\xfe".encode("latin-1"),
    f"{MARKER}\x00\x01\x1b[31m".encode(),
    f"{MARKER}\r\nX-Injected: 1".encode(),
)
HOSTILE_TRACEPARENTS = (
    f"00-{MARKER}-0000000000000001-01",
    f"00-{'a' * 32}-{'b' * 16}-01{MARKER}",
    f"ff-{MARKER}{'0' * 22}-{'0' * 16}-00",
)
#: Token subjects that are not opaque ids, or only look like one.
HOSTILE_SUBS = (f"{MARKER} met spaties", f"{MARKER}@example.org", f"{MARKER}.opaque-1")
#: A caller's correlation id may be kept only when it is one of these.
OPAQUE_CORRELATION = re.compile(
    r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}|[0-9a-f]{1,128}", re.I
)


def _signed(system: InProcessSystem, sub: str, roles: Any, **claims: Any) -> str:
    settings = system.settings
    now = datetime.now(UTC)
    body = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": sub,
        "roles": roles,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(hours=1),
        **claims,
    }
    secret = load_or_create_secret(settings.secret_file)
    return jwt.encode(body, secret, algorithm="HS256")


def hostile_authorizations(system: InProcessSystem) -> list[str]:
    """Authorization values: garbage, forged, oversized, and signed ones without a known role."""
    values = [
        MARKER,
        f"Bearer {MARKER}",
        f"Basic {MARKER}",
        f"Bearer {MARKER}.x.y",
        "Bearer " + MARKER * 2_000,
        "Bearer " + jwt.encode({"sub": MARKER, "roles": ["secretariaat"]}, None, algorithm="none"),
        "Bearer " + _signed(system, MARKER, ["secretariaat"], pad=MARKER * 2_000),
    ]
    for roles in ([], ["admin"], ["Secretariaat"], "secretariaat", [["secretariaat"]]):
        values += [f"Bearer {_signed(system, sub, roles)}" for sub in HOSTILE_SUBS]
    return values


def hostile_caller(
    system: InProcessSystem, d: Dossier, roles: frozenset[Role] | None, sub: str
) -> dict[str, str]:
    """A caller the rule admits, with an odd ``sub`` (and the claims that match the dossier)."""
    if roles is None:
        return {}
    role = next(r for r in PREFERENCE if r in roles)
    claims: dict[str, str] = {}
    if role is Role.bestuurder:
        claims["email"] = d.email
    if role is Role.werkgever:
        claims["organisatie"] = d.organisatie
    if role is Role.adviseur:
        sub = ADVISEUR_SUB  # the report's author: the route checks who wrote it
    return {"Authorization": f"Bearer {_signed(system, sub, [role.value], **claims)}"}


def stored_problems(system: InProcessSystem, service: str, mark: int, sent: str) -> list[str]:
    """What is wrong with the events a service stored since ``mark``: one that could not be
    published, or that holds the marker anywhere (data or metadata)."""
    components = system.components[service]
    found = []
    for event in system.stored_since(service, mark):
        name = type(event).__name__
        try:
            cloudevents_for(service, system.settings, event, components.gateway(event))
        except ValueError as exc:  # pydantic's ValidationError is one
            found.append(f"{sent}: stored {name} cannot be published: {type(exc).__name__}")
        if MARKER.lower() in _stored_text(event).lower():
            found.append(f"{sent}: stored {name} holds the hostile value")
    return found


def _stored_text(event: DomainEvent) -> str:
    return json.dumps(event.model_dump(mode="json"), default=str)


def header_problems(response: Response, sent: str) -> list[str]:
    """An answer to a hostile header: no server error, problem+json, no echo (body or header)."""
    found = []
    if response.status_code >= 500:
        found.append(f"{sent} -> {response.status_code}: server error {response.text[:200]}")
    if response.status_code >= 400 and not response.headers.get("content-type", "").startswith(
        "application/problem+json"
    ):
        found.append(f"{sent} -> {response.status_code}: not problem+json")
    shown = response.text + "".join(f"{k}: {v}\n" for k, v in response.headers.items())
    if MARKER.lower() in shown.lower():
        found.append(f"{sent} -> {response.status_code}: the answer echoes the header")
    return found


def test_hostile_headers_get_no_server_error_and_nothing_hostile_is_stored(
    system: InProcessSystem, dossier: Dossier
) -> None:
    ops = operations(system)
    authorizations = hostile_authorizations(system)
    statuses: Counter[int] = Counter()
    problems: list[str] = []
    sent = 0
    stored_with_hostile_headers = 0

    def send(
        op: Operation, url: str, headers: Mapping[str, str | bytes], what: str, body: Any
    ) -> Response:
        nonlocal sent
        service = op.endpoint.service
        before = system.mark(service)
        all_headers: dict[str, str | bytes] = dict(headers)
        content = None
        if body is not None:
            content = json.dumps(body).encode()
            all_headers["content-type"] = "application/json"
        response = system.clients[service].request(
            op.endpoint.method, url, headers=all_headers, content=content
        )
        sent += 1
        statuses[response.status_code] += 1
        label = f"{op.endpoint} [{what}]"
        problems.extend(header_problems(response, label))
        problems.extend(stored_problems(system, service, before, label))
        return response

    def example_of(op: Operation) -> Voorbeeld | None:
        return VOORBEELDEN.get((op.endpoint.service, op.endpoint.method, op.endpoint.path))

    # A dossier per command in which it is accepted, so the hostile headers reach the store;
    # made first, as the bus runs only while seeding.
    dossiers = {
        op.endpoint: system.dossier(example.stand)
        for op in ops
        if (example := example_of(op)) is not None
    }
    for index, op in enumerate(ops):
        example = example_of(op)
        d = dossiers.get(op.endpoint, dossier)
        body = example.body(d) if example is not None else None
        url = op.url(d)
        sub = HOSTILE_SUBS[index % len(HOSTILE_SUBS)]
        everything: dict[str, str | bytes] = {
            **hostile_caller(system, d, op.roles, sub),
            "X-Correlation-Id": HOSTILE_HEADER_VALUES[index % 4],
            "Idempotency-Key": HOSTILE_HEADER_VALUES[(index + 1) % 4],
            "traceparent": HOSTILE_TRACEPARENTS[index % len(HOSTILE_TRACEPARENTS)],
        }
        first = send(op, url, everything, "all at once", body)
        if 200 <= first.status_code < 300 and op.endpoint.method != "GET":
            stored_with_hostile_headers += 1
        headers = caller(system, d, op.roles)
        for value in HOSTILE_HEADER_VALUES:
            for name in ("X-Correlation-Id", "Idempotency-Key"):
                send(op, url, {**headers, name: value}, name, body)
        for value in HOSTILE_TRACEPARENTS:
            send(op, url, {**headers, "traceparent": value}, "traceparent", body)
        if op.roles is not None:
            for value in authorizations:
                send(op, url, {"Authorization": value}, "Authorization", body)

    print(
        f"hostile headers: {sent} requests, {stored_with_hostile_headers} commands stored under"
        f" them, answers: {dict(sorted(statuses.items()))}"
    )
    distinct = sorted(set(problems))
    assert not problems, f"{len(problems)} problems, e.g.:\n" + "\n".join(distinct[:60])
    assert sent > 1_000
    # The hostile headers reached the event stores, not only the checks in front of them.
    assert stored_with_hostile_headers > 10


# --- 413 -----------------------------------------------------------------------------------------

#: One route per service that takes a body (notifications has none: its list, with a body).
SIZE_ROUTES = (
    ("intake", "POST", "/aanvragen"),
    ("scheduling", "POST", "/aanvragen/{aanvraag_id}/afspraken"),
    ("assessment", "PUT", "/rapporten/{rapport_id}"),
    ("approval", "POST", "/rapporten/{rapport_id}/afkeuren"),
    ("notifications", "GET", "/notificaties"),
)


def _padded(body: Any, size: int) -> bytes:
    """``body`` as JSON, padded with white space to exactly ``size`` bytes."""
    encoded = json.dumps(body).encode()
    assert len(encoded) <= size
    return encoded + b" " * (size - len(encoded))


def _size_request(
    system: InProcessSystem, d: Dossier, service: str, method: str, path: str
) -> tuple[str, dict[str, str], Any]:
    op = next(o for o in operations(system) if o.endpoint == Endpoint(service, method, path))
    example = VOORBEELDEN.get((service, method, path), Voorbeeld("ingediend", lambda d: {"x": 1}))
    headers = {**caller(system, d, op.roles), "content-type": "application/json"}
    return op.url(d), headers, example.body(d)


@pytest.mark.parametrize(("service", "method", "path"), SIZE_ROUTES)
def test_a_body_over_the_limit_is_413_declared_or_streamed(
    system: InProcessSystem, dossier: Dossier, service: str, method: str, path: str
) -> None:
    url, headers, body = _size_request(system, dossier, service, method, path)
    client = system.clients[service]
    before = marks(system)

    declared = client.request(method, url, headers=headers, content=_padded(body, LIMIT + 1))

    def chunks() -> Iterator[bytes]:
        payload = _padded(body, LIMIT + 1)
        for start in range(0, len(payload), 4_096):
            yield payload[start : start + 4_096]

    answers = [declared]
    # A route that reads no body never counts a streamed one: it is not buffered, only dropped.
    if method != "GET":
        streamed = client.request(method, url, headers=headers, content=chunks())
        assert "content-length" not in streamed.request.headers
        answers.append(streamed)

    for response in answers:
        assert response.status_code == 413, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    assert stored_anywhere(system, before) == {}


@pytest.mark.parametrize(("service", "method", "path"), SIZE_ROUTES)
def test_a_body_at_the_limit_is_not_413(
    system: InProcessSystem, service: str, method: str, path: str
) -> None:
    d = system.dossier("ter_toetsing")
    url, headers, body = _size_request(system, d, service, method, path)

    response = system.clients[service].request(
        method, url, headers=headers, content=_padded(body, LIMIT)
    )

    # Read and judged on its content (some steps do not fit this dossier's state: 409).
    assert response.status_code in (200, 201, 409), response.text


def test_a_body_over_the_limit_is_413_without_a_token(system: InProcessSystem) -> None:
    before = marks(system)
    response = system.clients["approval"].post(
        f"/rapporten/{uuid4()}/goedkeuren",
        content=b" " * (LIMIT + 1),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert stored_anywhere(system, before) == {}


# --- 422: absurd nesting and sizes ---------------------------------------------------------------


def _aanvraag_met(**veld: Any) -> bytes:
    body = aanmelding("groot@example.org", ORGANISATIE)
    body.update(veld)
    return json.dumps(body).encode()


def _aanvraag_met_getal(cijfers: int) -> bytes:
    """A registration with a JSON number of ``cijfers`` digits (too long for Python's int())."""
    return _aanvraag_met(verhuizing_gepland="GETAL").replace(b'"GETAL"', b"9" * cijfers)


ABSURD: tuple[Any, ...] = (
    pytest.param(
        _deep(5_000).encode(),
        id="array nested 5000 deep",
    ),
    pytest.param(
        b'{"bestuurder":' * 2_000 + b"{}" + b"}" * 2_000,
        id="object nested 2000 deep",
    ),
    pytest.param(
        _aanvraag_met_getal(5_000),
        id="integer of 5000 digits",
    ),
    pytest.param(
        b'{"reden": "\xff\xfe"}',
        id="invalid UTF-8",
    ),
    pytest.param(_aanvraag_met(reden="x" * 10_000), id="text of 10000 characters"),
    pytest.param(_aanvraag_met(reden=["x"] * 4_000), id="list of 4000 where text goes"),
    pytest.param(_aanvraag_met(reden="x" * 5_001), id="text over its 5000 characters"),
    pytest.param(
        _aanvraag_met(bestuurder=[[[[[[[[[[{}]]]]]]]]]]), id="nesting where an object goes"
    ),
    pytest.param(_aanvraag_met(verhuizing_gepland=10**300), id="integer of 300 digits"),
    pytest.param(_aanvraag_met(verhuizing_gepland=float("inf")), id="Infinity"),
    pytest.param(_aanvraag_met(**{f"veld{i}": i for i in range(1_000)}), id="1000 unknown fields"),
)


def test_the_absurd_cases_fit_in_the_body_limit() -> None:
    """They are about nesting and sizes the limit lets through (else the answer is 413)."""
    for case in ABSURD:
        (content,) = case.values
        assert len(content) <= LIMIT, case.id


@pytest.mark.parametrize("content", ABSURD)
def test_absurd_input_is_422_and_stores_nothing(system: InProcessSystem, content: bytes) -> None:
    before = marks(system)

    response = system.clients["intake"].post(
        "/aanvragen", content=content, headers={"content-type": "application/json"}
    )

    assert stored_anywhere(system, before) == {}
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_a_report_with_absurd_sizes_is_422_and_stores_nothing(system: InProcessSystem) -> None:
    d = system.dossier("concept")
    adviseur = system.headers("adviseur", ADVISEUR_SUB)
    too_many = rapport_inhoud()
    too_many["maatregelen"] = [too_many["maatregelen"][0]] * 101
    too_long = rapport_inhoud()
    too_long["bevindingen"]["wonen"] = "x" * 20_001
    before = marks(system)

    for body in (too_many, too_long):
        content = json.dumps(body).encode()
        assert len(content) <= LIMIT
        response = system.clients["assessment"].put(
            f"/rapporten/{d.rapport_id}",
            content=content,
            headers={**adviseur, "content-type": "application/json"},
        )
        assert response.status_code == 422, response.text[:300]

    assert stored_anywhere(system, before) == {}


def test_an_unknown_field_with_an_odd_name_is_not_echoed(system: InProcessSystem) -> None:
    body = aanmelding("veld@example.org", ORGANISATIE)
    body[f"{MARKER}<script>"] = 1

    response = system.clients["intake"].post("/aanvragen", json=body)

    assert response.status_code == 422
    assert MARKER not in response.text


# --- schemathesis --------------------------------------------------------------------------------

SCHEMATHESIS_MISSING = (
    "schemathesis is not installed in this environment: add it (and so hypothesis) to the dev"
    " dependencies in pyproject.toml / uv.lock to run the OpenAPI-driven fuzzing"
)


#: Headers every service reads without declaring them; the fuzzed documents declare them.
FUZZED_HEADERS = ("X-Correlation-Id", "Idempotency-Key", "traceparent")


def with_fuzzed_headers(document: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with ``FUZZED_HEADERS`` as required header parameters of every
    operation (so every generated request carries a generated value of each)."""
    fuzzed: dict[str, Any] = json.loads(json.dumps(document))
    for methods in fuzzed["paths"].values():
        for spec in methods.values():
            parameters = spec.setdefault("parameters", [])
            declared = {p["name"].lower() for p in parameters if p["in"] == "header"}
            parameters += [
                {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
                for name in FUZZED_HEADERS
                if name.lower() not in declared
            ]
    return fuzzed


def _checker(system: InProcessSystem, headers: Mapping[str, str]) -> Callable[[Any], None]:
    """One generated request: no 5xx; nothing stored when the input was refused; whatever was
    stored can be published, and holds the caller's correlation id only when it is opaque."""

    def check(case: Any) -> None:
        before = marks(system)
        response = case.call(headers=dict(headers))
        status = int(response.status_code)
        assert status < 500, f"{case.method} {case.path}: {status} {response.text[:300]}"
        if status in INPUT_REFUSED:
            assert stored_anywhere(system, before) == {}
        sent = (case.headers or {}).get("X-Correlation-Id")
        for service, mark in before.items():
            for event in system.stored_since(service, mark):
                # Raises when the relay could not publish it.
                gateway = system.components[service].gateway
                cloudevents_for(service, system.settings, event, gateway(event))
                if sent and event.correlation_id == sent:
                    assert OPAQUE_CORRELATION.fullmatch(sent), f"stored correlation {sent!r}"

    return check


@pytest.mark.parametrize("service", SERVICES)
def test_schemathesis_finds_no_server_error(
    system: InProcessSystem, dossier: Dossier, service: str
) -> None:
    """Schemathesis generates requests from the OpenAPI document; none may answer 5xx."""
    schemathesis = pytest.importorskip("schemathesis", reason=SCHEMATHESIS_MISSING)
    hypothesis = pytest.importorskip("hypothesis", reason=SCHEMATHESIS_MISSING)
    app = system.apps[service]
    # schemathesis 4: a document given as a dict, called in-process like ``from_asgi`` does.
    schema = schemathesis.openapi.from_dict(with_fuzzed_headers(app.openapi()))
    schema.app = app
    schema.location = "/openapi.json"
    long_run = "WEERBAAR_FUZZ_EXAMPLES" in os.environ
    for op in operations(system):
        if op.endpoint.service != service:
            continue
        check = _checker(system, caller(system, dossier, op.roles))

        # Applied as calls, not decorators: the modules are only known at run time (Any).
        given = hypothesis.given(case=schema[op.endpoint.path][op.endpoint.method].as_strategy())
        bounded = hypothesis.settings(
            max_examples=SCHEMATHESIS_EXAMPLES,
            deadline=timedelta(seconds=2),
            database=None,
            derandomize=not long_run,
            suppress_health_check=list(hypothesis.HealthCheck),
        )
        fuzz: Callable[[], None] = bounded(given(check))
        fuzz()


def test_the_fixture_dossier_has_every_id(dossier: Dossier) -> None:
    """The mutation run reaches deep code only when the ids in its paths are real."""
    for value in (
        dossier.aanvraag_id,
        dossier.afspraak_werkgever,
        dossier.rapport_id,
        dossier.maatregel_bestuurder,
    ):
        assert isinstance(value, UUID)
