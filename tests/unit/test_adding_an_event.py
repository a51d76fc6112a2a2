"""Adding an event touches the places ARCHITECTURE.md names, all of them.

The section "Adding an event: the places it touches" lists them; this walks every public event of
the contract through the places that every event must be in (its model and registry entry, its
schema and the lock, the AsyncAPI document, the one gateway that makes it, the dossier fold's
decision about it), so an event added in fewer places fails here, and a list that stops saying
how many places there are, or names a place that is not there, fails too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from services.intake.projections import dossier
from shared.contracts import events as ev
from shared.contracts.registry import ALL_EVENTS, TYPE_PREFIX, event_type
from shared.platform.settings import SERVICES

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "shared" / "contracts" / "schemas"
NUMBERS = {"Nine": 9, "Ten": 10, "Eight": 8, "Eleven": 11, "Twelve": 12, "Seven": 7}


def _section() -> str:
    text = (ROOT / "ARCHITECTURE.md").read_text()
    start = text.index("### Adding an event: the places it touches")
    end = text.index("\n## ", start)
    return text[start:end]


def _places() -> list[str]:
    return re.findall(r"^\d+\. (.+(?:\n   .+)*)", _section(), flags=re.MULTILINE)


def test_the_list_says_how_many_places_there_are_and_names_only_real_ones() -> None:
    places = _places()
    said = re.search(r"^(\w+) places", _section(), flags=re.MULTILINE)
    assert said is not None and NUMBERS.get(said.group(1)) == len(places) == 9
    for place in places:
        for named in re.findall(r"`([^`]+)`", place):
            if "/" not in named or " " in named:
                continue  # a command or a name, not a path
            path = named.split(" ")[0].rstrip("/")
            candidates = [ROOT / path.replace("<svc>", s).replace("<other>", s) for s in SERVICES]
            existing = [c for c in candidates if c.exists() or c.with_suffix(".py").exists()]
            assert existing, f"ARCHITECTURE.md names {named}, which is nowhere"


def _makers() -> dict[str, str]:
    """Where the public events are made: each service's gateway, and the platform's refusals."""
    sources = {f"services/{s}/gateway.py": ROOT / "services" / s / "gateway.py" for s in SERVICES}
    sources["shared/platform/access.py"] = ROOT / "shared" / "platform" / "access.py"
    return {name: path.read_text() for name, path in sources.items()}


@pytest.mark.parametrize("model", ALL_EVENTS, ids=event_type)
def test_every_public_event_is_in_every_place_an_event_must_be(model: type[ev.PublicEvent]) -> None:
    name = model.__name__
    type_string = event_type(model)
    # 5. the contract's model (and ALL_EVENTS, which parametrizes this test)
    assert getattr(ev, name, None) is model, f"{name} is not in shared/contracts/events.py"
    # 6. its schema and its entry in the lock, as generated
    schema = SCHEMAS / f"{type_string.removeprefix(TYPE_PREFIX + '.')}.json"
    assert schema.is_file(), f"{schema.name} missing: python -m shared.contracts.generate"
    lock = json.loads((SCHEMAS / "versions.lock.json").read_text())
    assert type_string in lock
    # 7. the AsyncAPI document
    assert type_string in (ROOT / "docs" / "asyncapi.json").read_text()
    # 4. exactly one place makes it: its service's gateway (or the platform, for refusals)
    made = re.compile(rf"\bpublic\.{name}(\(|\.model_validate\()")
    makers = [where for where, code in _makers().items() if made.search(code)]
    assert len(makers) == 1, f"{name} is made in {makers}"
    # 8. the dossier fold decided about it: a handler, or named as not shown
    assert (model in dossier._HANDLERS) != (model in dossier.NOT_SHOWN), name


def test_an_event_in_no_place_is_found_missing() -> None:
    class NieuwGebeurtenis(ev.PublicEvent):
        """An event added to the contract and nowhere else."""

    with pytest.raises(AssertionError, match="NieuwGebeurtenis is not in"):
        test_every_public_event_is_in_every_place_an_event_must_be(NieuwGebeurtenis)


def test_an_event_the_fold_both_handles_and_ignores_is_found(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(dossier, "NOT_SHOWN", dossier.NOT_SHOWN | {ev.AanvraagIngediend})
    with pytest.raises(AssertionError, match="AanvraagIngediend"):
        test_every_public_event_is_in_every_place_an_event_must_be(ev.AanvraagIngediend)


def test_an_event_made_in_two_places_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    both = {**_makers(), "elsewhere": "return [public.RapportGoedgekeurd(aanvraag_id=x)]"}
    monkeypatch.setattr(f"{__name__}._makers", lambda: both)
    with pytest.raises(AssertionError, match="RapportGoedgekeurd is made in"):
        test_every_public_event_is_in_every_place_an_event_must_be(ev.RapportGoedgekeurd)
