"""The portal's ports: the services' APIs as the pages use them, and signing in.

``Apis`` is one port made of one protocol per service. A journey that needs another call adds
one method to the protocol of the service that answers it (and to that service's adapter in
``adapters/``); nothing else changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
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

    def audit(self, aanvraag_id: UUID, limit: int | None = None, na: str | None = None) -> Uitkomst:
        """``GET /aanvragen/{id}/audit``: every event of the dossier, reads and refusals
        included (a list; compliance); with ``limit`` (and ``na``, where the page starts) one
        page of it, the next page's address in ``Gelukt.volgende``."""
        ...

    def audit_telling(self, aanvraag_id: UUID) -> Uitkomst:
        """``GET /aanvragen/{id}/audit/telling``: how many events the whole trail holds, per
        event, and the refused attempts its refusals stand for (compliance)."""
        ...

    def audit_export(self, aanvraag_id: UUID, formaat: str) -> Bestand | Uitkomst:
        """``GET /audit/export?aanvraag_id=…&formaat=…``: the audit export of one dossier as
        the API made it (with the chains verified), to pass on as it is."""
        ...

    def ketenverificatie(self, opnieuw: bool) -> Uitkomst:
        """``GET /audit/verificatie[?opnieuw=true]``: whether every service's chain verified,
        in the last verification or (``opnieuw``) a new one (compliance)."""
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

    def verzet_afspraak(
        self, afspraak_id: UUID, gepland_op: datetime, *, achteraf: bool = False
    ) -> Uitkomst:
        """``POST /afspraken/{id}/verzetten`` (``achteraf``: it took place at this moment,
        which has passed)."""
        ...

    def annuleer_afspraak(self, afspraak_id: UUID) -> Uitkomst:
        """``POST /afspraken/{id}/annuleren``."""
        ...

    def vraag_toelichting_aan(self, aanvraag_id: UUID) -> Uitkomst:
        """``POST /aanvragen/{id}/toelichting`` (the bestuurder or werkgever of the dossier)."""
        ...

    def mijn_afspraken(self, status: str) -> Uitkomst:
        """``GET /afspraken?status=…``: the signed-in adviseur's own appointments (a list)."""
        ...

    def leg_gesprek_vast(self, afspraak_id: UUID, woningscan_uitgevoerd: bool) -> Uitkomst:
        """``POST /afspraken/{id}/gevoerd``."""
        ...

    def leg_woningscan_vast(self, afspraak_id: UUID) -> Uitkomst:
        """``POST /afspraken/{id}/woningscan``: a woningscan done after the conversation."""
        ...


class AssessmentApi(Protocol):
    """Assessment's public API: conversations held, the woningscan, the report and its
    versions, measures (journeys add the calls they use)."""

    def rapport(self, rapport_id: UUID, versie: int | None = None) -> Uitkomst:
        """``GET /rapporten/{id}?versie=``: one version's content and hash (a read on record)."""
        ...

    def lees_rapport(self, rapport_id: UUID) -> Uitkomst:
        """``GET /rapporten/{id}``: the version this person may read (each read is recorded)."""
        ...

    def pkvw(self, aanvraag_id: UUID) -> Uitkomst:
        """``GET /aanvragen/{id}/pkvw``: the bestuurder's PKVW status."""
        ...

    def meld_pkvw(self, aanvraag_id: UUID, melding: Mapping[str, Any]) -> Uitkomst:
        """``POST /aanvragen/{id}/pkvw``: a declaration, or a certificate with its date."""
        ...

    def maatregelen(self, aanvraag_id: UUID) -> Uitkomst:
        """``GET /aanvragen/{id}/maatregelen``: the approved report's measures and who pays."""
        ...

    def voer_maatregel_uit(self, maatregel_id: UUID) -> Uitkomst:
        """``POST /maatregelen/{id}/uitgevoerd``."""
        ...

    def rapporten(self, aanvraag_id: UUID) -> Uitkomst:
        """``GET /aanvragen/{id}/rapporten``: the report's state, without content (a list)."""
        ...

    def stel_rapport_op(
        self, aanvraag_id: UUID, concept: Mapping[str, Any], idempotency_key: str
    ) -> Uitkomst:
        """``POST /aanvragen/{id}/rapport``: version 1."""
        ...

    def herzie_rapport(self, rapport_id: UUID, concept: Mapping[str, Any]) -> Uitkomst:
        """``PUT /rapporten/{id}``: a new version (in draft or after a rejection)."""
        ...

    def dien_rapport_in(self, rapport_id: UUID) -> Uitkomst:
        """``POST /rapporten/{id}/indienen``."""
        ...


