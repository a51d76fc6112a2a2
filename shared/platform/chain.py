"""Tamper-evident history: each service's event log hash-chained, signed at checkpoints, verified.

**The chain.** A service's log is the table ``<service>.<service>_events``. In ``notification_id``
order, every stored row extends a SHA-256 chain::

    h_0 = 32 zero bytes
    h_n = SHA-256(h_{n-1} || frame_n)

where ``frame_n`` is the row exactly as PostgreSQL's binary COPY format encodes it: field count
(int16 = 5), then for ``notification_id``, ``originator_id``, ``originator_version``, ``topic``,
``state`` each an int32 length (-1 for NULL) followed by the value's bytes (int8 big-endian, the
16 bytes of the uuid, int8, the UTF-8 topic, the stored ``state`` bytes). The lengths make the
encoding unambiguous (without them a byte moved from the end of the topic to the start of the
state would hash the same), and because it *is* the wire format, ``verify`` hashes each row as it
arrives without rebuilding it (``frame`` builds the same bytes for anyone re-implementing this).
The chain covers the stored bytes, ciphertext included: crypto-shredding a person destroys a key
kept elsewhere and changes nothing here, so forgetting never breaks the chain.

Gaps in ``notification_id`` are normal (a failed insert consumes sequence values) and are not
tampering: the chain links the rows that exist, and deletion is caught because the chain and the
checkpoints remember every row they covered.

**Where the proof is kept.** Schema ``weerbaar_audit``, apart from the services' schemas:

- ``chain(service, notification_id, hash)``: ``h_n`` of every chained row, so a broken chain can be
  *located* (each row is checked against its own stored hash and its predecessor's);
- ``checkpoints``: the chain head signed with Ed25519 (``shared.platform.signing``) together with
  the last notification id and the number of rows it covers.

Both tables are append-only: a trigger refuses UPDATE, DELETE and TRUNCATE. The chain rows and the
checkpoint that signs them are written in one transaction by the *checkpointer* (``checkpoint``,
run periodically by ``checkpointer``), which extends the chain from the last checkpoint.

**Roles, honestly.** In the embedded setup (``weerbaar up``, the tests) every process connects as
the PostgreSQL superuser, which can disable a trigger or rewrite anything; there the trigger stops
mistakes, and the *signatures* are what stop a forger (the private key is not in the database).
In production the audit schema belongs to a role nobody logs in as, provisioned once by an
administrator::

    CREATE ROLE weerbaar_audit_owner NOLOGIN;
    -- then, from Python, as the administrator:
    --   ensure_audit_schema(conn, owner="weerbaar_audit_owner",
    --                       writers=["weerbaar_checkpointer"], readers=["weerbaar_auditor"])
    GRANT USAGE ON SCHEMA intake TO weerbaar_checkpointer;             -- and so on per service
    GRANT SELECT ON intake.intake_events TO weerbaar_checkpointer;

``ensure_audit_schema`` makes the owner role own the schema, the tables and the trigger function,
revokes everything from PUBLIC, grants USAGE, SELECT and INSERT (and the id sequence) to the
writers and SELECT to the readers. A writer cannot UPDATE, DELETE or TRUNCATE (no privilege, and
the trigger), cannot disable the trigger (only the owner may ALTER the table) and cannot forge a
signature (tested in ``tests/integration/test_chain.py``). Best is a checkpointer that runs as its
own role and process and holds the only copy of the private key; the service roles then get no
access to ``weerbaar_audit`` at all. A superuser can still delete the *latest* checkpoints
together with the tail of a log; so the checkpointer also logs every checkpoint (service, last
id, count, head, key id; no personal data), which anchors the heads outside the database.

**Verification** (``verify``, ``weerbaar verify``) recomputes every chain from row 1 in the client
(a compromised server cannot answer for the hashes), checks every checkpoint's signature, count
and head, and locates each problem: a modified row, a deleted row, two rows swapped, a truncated
tail, a row inserted into the chained range, a stored chain hash altered, a bad signature, or (when
the log *and* the chain table were rewritten consistently) the checkpoint interval that no longer
matches its signed head.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import struct
import sys
import time
from array import array
from bisect import bisect_right
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from psycopg import sql

from shared.platform.settings import Settings
from shared.platform.signing import (
    KEY_FILE_NAME,
    SigningKey,
    load_or_create_signing_key,
    signature_valid,
)

log = logging.getLogger(__name__)

AUDIT_SCHEMA = "weerbaar_audit"
GENESIS = bytes(32)
HASH_SIZE = 32
CHECKPOINT_FORMAT = "weerbaar-chain-checkpoint/1"
#: Rows one checkpoint covers at most; a checkpointer catching up signs several in a row.
MAX_EVENTS_PER_CHECKPOINT = 100_000

_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_COPY_HEADER = _COPY_SIGNATURE + bytes(8)  # flags 0, no header extension
_COPY_TRAILER = b"\xff\xff"
# In a frame: int16 field count, int32 length, then the int8 notification id.
_ID_START, _ID_END = 6, 14
# After the id: int32 length + uuid, int32 length + int8 version; then topic and state follow.
_CONTENT_START, _PAYLOAD_START = 14, 46
_FRAME_HEAD = struct.Struct(">hiqi16siqi")
_INT32 = struct.Struct(">i")
_MAX_PROBLEMS = 100
_MAX_SWAP_CANDIDATES = 64
_CHAIN_WRITE_CHUNK = 1 << 20


class ChainError(Exception):
    """The log or the audit tables are not in a shape the checkpointer can extend."""


def events_table(service: str) -> sql.Composed:
    """The service's event log (the eventsourcing library's table)."""
    return sql.SQL("{}.{}").format(sql.Identifier(service), sql.Identifier(f"{service}_events"))


def frame(
    notification_id: int,
    originator_id: UUID,
    originator_version: int,
    topic: str | None,
    state: bytes | None,
) -> bytes:
    """The bytes of one stored event that the chain hashes (its binary COPY tuple)."""
    topic_bytes = b"" if topic is None else topic.encode()
    head = _FRAME_HEAD.pack(
        5,
        8,
        notification_id,
        16,
        originator_id.bytes,
        8,
        originator_version,
        -1 if topic is None else len(topic_bytes),
    )
    tail = _INT32.pack(-1 if state is None else len(state))
    return head + topic_bytes + tail + (state or b"")


def link(previous: bytes, row_frame: bytes | memoryview) -> bytes:
    """The chain hash after ``previous`` for one row."""
    digest = hashlib.sha256(previous)
    digest.update(row_frame)
    return digest.digest()


# --- the audit schema ------------------------------------------------------------------------

_DDL = (
    "CREATE SCHEMA IF NOT EXISTS {schema}",
    "CREATE TABLE IF NOT EXISTS {schema}.checkpoints ("
    " id bigserial PRIMARY KEY,"
    " service text NOT NULL,"
    " last_notification_id bigint NOT NULL,"
    " event_count bigint NOT NULL,"
    " head bytea NOT NULL CHECK (octet_length(head) = 32),"
    " signed_at timestamptz NOT NULL,"
    " key_id text NOT NULL,"
    " signature bytea NOT NULL,"
    " UNIQUE (service, last_notification_id))",
    "CREATE TABLE IF NOT EXISTS {schema}.chain ("
    " service text NOT NULL,"
    " notification_id bigint NOT NULL,"
    " hash bytea NOT NULL,"
    " PRIMARY KEY (service, notification_id))",
    "CREATE OR REPLACE FUNCTION {schema}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$"
    " BEGIN RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',"
    " MESSAGE = format('%I.%I is append-only: %s refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP);"
    " END $$",
    "CREATE OR REPLACE TRIGGER append_only BEFORE UPDATE OR DELETE ON {schema}.checkpoints"
    " FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_change()",
    "CREATE OR REPLACE TRIGGER append_only_truncate BEFORE TRUNCATE ON {schema}.checkpoints"
    " FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_change()",
    "CREATE OR REPLACE TRIGGER append_only BEFORE UPDATE OR DELETE ON {schema}.chain"
    " FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_change()",
    "CREATE OR REPLACE TRIGGER append_only_truncate BEFORE TRUNCATE ON {schema}.chain"
    " FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_change()",
    "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM PUBLIC",
    "REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM PUBLIC",
    "REVOKE ALL ON SCHEMA {schema} FROM PUBLIC",
)


def _audit_schema_exists(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(
        "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
        (f"{AUDIT_SCHEMA}.checkpoints", f"{AUDIT_SCHEMA}.chain"),
    ).fetchone()
    return bool(row and row[0])


def ensure_audit_schema(
    conn: psycopg.Connection[Any],
    *,
    owner: str | None = None,
    writers: Sequence[str] = (),
    readers: Sequence[str] = (),
) -> None:
    """Create the append-only audit tables (idempotent); give them an owner and grant access.

    Runs in its own transaction on ``conn`` (which must not be in one). Roles that do not exist
    are an error: a grant that silently did nothing would leave the tables open or unusable.
    """
    schema = sql.Identifier(AUDIT_SCHEMA)
    with conn.transaction():
        # Several processes may provision at once; DDL on the same objects would collide.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("weerbaar-audit-ddl"),))
        for statement in _DDL:
            conn.execute(sql.SQL(statement).format(schema=schema))
        if owner is not None:
            role = sql.Identifier(owner)
            for what in (
                "SCHEMA {schema}",
                "TABLE {schema}.checkpoints",
                "TABLE {schema}.chain",
                "FUNCTION {schema}.refuse_change()",
            ):
                conn.execute(
                    sql.SQL("ALTER " + what + " OWNER TO {role}").format(schema=schema, role=role)
                )
        for writer in writers:
            role = sql.Identifier(writer)
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role))
            conn.execute(
                sql.SQL("GRANT SELECT, INSERT ON {s}.checkpoints, {s}.chain TO {r}").format(
                    s=schema, r=role
                )
            )
            conn.execute(
                sql.SQL("GRANT USAGE ON SEQUENCE {}.checkpoints_id_seq TO {}").format(schema, role)
            )
        for reader in readers:
            role = sql.Identifier(reader)
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema, role))
            conn.execute(
                sql.SQL("GRANT SELECT ON {s}.checkpoints, {s}.chain TO {r}").format(
                    s=schema, r=role
                )
            )


def _lock_key(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


# --- checkpoints -----------------------------------------------------------------------------


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class Checkpoint:
    """Signed: the first ``event_count`` rows of a log, up to an id, hash to ``head``."""

    service: str
    last_notification_id: int
    event_count: int
    head: bytes
    signed_at: datetime
    key_id: str
    signature: bytes
    id: int | None = None

    def message(self) -> bytes:
        """The bytes that are signed (a line per field, so an auditor can rebuild them by hand)."""
        return "\n".join(
            (
                CHECKPOINT_FORMAT,
                self.service,
                str(self.last_notification_id),
                str(self.event_count),
                self.head.hex(),
                _utc(self.signed_at).isoformat(timespec="microseconds"),
                self.key_id,
            )
        ).encode()

    @classmethod
    def sign(
        cls,
        key: SigningKey,
        *,
        service: str,
        last_notification_id: int,
        event_count: int,
        head: bytes,
        signed_at: datetime,
    ) -> Checkpoint:
        """A new checkpoint signed with ``key``."""
        unsigned = cls(
            service=service,
            last_notification_id=last_notification_id,
            event_count=event_count,
            head=head,
            signed_at=_utc(signed_at),
            key_id=key.key_id,
            signature=b"",
        )
        return replace(unsigned, signature=key.sign(unsigned.message()))

    def signature_valid(self, public_keys: dict[str, Ed25519PublicKey]) -> bool | None:
        """True or False; None when the key id is not among ``public_keys``."""
        public_key = public_keys.get(self.key_id)
        if public_key is None:
            return None
        return signature_valid(public_key, self.signature, self.message())


_CHECKPOINT_COLUMNS = sql.SQL(
    "id, service, last_notification_id, event_count, head, signed_at, key_id, signature"
)


def _checkpoint_from_row(row: Sequence[Any]) -> Checkpoint:
    return Checkpoint(
        id=row[0],
        service=row[1],
        last_notification_id=row[2],
        event_count=row[3],
        head=bytes(row[4]),
        signed_at=_utc(row[5]),
        key_id=row[6],
        signature=bytes(row[7]),
    )


def _checkpoints(conn: psycopg.Connection[Any], service: str) -> list[Checkpoint]:
    if not _audit_schema_exists(conn):
        return []
    rows = conn.execute(
        sql.SQL(
            "SELECT {} FROM {}.checkpoints WHERE service = %s ORDER BY last_notification_id, id"
        ).format(_CHECKPOINT_COLUMNS, sql.Identifier(AUDIT_SCHEMA)),
        (service,),
    ).fetchall()
    return [_checkpoint_from_row(row) for row in rows]


# --- reading a log -----------------------------------------------------------------------------


def _log_exists(conn: psycopg.Connection[Any], service: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (f"{service}.{service}_events",)).fetchone()
    return bool(row and row[0])


def _copy_events(service: str, after: int, limit: int | None) -> sql.Composed:
    # COPY takes no bind parameters; both numbers are ints, passed as literals.
    query = sql.SQL(
        "COPY (SELECT notification_id, originator_id, originator_version, topic, state"
        " FROM {} WHERE notification_id > {} ORDER BY notification_id{}) TO STDOUT (FORMAT binary)"
    ).format(
        events_table(service),
        sql.Literal(after),
        sql.SQL("") if limit is None else sql.SQL(" LIMIT {}").format(sql.Literal(limit)),
    )
    return query


def _after_header(data: memoryview) -> memoryview:
    if bytes(data[: len(_COPY_SIGNATURE)]) != _COPY_SIGNATURE:
        raise ChainError("the server did not answer in PostgreSQL's binary COPY format")
    extension = int.from_bytes(data[15:19], "big")
    return data[19 + extension :]


@dataclass
class _Hashed:
    """A pass over (part of) a log: the ids (int8 big-endian) and chain hashes, concatenated."""

    ids: bytearray = field(default_factory=bytearray)
    hashes: bytearray = field(default_factory=bytearray)
    head: bytes = GENESIS

    @property
    def count(self) -> int:
        return len(self.hashes) // HASH_SIZE


def _hash_log(
    conn: psycopg.Connection[Any],
    service: str,
    *,
    after: int = 0,
    head: bytes = GENESIS,
    limit: int | None = None,
    with_ids: bool = True,
) -> _Hashed:
    """Stream the log after ``after`` and extend the chain from ``head`` (the hot loop of verify).

    PostgreSQL sends one CopyData message per row when copying out (documented in the protocol),
    the file header with the first one and the trailer on its own; each row message *is* the frame
    that is hashed. libpq's ``get_copy_data`` is called directly: it is the per-row cost that
    decides verification speed, and psycopg's ``Copy.read`` adds a generator round-trip per row.
    """
    out = _Hashed(head=head)
    ids, hashes = out.ids, out.hashes
    sha256 = hashlib.sha256
    with conn.cursor().copy(_copy_events(service, after, limit)) as copy:
        get = conn.pgconn.get_copy_data
        nbytes, data = get(0)
        if nbytes <= 0:
            copy.read()  # surfaces the server's error
            raise ChainError("COPY ended before its header")
        data = _after_header(data)
        if not data:
            nbytes, data = get(0)
        # Two copies of the loop, so the faster one does not even test a flag per row.
        if with_ids:
            while len(data) > 2:
                head = sha256(head + data).digest()
                hashes += head
                ids += data[_ID_START:_ID_END]
                nbytes, data = get(0)
        else:
            while len(data) > 2:
                head = sha256(head + data).digest()
                hashes += head
                nbytes, data = get(0)
        if bytes(data) != _COPY_TRAILER:
            copy.read()
            raise ChainError("COPY ended without its trailer")
        copy.read()  # lets psycopg collect the COPY's final result
    out.head = head
    return out


def _rows(conn: psycopg.Connection[Any], service: str) -> Iterator[tuple[int, bytes]]:
    """Every row of the log as (notification_id, frame), in order (for locating problems)."""
    with conn.cursor().copy(_copy_events(service, 0, None)) as copy:
        first = True
        while data := copy.read():
            view = memoryview(data)
            if first:
                view, first = _after_header(view), False
            if len(view) > 2:
                row = bytes(view)
                yield int.from_bytes(row[_ID_START:_ID_END], "big", signed=True), row


def _stored_chain(
    conn: psycopg.Connection[Any], service: str, *, with_ids: bool = True
) -> tuple[bytes, bytes]:
    """The stored chain of a service: ids (int8 big-endian) and hashes, each concatenated."""
    if not _audit_schema_exists(conn):
        return b"", b""
    # One row of byte strings: far cheaper than a Python tuple per chained row.
    ids = sql.SQL(
        "string_agg(int8send(notification_id), '' ORDER BY notification_id)"
        if with_ids
        else "NULL::bytea"
    )
    row = conn.execute(
        sql.SQL(
            "SELECT {}, string_agg(hash, '' ORDER BY notification_id)"
            " FROM {}.chain WHERE service = %s"
        ).format(ids, sql.Identifier(AUDIT_SCHEMA)),
        (service,),
        binary=True,
    ).fetchone()
    if row is None or row[1] is None:
        return b"", b""
    return bytes(row[0] or b""), bytes(row[1])


def _chain_end(conn: psycopg.Connection[Any], service: str) -> int:
    if not _audit_schema_exists(conn):
        return 0
    row = conn.execute(
        sql.SQL("SELECT max(notification_id) FROM {}.chain WHERE service = %s").format(
            sql.Identifier(AUDIT_SCHEMA)
        ),
        (service,),
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _int8s(big_endian: bytes | bytearray) -> array[int]:
    values = array("q")
    values.frombytes(big_endian)
    if sys.byteorder == "little":
        values.byteswap()
    return values


# --- writing checkpoints -----------------------------------------------------------------------


def _chain_copy_data(service: str, hashed: _Hashed) -> Iterator[bytes]:
    prefix = _INT32.pack(len(service.encode())) + service.encode()
    row_start = b"\x00\x03" + prefix + b"\x00\x00\x00\x08"
    hash_length = _INT32.pack(HASH_SIZE)
    ids, hashes = bytes(hashed.ids), bytes(hashed.hashes)
    parts: list[bytes] = [_COPY_HEADER]
    size = len(_COPY_HEADER)
    for i in range(hashed.count):
        parts += (row_start, ids[8 * i : 8 * i + 8], hash_length, hashes[32 * i : 32 * i + 32])
        size += len(row_start) + 44
        if size >= _CHAIN_WRITE_CHUNK:
            yield b"".join(parts)
            parts, size = [], 0
    parts.append(_COPY_TRAILER)
    yield b"".join(parts)


def _checkpoint(
    service: str,
    conninfo: str,
    signing_key: SigningKey,
    max_events: int,
) -> tuple[Checkpoint | None, bool]:
    with psycopg.connect(conninfo, autocommit=True, client_encoding="UTF8") as conn:
        if not _audit_schema_exists(conn):
            ensure_audit_schema(conn)
        if not _log_exists(conn, service):
            return None, False
        with conn.transaction():
            locked = conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s)", (_lock_key(f"weerbaar-chain:{service}"),)
            ).fetchone()
            if not (locked and locked[0]):
                return None, False  # another checkpointer of this service is at work
            previous = conn.execute(
                sql.SQL(
                    "SELECT {} FROM {}.checkpoints WHERE service = %s"
                    " ORDER BY last_notification_id DESC, id DESC LIMIT 1"
                ).format(_CHECKPOINT_COLUMNS, sql.Identifier(AUDIT_SCHEMA)),
                (service,),
            ).fetchone()
            last_id, count, head = 0, 0, GENESIS
            if previous is not None:
                last = _checkpoint_from_row(previous)
                own = {signing_key.key_id: signing_key.public_key}
                if last.signature_valid(own) is False:
                    # Never sign on top of a forged head (one made by an older key is not
                    # checked here; weerbaar verify checks every checkpoint).
                    raise ChainError(f"the last checkpoint of {service} fails its signature")
                last_id, count, head = last.last_notification_id, last.event_count, last.head
            if _chain_end(conn, service) > last_id:
                raise ChainError(
                    f"the chain of {service} goes beyond its last checkpoint; run weerbaar verify"
                )
            hashed = _hash_log(conn, service, after=last_id, head=head, limit=max_events)
            if hashed.count == 0:
                return None, False
            with conn.cursor().copy(
                sql.SQL(
                    "COPY {}.chain (service, notification_id, hash) FROM STDIN (FORMAT binary)"
                ).format(sql.Identifier(AUDIT_SCHEMA))
            ) as copy:
                for chunk in _chain_copy_data(service, hashed):
                    copy.write(chunk)
            made = Checkpoint.sign(
                signing_key,
                service=service,
                last_notification_id=int.from_bytes(hashed.ids[-8:], "big", signed=True),
                event_count=count + hashed.count,
                head=hashed.head,
                signed_at=datetime.now(UTC),
            )
            row = conn.execute(
                sql.SQL(
                    "INSERT INTO {}.checkpoints (service, last_notification_id, event_count,"
                    " head, signed_at, key_id, signature) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                    " RETURNING id"
                ).format(sql.Identifier(AUDIT_SCHEMA)),
                (
                    made.service,
                    made.last_notification_id,
                    made.event_count,
                    made.head,
                    made.signed_at,
                    made.key_id,
                    made.signature,
                ),
            ).fetchone()
            assert row is not None
    made = replace(made, id=row[0])
    # Logged so the heads are also kept outside the database (no personal data: ids and hashes).
    log.info(
        "chain checkpoint signed",
        extra={
            "service": service,
            "checkpoint_id": made.id,
            "last_notification_id": made.last_notification_id,
            "event_count": made.event_count,
            "head": made.head.hex(),
            "key_id": made.key_id,
        },
    )
    return made, hashed.count >= max_events


def checkpoint(
    service: str,
    conninfo: str,
    signing_key: SigningKey,
    *,
    max_events: int = MAX_EVENTS_PER_CHECKPOINT,
) -> Checkpoint | None:
    """Extend the service's chain over its new rows and sign the head; None when nothing is new.

    Also None when another checkpointer of the same service holds the lock. Creates the audit
    schema when it is missing (in production an administrator provisions it beforehand).
    """
    made, _ = _checkpoint(service, conninfo, signing_key, max_events)
    return made


def checkpointer(
    service: str,
    settings: Settings,
    *,
    interval_s: float = 60.0,
    key_path: Path | None = None,
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """A worker (``shared.platform.runtime.Worker``) that checkpoints the service's log every
    ``interval_s`` until stopped."""
    path = key_path or settings.data_dir / "secrets" / KEY_FILE_NAME

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            # Read at every round, so a rotated key is used without a restart; a key that cannot
            # be read is a configuration error and stops the process.
            key = await asyncio.to_thread(load_or_create_signing_key, path)
            more = False
            try:
                _, more = await asyncio.to_thread(
                    _checkpoint, service, settings.database_url, key, MAX_EVENTS_PER_CHECKPOINT
                )
            except (OSError, psycopg.Error, ChainError) as exc:
                log.warning(
                    "chain checkpoint failed",
                    extra={"service": service, "error": type(exc).__name__},
                )
            if not more:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=interval_s)

    run.__name__ = f"checkpointer-{service}"
    return run


# --- verification ------------------------------------------------------------------------------


class ProblemKind(StrEnum):
    """What verification found wrong."""

    MODIFIED = "modified"  # a row's stored bytes differ from what was chained
    DELETED = "deleted"  # a chained row is gone
    SWAPPED = "swapped"  # two rows hold each other's contents (rows out of order)
    TRUNCATED = "truncated"  # the log ends before rows that were chained or signed
    INSERTED = "inserted"  # a row inside the chained range that was never chained
    CHAIN_ALTERED = "chain-altered"  # a stored chain hash changed; the row itself is intact
    BAD_SIGNATURE = "bad-signature"  # a checkpoint row was altered or forged
    UNKNOWN_KEY = "unknown-key"  # a checkpoint signed with a key the verifier does not have
    CHECKPOINT_MISMATCH = "checkpoint-mismatch"  # log and chain rewritten alike
    CHECKPOINT_REMOVED = "checkpoint-removed"  # chain rows beyond the last checkpoint


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a log, and where: notification ids and/or a checkpoint id."""

    kind: ProblemKind
    notification_id: int | None = None
    last_notification_id: int | None = None
    other_notification_id: int | None = None
    checkpoint_id: int | None = None
    rows: int = 1
    detail: str = ""

    def describe(self) -> str:
        """One line for people: what and where (ids only, never data)."""
        where: list[str] = []
        if self.kind in (ProblemKind.BAD_SIGNATURE, ProblemKind.UNKNOWN_KEY):
            where.append(f"checkpoint {self.checkpoint_id} (up to id {self.notification_id})")
        elif self.kind is ProblemKind.SWAPPED:
            where.append(
                f"notification ids {self.notification_id} and {self.other_notification_id}"
            )
        elif self.notification_id is not None:
            if self.last_notification_id not in (None, self.notification_id):
                where.append(
                    f"notification ids {self.notification_id}..{self.last_notification_id}"
                )
            else:
                where.append(f"notification id {self.notification_id}")
        if self.checkpoint_id is not None and not where[0].startswith("checkpoint"):
            where.append(f"checkpoint {self.checkpoint_id}")
        text = f"{self.kind.value} at {', '.join(where)}" if where else self.kind.value
        return f"{text}: {self.detail}" if self.detail else text

    def _position(self) -> tuple[int, int]:
        position = self.notification_id if self.notification_id is not None else sys.maxsize
        # At the same id, what happened to a row comes before what it did to a checkpoint.
        return position, 1 if self.checkpoint_id is not None else 0


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of verifying one service's log."""

    service: str
    events: int
    signed: int
    pending: int
    checkpoints: int
    last_checkpoint: Checkpoint | None
    seconds: float
    problems: tuple[Problem, ...] = ()

    @property
    def ok(self) -> bool:
        """Whether nothing is wrong."""
        return not self.problems

    @property
    def first(self) -> Problem | None:
        """The problem earliest in the log."""
        return self.problems[0] if self.problems else None

    def summary(self) -> str:
        """One line (plus one per further problem) for ``weerbaar verify``."""
        if self.ok:
            if self.last_checkpoint is None:
                signed = "nothing signed yet"
            else:
                signed = (
                    f"{self.signed:,} signed by {self.checkpoints:,} checkpoint(s), the last"
                    f" at id {self.last_checkpoint.last_notification_id}"
                    f" ({_utc(self.last_checkpoint.signed_at):%Y-%m-%d %H:%M:%S} UTC)"
                )
            rate = self.events / self.seconds if self.seconds > 0 else 0.0
            return (
                f"{self.service}: OK — {self.events:,} events, {signed}, {self.pending:,} not"
                f" yet signed; verified in {self.seconds:.2f}s ({rate:,.0f} events/s)"
            )
        lines = [
            f"{self.service}: FAILED — {len(self.problems)} problem(s); first:"
            f" {self.problems[0].describe()}"
        ]
        lines += [f"    {problem.describe()}" for problem in self.problems[1:10]]
        if len(self.problems) > 10:
            lines.append(f"    … and {len(self.problems) - 10} more")
        return "\n".join(lines)


