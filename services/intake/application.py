"""Intake's use cases: register, withdraw, hand out contact details to services that need them."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError
from psycopg.sql import SQL, Identifier

from services.intake.domain import (
    Aanmelding,
    Aanvraag,
    AfsluitReden,
    dien_in,
    project,
    sluit_af,
    trek_in,
)
from shared.errors import NietGevonden
from shared.eventstore import Context, DuplicateKey, ServiceApplication, Statement
from shared.idempotency import IdempotencyKeys, fingerprint, idempotency_ddl

log = logging.getLogger(__name__)

SCOPE = "POST /aanvragen"
ACCESS = Identifier("intake", "dossier_access")


def email_hash(email: str) -> str:
    """How a bestuurder's e-mail is matched to a dossier without storing it outside the events."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


@dataclass(frozen=True)
class Ingediend:
    """The answer to a registration."""

    aanvraag_id: UUID
    replayed: bool  # True when an earlier request with the same Idempotency-Key answered this


class Intake(ServiceApplication):
    """The intake service's application."""

    service = "intake"
    ddl: ClassVar[Sequence[str]] = (
        idempotency_ddl(),
        "CREATE TABLE IF NOT EXISTS {schema}.dossier_access ("
        " aanvraag_id uuid PRIMARY KEY, bestuurder_email_hash text NOT NULL,"
        " organisatie_code text NOT NULL)",
        "CREATE INDEX IF NOT EXISTS dossier_access_email ON {schema}.dossier_access"
        " (bestuurder_email_hash)",
    )

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env)
        self.idempotency = IdempotencyKeys(self)

    def dien_aanvraag_in(
        self, aanmelding: Aanmelding, ctx: Context, idempotency_key: str | None = None
    ) -> Ingediend:
        """Register an aanvraag; a repeated request with the same key returns the first answer."""
        digest = fingerprint(aanmelding)
        if idempotency_key is not None:
            earlier = self.idempotency.earlier(SCOPE, idempotency_key, digest)
            if earlier is not None:
                return Ingediend(UUID(earlier["aanvraag_id"]), replayed=True)
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
                self.idempotency.remember(
                    SCOPE, idempotency_key, digest, {"aanvraag_id": str(aanvraag_id)}
                )
            )
        try:
            self.record(dien_in(aanvraag_id, aanmelding, ctx), statements=statements)
        except DuplicateKey:
            # The same key arrived twice at the same moment: the other request won.
            assert idempotency_key is not None
            earlier = self.idempotency.earlier(SCOPE, idempotency_key, digest)
            if earlier is None:
                raise
            return Ingediend(UUID(earlier["aanvraag_id"]), replayed=True)
        return Ingediend(aanvraag_id, replayed=False)

    def aanvraag(self, aanvraag_id: UUID) -> Aanvraag:
        """The registration with its personal data (for its owner and the claim-check API)."""
        try:
            aanvraag: Aanvraag = self.repository.get(aanvraag_id, projector_func=project)
        except AggregateNotFoundError:
            raise NietGevonden("Onbekend dossier.") from None
        return aanvraag

    def trek_aanvraag_in(self, aanvraag_id: UUID, ctx: Context) -> None:
        """Withdraw an aanvraag (a repeated request has no second effect)."""

        def command() -> None:
            event = trek_in(self.aanvraag(aanvraag_id), ctx)
            if event is not None:
                self.record(event)

        self.retrying(command)

    def sluit_dossier_af(
        self,
        aanvraag_id: UUID,
        reden: AfsluitReden,
        toelichting: str | None,
        totaal: int,
        uitgevoerd: int,
        ctx: Context,
    ) -> bool:
        """Close the dossier; True when this call closed it (False: it was already closed)."""

        def command() -> bool:
            event = sluit_af(
                self.aanvraag(aanvraag_id), reden, toelichting, totaal, uitgevoerd, ctx
            )
            if event is None:
                return False
            self.record(event)
            return True

        return self.retrying(command)

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
