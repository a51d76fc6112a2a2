"""The ``weerbaar`` command: run the system, get a token, run the tests, see mail, dead letters."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _data_dir() -> Path:
    return Path(os.environ.get("WEERBAAR_DATA_DIR", ROOT / ".data")).resolve()


def cmd_up(args: argparse.Namespace) -> int:
    """Run the whole system until Ctrl-C or SIGTERM."""
    from shared.logging import configure_logging
    from shared.system import System

    configure_logging("weerbaar-up", "WARNING")
    smtp = None
    if os.environ.get("WEERBAAR_SMTP_HOST"):
        smtp = (os.environ["WEERBAAR_SMTP_HOST"], int(os.environ.get("WEERBAAR_SMTP_PORT", "25")))
    system = System(
        data_dir=_data_dir(),
        database_url=os.environ.get("WEERBAAR_DATABASE_URL") or os.environ.get("DATABASE_URL"),
        nats_url=os.environ.get("WEERBAAR_NATS_URL") or os.environ.get("NATS_URL"),
        smtp=smtp,
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        print("weerbaar: starting PostgreSQL, NATS and the mail catcher …", flush=True)
        system.start_servers()
        print("weerbaar: starting the five services …", flush=True)
        system.start_services()
        _print_welcome(system)
        while not stop.wait(1.0):
            for proc in list(system.processes):
                if proc.process.poll() is not None:
                    print(
                        f"weerbaar: {proc.service} exited ({proc.process.returncode}); "
                        f"restarting — see {proc.log_path}",
                        flush=True,
                    )
                    system.processes.remove(proc)
                    system.spawn(proc.service)
                    system.write_state()
    finally:
        print("\nweerbaar: stopping …", flush=True)
        system.stop()
        print("weerbaar: stopped; data kept in", system.data_dir, flush=True)
    return 0


def _print_welcome(system: object) -> None:
    from shared.system import System

    assert isinstance(system, System)
    print("\nWeerbaar is running. Ctrl-C stops it; the data stays in", system.data_dir)
    print(f"  PostgreSQL   {system.database_url}")
    print(f"  NATS         {system.nats_url}  (stream WEERBAAR)")
    for service, port in system.ports.items():
        print(f"  {service:<12} http://127.0.0.1:{port}/docs")
    if system.mailcatcher is not None:
        print(f"  mail         smtp 127.0.0.1:{system.mailcatcher.port} → ./weerbaar mail")
    print("\nA token:  ./weerbaar token --role secretariaat")
    intake = system.ports["intake"]
    print(
        f"Register: curl -X POST http://127.0.0.1:{intake}/aanvragen"
        " -H 'Content-Type: application/json' -d @docs/examples/aanmelding.json",
        flush=True,
    )


def cmd_token(args: argparse.Namespace) -> int:
    """Print a token every local service accepts."""
    from shared.auth import issue_token, load_or_create_secret
    from shared.settings import Settings

    defaults = Settings.model_fields
    secret_file = os.environ.get("WEERBAAR_JWT_SECRET_FILE")
    secret = load_or_create_secret(
        Path(secret_file) if secret_file else _data_dir() / "secrets" / "jwt.key"
    )
    print(
        issue_token(
            secret,
            role=args.role,
            sub=args.sub,
            email=args.email,
            organisatie=args.organisatie,
            issuer=os.environ.get("WEERBAAR_JWT_ISSUER", defaults["jwt_issuer"].default),
            audience=os.environ.get("WEERBAAR_JWT_AUDIENCE", defaults["jwt_audience"].default),
        )
    )
    return 0


def _run(cmd: Sequence[str]) -> int:
    print("$", " ".join(cmd), flush=True)
    return subprocess.call(list(cmd), cwd=ROOT)  # noqa: S603 - fixed tool invocations


def cmd_test(args: argparse.Namespace) -> int:
    """Run the static checks, then every test (extra arguments go to pytest)."""
    py = sys.executable
    if not args.pytest_args:
        checks = [
            [py, "-m", "ruff", "check", "."],
            [py, "-m", "ruff", "format", "--check", "."],
            [py, "-m", "mypy"],
            [str(Path(py).parent / "lint-imports")],
            [py, "-m", "shared.contracts.generate", "--check"],
            [py, "-m", "shared.contracts.asyncapi", "--check"],
            # bandit: no medium- or high-severity finding; a suppression must say why.
            [py, "-m", "bandit", "-q", "-ll", "-r", "shared", "services", "examples"],
        ]
        for check in checks:
            if _run(check) != 0:
                print("weerbaar test: a check failed", file=sys.stderr)
                return 1
    return _run([py, "-m", "pytest", *args.pytest_args])


def cmd_provision(args: argparse.Namespace) -> int:
    """Create or update the streams (the one owner of their configuration)."""
    from shared.settings import load_settings
    from shared.stream import provision

    for info in asyncio.run(provision(load_settings())):
        print(f"stream {info.config.name}: {info.state.messages} messages")
    return 0


def cmd_mail(args: argparse.Namespace) -> int:
    """List the mail the local mail catcher received."""
    from shared.mailcatcher import list_messages

    directory = _data_dir() / "mail"
    messages = list_messages(directory) if directory.exists() else []
    if not messages:
        print("no mail yet in", directory)
    for mail in messages:
        print(f"{mail.received_at:%Y-%m-%d %H:%M:%S}  to {', '.join(mail.to)}  {mail.subject}")
        print(f"    {mail.path}")
    return 0


def cmd_deadletters(args: argparse.Namespace) -> int:
    """List the dead letters: messages a consumer could not process, with the reason."""
    from shared.deadletters import list_deadletters
    from shared.settings import load_settings

    settings = load_settings()
    letters = asyncio.run(list_deadletters(settings))
    if not letters:
        print("no dead letters")
    for letter in letters:
        print(json.dumps(letter))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Drive a realistic dossier through the whole process against the running system."""
    from shared.demo import DemoError, run_demo
    from shared.system import read_state

    data_dir = _data_dir()
    state = read_state(data_dir)
    if state is None:
        print(
            "weerbaar demo: no running system found; start it with ./weerbaar up", file=sys.stderr
        )
        return 1
    try:
        run_demo(state["services"], data_dir)
    except DemoError as exc:
        print(f"weerbaar demo: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Recompute every service's hash chain and check the signed checkpoints."""
    from shared.chain import main as verify_main

    return verify_main(["--keys", str(_data_dir() / "secrets"), *args.verify_args])


def cmd_forget(args: argparse.Namespace) -> int:
    """Crypto-shred a dossier's personal data in every service (and record that it happened)."""
    # shared never imports a service: run intake's forget as its own module.
    return subprocess.call(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "services.intake.forget", *args.forget_args], cwd=ROOT
    )


