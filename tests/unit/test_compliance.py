"""Compliance logic without servers: legal holds, retention settings, the export's rendering."""

from __future__ import annotations

import csv
import io
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from services.intake.domain import (
    Aanmelding,
    Aanvraag,
    AanvraagOntvangen,
    DossierAfgesloten,
    hef_bewaarplicht_op,
    leg_bewaarplicht_op,
    project,
    vernietig,
)
from services.intake.ops.retention import check_settings
from services.intake.projections.audit import (
    Export,
    Ketencontrole,
    Regel,
    Verificatie,
    render,
    termijnen,
)
from services.intake.projections.rebuild import _matches
from shared.platform.errors import Conflict, TeVaak
from shared.platform.model import Clock, Context
from shared.platform.settings import Settings
from tests.support import aanmelding, wait_until

NU = datetime(2026, 5, 11, 10, 0, tzinfo=UTC)
CTX = Context(now=NU, actor_id="cmp-1", actor_role="compliance")


def _aanvraag(*, afgesloten: bool) -> Aanvraag:
    aanvraag_id = uuid4()
    events: list[Any] = [
        AanvraagOntvangen(
            originator_id=aanvraag_id,
            originator_version=1,
            timestamp=NU,
            aanmelding=Aanmelding.model_validate(aanmelding()),
        )
    ]
    if afgesloten:
        events.append(
            DossierAfgesloten(
                originator_id=aanvraag_id,
                originator_version=2,
                timestamp=NU,
                reden="gesloten_door_secretariaat",
                toelichting=None,
                maatregelen_totaal=0,
                maatregelen_uitgevoerd=0,
            )
        )
    aanvraag = project(None, events)
    assert aanvraag is not None
    return aanvraag


def test_a_legal_hold_is_placed_once_lifted_once_and_stops_destruction() -> None:
    aanvraag = _aanvraag(afgesloten=True)
    opgelegd = leg_bewaarplicht_op(aanvraag, "rechtszaak", CTX)
    assert opgelegd is not None
    held = project(aanvraag, [opgelegd])
    assert held is not None and held.bewaarplicht == "rechtszaak"
    assert leg_bewaarplicht_op(held, "rechtszaak", CTX) is None  # no second effect
    with pytest.raises(Conflict):
        vernietig(held, "RapportIngezien", 2, NU, CTX)
    opgeheven = hef_bewaarplicht_op(held, CTX)
    assert opgeheven is not None
    lifted = project(held, [opgeheven])
    assert lifted is not None and lifted.bewaarplicht is None
    assert hef_bewaarplicht_op(lifted, CTX) is None
    event = vernietig(lifted, "RapportIngezien", 2, NU, CTX)
    assert (event.soort, event.aantal, event.originator_version) == ("RapportIngezien", 2, 5)


def test_nothing_is_destroyed_of_a_dossier_that_still_runs() -> None:
    with pytest.raises(Conflict):
        vernietig(_aanvraag(afgesloten=False), "RapportIngezien", 1, NU, CTX)


def _settings(**extra: Any) -> Settings:
    return Settings(database_url="postgresql://u@h/db", nats_url="nats://h:4222", **extra)


def test_retention_settings_are_checked() -> None:
    assert check_settings(_settings()) == []
    assert check_settings(_settings(retention_days={"RapportIngezien": 30})) == []
    problems = check_settings(
        _settings(retention_days={"Onbekend": 3, "GegevensVernietigd": 3, "AanvraagIngediend": 5})
    )
    assert any("unknown event type Onbekend" in p for p in problems)
    assert any("GegevensVernietigd" in p for p in problems)
    assert any("personal data" in p for p in problems)


def test_subject_filters_match_as_nats_does() -> None:
    filters = ("weerbaar.assessment.RapportOpgesteld.*", "weerbaar.approval.*.*")
    assert _matches(filters, "weerbaar.assessment.RapportOpgesteld.abc")
    assert _matches(filters, "weerbaar.approval.RapportGoedgekeurd.abc")
    assert not _matches(filters, "weerbaar.assessment.RapportHerzien.abc")
    assert not _matches(filters, "weerbaar.assessment.RapportOpgesteld")


def _envelope(name: str, data: dict[str, Any], aanvraag: str = "a1") -> dict[str, Any]:
    return {"type": f"nl.weerbaarbestuur.{name}.v1", "data": data, "subject": aanvraag}


def test_deadlines_met_missed_and_open() -> None:
    result = termijnen(
        [
            ("a1", _envelope("ContacttermijnGesteld", {"deadline": "2026-05-14T22:00:00Z"})),
            ("a1", _envelope("ContactOpgenomen", {"contact_op": "x", "binnen_termijn": True})),
            ("a2", _envelope("ContacttermijnGesteld", {"deadline": "2026-05-14T22:00:00Z"})),
            ("a2", _envelope("ContacttermijnVerstreken", {"deadline": "2026-05-14T22:00:00Z"})),
            ("a2", _envelope("ContactOpgenomen", {"contact_op": "y", "binnen_termijn": False})),
            ("a3", _envelope("ContacttermijnGesteld", {"deadline": "2026-05-14T22:00:00Z"})),
        ]
    )
    assert [(t.aanvraag_id, t.uitkomst) for t in result] == [
        ("a1", "gehaald"),
        ("a2", "gemist"),
        ("a3", "open"),
    ]


