"""deploy/Dockerfile, built and run: the image's own processes take a dossier.

No image registry is reachable from these machines, so the base image the Dockerfile names
(``FROM``) is stood in for by a root filesystem built from Debian's packages: ``debootstrap``
bookworm (minbase) with Debian's Python 3.11 and pip, with the paths the official Python image
has (``/usr/local/bin/python3.11``, ``pip``, ``PATH``), and the certificate authorities this
machine trusts (its egress inspects TLS; ``SSL_CERT_FILE`` for uv). It is imported with
``podman import`` and tagged with the ``FROM`` name in podman storage of the test's own
(``--root``/``--runroot`` in a scratch directory), never the machine's default storage. The root
filesystem's tarball is cached in ``~/.cache/weerbaar/image-test/``
(``WEERBAAR_IMAGE_TEST_CACHE``), keyed by how it is made, and built only when missing.

Then ``podman build`` builds the Dockerfile (uv downloads the locked packages from PyPI), and
the compose topology runs as in test_compose.py, except that every process of the image (the
stream provisioning, the five services, the portal, the mail catcher) runs in a container of the
built image, with exactly the compose file's command, environment, secret, volumes and hardening
(read-only, no capabilities, no new privileges): the services' key material goes to the one
``secrets`` volume they share, so every service uses the same pseudonym key and KEKs.
PostgreSQL (embedded, with the compose init script), NATS (with the compose config) and Caddy
run natively. On these machines containers run only with ``--ulimit nofile=1024:1024 --ulimit
nproc=1024:1024`` and ``--network host``, so the container addresses are free ports on
127.0.0.1, as in the native test.

Needs Debian's ``podman``, ``runc`` (podman's default runtime, crun, refuses these machines'
hybrid cgroups) and ``debootstrap``, run as root. Without them the test says so in one line: it
fails when ``CI`` is set and is skipped otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.platform.auth import issue_token
from shared.platform.settings import Settings
from tests.deploy.test_compose import (
    DOCKERFILE,
    PORTAL,
    PORTAL_PORT,
    REPO,
    NativeTopology,
    Started,
    dockerfile_instructions,
    filled_env,  # noqa: F401 (a fixture)
    model,  # noqa: F401 (a fixture)
)
from tests.servers import scratch_dir
from tests.support import aanmelding, stream_messages, wait_until
from tools.mailcatcher import list_messages

# Containers on these machines run only with these limits and the host's network.
RUN_OPTIONS = [
    "--ulimit",
    "nofile=1024:1024",
    "--ulimit",
    "nproc=1024:1024",
    "--network",
    "host",
]
# The stand-in for the base image: Debian's Python 3.11 as the official image lays it out.
SUITE = "bookworm"
MIRROR = os.environ.get("WEERBAAR_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PACKAGES = ["python3.11", "python3-pip", "python3-venv", "ca-certificates", "passwd"]
STANDIN_SETUP = """\
set -eu
ln -sf /usr/bin/python3.11 usr/local/bin/python3.11
ln -sf python3.11 usr/local/bin/python3
ln -sf python3.11 usr/local/bin/python
ln -sf /usr/bin/pip3 usr/local/bin/pip
rm -f usr/lib/python3.11/EXTERNALLY-MANAGED
rm -rf var/cache/apt/archives/*.deb var/lib/apt/lists/*
"""
# The official image's environment, and the trust of this machine for pip and uv.
MACHINE_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
STANDIN_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "SSL_CERT_FILE": str(MACHINE_CA_BUNDLE),
}
CONTAINER_UID = "10001"
# podman's default OCI runtime here, crun, refuses the machines' hybrid cgroup layout; runc runs.
TOOLS = ("podman", "debootstrap", "runc")
IMAGE = "localhost/weerbaar:image-test"


def missing_tools() -> str | None:
    """What keeps containers from being built and run here, in one line, or None."""
    absent = [name for name in TOOLS if shutil.which(name) is None]
    if absent:
        return (
            f"the image test needs Debian's {', '.join(TOOLS)}; missing: {', '.join(absent)} "
            f"(apt-get install --no-install-recommends {' '.join(TOOLS)})"
        )
    if os.geteuid() != 0:
        return "the image test needs root (debootstrap, podman with its own storage)"
    return None


def base_image() -> str:
    """The ``FROM`` of the Dockerfile (both stages use the same base)."""
    bases = {
        args.split()[0]
        for keyword, args in dockerfile_instructions(DOCKERFILE)
        if keyword == "FROM"
    }
    assert len(bases) == 1, f"one base image expected, found {bases}"
    return bases.pop()


def cache_dir() -> Path:
    """Where the stand-in's root filesystem is kept between runs on this machine."""
    configured = os.environ.get("WEERBAAR_IMAGE_TEST_CACHE")
    path = Path(configured) if configured else Path.home() / ".cache" / "weerbaar" / "image-test"
    path.mkdir(parents=True, exist_ok=True)
    return path


def standin_rootfs() -> Path:
    """The tarball of the stand-in's root filesystem, built when the cache has none."""
    trusted = MACHINE_CA_BUNDLE.read_bytes()
    recipe = "\n".join([SUITE, MIRROR, "minbase", *PACKAGES, STANDIN_SETUP])
    recipe += hashlib.sha256(trusted).hexdigest()
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    tarball = cache_dir() / f"python3.11-{SUITE}-{key}.tar"
    if tarball.exists():
        return tarball
    with tempfile.TemporaryDirectory(dir=tarball.parent, prefix="build-") as work:
        root = Path(work) / "root"
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                SUITE,
                str(root),
                MIRROR,
            ],
            timeout=900,
        )
        run(["sh", "-c", STANDIN_SETUP], cwd=root, timeout=60)
        # The certificate authorities this machine trusts (its egress inspects TLS).
        (root / MACHINE_CA_BUNDLE.relative_to("/")).write_bytes(trusted)
        partial = Path(work) / "rootfs.tar"
        run(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."], timeout=300)
        partial.replace(tarball)
    for stale in tarball.parent.glob(f"python3.11-{SUITE}-*.tar"):
        if stale != tarball:
            stale.unlink()  # made by an earlier recipe
    return tarball


def run(
    args: list[str], *, timeout: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command; fail with its output when it fails."""
    done = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{' '.join(args[:4])} …: {done.stdout[-3000:]}{done.stderr[-3000:]}"
    )
    return done


class Podman:
    """podman on storage of its own, under ``root``."""

    def __init__(self, root: Path) -> None:
        self.global_options = [
            "--runtime",
            "runc",
            "--root",
            str(root / "storage"),
            "--runroot",
            str(root / "run"),
            "--tmpdir",
            str(root / "tmp"),
            "--events-backend",
            "none",
        ]

    def argv(self, *args: str) -> list[str]:
        return ["podman", *self.global_options, *args]

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run(self.argv(*args), timeout=timeout)

    def remove_everything(self) -> None:
        """Every container and image of this storage (not ``system reset``: networks are global)."""
        for args in (["rm", "--all", "--force", "--time", "10"], ["rmi", "--all", "--force"]):
            subprocess.run(self.argv(*args), capture_output=True, timeout=120, check=False)


class ContainerTopology(NativeTopology):
    """The compose topology with the image's processes in containers of the built image."""

    podman: Podman

    def container_environment(self, name: str) -> dict[str, str]:
        """The compose environment of ``name``: addresses mapped, container paths kept."""
        service = self.model["services"][name]
        declared = {k: v for k, v in (service.get("environment") or {}).items() if v is not None}
        env = {key: self.map_addresses(value) for key, value in declared.items()}
        for key, value in list(env.items()):
            if key.endswith("_HOST") and value in self.model["services"]:
                port_key = key.removesuffix("_HOST") + "_PORT"
                env[port_key] = str(self.port(value, int(env[port_key])))
                env[key] = "127.0.0.1"
            # On the host's network only loopback, as in the native test.
            if value == "0.0.0.0":
                env[key] = "127.0.0.1"
        return env

    def container_command(self, name: str) -> list[str]:
        """The compose command with the mapped ports; the image's own ``python``."""
        command = self.model["services"][name]["command"]
        args: list[str] = []
        for index, arg in enumerate(command):
            option = command[index - 1] if index else ""
            if option == "--port":
                args.append(str(self.port(name, int(arg))))
            elif option == "--host" and arg == "0.0.0.0":
                args.append("127.0.0.1")
            else:
                args.append(self.map_addresses(arg))
        return args

    def mounts(self, name: str) -> list[str]:
        """The compose volumes and secrets of ``name`` as bind mounts."""
        service = self.model["services"][name]
        options: list[str] = []
        for volume in service.get("volumes", []):
            local = self.root / "volumes" / volume["source"]
            local.mkdir(parents=True, exist_ok=True)
            os.chown(local, int(CONTAINER_UID), int(CONTAINER_UID))
            options += ["--volume", f"{local}:{volume['target']}"]
        for secret in service.get("secrets", []):
            # Compose bind-mounts the secret; the service's user must be able to read it.
            source = self.secret_file(secret["source"])
            os.chown(source, int(CONTAINER_UID), int(CONTAINER_UID))
            options += ["--volume", f"{source}:{secret['target']}:ro"]
        return options

    def hardening(self, name: str) -> list[str]:
        """read_only, tmpfs, cap_drop and security_opt of the compose service."""
        service = self.model["services"][name]
        options: list[str] = []
        if service.get("read_only"):
            options.append("--read-only")
        for path in service.get("tmpfs", []):
            options += ["--tmpfs", path]
        for capability in service.get("cap_drop", []):
            options += ["--cap-drop", capability]
        for option in service.get("security_opt", []):
            options += [
                "--security-opt",
                option.replace("no-new-privileges:true", "no-new-privileges"),
            ]
        return options

    def start_own_image(self, name: str) -> None:
        """``podman run`` of the built image, in the foreground of a local process."""
        env_options: list[str] = []
        for key, value in self.container_environment(name).items():
            env_options += ["--env", f"{key}={value}"]
        args = self.podman.argv(
            "run",
            "--rm",
            "--name",
            f"weerbaar-image-test-{name}",
            *RUN_OPTIONS,
            *self.hardening(name),
            *self.mounts(name),
            *env_options,
            IMAGE,
            *self.container_command(name),
        )
        log = self.root / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started[name] = Started(name, process, log)

    def paths(self, name: str) -> dict[str, Path]:
        """The mail catcher's mail, read by the test, is its volume on this machine."""
        if name == "mailcatcher":
            return {"/var/lib/weerbaar/mail": self.root / "volumes" / "mail"}
        return super().paths(name)


@contextlib.contextmanager
def built_image(root: Path) -> Iterator[Podman]:
    """The Dockerfile built on the stand-in base, in podman storage under ``root``."""
    podman = Podman(root)
    try:
        tarball = standin_rootfs()
        changes = [f"--change=ENV {key}={value}" for key, value in STANDIN_ENV.items()]
        podman("import", *changes, str(tarball), base_image(), timeout=300)
        # podman import names it localhost/…; the FROM's short name must find it without a pull.
        podman("tag", f"localhost/{base_image()}", f"docker.io/library/{base_image()}")
        podman(
            "build",
            "--pull=never",
            "--network",
            "host",
            *RUN_OPTIONS[:4],
            "--file",
            str(DOCKERFILE),
            "--ignorefile",
            str(DOCKERFILE.parent / "Dockerfile.dockerignore"),
            "--tag",
            IMAGE,
            str(REPO),
            timeout=900,
        )
        yield podman
    finally:
        podman.remove_everything()


@pytest.mark.e2e
@pytest.mark.timeout(1500)
def test_the_built_image_runs_the_services_and_takes_a_dossier(
    model: dict[str, Any],  # noqa: F811
    filled_env: dict[str, str],  # noqa: F811
) -> None:
    problem = missing_tools()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    with scratch_dir("image") as root, built_image(root / "podman") as podman:
        # The image's own processes, with the compose file's commands.
        cli = podman("run", "--rm", *RUN_OPTIONS, IMAGE)
        assert "provision" in cli.stdout
        whoami = podman(
            "run", "--rm", *RUN_OPTIONS, IMAGE, "python", "-c", "import os; print(os.getuid())"
        )
        assert whoami.stdout.strip() == CONTAINER_UID

        topology = ContainerTopology(model, filled_env, root / "topology")
        topology.podman = podman
        try:
            topology.up(timeout=300)
            take_a_dossier(topology)
            the_portal_serves_its_pages(topology)
        finally:
            topology.down()


def take_a_dossier(topology: ContainerTopology) -> None:
    """Register through intake in its container; scheduling's deadline reaches the dossier."""
    intake = f"http://127.0.0.1:{topology.port('intake', 8001)}"
    defaults = Settings.model_fields
    secret = topology.secret_file("jwt_secret").read_bytes()
    secretariaat = {
        "Authorization": "Bearer "
        + issue_token(
            secret,
            role="secretariaat",
            issuer=defaults["jwt_issuer"].default,
            audience=defaults["jwt_audience"].default,
        )
    }
    body = aanmelding()
    with httpx.Client(base_url=intake, timeout=15) as client:
        created = client.post("/aanvragen", json=body, headers={"Idempotency-Key": "image-1"})
        assert created.status_code == 201, created.text
        aanvraag_id = created.json()["aanvraag_id"]

        def dossier() -> dict[str, Any] | None:
            answer = client.get(f"/aanvragen/{aanvraag_id}", headers=secretariaat)
            return answer.json() if answer.status_code == 200 else None

        found = wait_until(
            lambda: (d := dossier()) and d["contact_deadline"] and d,
            timeout=60,
            what="the dossier with its contact deadline",
        )
        assert found["contact_deadline"]

    # notifications (claim-check on intake, SMTP) reached the mail catcher, both in containers.
    mail_dir = topology.paths("mailcatcher")["/var/lib/weerbaar/mail"]
    mails = wait_until(lambda: list_messages(mail_dir), timeout=60, what="the e-mail")
    assert [m.to for m in mails] == [(body["bestuurder"]["email"],)]

    nats_url = nats_client_url(topology)
    events = wait_until(
        lambda: (
            events
            if len(
                events := [
                    m.envelope
                    for m in stream_messages(nats_url)
                    if m.envelope.get("subject") == aanvraag_id
                ]
            )
            >= 2
            else None
        ),
        timeout=30,
        what="the CloudEvents of the aanvraag on NATS",
    )
    by_type = {e["type"]: e for e in events}
    ingediend = by_type.get("nl.weerbaarbestuur.AanvraagIngediend.v1")
    termijn = by_type.get("nl.weerbaarbestuur.ContacttermijnGesteld.v1")
    assert ingediend and termijn, sorted(by_type)
    assert ingediend["specversion"] == termijn["specversion"] == "1.0"
    assert ingediend["source"].rsplit(":", 1)[-1] == "intake"
    assert termijn["source"].rsplit(":", 1)[-1] == "scheduling"

    # One set of key material for the deployment, in the volume every service shares.
    shared = topology.paths("intake")["/var/lib/weerbaar/secrets"]
    for service in ("scheduling", "assessment", "approval", "notifications"):
        assert topology.paths(service)["/var/lib/weerbaar/secrets"] == shared, service
    assert {"kek-1.key", "pseudonym.key", "audit-ed25519.key"} <= {
        p.name for p in shared.iterdir()
    }, sorted(p.name for p in shared.iterdir())


def the_portal_serves_its_pages(topology: ContainerTopology) -> None:
    """The portal in its container: its home page (the templates) and a stylesheet (the static
    files) are in the image."""
    portal = f"http://127.0.0.1:{topology.port(PORTAL, PORTAL_PORT)}"
    with httpx.Client(base_url=portal, timeout=15) as client:
        home = client.get("/")
        assert home.status_code == 200, home.text
        assert home.headers["content-type"].startswith("text/html")
        assert 'lang="nl"' in home.text and "/static/portal.css" in home.text
        css = client.get("/static/portal.css")
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")
        assert css.content == (REPO / "services/portal/api/static/portal.css").read_bytes()
    # Its session key is in its own volume, apart from the services' key material.
    key_file = topology.container_environment(PORTAL)["WEERBAAR_PORTAL_SESSION_KEY_FILE"]
    volume = topology.paths(PORTAL)["/var/lib/weerbaar/secrets"]
    assert (volume / Path(key_file).name).stat().st_size == 32
    assert volume != topology.paths("intake")["/var/lib/weerbaar/secrets"]


def nats_client_url(topology: ContainerTopology) -> str:
    """The NATS URL the services use (with the compose credentials), mapped to this machine."""
    env: Mapping[str, str] = topology.container_environment("intake")
    return env["WEERBAAR_NATS_URL"]
