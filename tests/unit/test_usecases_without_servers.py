"""Every service's use-case tests run on the in-memory store with no server to reach.

The same tests run on PostgreSQL too (their ``postgres`` parameter, in the whole suite); here the
``memory`` half runs in a child pytest whose PostgreSQL and NATS addresses lead nowhere, so a
use case that needed a server would fail instead of quietly using one. No use-case test is
PostgreSQL's alone: each one that runs on PostgreSQL runs in memory too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["approval", "assessment", "intake", "notifications", "scheduling"]


def test_every_service_has_use_case_tests() -> None:
    for service in SERVICES:
        assert (ROOT / "tests" / "usecases" / f"test_{service}.py").is_file(), service


def _collected(*args: str) -> list[str]:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/usecases", "--collect-only", "-q", *args],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    return [line for line in run.stdout.splitlines() if "::" in line]


def test_no_use_case_test_is_postgresqls_alone() -> None:
    every = _collected()
    on_postgres = _collected("-m", "integration")
    assert on_postgres, "the PostgreSQL half is collected too"
    alone = [
        test
        for test in on_postgres
        if "[postgres" not in test or test.replace("[postgres", "[memory", 1) not in every
    ]
    assert alone == []


def test_the_in_memory_use_case_tests_need_no_server(tmp_path: Path) -> None:
    report = tmp_path / "usecases.xml"
    env = {
        **os.environ,
        # Nothing listens on port 1: a test that reached for a server would fail.
        "WEERBAAR_TEST_POSTGRES_URL": "postgresql://nobody@127.0.0.1:1/none",
        "WEERBAAR_TEST_NATS_URL": "nats://127.0.0.1:1",
    }
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/usecases",
            "-k",
            "memory",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={report}",
        ],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    # The child pytest's own report, written just now: not outside input.
    cases = ET.parse(report).getroot().iter("testcase")  # noqa: S314
    per_service = Counter(case.get("classname", "").split(".")[-1] for case in cases)
    for service in SERVICES:
        assert per_service[f"test_{service}"] >= 3, per_service