@dataclass
class _Mismatch:
    index: int  # position in the stored chain
    notification_id: int
    previous: bytes  # the stored hash before it
    expected: bytes  # its stored hash
    frame: bytes


def locate(
    stored_ids: Sequence[int], stored_hashes: bytes, rows: Iterable[tuple[int, bytes]]
) -> list[Problem]:
    """Compare a log, row by row, with its stored chain: every damaged row, and what happened.

    Each row is checked against its own stored hash and its predecessor's, so one damaged row
    does not hide the rows after it. Rows after the stored chain are not yet chained: no problem.
    """
    problems: list[Problem] = []
    mismatches: list[_Mismatch] = []
    deleted: list[int] = []
    total = len(stored_ids)

    def stored(j: int) -> bytes:
        return stored_hashes[HASH_SIZE * j : HASH_SIZE * (j + 1)]

    j, previous = 0, GENESIS
    for notification_id, row_frame in rows:
        while j < total and stored_ids[j] < notification_id:
            deleted.append(j)
            previous, j = stored(j), j + 1
        if j < total and stored_ids[j] == notification_id:
            expected = stored(j)
            if link(previous, row_frame) != expected:
                mismatches.append(_Mismatch(j, notification_id, previous, expected, row_frame))
            previous, j = expected, j + 1
        elif j < total:
            problems.append(
                Problem(
                    ProblemKind.INSERTED,
                    notification_id,
                    detail="a row inside the chained range that was never chained",
                )
            )
    for index in deleted:
        problems.append(
            Problem(ProblemKind.DELETED, stored_ids[index], detail="a chained row is missing")
        )
    if j < total:
        problems.append(
            Problem(
                ProblemKind.TRUNCATED,
                stored_ids[j],
                last_notification_id=stored_ids[total - 1],
                rows=total - j,
                detail=f"the log ends before {total - j} chained row(s)",
            )
        )
    problems += _classify(mismatches)
    problems.sort(key=Problem._position)
    return problems


