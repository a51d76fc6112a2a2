"""Stream provisioning: one owner, file storage, all history, a long duplicate window."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest
from nats.js.api import StorageType

from shared.platform.settings import Settings
from shared.platform.stream import provision

pytestmark = pytest.mark.integration


async def test_streams_keep_all_history_on_file_with_a_long_duplicate_window(
    settings: Settings,
) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        for name, subjects in (
            (settings.stream_name, ["weerbaar.>"]),
            (settings.deadletter_stream_name, ["weerbaar-deadletter.>"]),
        ):
            config = (await js.stream_info(name)).config
            assert config.subjects == subjects
            assert config.storage == StorageType.FILE
            assert (config.max_age or 0) == 0 and config.max_msgs == -1 and config.max_bytes == -1
            assert config.duplicate_window >= 600
            assert config.deny_delete is True
    finally:
        await nc.close()


async def test_provisioning_again_restores_the_declared_configuration(settings: Settings) -> None:
    nc = await nats.connect(settings.nats_url)
    try:
        js = nc.jetstream()
        config = (await js.stream_info(settings.stream_name)).config
        config.duplicate_window = 700.0
        await js.update_stream(config)
        await provision(settings)
        restored = (await js.stream_info(settings.stream_name)).config
        assert restored.duplicate_window == settings.stream_duplicate_window_s
    finally:
        await nc.close()


def test_services_do_not_declare_streams() -> None:
    """Only shared/platform/stream.py (the provisioning owner) creates or updates streams."""
    root = Path(__file__).resolve().parents[2]
    offenders = [
        str(path.relative_to(root))
        for path in [*root.glob("services/**/*.py"), *root.glob("shared/**/*.py")]
        if path.name != "stream.py"
        and any(call in path.read_text() for call in ("add_stream(", "update_stream("))
    ]
    assert offenders == []
