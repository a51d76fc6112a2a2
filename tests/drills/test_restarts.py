"""Drills: processes and servers that exit under ``./weerbaar up``, while dossiers are registered.

The runbook's "A process that exits is started again" and "A rolling restart", natively: the
embedded PostgreSQL and NATS killed with SIGKILL, every service process stopped in turn. ``up``
says so on its terminal at once and starts each again on its own port; ``/health/ready`` names the
server that is down; every registration that got a 2xx is there once, and the accounting is clean.
The supervisor's rules themselves (back-off, crash loop, port wait) are unit-tested with a driven
clock in ``tests/integration/test_embedded.py``; here they run in real time.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field

import httpx
import pytest

from shared.platform.settings import SERVICES
from tests.drills.operator import Operator
from tests.support import wait_until

pytestmark = pytest.mark.e2e

#: "Within about a second", with room for a loaded two-core machine: the supervisor looks once a
#: second, a readiness check gives a dependency one second.
AT_ONCE_S = 3.0


@dataclass
class ReadinessWatch:
    """Every service's ``/health/ready``, asked over and over in parallel (one client each)."""

    operator: Operator
    server: str
    started: float = field(default_factory=time.monotonic)
    #: Per service, seconds from the start until it first answered 503 naming ``server``.
    named_down: dict[str, float] = field(default_factory=dict)
    #: Per service, seconds until it answered 200 again after that.
    recovered: dict[str, float] = field(default_factory=dict)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def _watch(self, service: str) -> None:
        with httpx.Client(timeout=5) as client:
            while not self.stop.is_set() and service not in self.recovered:
                try:
                    answer = client.get(f"{self.operator.url(service)}/health/ready")
                except httpx.HTTPError:
                    self.stop.wait(0.05)
                    continue
                at = time.monotonic() - self.started
                if answer.status_code == 503 and self.server in answer.json().get("failing", []):
                    self.named_down.setdefault(service, at)
                elif answer.status_code == 200 and service in self.named_down:
                    self.recovered[service] = at
                self.stop.wait(0.05)

    def start(self) -> None:
        self.started = time.monotonic()
        for service in SERVICES:
            thread = threading.Thread(target=self._watch, args=(service,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def finish(self, timeout: float = 60) -> None:
        wait_until(
            lambda: len(self.recovered) == len(SERVICES),
            timeout=timeout,
            what=f"every service ready again after {self.server} came back: {self.recovered}",
        )
        self.stop.set()
        for thread in self.threads:
            thread.join(10)


def _new_lines(operator: Operator, seen: int, *parts: str) -> list[str]:
    return [line for line in operator.terminal_lines()[seen:] if all(p in line for p in parts)]


def _kill_server(
    operator: Operator, server: str, title: str, *, mail_at_least_once: bool = False
) -> None:
    """SIGKILL to an embedded server under load: said at once, named by readiness, back on its
    own ports, nothing lost."""
    state_before = operator.read_state()
    pid = operator.pid(server)
    seen = len(operator.terminal_lines())
    with operator.load() as load:
        load.wait_for(5)
        watch = ReadinessWatch(operator, server)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        watch.start()
        said = wait_until(
            lambda: _new_lines(operator, seen, f"!!! {server} ({title}", "killed by SIGKILL"),
            timeout=30,
            what=f"up's line on the terminal about {server}",
        )
        said_after = time.monotonic() - killed
        watch.finish()
        load.wait_for(5)
    print(
        f"{server}: said after {said_after:.1f} s; 503 naming it {watch.named_down};"
        f" ready again {watch.recovered}; {len(load.registrations)} registrations,"
        f" {load.refused} attempts refused and retried"
    )

    assert said_after < AT_ONCE_S, f"the line came {said_after:.1f} s after the kill"
    [line] = said
    assert "(1 time in the last 2 minutes); restarting in 1 s on the same port" in line, line
    server_log = operator.read_state()
    assert server_log["processes"][server]["restarts"] == 1
    assert server_log["processes"][server]["last_exit_code"] == -signal.SIGKILL
    assert operator.pid(server) != pid
    # Back where every service was told to find it.
    assert server_log["database_url"] == state_before["database_url"]
    assert server_log["nats_url"] == state_before["nats_url"]
    assert set(watch.named_down) == set(SERVICES), f"not every service named {server} down"
    late = {s: t for s, t in watch.named_down.items() if t > AT_ONCE_S}
    assert not late, f"503 naming {server} came late: {late}"
    account = operator.account(mail_at_least_once=mail_at_least_once)
    print(
        account, f"(at rest after {operator.settled_in_s:.1f} s; last waited on: {operator.unrest})"
    )


def test_postgresql_killed_under_up_is_restarted_and_loses_nothing(operator: Operator) -> None:
    # A mail the SMTP server accepted just before PostgreSQL went may go out once more under
    # its Message-ID (the runbook's topology section): counted, not refused.
    _kill_server(operator, "postgres", "the embedded PostgreSQL on port", mail_at_least_once=True)
    log = (operator.data_dir / "postgres" / "postgres.log").read_text(errors="replace")
    assert '"message": "server exited"' in log, "the exit is not in PostgreSQL's own log"
    # The runbook's query for a lock holder (WeerbaarServerErrors, database_bezet) runs as given.
    operator.runbook_sql(
        "SELECT pid, state, xact_start, query FROM pg_stat_activity"
        " WHERE state = 'idle in transaction'"
    )


def test_nats_killed_under_up_is_restarted_and_loses_nothing(operator: Operator) -> None:
    _kill_server(operator, "nats", "the embedded NATS server on ports")
    log = (operator.data_dir / "nats" / "nats-server.log").read_text(errors="replace")
    assert '"message": "server exited"' in log, "the exit is not in NATS's own log"


def test_a_rolling_restart_under_load_loses_nothing(operator: Operator) -> None:
    """Each service process stopped in turn (SIGTERM, as a release replaces it); the next only
    once ``up`` has started it again and it answers ``/health/ready``."""
    seen = len(operator.terminal_lines())
    with operator.load() as load:
        load.wait_for(3)
        for service in SERVICES:
            old = operator.pid(service)
            started = time.monotonic()
            os.kill(old, signal.SIGTERM)
            wait_until(
                lambda s=service, o=old: (
                    operator.read_state()["processes"][s]["pid"]
                    not in (
                        None,
                        o,
                    )
                ),
                timeout=60,
                what=f"up to start {service} again",
            )
            operator.wait_ready((service,), timeout=60)
            print(f"{service}: back and ready after {time.monotonic() - started:.1f} s")
            load.wait_for(1, timeout=60)
    for service in SERVICES:
        assert _new_lines(operator, seen, f"!!! {service} exited"), f"{service}'s exit not said"
    print(f"{len(load.registrations)} registrations, {load.refused} attempts refused and retried")
    account = operator.account()
    print(
        account, f"(at rest after {operator.settled_in_s:.1f} s; last waited on: {operator.unrest})"
    )
