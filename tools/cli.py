"""The ``weerbaar`` command: run the system, get a token, run the tests, see mail, dead letters."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
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
    from shared.platform.logging import configure_logging
    from tools.system import Supervisor, System

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
        print("weerbaar: starting the portal …", flush=True)
        system.start_portal()
        _print_welcome(system)
        supervisor = Supervisor(system)
        system.write_state()
        while not stop.wait(1.0):
            supervisor.check()
    finally:
        print("\nweerbaar: stopping …", flush=True)
        system.stop()
        print("weerbaar: stopped; data kept in", system.data_dir, flush=True)
    return 0


def _print_welcome(system: object) -> None:
    from tools.system import PORTAL, System

    assert isinstance(system, System)
    print("\nWeerbaar is running. Ctrl-C stops it; the data stays in", system.data_dir)
    print(f"  PostgreSQL   {system.database_url}")
    print(f"  NATS         {system.nats_url}  (stream WEERBAAR)")
    for service, port in system.ports.items():
        if service != PORTAL:
            print(f"  {service:<12} http://127.0.0.1:{port}/docs")
    if system.mailcatcher is not None:
        print(f"  mail         smtp 127.0.0.1:{system.mailcatcher.port} → ./weerbaar mail")
    print("\nA token:  ./weerbaar token --role secretariaat")
    intake = system.ports["intake"]
    print(
        f"Register: curl -X POST http://127.0.0.1:{intake}/aanvragen"
        " -H 'Content-Type: application/json' -d @docs/examples/aanmelding.json",
    )
    print(f"\nPortal:   {system.url(PORTAL)}/", flush=True)


def cmd_token(args: argparse.Namespace) -> int:
    """Print a token every local service accepts."""
    from shared.platform.auth import issue_token, load_or_create_secret
    from shared.platform.settings import Settings

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
            [py, "-m", "shared.platform.asyncapi", "--check"],
            # bandit: no medium- or high-severity finding; a suppression must say why.
            [py, "-m", "bandit", "-q", "-ll", "-r", "shared", "services", "examples"],
        ]
        for check in checks:
            if _run(check) != 0:
                print("weerbaar test: a check failed", file=sys.stderr)
                return 1
    _install_machine_packages()
    return _run([py, "-m", "pytest", *args.pytest_args])


#: The screenshots the README shows (``docs/screenshots/``), by the browser test that saves them.
README_SCREENSHOTS: dict[str, str] = {
    "secretariaat-werkvoorraad.png": "tests/browser/test_portal_secretariaat.py",
    "adviseur-rapport-verschillen.png": "tests/browser/test_portal_adviseur.py",
    "bva-rapport-versie-2.png": "tests/browser/test_portal_bva.py",
    "bestuurder-instemming.png": "tests/browser/test_portal_bestuurder.py",
}
SCREENSHOTS_MADE = ROOT / "test-artifacts" / "screenshots" / "portal"
SCREENSHOTS_SHOWN = ROOT / "docs" / "screenshots"


def cmd_screenshots(args: argparse.Namespace) -> int:
    """Run the browser tests that save the README's screenshots, then copy those into
    ``docs/screenshots/`` (commit them)."""
    _install_machine_packages()
    for name in README_SCREENSHOTS:
        (SCREENSHOTS_MADE / name).unlink(missing_ok=True)
    modules = sorted(set(README_SCREENSHOTS.values()))
    if _run([sys.executable, "-m", "pytest", "-q", *modules]) != 0:
        print("weerbaar screenshots: a browser test failed; nothing copied", file=sys.stderr)
        return 1
    SCREENSHOTS_SHOWN.mkdir(parents=True, exist_ok=True)
    for name in README_SCREENSHOTS:
        shutil.copyfile(SCREENSHOTS_MADE / name, SCREENSHOTS_SHOWN / name)
        print(f"docs/screenshots/{name}")
    return 0


#: The machine's packages some tests drive (Debian package = command): the image test's podman,
#: debootstrap and runc; the browser tests' Chromium (Playwright's own download cannot work here);
#: npm (with Node.js), which installs the OIDC provider the oidc tests start (tests/oidc).
MACHINE_PACKAGES = ("podman", "debootstrap", "runc", "chromium", "npm")


def _install_machine_packages() -> None:
    """Install the missing ones where this runs as root on Debian (CI); elsewhere the tests that
    need one fail with one line saying how to get it."""
    missing = [tool for tool in MACHINE_PACKAGES if shutil.which(tool) is None]
    if not missing or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    print(f"weerbaar test: installing {' '.join(missing)} (apt-get)", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    update = ["apt-get", "update", "-qq"]
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
    for command in (update, install):
        # Debian's apt-get with fixed arguments and the package names above.
        if subprocess.call(command, env=env, stdout=subprocess.DEVNULL) != 0:  # noqa: S603
            print(f"weerbaar test: could not install {' '.join(missing)}", file=sys.stderr)
            return


def cmd_provision(args: argparse.Namespace) -> int:
    """Create or update the streams (the one owner of their configuration)."""
    from shared.platform.settings import load_settings
    from shared.platform.stream import provision

    for info in asyncio.run(provision(load_settings())):
        print(f"stream {info.config.name}: {info.state.messages} messages")
    return 0


def cmd_mail(args: argparse.Namespace) -> int:
    """List the mail the local mail catcher received, or send a failed notification again."""
    action, *rest = args.mail_args or ["list"]
    if action == "resend":
        _with_running_state()
        # shared never imports a service: notifications re-plans it, as its own module.
        return subprocess.call(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "services.notifications.ops", *rest], cwd=ROOT
        )
    if action != "list" or rest:
        print("usage: weerbaar mail [list | resend NOTIFICATIE_ID]", file=sys.stderr)
        return 2
    from tools.mailcatcher import list_messages

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
    from shared.platform.deadletters import list_deadletters
    from shared.platform.settings import load_settings

    settings = load_settings()
    if args.action == "redrive":
        from shared.platform.deadletters import RedriveError, fetch_deadletter

        try:
            letter = asyncio.run(fetch_deadletter(settings, args.sequence))
        except RedriveError as exc:
            print(f"weerbaar deadletters: {exc}", file=sys.stderr)
            return 1
        # shared never imports a service: the owning service re-drives it with its handler.
        return subprocess.call(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", f"services.{letter.service}", "--redrive", str(args.sequence)],
            cwd=ROOT,
        )
    if args.action == "remove":
        from shared.platform.deadletters import RedriveError, remove_deadletter

        try:
            removed = asyncio.run(remove_deadletter(settings, args.sequence))
        except RedriveError as exc:
            print(f"weerbaar deadletters: {exc}", file=sys.stderr)
            return 1
        print(f"dead letter {removed.sequence} of {removed.consumer} removed ({removed.reason})")
        return 0
    letters = asyncio.run(list_deadletters(settings))
    if not letters:
        print("no dead letters")
    for entry in letters:
        print(json.dumps(entry))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Drive a realistic dossier through the whole process against the running system."""
    from tools.demo import DemoError, run_demo
    from tools.system import read_state

    data_dir = _data_dir()
    state = read_state(data_dir)
    if state is None:
        print(
            "weerbaar demo: no running system found; start it with ./weerbaar up", file=sys.stderr
        )
        return 1
    try:
        run_demo(state["services"], data_dir, portal=state.get("portal"))
    except DemoError as exc:
        print(f"weerbaar demo: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Recompute every service's hash chain and check the signed checkpoints."""
    from tools.verify import main as verify_main

    return verify_main(["--keys", str(_data_dir() / "secrets"), *args.verify_args])


def cmd_forget(args: argparse.Namespace) -> int:
    """Crypto-shred a dossier's personal data in every service (and record that it happened)."""
    # shared never imports a service: run intake's forget as its own module.
    return subprocess.call(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "services.intake.ops.forget", *args.forget_args], cwd=ROOT
    )


