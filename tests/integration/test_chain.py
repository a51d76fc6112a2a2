"""Tamper-evident history on real PostgreSQL: each tampering is detected and located.

The events are written by the real intake application; the tamperings are what someone with
write access to the database could do to ``intake.intake_events`` (and, for the last ones, what a
superuser could do to the audit tables themselves).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit
from uuid import UUID

import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from services.intake.application import Intake
from services.intake.bootstrap import application as intake_application
from services.intake.domain import Aanmelding
from shared.platform.chain import (
    GENESIS,
    ChainError,
    ProblemKind,
    VerifyReport,
    checkpoint,
    checkpointer,
    ensure_audit_schema,
    frame,
    link,
    verify,
)
from shared.platform.keys import Vergeten
from shared.platform.model import Context, utcnow
from shared.platform.settings import Settings
from shared.platform.signing import (
    KEY_FILE_NAME,
    SigningKey,
    load_or_create_signing_key,
    load_public_keys,
    rotate_signing_key,
)
from tests.support import aanmelding
from tools.verify import main

pytestmark = pytest.mark.integration

DOSSIERS = 8


@dataclass
class Log:
    """Intake's log with a few dossiers, checkpointed once."""

    settings: Settings
    intake: Intake
    key: SigningKey
    dossiers: list[UUID]

    @property
    def url(self) -> str:
        return self.settings.database_url

    @property
    def secrets(self) -> Path:
        return self.settings.data_dir / "secrets"

    def public_keys(self) -> dict[str, Ed25519PublicKey]:
        return load_public_keys(self.secrets)

    def verify(self) -> VerifyReport:
        return verify("intake", self.url, self.public_keys())

    def ids(self) -> list[int]:
        with psycopg.connect(self.url) as conn:
            rows = conn.execute(
                "SELECT notification_id FROM intake.intake_events ORDER BY notification_id"
            ).fetchall()
        return [row[0] for row in rows]

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(statement.encode(), params)

    def submit(self, count: int) -> list[UUID]:
        ids = []
        for _ in range(count):
            result = self.intake.dien_aanvraag_in(
                Aanmelding.model_validate(aanmelding()), Context(now=utcnow())
            )
            ids.append(result.aanvraag_id)
        return ids


@pytest.fixture
def log(settings: Settings) -> Iterator[Log]:
    intake = intake_application(settings.eventsourcing_env("intake"))
    key = load_or_create_signing_key(settings.data_dir / "secrets" / KEY_FILE_NAME)
    chained = Log(settings, intake, key, [])
    chained.dossiers = chained.submit(DOSSIERS)
    # A second event for some dossiers: the log interleaves aggregates, as it does in use.
    for aanvraag_id in chained.dossiers[::3]:
        intake.trek_aanvraag_in(aanvraag_id, Context(now=utcnow()))
    assert checkpoint("intake", settings.database_url, key) is not None
    try:
        yield chained
    finally:
        intake.close()


def _kinds(report: VerifyReport) -> list[tuple[ProblemKind, int | None]]:
    return [(p.kind, p.notification_id) for p in report.problems]


def test_a_clean_log_verifies_with_its_counts(log: Log) -> None:
    report = log.verify()
    events = DOSSIERS + len(log.dossiers[::3])
    assert report.ok, report.summary()
    assert (report.events, report.signed, report.pending, report.checkpoints) == (
        events,
        events,
        0,
        1,
    )
    assert "intake: OK" in report.summary()


def test_the_stored_chain_hashes_exactly_the_documented_frame(log: Log) -> None:
    # An independent recomputation: plain SELECT, frames built by hand, one link at a time.
    with psycopg.connect(log.url) as conn:
        rows = conn.execute(
            "SELECT notification_id, originator_id, originator_version, topic, state"
            " FROM intake.intake_events ORDER BY notification_id"
        ).fetchall()
        stored = conn.execute(
            "SELECT hash FROM weerbaar_audit.chain WHERE service = 'intake'"
            " ORDER BY notification_id"
        ).fetchall()
        head = conn.execute(
            "SELECT head FROM weerbaar_audit.checkpoints WHERE service = 'intake'"
        ).fetchone()
    expected, h = [], GENESIS
    for row in rows:
        h = link(h, frame(*row))
        expected.append(h)
    assert [bytes(r[0]) for r in stored] == expected
    assert head is not None and bytes(head[0]) == h


def test_one_flipped_byte_is_detected_at_that_row(log: Log) -> None:
    target = log.ids()[4]
    log.execute(
        "UPDATE intake.intake_events SET state = set_byte(state, 20, get_byte(state, 20) # 1)"
        " WHERE notification_id = %s",
        (target,),
    )
    report = log.verify()
    assert _kinds(report) == [(ProblemKind.MODIFIED, target)], report.summary()
    assert f"modified at notification id {target}" in report.summary()


def test_a_deleted_row_is_detected_at_that_row(log: Log) -> None:
    target = log.ids()[3]
    log.execute("DELETE FROM intake.intake_events WHERE notification_id = %s", (target,))
    report = log.verify()
    assert _kinds(report) == [(ProblemKind.DELETED, target)], report.summary()


