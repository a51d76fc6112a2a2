"""FastStream is a development dependency only (the comparison benchmark), not the product's.

ARCHITECTURE.md, "Why the consumers do not run on FastStream", says why; this keeps it so: not in
``[project.dependencies]`` and imported by no module of ``shared`` or ``services``.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement.strip())
    assert match, requirement
    return match.group(0).lower().replace("_", "-")


def test_faststream_is_not_a_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = [_name(r) for r in project["project"]["dependencies"]]
    assert "faststream" not in runtime
    for extra in project["project"].get("optional-dependencies", {}).values():
        assert "faststream" not in [_name(r) for r in extra]
    # The benchmark that compares it still has it.
    dev = [_name(r) for r in project["dependency-groups"]["dev"] if isinstance(r, str)]
    assert "faststream" in dev


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_product_module_imports_faststream() -> None:
    modules = [
        p for package in ("shared", "services", "tools") for p in (ROOT / package).rglob("*.py")
    ]
    assert modules
    importing = [
        str(path.relative_to(ROOT))
        for path in modules
        if any(name.split(".")[0] == "faststream" for name in _imports(path))
    ]
    assert importing == []
