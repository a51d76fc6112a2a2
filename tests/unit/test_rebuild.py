"""The rebuild core every ``weerbaar replay`` engine runs on: its switch rounds, its command line
and its exit codes (the engines themselves run on PostgreSQL in tests/e2e/test_compliance.py)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from shared.platform import rebuild


class Fake(rebuild.Rebuild[rebuild.Outcome]):
    """An engine whose sources and switch are scripted (no database)."""

    def __init__(
        self,
        *,
        target: str | None = None,
        complete: bool = True,
        switch_on_round: int | None = 1,
        raises: BaseException | None = None,
    ) -> None:
        super().__init__({}, live="voorbeeld", tables=("rijen",), target=target, progress=False)
        self.complete = complete
        self.switch_on_round = switch_on_round
        self.raises = raises
        self.budgets: list[int | None] = []
        self.switches = 0
        self.restarted: bool | None = None

    def ddl(self) -> Sequence[str]:
        return ()

    def outcome(self) -> rebuild.Outcome:
        return rebuild.Outcome()

    def prepare(self, *, restart: bool = False) -> None:
        self.restarted = restart

    def load(self, outcome: rebuild.Outcome, budget: int | None) -> bool:
        if self.raises is not None:
            raise self.raises
        self.budgets.append(budget)
        return self.complete

    def ready(self, conn: Any, outcome: rebuild.Outcome) -> bool:
        raise AssertionError("switch is scripted")

    def switch(self, outcome: rebuild.Outcome) -> bool:
        self.switches += 1
        if self.switches != self.switch_on_round:
            return False
        outcome.switched = True
        return True


@pytest.fixture(autouse=True)
def _no_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    @contextmanager
    def free(connect: Any, target: str) -> Iterator[None]:
        yield

    monkeypatch.setattr(rebuild, "one_run_per_target", free)


def test_a_rebuild_behind_at_the_switch_reads_on_and_switches_when_caught_up() -> None:
    fake = Fake(switch_on_round=3)
    outcome = fake.run(budget=None)
    assert outcome.complete and outcome.switched
    assert fake.switches == 3
    assert fake.budgets == [None, None, None]  # the first load, then one per failed round


def test_a_rebuild_that_stays_behind_gives_up_and_keeps_the_live_read_model() -> None:
    fake = Fake(switch_on_round=None)
    with pytest.raises(rebuild.Lagging, match="faster than the rebuild reads them"):
        fake.run()
    assert fake.switches == rebuild.SWITCH_ROUNDS
    assert len(fake.budgets) == 1 + rebuild.SWITCH_ROUNDS


def test_an_incomplete_or_unswitched_run_does_not_switch() -> None:
    partial = Fake(complete=False)
    assert not partial.run(budget=7).switched
    assert partial.budgets == [7] and partial.switches == 0
    kept = Fake()
    outcome = kept.run(switch=False)
    assert outcome.complete and not outcome.switched and kept.switches == 0


@pytest.mark.parametrize("target", ["voorbeeld", "voorbeeld_previous"])
def test_the_live_and_previous_schemas_are_no_target(target: str) -> None:
    with pytest.raises(ValueError, match=f"the target must not be {target}"):
        Fake(target=target)


def _command(argv: list[str], fake: Fake) -> tuple[int, list[str]]:
    parser = rebuild.parser("weerbaar replay", "Test.", "voorbeeld_replay", "events")
    said: list[str] = []
    code = rebuild.command(
        parser,
        parser.parse_args(argv),
        "voorbeeld",
        live_hash=lambda: "abc123",
        build=lambda: fake,
        out=said.append,
    )
    return code, said


@pytest.mark.parametrize(
    ("fake", "code", "last"),
    [
        (Fake(), 0, "switched; the previous read model is in schema voorbeeld_previous"),
        (Fake(complete=False), 0, "not complete yet; run it again to continue"),
        (Fake(switch_on_round=None), 3, "not switched, the live read model stays"),
        (Fake(raises=rebuild.Busy("another rebuild into x is running")), 4, "another rebuild"),
        (Fake(raises=KeyboardInterrupt()), 130, "interrupted; run it again to continue"),
    ],
)
def test_the_command_says_how_the_rebuild_ended_and_exits_with_its_code(
    fake: Fake, code: int, last: str
) -> None:
    exit_code, said = _command([], fake)
    assert exit_code == code
    assert said[-1].startswith("weerbaar replay: voorbeeld: ")
    assert last in said[-1]


def test_the_command_passes_its_options_to_the_rebuild() -> None:
    fake = Fake()
    code, said = _command(["--max-events", "7", "--no-switch", "--restart"], fake)
    assert code == 0
    assert fake.restarted is True and fake.budgets == [7] and fake.switches == 0
    assert (
        said[-1] == "weerbaar replay: voorbeeld: rebuilt in schema voorbeeld_replay (not switched)"
    )


def test_hash_prints_the_live_read_models_hash_and_rebuilds_nothing() -> None:
    fake = Fake()
    assert _command(["--hash"], fake) == (0, ["abc123"])
    assert fake.restarted is None and fake.budgets == []


def test_a_target_that_is_the_live_schema_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = rebuild.parser("weerbaar replay", "Test.", "voorbeeld_replay", "events")
    args = parser.parse_args(["--target", "voorbeeld"])
    with pytest.raises(SystemExit) as exited:
        rebuild.command(
            parser,
            args,
            "voorbeeld",
            live_hash=lambda: "",
            build=lambda: Fake(target=args.target),
            out=print,
        )
    assert exited.value.code == 2
    assert "the target must not be voorbeeld" in capsys.readouterr().err


def test_every_rebuild_engine_is_the_one_core() -> None:
    """The dossier projection's, the services' read tables' and the registers' rebuilds are the
    core with what varies; no module defines a rebuild of its own beside it (a class with the
    core's skeleton, prepare + run + switch, that is not the core)."""
    import ast
    from pathlib import Path

    from services.intake.projections.rebuild import Rebuild as DossierRebuild
    from shared.platform import rebuild
    from shared.platform.projection import Rebuild as TablesRebuild
    from shared.platform.register import RegisterRebuild

    for engine in (DossierRebuild, TablesRebuild, RegisterRebuild):
        assert issubclass(engine, rebuild.Rebuild), engine
    root = Path(__file__).resolve().parents[2]
    skeleton = {"prepare", "run", "switch"}
    own = []
    for path in [
        *root.glob("shared/**/*.py"),
        *root.glob("services/**/*.py"),
        *root.glob("tools/*.py"),
    ]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                methods = {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
                bases = {ast.unparse(b) for b in node.bases}
                if skeleton <= methods and not any("Rebuild" in b for b in bases):
                    own.append(f"{path.relative_to(root)}:{node.name}")
    assert own == [str(Path("shared/platform/rebuild.py")) + ":Rebuild"]
