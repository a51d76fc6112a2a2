"""Runs one service as an OS process: its HTTP API, outbox relay, consumers and workers.

``python -m services.<name> [--role all|api|relay|consumers|workers]``. By default a process runs
every role; the roles can also run as separate processes (and several replicas of each), which is
how the tests kill a relay or a consumer on its own. SIGTERM and SIGINT stop the process cleanly:
the API finishes its requests, unacked messages return to the stream after their ack wait.

Every process of a service exposes that service's metrics: the API at its ``/metrics``, a process
without the API role on ``--metrics-port`` (or ``WEERBAAR_METRICS_PORT``) when given — one scrape
target per process, as Prometheus expects (no multiprocess mode: replicas run on other hosts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI

from shared.platform.chain import checkpointer
from shared.platform.consumer import DurableConsumer, Subscription
from shared.platform.deadletters import RedriveError, redrive
from shared.platform.eventstore import ServiceApplication
from shared.platform.logging import configure_logging
from shared.platform.model import Clock
from shared.platform.projection import AggregateProjection
from shared.platform.projection import main as replay_projection
from shared.platform.relay import Gateway, OutboxRelay, PublicationCheck
from shared.platform.replay import export_public
from shared.platform.settings import DEFAULT_PORTS, Settings, load_settings
from shared.platform.telemetry import configure_tracing, serve_metrics, shutdown_tracing
from shared.platform.wiring import periodic

log = logging.getLogger(__name__)

Worker = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
ROLES = ("api", "relay", "consumers", "workers", "checkpointer")


@dataclass
class Components:
    """What a service's composition root hands to the runtime."""

    service: str
    app: ServiceApplication
    api: FastAPI
    gateway: Gateway
    subscriptions: Sequence[Subscription] = ()
    workers: Sequence[Worker] = ()
    #: Read tables that are a function of the service's own aggregates (``replay`` rebuilds them).
    projections: Sequence[AggregateProjection[Any]] = ()
    consumers: list[DurableConsumer] = field(default_factory=list)

    def __post_init__(self) -> None:
        # The application checks every event against its public form before it records it
        # (it cannot be built without: ``ServiceApplication``); the relay publishes with
        # ``gateway``. Both must build the same public form, or the check proves nothing.
        check = self.app.publication_check
        if not isinstance(check, PublicationCheck) or check.gateway is not self.gateway:
            raise ValueError(
                f"{self.service}: the application checks its events with another gateway than"
                " the relay publishes them with"
            )


Bootstrap = Callable[[Settings, Clock], Components]


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime owns SIGTERM/SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def api_config(api: FastAPI, settings: Settings, port: int) -> uvicorn.Config:
    """How the API is served: uvicorn with the runtime's logging, shutdown and keep-alive."""
    return uvicorn.Config(
        api,
        host=settings.bind_host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        timeout_keep_alive=settings.http_keep_alive_s,
        # The C parser (httptools), not h11's pure-Python one (h11 was 4-7 % of the APIs'
        # CPU in a profile; the gain was within the benchmark's noise).
        http="httptools",
    )


