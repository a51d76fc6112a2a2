"""All five services in one process, on real PostgreSQL, for the access and hostile-input tests.

Each service is built by its own ``bootstrap`` and called through a TestClient. Instead of the
outbox relay and NATS, ``InProcessSystem.pump`` takes every new stored event of every service,
maps it through the service's gateway to its public events, wraps them as the relay would, and
hands them to every subscription (of every service) whose subjects match: the services learn of
each other's steps as they do in production, only synchronously. The other services ask intake
which party a caller is through intake's real internal API (over its TestClient).

Also here: how a route's access rule is read from FastAPI (``access_rule``), so the route-rule
test and the access matrix agree on what "the roles a route admits" means.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from services.approval.bootstrap import bootstrap as approval_bootstrap
from services.assessment.bootstrap import bootstrap as assessment_bootstrap
from services.intake.bootstrap import bootstrap as intake_bootstrap
from services.notifications.bootstrap import bootstrap as notifications_bootstrap
from services.scheduling.bootstrap import bootstrap as scheduling_bootstrap
from shared.contracts.registry import subject_for, to_cloudevent
from shared.platform.access import ToegangGeweigerdVastgelegd
from shared.platform.auth import Role
from shared.platform.consumer import Delivery
from shared.platform.eventstore import public_event_id
from shared.platform.model import DomainEvent, FixedClock
from shared.platform.parties import DossierParties
from shared.platform.relay import PositionHeader
from shared.platform.runtime import Components
from shared.platform.settings import Settings
from shared.platform.wiring import service_token
from tests import servers
from tests.support import settings_for, token

SERVICES = ("intake", "scheduling", "assessment", "approval", "notifications")

#: Routes anyone may call without a token. Everything else must declare an ``Auth.require`` rule.
PUBLIC_ROUTES: frozenset[tuple[str, str, str]] = frozenset(
    {("intake", "POST", "/aanvragen")}
    | {
        (service, "GET", path)
        for service in SERVICES
        for path in (
            "/health/live",
            "/health/ready",
            "/openapi.json",
            # Swagger UI and its files, served by the service (shared.platform.apidocs).
            "/docs",
            "/docs/assets/{name}",
            # The published contract (AsyncAPI and JSON Schemas): public documentation.
            "/contract/asyncapi.json",
            "/contract/schemas",
            "/contract/schemas/{file}",
            # Prometheus metrics: route templates, names and counts only
            # (shared.platform.telemetry).
            "/metrics",
        )
    }
)

#: FastAPI adds HEAD next to GET on its documentation routes; it is the same endpoint.
_IGNORED_METHODS = frozenset({"HEAD", "OPTIONS"})

NU = datetime(2026, 5, 11, 10, 0, tzinfo=UTC)  # a Monday
ORGANISATIE = "GM0363"
ANDERE_ORGANISATIE = "GM0599"
ADVISEUR_SUB = "adv-1"  # writes every report, so a BVA token with this subject is its author
BVA_SUB = "bva-1"


# --- reading the access rule of a route ----------------------------------------------------------


@dataclass(frozen=True)
class AccessRule:
    """What ``Auth.require(*roles)`` declared for a route (no roles: any authenticated caller)."""

    roles: frozenset[Role]


def _require_rule(call: object) -> AccessRule | None:
    """The rule when ``call`` is a dependency made by ``Auth.require``; None otherwise."""
    qualname = getattr(call, "__qualname__", "")
    if not qualname.startswith("Auth.require."):
        return None
    code = getattr(call, "__code__", None)
    closure = getattr(call, "__closure__", None)
    if code is None or closure is None:
        return None
    cells = dict(zip(code.co_freevars, closure, strict=True))
    wanted = cells["wanted"].cell_contents
    if not isinstance(wanted, frozenset) or not all(isinstance(r, Role) for r in wanted):
        raise TypeError(f"Auth.require captured {wanted!r} as its roles, not a frozenset of Role")
    return AccessRule(frozenset(wanted))


def _rules(dependant: Dependant) -> Iterator[AccessRule]:
    for dependency in dependant.dependencies:
        rule = _require_rule(dependency.call)
        if rule is not None:
            yield rule
        yield from _rules(dependency)


def access_rule(dependant: Dependant | None) -> AccessRule | None:
    """The ``Auth.require`` rule anywhere in a route's dependency tree, or None.

    Two rules on one route would make the effective rule their intersection, which nobody reading
    the route would expect: that is reported as an error.
    """
    if dependant is None:
        return None
    found = list(_rules(dependant))
    if len(found) > 1:
        raise ValueError(f"{dependant.path} depends on {len(found)} Auth.require rules")
    return found[0] if found else None


@dataclass(frozen=True)
class Endpoint:
    """One method on one path template of one service."""

    service: str
    method: str
    path: str

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.path}"


def endpoints(service: str, app: FastAPI) -> Iterator[tuple[Endpoint, Dependant | None]]:
    """Every endpoint an app serves, with the dependency tree FastAPI runs for it.

    FastAPI 0.16x keeps included routers as lazily flattened ``_IncludedRouter`` entries in
    ``app.routes``; ``iter_route_contexts`` yields the effective routes (with the path and the
    dependencies of the inclusion, which is what a request runs through).
    """
    for context in iter_route_contexts(app.routes):
        path, methods = context.path, context.methods
        if path is None or not methods:
            continue
        dependant: Dependant | None = getattr(context, "dependant", None)
        if dependant is None and isinstance(context.original_route, APIRoute):
            dependant = context.original_route.dependant
        for method in sorted(set(methods) - _IGNORED_METHODS):
            yield Endpoint(service, method, path), dependant


def admitted_roles(apps: Mapping[str, FastAPI]) -> dict[Endpoint, frozenset[Role] | None]:
    """Per endpoint the roles its rule admits; None for a route without a rule."""
    result: dict[Endpoint, frozenset[Role] | None] = {}
    for service, app in apps.items():
        for endpoint, dependant in endpoints(service, app):
            rule = access_rule(dependant)
            result[endpoint] = None if rule is None else rule.roles
    return result


# --- the system ----------------------------------------------------------------------------------


class IntakeParties(DossierParties):
    """Intake's party check, asked over intake's in-process TestClient."""

    def __init__(self, client: httpx.Client, provide_token: Callable[[], str]) -> None:
        self.client = client
        self.token = provide_token


def _matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` is one token, ``>`` the rest."""
    wanted, tokens = pattern.split("."), subject.split(".")
    for index, part in enumerate(wanted):
        if part == ">":
            return len(tokens) > index
        if index >= len(tokens) or (part not in ("*", tokens[index])):
            return False
    return len(wanted) == len(tokens)


