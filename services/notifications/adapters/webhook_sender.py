"""Sends due webhook deliveries: one signed POST per attempt, the outcome on record.

Success is a 2xx answer. Anything else — another status, a timeout, a refused connection, a
redirect (never followed), a callback host that does not resolve (``dns_fout``) or resolves to an
address not allowed (``prive_adres``: then no connection is made) — is a failed attempt, retried
on the schedule. Logs and the delivery log carry codes, never bodies or secrets.
"""

from __future__ import annotations

import logging
import ssl
import time
from datetime import timedelta

import httpx

from services.notifications.adapters.webhook_transport import (
    AdresGeweigerd,
    CheckedTransport,
    Resolver,
    attempt_deadline,
    system_resolver,
)
from services.notifications.application import Webhooks
from services.notifications.domain.webhooks import Claim, Uitkomst, signature
from shared.platform.model import Clock

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/cloudevents+json"


def _fout(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "verbinding_mislukt"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocolfout"
    return "http_fout"


class WebhookSender:
    """The worker: claim what is due, POST it, record the attempt."""

    def __init__(
        self,
        webhooks: Webhooks,
        clock: Clock,
        *,
        timeout_s: float,
        allow_private: bool,
        batch: int = 20,
        resolver: Resolver = system_resolver,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self.webhooks = webhooks
        self.clock = clock
        self.timeout_s = timeout_s
        self.batch = batch
        # Every connection resolves the host once and goes to the address it checked; with a
        # transport of its own the client also ignores proxy settings from the environment
        # (through a proxy, the proxy's address would be the one checked).
        self.transport = CheckedTransport(resolver, allow_private=allow_private, verify=verify)
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            transport=self.transport,
            headers={"User-Agent": "weerbaar-webhooks/1"},
        )

    @property
    def deadline_s(self) -> float:
        """The longest one attempt takes, however slowly the receiver answers."""
        return self.timeout_s * 2

    def run_once(self) -> int:
        """Attempt every delivery that is due now; returns the number of attempts."""
        # Held well beyond one attempt's deadline, so a claim never expires mid-attempt.
        hold = timedelta(seconds=self.deadline_s + self.timeout_s + 30)
        claims = self.webhooks.claim_due(self.clock.now(), self.batch, hold)
        for claim in claims:
            self.attempt(claim)
        return len(claims)

    def attempt(self, claim: Claim) -> None:
        """One attempt of one delivery."""
        key = self.webhooks.secret_of(claim)
        if key is None:
            self.webhooks.vervallen(claim)
            return
        now = self.clock.now()
        started = time.monotonic()
        try:
            uitkomst = self._post(claim, key, int(now.timestamp()))
        except Exception:
            # A bug, not the receiver: loud in the log, and a counted attempt so that the
            # delivery does not come back every interval for ever.
            log.exception(
                "webhook attempt crashed", extra={"bezorging_id": str(claim.bezorging_id)}
            )
            uitkomst = Uitkomst(False, 0, fout="interne_fout")
        uitkomst = Uitkomst(
            uitkomst.geslaagd,
            int((time.monotonic() - started) * 1000),
            uitkomst.status_code,
            uitkomst.fout,
        )
        log.info(
            "webhook attempt",
            extra={
                "bezorging_id": str(claim.bezorging_id),
                "abonnement_id": str(claim.abonnement_id),
                "poging": claim.pogingen + 1,
                "geslaagd": uitkomst.geslaagd,
                "reden": None if uitkomst.geslaagd else uitkomst.reden,
                "duur_ms": uitkomst.duur_ms,
            },
        )
        self.webhooks.record_attempt(claim, uitkomst, self.clock.now())

    def _post(self, claim: Claim, key: bytes, timestamp: int) -> Uitkomst:
        headers = {
            "Content-Type": CONTENT_TYPE,
            "webhook-id": claim.event_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": signature(key, claim.event_id, timestamp, claim.body),
        }
        try:
            # Streamed and never read: what the receiver answers beyond its status is not ours.
            with (
                attempt_deadline(self.deadline_s),
                self.client.stream(
                    "POST", claim.callback_url, content=claim.body, headers=headers
                ) as response,
            ):
                status = response.status_code
        except AdresGeweigerd as exc:
            # Nothing was sent: the host did not resolve, or to an address not allowed.
            return Uitkomst(False, 0, fout=exc.reden)
        except httpx.HTTPError as exc:
            return Uitkomst(False, 0, fout=_fout(exc))
        return Uitkomst(200 <= status < 300, 0, status_code=status)

    def close(self) -> None:
        """Close the HTTP client."""
        self.client.close()
