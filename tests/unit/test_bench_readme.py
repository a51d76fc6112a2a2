"""The performance document (bench/README.md) quotes one full benchmark run: the committed
results file's table, word for word, made by the current benchmark's lines, with the command that
made it."""

from __future__ import annotations

import json
from pathlib import Path

from bench.system import _print_table, table

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "system.json"
DOCUMENT = ROOT / "bench" / "README.md"


def _system_benchmark_section() -> str:
    text = DOCUMENT.read_text()
    start = text.index("## The system benchmark")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_the_performance_document_quotes_the_committed_full_run_with_its_command() -> None:
    document = json.loads(RESULTS.read_text())
    assert document["quick"] is False, "bench/results/system.json must hold a full run"
    # The table is what the current benchmark makes of that run's figures: no line missing,
    # none renamed since.
    rebuilt = _print_table(table(document["results"]))
    assert rebuilt == document["table_markdown"]
    section = _system_benchmark_section()
    assert document["table_markdown"] in section
    assert "./weerbaar bench" in section
    assert "bench/results/system.json" in section  # where the figures are
    assert document["when"][:10] in section  # the run's date is named with it