def test_two_swapped_rows_are_detected_at_both(log: Log) -> None:
    ids = log.ids()
    a, b = ids[2], ids[6]
    log.execute(
        "UPDATE intake.intake_events e SET topic = o.topic, state = o.state"
        " FROM intake.intake_events o"
        " WHERE (e.notification_id, o.notification_id) IN ((%s, %s), (%s, %s))",
        (a, b, b, a),
    )
    report = log.verify()
    assert len(report.problems) == 1, report.summary()
    problem = report.problems[0]
    assert (problem.kind, problem.notification_id, problem.other_notification_id) == (
        ProblemKind.SWAPPED,
        a,
        b,
    )


def test_a_truncated_tail_is_detected_where_the_log_now_ends(log: Log) -> None:
    ids = log.ids()
    log.execute("DELETE FROM intake.intake_events WHERE notification_id >= %s", (ids[-3],))
    report = log.verify()
    assert _kinds(report) == [(ProblemKind.TRUNCATED, ids[-3])], report.summary()
    assert report.problems[0].rows == 3


def test_a_truncated_tail_is_found_by_the_checkpoint_when_the_chain_was_cut_too(log: Log) -> None:
    # A superuser can switch the trigger off and cut the chain rows as well; the signed count
    # still tells.
    ids = log.ids()
    log.execute("DELETE FROM intake.intake_events WHERE notification_id >= %s", (ids[-2],))
    log.execute("ALTER TABLE weerbaar_audit.chain DISABLE TRIGGER append_only")
    log.execute("DELETE FROM weerbaar_audit.chain WHERE notification_id >= %s", (ids[-2],))
    log.execute("ALTER TABLE weerbaar_audit.chain ENABLE TRIGGER append_only")
    report = log.verify()
    assert _kinds(report) == [(ProblemKind.TRUNCATED, ids[-3] + 1)], report.summary()
    assert report.problems[0].rows == 2
    assert report.problems[0].checkpoint_id is not None


def test_a_row_rewritten_together_with_its_chain_fails_the_signed_head(log: Log) -> None:
    ids = log.ids()
    target = ids[5]
    log.execute(
        "UPDATE intake.intake_events SET state = set_byte(state, 20, get_byte(state, 20) # 1)"
        " WHERE notification_id = %s",
        (target,),
    )
    # The attacker recomputes the chain from the altered row on, as the algorithm is public.
    with psycopg.connect(log.url) as conn:
        rows = conn.execute(
            "SELECT notification_id, originator_id, originator_version, topic, state"
            " FROM intake.intake_events ORDER BY notification_id"
        ).fetchall()
    log.execute("ALTER TABLE weerbaar_audit.chain DISABLE TRIGGER append_only")
    h = GENESIS
    for row in rows:
        h = link(h, frame(*row))
        log.execute(
            "UPDATE weerbaar_audit.chain SET hash = %s WHERE service = 'intake'"
            " AND notification_id = %s",
            (h, row[0]),
        )
    log.execute("ALTER TABLE weerbaar_audit.chain ENABLE TRIGGER append_only")
    report = log.verify()
    assert [p.kind for p in report.problems] == [ProblemKind.CHECKPOINT_MISMATCH]
    problem = report.problems[0]
    assert problem.notification_id is not None and problem.last_notification_id is not None
    assert problem.notification_id <= target <= problem.last_notification_id


def test_an_altered_checkpoint_fails_its_signature(log: Log) -> None:
    # What an attacker with superuser rights could do: switch the trigger off and edit the row.
    log.execute("ALTER TABLE weerbaar_audit.checkpoints DISABLE TRIGGER append_only")
    log.execute("UPDATE weerbaar_audit.checkpoints SET event_count = event_count - 1")
    log.execute("ALTER TABLE weerbaar_audit.checkpoints ENABLE TRIGGER append_only")
    report = log.verify()
    assert [p.kind for p in report.problems] == [ProblemKind.BAD_SIGNATURE], report.summary()
    assert report.problems[0].checkpoint_id is not None
    assert "bad-signature at checkpoint" in report.summary()
    log.submit(1)
    with pytest.raises(ChainError, match="fails its signature"):
        checkpoint("intake", log.url, log.key)  # never signs on top of a forged checkpoint


def test_a_removed_last_checkpoint_is_noticed_by_the_chain_it_leaves(log: Log) -> None:
    log.execute("ALTER TABLE weerbaar_audit.checkpoints DISABLE TRIGGER append_only")
    log.execute("DELETE FROM weerbaar_audit.checkpoints")
    log.execute("ALTER TABLE weerbaar_audit.checkpoints ENABLE TRIGGER append_only")
    assert [p.kind for p in log.verify().problems] == [ProblemKind.CHECKPOINT_REMOVED]


@pytest.mark.parametrize("table", ["checkpoints", "chain"])
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE weerbaar_audit.{table} SET service = 'scheduling'",
        "DELETE FROM weerbaar_audit.{table}",
        "TRUNCATE weerbaar_audit.{table}",
    ],
    ids=["update", "delete", "truncate"],
)
def test_the_audit_tables_refuse_changes(log: Log, table: str, statement: str) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        log.execute(statement.format(table=table))
    assert log.verify().ok


