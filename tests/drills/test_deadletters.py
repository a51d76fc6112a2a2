"""Drill: the runbook's "Dead letters: inspect, re-drive, remove", under ``./weerbaar up``.

Something not ours is published on ``weerbaar.>`` (here: a message on a dossier's subject that is
no CloudEvent). Every consumer that reads that subject dead-letters it (``invalid_cloudevent``);
``weerbaar deadletters`` lists each, ``redrive`` refuses a letter that is not a valid event, and
``remove`` takes it away. The dossiers flow on, and nothing of ours is lost or doubled.

Then a valid event whose handler refuses it (approval's decision about a report version assessment
does not know: ``besluit_past_niet``): ``redrive`` runs assessment's handler once more, which
fails again, so the letter stays and the error is printed; it is then removed. The re-drive of a
handler that failed until its cause was fixed, applied once, needs a handler that can be broken
and mended at will: ``tests/integration/test_deadletters.py`` runs that on real NATS and
PostgreSQL with a handler of its own; a service under ``up`` has no such switch.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import nats
import pytest

from shared.contracts import events as public
from shared.contracts.registry import subject_for, to_cloudevent
from shared.platform.model import utcnow
from tests.drills.operator import Operator
from tests.support import wait_until

pytestmark = pytest.mark.e2e


async def _publish_foreign(
    nats_url: str, subject: str, msg_id: str, data: bytes = b"not a CloudEvent"
) -> None:
    nc = await nats.connect(nats_url)
    try:
        await nc.jetstream().publish(
            subject, data, stream="WEERBAAR", headers={"Nats-Msg-Id": msg_id}
        )
    finally:
        await nc.close()


def _letters(listed: str) -> list[dict[str, Any]]:
    """The dead letters ``weerbaar deadletters`` printed, one JSON object a line."""
    return [json.loads(line) for line in listed.splitlines() if line.startswith("{")]


def test_a_letter_that_is_not_ours_is_listed_refused_for_redrive_and_removed(
    operator: Operator,
) -> None:
    operator.register_many(3)
    operator.account()
    assert operator.runbook("weerbaar deadletters").stdout.strip() == "no dead letters"

    subject = f"weerbaar.intake.AanvraagIngediend.{uuid.uuid4()}"
    msg_id = f"drill-{uuid.uuid4()}"
    asyncio.run(_publish_foreign(operator.nats_url, subject, msg_id))
    # The accounting sees a message on the stream that no service stored.
    with pytest.raises(AssertionError, match="on the stream, in no store"):
        operator.account()
    operator.foreign.add(msg_id)

    letters = wait_until(
        lambda: [
            letter
            for letter in _letters(operator.runbook("weerbaar deadletters").stdout)
            if letter["original_subject"] == subject and letter["reason"] == "invalid_cloudevent"
        ],
        timeout=60,
        what="the dead letters of the foreign message",
    )
    # The alert's first step, as it is written there, lists the same letters.
    in_container = operator.runbook("python -m tools.cli deadletters").stdout
    assert _letters(in_container) == _letters(operator.runbook("weerbaar deadletters").stdout)
    print(f"dead letters: {letters}")
    consumers = [letter["consumer"] for letter in letters]
    assert len(consumers) == len(set(consumers)), f"one consumer dead-lettered it twice: {letters}"

    first = letters[0]
    refused = operator.runbook(
        "weerbaar deadletters redrive SEQ", check=False, SEQ=str(first["sequence"])
    )
    assert refused.returncode == 1
    assert "is not a valid event" in refused.stderr and "remove" in refused.stderr

    for letter in letters:
        removed = operator.runbook("weerbaar deadletters remove SEQ", SEQ=str(letter["sequence"]))
        assert f"dead letter {letter['sequence']} of {letter['consumer']} removed" in (
            removed.stdout
        )
    assert operator.runbook("weerbaar deadletters").stdout.strip() == "no dead letters"

    # Later messages of the same consumers flow.
    operator.register_many(2)
    print(operator.account())


def test_a_letter_whose_handler_fails_again_stays_when_redriven(operator: Operator) -> None:
    decision = public.RapportGoedgekeurd(
        aanvraag_id=uuid.uuid4(), rapport_id=uuid.uuid4(), versie=1, inhoud_hash="0" * 64
    )
    envelope = to_cloudevent(
        decision, id=str(uuid.uuid4()), source="urn:nl:weerbaarbestuur:approval", time=utcnow()
    )
    subject = subject_for(decision)
    asyncio.run(_publish_foreign(operator.nats_url, subject, envelope.id, envelope.to_json()))
    operator.foreign.add(envelope.id)
    operator.account()  # every consumer has handled it

    [letter] = [
        letter
        for letter in _letters(operator.runbook("weerbaar deadletters").stdout)
        if letter["original_subject"] == subject
    ]
    assert (letter["consumer"], letter["reason"]) == ("assessment-besluiten", "besluit_past_niet")

    again = operator.runbook(
        "weerbaar deadletters redrive SEQ", check=False, SEQ=str(letter["sequence"])
    )
    assert again.returncode == 1
    assert "refuses it again (besluit_past_niet); the letter stays" in again.stderr, again.stderr
    assert "Traceback" not in again.stderr, "one line for the operator, not a stack trace"
    assert _letters(operator.runbook("weerbaar deadletters").stdout) == [letter], "not kept"

    operator.runbook("weerbaar deadletters remove SEQ", SEQ=str(letter["sequence"]))
    assert operator.runbook("weerbaar deadletters").stdout.strip() == "no dead letters"
    print(operator.account())
