"""Scenario 8: a hostile client sends what any client can send while dossiers flow.

From its own source addresses (127.0.0.2 and 127.0.0.3, so the per-source limits that apply to it
do not apply to the drivers) it sends, round after round until the last dossier is done:

- odd header values (spaces, e-mail addresses, 10 KB strings, tabs and obs-text, encoded words,
  injection attempts) as ``X-Correlation-Id``, ``Idempotency-Key``, ``traceparent`` and
  ``X-Forwarded-For``, on reads and on registrations and commands that succeed;
- ``Authorization`` with garbage, huge tokens, ``alg: none``, expired tokens, and validly signed
  tokens whose ``roles`` are ``[]``, ``["admin"]`` or ``["Secretariaat"]``, whose ``sub`` is an
  e-mail address, has spaces or looks opaque, and whose claims do not match the dossier;
- commands that succeed on its own dossiers under such subjects and correlation ids;
- anonymous floods (no token or a garbage one) on the dossier routes of every service;
- registrations with bad e-mail addresses (control characters, encoded words, two addressees,
  display names);
- oversized headers, and raw requests with control characters the HTTP client refuses to send.

Every hostile value holds one marker (``MARKER``). Afterwards: no service process exited; every
dossier completed and every committed event is on the stream once (the harness's checks); the
marker (and so every raw subject used) is nowhere on the streams, in the service logs, in the
audit export or the audit API; an answer never echoes it; no answer is a 500; and the anonymous
traffic added at most ``MAX_ANONYMOUS_REFUSALS`` ToegangGeweigerd per dossier and service.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from psycopg.sql import SQL, Identifier

from shared.contracts.envelope import CloudEvent
from shared.platform.auth import load_or_create_secret
from shared.platform.settings import SERVICES
from tests.faults import harness
from tests.faults.harness import DOSSIERS, ROOT, Findings, RunLog, World
from tests.support import stream_messages
from tools.demo import Actors, aanmelding_voor
from tools.system import ServiceProcess

#: In every hostile value (case as sent; searched for without regard to case).
MARKER = "Zq7HOSTILE"
#: Where the hostile client connects from (loopback: the whole 127/8 is the machine itself).
SOURCE = "127.0.0.2"
#: Where it registers the dossiers it then acts on as an odd subject.
OWN_SOURCE = "127.0.0.3"
#: Anonymous requests sent at one dossier in one burst: on one route, then spread over every
#: route of every service.
FLOOD_ONE_ROUTE = 150
FLOOD_PER_DOSSIER = 120
#: The window in which attempts without a valid token are counted (per dossier: the first
#: recorded at once, the rest as one counted event when the window ends); short, so the counted
#: events land within the run and can be checked.
REFUSAL_WINDOW_S = 30
#: The limits at the edge as a deployment has them (the rest of the test suite switches them
#: off), and the short refusal window.
EDGE_ENV = {
    "WEERBAAR_REGISTRATIONS_PER_SOURCE": "20",
    "WEERBAAR_REGISTRATIONS_PER_ADDRESS": "3",
    "WEERBAAR_ANONYMOUS_REQUESTS_PER_MINUTE": "60",
    "WEERBAAR_ANONYMOUS_REFUSAL_WINDOW_S": str(REFUSAL_WINDOW_S),
    "WEERBAAR_PENDING_RECORDS_INTERVAL_S": "2",
}
#: Answers to an attempt without a valid token: refused (401), or refused and over the limit of
#: its source (429); both are counted in the dossier's refusals.
ANONYMOUS_REFUSED = ("401", "429")
#: Pause between rounds (pacing, so the drivers keep their share of the two cores).
ROUND_PAUSE_S = 1.0
#: How long the hostile client waits for a service to hear of its own dossier.
OWN_WAIT_S = 60.0

ISSUER, AUDIENCE = "weerbaar-embedded", "weerbaar"
#: What the hostile client sends (the report's kinds).
KINDS = frozenset(
    {
        "own_dossier",
        "hostile_command",
        "odd_header_commit",
        "odd_idempotency_key",
        "anonymous_flood",
        "odd_token",
        "odd_header",
        "oversized_header",
        "raw_bytes",
        "bad_email",
    }
)

#: Token subjects: an e-mail address, spaces, one that passes for opaque, control-free oddities.
HOSTILE_SUBS = (
    f"{MARKER}.opaque-1",
    f"{MARKER}@example.org",
    f"{MARKER} met spaties",
    f"{MARKER}|x:y",
    f"=?utf-8?q?{MARKER}?=",
)


def header_values() -> list[str | bytes]:
    """Values any HTTP client sends as a header (bytes: obs-text, sent as is)."""
    return [
        f"not opaque {MARKER}",
        f"{MARKER}@example.org",
        f"{MARKER}.looks-opaque",
        MARKER + "x" * 10_000,
        f"{MARKER}\tTAB",
        f"{MARKER}\xff\xfe".encode("latin-1"),
        f"{MARKER}<script>alert(1)</script>",
        f"{MARKER}' OR '1'='1",
        f"=?utf-8?q?{MARKER}?=",
        f"{MARKER}%0d%0aX-Injected:%201",
        f"{MARKER}" + "%" * 200,
    ]


def traceparents() -> list[str]:
    """Malformed ``traceparent`` values."""
    return [
        f"00-{MARKER}-0000000000000001-01",
        f"00-{'a' * 32}-{'b' * 16}-01{MARKER}",
        f"ff-{MARKER}{'0' * 22}-{'0' * 16}-00",
        f"{MARKER}",
    ]


def bad_emails() -> list[str]:
    """E-mail addresses no registration may carry."""
    return [
        f"{MARKER}\x01ctl@example.org",
        f"{MARKER}\u0000nul@example.org",
        f"{MARKER}@example.org\r\nBcc: victim@example.org",
        f"=?utf-8?q?{MARKER}?=@example.org",
        f"{MARKER}@=?utf-8?b?ZXhhbXBsZQ==?=.org",
        f"{MARKER}@example.org,other@example.org",
        f"{MARKER}@example.org;other@example.org",
        f'"{MARKER} Display" <x@example.org>',
        f"{MARKER}<x@example.org>",
        f"{MARKER}@example.org>",
        f"{MARKER}\u202e@example.org",
        f"{MARKER}@exa\u00admple.org",
    ]


def raw_lines() -> list[bytes]:
    """Raw requests with bytes HTTP clients refuse to send (control characters, bare CR, NUL)."""
    marker = MARKER.encode()
    return [
        b"X-Correlation-Id: " + marker + b"\x00nul",
        b"X-Correlation-Id: " + marker + b"\x01soh",
        b"X-Correlation-Id: " + marker + b"\x1b[31mred",
        b"X-Correlation-Id: " + marker + b"\x7fdel",
        b"X-Correlation-Id: " + marker + b"\rbare-cr",
        b"Idempotency-Key: " + marker + b"\x08bs",
        b"traceparent: " + marker + b"\x00",
        b"Authorization: Bearer " + marker + b"\x00.x.y",
        marker + b"\x01name: value",
        b"X-Correlation-Id : " + marker,
    ]


@dataclass
class Hostile:
    """The hostile client: what it sent and how each kind was answered."""

    world: World
    log: RunLog
    secret: bytes
    routes: dict[str, list[tuple[str, str]]]
    #: Set when the drivers are done: the client sends nothing more (a round ends at once).
    stop: threading.Event
    answers: dict[str, Counter[str]] = field(default_factory=dict)
    echoes: list[str] = field(default_factory=list)
    answers_500: list[str] = field(default_factory=list)
    #: Dossiers flooded anonymously, and the dossiers hit with odd tokens (both: 401 refusals).
    flooded: set[str] = field(default_factory=set)
    token_targets: set[str] = field(default_factory=set)
    own_dossiers: list[str] = field(default_factory=list)
    #: Commands on its own dossiers under odd subjects and correlation ids that were answered 2xx.
    hostile_commands_2xx: int = 0
    #: Per dossier: its attempts without a valid token that were refused (401 or 429), and the
    #: wall-clock span (first start, last end) in which they were sent.
    refused: Counter[str] = field(default_factory=Counter)
    spans: dict[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.client = httpx.Client(timeout=30, transport=httpx.HTTPTransport(local_address=SOURCE))
        self.own = httpx.Client(timeout=30, transport=httpx.HTTPTransport(local_address=OWN_SOURCE))
        self.actors = Actors(self.secret, "-", "GM0363")
        self.lock = threading.Lock()
        self.rounds = 0

    def close(self) -> None:
        """Close both clients."""
        self.client.close()
        self.own.close()

    # --- sending ---------------------------------------------------------------------------

    def send(
        self,
        kind: str,
        method: str,
        service: str,
        path: str,
        *,
        headers: Mapping[str, str | bytes] | None = None,
        client: httpx.Client | None = None,
        dossier: str | None = None,
        **kwargs: Any,
    ) -> httpx.Response | None:
        """One hostile request; its answer counted under ``kind`` (and, when it was an
        anonymous refusal about ``dossier``, under that dossier) and checked."""
        if self.stopped():
            return None
        url = self.world.system.url(service) + path
        started = time.time()
        try:
            response = (client or self.client).request(
                method, url, headers=dict(headers or {}), **kwargs
            )
        except httpx.TransportError as exc:
            self.count(kind, f"no_answer {type(exc).__name__}")
            return None
        self.count(kind, str(response.status_code), dossier, started)
        self.inspect(kind, f"{method} {service} {path[:80]}", response)
        return response

    def stopped(self) -> bool:
        """The run was aborted, or the drivers are done and the first round is complete (it
        always is: a short run still sends everything once)."""
        return self.log.aborted.is_set() or (self.stop.is_set() and self.rounds > 0)

    def count(
        self, kind: str, outcome: str, dossier: str | None = None, started: float = 0.0
    ) -> None:
        """Count one answer (an anonymous refusal about a dossier also for that dossier)."""
        with self.lock:  # two threads send: the rounds and the client's own dossiers
            self.answers.setdefault(kind, Counter())[outcome] += 1
            if dossier is not None and outcome in ANONYMOUS_REFUSED:
                self.refused[dossier] += 1
                first, _ = self.spans.get(dossier, (started, 0.0))
                self.spans[dossier] = (first, time.time())

    def inspect(self, kind: str, what: str, response: httpx.Response) -> None:
        """An answer must not echo the marker (body or header) and must not be a 500."""
        where = f"{kind}: {what} -> {response.status_code}"
        if response.status_code == 500:
            self.answers_500.append(where)
        shown = response.text + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        if MARKER.lower() in shown.lower():
            self.echoes.append(where)

    def raw(
        self, kind: str, service: str, path: bytes, line: bytes, dossier: str | None = None
    ) -> None:
        """A request written byte by byte on a socket; the status line is counted."""
        if self.stopped():
            return
        started = time.time()
        port = self.world.system.ports[service]
        request = (
            b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + line + b"\r\n"
            b"Connection: close\r\n\r\n"
        )
        try:
            with socket.create_connection(
                ("127.0.0.1", port), timeout=10, source_address=(SOURCE, 0)
            ) as sock:
                sock.sendall(request)
                answer = b""
                while chunk := sock.recv(65_536):
                    answer += chunk
        except OSError as exc:
            self.count(kind, f"no_answer {type(exc).__name__}")
            return
        status = answer.split(b" ", 2)[1].decode("ascii", "replace") if answer else "closed"
        self.count(kind, status, dossier, started)
        if status == "500":
            self.answers_500.append(f"{kind}: raw {service} -> 500")
        if MARKER.lower().encode() in answer.lower():
            self.echoes.append(f"{kind}: raw {service} -> {status}")

    # --- tokens ----------------------------------------------------------------------------

    def signed(self, sub: str, roles: Any, **claims: Any) -> str:
        """A token signed with the system's own secret (so only its claims are odd)."""
        now = datetime.now(UTC)
        body = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": sub,
            "roles": roles,
            "iat": now,
            "nbf": now,
            "exp": now + timedelta(hours=1),
            **claims,
        }
        return jwt.encode(body, self.secret, algorithm="HS256")

    def odd_tokens(self) -> list[str]:
        """Validly signed tokens with roles or claims no caller should have, and forged ones."""
        now = datetime.now(UTC)
        tokens = [
            self.signed(f"{MARKER}-geen-rol", []),
            self.signed(f"{MARKER}-admin", ["admin"]),
            self.signed(f"{MARKER}-hoofdletter", ["Secretariaat"]),
            self.signed(f"{MARKER}-string", "secretariaat"),
            self.signed(f"{MARKER}-nested", [["secretariaat"]]),
            self.signed(f"{MARKER}.wg", ["werkgever"], organisatie=MARKER),
            self.signed(f"{MARKER}.bst", ["bestuurder"], email=f"{MARKER}@example.org"),
            self.signed(f"{MARKER}.groot", ["secretariaat"], pad=MARKER * 2_000),
            jwt.encode(
                {"iss": ISSUER, "aud": AUDIENCE, "sub": MARKER, "roles": ["secretariaat"]},
                None,
                algorithm="none",
            ),
            jwt.encode(
                {
                    "iss": ISSUER,
                    "aud": AUDIENCE,
                    "sub": f"{MARKER}-verlopen",
                    "roles": ["secretariaat"],
                    "exp": now - timedelta(hours=1),
                },
                self.secret,
                algorithm="HS256",
            ),
        ]
        tokens += [self.signed(sub, []) for sub in HOSTILE_SUBS]
        tokens += [self.signed(sub, ["werkgever"], organisatie="GM9999") for sub in HOSTILE_SUBS]
        return tokens

    # --- the rounds ------------------------------------------------------------------------

    def dossier_paths(
        self, service: str, aanvraag_id: str
    ) -> Iterator[tuple[str, str, str | None]]:
        """(method, path, the dossier when the path names it) of each of a service's routes."""
        for method, template in self.routes[service]:
            about = aanvraag_id if "{aanvraag_id}" in template else None
            yield method, template.replace("{aanvraag_id}", aanvraag_id), about

    def flood(self, aanvraag_id: str) -> None:
        """Anonymous requests (no token, or a garbage one) on every service's dossier routes."""
        self.flooded.add(aanvraag_id)
        paths = [(s, *route) for s in SERVICES for route in self.dossier_paths(s, aanvraag_id)]
        garbage: list[str | None] = [
            None,
            f"Bearer {MARKER}",
            MARKER,
            f"Basic {MARKER}",
            f"Bearer {MARKER}.x.y",
            "Bearer " + MARKER * 1_000,
        ]
        route = ("intake", "GET", f"/aanvragen/{aanvraag_id}", aanvraag_id)
        spread = [paths[i % len(paths)] for i in range(FLOOD_PER_DOSSIER)]
        for i, (service, method, path, about) in enumerate([route] * FLOOD_ONE_ROUTE + spread):
            auth = garbage[i % len(garbage)]
            headers = {} if auth is None else {"Authorization": auth}
            body = None if method == "GET" else {}
            self.send(
                "anonymous_flood", method, service, path, headers=headers, json=body, dossier=about
            )

    def odd_authorization(self, aanvraag_id: str) -> None:
        """Odd tokens on every service's dossier routes."""
        self.token_targets.add(aanvraag_id)
        for token in self.odd_tokens():
            for service in SERVICES:
                for method, path, about in self.dossier_paths(service, aanvraag_id):
                    headers = {"Authorization": f"Bearer {token}"}
                    body = None if method == "GET" else {}
                    self.send(
                        "odd_token",
                        method,
                        service,
                        path,
                        headers=headers,
                        json=body,
                        dossier=about,
                    )

    def odd_headers_on_reads(self, aanvraag_id: str) -> None:
        """Odd header values on reads a valid caller may make."""
        staff = self.actors.headers("secretariaat", sub="sec-hostile")
        path = f"/aanvragen/{aanvraag_id}"
        for value in header_values():
            for name in ("X-Correlation-Id", "Idempotency-Key", "traceparent", "X-Forwarded-For"):
                self.send("odd_header", "GET", "intake", path, headers={**staff, name: value})
        for value in traceparents():
            self.send("odd_header", "GET", "intake", path, headers={**staff, "traceparent": value})

    def registrations_with_bad_emails(self) -> None:
        """Registrations whose e-mail addresses are not addresses."""
        for email in bad_emails():
            for party in ("bestuurder", "werkgever"):
                body = aanmelding_voor(f"ok.{secrets.token_hex(4)}@example.org", "GM0363")
                body[party]["email"] = email
                self.send("bad_email", "POST", "intake", "/aanvragen", json=body)

    def oversized_headers(self, aanvraag_id: str) -> None:
        """Headers of 20 KB, 8 x 4 KB, 100 KB, and a 20 KB bearer token."""
        staff = self.actors.headers("secretariaat", sub="sec-hostile")
        path = f"/aanvragen/{aanvraag_id}"
        big = {"X-Correlation-Id": MARKER + "y" * 20_000}
        many = {f"X-{MARKER}-{i}": MARKER + "z" * 4_000 for i in range(8)}
        huge = {"X-Correlation-Id": MARKER + "w" * 100_000}
        token = {"Authorization": "Bearer " + self.signed(MARKER, ["secretariaat"], p="q" * 20_000)}
        for headers in ({**staff, **big}, {**staff, **many}, {**staff, **huge}, token):
            self.send(
                "oversized_header", "GET", "intake", path, headers=headers, dossier=aanvraag_id
            )
        self.send("oversized_header", "POST", "intake", "/aanvragen", headers=many, json={})

    def raw_requests(self, aanvraag_id: str) -> None:
        """Control characters in header names and values, on intake and scheduling."""
        for service in ("intake", "scheduling"):
            for line in raw_lines():
                path = f"/aanvragen/{aanvraag_id}".encode()
                self.raw("raw_bytes", service, path, line, aanvraag_id)
            self.raw("raw_bytes", service, b"/aanvragen/" + MARKER.encode() + b"%00", b"X: y")

    def registrations_with_odd_headers(self) -> None:
        """Valid registrations with odd correlation ids and trace headers (they commit, from
        the source of its own dossiers), and with odd idempotency keys."""
        for index, value in enumerate(header_values()):
            body = aanmelding_voor(f"{MARKER.lower()}.h{index}@example.org", "GM0363")
            headers: dict[str, str | bytes] = {
                "X-Correlation-Id": value,
                "traceparent": traceparents()[index % len(traceparents())],
                "X-Forwarded-For": f"{MARKER}, 10.0.0.1",
            }
            self.send(
                "odd_header_commit",
                "POST",
                "intake",
                "/aanvragen",
                headers=headers,
                json=body,
                client=self.own,
            )
            body = aanmelding_voor(f"{MARKER.lower()}.k{index}@example.org", "GM0363")
            self.send(
                "odd_idempotency_key",
                "POST",
                "intake",
                "/aanvragen",
                headers={"Idempotency-Key": value},
                json=body,
            )

    def own_dossier(self, index: int) -> None:
        """Register a dossier, then act on it under odd subjects and correlation ids: contact by
        a secretariaat subject, withdrawal by the bestuurder (a subject that is an address)."""
        email = f"{MARKER.lower()}.own{index}@example.org"
        body = aanmelding_voor(email, "GM0363")
        body["bestuurder"]["naam"] = f"{MARKER} Eigen"
        created = self.send(
            "own_dossier", "POST", "intake", "/aanvragen", client=self.own, json=body
        )
        if created is None or created.status_code != 201:
            return
        aanvraag_id = created.json()["aanvraag_id"]
        self.own_dossiers.append(aanvraag_id)
        sub = HOSTILE_SUBS[index % len(HOSTILE_SUBS)]
        staff = {"Authorization": f"Bearer {self.signed(sub, ['secretariaat'])}"}
        correlation = {"X-Correlation-Id": f"{MARKER}-corr.{index}"}
        self.until_done(
            "POST", "scheduling", f"/aanvragen/{aanvraag_id}/contact", {**staff, **correlation}
        )
        bestuurder = self.signed(f"{MARKER}@example.org", ["bestuurder"], email=email)
        self.until_done(
            "POST",
            "intake",
            f"/aanvragen/{aanvraag_id}/intrekken",
            {"Authorization": f"Bearer {bestuurder}", "X-Correlation-Id": f"not opaque {MARKER}"},
        )

    def until_done(self, method: str, service: str, path: str, headers: dict[str, str]) -> None:
        """Repeat a command while the service has not heard of the dossier yet (404/409)."""
        deadline = time.monotonic() + OWN_WAIT_S
        while time.monotonic() < deadline and not self.stopped():
            response = self.send("hostile_command", method, service, path, headers=headers)
            if response is not None and 200 <= response.status_code < 300:
                self.hostile_commands_2xx += 1
                return
            if response is not None and response.status_code not in (404, 409):
                return
            time.sleep(0.25)  # poll interval while the service learns of the dossier
        self.count("hostile_command", "gave_up")


