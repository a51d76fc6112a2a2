"""The public event stream, as the portal reads it: a core NATS subscription to every public
subject, only new messages, no consumer state on the server (the portal owns no events and
publishes none).

Only the subject is read (``weerbaar.<service>.<EventName>.<aanvraag_id>``); the message's
contents are never decoded. When NATS cannot be reached the portal serves every page as
before, only nothing is live; this keeps trying in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from services.portal.application.live import ALLE_ONDERWERPEN, Verdeler, uit_onderwerp

log = logging.getLogger("weerbaar.portal.live")

#: Between attempts to reach NATS at first (after that the client reconnects by itself).
OPNIEUW_S = 2.0


class NatsLuisteraar:
    """Feeds the stream's subjects to the ``Verdeler`` (started and stopped with the app)."""

    def __init__(self, servers: list[str], verdeler: Verdeler) -> None:
        self.servers = servers
        self.verdeler = verdeler
        self._taak: asyncio.Task[None] | None = None
        self._nc: NatsClient | None = None

    @property
    def verbonden(self) -> bool:
        """Whether the stream is being read now."""
        return self._nc is not None and self._nc.is_connected

    async def start(self) -> None:
        """Connect in the background (the portal starts whether NATS answers or not)."""
        self._taak = asyncio.create_task(self._verbind(), name="portal-live")

    async def stop(self) -> None:
        """Stop trying, and close the connection."""
        if self._taak is not None:
            self._taak.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._taak
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()

    async def _verbind(self) -> None:
        gemeld = False

        async def stil(exc: Exception) -> None:
            log.debug("nats connection error", extra={"error": type(exc).__name__})

        while True:
            try:
                nc = await nats.connect(
                    servers=self.servers,
                    name="weerbaar-portal-live",
                    connect_timeout=2,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=1,
                    error_cb=stil,
                )
            except (OSError, nats.errors.Error) as exc:
                if not gemeld:
                    # Host names only at most: a server URL may carry credentials.
                    log.warning(
                        "event stream not reachable: pages are not live",
                        extra={"error": type(exc).__name__},
                    )
                    gemeld = True
                await asyncio.sleep(OPNIEUW_S)
                continue
            self._nc = nc
            await nc.subscribe(ALLE_ONDERWERPEN, cb=self._ontvangen)
            log.info("reading the event stream: pages are live")
            return

    async def _ontvangen(self, msg: Msg) -> None:
        gebeurtenis = uit_onderwerp(msg.subject)
        if gebeurtenis is not None:
            self.verdeler.verdeel(gebeurtenis)