def _classify(mismatches: list[_Mismatch]) -> list[Problem]:
    problems: list[Problem] = []
    explained: set[int] = set()
    candidates = mismatches[:_MAX_SWAP_CANDIDATES]
    for a, b in itertools.combinations(candidates, 2):
        if a.index in explained or b.index in explained:
            continue
        if _swapped(a, b):
            explained |= {a.index, b.index}
            problems.append(
                Problem(
                    ProblemKind.SWAPPED,
                    a.notification_id,
                    other_notification_id=b.notification_id,
                    rows=2,
                    detail="the two rows hold each other's contents",
                )
            )
    by_index = {m.index: m for m in mismatches}
    for m in mismatches:
        if m.index in explained:
            continue
        after = by_index.get(m.index + 1)
        if after is not None and after.index not in explained:
            # The row is intact but its stored hash was changed: the next row then checks out
            # against the true hash and fails only against the altered one.
            true_hash = link(m.previous, m.frame)
            if link(true_hash, after.frame) == after.expected:
                explained |= {m.index, after.index}
                problems.append(
                    Problem(
                        ProblemKind.CHAIN_ALTERED,
                        m.notification_id,
                        detail="the row is intact; its stored chain hash was changed",
                    )
                )
                continue
        explained.add(m.index)
        problems.append(
            Problem(
                ProblemKind.MODIFIED,
                m.notification_id,
                detail="the stored bytes differ from what was chained",
            )
        )
    return problems


