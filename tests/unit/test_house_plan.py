"""The house plan holds: three layers without import cycles, a public contract that needs nothing
but pydantic, and a shared core that does not name the services it serves.

The layers themselves (tools above services above the platform above the contract, services
independent of each other) are import-linter contracts in pyproject.toml, which ``./weerbaar test``
checks with ``lint-imports`` before the suite. What import-linter does not check is here.
"""

from __future__ import annotations

import ast
import functools
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grimp

from shared.platform.settings import SERVICES

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "services", "tools")


@functools.cache
def _graph() -> grimp.ImportGraph:
    # Imports made only for type checking count too: they are how the cycles hid before. Built
    # once for the module's tests (it only reads the code).
    return grimp.build_graph(*PACKAGES, include_external_packages=True, cache_dir=None)


def _cycles(graph: grimp.ImportGraph, modules: set[str]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(graph.find_modules_directly_imported_by(node) & modules):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = stack[stack.index(node) :]
            del stack[stack.index(node) :]
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(modules):
        if module not in index:
            visit(module)
    return found


def _own_modules(graph: grimp.ImportGraph) -> set[str]:
    return {m for m in graph.modules if m.split(".")[0] in PACKAGES}


def test_no_import_cycles_anywhere() -> None:
    graph = _graph()
    assert _cycles(graph, _own_modules(graph)) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("a", "a.b", "a.c", "a.d"):
        graph.add_module(module)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.b")
    graph.add_import(importer="a.c", imported="a.d")
    assert _cycles(graph, {"a.b", "a.c", "a.d"}) == [["a.b", "a.c"]]


def test_the_public_contract_needs_nothing_but_pydantic() -> None:
    """An integrator can install ``shared/contracts`` alone: the standard library and pydantic
    (with its own ``pydantic_core``)."""
    graph = _graph()
    contract = {m for m in graph.modules if m.startswith("shared.contracts")}
    imported = {
        imported
        for module in contract
        for imported in graph.find_modules_directly_imported_by(module)
        if not imported.startswith("shared.contracts")
    }
    outside = {
        m
        for m in imported
        if m.split(".")[0] not in sys.stdlib_module_names
        and m.split(".")[0] not in ("pydantic", "pydantic_core")
    }
    assert outside == set()


_SERVICE_NAME = "|".join(SERVICES)
#: A service named as code would name it: alone, as a module path, a schema-qualified table or
#: a subject token (``services.x``, ``x.table``, ``weerbaar.x.Event``), a table prefix
#: (``x_events``).
_AS_CODE = re.compile(
    rf"^(?:{_SERVICE_NAME})$|\bservices\.\w"
    rf"|\b(?:{_SERVICE_NAME})[._]\w|\w\.(?:{_SERVICE_NAME})\b"
)


def _code_strings(path: Path) -> Iterator[tuple[int, str]]:
    """The string constants of a module that are not docstrings."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            # An f-string as the code builds it: each placeholder stands for some identifier.
            parts = [part.value if isinstance(part, ast.Constant) else "x" for part in node.values]
            docstrings.update(id(part) for part in node.values)
            yield node.lineno, "".join(str(part) for part in parts)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            yield node.lineno, node.value


def _the_contracts_list_of_producers(path: Path) -> set[int]:
    """The lines of the public contract's ``Dienst`` enum: the one place that names services."""
    if path != ROOT / "shared" / "contracts" / "events.py":
        return set()
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "Dienst":
            return set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    raise AssertionError("shared/contracts/events.py has no Dienst enum")


def test_the_shared_layers_name_no_service_in_code() -> None:
    """The platform and the contract serve every service and name none (tools may, services may):
    what a service brings (its name, its module, its subjects, its tables) it passes in."""
    named = []
    for path in sorted((ROOT / "shared").rglob("*.py")):
        allowed = _the_contracts_list_of_producers(path)
        for line, value in _code_strings(path):
            if line not in allowed and _AS_CODE.search(value):
                named.append(f"{path.relative_to(ROOT)}:{line}: {value[:80]!r}")
    assert named == []


def test_the_name_check_recognises_a_service_named_as_code() -> None:
    for code in (
        "intake",
        "services.notifications",
        "SELECT to_regclass('intake.intake_events')",
        "weerbaar.intake.AanvraagIngediend.*",
        "approval_register",
    ):
        assert _AS_CODE.search(code), code
    for prose in (
        "Dossiers whose mails one notifications process sends at once.",
        "kept by assessment.",
    ):
        assert not _AS_CODE.search(prose), prose


# --- the import contracts: present, naming every service, and able to fail ----------------------


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["name"]: c for c in config["tool"]["importlinter"]["contracts"]}


def test_the_import_contracts_name_the_layers_and_every_service() -> None:
    contracts = _contracts()
    services = [f"services.{s}" for s in SERVICES]
    independence = contracts["Services never import each other"]
    assert independence["type"] == "independence"
    # The portal is a client of the services' APIs: no service, yet it imports none of them.
    portal = "services.portal"
    assert sorted(independence["modules"]) == sorted([*services, portal])
    layers = contracts["Layers: tools above services above the platform above the public contract"]
    assert layers["type"] == "layers"
    assert layers["layers"] == ["tools", "services", "shared.platform", "shared.contracts"]
    rooms = contracts["Every service's rooms"]
    assert rooms["type"] == "layers"
    assert sorted(rooms["containers"]) == sorted([*services, portal])
    assert rooms["layers"] == [
        "bootstrap",
        "(api) | (policies) | (ops)",
        "(adapters)",
        "application | (projections)",
        "(gateway)",
        "(domain)",
    ]
    # The domain is optional only for the portal, which owns no events: every service has one.
    for service in SERVICES:
        package = ROOT / "services" / service
        assert (package / "domain.py").exists() or (package / "domain").is_dir(), service
    assert rooms["exhaustive"] is True
    assert rooms["exhaustive_ignores"] == ["__main__"]


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on a copy of the code in ``root`` (its pyproject.toml)."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _copy_of_the_code(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_rooms_contract_fails_when_a_use_case_imports_its_read_model(tmp_path: Path) -> None:
    code = _copy_of_the_code(tmp_path)
    clean = _lint_imports(code)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    application = code / "services" / "approval" / "application.py"
    application.write_text(
        application.read_text() + "\nimport services.approval.projections  # noqa: E402,F401\n"
    )
    broken = _lint_imports(code)
    assert broken.returncode != 0
    assert "Every service's rooms BROKEN" in broken.stdout
    assert "services.approval.application -> services.approval.projections" in broken.stdout


# --- the size of the shared core ------------------------------------------------------------------


def _lines(folder: Path) -> int:
    return sum(len(path.read_text().splitlines()) for path in folder.rglob("*.py"))


def test_the_shared_core_is_clearly_smaller_than_the_services() -> None:
    # "Clearly": at most 90 % of the five services together (contract + platform against the
    # services' own code). A shared layer that grows past that is taking the services' work.
    shared = _lines(ROOT / "shared" / "contracts") + _lines(ROOT / "shared" / "platform")
    services = _lines(ROOT / "services")
    assert shared == _lines(ROOT / "shared")  # nothing in shared/ beside the two layers
    assert shared <= 0.9 * services, f"shared {shared} lines, services {services}"