def dossier_routes(world: World) -> dict[str, list[tuple[str, str]]]:
    """Per service: (method, path template) of every route about one dossier; for a service
    without one (notifications), its routes without path parameters."""
    routes: dict[str, list[tuple[str, str]]] = {}
    with httpx.Client(timeout=10) as client:
        for service in SERVICES:
            paths = client.get(f"{world.system.url(service)}/openapi.json").json()["paths"]
            found = [(m.upper(), p) for p, ms in paths.items() for m in ms if "{aanvraag_id}" in p]
            if not found:
                found = [
                    (m.upper(), p)
                    for p, ms in paths.items()
                    for m in ms
                    if "{" not in p and not p.startswith(("/health", "/metrics", "/contract"))
                ]
            routes[service] = sorted(found)
    return routes


def in_flight(log: RunLog, taken: set[str]) -> list[str]:
    """Dossiers the drivers have registered and not yet finished, not yet used (then the
    finished ones, for a first round that starts when all are done)."""
    finished = set(log.completed)
    seen = dict.fromkeys(a.dossier for a in list(log.attempts) if a.dossier)
    fresh = [d for d in seen if d not in taken]
    return [d for d in fresh if d not in finished] + [d for d in fresh if d in finished]


def watch(world: World, log: RunLog, done: threading.Event, exits: list[str]) -> None:
    """Note every service process that exits; the run then ends (it cannot succeed)."""
    pending = list(world.system.processes)
    while pending and not done.wait(0.5):
        for proc in list(pending):
            if proc.process.poll() is not None:
                pending.remove(proc)
                what = f"{proc.log_path.stem} exited with {proc.process.returncode}"
                exits.append(f"{what} at {world.now():.1f}s")
                log.abort(what)


