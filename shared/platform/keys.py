"""Data keys per dossier, kept apart from the events, and the key-encryption keys that wrap them.

Personal data in a service's event store is encrypted field by field
(``shared.platform.eventstore``) with the dossier's **data key**: AES-256-GCM, one random key per
dossier (aanvraag_id) per service. The data keys live in the table ``<service>.dossier_keys``, never
next to the events, each one wrapped (AES-256-GCM, bound to its schema, dossier and key id) by a
**key-encryption key** (KEK) that lives on disk only: ``<kek_dir>/kek-<n>.key``, 32 random bytes,
mode 0600. The KEK with the highest ``n`` wraps new data keys; the others only unwrap what they
wrapped before.

**Forgetting** (crypto-shredding) sets a dossier's wrapped key to NULL and records who, when and
why in the same row. Every ciphertext made with that key is noise from then on; a reader sees a
placeholder. A forgotten dossier keeps a *tombstone* row in every service, so personal data that
arrives for it later is refused (``Vergeten``, 410) instead of being stored under a new key.

**Rotating the KEK** (``weerbaar keys rotate``, see ``rotate``):

1. a new ``kek-<n+1>.key`` is written; from that moment every process wraps new data keys with it
   (the active KEK is looked up whenever a data key is made);
2. every live data key, in every service's schema, is unwrapped with its old KEK and wrapped with
   the new one, under ``FOR UPDATE``; the pass repeats until no live key names an old KEK;
3. the old KEK files stay until the operator retires them (``weerbaar keys retire <n>``), which
   refuses while any live key still needs them. Retire them once every service runs with the new
   file (in a deployment with one secrets volume per service, copy ``kek-<n+1>.key`` to each first).

A destroyed key's old bytes live on for a while outside the live row: in the dead row version
until (auto)vacuum, in the WAL and in backups. All of them are wrapped by a KEK: after a rotation
and retiring the old KEK file, those in the live server are noise too. A backup
(``weerbaar backup``, ``tools.backup``) keeps the KEKs of its day in its own secrets folder, so
it stays usable after a retirement, and a restore forgets again what the forget record
(``shared.platform.forgotten``) says was forgotten; a backup becomes noise when its secrets folder
is destroyed with it at the end of its retention.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID, uuid4

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg.rows import DictRow, dict_row
from psycopg.sql import SQL, Composed, Identifier

from shared.platform.errors import WeerbaarError
from shared.platform.unitofwork import DuplicateKey, MemoryWrite, SideWrite, Statement

KEY_BYTES = 32
NONCE_BYTES = 12
_KEK_FILE = re.compile(r"^kek-([1-9][0-9]{0,8})\.key$")

Transaction = Callable[[], AbstractContextManager[psycopg.Cursor[DictRow]]]
"""Opens a transaction on the service's database and yields a cursor (commits on success)."""
Reader = Callable[[], AbstractContextManager[psycopg.Connection[DictRow]]]
"""Lends an autocommit connection: one statement, one round trip (key lookups on every read)."""


class Vergeten(WeerbaarError):
    """410: the personal data of this dossier were forgotten; nothing personal is kept for it."""

    status = 410
    title = "Vergeten / Gone"
    slug = "vergeten"


class KeyStoreError(Exception):
    """A key that must exist is missing or does not fit: an operator must look (never a user)."""


@dataclass(frozen=True)
class DataKey:
    """A dossier's data key, unwrapped, with the id the ciphertexts name."""

    key_id: UUID
    key: bytes = field(repr=False)


class KeyRing(Protocol):
    """Where the event mapper gets data keys."""

    def for_writing(self, aanvraag_id: UUID) -> DataKey:
        """The dossier's data key, made on first use; ``Vergeten`` once it was destroyed."""
        ...

    def for_reading(self, key_id: UUID) -> bytes | None:
        """The data key with this id, or None when it was destroyed."""
        ...


