"""The test command installs the machine packages some tests drive, where it can (root, Debian)."""

from __future__ import annotations

from typing import Any

import pytest

from tools import cli


def _machine(monkeypatch: pytest.MonkeyPatch, *, present: set[str], uid: int) -> list[list[str]]:
    calls: list[list[str]] = []
    monkeypatch.setattr(
        cli.shutil, "which", lambda tool: f"/usr/bin/{tool}" if tool in present else None
    )
    monkeypatch.setattr(cli.os, "geteuid", lambda: uid)

    def call(command: list[str], **_: Any) -> int:
        calls.append(command)
        return 0

    monkeypatch.setattr(cli.subprocess, "call", call)
    return calls


def test_the_missing_packages_are_installed_as_root_on_debian(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _machine(monkeypatch, present={"apt-get", "podman", "runc", "npm"}, uid=0)
    cli._install_machine_packages()
    assert calls == [
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap", "chromium"],
    ]


@pytest.mark.parametrize(
    ("present", "uid"),
    [
        ({"apt-get", *cli.MACHINE_PACKAGES}, 0),  # nothing missing
        ({"apt-get"}, 1000),  # not root: the tests that need them say how to get them
        (set(), 0),  # not Debian
    ],
)
def test_nothing_is_installed_otherwise(
    monkeypatch: pytest.MonkeyPatch, present: set[str], uid: int
) -> None:
    calls = _machine(monkeypatch, present=present, uid=uid)
    cli._install_machine_packages()
    assert calls == []