def test_gaps_in_the_notification_ids_are_not_tampering(log: Log) -> None:
    # A failed insert consumes sequence values; so does this.
    log.execute(
        "SELECT nextval(pg_get_serial_sequence('intake.intake_events', 'notification_id'))"
        " FROM generate_series(1, 5)"
    )
    log.submit(2)
    assert checkpoint("intake", log.url, log.key) is not None
    report = log.verify()
    assert report.ok, report.summary()
    assert report.checkpoints == 2 and report.pending == 0


def test_new_events_wait_unsigned_until_the_next_checkpoint(log: Log) -> None:
    log.submit(3)
    before = log.verify()
    assert before.ok and before.pending == 3
    made = checkpoint("intake", log.url, log.key)
    assert made is not None and made.event_count == before.events
    assert checkpoint("intake", log.url, log.key) is None, "nothing new: no checkpoint"
    after = log.verify()
    assert after.ok and after.pending == 0 and after.checkpoints == 2


def test_forgetting_a_person_leaves_the_chain_intact(log: Log) -> None:
    aanvraag_id = log.dossiers[1]
    ctx = Context(now=utcnow(), actor_id="functionaris", actor_role="compliance")
    assert log.intake.vergeet_persoonsgegevens(aanvraag_id, "verzoek_betrokkene", (), ctx)
    with pytest.raises(Vergeten):
        log.intake.persoonsgegevens(aanvraag_id)
    assert checkpoint("intake", log.url, log.key) is not None
    report = log.verify()
    assert report.ok, report.summary()
    assert report.checkpoints == 2


def test_checkpoints_signed_before_a_key_rotation_still_verify(log: Log) -> None:
    new_key = rotate_signing_key(log.secrets / KEY_FILE_NAME)
    log.submit(2)
    made = checkpoint("intake", log.url, new_key)
    assert made is not None and made.key_id == new_key.key_id != log.key.key_id
    report = log.verify()
    assert report.ok and report.checkpoints == 2, report.summary()


def test_a_service_role_can_append_but_not_rewrite_or_unprotect(log: Log) -> None:
    suffix = secrets.token_hex(4)
    owner, writer, password = f"audit_owner_{suffix}", f"checkpointer_{suffix}", "pw-" + suffix
    log.execute(f'CREATE ROLE "{owner}" NOLOGIN')
    log.execute(f"CREATE ROLE \"{writer}\" LOGIN PASSWORD '{password}'")
    try:
        with psycopg.connect(log.url, autocommit=True) as conn:
            ensure_audit_schema(conn, owner=owner, writers=[writer])
        log.execute(f'GRANT USAGE ON SCHEMA intake TO "{writer}"')
        log.execute(f'GRANT SELECT ON intake.intake_events TO "{writer}"')
        parts = urlsplit(log.url)
        netloc = f"{quote(writer)}:{quote(password)}@{parts.hostname}:{parts.port}"
        as_writer = urlunsplit(parts._replace(netloc=netloc))
        log.submit(1)
        assert checkpoint("intake", as_writer, log.key) is not None, "the writer can append"
        with psycopg.connect(as_writer, autocommit=True) as conn:
            for statement in (
                "UPDATE weerbaar_audit.checkpoints SET event_count = 0",
                "DELETE FROM weerbaar_audit.chain",
                "TRUNCATE weerbaar_audit.checkpoints",
                "ALTER TABLE weerbaar_audit.checkpoints DISABLE TRIGGER append_only",
            ):
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(statement.encode())
        assert log.verify().ok
    finally:
        log.execute(f'DROP OWNED BY "{owner}", "{writer}"')
        log.execute(f'DROP ROLE "{writer}"')
        log.execute(f'DROP ROLE "{owner}"')


def test_weerbaar_verify_prints_a_line_per_service_and_fails_on_tampering(
    log: Log, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--database-url", log.url, "--keys", str(log.secrets)]
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "intake",
        "scheduling",
        "assessment",
        "approval",
        "notifications",
    ]
    assert all(": OK" in line for line in lines)
    target = log.ids()[1]
    log.execute("DELETE FROM intake.intake_events WHERE notification_id = %s", (target,))
    assert main([*args, "--service", "intake"]) == 1
    out = capsys.readouterr().out
    assert f"intake: FAILED — 1 problem(s); first: deleted at notification id {target}" in out


async def test_the_checkpointer_worker_signs_what_is_written(log: Log) -> None:
    stop = asyncio.Event()
    worker = checkpointer("intake", log.settings, interval_s=0.05)
    task = asyncio.create_task(worker(stop))
    try:
        await asyncio.to_thread(log.submit, 2)
        async with asyncio.timeout(30):
            while (report := await asyncio.to_thread(log.verify)).pending:
                await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    # One checkpoint per round with something new: the two dossiers may land in one or two.
    assert report.ok and report.checkpoints >= 2, report.summary()
    assert report.signed == report.events == DOSSIERS + len(log.dossiers[::3]) + 2
