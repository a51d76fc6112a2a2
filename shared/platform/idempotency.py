"""Idempotency keys: a retried command (same ``Idempotency-Key``, same body) gets the first answer.

The key is stored with a digest of the request and the answer, in the same transaction as the
events the command recorded, so either both exist or neither. A key reused with a different body
answers 422. Keys are scoped (route and caller), so two callers never share one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from psycopg.sql import SQL, Identifier
from pydantic import BaseModel

from shared.platform.errors import Ongeldig
from shared.platform.eventstore import ServiceApplication, Statement


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


class IdempotencyKeys:
    """The idempotency keys of one service."""

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
        if row is None:
            return None
        if row["fingerprint"] != digest:
            raise Ongeldig(
                [{"field": "header.Idempotency-Key", "rule": "reused_with_other_body"}],
                "Deze Idempotency-Key is al gebruikt voor een ander verzoek.",
            )
        result: dict[str, Any] = row["result"]
        return result

    def remember(self, scope: str, key: str, digest: str, result: dict[str, Any]) -> Statement:
        """The side statement that stores the answer with the command's events."""
        return Statement(
            SQL("INSERT INTO {} (scope, key, fingerprint, result) VALUES (%s, %s, %s, %s)").format(
                self.table
            ),
            (scope, key, digest, json.dumps(result, default=str)),
        )
