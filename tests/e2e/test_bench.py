"""`weerbaar bench --quick`: the benchmark command runs end to end and reports every line.

Only that it works and reports everything is checked; its figures are not (shared, noisy machines).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.product import PORTAL_ACTIONS, PORTAL_PAGES

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]

#: Every line of the issue's table, and whether it pairs the product with a raw limit.
LINES = {
    "commands_1": True,
    "commands_8": True,
    "plain_1": True,
    "plain_8": True,
    "relay": True,
    "rebuild": True,
    "rebuild_fold": True,
    "visible_20": False,
    "visible": False,
    "lifecycle": False,
    "cpu_registration": False,
    "cpu": False,
    "list": False,
    "memory": False,
    "portal": False,
    "portal_action": False,
}
#: Lines that report without a goal to meet.
REPORTED = {"plain_1", "plain_8", "rebuild_fold", "visible", "portal_action"}


def test_quick_bench_prints_every_line_with_its_ratio_and_writes_the_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEERBAAR_")}
    finished = subprocess.run(
        [sys.executable, "-m", "tools.cli", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]

    document = json.loads(out.read_text())
    assert document["quick"] is True
    lines = {line["key"]: line for line in document["table"]}
    assert set(lines) == set(LINES)
    for key, has_raw in LINES.items():
        line = lines[key]
        assert line["measure"] in finished.stdout, key
        assert line["goal"], key
        if has_raw:
            assert line["ratio"] is not None and line["ratio"] > 0, key
            assert line["raw"] != "—", key
        if key in REPORTED:
            assert line["met"] is None, key
        else:
            assert line["met"] in (True, False), key
            assert line["product"] != "—", key

    results = document["results"]
    # Every measurement did its work: nothing failed, every driven dossier was closed.
    assert results["commands_1"]["failed"] == 0 and results["commands_1"]["done"] > 0
    assert results["commands_8"]["failed"] == 0 and results["commands_8"]["done"] > 0
    assert results["relay"]["published"] == results["relay_seed"]["public_events"]
    for visible in ("visible_20", "visible"):
        assert results[visible]["failed"] == 0
        assert results[visible]["never_visible_within_60s"] == 0
    assert results["lifecycle"]["failed"] == 0
    assert results["lifecycle"]["completed"] == results["lifecycle"]["dossiers"]
    # The rebuild read every stored event the raw limit read, and rebuilt the public events the
    # live projection holds (the raw limit of its fold step).
    assert results["rebuild"]["stored_events"] == results["raw_read_decode"]["rows"] > 0
    assert results["rebuild"]["public_events"] == results["raw_read_decode_public"]["rows"] > 0
    assert results["list_seed"]["total"] >= 500
    assert set(results["rss_idle_mb"]) == {
        "intake",
        "scheduling",
        "assessment",
        "approval",
        "notifications",
    }
    # CPU per dossier of every service process and of both servers, read from /proc.
    for cpu in (results["cpu_per_dossier"], results["commands_1"]["cpu"]):
        assert set(cpu["per_process_s"]) == set(results["rss_idle_mb"]) | {"postgresql", "nats"}
        assert all(value >= 0 for value in cpu["per_process_s"].values())
        assert cpu["total_s"] > 0
    # Every portal page of the list was opened (as its person) and timed.
    portal = results["portal"]
    assert set(portal["pages"]) == {name for name, *_ in PORTAL_PAGES}
    assert all(page["p95_ms"] > 0 for page in portal["pages"].values())
    assert set(portal["actions"]) == {name for name, *_ in PORTAL_ACTIONS}
    assert all(action["p95_ms"] > 0 for action in portal["actions"].values())