def _swapped(a: _Mismatch, b: _Mismatch) -> bool:
    # Whole contents exchanged (rows out of order), or only topic and state.
    for cut in (_CONTENT_START, _PAYLOAD_START):
        if link(a.previous, a.frame[:cut] + b.frame[cut:]) == a.expected and (
            link(b.previous, b.frame[:cut] + a.frame[cut:]) == b.expected
        ):
            return True
    return False


def _signatures(
    checkpoints: Sequence[Checkpoint], public_keys: dict[str, Ed25519PublicKey]
) -> tuple[list[Checkpoint], list[Problem]]:
    """The validly signed checkpoints, and a problem for each of the others."""
    valid: list[Checkpoint] = []
    problems: list[Problem] = []
    for cp in checkpoints:
        signed = cp.signature_valid(public_keys)
        if signed:
            valid.append(cp)
        elif signed is None:
            problems.append(
                Problem(
                    ProblemKind.UNKNOWN_KEY,
                    cp.last_notification_id,
                    checkpoint_id=cp.id,
                    detail=f"signed with key {cp.key_id}, which is not among the public keys",
                )
            )
        else:
            problems.append(
                Problem(
                    ProblemKind.BAD_SIGNATURE,
                    cp.last_notification_id,
                    checkpoint_id=cp.id,
                    detail="the checkpoint row does not match its signature",
                )
            )
    return valid, problems


