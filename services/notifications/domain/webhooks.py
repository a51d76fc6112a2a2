"""Webhooks: the rules, without I/O — who may receive which event, when to retry, how to sign.

A webhook subscription (``abonnement``) has a callback URL and filters (event names, an
organisation, a dossier). Who owns it decides what may reach it at all:

- a **werkgever**'s subscription is bound to its organisation and receives the events behind what
  the werkgever sees of its dossiers (``GET /aanvragen/{id}``): the process steps, not the audit
  trail (reads, hand-outs of personal data, refusals, e-mails); the events that list the report's
  measures only once the report was released to it (RapportVrijgegeven), as the dossier shows them;
- a **secretariaat** subscription may receive every public event, filtered as it chooses.

Deliveries are CloudEvents in structured mode, signed per the Standard Webhooks convention:
``webhook-id`` (the CloudEvent id), ``webhook-timestamp`` (Unix seconds) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``) with the subscription's secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar, Literal
from urllib.parse import urlsplit
from uuid import UUID, uuid5

from pydantic import BaseModel

from shared.contracts.registry import EVENT_NAMES
from shared.platform.model import Aggregate, DomainEvent

Eigenaar = Literal["werkgever", "secretariaat"]

#: Our own announcements about subscriptions never go out by webhook (no feedback loops).
NIET_BEZORGBAAR = frozenset({"WebhookAbonnementGefaald", "WebhookAbonnementHersteld"})
BEZORGBAAR = frozenset(EVENT_NAMES - NIET_BEZORGBAAR)

#: The audit trail and the e-mail log: for compliance and the secretariaat, not for the werkgever.
AUDIT = frozenset(
    {
        "RapportIngezien",
        "PersoonsgegevensVerstrekt",
        "ToegangGeweigerd",
        "NotificatieVerzonden",
        "NotificatieMislukt",
    }
)
#: Events that list the report's measures: a werkgever sees those once the report is released.
MET_MAATREGELEN = frozenset({"RapportOpgesteld", "RapportHerzien", "MaatregelUitgevoerd"})
WERKGEVER = frozenset(BEZORGBAAR - AUDIT)


def toegestaan(eigenaar: Eigenaar) -> frozenset[str]:
    """The event names a subscription of this owner may ask for."""
    return WERKGEVER if eigenaar == "werkgever" else BEZORGBAAR


@dataclass(frozen=True)
class Filter:
    """What a subscription asks for, and whose it is."""

    eigenaar: Eigenaar
    event_types: frozenset[str] | None  # None: every event the owner may receive
    organisatie_code: str | None
    aanvraag_id: UUID | None


@dataclass(frozen=True)
class Gebeurtenis:
    """What the rules need of a consumed event: its name, dossier and the dossier's register."""

    naam: str
    aanvraag_id: UUID | None
    organisatie_code: str | None  # None: the dossier's organisation is not known (yet)
    vrijgegeven: bool


class OrganisatieOnbekend(Exception):
    """The event's dossier has no known organisation yet, and a subscription filters on one."""


#: Picks the subscriptions (by id, from ``(id, filter)`` pairs) an event reaches.
Kies = Callable[[Gebeurtenis, Sequence[tuple[UUID, Filter]]], Sequence[UUID]]


def bereikt(filter: Filter, event: Gebeurtenis) -> bool:
    """Whether the event is delivered to a subscription with this filter.

    Raises OrganisatieOnbekend when the answer depends on an organisation not known yet (the
    consumer retries the message later rather than deliver it wrongly or drop it).
    """
    wanted = (
        event.naam in toegestaan(filter.eigenaar)
        and (filter.event_types is None or event.naam in filter.event_types)
        and (filter.aanvraag_id is None or event.aanvraag_id == filter.aanvraag_id)
        and not (
            filter.eigenaar == "werkgever"
            and event.naam in MET_MAATREGELEN
            and not event.vrijgegeven
        )
    )
    if not wanted or filter.organisatie_code is None:
        return wanted
    if event.aanvraag_id is not None and event.organisatie_code is None:
        if event.naam == "ToegangGeweigerd":
            return False  # a refusal may name a dossier that does not exist
        raise OrganisatieOnbekend(str(event.aanvraag_id))
    return event.organisatie_code == filter.organisatie_code


# --- the retry schedule --------------------------------------------------------------------------

_RANDOM = secrets.SystemRandom()


