"""Scenario 6: malformed messages on subscribed subjects go to the dead letters (with the reason,
the consumer and the attempts) while every dossier keeps flowing."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any

import nats
import pytest

from tests.faults import harness
from tests.faults.harness import DOSSIERS, RunLog
from tests.support import stream_messages


def poison_messages() -> list[tuple[str, bytes]]:
    """(subject, payload): not JSON; JSON but no CloudEvent; a CloudEvent whose data is wrong."""
    dossier = str(uuid.uuid4())
    envelope: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "urn:nl:weerbaarbestuur:intake",
        "type": "nl.weerbaarbestuur.AanvraagIngediend.v1",
        "subject": dossier,
        "time": "2026-01-05T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {"aanvraag_id": dossier},
    }
    return [
        (f"weerbaar.intake.AanvraagIngediend.{dossier}", b"{not json"),
        (f"weerbaar.approval.RapportGoedgekeurd.{dossier}", json.dumps({"hello": 1}).encode()),
        (f"weerbaar.intake.AanvraagIngediend.{dossier}", json.dumps(envelope).encode()),
    ]


async def _publish(nats_url: str, messages: list[tuple[str, bytes]]) -> list[tuple[str, str]]:
    """Publish; (stream sequence, durable) for every consumer whose filter takes a message."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        sequences = []
        for index, (subject, payload) in enumerate(messages):
            ack = await js.publish(subject, payload, headers={"Nats-Msg-Id": f"poison-{index}"})
            sequences.append(ack.seq)
        takers = []
        for info in await js.consumers_info("WEERBAAR"):
            config = info.config
            filters = config.filter_subjects or (
                [config.filter_subject] if config.filter_subject else []
            )
            for (subject, _), seq in zip(messages, sequences, strict=True):
                if any(_matches(f, subject) for f in filters):
                    takers.append((str(seq), str(config.durable_name)))
        return takers
    finally:
        await nc.close()


def _matches(pattern: str, subject: str) -> bool:
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


@pytest.mark.timeout(harness.budget_s())
def test_poison_goes_to_the_dead_letters_and_everything_else_flows() -> None:
    messages = poison_messages()
    takers: list[tuple[str, str]] = []

    def poison(log: RunLog, done: threading.Event) -> None:
        world = log.world
        if not harness.wait_progress(log, 1 / 2, done, DOSSIERS):
            return
        fault = world.fault("poison_published", "stream")
        takers.extend(asyncio.run(_publish(world.nats_url, messages)))
        world.healed(fault)

    with harness.world("poison") as world:
        model = harness.fault_free_model(world)
        log = harness.drive(world, DOSSIERS - 2, fault=poison)
        findings = harness.check(
            world, log, model, ignore_subjects=frozenset(s for s, _ in messages)
        )
        letters = stream_messages(world.nats_url, "WEERBAAR_DEADLETTER")
        body = harness.report(
            "6-poison",
            world,
            log,
            findings,
            poison_published=len(messages),
            dead_letters=len(letters),
            dead_letter_reasons=sorted({m.headers["Weerbaar-Reason"] for m in letters}),
        )
    print(harness.summary(body))
    assert findings.problems() == {}
    assert findings.completed == DOSSIERS - 2
    # Each poison message reached the dead letters once per consumer that takes its subject,
    # with the reason, the consumer, the subject and the attempts; nothing else did.
    got = sorted(
        (m.headers["Weerbaar-Stream-Sequence"], m.headers["Weerbaar-Consumer"]) for m in letters
    )
    assert takers and got == sorted(takers)
    subjects = {s for s, _ in messages}
    for letter in letters:
        assert letter.headers["Weerbaar-Reason"].startswith(("invalid_cloudevent", "invalid_event"))
        assert letter.headers["Weerbaar-Original-Subject"] in subjects
        # Poison is never retried: it cannot become valid (the configured attempts are for
        # handlers that fail, shown by tests/integration/test_consumer.py).
        assert letter.headers["Weerbaar-Attempts"] == "1"