def cmd_keys(args: argparse.Namespace) -> int:
    """Key-encryption keys: status, rotate, retire."""
    from shared.keys import main as keys_main

    return keys_main(args.keys_args)


def _with_running_state() -> None:
    """Let commands that need the servers find a running `weerbaar up`."""
    from shared.system import read_state

    os.environ.setdefault("WEERBAAR_DATA_DIR", str(_data_dir()))
    state = read_state(_data_dir())
    if state:
        os.environ.setdefault("WEERBAAR_DATABASE_URL", state["database_url"])
        os.environ.setdefault("WEERBAAR_NATS_URL", state["nats_url"])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``weerbaar`` command."""
    parser = argparse.ArgumentParser(prog="weerbaar", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run the whole system (embedded NATS and PostgreSQL)")
    token = sub.add_parser("token", help="print a bearer token for a role")
    token.add_argument("--role", required=True)
    token.add_argument("--sub")
    token.add_argument("--email")
    token.add_argument("--organisatie")
    test = sub.add_parser("test", help="run the checks and every test")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER)
    sub.add_parser("provision", help="create or update the NATS streams")
    sub.add_parser("mail", help="list the mail the local mail catcher received")
    sub.add_parser("deadletters", help="list the dead-lettered messages")
    verify = sub.add_parser("verify", help="check the event logs against their signed hash chains")
    verify.add_argument("verify_args", nargs=argparse.REMAINDER)
    forget = sub.add_parser("forget", help="forget a dossier's personal data (crypto-shredding)")
    forget.add_argument("forget_args", nargs=argparse.REMAINDER)
    keys = sub.add_parser("keys", help="key-encryption keys: status, rotate, retire")
    keys.add_argument("keys_args", nargs=argparse.REMAINDER)
    sub.add_parser("demo", help="drive a dossier through the whole process (needs ./weerbaar up)")
    args = parser.parse_args(argv)
    if args.command in {"provision", "deadletters", "verify", "forget", "keys"}:
        _with_running_state()
    handler = {
        "up": cmd_up,
        "token": cmd_token,
        "test": cmd_test,
        "provision": cmd_provision,
        "mail": cmd_mail,
        "deadletters": cmd_deadletters,
        "demo": cmd_demo,
        "verify": cmd_verify,
        "forget": cmd_forget,
        "keys": cmd_keys,
    }[args.command]
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