def marker_count(text: str | bytes) -> int:
    """How often the marker occurs (case ignored)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text.lower().count(MARKER.lower())


def marker_on_streams(world: World) -> dict[str, int]:
    """Messages of each stream whose subject, headers or payload hold the marker."""
    found: dict[str, int] = {}
    for stream in ("WEERBAAR", "WEERBAAR_DEADLETTER"):
        found[stream] = sum(
            1
            for m in stream_messages(world.nats_url, stream)
            if marker_count(m.data) or marker_count(m.subject + json.dumps(m.headers))
        )
    return found


def marker_in_logs(world: World) -> dict[str, int]:
    """Lines of each service log that hold the marker."""
    found = {}
    for path in sorted((world.system.data_dir / "logs").glob("*.log")):
        with path.open(errors="replace") as handle:
            lines = sum(1 for line in handle if marker_count(line))
        if lines:
            found[path.name] = lines
    return found


def marker_in_audit(world: World, since: datetime, dossiers: list[str]) -> dict[str, int]:
    """The marker in the audit export of the run's period (``weerbaar audit-export``, JSON and
    CSV) and in the audit API's answer for every dossier the hostile client touched."""
    found = {}
    until = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    for formaat in ("json", "csv"):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "services.intake.ops.audit_export",
                "--van",
                since.isoformat(),
                "--tot",
                until,
                "--formaat",
                formaat,
            ],
            env={**world.system.env(), "WEERBAAR_LOG_LEVEL": "WARNING"},
            capture_output=True,
            timeout=300,
            check=True,
            cwd=ROOT,
        )
        assert done.stdout.strip(), f"the audit export ({formaat}) is empty"
        found[f"audit-export {formaat}"] = marker_count(done.stdout)
    compliance = Actors(load_secret(world), "-", "-").headers("compliance")
    api = 0
    with httpx.Client(timeout=30) as client:
        for aanvraag_id in dossiers:
            response = client.get(
                f"{world.system.url('intake')}/aanvragen/{aanvraag_id}/audit", headers=compliance
            )
            assert response.status_code == 200, response.status_code
            api += marker_count(response.text)
    found["audit API"] = api
    return found