# --- AES-GCM ------------------------------------------------------------------------------------


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-GCM with a random nonce: ``nonce || ciphertext || tag``."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """The plaintext of ``seal``; KeyStoreError when the key, the data or the AAD do not fit."""
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise KeyStoreError(
            "ciphertext does not decrypt with its key (tampered or wrong key)"
        ) from None


def _wrap_aad(schema: str, aanvraag_id: UUID, key_id: UUID) -> bytes:
    # Binds a wrapped key to its row: copied to another dossier or service it does not unwrap.
    return f"weerbaar-data-key|{schema}|{aanvraag_id}|{key_id}".encode()


# --- key-encryption keys ------------------------------------------------------------------------


class KeyEncryptionKeys:
    """The KEKs in one directory: ``kek-<n>.key``; the highest ``n`` is active."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._cache: dict[str, bytes] = {}

    def ids(self) -> list[str]:
        """The ids of the KEK files present, oldest first."""
        if not self.directory.is_dir():
            return []
        found = (_KEK_FILE.match(p.name) for p in self.directory.iterdir())
        return [str(n) for n in sorted(int(m.group(1)) for m in found if m)]

    def path(self, kek_id: str) -> Path:
        """Where a KEK lives."""
        return self.directory / f"kek-{kek_id}.key"

    def active(self) -> tuple[str, bytes]:
        """The KEK that wraps new data keys (read from disk each time: a rotation takes effect)."""
        ids = self.ids()
        if not ids:
            raise KeyStoreError(f"no key-encryption key (kek-<n>.key) in {self.directory}")
        return ids[-1], self.get(ids[-1])

    def get(self, kek_id: str) -> bytes:
        """A KEK by id (kept in memory once read)."""
        cached = self._cache.get(kek_id)
        if cached is not None:
            return cached
        try:
            data = self.path(kek_id).read_bytes()
        except FileNotFoundError:
            raise KeyStoreError(f"key-encryption key kek-{kek_id}.key is missing") from None
        if len(data) != KEY_BYTES:
            raise KeyStoreError(f"key-encryption key kek-{kek_id}.key is not {KEY_BYTES} bytes")
        self._cache[kek_id] = data
        return data

    def create(self, kek_id: str) -> bytes:
        """Write a new KEK (mode 0600); when another process wrote it first, theirs is kept."""
        target = self.path(kek_id)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        # A private temporary file linked into place: processes racing to create the same KEK
        # agree on one, and nobody ever reads a half-written key.
        fd, tmp_name = tempfile.mkstemp(dir=self.directory, prefix=".kek-")
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
            os.close(fd)
            fd = -1
            with contextlib.suppress(FileExistsError):
                os.link(tmp_name, target)
        finally:
            if fd != -1:
                os.close(fd)
            os.unlink(tmp_name)
        return self.get(kek_id)

    def create_next(self) -> str:
        """Write the next KEK, which becomes the active one; its id."""
        ids = self.ids()
        kek_id = str(int(ids[-1]) + 1 if ids else 1)
        self.create(kek_id)
        return kek_id

    def retire(self, kek_id: str) -> None:
        """Delete a KEK file (the caller made sure no live data key needs it)."""
        if kek_id == self.active()[0]:
            raise KeyStoreError("the active key-encryption key cannot be retired")
        self.path(kek_id).unlink()
        self._cache.pop(kek_id, None)


# --- the dossier_keys table ---------------------------------------------------------------------


def dossier_keys_ddl(schema: str) -> Composed:
    """The table of one service's data keys."""
    return SQL(
        "CREATE TABLE IF NOT EXISTS {} ("
        " aanvraag_id uuid PRIMARY KEY,"
        " key_id uuid NOT NULL UNIQUE,"
        " kek_id text,"
        " wrapped_key bytea,"
        " created_at timestamptz NOT NULL DEFAULT now(),"
        " destroyed_at timestamptz,"
        " destroyed_by text,"
        " destroyed_reason text,"
        " CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL)))"
    ).format(Identifier(schema, "dossier_keys"))


