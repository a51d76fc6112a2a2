"""Intake's use cases: register, withdraw, hand out contact details to services that need them."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from psycopg.sql import SQL, Identifier

from services.intake.domain import Aanmelding, Aanvraag, dien_in, project, trek_in
from shared.errors import NietGevonden, Ongeldig
from shared.eventstore import Context, DuplicateKey, ServiceApplication, Statement

log = logging.getLogger(__name__)

IDEMPOTENCY = Identifier("intake", "idempotency_keys")
ACCESS = Identifier("intake", "dossier_access")


def email_hash(email: str) -> str:
    """How a bestuurder's e-mail is matched to a dossier without storing it outside the events."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def fingerprint(aanmelding: Aanmelding) -> str:
    """A digest of a request body, to recognise a retried request under the same key."""
    body = json.dumps(aanmelding.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Ingediend:
    """The answer to a registration."""

    aanvraag_id: UUID
    replayed: bool  # True when an earlier request with the same Idempotency-Key answered this


class Intake(ServiceApplication):
    """The intake service's application."""

    service = "intake"
    ddl: ClassVar[Sequence[str]] = (
        "CREATE TABLE IF NOT EXISTS {schema}.idempotency_keys ("
        " key text PRIMARY KEY, fingerprint text NOT NULL, aanvraag_id uuid NOT NULL,"
        " created_at timestamptz NOT NULL DEFAULT now())",
        "CREATE TABLE IF NOT EXISTS {schema}.dossier_access ("
        " aanvraag_id uuid PRIMARY KEY, bestuurder_email_hash text NOT NULL,"
        " organisatie_code text NOT NULL)",
        "CREATE INDEX IF NOT EXISTS dossier_access_email ON {schema}.dossier_access"
        " (bestuurder_email_hash)",
    )

    def dien_aanvraag_in(
        self, aanmelding: Aanmelding, ctx: Context, idempotency_key: str | None = None
    ) -> Ingediend:
        """Register an aanvraag; a repeated request with the same key returns the first answer."""
        digest = fingerprint(aanmelding)
        if idempotency_key is not None:
            earlier = self._earlier(idempotency_key, digest)
            if earlier is not None:
                return Ingediend(earlier, replayed=True)
        aanvraag_id = uuid4()
        statements = [
            Statement(
                SQL(
                    "INSERT INTO {} (aanvraag_id, bestuurder_email_hash, organisatie_code)"
                    " VALUES (%s, %s, %s)"
                ).format(ACCESS),
                (
                    aanvraag_id,
                    email_hash(aanmelding.bestuurder.email),
                    aanmelding.werkgever.organisatie_code,
                ),
            )
        ]
        if idempotency_key is not None:
            statements.append(
                Statement(
                    SQL(
                        "INSERT INTO {} (key, fingerprint, aanvraag_id) VALUES (%s, %s, %s)"
                    ).format(IDEMPOTENCY),
                    (idempotency_key, digest, aanvraag_id),
                )
            )
        try:
            self.record(dien_in(aanvraag_id, aanmelding, ctx), statements=statements)
        except DuplicateKey:
            # The same key arrived twice at the same moment: the other request won.
            assert idempotency_key is not None
            earlier = self._earlier(idempotency_key, digest)
            if earlier is None:
                raise
            return Ingediend(earlier, replayed=True)
        return Ingediend(aanvraag_id, replayed=False)

    def _earlier(self, key: str, digest: str) -> UUID | None:
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                SQL("SELECT fingerprint, aanvraag_id FROM {} WHERE key = %s").format(IDEMPOTENCY),
                (key,),
            ).fetchone()
        if row is None:
            return None
        if row["fingerprint"] != digest:
            raise Ongeldig(
                [{"field": "header.Idempotency-Key", "rule": "reused_with_other_body"}],
                "Deze Idempotency-Key is al gebruikt voor een ander verzoek.",
            )
        aanvraag_id: UUID = row["aanvraag_id"]
        return aanvraag_id

    def aanvraag(self, aanvraag_id: UUID) -> Aanvraag:
        """The registration with its personal data (for its owner and the claim-check API)."""
        try:
            aanvraag: Aanvraag = self.repository.get(aanvraag_id, projector_func=project)
        except AggregateNotFoundError:
            raise NietGevonden("Onbekend dossier.") from None
        return aanvraag

    def trek_aanvraag_in(self, aanvraag_id: UUID, ctx: Context) -> None:
        """Withdraw an aanvraag."""

        def command() -> None:
            self.record(trek_in(self.aanvraag(aanvraag_id), ctx))

        self.retrying(command)

    def toegang(self, aanvraag_id: UUID) -> tuple[str, str] | None:
        """(bestuurder e-mail hash, organisatie_code) of a dossier, or None when unknown."""
        with self.datastore.get_connection() as conn:
            row = conn.execute(
                SQL(
                    "SELECT bestuurder_email_hash, organisatie_code FROM {} WHERE aanvraag_id = %s"
                ).format(ACCESS),
                (aanvraag_id,),
            ).fetchone()
        return None if row is None else (row["bestuurder_email_hash"], row["organisatie_code"])
