"""Every route declares its access rule: an ``Auth.require(...)`` dependency, or it is public.

The services are built by their own ``bootstrap`` (on the test's database), so the routes checked
are exactly the routes served. A route is guarded when ``Auth.require`` made a dependency anywhere
in its dependency tree; the roles it admits are the ``wanted`` frozenset that closure captured.
The public routes are an explicit allowlist: a new route without a rule fails here.
"""

# No `from __future__ import annotations`: FastAPI must evaluate the `Depends(...)` of the routes
# this test adds, which refer to a local `auth`.
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI

from shared.platform.auth import Auth, HmacTokenVerifier, Principal, Refusal, Role
from shared.platform.settings import Settings
from tests.integration.inprocess import (
    PUBLIC_ROUTES,
    Endpoint,
    admitted_roles,
    build_system,
)

pytestmark = pytest.mark.integration

#: The roles of domain.md; `dienst` is a service calling another's internal API.
DOMAIN_ROLES = frozenset(Role) - {Role.dienst}


def unguarded(apps: Mapping[str, FastAPI]) -> list[Endpoint]:
    """The endpoints without an access rule that are not on the public allowlist."""
    return sorted(
        (
            endpoint
            for endpoint, roles in admitted_roles(apps).items()
            if roles is None
            and (endpoint.service, endpoint.method, endpoint.path) not in PUBLIC_ROUTES
        ),
        key=str,
    )


@pytest.fixture
def apps(settings: Settings) -> Iterator[dict[str, FastAPI]]:
    """The FastAPI app of every service, as its bootstrap builds it."""
    with ExitStack() as stack:
        yield build_system(settings, stack).apps


def test_every_route_declares_an_access_rule_or_is_public(apps: dict[str, FastAPI]) -> None:
    rules = admitted_roles(apps)

    assert unguarded(apps) == []
    # The allowlist holds only routes that exist and that really are public.
    for service, method, path in sorted(PUBLIC_ROUTES):
        assert rules[Endpoint(service, method, path)] is None, (service, method, path)
    # Every service has guarded routes (so the walk over the dependencies found them).
    for service in apps:
        assert any(e.service == service and r for e, r in rules.items()), service


def test_a_rule_names_its_roles(apps: dict[str, FastAPI]) -> None:
    """``Auth.require()`` without roles admits any valid token: no route may rely on that."""
    empty = [str(e) for e, roles in admitted_roles(apps).items() if roles == frozenset()]
    assert empty == []


#: Issue #5: a legal hold changes no data of a dossier; it suspends the destruction of its
#: history by retention, and only compliance places or lifts it.
LEGAL_HOLD = "/aanvragen/{aanvraag_id}/bewaarplicht"


def test_compliance_may_change_nothing(apps: dict[str, FastAPI]) -> None:
    changing = [
        str(endpoint)
        for endpoint, roles in admitted_roles(apps).items()
        if endpoint.method != "GET"
        and roles
        and Role.compliance in roles
        and not (endpoint.service == "intake" and endpoint.path == LEGAL_HOLD)
    ]
    assert changing == []
    holds = {e: r for e, r in admitted_roles(apps).items() if e.path == LEGAL_HOLD}
    assert {e.method for e in holds} == {"POST", "DELETE"}
    assert all(r == frozenset({Role.compliance}) for r in holds.values())


def test_the_internal_api_is_for_services_and_only_it(apps: dict[str, FastAPI]) -> None:
    for endpoint, roles in admitted_roles(apps).items():
        if endpoint.path.startswith("/internal/"):
            assert roles == frozenset({Role.dienst}), endpoint
        elif roles is not None:
            assert roles <= DOMAIN_ROLES, f"{endpoint} admits a service token"


# --- the check catches what it must --------------------------------------------------------------


def _copy(app: FastAPI) -> FastAPI:
    """A new app serving the same routes (the original stays as bootstrap built it), and no
    others: FastAPI's own documentation pages are off, as in the services."""
    copy = FastAPI(docs_url=None, redoc_url=None)
    copy.include_router(app.router)
    return copy


def _auth(settings: Settings) -> Auth:
    def ignore(refusal: Refusal) -> None:
        return None

    verifier = HmacTokenVerifier(
        b"x" * 32, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    return Auth(verifier, on_refused=ignore)


def test_a_route_added_without_a_rule_is_flagged(
    apps: dict[str, FastAPI], settings: Settings
) -> None:
    auth = _auth(settings)
    copy = _copy(apps["intake"])

    @copy.get("/aanvragen/{aanvraag_id}/geheim")
    def zonder_regel(aanvraag_id: str) -> dict[str, str]:
        return {}

    def eigen_dossier(
        principal: Annotated[Principal, Depends(auth.require(Role.secretariaat))],
    ) -> Principal:
        return principal

    # A rule one level down (a dependency of a dependency) still counts.
    @copy.get("/aanvragen/{aanvraag_id}/genest")
    def genest(
        aanvraag_id: str, principal: Annotated[Principal, Depends(eigen_dossier)]
    ) -> dict[str, str]:
        return {}

    # A dependency that only looks like one is not a rule.
    def require() -> None:
        return None

    @copy.post("/aanvragen/{aanvraag_id}/nagebootst", dependencies=[Depends(require)])
    def nagebootst(aanvraag_id: str) -> dict[str, str]:
        return {}

    flagged = unguarded({"intake": copy})

    assert [(e.method, e.path) for e in flagged] == [
        ("GET", "/aanvragen/{aanvraag_id}/geheim"),
        ("POST", "/aanvragen/{aanvraag_id}/nagebootst"),
    ]
    rules = admitted_roles({"intake": copy})
    genest_rule = rules[Endpoint("intake", "GET", "/aanvragen/{aanvraag_id}/genest")]
    assert genest_rule == frozenset({Role.secretariaat})
    # The copy still has every route of the original, with the same rules.
    original = admitted_roles({"intake": apps["intake"]})
    assert original.items() <= rules.items()


def test_two_rules_on_one_route_are_an_error(settings: Settings) -> None:
    auth = _auth(settings)
    app = FastAPI()

    @app.get(
        "/dubbel",
        dependencies=[
            Depends(auth.require(Role.secretariaat)),
            Depends(auth.require(Role.compliance)),
        ],
    )
    def dubbel() -> dict[str, str]:
        return {}

    with pytest.raises(ValueError, match=r"2 Auth\.require rules"):
        admitted_roles({"test": app})


def test_every_idempotency_key_header_is_checked_at_the_edge_the_same_way(
    apps: dict[str, FastAPI],
) -> None:
    """Each creating command that takes an ``Idempotency-Key`` declares the one checked header
    type (``shared.platform.idempotency.IdempotencyKey``): 1–200 characters of a small alphabet,
    else 422 before anything is stored."""
    found = {}
    for service, app in apps.items():
        for path, item in app.openapi()["paths"].items():
            for method, operation in item.items():
                for parameter in operation.get("parameters", []):
                    if parameter["in"] == "header" and parameter["name"] == "Idempotency-Key":
                        found[(service, method.upper(), path)] = parameter["schema"]
    assert {service for service, _, _ in found} == {
        "intake",
        "scheduling",
        "assessment",
        "notifications",
    }, found
    for where, schema in found.items():
        string = next(s for s in schema["anyOf"] if s.get("type") == "string")
        assert (string["minLength"], string["maxLength"], string["pattern"]) == (
            1,
            200,
            "^[A-Za-z0-9._:-]+$",
        ), where
