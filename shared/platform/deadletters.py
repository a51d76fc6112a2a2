"""Dead letters: what a consumer could not process, for operators to inspect and re-drive."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import nats
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from shared.contracts.envelope import CloudEvent
from shared.contracts.registry import from_cloudevent
from shared.platform.consumer import Delivery, Poison, Subscription
from shared.platform.eventstore import AlreadyProcessed
from shared.platform.settings import Settings

log = logging.getLogger(__name__)


async def list_deadletters(settings: Settings, limit: int = 1000) -> list[dict[str, Any]]:
    """Every dead letter with its reason, consumer, original subject and attempts (no payload)."""
    nc = await nats.connect(servers=settings.nats_servers, name="weerbaar-deadletters")
    try:
        js = nc.jetstream(timeout=10)
        info = await js.stream_info(settings.deadletter_stream_name)
        letters: list[dict[str, Any]] = []
        first, last = info.state.first_seq, info.state.last_seq
        for seq in range(max(first, 1), last + 1):
            if len(letters) >= limit:
                break
            try:
                msg = await js.get_msg(settings.deadletter_stream_name, seq)
            except NotFoundError:
                continue
            headers = msg.headers or {}
            letters.append(
                {
                    "sequence": seq,
                    "consumer": headers.get("Weerbaar-Consumer"),
                    "reason": headers.get("Weerbaar-Reason"),
                    "original_subject": headers.get("Weerbaar-Original-Subject"),
                    "stream_sequence": headers.get("Weerbaar-Stream-Sequence"),
                    "attempts": headers.get("Weerbaar-Attempts"),
                    "failed_at": headers.get("Weerbaar-Failed-At"),
                }
            )
        return letters
    finally:
        await nc.close()


class RedriveError(Exception):
    """A dead letter that cannot be re-driven (unknown, or not a message any handler accepts)."""


@dataclass(frozen=True)
class DeadLetter:
    """One dead letter: the original message and why it was given up on."""

    sequence: int
    subject: str
    consumer: str
    reason: str
    stream_sequence: int
    attempts: int
    data: bytes

    @property
    def service(self) -> str:
        """The service whose consumer gave up (durable names are ``<service>-<purpose>``)."""
        return self.consumer.split("-", 1)[0]


async def _fetch(js: JetStreamContext, settings: Settings, sequence: int) -> DeadLetter:
    try:
        msg = await js.get_msg(settings.deadletter_stream_name, sequence)
    except NotFoundError:
        raise RedriveError(f"no dead letter with sequence {sequence}") from None
    headers = msg.headers or {}
    return DeadLetter(
        sequence=sequence,
        subject=msg.subject or "",
        consumer=headers.get("Weerbaar-Consumer", ""),
        reason=headers.get("Weerbaar-Reason", ""),
        stream_sequence=int(headers.get("Weerbaar-Stream-Sequence", "0")),
        attempts=int(headers.get("Weerbaar-Attempts", "0")),
        data=msg.data or b"",
    )


async def fetch_deadletter(settings: Settings, sequence: int) -> DeadLetter:
    """The dead letter at ``sequence`` of the dead-letter stream."""
    nc = await nats.connect(servers=settings.nats_servers, name="weerbaar-deadletters")
    try:
        return await _fetch(nc.jetstream(timeout=10), settings, sequence)
    finally:
        await nc.close()


async def _remove(js: JetStreamContext, settings: Settings, letter: DeadLetter) -> None:
    # Each letter has a subject of its own (consumer + original sequence), so purging that
    # subject removes exactly this letter (the stream allows purges, not deletes).
    await js.purge_stream(settings.deadletter_stream_name, subject=letter.subject)


async def remove_deadletter(settings: Settings, sequence: int) -> DeadLetter:
    """Remove a dead letter that will never be applied (e.g. a message that is not ours)."""
    nc = await nats.connect(servers=settings.nats_servers, name="weerbaar-deadletters")
    try:
        js = nc.jetstream(timeout=10)
        letter = await _fetch(js, settings, sequence)
        await _remove(js, settings, letter)
        log.warning(
            "dead letter removed",
            extra={"sequence": sequence, "consumer": letter.consumer, "reason": letter.reason},
        )
        return letter
    finally:
        await nc.close()


async def redrive(
    settings: Settings, service: str, subscriptions: Sequence[Subscription], sequence: int
) -> Literal["applied", "already_applied"]:
    """Hand a dead letter to its consumer's handler once more; remove it when that succeeds.

    Run by the service that owns the consumer (``python -m services.<svc> --redrive SEQ``, which
    ``weerbaar deadletters redrive SEQ`` starts), after the cause was fixed. The handler records
    the message id in the inbox with its effect, so a letter whose effect was applied meanwhile is
    not applied twice. When the handler fails again the letter stays (``RedriveError``, one line;
    the stack trace goes to the log).
    """
    nc = await nats.connect(servers=settings.nats_servers, name=f"{service}-redrive")
    try:
        js = nc.jetstream(timeout=10)
        letter = await _fetch(js, settings, sequence)
        purpose = letter.consumer.removeprefix(f"{service}-")
        matching = [s for s in subscriptions if s.purpose == purpose]
        if letter.service != service or not matching:
            raise RedriveError(f"dead letter {sequence} belongs to consumer {letter.consumer!r}")
        try:
            envelope = CloudEvent.from_json(letter.data)
            event = from_cloudevent(envelope)
        except Exception:
            raise RedriveError(
                f"dead letter {sequence} is not a valid event ({letter.reason}); it can only be"
                " removed: weerbaar deadletters remove"
            ) from None
        delivery = Delivery(
            envelope=envelope,
            event=event,
            stream_sequence=letter.stream_sequence,
            attempt=letter.attempts + 1,
        )
        outcome: Literal["applied", "already_applied"] = "applied"
        try:
            await asyncio.to_thread(matching[0].handler, delivery)
        except AlreadyProcessed:
            outcome = "already_applied"
        except Poison as poison:
            raise RedriveError(
                f"dead letter {sequence}: its handler refuses it again ({poison.reason}); the"
                " letter stays (remove it when it cannot be applied)"
            ) from None
        except Exception as exc:
            log.exception(
                "dead letter re-drive failed",
                extra={"sequence": sequence, "consumer": letter.consumer},
            )
            raise RedriveError(
                f"dead letter {sequence}: the handler failed again ({type(exc).__name__}); the"
                " letter stays; the log line 'dead letter re-drive failed' has the stack trace"
            ) from None
        await _remove(js, settings, letter)
        log.info(
            "dead letter re-driven",
            extra={"sequence": sequence, "consumer": letter.consumer, "outcome": outcome},
        )
        return outcome
    finally:
        await nc.close()
