"""The runbook holds only commands that a drill runs.

Every command ``deploy/RUNBOOK.md`` gives (in backticks or in a code block: ``weerbaar …``,
``./weerbaar …``, ``python -m …``, other shell tools such as ``nats``, ``docker``, ``pg_restore``,
a PromQL aggregation, and SQL typed into ``psql``) must be run, as written, by a drill: the drills
run commands only through ``Operator.runbook``, ``runbook_sql`` and ``runbook_argv`` (which refuse a
command the runbook does not hold), and this module reads every literal passed to them in every
file of ``tests/drills/``. Requests to a service's HTTP API (``GET notifications /notificaties``)
are the API's own and tested with it; they are not shell commands.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.drills.operator import RUNBOOK, in_runbook

DRILLS = Path(__file__).resolve().parent

#: The first word of a command an operator types (a shell, psql, or Prometheus' query field).
COMMAND_WORDS = frozenset(
    {
        "weerbaar",
        "./weerbaar",
        "python",
        "python3",
        "uv",
        "docker",
        "docker-compose",
        "podman",
        "podman-compose",
        "nats",
        "nats-server",
        "pg_dump",
        "pg_dumpall",
        "pg_restore",
        "pg_basebackup",
        "psql",
        "curl",
        "kill",
        "systemctl",
        "kubectl",
        "promtool",
        "SELECT",
        "sum",
        "rate",
        "increase",
        "max",
        "min",
        "avg",
        "count",
    }
)

_RUNNERS = frozenset({"runbook", "runbook_sql", "runbook_argv"})


def commands_in(markdown: str) -> dict[str, str]:
    """Every command a runbook text gives, with the title of the section it is in."""
    found: dict[str, str] = {}
    section = ""
    prose: list[str] = []

    def take(candidate: str) -> None:
        words = re.sub(r"\s+", " ", candidate).strip().split(" ")
        # A command word alone is a name (the readiness check `nats`), not a command.
        if len(words) > 1 and words[0] in COMMAND_WORDS:
            found.setdefault(" ".join(words), section)

    def flush_prose() -> None:
        for span in re.findall(r"`([^`]+)`", " ".join(prose)):
            take(span)
        prose.clear()

    inside = False
    for line in markdown.splitlines():
        if line.startswith("```"):
            flush_prose()
            inside = not inside
            continue
        if inside:
            take(line.split("  #", 1)[0].removeprefix("$ "))
            continue
        if line.startswith("#"):
            flush_prose()
            section = line.lstrip("#").strip()
            continue
        prose.append(line)
    flush_prose()
    return found


def drilled_commands() -> dict[str, list[str]]:
    """Every command literal the drills run, with the files that run it."""
    found: dict[str, list[str]] = {}
    for path in sorted(DRILLS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if (
                name in _RUNNERS
                and isinstance(first, ast.Constant)
                and isinstance(first.value, str)
            ):
                found.setdefault(first.value, []).append(path.name)
    return found


def test_the_extraction_finds_commands_in_prose_tables_and_code_blocks() -> None:
    sample = "\n".join(
        [
            "## Een sectie",
            "Run `weerbaar keys",
            "rotate` (see `WEERBAAR_KEK_DIR`), then | `nats stream info X` |.",
            "```",
            "weerbaar stream-rebuild --timeout 5   # a comment",
            "```",
            "## Andere",
            "`sum by (service) (x)`, `SELECT 1`, `weerbaar_relay_active`, `docker compose ps`,",
            "the check `nats`",
        ]
    )
    assert commands_in(sample) == {
        "weerbaar keys rotate": "Een sectie",
        "nats stream info X": "Een sectie",
        "weerbaar stream-rebuild --timeout 5": "Een sectie",
        "sum by (service) (x)": "Andere",
        "SELECT 1": "Andere",
        "docker compose ps": "Andere",
    }


def test_every_command_in_the_runbook_is_run_by_a_drill() -> None:
    commands = commands_in(RUNBOOK.read_text())
    drilled = drilled_commands()
    assert "weerbaar stream-rebuild" in commands and "./weerbaar up" in commands
    missing = {command: section for command, section in commands.items() if command not in drilled}
    assert not missing, f"runbook commands no drill runs (section each): {missing}"


def test_every_command_a_drill_runs_is_in_the_runbook() -> None:
    drilled = drilled_commands()
    assert drilled, "no drill runs a runbook command"
    stray = {command: files for command, files in drilled.items() if not in_runbook(command)}
    assert not stray, f"drills run commands the runbook does not give: {stray}"