@dataclass
class Dossier:
    """One seeded dossier and the ids of what was made for it."""

    aanvraag_id: UUID
    email: str
    organisatie: str
    stand: str = "ingediend"
    afspraak_werkgever: UUID | None = None
    afspraak_bestuurder: UUID | None = None
    rapport_id: UUID | None = None
    inhoud_hash: str | None = None
    maatregel_bestuurder: UUID | None = None
    maatregel_werkgever: UUID | None = None
    abonnement_id: UUID | None = None  # the werkgever's webhook subscription
    bezorging_id: UUID | None = None  # one delivery of it (planned, never sent in-process)
    notificatie_id: UUID | None = None  # one of its e-mail notifications (not failed)


def aanmelding(email: str, organisatie: str) -> dict[str, Any]:
    """A registration (a made-up person)."""
    return {
        "ingediend_door": "bestuurder",
        "bestuurder": {
            "naam": "Anna de Vries",
            "functie": "wethouder",
            "email": email,
            "telefoon": "+31 6 11122233",
            "adres": {
                "straat": "Lindenlaan",
                "huisnummer": "4",
                "postcode": "3511 AB",
                "woonplaats": "Utrecht",
            },
        },
        "werkgever": {
            "organisatie": "Gemeente Testdorp",
            "organisatie_code": organisatie,
            "contactpersoon": "Karel Jansen",
            "email": "k.jansen@example.org",
            "telefoon": "030 2860000",
        },
        "reden": "Bedreigingen na een besluit over een woonwijk.",
        "verhuizing_gepland": False,
        "toestemming": True,
    }


def rapport_inhoud(tag: str = "") -> dict[str, Any]:
    """A report with one free measure for each party (both can be carried out at once)."""
    return {
        "bevindingen": {
            "werk": f"Balie zonder afscherming {tag}.",
            "wonen": "Achterdeur zonder inbraakwerend slot.",
            "informatie": "Huisadres te herleiden via sociale media.",
            "verplaatsen": "Vaste routes op vaste tijden.",
        },
        "maatregelen": [
            {
                "domein": "verplaatsen",
                "omschrijving": "Wissel routes en vertrektijden af.",
                "kosten": "kosteloos",
                "uitvoerder": "bestuurder",
                "prioriteit": "middel",
            },
            {
                "domein": "werk",
                "omschrijving": "Instructie aan de baliemedewerkers.",
                "kosten": "kosteloos",
                "uitvoerder": "werkgever",
                "prioriteit": "hoog",
            },
        ],
    }


