"""Read the product definition (domain.md) that the public contract must follow."""

from __future__ import annotations

import re
from pathlib import Path

# In CI the shared folder sits beside the repository: <root>/../shared/domain.md.
DOMAIN_MD = Path(__file__).parents[2].parent / "shared" / "domain.md"

ABSENT = (
    f"the product definition is not beside this clone ({DOMAIN_MD}): the public contract was not"
    " checked against domain.md (CI has it there, and fails without it)"
)


def domain_md_present() -> bool:
    """Whether domain.md is where CI puts it (anyone's clone need not have it)."""
    return DOMAIN_MD.is_file()


_PASCAL_CASE = re.compile(r"\b[A-Z][a-z]+(?:[A-Z][a-z]+)+\b")


def domain_text() -> str:
    """The text of domain.md; fails loudly when it is not where CI puts it."""
    if not DOMAIN_MD.is_file():
        raise FileNotFoundError(f"domain.md not found at {DOMAIN_MD}")
    return DOMAIN_MD.read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if match is None:
        raise ValueError(f"domain.md has no '## {heading}' section")
    return match.group(1)


def events_table() -> dict[str, list[str]]:
    """The Events table of domain.md: service (or `every service`) → event names."""
    table: dict[str, list[str]] = {}
    for line in _section(domain_text(), "Events").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) != 2 or cells[0] in {"service", ""}:
            continue
        if set(cells[0]) <= set("-: "):
            continue
        table[cells[0]] = _PASCAL_CASE.findall(cells[1])
    if not table:
        raise ValueError("domain.md's Events table is empty or has changed shape")
    return table


def contract_templates() -> dict[str, str]:
    """The wire conventions stated in domain.md's 'Public contract for integrators' section."""
    section = _section(domain_text(), "Public contract for integrators")

    def find(pattern: str, what: str) -> str:
        match = re.search(pattern, section)
        if match is None:
            raise ValueError(f"domain.md no longer states the {what}")
        return match.group(1)

    return {
        "stream": find(r"stream `([A-Z]+)`", "stream name"),
        "subject": find(r"subjects `([^`]+)`", "subject template"),
        "type_filter": find(r"Filter a type with\s+`([^`]+)`", "type filter example"),
        "dossier_filter": find(r"a dossier with `([^`]+)`", "dossier filter template"),
        "type": find(r"`type` = `([^`]+)`", "type template"),
    }