class ApprovalApi(Protocol):
    """Approval's public API: the review queue, approving and rejecting, the bestuurder's
    consent and the release to the werkgever (journeys add the calls they use)."""

    def beoordelingen(self, rapport_id: UUID) -> Uitkomst:
        """``GET /rapporten/{id}/beoordelingen``: the decision per submitted version, and
        whether four-eyes keeps the caller from deciding (``vier_ogen``)."""
        ...

    def keur_goed(self, rapport_id: UUID, versie: int, inhoud_hash: str) -> Uitkomst:
        """``POST /rapporten/{id}/goedkeuren``: approve exactly this version."""
        ...

    def keur_af(
        self, rapport_id: UUID, versie: int, inhoud_hash: str, redenen: Sequence[str]
    ) -> Uitkomst:
        """``POST /rapporten/{id}/afkeuren``: reject exactly this version, with reasons."""
        ...

    def rapport_status(self, rapport_id: UUID) -> Uitkomst:
        """``GET /rapporten/{id}/status``: where the decisions about a report stand."""
        ...

    def geef_instemming(self, rapport_id: UUID, instemming: bool) -> Uitkomst:
        """``POST /rapporten/{id}/instemming``: consent (True) or refusal (False)."""
        ...


class NotificationsApi(Protocol):
    """Notifications' public API: an organisation's webhook subscriptions (journeys add the
    calls they use)."""

    def abonnementen(self) -> Uitkomst:
        """``GET /webhooks/abonnementen``: the subscriptions the caller may see (a list)."""
        ...

    def maak_abonnement(self, verzoek: Mapping[str, Any]) -> Uitkomst:
        """``POST /webhooks/abonnementen``: the new subscription with its secret (shown once)."""
        ...

    def verwijder_abonnement(self, abonnement_id: UUID) -> Uitkomst:
        """``DELETE /webhooks/abonnementen/{id}``."""
        ...


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
    #: Unix time at which ``token`` expires (None: it lives as long as the session).
    token_verloopt: float | None = None
    #: The provider's refresh token (OIDC), kept only in the encrypted session.
    ververs_token: str | None = None
    #: The provider's ID token (OIDC), kept only in the encrypted session: the hint that
    #: tells the provider at sign-out whose session ends (``id_token_hint``).
    id_token: str | None = None


@dataclass(frozen=True)
class Doorverwijzing:
    """The start of a sign-in at the identity provider: where the visitor is sent, and what
    the session keeps until they come back (the state and the PKCE verifier)."""

    url: str
    state: str
    verifier: str


@dataclass(frozen=True)
class Afmelding:
    """The end of a session at the identity provider: where the visitor is sent, and the state
    the provider sends back with them to ``/uitgelogd`` (None: the URL is the portal's own
    page, the provider is not visited)."""

    url: str
    state: str | None


class AanbiederOnbereikbaar(Exception):
    """The identity provider did not answer (or not as a provider answers): signing in, or
    renewing a token, cannot be done now."""


#: An origin as it may stand in a CSP source list (scheme, host, port; nothing else).
HERKOMST = re.compile(
    r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?"
)


class Aanbieder(Protocol):
    """Signing in at an OpenID Connect provider: the authorization-code flow with PKCE, token
    refresh, and signing out (the refresh token revoked, the provider's session ended)."""

    @property
    def herkomsten(self) -> tuple[str, ...]:
        """The origins (scheme, host, port) the portal's sign-in and sign-out forms may send
        the browser on to: the issuer's, and once the provider's discovery document is read,
        those of its authorization and end-session endpoints (a provider may serve them
        elsewhere). Each matches ``HERKOMST``."""
        ...

    def begin(self) -> Doorverwijzing:
        """A new sign-in: the provider's authorization URL with a fresh state and PKCE
        challenge (raises ``AanbiederOnbereikbaar``)."""
        ...

    def rond_af(self, code: str, verifier: str) -> Ingelogd | None:
        """The person for the code the provider sent back (None: the provider refused the
        code, or its token names no role of the process; raises ``AanbiederOnbereikbaar``)."""
        ...

    def ververs(self, ververs_token: str) -> Ingelogd | None:
        """A new access token for a refresh token (None: refused, e.g. revoked; raises
        ``AanbiederOnbereikbaar``)."""
        ...

    def uitloggen(self, ververs_token: str | None, id_token: str | None) -> Afmelding:
        """Revoke the refresh token (as far as the provider answers) and give the provider's
        sign-out, which sends the visitor back to the portal: with the session's ID token as
        ``id_token_hint`` when there is one, so the provider knows whose session ends (never
        raises: the portal's own page when the provider cannot be reached)."""
        ...


class Inloggen(Protocol):
    """How people sign in. The embedded one lists demo people; an OIDC one redirects."""

    def personen(self) -> list[Persoon]:
        """The people offered on the development sign-in page (empty when there is none)."""
        ...

    def log_in(self, sleutel: str) -> Ingelogd | None:
        """Sign in as the person with this key (None: no such person)."""
        ...
