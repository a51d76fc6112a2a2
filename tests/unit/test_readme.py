"""README.md is the front door: short, with the two commands, and a "where next" table whose every
document exists. Each reader's document is linked from it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from shared.platform.settings import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_LINES = 150

#: The document of each reader (issue 17): linked from the table, present in the repository.
READERS_DOCUMENTS = {
    "deploy/RUNBOOK.md",
    "docs/integrating.md",
    "docs/compliance.md",
    "docs/reliability.md",
    "bench/README.md",
    "ARCHITECTURE.md",
}

_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _relative_links(text: str) -> list[str]:
    return [link for link in _LINK.findall(text) if not re.match(r"^[a-z]+:", link)]


def test_the_readme_is_at_most_150_lines() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines, at most {MAX_LINES}"


def test_the_readme_keeps_its_two_commands() -> None:
    quick_start = _section(README.read_text(), "## Quick start")
    assert "```\n./weerbaar up\n./weerbaar test\n```" in quick_start


def test_every_document_the_where_next_table_links_exists() -> None:
    table = _section(README.read_text(), "## Where next")
    links = _relative_links(table)
    assert links, "the where-next table links its documents"
    for link in links:
        target = (README.parent / link.split("#", 1)[0]).resolve()
        assert target.is_file(), f"README.md links {link}, which does not exist"
    linked = {
        str((README.parent / link.split("#", 1)[0]).resolve().relative_to(ROOT)) for link in links
    }
    assert linked >= READERS_DOCUMENTS, f"not linked: {sorted(READERS_DOCUMENTS - linked)}"


def _anchors(document: Path) -> set[str]:
    """The anchors GitHub gives a Markdown document's headings."""
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", document.read_text(), flags=re.MULTILINE):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_every_relative_link_in_the_readers_documents_resolves() -> None:
    for name in sorted(READERS_DOCUMENTS | {"README.md", "docs/reliability-log.md"}):
        document = ROOT / name
        for link in _relative_links(document.read_text()):
            path, _, anchor = link.partition("#")
            target = (document.parent / path).resolve() if path else document
            assert target.exists(), f"{name} links {link}, which does not exist"
            if anchor and target.suffix == ".md":
                assert anchor in _anchors(target), f"{name} links {link}: no such heading"


def test_every_alert_links_a_section_of_the_runbook() -> None:
    """The operators' document says what each alert means: its `runbook` link resolves."""
    alerts = yaml.safe_load((ROOT / "deploy" / "alerts.yml").read_text())
    runbook = ROOT / "deploy" / "RUNBOOK.md"
    anchors = _anchors(runbook)
    for group in alerts["groups"]:
        for rule in group["rules"]:
            path, _, anchor = rule["annotations"]["runbook"].partition("#")
            assert (runbook.parent / path).resolve() == runbook, rule["alert"]
            assert anchor in anchors, f"{rule['alert']}: RUNBOOK.md has no section #{anchor}"


def test_the_default_ports_are_the_ones_the_readme_and_compose_give() -> None:
    # The ports are derived from the contract's list of services (``Dienst``): reordering that
    # list would move every service to another port under its operators' feet.
    row = re.compile(r"^\| (\w+) \| (\d+) \| http://127\.0\.0\.1:\2/docs \|$", re.MULTILINE)
    table = dict(row.findall(README.read_text()))
    assert {service: int(port) for service, port in table.items()} == DEFAULT_PORTS
    compose = (ROOT / "deploy" / "compose.yaml").read_text()
    for service, port in DEFAULT_PORTS.items():
        assert f'[python, -m, services.{service}, --role, all, --port, "{port}"]' in compose


def test_every_table_of_figures_in_the_reliability_document_names_its_command_and_run() -> None:
    """The fault suite's figures are copied from runs: each table of them follows a paragraph that
    names the command that made it (``./weerbaar faults …``) and the commit(s) it ran on, and each
    such commit is one of this repository's."""
    text = (ROOT / "docs" / "reliability.md").read_text()
    figures = _section(text, "## The latest figures")
    blocks = re.split(r"\n(?=\*\*At )", figures)[1:]
    assert len(blocks) >= 2, "the CI size and the long size"
    for block in blocks:
        intro, _, table = block.partition("\n| ")
        assert table, f"no table after {intro[:60]!r}"
        assert re.search(r"`\./weerbaar faults[^`]*`", intro), intro[:120]
        commits = re.findall(r"`([0-9a-f]{7,40})`", block)
        assert commits, f"no commit named for {intro[:60]!r}"
        for commit in commits:
            known = subprocess.run(
                ["git", "cat-file", "-e", f"{commit}^{{commit}}"],
                cwd=ROOT,
                capture_output=True,
                check=False,
            )
            assert known.returncode == 0, f"{commit} is not a commit of this repository"


def test_the_readmes_screenshots_are_the_ones_the_screenshots_command_makes() -> None:
    """Each image the README shows is committed, is a PNG, is one ``weerbaar screenshots``
    copies, and is saved by the browser test it names (so the command makes it again)."""
    from tools.cli import README_SCREENSHOTS

    shown = re.findall(r"!\[[^\]]+\]\(docs/screenshots/([^)]+)\)", README.read_text())
    assert shown, "the README shows no screenshot of the portal"
    assert sorted(shown) == sorted(README_SCREENSHOTS)
    for name, module in README_SCREENSHOTS.items():
        image = ROOT / "docs" / "screenshots" / name
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        saved_as = f'"{Path(name).stem}"'
        assert saved_as in (ROOT / module).read_text(), f"{module} saves no {name}"