def _intact(hashes: bytearray, stored_hashes: bytes, valid: Sequence[Checkpoint]) -> bool:
    """Whether the log's chain starts with the stored chain and has every signed head.

    A head found at position ``event_count`` also vouches for the checkpoint's last id: equal
    hashes mean equal rows, ids included.
    """
    chained = len(stored_hashes) // HASH_SIZE
    if memoryview(hashes)[: len(stored_hashes)] != stored_hashes:
        return False
    return all(
        0 < cp.event_count <= chained
        and stored_hashes[HASH_SIZE * (cp.event_count - 1) : HASH_SIZE * cp.event_count] == cp.head
        for cp in valid
    )


def _first_mismatch(
    valid: Sequence[Checkpoint], ids: array[int], hashes: bytearray
) -> Problem | None:
    """The first validly signed checkpoint whose count or head the log no longer has."""
    previous_last = 0
    for cp in valid:
        count = bisect_right(ids, cp.last_notification_id)
        head = bytes(hashes[HASH_SIZE * (count - 1) : HASH_SIZE * count]) if count else GENESIS
        if count != cp.event_count or head != cp.head:
            return Problem(
                ProblemKind.CHECKPOINT_MISMATCH,
                previous_last + 1,
                last_notification_id=cp.last_notification_id,
                checkpoint_id=cp.id,
                rows=abs(cp.event_count - count) or 1,
                detail=(
                    f"signed {cp.event_count} rows with head {cp.head.hex()[:16]}…, the log now"
                    f" has {count} with head {head.hex()[:16]}…"
                ),
            )
        previous_last = cp.last_notification_id
    return None