async def run_components(
    components: Components,
    settings: Settings,
    *,
    roles: Sequence[str] = ROLES,
    port: int | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run the chosen roles until ``stop`` is set (or a signal arrives)."""
    stop = stop or asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    server: _Server | None = None
    if "api" in roles:
        config = api_config(components.api, settings, port or DEFAULT_PORTS[components.service])
        server = _Server(config)
        tasks.append(asyncio.create_task(server.serve(), name="api"))
    if "relay" in roles:
        relay = OutboxRelay(components.app, components.gateway, settings)
        tasks.append(asyncio.create_task(relay.run(stop), name="relay"))
    if "consumers" in roles:
        for subscription in components.subscriptions:
            consumer = DurableConsumer(components.service, subscription, settings)
            components.consumers.append(consumer)
            tasks.append(asyncio.create_task(consumer.run(stop), name=consumer.durable))
    if "workers" in roles:
        workers = [*components.workers]
        for step in components.app.pending_records:
            workers.append(periodic("pending_records", settings.pending_records_interval_s, step))
        for worker in workers:
            tasks.append(asyncio.create_task(worker(stop), name=getattr(worker, "__name__", "w")))

    if "checkpointer" in roles:
        chain_worker = checkpointer(
            components.service,
            settings,
            interval_s=settings.audit_checkpoint_interval_s,
            key_path=settings.audit_key_path,
        )
        tasks.append(asyncio.create_task(chain_worker(stop), name="checkpointer"))

    async def stop_server_when_asked() -> None:
        await stop.wait()
        if server is not None:
            server.should_exit = True

    watcher = asyncio.create_task(stop_server_when_asked())
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if task.exception() is not None and not stop.is_set():
                raise task.exception()  # type: ignore[misc]
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        watcher.cancel()


def main(bootstrap: Bootstrap, service: str, argv: Sequence[str] | None = None) -> None:
    """Process entry point of a service."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["replay"]:
        raise SystemExit(_replay(bootstrap, service, arguments[1:]))
    # The service's package, as ``python -m`` runs it (its bootstrap module's parent).
    parser = argparse.ArgumentParser(prog=f"python -m {bootstrap.__module__.rpartition('.')[0]}")
    parser.add_argument("--role", choices=("all", *ROLES), action="append")
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve /metrics on this port when the process runs no API role "
        "(default: WEERBAAR_METRICS_PORT; the API serves its own /metrics)",
    )
    parser.add_argument(
        "--export-public",
        type=int,
        metavar="AFTER",
        help="write the public events of the log after notification id AFTER to stdout, then"
        " exit (read by `weerbaar replay`)",
    )
    parser.add_argument(
        "--redrive",
        type=int,
        metavar="SEQ",
        help="hand dead letter SEQ to its consumer's handler once more, then exit"
        " (`weerbaar deadletters redrive SEQ` runs this)",
    )
    args = parser.parse_args(arguments)
    settings = load_settings()
    configure_logging(service, settings.log_level)
    configure_tracing(service, settings)
    roles = ROLES if not args.role or "all" in args.role else tuple(args.role)
    components = bootstrap(settings, Clock())
    if args.redrive is not None:
        try:
            outcome = asyncio.run(
                redrive(settings, service, components.subscriptions, args.redrive)
            )
        except RedriveError as exc:
            print(f"redrive: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        finally:
            components.app.close()
        print(f"dead letter {args.redrive}: {outcome.replace('_', ' ')}")
        return
    if args.export_public is not None:
        export_public(components.app, components.gateway, settings, args.export_public, sys.stdout)
        components.app.close()
        return

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("service starting", extra={"roles": list(roles)})
        await run_components(components, settings, roles=roles, port=args.port, stop=stop)
        log.info("service stopped")

    metrics_port = args.metrics_port or settings.metrics_port
    if "api" not in roles and metrics_port:
        serve_metrics(service, settings.bind_host, metrics_port)
    try:
        # The stock event loop, not uvloop: under uvloop nats-py's close() after a broker
        # restart raised RuntimeError on the closed transport and took the process down (the
        # fault suite's scenario 2); the stock loop ignores writes to a closed transport.
        asyncio.run(run())
    finally:
        shutdown_tracing()


def _replay(bootstrap: Bootstrap, service: str, argv: Sequence[str]) -> int:
    """``python -m services.<name> replay …``: rebuild the service's projection."""
    settings = load_settings()
    configure_logging(service, settings.log_level)
    components = bootstrap(settings, Clock())
    try:
        if not components.projections:
            print(f"{service} keeps no read tables that replay rebuilds", file=sys.stderr)
            return 2
        (projection,) = components.projections
        return replay_projection(components.app, projection, argv)
    finally:
        components.app.close()