#: The dossier states a seed can be brought to, each with the state it is reached from.
STANDEN: Mapping[str, str | None] = {
    "ingediend": None,
    "ingetrokken": "ingediend",
    "contact": "ingediend",
    "gepland": "contact",
    "onderzocht": "gepland",
    "concept": "onderzocht",
    "ter_toetsing": "concept",
    "afgekeurd": "ter_toetsing",
    "goedgekeurd": "ter_toetsing",
    "geweigerd": "goedgekeurd",
    "vrijgegeven": "goedgekeurd",
    "abonnement": "ingediend",
    "notificatie": "ingediend",
}


def _route_naar(stand: str) -> list[str]:
    """The states a new dossier passes through to reach ``stand``, after ``ingediend``."""
    route: list[str] = []
    current: str | None = stand
    while current is not None and current != "ingediend":
        route.append(current)
        current = STANDEN[current]
    return route[::-1]


@dataclass
class InProcessSystem:
    """Five services, one database, one synchronous bus."""

    settings: Settings
    components: dict[str, Components]
    clients: dict[str, TestClient]
    _positions: dict[str, int] = field(default_factory=dict)
    _tokens: dict[tuple[str, str, str | None, str | None], dict[str, str]] = field(
        default_factory=dict
    )
    _sequence: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _dossiers: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def apps(self) -> dict[str, FastAPI]:
        """The FastAPI app of every service."""
        return {name: c.api for name, c in self.components.items()}

    # --- tokens ----------------------------------------------------------------------------------

    def headers(
        self,
        role: str,
        sub: str | None = None,
        *,
        email: str | None = None,
        organisatie: str | None = None,
    ) -> dict[str, str]:
        """An Authorization header for one role (cached: signing is not what is measured)."""
        key = (role, sub or f"{role}-1", email, organisatie)
        if key not in self._tokens:
            claims: dict[str, str] = {}
            if email is not None:
                claims["email"] = email
            if organisatie is not None:
                claims["organisatie"] = organisatie
            self._tokens[key] = token(self.settings.data_dir, role, sub=key[1], **claims)
        return self._tokens[key]

    # --- the bus ---------------------------------------------------------------------------------

    def pump(self) -> int:
        """Deliver every new public event to every matching subscription; the number delivered."""
        delivered = 0
        progress = True
        while progress:
            progress = False
            for service, components in self.components.items():
                app = components.app
                start = self._positions.get(service, 0) + 1
                for notification in app.recorder.select_notifications(start, 1000):
                    self._positions[service] = notification.id
                    progress = True
                    event = app.mapper.to_domain_event(notification)
                    assert isinstance(event, DomainEvent)
                    announcements = components.gateway(event)
                    for index, announced in enumerate(announcements):
                        position = PositionHeader(notification.id, index, len(announcements))
                        delivered += self._deliver(service, event, position, announced)
        return delivered

    def _deliver(
        self, service: str, event: DomainEvent, position: PositionHeader, announced: Any
    ) -> int:
        envelope = to_cloudevent(
            announced,
            id=public_event_id(
                service, event.originator_id, event.originator_version, position.index
            ),
            source=self.settings.source_for(service),
            time=event.timestamp,
            correlationid=event.correlation_id,
            causationid=event.causation_id,
            actorrole=event.actor_role,
            actorid=event.actor_id,
            traceparent=event.traceparent,
        )
        subject = subject_for(announced)
        delivery = Delivery(
            envelope=envelope,
            event=announced,
            stream_sequence=next(self._sequence),
            attempt=1,
            position=position,
        )
        count = 0
        for components in self.components.values():
            for subscription in components.subscriptions:
                if any(_matches(pattern, subject) for pattern in subscription.subjects):
                    subscription.handler(delivery)
                    count += 1
        return count

    # --- what the services stored ----------------------------------------------------------------

    def mark(self, service: str) -> int:
        """The id of the service's last stored event (to look at what came after)."""
        return int(self.components[service].app.recorder.max_notification_id() or 0)

    def stored_since(self, service: str, mark: int) -> list[DomainEvent]:
        """The events a service stored after ``mark``."""
        app = self.components[service].app
        events = []
        for notification in app.recorder.select_notifications(mark + 1, 10_000):
            event = app.mapper.to_domain_event(notification)
            assert isinstance(event, DomainEvent)
            events.append(event)
        return events

    def refusals_since(self, service: str, mark: int) -> list[ToegangGeweigerdVastgelegd]:
        """The refusals a service recorded after ``mark``."""
        return [
            e for e in self.stored_since(service, mark) if isinstance(e, ToegangGeweigerdVastgelegd)
        ]

    # --- seeding dossiers through the real APIs --------------------------------------------------

    def call(
        self,
        service: str,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        *,
        expect: int = 200,
        **kwargs: Any,
    ) -> Any:
        """A seeding step: one call that must answer ``expect``; its JSON body."""
        response = self.clients[service].request(method, path, headers=headers, **kwargs)
        if response.status_code != expect:
            raise AssertionError(f"seeding {method} {path}: {response.status_code} {response.text}")
        return response.json()

    def dossier(self, stand: str = "ingediend", organisatie: str = ORGANISATIE) -> Dossier:
        """A new dossier taken through the process (over the APIs) up to ``stand``."""
        email = f"bestuurder.{next(self._dossiers)}@example.org"
        body = self.call(
            "intake", "POST", "/aanvragen", json=aanmelding(email, organisatie), expect=201
        )
        dossier = Dossier(UUID(body["aanvraag_id"]), email, organisatie)
        self.pump()
        for step in _route_naar(stand):
            getattr(self, f"_naar_{step}")(dossier)
            dossier.stand = step
            self.pump()
        return dossier

    def bestuurder(self, dossier: Dossier) -> dict[str, str]:
        """The token of the dossier's bestuurder."""
        return self.headers("bestuurder", "bst-1", email=dossier.email)

    def _naar_contact(self, d: Dossier) -> None:
        sec = self.headers("secretariaat")
        self.call("scheduling", "POST", f"/aanvragen/{d.aanvraag_id}/contact", sec)

    def _naar_gepland(self, d: Dossier) -> None:
        # The system's clock stands still at NU, and a conversation is held only after its start:
        # both are on record as having taken place a week ago (Mon 4 May, 12:00 and 15:00 in
        # Amsterdam, within working hours), recorded afterwards, so a later stand can hold them.
        sec = self.headers("secretariaat")
        for soort, uren in (("gesprek_werkgever", 0), ("gesprek_bestuurder", 3)):
            body: dict[str, Any] = {
                "soort": soort,
                "gepland_op": (NU - timedelta(days=7) + timedelta(hours=uren)).isoformat(),
                "duur_minuten": 60,
                "adviseur_id": ADVISEUR_SUB,
                "achteraf": True,
            }
            if soort == "gesprek_werkgever":
                body["video_link"] = "https://video.example.org/kamer-1"
            afspraak = self.call(
                "scheduling",
                "POST",
                f"/aanvragen/{d.aanvraag_id}/afspraken",
                sec,
                json=body,
                expect=201,
            )
            setattr(d, f"afspraak_{soort.removeprefix('gesprek_')}", UUID(afspraak["afspraak_id"]))

    def _naar_onderzocht(self, d: Dossier) -> None:
        adv = self.headers("adviseur", ADVISEUR_SUB)
        self.call(
            "scheduling",
            "POST",
            f"/afspraken/{d.afspraak_werkgever}/gevoerd",
            adv,
            json={"woningscan_uitgevoerd": False},
        )
        self.call(
            "scheduling",
            "POST",
            f"/afspraken/{d.afspraak_bestuurder}/gevoerd",
            adv,
            json={"woningscan_uitgevoerd": True},
        )

    def _naar_concept(self, d: Dossier) -> None:
        adv = self.headers("adviseur", ADVISEUR_SUB)
        stand = self.call(
            "assessment",
            "POST",
            f"/aanvragen/{d.aanvraag_id}/rapport",
            adv,
            json=rapport_inhoud(),
            expect=201,
        )
        d.rapport_id = UUID(stand["rapport_id"])
        d.inhoud_hash = stand["inhoud_hash"]
        for maatregel in stand["maatregelen"]:
            setattr(d, f"maatregel_{maatregel['uitvoerder']}", UUID(maatregel["maatregel_id"]))

    def _naar_ter_toetsing(self, d: Dossier) -> None:
        adv = self.headers("adviseur", ADVISEUR_SUB)
        stand = self.call("assessment", "POST", f"/rapporten/{d.rapport_id}/indienen", adv)
        d.inhoud_hash = stand["inhoud_hash"]

    def _naar_goedgekeurd(self, d: Dossier) -> None:
        self.call(
            "approval",
            "POST",
            f"/rapporten/{d.rapport_id}/goedkeuren",
            self.headers("bva", BVA_SUB),
            json={"versie": 1, "inhoud_hash": d.inhoud_hash},
        )

    def _naar_ingetrokken(self, d: Dossier) -> None:
        self.call("intake", "POST", f"/aanvragen/{d.aanvraag_id}/intrekken", self.bestuurder(d))

    def _naar_afgekeurd(self, d: Dossier) -> None:
        self.call(
            "approval",
            "POST",
            f"/rapporten/{d.rapport_id}/afkeuren",
            self.headers("bva", BVA_SUB),
            json={"versie": 1, "inhoud_hash": d.inhoud_hash, "redenen": ["Te summier."]},
        )

    def _naar_geweigerd(self, d: Dossier) -> None:
        self.call(
            "approval",
            "POST",
            f"/rapporten/{d.rapport_id}/instemming",
            self.bestuurder(d),
            json={"instemming": False},
        )

    def _naar_abonnement(self, d: Dossier) -> None:
        """The werkgever subscribes to webhooks; contact is recorded, so one delivery is planned."""
        werkgever = self.headers("werkgever", "wg-1", organisatie=d.organisatie)
        abonnement = self.call(
            "notifications",
            "POST",
            "/webhooks/abonnementen",
            werkgever,
            json={"callback_url": "https://integrator.example.org/weerbaar"},
            expect=201,
        )
        d.abonnement_id = UUID(abonnement["abonnement_id"])
        self._naar_contact(d)
        self.pump()
        [bezorging] = self.call(
            "notifications",
            "GET",
            f"/webhooks/abonnementen/{d.abonnement_id}/bezorgingen",
            werkgever,
        )
        d.bezorging_id = UUID(bezorging["bezorging_id"])

    def _naar_notificatie(self, d: Dossier) -> None:
        """Nothing changes: the registration planned its confirmation; note the notification."""
        [bezorging, *_] = self.call(
            "notifications",
            "GET",
            "/notificaties",
            self.headers("secretariaat"),
            params={"aanvraag_id": str(d.aanvraag_id)},
        )
        d.notificatie_id = UUID(bezorging["notificatie_id"])

    def _naar_vrijgegeven(self, d: Dossier) -> None:
        self.call(
            "approval",
            "POST",
            f"/rapporten/{d.rapport_id}/instemming",
            self.bestuurder(d),
            json={"instemming": True},
        )