def _truncation(mismatch: Problem, ids: array[int], last: Checkpoint) -> Problem | None:
    """The mismatch as a truncated tail, when the log simply ends before the checkpoint's rows."""
    assert mismatch.last_notification_id is not None
    log_end = ids[-1] if ids else 0
    missing = last.event_count - len(ids)
    if log_end >= mismatch.last_notification_id or missing <= 0:
        return None
    return Problem(
        ProblemKind.TRUNCATED,
        log_end + 1,
        last_notification_id=last.last_notification_id,
        checkpoint_id=last.id,
        rows=missing,
        detail=(
            f"the log ends at id {log_end}; checkpoint {last.id} signed {last.event_count} rows up"
            f" to id {last.last_notification_id}, {missing} are missing"
        ),
    )


def _checkpoints_removed(checkpoints: Sequence[Checkpoint], chain_end: int) -> list[Problem]:
    """Chain rows beyond the last checkpoint: they are only ever written together with one."""
    signed_end = max((cp.last_notification_id for cp in checkpoints), default=0)
    if chain_end <= signed_end:
        return []
    return [
        Problem(
            ProblemKind.CHECKPOINT_REMOVED,
            signed_end + 1,
            last_notification_id=chain_end,
            detail=(
                f"the chain covers up to id {chain_end} but the last checkpoint only up to id"
                f" {signed_end}: checkpoints were removed"
            ),
        )
    ]


