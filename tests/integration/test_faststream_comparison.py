"""The FastStream comparison benchmark runs end to end and reports what ARCHITECTURE.md quotes.

Runs ``python -m bench.faststream_consumer`` with 300 messages and one round (its own embedded
nats-server): every variant consumes and acks exactly those messages and uses CPU doing so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.faststream_consumer import MEDIAN_FIELDS, VARIANTS

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MESSAGES = 300


def test_every_variant_consumes_every_message(tmp_path: Path) -> None:
    out = tmp_path / "faststream.json"
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.faststream_consumer",
            "--messages",
            str(MESSAGES),
            "--rounds",
            "1",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report = json.loads(out.read_text())

    # What the section "Why the consumers do not run on FastStream" quotes.
    assert report["messages"] == MESSAGES
    assert report["rounds"] == 1
    assert report["batch"] == 50
    assert report["machine"]["cpus"] >= 1
    assert report["versions"]["faststream"] == "0.7.8"
    assert report["started_at"]
    assert report["command"].startswith("python -m bench.faststream_consumer")
    assert set(report["variants"]) == set(VARIANTS)
    for name, variant in report["variants"].items():
        assert variant["consumed"] == [MESSAGES], name
        assert variant["acked"] == [MESSAGES], name
        assert set(MEDIAN_FIELDS) <= set(variant["median"]), name
        assert variant["median"]["cpu_s_per_msg"] > 0, name
        assert variant["median"]["msgs_per_s"] > 0, name
        assert variant["description"], name
    # The table the command prints carries every variant.
    for name in VARIANTS:
        assert f"| {name} |" in completed.stdout
