"""Approval's use cases: follow the report's versions, decide about them, record the consent.

Each is one ``change`` of a review (``Beoordeling``): load, decide by the domain's rules, record,
retried when another writer came first. They run on PostgreSQL or on the in-memory store alike
(``tests/usecases/test_approval.py`` runs them on both).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from uuid import UUID

from services.approval import domain
from services.approval.domain import Beoordeling, project
from services.approval.gateway import to_public
from shared.platform.auth import Refusal
from shared.platform.errors import NietGevonden
from shared.platform.eventstore import ServiceApplication
from shared.platform.model import Context, DomainEvent
from shared.platform.ports import DossierRegister
from shared.platform.relay import PublicationCheck


class Approval(ServiceApplication):
    """The approval service's application."""

    service = "approval"

    def __init__(
        self,
        env: dict[str, str],
        register: Callable[[ServiceApplication], DossierRegister],
    ) -> None:
        """On the store ``env`` names, with the dossier register ``register`` makes on it."""
        super().__init__(env, publication_check=PublicationCheck(self.service, to_public))
        #: What approval knows of the dossiers (the read model it decides by).
        self.register = register(self)

    def beoordeling(self, rapport_id: UUID) -> Beoordeling:
        """The review of a report; 404 when approval has not heard of the report."""
        found = self.find(rapport_id)
        if found is None:
            raise NietGevonden("Onbekend rapport.")
        return found

    def find(self, rapport_id: UUID) -> Beoordeling | None:
        """The review of a report, or None."""
        return self.load_or_none(rapport_id, project)

    # --- assessment's events ---------------------------------------------------------------------

    def neem_bewerking_op(
        self,
        rapport_id: UUID,
        aanvraag_id: UUID,
        versie: int,
        auteur_id: str | None,
        ctx: Context,
        inbox: tuple[str, str],
    ) -> None:
        """A version was drafted or revised (RapportOpgesteld, RapportHerzien)."""
        # A retry re-reads the review: when another event of the same report created it in the
        # meantime, the decision is taken again on what is there now. A redelivery of this very
        # message stops at the inbox (AlreadyProcessed).
        self.change(
            rapport_id,
            lambda found: domain.neem_bewerking_op(
                found, rapport_id, aanvraag_id, versie, auteur_id, ctx
            ),
            project=project,
            inbox=inbox,
        )

    def ontvang_ter_toetsing(
        self,
        rapport_id: UUID,
        aanvraag_id: UUID,
        versie: int,
        inhoud_hash: str,
        auteur_id: str | None,
        ingediend_op: datetime,
        ctx: Context,
        inbox: tuple[str, str],
    ) -> None:
        """A version was submitted for review (RapportTerToetsingAangeboden)."""
        self.change(
            rapport_id,
            lambda found: domain.ontvang_ter_toetsing(
                found, rapport_id, aanvraag_id, versie, inhoud_hash, auteur_id, ingediend_op, ctx
            ),
            project=project,
            inbox=inbox,
        )

    # --- decisions -------------------------------------------------------------------------------

    def keur_goed(
        self, rapport_id: UUID, versie: int, inhoud_hash: str, ctx: Context
    ) -> Beoordeling:
        """Approve a version (and hand it to the bestuurder in the same transaction)."""
        return self._decide(
            rapport_id, lambda found: domain.keur_goed(found, versie, inhoud_hash, ctx)
        )

    def keur_af(
        self,
        rapport_id: UUID,
        versie: int,
        inhoud_hash: str,
        redenen: Sequence[str],
        ctx: Context,
    ) -> Beoordeling:
        """Reject a version with reasons."""
        return self._decide(
            rapport_id, lambda found: domain.keur_af(found, versie, inhoud_hash, redenen, ctx)
        )

    def stem_in(
        self, rapport_id: UUID, instemming: bool, organisatie_code: str, ctx: Context
    ) -> Beoordeling:
        """Record the bestuurder's consent (releasing the report) or refusal."""
        return self._decide(
            rapport_id,
            lambda found: domain.stem_in(found, instemming, organisatie_code, ctx),
        )

    def _decide(
        self, rapport_id: UUID, decide: Callable[[Beoordeling], list[DomainEvent]]
    ) -> Beoordeling:
        def on_open_dossier(found: Beoordeling | None) -> list[DomainEvent]:
            if found is None:
                raise NietGevonden("Onbekend rapport.")
            self.register.known(found.aanvraag_id).require_open()
            return decide(found)

        after = self.change(rapport_id, on_open_dossier, project=project)
        assert after is not None  # on_open_dossier refuses an unknown report
        return after

    # --- refusals --------------------------------------------------------------------------------

    def with_dossier(self, refusal: Refusal) -> Refusal:
        """A refusal on a report's route, attributed to the report's dossier (for the audit)."""
        rapport_id = refusal.ids.get("rapport_id")
        if refusal.aanvraag_id is not None or rapport_id is None:
            return refusal
        found = self.find(rapport_id)
        if found is None:
            return refusal
        return dataclasses.replace(refusal, aanvraag_id=found.aanvraag_id)
