"""Wiring every service's composition root needs: auth, readiness, contexts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any, Final

import nats
from fastapi import FastAPI, Request
from nats.js.errors import NotFoundError

from shared.platform.access import (
    Refusals,
    actor_role_value,
    configure_pseudonyms,
    legacy_actor_id,
    opaque_actor_id,
)
from shared.platform.auth import (
    Auth,
    HmacTokenVerifier,
    OidcTokenVerifier,
    Principal,
    Refusal,
    Role,
    TokenVerifier,
    issue_token,
    load_or_create_secret,
)
from shared.platform.consumer import Delivery
from shared.platform.eventstore import ServiceApplication
from shared.platform.http import (
    READINESS_TIMEOUT_SECONDS,
    add_readiness_check,
    add_readiness_detail,
)
from shared.platform.logging import trace_id_var
from shared.platform.model import Clock, Context
from shared.platform.servicetokens import ClientCredentials, read_client_secret
from shared.platform.settings import SERVICES, AuthMode, Settings
from shared.platform.stream_tail import tail_check, watch_stream_tail
from shared.platform.telemetry import relay_state
from shared.platform.throttle import client_source

log = logging.getLogger(__name__)


def token_verifier(settings: Settings) -> TokenVerifier:
    """The verifier for the configured auth mode."""
    if settings.auth_mode is AuthMode.OIDC:
        if settings.oidc_jwks_url is None:
            raise SystemExit("weerbaar: setting WEERBAAR_OIDC_JWKS_URL is required in oidc mode")
        return OidcTokenVerifier(
            str(settings.oidc_jwks_url),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway=timedelta(seconds=settings.oidc_leeway_s),
            service_clients={
                settings.oidc_client_id(service): f"svc-{service}" for service in SERVICES
            },
        )
    return HmacTokenVerifier(
        load_or_create_secret(settings.secret_file),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )


def service_token(settings: Settings, service: str) -> Callable[[], str]:
    """A provider of short-lived tokens with which this service calls another's internal API:
    in OIDC mode the provider's, by the client credentials grant with the service's own client
    (``shared.platform.servicetokens``); embedded, signed with the local secret."""
    if settings.auth_mode is AuthMode.OIDC:
        return ClientCredentials(
            settings.jwt_issuer,
            settings.oidc_client_id(service),
            read_client_secret(settings.oidc_client_secret_path(service)),
            settings.jwt_audience,
            token_url=None if settings.oidc_token_url is None else str(settings.oidc_token_url),
        )
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


def make_auth(
    settings: Settings,
    app: ServiceApplication,
    with_dossier: Callable[[Refusal], Refusal] | None = None,
    clock: Clock | None = None,
) -> Auth:
    """Auth whose refusals are recorded as ToegangGeweigerd in the service's own event store
    (``shared.platform.access.Refusals``: anonymous attempts counted, the actors' pseudonyms made
    with the deployment's key; windows by ``clock``). ``with_dossier`` names the dossier of a
    refusal whose path names another id (a report, an appointment), so the dossier's audit trail
    shows it."""
    configure_pseudonyms(settings.pseudonym_key_path)
    refusals = Refusals(
        app,
        settings.anonymous_refusal_window_s,
        settings.anonymous_requests_per_minute,
        now=(clock or Clock()).now,
    )

    def on_refused(refusal: Refusal) -> None:
        refusals(refusal if with_dossier is None else with_dossier(refusal))

    return Auth(
        token_verifier(settings),
        on_refused=on_refused,
        source_of=lambda request: client_source(request, settings.trusted_proxies),
        refusals=refusals,
    )


#: What each readiness check allows its dependency, below ``READINESS_TIMEOUT_SECONDS``: the check
#: ends by itself (a thread that waited on the pool, a NATS connection) rather than being left
#: behind when the endpoint gives up on it, so probes of a server that is down do not pile up.
READINESS_DEPENDENCY_TIMEOUT_S: Final = 0.8 * READINESS_TIMEOUT_SECONDS


class _BrokerProbe:
    """Asks NATS once per readiness round whether it answers and the stream exists; the
    ``nats`` and ``stream`` checks of that round share the answer (one connection)."""

    def __init__(self, settings: Settings, timeout_s: float) -> None:
        self.settings = settings
        self.timeout_s = timeout_s
        self._asking: asyncio.Task[bool] | None = None

    async def stream_exists(self) -> bool:
        """Whether the stream exists; raises when NATS does not answer."""
        if self._asking is None or self._asking.done():
            self._asking = asyncio.ensure_future(self._ask())
        # Shielded: one check timing out must not cancel the other's answer.
        return await asyncio.shield(self._asking)

    async def _ask(self) -> bool:
        # nats-py tries the servers of a first connect in a loop that ends only once each was
        # tried more than ``max_reconnect_attempts`` times (0 never ends: it waited out the whole
        # readiness timeout, 2 s between tries). So: each server tried twice, 50 ms apart; one
        # that accepts but says nothing fails within the connect timeout.
        nc = await nats.connect(
            servers=self.settings.nats_servers,
            connect_timeout=self.timeout_s,
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.05,
            error_cb=_quiet,
        )
        try:
            js = nc.jetstream(timeout=self.timeout_s)
            await js.account_info()
            try:
                await js.stream_info(self.settings.stream_name)
            except NotFoundError:
                return False
            return True
        finally:
            await nc.close()


def add_standard_readiness(api: FastAPI, app: ServiceApplication, settings: Settings) -> None:
    """Readiness checks on PostgreSQL, NATS and the stream, each bounded (a server that is down
    fails it within ``READINESS_DEPENDENCY_TIMEOUT_S``); the details of a stopped relay and of a
    stream ahead of the store, and the latter's gauge (``shared.platform.stream_tail``)."""
    timeout = READINESS_DEPENDENCY_TIMEOUT_S

    async def postgres() -> None:
        def ping() -> None:
            datastore = app.datastore
            datastore.pool.open(wait=False)
            # The pool's own wait for a connection is the datastore's connect timeout (5 s by
            # default, and every attempt of it fails while the server is down): wait less here.
            with datastore.pool.connection(timeout=timeout) as conn:
                conn.execute("SELECT 1")

        await asyncio.wait_for(asyncio.to_thread(ping), timeout=timeout)

    broker = _BrokerProbe(settings, timeout)

    async def nats_check() -> None:
        await broker.stream_exists()

    async def stream_check() -> None:
        if not await broker.stream_exists():
            raise LookupError(f"stream {settings.stream_name} does not exist")

    async def relay() -> dict[str, Any] | None:
        # Read from PostgreSQL: the relay may run in another process of the service.
        state = await asyncio.to_thread(relay_state, app, timeout)
        if state is None or state.stopped_at is None:
            return None
        return {
            "gestopt_bij": state.stopped_at,
            "gebeurtenis": state.stopped_type,
            "reden": state.stopped_reason,
            "sinds": state.stopped_since,
            "wat_te_doen": "weerbaar relay status; na een release die het kan: weerbaar relay"
            " resume",
        }

    async def stream_vs_store() -> dict[str, Any] | None:
        # Reported, not failed: the service serves correctly from its database; what is wrong
        # is the stream, which taking replicas out of the load balancer cannot mend.
        tail = await tail_check(app, settings, timeout)
        return None if tail is None else tail.detail()

    add_readiness_check(api, "postgres", postgres)
    add_readiness_check(api, "nats", nats_check)
    # A server that answers without the stream publishes and delivers nothing (lost store,
    # stream deleted): not ready until ``weerbaar stream-rebuild`` or ``provision``.
    add_readiness_check(api, "stream", stream_check)
    add_readiness_detail(api, "relay", relay)
    add_readiness_detail(api, "stream", stream_vs_store)
    watch_stream_tail(app, settings, timeout)


async def _quiet(_: Exception) -> None:
    # The readiness check reports the failure itself (a 503 naming it, one log line).
    return None


#: A correlation id a caller may choose: a UUID (any case, with or without hyphens) or 16 to 64
#: hex digits (a W3C trace id). Anything else could be a name or an address, and is replaced.
OPAQUE_CORRELATION: Final = re.compile(
    r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    r"|[0-9A-Fa-f]{16,64}"
)


def correlation_of(request: Request) -> str:
    """The request's correlation id: the caller's ``X-Correlation-Id`` when it is opaque, else
    one made here (the answer's ``X-Correlation-Id`` header says which, see
    ``shared.platform.http``)."""
    chosen = getattr(request.state, "correlation_id", None)
    if isinstance(chosen, str):
        return chosen
    offered = request.headers.get("X-Correlation-Id")
    correlation = offered if offered is not None and OPAQUE_CORRELATION.fullmatch(offered) else None
    if correlation is None:
        # The request's trace id (also in every log line of the request), else a new one.
        correlation = trace_id_var.get() or uuid.uuid4().hex
    request.state.correlation_id = correlation
    return correlation


def request_context(request: Request, principal: Principal | None, clock: Clock) -> Context:
    """The context of a change asked for over HTTP: nothing the caller sent reaches it
    unchecked (a pseudonym of the ``sub``, the roles the service knows, an opaque correlation)."""
    return Context(
        now=clock.now(),
        actor_id=opaque_actor_id(principal.sub) if principal else None,
        actor_role=_role_of(principal),
        correlation_id=correlation_of(request),
        actor_aliases=(legacy_actor_id(principal.sub),) if principal else (),
    )


def _role_of(principal: Principal | None) -> str | None:
    if principal is None:
        return "aanvrager"
    return actor_role_value({role.value for role in principal.roles})


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
