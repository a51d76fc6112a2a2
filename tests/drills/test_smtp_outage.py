"""Drill: an SMTP outage (the runbook's WeerbaarMailFailing), under ``./weerbaar up``.

``up`` is given an SMTP server of the drill's own (``WEERBAAR_SMTP_HOST``/``_PORT``: a mail
catcher the drill stops and starts on the same port), so the relay can really be down. What is
real: the outages (seconds of refused connections, in real time), the services, their retries,
the failed-mail list, ``weerbaar mail resend``. What is scaled: the retry schedule
(``WEERBAAR_MAIL_RETRY_SCHEDULE_S``), 1, 2 and 4 s instead of the default ~28 hours, without
jitter. The ten-minute outage against the default-shaped schedule runs with a driven clock in
``tests/integration/test_notifications_process.py``.

An outage shorter than the schedule loses nothing; one longer than it leaves the mails failed with
their ``reden_code``, and once the relay is back each is sent again and received once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.drills.operator import Operator
from tests.support import wait_until
from tools.embedded import free_port
from tools.mailcatcher import MailCatcher

pytestmark = pytest.mark.e2e

SCHEDULE = "[1, 2, 4]"


@pytest.fixture(scope="module")
def catcher(drill_dir: Path) -> Iterator[MailCatcher]:
    """The SMTP relay of the drill, on a port of its own it comes back on."""
    running = MailCatcher(drill_dir / "mail", port=free_port())
    running.start()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def operator(drill_dir: Path, catcher: MailCatcher) -> Iterator[Operator]:
    """``up`` sending through the drill's relay, with the scaled retry schedule."""
    running = Operator(
        drill_dir / "data",
        env={
            "WEERBAAR_SMTP_HOST": "127.0.0.1",
            "WEERBAAR_SMTP_PORT": str(catcher.port),
            "WEERBAAR_MAIL_RETRY_SCHEDULE_S": SCHEDULE,
            "WEERBAAR_MAIL_RETRY_JITTER": "0",
        },
        mail_dir=catcher.directory,
    )
    running.up()
    try:
        yield running
    finally:
        running.down()


def _notifications(operator: Operator, status: str, dossiers: list[str]) -> list[dict[str, Any]]:
    """The failed-mail list (or the planned one) as the runbook asks for it, for ``dossiers``."""
    answer = httpx.get(
        f"{operator.url('notifications')}/notificaties",
        params={"status": status},
        headers=operator.headers("secretariaat"),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return [row for row in answer.json() if row["aanvraag_id"] in dossiers]


def test_an_outage_shorter_than_the_schedule_loses_no_mail(
    operator: Operator, catcher: MailCatcher
) -> None:
    operator.register_many(2)
    before = operator.account()

    catcher.stop()
    during = operator.register_many(2)
    retried = wait_until(
        lambda: (
            [
                row
                for row in _notifications(operator, "gepland", during)
                if row["reden_code"] == "connection_refused"
            ]
            if len(_notifications(operator, "gepland", during)) == 2
            else None
        ),
        timeout=30,
        what="the mails being retried, with the reason of their last attempt",
    )
    print(f"being retried during the outage: {retried}")
    catcher.start()

    after = operator.account()
    assert after.mails == before.mails + 2
    assert _notifications(operator, "mislukt", during) == []


def test_an_outage_longer_than_the_schedule_leaves_failed_mail_that_is_resent_once(
    operator: Operator, catcher: MailCatcher
) -> None:
    before = operator.account()
    catcher.stop()
    during = operator.register_many(2)
    failed = wait_until(
        lambda: (rows := _notifications(operator, "mislukt", during)) and len(rows) == 2 and rows,
        timeout=60,
        what="both mails failed after the schedule's last attempt",
    )
    print(f"failed: {failed}")
    assert {(row["pogingen"], row["reden_code"]) for row in failed} == {(4, "connection_refused")}
    catcher.start()
    # Nothing goes out by itself once the schedule is over.
    assert operator.account().mails == before.mails

    first, second = failed
    operator.runbook(
        "weerbaar mail resend <notificatie_id>", **{"<notificatie_id>": first["notificatie_id"]}
    )
    # The other from the API, as the secretariaat does.
    answer = httpx.post(
        f"{operator.url('notifications')}/notificaties/{second['notificatie_id']}/opnieuw",
        headers=operator.headers("secretariaat", sub="secretariaat-drill"),
        timeout=10,
    )
    assert answer.status_code == 202, answer.text

    after = operator.account()
    assert after.mails == before.mails + 2
    assert _notifications(operator, "mislukt", during) == []
    sent = _notifications(operator, "verzonden", during)
    assert {row["notificatie_id"] for row in sent} == {
        first["notificatie_id"],
        second["notificatie_id"],
    }
    print(after)
