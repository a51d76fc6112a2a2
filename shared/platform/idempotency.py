"""Idempotency keys: a retried command (same ``Idempotency-Key``, same body) gets the first answer.

The key is stored with a digest of the request and the answer, in the same unit of work as the
events the command recorded, so either both exist or neither
(``ServiceApplication.change_once``). A key reused with a different body answers 422. Keys are
scoped (route and caller), so two callers never share one. Two forms of the port
(``shared.platform.ports.IdempotencyKeys``): ``SqlIdempotencyKeys`` (a table of the service's
schema) and ``MemoryIdempotencyKeys`` (the in-memory store's); ``idempotency_keys`` picks the
application's.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import Header
from psycopg.sql import SQL, Identifier
from pydantic import BaseModel

from shared.platform.errors import Ongeldig
from shared.platform.eventstore import ServiceApplication
from shared.platform.unitofwork import DuplicateKey, MemoryWrite, Statement

#: The ``Idempotency-Key`` request header, checked at the edge: 1–200 characters of
#: ``A-Z a-z 0-9 . _ : -`` (422 otherwise); absent is None.
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$"),
]

#: The constraint a key taken at the same moment violates.
CONSTRAINT = "idempotency_pkey"


def idempotency_ddl() -> str:
    """The table (``{schema}`` is the service's schema)."""
    return (
        "CREATE TABLE IF NOT EXISTS {schema}.idempotency ("
        " scope text NOT NULL, key text NOT NULL, fingerprint text NOT NULL,"
        " result jsonb NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),"
        " PRIMARY KEY (scope, key))"
    )


def fingerprint(body: BaseModel | dict[str, Any] | None) -> str:
    """A digest of a request body."""
    data = body.model_dump(mode="json") if isinstance(body, BaseModel) else body
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def idempotency_keys(app: ServiceApplication) -> SqlIdempotencyKeys | MemoryIdempotencyKeys:
    """The application's idempotency keys: in its schema, or in memory on the in-memory store."""
    return MemoryIdempotencyKeys() if app.in_memory else SqlIdempotencyKeys(app)


def _answer(fingerprint: str, result: dict[str, Any], digest: str) -> dict[str, Any]:
    if fingerprint != digest:
        raise Ongeldig(
            [{"field": "header.Idempotency-Key", "rule": "reused_with_other_body"}],
            "Deze Idempotency-Key is al gebruikt voor een ander verzoek.",
        )
    return result


class SqlIdempotencyKeys:
    """The idempotency keys of one service, in its schema's ``idempotency`` table."""

    constraint = CONSTRAINT

    def __init__(self, app: ServiceApplication) -> None:
        self.app = app
        self.table = Identifier(app.service, "idempotency")

    def earlier(self, scope: str, key: str, digest: str) -> dict[str, Any] | None:
        """The first answer to this key, or None; 422 when the key came with another body."""
        with self.app.datastore.get_connection() as conn:
            row = conn.execute(
                SQL("SELECT fingerprint, result FROM {} WHERE scope = %s AND key = %s").format(
                    self.table
                ),
                (scope, key),
            ).fetchone()
        return None if row is None else _answer(row["fingerprint"], row["result"], digest)

    def forget(self, scope: str, field: str, value: str) -> Statement:
        """The side statement that drops the keys whose answer has ``field`` = ``value``."""
        return Statement(
            SQL("DELETE FROM {} WHERE scope = %s AND result->>%s = %s").format(self.table),
            (scope, field, value),
        )

    def remember(self, scope: str, key: str, digest: str, result: dict[str, Any]) -> Statement:
        """The side statement that stores the answer with the command's events."""
        return Statement(
            SQL("INSERT INTO {} (scope, key, fingerprint, result) VALUES (%s, %s, %s, %s)").format(
                self.table
            ),
            (scope, key, digest, json.dumps(result, default=str)),
        )


class MemoryIdempotencyKeys:
    """The idempotency keys of one service on the in-memory store."""

    constraint = CONSTRAINT

    def __init__(self) -> None:
        self.keys: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}

    def earlier(self, scope: str, key: str, digest: str) -> dict[str, Any] | None:
        """The first answer to this key, or None; 422 when the key came with another body."""
        found = self.keys.get((scope, key))
        return None if found is None else _answer(*found, digest)

    def remember(self, scope: str, key: str, digest: str, result: dict[str, Any]) -> MemoryWrite:
        """The write that stores the answer with the command's events (``DuplicateKey`` when
        another command took the key first)."""
        # As stored in PostgreSQL's jsonb: what is read back is the JSON of the answer.
        stored = json.loads(json.dumps(result, default=str))

        def check() -> None:
            if (scope, key) in self.keys:
                raise DuplicateKey(CONSTRAINT)

        def apply() -> None:
            self.keys[(scope, key)] = (digest, stored)

        return MemoryWrite(apply=apply, check=check)

    def forget(self, scope: str, field: str, value: str) -> MemoryWrite:
        """The write that drops the keys whose answer has ``field`` = ``value``."""

        def apply() -> None:
            for found in [
                k for k, (_, r) in self.keys.items() if k[0] == scope and r.get(field) == value
            ]:
                del self.keys[found]

        return MemoryWrite(apply=apply)
