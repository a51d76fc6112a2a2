"""Drill: the runbook's "Upgrade", the checks before a release with a changed public event, and
a read table that gained a column.

The rolling restart itself is drilled under load in ``test_restarts.py``. Here: the two checks
the runbook names pass on this tree, as an operator runs them (what each refuses is tested in
``tests/contract/test_version_lock.py`` and ``tests/contract/test_asyncapi.py``); and rows written
before scheduling's ``afspraken`` gained the adviseur and the start (NULL there, as after the
upgrade) are filled by the runbook's replay, under ``./weerbaar up``.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest

from tests.drills.operator import Operator
from tools.demo import Actors, DossierDriver

pytestmark = pytest.mark.e2e


def test_the_contract_checks_of_a_release_pass(tmp_path: Path) -> None:
    operator = Operator(tmp_path / "data")
    operator.runbook("python -m shared.contracts.generate --check")
    operator.runbook("python -m shared.platform.asyncapi --check")


def test_the_replay_fills_the_rows_a_read_table_held_before_it_gained_a_column(
    tmp_path: Path,
) -> None:
    operator = Operator(tmp_path / "data")
    operator.up()
    try:
        secret = (operator.data_dir / "secrets" / "jwt.key").read_bytes()
        actors = Actors(
            secret=secret, bestuurder_email="b.upgrade@example.org", organisatie="GM0344"
        )
        urls = {service: operator.url(service) for service in ("intake", "scheduling")}
        with httpx.Client(timeout=15) as client:
            d = DossierDriver(urls, actors, client)
            d.registreer()
            d.neem_contact_op()
            d.plan_gesprekken()

            def mine() -> set[str]:
                answer = client.get(
                    f"{operator.url('scheduling')}/afspraken",
                    params={"status": "gepland"},
                    headers=actors.headers("adviseur"),
                )
                assert answer.status_code == 200, answer.text
                return {a["afspraak_id"] for a in answer.json()}

            planned = set(d.afspraken.values())
            assert mine() == planned
            # The rows as a release before the columns left them.
            with psycopg.connect(operator.database_url, autocommit=True) as conn:
                conn.execute(
                    "UPDATE scheduling.afspraken SET adviseur_id = NULL, gepland_op = NULL"
                )
            assert mine() == set(), "rows without the adviseur are nobody's"
            operator.runbook("weerbaar replay --projection scheduling")
            assert mine() == planned
    finally:
        operator.down()