def cmd_backup(argv: Sequence[str]) -> int:
    """Back up the database and the secrets (apart), or restore such a backup (passed on whole:
    argparse's REMAINDER would not take the options that come first)."""
    from tools.backup import main as backup_main

    return backup_main(argv)


def cmd_stream_rebuild(args: argparse.Namespace) -> int:
    """Rebuild the NATS stream from PostgreSQL after losing it."""
    from tools.streamrebuild import main as rebuild_main

    return rebuild_main(
        ["--timeout", str(args.timeout), *(["--delete-first"] if args.delete_first else [])]
    )


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Compare the stream with the event stores: what is extra, what is missing."""
    from tools.reconcile import main as reconcile_main
    from tools.system import service_command

    return reconcile_main(["--timeout", str(args.timeout)], command=service_command)


def cmd_relay(args: argparse.Namespace) -> int:
    """Where every relay is, and resume one that stopped at an event it cannot publish."""
    from tools.relaycontrol import main as relay_main

    return relay_main(args.relay_args)


def cmd_bench(args: argparse.Namespace) -> int:
    """Measure the system against the raw limits of its own servers (``bench/system.py``)."""
    # shared never imports services, and the benchmark drives them: run it as its own module.
    options = ["--quick"] if args.quick else []
    if args.out:
        options += ["--out", str(Path(args.out).resolve())]
    return subprocess.call(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "bench.system", *options], cwd=ROOT
    )


def cmd_faults(args: argparse.Namespace) -> int:
    """Run the fault-injection scenarios (tests/faults): CI-sized, or the long run for releases."""
    dossiers = args.dossiers or (2000 if args.long else 120)
    env = {**os.environ, "WEERBAAR_FAULTS_DOSSIERS": str(dossiers)}
    if args.report_dir:
        env["WEERBAAR_FAULTS_REPORT_DIR"] = str(Path(args.report_dir).resolve())
    extra = args.pytest_args[1:] if args.pytest_args[:1] == ["--"] else args.pytest_args
    cmd = [sys.executable, "-m", "pytest", "tests/faults", "-m", "faults", "-q", "-s", *extra]
    print("$", f"WEERBAAR_FAULTS_DOSSIERS={dossiers}", " ".join(cmd[2:]), flush=True)
    return subprocess.call(cmd, cwd=ROOT, env=env)  # noqa: S603 - our own interpreter


def cmd_keys(args: argparse.Namespace) -> int:
    """Key-encryption keys: status, rotate, retire."""
    from tools.keys import main as keys_main

    return keys_main(args.keys_args)


#: Compliance commands that are intake's own modules (shared never imports a service).
INTAKE_MODULES = {
    "audit-export": "services.intake.ops.audit_export",
    "retention": "services.intake.ops.retention",
}


#: The services that keep a dossier register (``shared.platform.register``).
REGISTER_SERVICES = ("assessment", "approval")

#: The read models ``weerbaar replay --projection NAME`` rebuilds: intake's dossier projection
#: (out of every service's public history) and the services' aggregate projections
#: (``shared.platform.projection``, out of their own logs), each its own process; and the
#: dossier registers (``shared.platform.register``, out of intake's log: ``None``, run here).
PROJECTIONS: dict[str, list[str] | None] = {
    "intake": ["-m", "services.intake.ops.replay"],
    "scheduling": ["-m", "services.scheduling", "replay"],
    "assessment": ["-m", "services.assessment", "replay"],
    "notifications": ["-m", "services.notifications", "replay"],
    **{f"{service}-register": None for service in REGISTER_SERVICES},
}


def cmd_replay(module_args: Sequence[str]) -> int:
    """``weerbaar replay [--projection NAME|all] …``: the rest goes to that projection's rebuild."""
    rest = list(module_args)
    name = "intake"
    for i, arg in enumerate(rest):
        if arg == "--projection" and i + 1 < len(rest):
            name = rest[i + 1]
            del rest[i : i + 2]
            break
        if arg.startswith("--projection="):
            name = arg.split("=", 1)[1]
            del rest[i]
            break
    names = list(PROJECTIONS) if name == "all" else [name]
    if any(n not in PROJECTIONS for n in names):
        print(
            f"weerbaar replay: unknown projection {name!r}; one of {', '.join(PROJECTIONS)} or all",
            file=sys.stderr,
        )
        return 2
    if len(names) > 1 and any(a == "--target" or a.startswith("--target=") for a in rest):
        print("weerbaar replay: --target names one projection's schema, not all", file=sys.stderr)
        return 2
    _with_running_state()
    for each in names:
        module = PROJECTIONS[each]
        if module is None:
            from shared.platform.register import main as register_main
            from tools.system import service_command

            service = each.removesuffix("-register")
            code = register_main(
                [service, *rest], services=REGISTER_SERVICES, command=service_command
            )
        else:
            command = [sys.executable, *module, *rest]
            code = subprocess.call(command, cwd=ROOT)  # noqa: S603 - our own interpreter
        if code != 0:
            return code
    return 0


