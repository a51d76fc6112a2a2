"""Dead letters: what a consumer could not process, for operators to inspect and re-drive."""

from __future__ import annotations

from typing import Any

import nats
from nats.js.errors import NotFoundError

from shared.settings import Settings


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