@dataclass
class AnonymousRefusals:
    """The anonymous refusals (ToegangGeweigerd with status 401) of some dossiers on the stream."""

    #: Events per (dossier, service, route).
    events: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    #: Attempts they count (``aantal``), per dossier.
    attempts: Counter[str] = field(default_factory=Counter)

    def per_service(self) -> Counter[tuple[str, str]]:
        """Events per (dossier, service): at most two per window, whatever the routes."""
        out: Counter[tuple[str, str]] = Counter()
        for (dossier, service, _), n in self.events.items():
            out[dossier, service] += n
        return out

    def per_dossier(self) -> Counter[str]:
        """Events per dossier."""
        out: Counter[str] = Counter()
        for (dossier, _, _), n in self.events.items():
            out[dossier] += n
        return out


def anonymous_refusals(world: World, dossiers: set[str]) -> AnonymousRefusals:
    """The anonymous refusals of ``dossiers`` as the stream holds them."""
    found = AnonymousRefusals()
    for m in stream_messages(world.nats_url):
        if m.subject.split(".")[2] != "ToegangGeweigerd":
            continue
        data = CloudEvent.from_json(m.data).data
        dossier = str(data.get("aanvraag_id"))
        if data.get("status_code") == 401 and dossier in dossiers:
            found.events[(dossier, str(data["dienst"]), str(data["actie"]))] += 1
            found.attempts[dossier] += int(data.get("aantal") or 1)
    return found