def cmd_intake_module(command: str, module_args: Sequence[str]) -> int:
    """Run one of intake's compliance commands as its own module (it parses its arguments)."""
    _with_running_state()
    return subprocess.call(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", INTAKE_MODULES[command], *module_args], cwd=ROOT
    )


def cmd_dossier(args: argparse.Namespace) -> int:
    """Show a dossier (as it is, or as it was recorded at --per) through intake's API."""
    import httpx

    from tools.system import read_state

    state = read_state(_data_dir())
    if state is None:
        print("weerbaar dossier: no running system found; start ./weerbaar up", file=sys.stderr)
        return 1
    token = _compliance_token()
    params = {"per": args.per} if args.per else {}
    response = httpx.get(
        f"{state['services']['intake']}/aanvragen/{args.aanvraag_id}",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=15,
    )
    print(json.dumps(response.json(), indent=2, ensure_ascii=False))
    return 0 if response.status_code == 200 else 1


def _compliance_token() -> str:
    from shared.platform.auth import issue_token, load_or_create_secret
    from shared.platform.settings import Settings

    defaults = Settings.model_fields
    secret = load_or_create_secret(_data_dir() / "secrets" / "jwt.key")
    return issue_token(
        secret,
        role="compliance",
        sub="weerbaar-cli",
        issuer=os.environ.get("WEERBAAR_JWT_ISSUER", defaults["jwt_issuer"].default),
        audience=os.environ.get("WEERBAAR_JWT_AUDIENCE", defaults["jwt_audience"].default),
    )