def build_system(settings: Settings, stack: ExitStack) -> InProcessSystem:
    """Bootstrap the five services on ``settings``; ``stack`` closes their clients and stores."""
    clock = FixedClock(NU)
    components: dict[str, Components] = {}
    clients: dict[str, TestClient] = {}

    def start(name: str, built: Components) -> None:
        components[name] = built
        stack.callback(built.app.close)
        clients[name] = stack.enter_context(TestClient(built.api))

    start("intake", intake_bootstrap(settings, clock))
    parties = IntakeParties(clients["intake"], service_token(settings, "matrix"))
    start("scheduling", scheduling_bootstrap(settings, clock, parties=parties))
    start("assessment", assessment_bootstrap(settings, clock, parties=parties))
    start("approval", approval_bootstrap(settings, clock, parties=parties))
    start("notifications", notifications_bootstrap(settings, clock))
    return InProcessSystem(settings, components, clients)


@contextmanager
def system_on_new_database(
    postgres_server_url: str, nats_url: str, data_dir: Path, **extra: Any
) -> Iterator[InProcessSystem]:
    """The five services on a database of their own, dropped afterwards.

    The same settings as the ``settings`` fixture builds, but for a whole module: the matrix and
    the hostile-input runs share one system instead of paying a database per cell.
    """
    database_url = servers.create_database(postgres_server_url)
    try:
        settings = settings_for(database_url, nats_url, data_dir, **extra)
        with ExitStack() as stack:
            yield build_system(settings, stack)
    finally:
        servers.drop_database(postgres_server_url, database_url)