def windows(span: tuple[float, float]) -> int:
    """How many refusal windows (fixed, aligned to the epoch) a span of wall-clock time touches."""
    first, last = span
    return int(last // REFUSAL_WINDOW_S) - int(first // REFUSAL_WINDOW_S) + 1


def wait_refusals_recorded(world: World, timeout_s: float = REFUSAL_WINDOW_S + 120) -> None:
    """Wait until every counted anonymous attempt is on record (each window ended and its
    counted event recorded), so no refusal is recorded while the end state is read."""
    deadline = time.monotonic() + timeout_s
    while True:
        with psycopg.connect(world.database_url, autocommit=True) as conn:
            pending = sum(
                int(
                    conn.execute(  # type: ignore[index]
                        SQL(
                            "SELECT count(*) FROM {} WHERE soort = 'anoniem_geweigerd'"
                            " AND aantal > vastgelegd"
                        ).format(Identifier(service, "throttle"))
                    ).fetchone()[0]
                )
                for service in SERVICES
            )
        if pending == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{pending} windows of anonymous refusals still unrecorded")
        time.sleep(0.5)  # poll interval of the wait above, which has its deadline


def relays_stopped(world: World) -> list[str]:
    """Relays that stopped at an event they cannot publish (readiness details)."""
    stopped = []
    with httpx.Client(timeout=10) as client:
        for service in SERVICES:
            details = client.get(f"{world.system.url(service)}/health/ready").json()
            if relay := details.get("details", {}).get("relay"):
                stopped.append(f"{service}: {relay}")
    return stopped


def load_secret(world: World) -> bytes:
    """The system's embedded signing secret (as ``weerbaar token`` finds it)."""
    return load_or_create_secret(world.system.data_dir / "secrets" / "jwt.key")


def processes_changed(world: World, started: list[ServiceProcess]) -> list[str]:
    """Service processes that are not the ones started, or no longer run."""
    now = {p.process.pid for p in world.system.processes}
    changed = [
        f"{p.log_path.stem} (pid {p.process.pid}) exited with {p.process.returncode}"
        for p in started
        if p.process.poll() is not None
    ]
    changed += [
        f"{p.log_path.stem} pid {p.process.pid} was not there at the start"
        for p in world.system.processes
        if p.process.pid not in {s.process.pid for s in started}
    ]
    if len(now) != len(started):
        changed.append(f"{len(started)} processes at the start, {len(now)} now")
    return changed


@pytest.mark.timeout(harness.budget_s())
def test_a_hostile_client_cannot_stop_a_service_or_reach_the_record() -> None:
    exits: list[str] = []
    hostile: list[Hostile] = []

    def attack(log: RunLog, done: threading.Event) -> None:
        world = log.world
        watcher = threading.Thread(
            target=watch, args=(world, log, done, exits), name="watch", daemon=True
        )
        watcher.start()
        client = Hostile(world, log, load_secret(world), dossier_routes(world), done)
        hostile.append(client)
        fault = world.fault("hostile_client", "every service")

        def own_dossiers() -> None:
            for index in range(3):
                client.own_dossier(index)

        own = threading.Thread(target=own_dossiers, name="own-dossiers", daemon=True)
        own.start()
        try:
            client.registrations_with_odd_headers()
            taken: set[str] = set()
            while not client.stopped():
                dossiers = in_flight(log, taken)
                if len(dossiers) < 2:
                    log.aborted.wait(0.2)
                    continue
                flood, odd = dossiers[:2]
                taken |= {flood, odd}
                client.flood(flood)
                client.odd_authorization(odd)
                client.odd_headers_on_reads(odd)
                client.oversized_headers(odd)
                client.raw_requests(odd)
                client.registrations_with_bad_emails()
                client.rounds += 1
                done.wait(ROUND_PAUSE_S)
        finally:
            own.join(timeout=OWN_WAIT_S * 2 + 30)
            client.close()
            world.healed(fault)
            watcher.join(timeout=10)

    with harness.world("hostile", env=EDGE_ENV) as world:
        since = datetime.now(UTC) - timedelta(minutes=1)
        started = list(world.system.processes)
        model = harness.fault_free_model(world)
        log = harness.drive(world, DOSSIERS - 2, fault=attack)
        (client,) = hostile
        blocked = processes_changed(world, started)
        if not blocked:
            wait_refusals_recorded(world)
            blocked = relays_stopped(world)
        if blocked:
            # The harness's checks would wait for a rest that never comes: report what is known.
            findings = Findings(dossiers=log.progress(), completed=len(log.completed))
            findings.lost_dossiers = [f"{d or '-'}: {why}" for d, why in log.lost]
            findings.stored_events = harness.count_events(world)
        else:
            findings = harness.check(world, log, model)
        on_streams = marker_on_streams(world)
        in_logs = marker_in_logs(world)
        touched = sorted(client.flooded | client.token_targets | set(client.own_dossiers))
        in_audit = {} if blocked else marker_in_audit(world, since, touched)
        refusals = anonymous_refusals(world, set(client.refused))
        too_many = {
            f"{dossier} {service}": n
            for (dossier, service), n in refusals.per_service().items()
            if n > 2 * windows(client.spans[dossier])
        }
        uncounted = {
            d: {"refused": n, "counted": refusals.attempts[d]}
            for d, n in client.refused.items()
            if refusals.attempts[d] != n
        }
        sent = {kind: sum(c.values()) for kind, c in client.answers.items()}
        per_dossier = refusals.per_dossier()
        body = harness.report(
            "8-hostile",
            world,
            log,
            findings,
            processes_exited_or_relays_stopped=exits or blocked,
            hostile_sent=sent,
            hostile_sent_total=sum(sent.values()),
            hostile_answers={k: dict(sorted(c.items())) for k, c in client.answers.items()},
            hostile_commands_2xx=client.hostile_commands_2xx,
            hostile_answers_500=client.answers_500[:20],
            echoes=client.echoes[:20],
            marker_on_streams=on_streams,
            marker_in_logs=in_logs,
            marker_in_audit=in_audit,
            dossiers_flooded=len(client.flooded),
            flood_per_dossier=FLOOD_PER_DOSSIER,
            anonymous_refused_attempts=sum(client.refused.values()),
            anonymous_refusal_events=sum(per_dossier.values()),
            anonymous_refusal_events_max_per_dossier=max(per_dossier.values(), default=0),
            anonymous_refusal_events_over_bound=too_many,
            anonymous_attempts_not_counted=uncounted,
        )
    print(harness.summary(body))
    print(json.dumps({k: body[k] for k in body if k.startswith(("hostile", "marker", "anon"))}))
    assert not blocked, f"service processes exited or relays stopped: {exits or blocked}"
    assert findings.problems() == {}
    assert findings.completed == DOSSIERS - 2
    assert sum(on_streams.values()) == 0, on_streams
    assert in_logs == {}, in_logs
    assert sum(in_audit.values()) == 0, in_audit
    assert client.echoes == []
    assert client.answers_500 == []
    # Every kind was sent; no address that is not one bare address was taken.
    assert set(client.answers) >= KINDS, set(client.answers)
    assert "201" not in client.answers["bad_email"], client.answers["bad_email"]
    assert "201" in client.answers["odd_header_commit"], client.answers["odd_header_commit"]
    # The attack ran: floods, odd tokens and commands under odd subjects reached the services.
    assert client.flooded and client.token_targets
    assert client.hostile_commands_2xx >= 2, client.answers.get("hostile_command")
    # Anonymous attempts grew no dossier's history beyond two events per route and window ...
    assert too_many == {}
    # ... and every one of them is on record, counted.
    assert uncounted == {}
    assert sum(client.refused.values()) > 2 * sum(per_dossier.values())
