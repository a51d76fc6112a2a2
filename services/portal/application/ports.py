"""The portal's ports: the services' APIs as the pages use them, and signing in.

``Apis`` is one port made of one protocol per service. A journey that needs another call adds
one method to the protocol of the service that answers it (and to that service's adapter in
``adapters/``); nothing else changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol
from uuid import UUID

from services.portal.application.uitkomsten import Bestand, Uitkomst


class IntakeApi(Protocol):
    """Intake's public API: registration, the dossier projection and its list."""

    def dien_aanvraag_in(self, aanmelding: Mapping[str, Any], idempotency_key: str) -> Uitkomst:
        """``POST /aanvragen`` (public: without a token)."""
        ...

    def dossiers(self, filters: Mapping[str, str | int]) -> Uitkomst:
        """``GET /aanvragen`` with its filters and keyset (a list)."""
        ...

    def dossier(self, aanvraag_id: UUID) -> Uitkomst:
        """``GET /aanvragen/{id}``: the dossier projection, its timeline included."""
        ...

    def dossier_per(self, aanvraag_id: UUID, per: datetime) -> Uitkomst:
        """``GET /aanvragen/{id}?per=T``: the dossier as recorded up to that moment."""
        ...

    def audit(self, aanvraag_id: UUID) -> Uitkomst:
        """``GET /aanvragen/{id}/audit``: every event of the dossier, reads and refusals
        included (a list; compliance)."""
        ...

    def audit_export(self, aanvraag_id: UUID, formaat: str) -> Bestand | Uitkomst:
        """``GET /audit/export?aanvraag_id=…&formaat=…``: the audit export of one dossier as
        the API made it (with the chains verified), to pass on as it is."""
        ...

    def leg_bewaarplicht_op(self, aanvraag_id: UUID, reden: str) -> Uitkomst:
        """``POST /aanvragen/{id}/bewaarplicht``: a legal hold (compliance)."""
        ...

    def hef_bewaarplicht_op(self, aanvraag_id: UUID) -> Uitkomst:
        """``DELETE /aanvragen/{id}/bewaarplicht``: the legal hold lifted (compliance)."""
        ...


class SchedulingApi(Protocol):
    """Scheduling's public API: contact, planning, appointments, working days."""

    def werktijden(self, van: date | None, dagen: int) -> Uitkomst:
        """``GET /werktijden``: the working days of a period (from today when ``van`` is
        None) and the working hours."""
        ...

    def planning(self, aanvraag_id: UUID) -> Uitkomst:
        """``GET /aanvragen/{id}/planning``."""
        ...

    def neem_contact_op(self, aanvraag_id: UUID) -> Uitkomst:
        """``POST /aanvragen/{id}/contact``."""
        ...

    def plan_afspraak(
        self, aanvraag_id: UUID, verzoek: Mapping[str, Any], idempotency_key: str
    ) -> Uitkomst:
        """``POST /aanvragen/{id}/afspraken``."""
        ...

    def verzet_afspraak(self, afspraak_id: UUID, gepland_op: datetime) -> Uitkomst:
        """``POST /afspraken/{id}/verzetten``."""
        ...

    def annuleer_afspraak(self, afspraak_id: UUID) -> Uitkomst:
        """``POST /afspraken/{id}/annuleren``."""
        ...


class AssessmentApi(Protocol):
    """Assessment's public API: conversations held, the woningscan, the report and its
    versions, measures (journeys add the calls they use)."""


class ApprovalApi(Protocol):
    """Approval's public API: the review queue, approving and rejecting, the bestuurder's
    consent and the release to the werkgever (journeys add the calls they use)."""


class NotificationsApi(Protocol):
    """Notifications' public API: an organisation's webhook subscriptions (journeys add the
    calls they use)."""


class Apis(IntakeApi, SchedulingApi, AssessmentApi, ApprovalApi, NotificationsApi, Protocol):
    """The services' public HTTP APIs, as the portal uses them, as one person."""

    def als(self, token: str | None, herkomst: str | None = None) -> Apis:
        """The same APIs called with this person's token (None: anonymously), on behalf of a
        visitor at ``herkomst`` (the ``X-Forwarded-For`` value the portal sends on)."""
        ...


@dataclass(frozen=True)
class Persoon:
    """Someone who can sign in, as the development sign-in page offers them."""

    sleutel: str
    rol: str
    omschrijving: str


@dataclass(frozen=True)
class Ingelogd:
    """Who is signed in: a pseudonymous subject, their role and their token for the APIs."""

    sub: str
    rol: str
    token: str


class Inloggen(Protocol):
    """How people sign in. The embedded one lists demo people; an OIDC one redirects."""

    def personen(self) -> list[Persoon]:
        """The people offered on the development sign-in page (empty when there is none)."""
        ...

    def log_in(self, sleutel: str) -> Ingelogd | None:
        """Sign in as the person with this key (None: no such person)."""
        ...