def test_the_export_escapes_what_it_shows() -> None:
    regel = Regel(
        tijd="2026-05-11T10:00:00Z",
        aanvraag_id="a1",
        handeling="gelezen",
        gebeurtenis="RapportIngezien",
        dienst="assessment",
        rol="bva",
        actor='<script>alert("x")</script>',
        versie=2,
        details="rol=bva",
        event_id="e1",
    )
    export = Export(
        reikwijdte={"aanvraag_id": "a1"},
        gemaakt_op="2026-05-11T10:00:00Z",
        verificatie=Verificatie(uitgevoerd=True, in_orde=False, diensten={"intake": "FAILED"}),
        gebeurtenissen=(regel,),
        termijnen=(),
    )
    document = render(export, "html")
    assert "<script>" not in document
    assert "NIET IN ORDE" in document
    rows = list(csv.DictReader(io.StringIO(render(export, "csv"))))
    assert rows[0]["actor"] == regel.actor and rows[0]["versie"] == "2"


class _Verifier:
    """A verification that holds until let go, counting its runs."""

    def __init__(self) -> None:
        self.runs = 0
        self.started = threading.Event()
        self.go = threading.Event()

    def __call__(self) -> Verificatie:
        self.runs += 1
        self.started.set()
        assert self.go.wait(10), "never let go"
        return Verificatie(uitgevoerd=True, in_orde=True, diensten={"intake": f"run {self.runs}"})


def test_the_chains_are_verified_once_at_a_time_and_kept_for_their_max_age() -> None:
    verifier = _Verifier()
    controle = Ketencontrole(verifier, Clock(), max_age_s=3600)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(controle.recent)
        assert verifier.started.wait(10)
        # Asked while the first runs: they wait for it and share it.
        waiting = [pool.submit(controle.recent) for _ in range(3)]
        verifier.go.set()
        results = [first.result(10), *(f.result(10) for f in waiting)]
    assert verifier.runs == 1
    assert all(r is results[0] for r in results)
    assert results[0].verificatie.diensten == {"intake": "run 1"}
    assert controle.recent() is results[0]


def test_a_new_verification_is_one_started_after_it_was_asked() -> None:
    verifier = _Verifier()
    controle = Ketencontrole(verifier, Clock(), max_age_s=3600)
    verifier.go.set()
    kept = controle.recent()
    fresh = controle.nu()
    assert verifier.runs == 2 and fresh is not kept
    assert fresh.verificatie.diensten == {"intake": "run 2"}
    assert fresh.gestart_op >= kept.gestart_op
    # The new one is what a page is shown from then on.
    assert controle.recent() is fresh
    # One that was already running when it was asked does not count: it may have read the
    # logs before the moment asked about.
    verifier.go.clear()
    verifier.started.clear()
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(controle.nu)
        assert verifier.started.wait(10)
        asked_meanwhile = pool.submit(controle.nu)
        verifier.go.set()
        assert running.result(10) is not asked_meanwhile.result(10)
    assert verifier.runs == 4


def test_with_a_max_age_of_zero_every_request_verifies_again() -> None:
    verifier = _Verifier()
    verifier.go.set()
    controle = Ketencontrole(verifier, Clock(), max_age_s=0)
    assert controle.recent() is not controle.recent()
    assert verifier.runs == 2


def test_a_burst_of_requests_holds_at_most_the_allowed_waiters_and_the_rest_come_back_later() -> (
    None
):
    verifier = _Verifier()
    controle = Ketencontrole(verifier, Clock(), max_age_s=3600, wachtenden=3)
    with ThreadPoolExecutor(5) as pool:
        running = pool.submit(controle.nu)
        assert verifier.started.wait(10)
        waiting = [pool.submit(controle.nu) for _ in range(3)]
        wait_until(lambda: controle.wachtend == 3, timeout=10, what="three callers waiting")
        # The next is refused at once (this thread would otherwise wait for the verification).
        with pytest.raises(TeVaak) as refused:
            controle.nu()
        assert refused.value.retry_after_s >= 1
        assert refused.value.headers == {"Retry-After": str(refused.value.retry_after_s)}
        # A page asking for a recent one: none is recent yet, so it would wait too, and is
        # refused the same way.
        with pytest.raises(TeVaak):
            controle.recent()
        verifier.go.set()
        first = running.result(10)
        shared = [f.result(10) for f in waiting]
    # The three who asked while the first ran share one verification started after them.
    assert verifier.runs == 2
    assert all(r is shared[0] for r in shared) and shared[0] is not first
    assert controle.wachtend == 0
    # Once recent, a page's request is answered without waiting, whatever runs.
    assert controle.recent() is shared[0]


def test_a_failed_verification_lets_the_next_caller_verify() -> None:
    calls = 0

    def verify() -> Verificatie:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the database went away")
        return Verificatie(uitgevoerd=True, in_orde=True, diensten={})

    controle = Ketencontrole(verify, Clock(), max_age_s=3600)
    with pytest.raises(RuntimeError):
        controle.nu()
    assert controle.nu().verificatie.in_orde is True
    assert calls == 2 and controle.wachtend == 0