def destroy_statement(
    schema: str, aanvraag_id: UUID, who: str, why: str, at: datetime
) -> tuple[Composed, tuple[Any, ...]]:
    """SQL and parameters that destroy a dossier's data key, or leave a tombstone when it has none.

    A key destroyed before keeps its first who/when/why: forgetting twice changes nothing.
    """
    sql = SQL(
        "INSERT INTO {table} (aanvraag_id, key_id, destroyed_at, destroyed_by, destroyed_reason)"
        " VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (aanvraag_id) DO UPDATE SET wrapped_key = NULL,"
        " destroyed_at = EXCLUDED.destroyed_at, destroyed_by = EXCLUDED.destroyed_by,"
        " destroyed_reason = EXCLUDED.destroyed_reason"
        " WHERE {table}.destroyed_at IS NULL"
    ).format(table=Identifier(schema, "dossier_keys"))
    return sql, (aanvraag_id, uuid4(), at, who, why)


@dataclass(frozen=True)
class KeyStatus:
    """What is known of one dossier's data key in one service."""

    key_id: UUID
    had_key: bool  # False for a tombstone: the service never held personal data of the dossier
    created_at: datetime
    destroyed_at: datetime | None
    destroyed_by: str | None
    destroyed_reason: str | None


class DataKeys(Protocol):
    """The data keys of one service's personal fields, one per dossier."""

    def for_writing(self, aanvraag_id: UUID) -> DataKey:
        """The dossier's data key, made on first use; ``Vergeten`` once it was destroyed."""

    def for_reading(self, key_id: UUID) -> bytes | None:
        """The data key with this id, or None when it was destroyed."""

    def new_dossier(self, aanvraag_id: UUID) -> AbstractContextManager[SideWrite]:
        """A new dossier's key, stored by the side write the block is handed (with the dossier's
        first events); inside the block ``for_writing`` gets it without a lookup."""

    def status(self, aanvraag_id: UUID) -> KeyStatus | None:
        """The dossier's key without the key, or None when it has none."""

    def destroying(self, aanvraag_id: UUID, who: str, why: str, at: datetime) -> SideWrite:
        """The side write that destroys the dossier's key (or leaves a tombstone), keeping the
        first who/when/why when it was destroyed before."""


