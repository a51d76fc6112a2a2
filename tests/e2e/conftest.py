"""The five services as separate processes on the session's real servers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import mail_catcher, reset_streams, settings_for, system_on
from tools.mailcatcher import MailCatcher
from tools.system import System


@pytest.fixture
def catcher(tmp_path: Path) -> Iterator[MailCatcher]:
    """The test's SMTP server."""
    with mail_catcher(tmp_path / "mail") as running:
        yield running


@pytest.fixture
def system(
    tmp_path: Path, fresh_database: str, nats_url: str, catcher: MailCatcher
) -> Iterator[System]:
    """All five services running against a fresh database and fresh streams."""
    reset_streams(settings_for(fresh_database, nats_url, tmp_path))
    running = system_on(
        tmp_path / "data",
        fresh_database,
        nats_url,
        catcher,
        WEERBAAR_DEADLINE_CHECK_INTERVAL_S="0.5",
    )
    running.data_dir.mkdir(parents=True)
    running.start_services(timeout=90)
    try:
        yield running
    finally:
        running.stop()
