"""A published type string always means the same schema: changing one needs a new version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import Field

from shared.contracts import events as ev
from shared.contracts.envelope import UtcDatetime
from shared.contracts.generate import (
    LOCK_FILE,
    SCHEMA_DIR,
    lock_violations,
    main,
    read_lock,
    run,
)
from shared.contracts.registry import ALL_EVENTS

TYPE_V1 = "nl.weerbaarbestuur.RapportVrijgegeven.v1"
TYPE_V2 = "nl.weerbaarbestuur.RapportVrijgegeven.v2"


class RapportVrijgegevenMetExtraVeld(ev.RapportVrijgegeven):
    """The report version was released to the werkgever, after the bestuurder's consent."""

    event_name = "RapportVrijgegeven"
    vrijgegeven_op: UtcDatetime | None = Field(default=None, description="When released.")


class RapportVrijgegevenV2(RapportVrijgegevenMetExtraVeld):
    """The report version was released to the werkgever, after the bestuurder's consent."""

    event_name = "RapportVrijgegeven"
    version = 2


class RapportVrijgegevenAndersBeschreven(ev.RapportVrijgegeven):
    """Released to the werkgever (only the wording of this description changed)."""

    event_name = "RapportVrijgegeven"


def replacing(model_cls: type[ev.PublicEvent]) -> tuple[type[ev.PublicEvent], ...]:
    """ALL_EVENTS with the model of the same type string swapped for `model_cls`."""
    return tuple(
        model_cls if (m.event_name, m.version) == (model_cls.event_name, model_cls.version) else m
        for m in ALL_EVENTS
    )


@pytest.fixture
def schema_dir(tmp_path: Path) -> Path:
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMA_DIR, copy)
    return copy


def snapshot(folder: Path) -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(folder.iterdir())}


def test_committed_lock_matches_every_current_schema() -> None:
    assert lock_violations(ALL_EVENTS, read_lock(SCHEMA_DIR)) == []


def test_adding_a_field_without_a_new_version_is_refused(
    schema_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(schema_dir)

    status = run(schema_dir, check=False, models=replacing(RapportVrijgegevenMetExtraVeld))

    assert status == 1
    assert TYPE_V1 in capsys.readouterr().err
    assert snapshot(schema_dir) == before


def test_changed_schema_also_fails_the_check(
    schema_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = run(schema_dir, check=True, models=replacing(RapportVrijgegevenMetExtraVeld))

    assert status == 1
    assert "version" in capsys.readouterr().err


def test_a_new_version_is_added_to_the_lock_and_the_old_entry_kept(schema_dir: Path) -> None:
    old_lock = read_lock(schema_dir)

    status = run(schema_dir, check=False, models=(*ALL_EVENTS, RapportVrijgegevenV2))

    new_lock = read_lock(schema_dir)
    assert status == 0
    assert new_lock[TYPE_V1] == old_lock[TYPE_V1]
    assert TYPE_V2 in new_lock
    assert (schema_dir / "RapportVrijgegeven.v2.json").exists()
    assert run(schema_dir, check=True, models=(*ALL_EVENTS, RapportVrijgegevenV2)) == 0


def test_a_description_may_change_without_a_new_version(schema_dir: Path) -> None:
    models = replacing(RapportVrijgegevenAndersBeschreven)

    assert lock_violations(models, read_lock(schema_dir)) == []
    assert run(schema_dir, check=True, models=models) == 1  # the published file must follow
    assert run(schema_dir, check=False, models=models) == 0
    assert run(schema_dir, check=True, models=models) == 0


def test_check_passes_on_the_committed_files(schema_dir: Path) -> None:
    assert main(["--check", "--schema-dir", str(schema_dir)]) == 0


def test_check_names_each_file_that_differs(
    schema_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (schema_dir / "AfspraakGepland.v1.json").write_text("{}\n", encoding="utf-8")
    (schema_dir / "cloudevent.json").unlink()
    (schema_dir / "Verzonnen.v1.json").write_text("{}\n", encoding="utf-8")
    before = snapshot(schema_dir)

    status = main(["--check", "--schema-dir", str(schema_dir)])

    err = capsys.readouterr().err
    assert status == 1
    assert "AfspraakGepland.v1.json" in err
    assert "cloudevent.json" in err
    assert "Verzonnen.v1.json" in err
    assert "RapportVrijgegeven.v1.json" not in err
    assert snapshot(schema_dir) == before


def test_generation_restores_what_check_reports(schema_dir: Path) -> None:
    (schema_dir / "AfspraakGepland.v1.json").write_text("{}\n", encoding="utf-8")

    assert main(["--schema-dir", str(schema_dir)]) == 0
    assert main(["--check", "--schema-dir", str(schema_dir)]) == 0
    assert snapshot(schema_dir) == snapshot(SCHEMA_DIR)


def test_generation_into_an_empty_folder_writes_a_lock_of_every_type(tmp_path: Path) -> None:
    assert main(["--schema-dir", str(tmp_path)]) == 0

    fresh = json.loads((tmp_path / LOCK_FILE).read_text(encoding="utf-8"))
    assert set(fresh) == {f"nl.weerbaarbestuur.{m.event_name}.v{m.version}" for m in ALL_EVENTS}
    assert fresh.items() <= read_lock(SCHEMA_DIR).items()


def test_a_corrupt_lock_is_reported(schema_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (schema_dir / LOCK_FILE).write_text("[1, 2]", encoding="utf-8")

    assert main(["--check", "--schema-dir", str(schema_dir)]) == 1
    assert LOCK_FILE in capsys.readouterr().err