class DossierKeys:
    """One service's data keys in PostgreSQL (``<schema>.dossier_keys``).

    Keys are looked up on every use and never cached: a key destroyed by ``weerbaar forget`` in
    another process is gone for this one from the next read on. ``read`` makes that lookup one
    round trip (an autocommit connection); without it, lookups use ``transaction``.
    """

    def __init__(
        self,
        transaction: Transaction,
        schema: str,
        keks: KeyEncryptionKeys,
        read: Reader | None = None,
    ) -> None:
        self.transaction = transaction
        self.read = read
        self.schema = schema
        self.keks = keks
        self.table = Identifier(schema, "dossier_keys")
        self._local = threading.local()  # keys of dossiers being created, per thread
        self._select_by_dossier = SQL(
            "SELECT aanvraag_id, key_id, kek_id, wrapped_key, created_at, destroyed_at,"
            " destroyed_by, destroyed_reason FROM {} WHERE aanvraag_id = %s"
        ).format(self.table)
        self._select_by_key = SQL(
            "SELECT aanvraag_id, key_id, kek_id, wrapped_key FROM {} WHERE key_id = %s"
        ).format(self.table)

    def _one(self, sql: Composed, params: tuple[Any, ...]) -> DictRow | None:
        if self.read is None:
            with self.transaction() as cur:
                cur.execute(sql, params)
                return cur.fetchone()
        with self.read() as conn:
            return conn.execute(sql, params, prepare=True).fetchone()

    def create_table(self) -> None:
        """Create the table when missing, and the first KEK when there is none and may be none.

        A KEK is never made up while wrapped keys exist: a lost KEK file must be restored, not
        replaced (a new one would unwrap nothing).
        """
        with self.transaction() as cur:
            cur.execute(dossier_keys_ddl(self.schema))
            # One live key per KEK: enough to prove each KEK file is the one that wrapped them.
            cur.execute(
                SQL(
                    "SELECT DISTINCT ON (kek_id) aanvraag_id, key_id, kek_id, wrapped_key FROM {}"
                    " WHERE wrapped_key IS NOT NULL ORDER BY kek_id"
                ).format(self.table)
            )
            samples = cur.fetchall()
        present = set(self.keks.ids())
        needed = {row["kek_id"] for row in samples}
        if needed - present:
            missing = ", ".join(f"kek-{k}.key" for k in sorted(needed - present))
            raise KeyStoreError(
                f"{self.schema}: data keys are wrapped by {missing}, not in {self.keks.directory}"
            )
        for row in samples:
            try:
                self._unwrap(row)
            except KeyStoreError:
                raise KeyStoreError(
                    f"{self.schema}: kek-{row['kek_id']}.key in {self.keks.directory} is not the"
                    " key that wrapped the data keys (another installation's file?)"
                ) from None
        if not present:
            self.keks.create("1")

    def for_writing(self, aanvraag_id: UUID) -> DataKey:
        """The dossier's data key, made on first use; ``Vergeten`` once it was destroyed."""
        creating = self._creating().get(aanvraag_id)
        if creating is not None:
            return creating
        row = self._one(self._select_by_dossier, (aanvraag_id,))
        if row is None:
            with self.transaction() as cur:
                kek_id, kek = self.keks.active()
                key_id, key = uuid4(), AESGCM.generate_key(bit_length=256)
                cur.execute(
                    SQL(
                        "INSERT INTO {} (aanvraag_id, key_id, kek_id, wrapped_key)"
                        " VALUES (%s, %s, %s, %s) ON CONFLICT (aanvraag_id) DO NOTHING"
                        " RETURNING key_id"
                    ).format(self.table),
                    (aanvraag_id, key_id, kek_id, seal(kek, key, self._aad(aanvraag_id, key_id))),
                )
                if cur.fetchone() is not None:
                    return DataKey(key_id, key)
                cur.execute(self._select_by_dossier, (aanvraag_id,))
                row = cur.fetchone()  # another writer made it first
                assert row is not None
        if row["wrapped_key"] is None:
            raise Vergeten(
                "De persoonsgegevens van dit dossier zijn vergeten; er worden geen nieuwe"
                " persoonsgegevens voor vastgelegd.",
                code="persoonsgegevens_vergeten",
            )
        return DataKey(row["key_id"], self._unwrap(row))

    def for_reading(self, key_id: UUID) -> bytes | None:
        """The data key with this id, or None when it was destroyed."""
        row = self._one(self._select_by_key, (key_id,))
        if row is None:
            raise KeyStoreError(f"{self.schema}: data key {key_id} is unknown")
        return None if row["wrapped_key"] is None else self._unwrap(row)

    @contextlib.contextmanager
    def new_dossier(self, aanvraag_id: UUID) -> Iterator[Statement]:
        """The data key of a dossier being created, to be stored with its first events.

        Inside the block, ``for_writing(aanvraag_id)`` (the mapper, while saving, in the same
        thread) gets this key without a lookup. The block is handed the INSERT of the key's row,
        to execute in the events' transaction (a side statement): both are stored or neither.
        That saves the key's own transaction (a commit) and two round trips per new dossier.
        Only for an id that was just made: for a dossier that has a key or a tombstone, the
        INSERT fails and with it the events.
        """
        kek_id, kek = self.keks.active()
        key_id, key = uuid4(), AESGCM.generate_key(bit_length=256)
        creating = self._creating()
        creating[aanvraag_id] = DataKey(key_id, key)
        try:
            yield Statement(
                SQL(
                    "INSERT INTO {} (aanvraag_id, key_id, kek_id, wrapped_key)"
                    " VALUES (%s, %s, %s, %s)"
                ).format(self.table),
                (aanvraag_id, key_id, kek_id, seal(kek, key, self._aad(aanvraag_id, key_id))),
            )
        finally:
            del creating[aanvraag_id]

    def _creating(self) -> dict[UUID, DataKey]:
        creating: dict[UUID, DataKey] | None = getattr(self._local, "creating", None)
        if creating is None:
            creating = self._local.creating = {}
        return creating

    def for_reading_many(self, key_ids: Iterable[UUID]) -> KeyRing:
        """A ring that holds these keys as they are now: one lookup for a whole batch.

        For a reader of many dossiers at once (the relay): the ring lives for one batch, so a
        key destroyed meanwhile is gone for the next batch, as it would be for the next single
        lookup. A key it does not hold is looked up as ``for_reading`` does.
        """
        wanted = list(set(key_ids))
        found: dict[UUID, bytes | None] = {}
        if wanted:
            query = SQL(
                "SELECT aanvraag_id, key_id, kek_id, wrapped_key FROM {} WHERE key_id = ANY(%s)"
            ).format(self.table)
            if self.read is None:
                with self.transaction() as cur:
                    cur.execute(query, (wanted,))
                    rows = cur.fetchall()
            else:
                with self.read() as conn:
                    rows = conn.execute(query, (wanted,), prepare=True).fetchall()
            for row in rows:
                found[row["key_id"]] = None if row["wrapped_key"] is None else self._unwrap(row)
        return _Prefetched(self, found)

    def destroy(self, aanvraag_id: UUID, who: str, why: str, at: datetime) -> bool:
        """Destroy the dossier's data key (or leave a tombstone); True when this call did it."""
        sql, params = destroy_statement(self.schema, aanvraag_id, who, why, at)
        with self.transaction() as cur:
            cur.execute(sql + SQL(" RETURNING aanvraag_id"), params)
            return cur.fetchone() is not None

    def destroying(self, aanvraag_id: UUID, who: str, why: str, at: datetime) -> Statement:
        """The side statement that destroys the dossier's key (``destroy_statement``)."""
        return Statement(*destroy_statement(self.schema, aanvraag_id, who, why, at))

    def status(self, aanvraag_id: UUID) -> KeyStatus | None:
        """The dossier's key row without the key, or None when it has none."""
        row = self._one(self._select_by_dossier, (aanvraag_id,))
        if row is None:
            return None
        return KeyStatus(
            key_id=row["key_id"],
            had_key=row["kek_id"] is not None,
            created_at=row["created_at"],
            destroyed_at=row["destroyed_at"],
            destroyed_by=row["destroyed_by"],
            destroyed_reason=row["destroyed_reason"],
        )

    def rewrap(self) -> int:
        """Wrap every live data key with the active KEK; how many were rewrapped."""
        kek_id, kek = self.keks.active()
        count = 0
        with self.transaction() as cur:
            cur.execute(
                SQL(
                    "SELECT aanvraag_id, key_id, kek_id, wrapped_key FROM {}"
                    " WHERE wrapped_key IS NOT NULL AND kek_id <> %s FOR UPDATE"
                ).format(self.table),
                (kek_id,),
            )
            for row in cur.fetchall():
                key = self._unwrap(row)
                aad = self._aad(row["aanvraag_id"], row["key_id"])
                cur.execute(
                    SQL(
                        "UPDATE {} SET kek_id = %s, wrapped_key = %s WHERE aanvraag_id = %s"
                    ).format(self.table),
                    (kek_id, seal(kek, key, aad), row["aanvraag_id"]),
                )
                count += 1
        return count

    def kek_ids_in_use(self) -> set[str]:
        """The KEKs that live data keys need."""
        with self.transaction() as cur:
            cur.execute(
                SQL("SELECT DISTINCT kek_id FROM {} WHERE wrapped_key IS NOT NULL").format(
                    self.table
                )
            )
            return {row["kek_id"] for row in cur.fetchall()}

    def _aad(self, aanvraag_id: UUID, key_id: UUID) -> bytes:
        return _wrap_aad(self.schema, aanvraag_id, key_id)

    def _unwrap(self, row: DictRow) -> bytes:
        kek = self.keks.get(row["kek_id"])
        return open_sealed(
            kek, bytes(row["wrapped_key"]), self._aad(row["aanvraag_id"], row["key_id"])
        )