@dataclass(frozen=True)
class RetrySchedule:
    """Delays between the attempts of one delivery; after the last one it is given up.

    Each delay is stretched by a random 0..``jitter`` fraction, so receivers coming back are not
    hit by every sender at the same second, and the schedule never ends before ``span``.
    """

    delays_s: tuple[float, ...]
    jitter: float = 0.1

    @property
    def attempts(self) -> int:
        """How many attempts one delivery gets (the first plus one per delay)."""
        return len(self.delays_s) + 1

    @property
    def span(self) -> timedelta:
        """The least time between the first and the last attempt."""
        return timedelta(seconds=sum(self.delays_s))

    def next_attempt(
        self, attempt: int, now: datetime, rand: Callable[[], float] = _RANDOM.random
    ) -> datetime | None:
        """When to try again after the ``attempt``-th attempt (1-based) failed; None: give up."""
        if attempt > len(self.delays_s):
            return None
        delay = self.delays_s[attempt - 1] * (1 + self.jitter * rand())
        return now + timedelta(seconds=delay)


# --- signing -------------------------------------------------------------------------------------

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret


def new_secret() -> bytes:
    """A new subscription secret (32 random bytes)."""
    return secrets.token_bytes(32)


def secret_text(key: bytes) -> str:
    """The secret as handed to the integrator: ``whsec_<base64>``."""
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def secret_key(text: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret."""
    return base64.b64decode(text.removeprefix(SECRET_PREFIX))


def signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify(
    secret: str, headers: Mapping[str, str], body: bytes, now: datetime, tolerance_s: int = 300
) -> bool:
    """What a receiver checks: a signature that matches and a timestamp close to ``now``."""
    try:
        webhook_id = headers["webhook-id"]
        timestamp = int(headers["webhook-timestamp"])
        given = headers["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs(now.timestamp() - timestamp) > tolerance_s:
        return False
    expected = signature(secret_key(secret), webhook_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in given)


# --- callback URLs (SSRF) ------------------------------------------------------------------------


_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def adres_toegestaan(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether a webhook may connect to this address: a public unicast one.

    Refused: loopback, private, shared (CGNAT), link-local, multicast, reserved, unspecified,
    documentation and other special-purpose ranges, IPv6 site-local; an IPv6 address that
    carries an IPv4 one (IPv4-mapped, 6to4, NAT64) is judged by the IPv4 address it carries.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return adres_toegestaan(embedded)
        if address.is_site_local:
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


def url_fout(url: str, allow_private: bool) -> str | None:
    """Why a callback URL is refused (a rule code), or None when it is acceptable.

    Only http(s), a host, no credentials in the URL; IP literals and ``localhost`` must be public
    unless private addresses are allowed (development). A host name is resolved and its
    addresses checked when delivering, by the connection itself (``webhook_transport``).
    """
    vorm = _vorm_fout(url)
    if vorm is not None or allow_private:
        return vorm
    host = (urlsplit(url).hostname or "").rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return "prive_adres"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        # The forms the resolver takes as an IPv4 address too (2130706433, 0x7f.1, 127.1):
        # as the address they stand for.
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None  # a name: resolved and checked when delivering
    return None if adres_toegestaan(address) else "prive_adres"


def _vorm_fout(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "url_ongeldig"
    checks = (
        (len(url) > 2000, "url_te_lang"),
        # Control characters and spaces belong in no URL (a NUL stopped the address check).
        (any(ord(c) <= 0x20 or ord(c) == 0x7F for c in url), "url_ongeldig"),
        (parts.scheme not in ("http", "https"), "alleen_http_of_https"),
        (not parts.hostname, "host_ontbreekt"),
        (parts.username is not None or parts.password is not None, "geen_inloggegevens_in_url"),
        (port == 0, "url_ongeldig"),
    )
    return next((code for failed, code in checks if failed), None)


# --- what the store holds of subscriptions and deliveries -----------------------------------------

BEZORGING_NAMESPACE = UUID("6d1f3a52-0b7e-4c1a-9f3e-2b8c5d7e9a10")


def bezorging_id(abonnement_id: UUID, event_id: str) -> UUID:
    """The delivery of one event to one subscription (stable: planned once)."""
    return uuid5(BEZORGING_NAMESPACE, f"{abonnement_id}/{event_id}")


class Abonnement(BaseModel):
    """A webhook subscription as its owners see it (never its secret)."""

    abonnement_id: UUID
    callback_url: str
    event_types: list[str] | None
    organisatie_code: str | None
    aanvraag_id: UUID | None
    eigenaar: str
    status: str  # actief, falend, verwijderd
    aangemaakt_op: datetime
    opeenvolgende_fouten: int
    falend_sinds: datetime | None
    laatste_fout: str | None


class Poging(BaseModel):
    """One delivery attempt."""

    poging: int
    op: datetime
    duur_ms: int
    status_code: int | None
    fout: str | None
    geslaagd: bool


class WebhookBezorging(BaseModel):
    """One event for one subscription, with every attempt."""

    bezorging_id: UUID
    abonnement_id: UUID
    event_id: str
    event_type: str
    aanvraag_id: UUID | None
    status: str  # gepland, afgeleverd, opgegeven, vervallen
    pogingen: int
    volgende_poging: datetime | None
    aangemaakt_op: datetime
    afgeleverd_op: datetime | None
    log: list[Poging]


@dataclass(frozen=True)
class Claim:
    """A due delivery claimed by one sender."""

    bezorging_id: UUID
    abonnement_id: UUID
    event_id: str
    body: bytes
    callback_url: str
    secret_key_id: UUID
    secret: bytes
    pogingen: int
    ronde_start: int
    claim: UUID


@dataclass(frozen=True)
class Uitkomst:
    """The outcome of one attempt."""

    geslaagd: bool
    duur_ms: int
    status_code: int | None = None
    fout: str | None = None

    @property
    def reden(self) -> str:
        """A short code of a failure (``http_500``, ``timeout``)."""
        if self.fout:
            return self.fout
        return f"http_{self.status_code}" if self.status_code is not None else "onbekend"


@dataclass(frozen=True)
class Gezondheid:
    """A subscription's health after an attempt was recorded: its status and version, the
    failures in a row and since when."""

    status: str
    versie: int
    opeenvolgende_fouten: int
    falend_sinds: datetime | None
    organisatie_code: str | None


# --- the subscription's history (private domain events) ------------------------------------------
# Each one's ``TOPIC`` names the module it was first stored from
# (``services.notifications.webhooks``):
# stored topics never change when the code moves.


class AbonnementAangemaakt(DomainEvent):
    """A webhook subscription was made (its URL and secret stay in the subscriptions table)."""

    TOPIC: ClassVar[str] = "services.notifications.webhooks:AbonnementAangemaakt"

    eigenaar: Eigenaar
    organisatie_code: str | None
    filter_aanvraag_id: UUID | None
    event_types: tuple[str, ...] | None


class AbonnementVerwijderd(DomainEvent):
    """A webhook subscription was removed; its secret was destroyed."""

    TOPIC: ClassVar[str] = "services.notifications.webhooks:AbonnementVerwijderd"

    organisatie_code: str | None


class AbonnementFalend(DomainEvent):
    """The subscription's receiver keeps failing."""

    TOPIC: ClassVar[str] = "services.notifications.webhooks:AbonnementFalend"

    organisatie_code: str | None
    opeenvolgende_fouten: int
    falend_sinds: datetime
    reden_code: str


class AbonnementHersteld(DomainEvent):
    """The receiver of a failing subscription accepted a delivery again."""

    TOPIC: ClassVar[str] = "services.notifications.webhooks:AbonnementHersteld"

    organisatie_code: str | None


#: Every event a subscription is stored as.
EVENTS: tuple[type[DomainEvent], ...] = (
    AbonnementAangemaakt,
    AbonnementVerwijderd,
    AbonnementFalend,
    AbonnementHersteld,
)


class AbonnementHistorie(Aggregate):
    """A subscription as its events tell it: who owns it, and whether it was removed (its URL,
    secret and health are the store's rows)."""

    eigenaar: Eigenaar
    organisatie_code: str | None
    verwijderd: bool = False


def project(
    abonnement: AbonnementHistorie | None, events: Iterable[DomainEvent]
) -> AbonnementHistorie | None:
    """Rebuild a subscription's history from its events."""
    for event in events:
        if isinstance(event, AbonnementAangemaakt):
            abonnement = AbonnementHistorie(
                id=event.originator_id,
                version=event.originator_version,
                eigenaar=event.eigenaar,
                organisatie_code=event.organisatie_code,
            )
            continue
        assert abonnement is not None
        abonnement = abonnement.model_copy(
            update={
                "version": event.originator_version,
                "verwijderd": abonnement.verwijderd or isinstance(event, AbonnementVerwijderd),
            }
        )
    return abonnement
