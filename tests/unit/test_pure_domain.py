"""Every service's domain loads without a database, a broker, telemetry or a web framework.

The rules are the part of a service that tests should reach in milliseconds and readers should
understand without the machinery: a domain builds on pydantic, the standard library, the pure base
types (``shared.platform.model``), the pure helpers of the platform and the public contract.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("intake", "scheduling", "assessment", "approval", "notifications")

#: Top-level packages (and one sub-package) a domain must not load, directly or through anything.
MACHINERY = (
    "psycopg",
    "psycopg_pool",
    "nats",
    "opentelemetry",
    "prometheus_client",
    "fastapi",
    "eventsourcing.postgres",
)

#: What a domain module may import besides the standard library and its own pure modules.
ALLOWED = (
    "pydantic",
    "pydantic_core",
    # The feestdagen of the Netherlands for scheduling's working-day calendar: data, no I/O.
    "holidays",
    "shared.contracts",
    "shared.platform.model",
    "shared.platform.email_address",
    "shared.platform.errors",
)


def _domain_modules(service: str) -> list[str]:
    """The service's domain: its module, or the package and every module in it."""
    package = ROOT / "services" / service / "domain"
    parts = sorted(p.stem for p in package.glob("*.py") if p.stem != "__init__")
    return [f"services.{service}.domain", *(f"services.{service}.domain.{p}" for p in parts)]


def _module_path(module: str) -> Path:
    path = ROOT / module.replace(".", "/")
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def _loaded_by_import(*modules: str) -> list[str]:
    names = ", ".join(modules)
    out = subprocess.run(
        [sys.executable, "-c", f"import {names}, sys; print('\\n'.join(sorted(sys.modules)))"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.split()


def _machinery(modules: list[str]) -> list[str]:
    return [m for m in modules if any(m == b or m.startswith(f"{b}.") for b in MACHINERY)]


@pytest.mark.parametrize("service", SERVICES)
def test_importing_the_domain_loads_no_machinery(service: str) -> None:
    modules = _domain_modules(service)
    loaded = _loaded_by_import(*modules)
    assert set(modules) <= set(loaded)
    assert _machinery(loaded) == []


def test_the_check_sees_machinery_when_it_is_loaded() -> None:
    # The application records in PostgreSQL: the same check must find psycopg there.
    loaded = _loaded_by_import("services.approval.application")
    assert "psycopg" in _machinery(loaded)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found - {"__future__"}


def _not_allowed(service: str, module: str, seen: set[str]) -> list[str]:
    """The imports of ``module`` (and of the service's own modules it imports) outside the rule."""
    seen.add(module)
    wrong = []
    for name in sorted(_imports(_module_path(module))):
        if name.split(".")[0] in sys.stdlib_module_names:
            continue
        if any(name == a or name.startswith(f"{a}.") for a in ALLOWED):
            continue
        if name.startswith(f"services.{service}."):
            if name not in seen:  # its own module: held to the same rule
                wrong += _not_allowed(service, name, seen)
            continue
        wrong.append(f"{module} imports {name}")
    return wrong


@pytest.mark.parametrize("service", SERVICES)
def test_the_domain_imports_only_pure_modules(service: str) -> None:
    seen: set[str] = set()
    assert [w for m in _domain_modules(service) for w in _not_allowed(service, m, seen)] == []