@dataclass(frozen=True)
class _Prefetched:
    """Keys read together for one batch; anything else is asked of the ring itself."""

    ring: KeyRing
    keys: dict[UUID, bytes | None]

    def for_writing(self, aanvraag_id: UUID) -> DataKey:
        return self.ring.for_writing(aanvraag_id)

    def for_reading(self, key_id: UUID) -> bytes | None:
        if key_id in self.keys:
            return self.keys[key_id]
        return self.ring.for_reading(key_id)


class MemoryKeys:
    r"""Data keys in memory (``shared.platform.ports.DataKeys``): the rules of ``DossierKeys``
    for the in-memory store, whose mapper seals personal fields with them as PostgreSQL's does.
    Its side writes are ``MemoryWrite``\ s, checked and applied under the in-memory recorder's
    lock with the events they come with."""

    def __init__(self) -> None:
        self.by_dossier: dict[UUID, DataKey] = {}
        self.by_id: dict[UUID, bytes | None] = {}
        self.statuses: dict[UUID, KeyStatus] = {}
        self._lock = threading.RLock()
        self._local = threading.local()  # keys of dossiers being created, per thread

    def _creating(self) -> dict[UUID, DataKey]:
        creating: dict[UUID, DataKey] | None = getattr(self._local, "creating", None)
        if creating is None:
            creating = self._local.creating = {}
        return creating

    def _store(self, aanvraag_id: UUID, made: DataKey) -> None:
        with self._lock:  # also from the recorder's writes: one lock for every change of a key
            if aanvraag_id in self.statuses:
                return  # made or destroyed meanwhile (PostgreSQL's ON CONFLICT DO NOTHING)
            self._put(aanvraag_id, made)

    def _put(self, aanvraag_id: UUID, made: DataKey) -> None:
        self.by_dossier[aanvraag_id] = made
        self.by_id[made.key_id] = made.key
        self.statuses[aanvraag_id] = KeyStatus(
            made.key_id, True, datetime.now(UTC), None, None, None
        )

    def for_writing(self, aanvraag_id: UUID) -> DataKey:
        """The dossier's data key, made on first use; ``Vergeten`` once it was destroyed."""
        creating = self._creating().get(aanvraag_id)
        if creating is not None:
            return creating
        with self._lock:
            status = self.statuses.get(aanvraag_id)
            if status is not None and status.destroyed_at is not None:
                raise Vergeten(code="persoonsgegevens_vergeten")  # a destroyed key or a tombstone
            if status is None:
                self._store(aanvraag_id, DataKey(uuid4(), AESGCM.generate_key(bit_length=256)))
            return self.by_dossier[aanvraag_id]

    def for_reading(self, key_id: UUID) -> bytes | None:
        """The data key with this id, or None when it was destroyed."""
        if key_id not in self.by_id:
            raise KeyStoreError(f"data key {key_id} is unknown")
        return self.by_id[key_id]

    @contextlib.contextmanager
    def new_dossier(self, aanvraag_id: UUID) -> Iterator[MemoryWrite]:
        """A new dossier's key, stored by the write the block is handed (``DossierKeys``'s rule:
        a dossier that has a key or a tombstone refuses it, and its events with it)."""
        made = DataKey(uuid4(), AESGCM.generate_key(bit_length=256))
        creating = self._creating()
        creating[aanvraag_id] = made

        def check() -> None:
            if aanvraag_id in self.statuses:
                raise DuplicateKey("dossier_keys_pkey")

        try:
            yield MemoryWrite(apply=lambda: self._store(aanvraag_id, made), check=check)
        finally:
            del creating[aanvraag_id]

    def status(self, aanvraag_id: UUID) -> KeyStatus | None:
        """The dossier's key without the key, or None when it has none."""
        return self.statuses.get(aanvraag_id)

    def destroying(self, aanvraag_id: UUID, who: str, why: str, at: datetime) -> MemoryWrite:
        """The write that destroys the dossier's key (or leaves a tombstone); a key destroyed
        before keeps its first who/when/why."""

        def apply() -> None:
            with self._lock:
                status = self.statuses.get(aanvraag_id)
                if status is None:
                    self.statuses[aanvraag_id] = KeyStatus(uuid4(), False, at, at, who, why)
                    return
                if status.destroyed_at is not None:
                    return
                self.by_id[status.key_id] = None
                self.statuses[aanvraag_id] = replace(
                    status, destroyed_at=at, destroyed_by=who, destroyed_reason=why
                )

        return MemoryWrite(apply=apply)

    def destroy(self, aanvraag_id: UUID, who: str = "test", why: str = "test") -> bool:
        """Destroy the dossier's key now (or leave a tombstone); True when this call did it."""
        before = self.statuses.get(aanvraag_id)
        self.destroying(aanvraag_id, who, why, datetime.now(UTC)).apply()
        return before is None or before.destroyed_at is None


