"""Stream provisioning: the one owner of the WEERBAAR and dead-letter streams' configuration.

Services never create or change streams at start-up (a service that did would silently rewrite the
configuration another one declared). ``weerbaar up`` and ``weerbaar provision`` call ``provision``.

Durability (see ARCHITECTURE.md): the streams use file storage and keep all history (no age or size
limit) so integrators and compliance can replay from sequence 1. JetStream acknowledges a publish
before it is fsynced unless the server runs with ``sync_interval: always``; the embedded server
keeps the server default (``WEERBAAR_NATS_SYNC_INTERVAL`` sets it; the cost and the choice are in
deploy/RUNBOOK.md, "Durability choices"). Independently of that, PostgreSQL is the system of
record and the relays re-publish whatever the stream lacks.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client as NatsClient
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import NotFoundError

from shared.platform.settings import Settings

log = logging.getLogger(__name__)


def stream_configs(settings: Settings) -> list[StreamConfig]:
    """The declared configuration of every stream the system uses."""
    common = {
        "storage": StorageType.FILE,
        "retention": RetentionPolicy.LIMITS,
        "discard": DiscardPolicy.OLD,
        "max_age": 0,
        "max_msgs": -1,
        "max_bytes": -1,
        "num_replicas": settings.stream_replicas,
        "duplicate_window": settings.stream_duplicate_window_s,
        "deny_delete": True,
        "deny_purge": False,
    }
    return [
        StreamConfig(
            name=settings.stream_name,
            description="Public Weerbaar events as CloudEvents (NL GOV profile).",
            subjects=["weerbaar.>"],
            allow_direct=True,
            **common,  # type: ignore[arg-type]
        ),
        StreamConfig(
            name=settings.deadletter_stream_name,
            description="Messages a consumer could not process, with the reason in the headers.",
            subjects=["weerbaar-deadletter.>"],
            **common,  # type: ignore[arg-type]
        ),
    ]


async def connect_bounded(settings: Settings, name: str, timeout_s: float = 5.0) -> NatsClient:
    """A connection for a command or a probe: each server tried at most twice, each attempt
    within ``timeout_s``, then ``NoServersError`` (or the last ``OSError``); connection errors
    are logged at debug level, not with a traceback each (the caller says what failed)."""

    async def quiet(exc: Exception) -> None:
        log.debug("nats connection error", extra={"client": name, "error": type(exc).__name__})

    return await nats.connect(
        servers=settings.nats_servers,
        name=name,
        connect_timeout=max(0.5, timeout_s),
        max_reconnect_attempts=1,
        reconnect_time_wait=0.2,
        error_cb=quiet,
    )


async def provision(settings: Settings, nc: NatsClient | None = None) -> list[StreamInfo]:
    """Create the streams, or update them to the declared configuration (on ``nc`` when given:
    the caller's connection, left open)."""
    own = nc is None
    if nc is None:
        nc = await nats.connect(servers=settings.nats_servers, name="weerbaar-provision")
    try:
        js = nc.jetstream(timeout=10)
        infos = []
        for config in stream_configs(settings):
            assert config.name is not None
            try:
                await js.stream_info(config.name)
            except NotFoundError:
                infos.append(await js.add_stream(config))
                log.info("stream created", extra={"stream": config.name})
            else:
                infos.append(await js.update_stream(config))
        return infos
    finally:
        if own:
            await nc.close()


#: Longest wait for one connection attempt (less when less of the timeout is left).
CONNECT_TIMEOUT_S = 5.0


class Unreachable(Exception):
    """A server the command needs did not answer."""


async def connect_nats(
    settings: Settings, name: str, timeout_s: float = CONNECT_TIMEOUT_S
) -> NatsClient:
    """``connect_bounded``, its failure as ``Unreachable``."""
    try:
        return await connect_bounded(settings, name, timeout_s)
    except (OSError, nats.errors.Error) as exc:
        # Host and port only: a server URL may carry credentials.
        servers = ", ".join(
            urlsplit(url).netloc.rpartition("@")[2] for url in settings.nats_servers
        )
        raise Unreachable(f"NATS ({servers}) not reachable: {type(exc).__name__}") from None
