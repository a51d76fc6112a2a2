"""Anyone's clone, without the team folder (``../shared``) beside it, passes its tests.

The committed files are copied where no ``shared`` folder sits beside them, and the suite is
collected there (every module imports) and the contract tests run there: they pass, and the
domain contract reports that it did not run and why. With ``CI`` set its absence fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _copy_of_the_repository(into: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    repo = into / "weerbaar"
    for name in filter(None, files):
        source = ROOT / name.decode()
        if source.is_file():
            target = repo / name.decode()
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    assert not (repo.parent / "shared").exists()
    return repo


def _pytest(repo: Path, *args: str, ci: bool = False) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_a_clone_without_the_team_folder_collects_and_passes_its_contract_tests(
    tmp_path: Path,
) -> None:
    repo = _copy_of_the_repository(tmp_path)

    collected = _pytest(repo, "--collect-only", "-q")
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    assert "error" not in collected.stdout.lower().splitlines()[-1]

    contract = _pytest(repo, "tests/contract", "-q", "-rs")
    assert contract.returncode == 0, contract.stdout[-3000:]
    assert "the product definition is not beside this clone" in contract.stdout
    assert "SKIPPED" in contract.stdout

    in_ci = _pytest(repo, "tests/contract/test_domain_md.py", "-q", ci=True)
    assert in_ci.returncode == 1, in_ci.stdout[-3000:]
    assert "the product definition is not beside this clone" in in_ci.stdout
