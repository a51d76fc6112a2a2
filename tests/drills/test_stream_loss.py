"""Drills: the runbook's "Rebuild the NATS stream from PostgreSQL", under ``./weerbaar up``.

Twice: the ``WEERBAAR`` stream deleted on a running server (what ``nats stream rm WEERBAAR`` does,
here with nats-py: the ``nats`` CLI is not installed on these machines), and the server's whole
store wiped while NATS was down (killed, its JetStream directory removed before ``up`` starts it
again, empty). Each time every service's ``/health/ready`` fails its ``stream`` check, and
``weerbaar stream-rebuild`` brings back every stored event once, with no second effect.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time

import httpx
import nats
import pytest
from nats.js.errors import NotFoundError

from shared.platform.settings import SERVICES
from tests.drills.operator import Operator
from tests.support import wait_until

pytestmark = pytest.mark.e2e


def _stream_check_fails(operator: Operator) -> bool:
    """Every service answers 503 with the ``stream`` check failing."""
    for service in SERVICES:
        try:
            answer = operator.ready(service)
        except httpx.HTTPError:
            return False
        if answer.status_code != 503 or "stream" not in answer.json().get("failing", []):
            return False
    return True


async def _delete_stream(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        await js.delete_stream("WEERBAAR")
        with pytest.raises(NotFoundError):
            await js.stream_info("WEERBAAR")
    finally:
        await nc.close()


def test_a_deleted_stream_is_rebuilt(operator: Operator) -> None:
    operator.register_many(5)
    before = operator.account()

    asyncio.run(_delete_stream(operator.nats_url))
    wait_until(
        lambda: _stream_check_fails(operator), timeout=30, what="every service to fail `stream`"
    )

    started = time.monotonic()
    rebuilt = operator.runbook("weerbaar stream-rebuild")
    print(f"stream-rebuild: {time.monotonic() - started:.1f} s\n{rebuilt.stdout}")
    operator.wait_ready()
    after = operator.account()
    assert after == before, f"before: {before}; rebuilt: {after}"

    operator.register_many(2)
    print(operator.account())


def test_a_store_wiped_while_nats_was_down_is_rebuilt(operator: Operator) -> None:
    operator.register_many(3)
    before = operator.account()
    seen = len(operator.terminal_lines())

    os.kill(operator.pid("nats"), signal.SIGKILL)
    # Once up has seen it exit (the line on its terminal), it starts it again a second later:
    # the store goes in between.
    wait_until(
        lambda: any("!!! nats" in line for line in operator.terminal_lines()[seen:]),
        timeout=10,
        what="up to notice NATS is gone",
    )
    shutil.rmtree(operator.data_dir / "nats" / "jetstream")
    wait_until(
        lambda: operator.read_state()["processes"]["nats"]["pid"], timeout=30, what="NATS back"
    )
    wait_until(
        lambda: _stream_check_fails(operator), timeout=30, what="every service to fail `stream`"
    )

    started = time.monotonic()
    rebuilt = operator.runbook("weerbaar stream-rebuild --timeout 120")
    print(f"stream-rebuild --timeout 120: {time.monotonic() - started:.1f} s\n{rebuilt.stdout}")
    operator.wait_ready()
    after = operator.account()
    assert after == before, f"before: {before}; rebuilt: {after}"

    operator.register_many(2)
    print(operator.account())


async def _lose_the_first_messages(nats_url: str, subject: str, count: int) -> None:
    """A damaged stream store: the first ``count`` messages of a subject are gone."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        info = await js.stream_info("WEERBAAR")
        first = info.state.first_seq
        kept = first
        for _ in range(count):
            kept = (await js.get_msg("WEERBAAR", seq=kept, subject=subject, next=True)).seq + 1
        await js.purge_stream("WEERBAAR", subject=subject, seq=kept)
    finally:
        await nc.close()


def test_a_gap_in_the_stream_is_found_by_reconcile_and_rebuilt_from_scratch(
    operator: Operator,
) -> None:
    """The runbook's "Reconcile the stream with the event stores": a stream that lost part of a
    service's messages (the relay would not fill the gap by itself) is reported missing, and
    rebuilt with its deletion first."""
    operator.register_many(3)
    before = operator.account()
    clean = operator.runbook("weerbaar reconcile")
    assert "missing 0" in clean.stdout

    asyncio.run(_lose_the_first_messages(operator.nats_url, "weerbaar.intake.>", 2))
    found = operator.runbook("weerbaar reconcile", check=False)
    assert found.returncode == 1, found.stdout + found.stderr
    assert "missing 2" in found.stdout and "RUNBOOK" in found.stderr

    operator.runbook("weerbaar stream-rebuild --delete-first")
    operator.wait_ready()
    operator.runbook("weerbaar reconcile")
    after = operator.account()
    assert after == before, f"before: {before}; rebuilt: {after}"
