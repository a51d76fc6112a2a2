"""Wiring every service's composition root needs: auth, readiness, contexts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

import nats
from fastapi import FastAPI, Request

from shared.access import opaque_actor_id, record_refusal
from shared.auth import (
    Auth,
    HmacTokenVerifier,
    OidcTokenVerifier,
    Principal,
    Role,
    TokenVerifier,
    issue_token,
    load_or_create_secret,
)
from shared.consumer import Delivery
from shared.eventstore import Clock, Context, ServiceApplication
from shared.http import add_readiness_check
from shared.settings import AuthMode, Settings

log = logging.getLogger(__name__)


def token_verifier(settings: Settings) -> TokenVerifier:
    """The verifier for the configured auth mode."""
    if settings.auth_mode is AuthMode.OIDC:
        if settings.oidc_jwks_url is None:
            raise SystemExit("weerbaar: setting WEERBAAR_OIDC_JWKS_URL is required in oidc mode")
        return OidcTokenVerifier(
            str(settings.oidc_jwks_url), issuer=settings.jwt_issuer, audience=settings.jwt_audience
        )
    return HmacTokenVerifier(
        load_or_create_secret(settings.secret_file),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )


def service_token(settings: Settings, service: str) -> Callable[[], str]:
    """A provider of short-lived tokens with which this service calls another's internal API."""
    if settings.auth_mode is not AuthMode.EMBEDDED:
        raise SystemExit("weerbaar: service-to-service tokens need WEERBAAR_AUTH_MODE=embedded")
    secret = load_or_create_secret(settings.secret_file)

    def provide() -> str:
        return issue_token(
            secret,
            role=Role.dienst,
            sub=f"svc-{service}",
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl=timedelta(minutes=5),
        )

    return provide


def make_auth(settings: Settings, app: ServiceApplication) -> Auth:
    """Auth whose refusals are recorded as ToegangGeweigerd in the service's own event store."""
    return Auth(token_verifier(settings), on_refused=lambda refusal: record_refusal(app, refusal))


def add_standard_readiness(api: FastAPI, app: ServiceApplication, settings: Settings) -> None:
    """Readiness checks on PostgreSQL and NATS."""

    async def postgres() -> None:
        def ping() -> None:
            with app.datastore.get_connection() as conn:
                conn.execute("SELECT 1")

        await asyncio.wait_for(asyncio.to_thread(ping), timeout=3)

    async def nats_check() -> None:
        nc = await nats.connect(
            servers=settings.nats_servers, connect_timeout=2, max_reconnect_attempts=0
        )
        try:
            await nc.jetstream().account_info()
        finally:
            await nc.close()

    add_readiness_check(api, "postgres", postgres)
    add_readiness_check(api, "nats", nats_check)


def request_context(request: Request, principal: Principal | None, clock: Clock) -> Context:
    """The context of a change asked for over HTTP."""
    trace_id = getattr(request.state, "trace_id", None)
    correlation = request.headers.get("X-Correlation-Id") or trace_id
    return Context(
        now=clock.now(),
        actor_id=opaque_actor_id(principal.sub) if principal else None,
        actor_role=_role_of(principal),
        correlation_id=correlation[:128] if correlation else None,
    )


def _role_of(principal: Principal | None) -> str | None:
    if principal is None:
        return "aanvrager"
    return ",".join(sorted(role.value for role in principal.roles)) or None


def delivery_context(delivery: Delivery, clock: Clock, service: str) -> Context:
    """The context of a change a consumed event caused."""
    envelope = delivery.envelope
    return Context(
        now=clock.now(),
        actor_id=f"svc-{service}",
        actor_role="systeem",
        correlation_id=envelope.correlationid or envelope.id,
        causation_id=envelope.id,
    )


def periodic(
    name: str, interval_s: float, step: Callable[[], object]
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """A worker that runs a blocking step every interval until stopped; errors are logged."""

    async def worker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await asyncio.to_thread(step)
            except Exception:
                log.exception("worker step failed", extra={"worker": name})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval_s)

    worker.__name__ = name
    return worker