def _recomputing(rows: Iterator[tuple[int, bytes]], into: _Hashed) -> Iterator[tuple[int, bytes]]:
    """Pass the rows on, recomputing the chain and collecting the ids on the way."""
    head = GENESIS
    for notification_id, row_frame in rows:
        head = link(head, row_frame)
        into.hashes += head
        into.ids += row_frame[_ID_START:_ID_END]
        yield notification_id, row_frame
    into.head = head


def _stored_hashes_in(conninfo: str, snapshot: str, service: str) -> bytes:
    """The stored chain hashes, read on a second connection in the given snapshot."""
    with psycopg.connect(conninfo) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot)))
        return _stored_chain(conn, service, with_ids=False)[1]


def verify(service: str, conninfo: str, public_keys: dict[str, Ed25519PublicKey]) -> VerifyReport:
    """Recompute the service's chain from row 1 and check it against every checkpoint."""
    started = time.perf_counter()
    with psycopg.connect(conninfo, client_encoding="UTF8") as conn:
        # One snapshot for the checkpoints, the chain and the log: a checkpointer committing in
        # between must not look like tampering.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        checkpoints = _checkpoints(conn, service)
        valid, problems = _signatures(checkpoints, public_keys)
        log_exists = _log_exists(conn, service)
        row = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert row is not None
        # The stored hashes are read on another connection while this one streams the log: the
        # server has a core to spare for it while the client hashes.
        with ThreadPoolExecutor(1) as pool:
            stored = pool.submit(_stored_hashes_in, conninfo, row[0], service)
            hashed = _hash_log(conn, service, with_ids=False) if log_exists else _Hashed()
            stored_hashes = stored.result()
        chain_end = _chain_end(conn, service)
        if _intact(hashed.hashes, stored_hashes, valid):
            events, signed = hashed.count, valid[-1].event_count if valid else 0
        else:
            events, signed, located = _locate_in(conn, service, log_exists, valid)
            problems += located
    problems += _checkpoints_removed(checkpoints, chain_end)
    problems.sort(key=Problem._position)
    return VerifyReport(
        service=service,
        events=events,
        signed=signed,
        pending=events - signed,
        checkpoints=len(checkpoints),
        last_checkpoint=valid[-1] if valid else None,
        seconds=time.perf_counter() - started,
        problems=tuple(problems[:_MAX_PROBLEMS]),
    )


def _locate_in(
    conn: psycopg.Connection[Any], service: str, log_exists: bool, valid: Sequence[Checkpoint]
) -> tuple[int, int, list[Problem]]:
    """The second, slower pass: (events, signed events, the problems located)."""
    stored_ids_be, stored_hashes = _stored_chain(conn, service)
    recomputed = _Hashed()
    rows = _recomputing(_rows(conn, service), recomputed) if log_exists else iter(())
    problems = locate(_int8s(stored_ids_be), stored_hashes, rows)
    ids = _int8s(recomputed.ids)
    mismatch = _first_mismatch(valid, ids, recomputed.hashes)
    if mismatch is not None:
        assert mismatch.last_notification_id is not None
        # A damaged row explains every later checkpoint's mismatch; only an unexplained one
        # (the log and the chain rewritten alike) is a problem of its own.
        explained = any(
            p.notification_id is not None and p.notification_id <= mismatch.last_notification_id
            for p in problems
        )
        if not explained:
            problems.append(_truncation(mismatch, ids, valid[-1]) or mismatch)
    signed = bisect_right(ids, valid[-1].last_notification_id) if valid else 0
    return recomputed.count, signed, problems