def _with_running_state() -> None:
    """Let commands that need the servers find a running `weerbaar up`."""
    from tools.system import read_state

    os.environ.setdefault("WEERBAAR_DATA_DIR", str(_data_dir()))
    state = read_state(_data_dir())
    if state:
        os.environ.setdefault("WEERBAAR_DATABASE_URL", state["database_url"])
        os.environ.setdefault("WEERBAAR_NATS_URL", state["nats_url"])


def _parser() -> argparse.ArgumentParser:
    """The ``weerbaar`` command's arguments."""
    parser = argparse.ArgumentParser(prog="weerbaar", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run the whole system (embedded NATS and PostgreSQL)")
    token = sub.add_parser("token", help="print a bearer token for a role")
    token.add_argument("--role", required=True)
    token.add_argument("--sub")
    token.add_argument("--email")
    token.add_argument("--organisatie")
    sub.add_parser(
        "screenshots", help="make the README's screenshots of the portal again (browser tests)"
    )
    test = sub.add_parser("test", help="run the checks and every test")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER)
    sub.add_parser("provision", help="create or update the NATS streams")
    sub.add_parser(
        "mail",
        help="list the mail the local mail catcher received (list); send a failed notification"
        " again (resend NOTIFICATIE_ID)",
    ).add_argument("mail_args", nargs=argparse.REMAINDER)
    deadletters = sub.add_parser(
        "deadletters", help="list, re-drive or remove the dead-lettered messages"
    )
    deadletters.add_argument("action", nargs="?", choices=("list", "redrive", "remove"))
    deadletters.add_argument("sequence", nargs="?", type=int, help="the dead letter's sequence")
    verify = sub.add_parser("verify", help="check the event logs against their signed hash chains")
    verify.add_argument("verify_args", nargs=argparse.REMAINDER)
    forget = sub.add_parser("forget", help="forget a dossier's personal data (crypto-shredding)")
    forget.add_argument("forget_args", nargs=argparse.REMAINDER)
    keys = sub.add_parser("keys", help="key-encryption keys: status, rotate, retire")
    keys.add_argument("keys_args", nargs=argparse.REMAINDER)
    for name, what in (
        ("backup", "dump the database and copy the secrets, apart (--to DIR --secrets-to DIR)"),
        (
            "restore",
            "restore a backup with every service stopped (--dump FILE --secrets DIR); the forget"
            " record is re-applied and the stream emptied",
        ),
    ):
        sub.add_parser(name, help=what).add_argument("backup_args", nargs=argparse.REMAINDER)
    sub.add_parser("demo", help="drive a dossier through the whole process (needs ./weerbaar up)")
    faults = sub.add_parser("faults", help="break processes and servers on purpose (tests/faults)")
    faults.add_argument("--long", action="store_true", help="the release run: 2,000 dossiers")
    faults.add_argument("--dossiers", type=int, help="dossiers per scenario (default 120)")
    faults.add_argument("--report-dir", help="where the reports go (default .data/faults)")
    faults.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then pytest's options")
    bench = sub.add_parser("bench", help="measure against the raw limits of the same servers")
    bench.add_argument("--quick", action="store_true", help="tiny counts, seconds (CI)")
    bench.add_argument("--out", help="where to write the JSON (default: under bench/results/)")
    for name, what, default_s in (
        ("stream-rebuild", "rebuild the NATS stream from PostgreSQL after losing it", 600.0),
        ("reconcile", "compare the stream with the event stores: what is extra, missing", 300.0),
    ):
        sub.add_parser(name, help=what).add_argument(
            "--timeout", type=float, default=default_s, help="seconds the whole command may take"
        )
    sub.choices["stream-rebuild"].add_argument(
        "--delete-first",
        action="store_true",
        help="delete the stream first (it holds events the stores lack, or has a gap)",
    )
    sub.add_parser(
        "relay", help="status of the relays; resume one stopped at an event (status|resume SVC)"
    ).add_argument("relay_args", nargs=argparse.REMAINDER)
    for name, what in (
        (
            "replay",
            "rebuild a read model from scratch and switch over (--projection"
            f" {'|'.join(PROJECTIONS)}|all; default intake)",
        ),
        ("audit-export", "the audit record of a dossier or a period: JSON, CSV or HTML"),
        ("retention", "apply the retention periods (dry run unless --apply)"),
    ):
        module = sub.add_parser(name, help=what, add_help=False)
        module.add_argument("module_args", nargs=argparse.REMAINDER)
    dossier = sub.add_parser("dossier", help="a dossier, now or as recorded at --per (compliance)")
    dossier.add_argument("aanvraag_id")
    dossier.add_argument("--per", help="RFC 3339 time, e.g. 2026-05-11T10:00:00+02:00")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``weerbaar`` command."""
    parser = _parser()
    given = list(sys.argv[1:] if argv is None else argv)
    if given and given[0] == "replay":
        return cmd_replay(given[1:])
    if given and given[0] in {"backup", "restore"}:
        return cmd_backup(given)
    if given and given[0] in INTAKE_MODULES:
        # Passed on whole: argparse's REMAINDER would not take options that come first.
        return cmd_intake_module(given[0], given[1:])
    args = parser.parse_args(given)
    needs_sequence = args.command == "deadletters" and args.action in {"redrive", "remove"}
    if needs_sequence and args.sequence is None:
        parser.error(f"deadletters {args.action} needs the dead letter's sequence")
    if args.command == "dossier":
        return cmd_dossier(args)
    if args.command in {
        "provision",
        "deadletters",
        "verify",
        "forget",
        "keys",
        "stream-rebuild",
        "reconcile",
        "relay",
    }:
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
        "faults": cmd_faults,
        "bench": cmd_bench,
        "screenshots": cmd_screenshots,
        "stream-rebuild": cmd_stream_rebuild,
        "reconcile": cmd_reconcile,
        "relay": cmd_relay,
    }[args.command]
    return handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