# --- operating on every service's schema (the CLI) ----------------------------------------------


def connect_transaction(database_url: str) -> Transaction:
    """Transactions on their own connection each (for the command line, not for services)."""

    @contextlib.contextmanager
    def transaction() -> Iterator[psycopg.Cursor[DictRow]]:
        with (
            psycopg.connect(database_url, row_factory=dict_row, connect_timeout=10) as conn,
            conn.transaction(),
        ):
            yield conn.cursor()

    return transaction


def schemas_with_keys(transaction: Transaction, schemas: Sequence[str]) -> list[str]:
    """The schemas among these that have a ``dossier_keys`` table."""
    with transaction() as cur:
        found = []
        for schema in schemas:
            cur.execute("SELECT to_regclass(%s) AS t", (f"{schema}.dossier_keys",))
            row = cur.fetchone()
            if row is not None and row["t"] is not None:
                found.append(schema)
    return found


@dataclass(frozen=True)
class Rotation:
    """What a KEK rotation did."""

    kek_id: str
    rewrapped: dict[str, int]
    retirable: list[str]


def rotate(database_url: str, kek_dir: Path, schemas: Sequence[str]) -> Rotation:
    """Write a new KEK and rewrap every live data key of these services with it."""
    keks = KeyEncryptionKeys(kek_dir)
    kek_id = keks.create_next()
    transaction = connect_transaction(database_url)
    rewrapped: dict[str, int] = {}
    in_use: set[str] = set()
    for schema in schemas_with_keys(transaction, schemas):
        keys = DossierKeys(transaction, schema, keks)
        rewrapped[schema] = keys.rewrap()
        # A data key made by a process that had not yet seen the new KEK: wrap it too.
        while keys.kek_ids_in_use() - {kek_id}:
            rewrapped[schema] += keys.rewrap()
        in_use |= keys.kek_ids_in_use()
    retirable = [k for k in keks.ids() if k != kek_id and k not in in_use]
    return Rotation(kek_id, rewrapped, retirable)


def retire(database_url: str, kek_dir: Path, schemas: Sequence[str], kek_id: str) -> None:
    """Delete an old KEK file; refused while a live data key of any service still needs it."""
    keks = KeyEncryptionKeys(kek_dir)
    transaction = connect_transaction(database_url)
    for schema in schemas_with_keys(transaction, schemas):
        if kek_id in DossierKeys(transaction, schema, keks).kek_ids_in_use():
            raise KeyStoreError(f"{schema} still has data keys wrapped by kek-{kek_id}.key")
    keks.retire(kek_id)
