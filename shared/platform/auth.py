"""Who is calling: bearer tokens (JWT), roles, and the FastAPI dependency that enforces them.

Two verifiers share one claim mapping:
- `HmacTokenVerifier`: the embedded default; `weerbaar token` signs with a local secret (HS256).
- `OidcTokenVerifier`: production; keys come from the OIDC provider's JWKS (RS256/ES256).

Every refused attempt goes to `Auth.on_refused` before the error is raised, so a service can
record ToegangGeweigerd; if recording fails the request fails with 503 instead of continuing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, NoReturn, Protocol
from uuid import UUID

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict

from shared.platform.errors import Geweigerd, NietBeschikbaar, NietGevonden, NietIngelogd, TeVaak

__all__ = [
    "Auth",
    "HmacTokenVerifier",
    "OidcTokenVerifier",
    "Principal",
    "Refusal",
    "RefusalReason",
    "Role",
    "TokenVerifier",
    "issue_token",
    "load_or_create_secret",
]

logger = logging.getLogger(__name__)

#: Problem codes of the 503s authentication answers (shown to the caller, named in the runbook).
IDP_KEYS_CODE: Final = "idp_sleutels_onbereikbaar"
REFUSAL_UNRECORDED_CODE: Final = "weigering_niet_vastgelegd"

SECRET_BYTES: Final = 32
#: The longest bearer token looked at: checked before anything decodes it (an OIDC access token
#: with many claims is a few KB; the request's headers together are capped in
#: ``shared.platform.http``).
MAX_TOKEN_CHARS: Final = 8192
_HMAC_ALGORITHM: Final = "HS256"
_REQUIRED_CLAIMS: Final = ["exp", "iss", "aud", "sub"]


class Role(StrEnum):
    """The roles of domain.md (plus `dienst`); a token's `roles` claim lists some of them."""

    aanvrager = "aanvrager"
    bestuurder = "bestuurder"
    werkgever = "werkgever"
    secretariaat = "secretariaat"
    adviseur = "adviseur"
    bva = "bva"
    compliance = "compliance"
    # Not a person: a service calling another's internal API (the claim check for e-mail).
    dienst = "dienst"


_ROLE_VALUES: Final = frozenset(role.value for role in Role)


class RefusalReason(StrEnum):
    """Why a request was refused; short, stable codes for the audit trail and the 401 body."""

    expired = "expired"
    not_yet_valid = "not_yet_valid"
    bad_signature = "bad_signature"
    wrong_issuer = "wrong_issuer"
    wrong_audience = "wrong_audience"
    unknown_key = "unknown_key"
    malformed = "malformed"
    missing_claim = "missing_claim"
    missing_token = "missing_token"  # noqa: S105 - a reason code, not a password
    missing_role = "missing_role"
    no_known_role = "no_known_role"
    token_too_long = "token_too_long"  # noqa: S105 - a reason code, not a password


class Principal(BaseModel):
    """The verified caller: an opaque id, its roles and the claims that match it to dossiers."""

    model_config = ConfigDict(frozen=True)

    sub: str
    roles: frozenset[Role]
    email: str | None = None
    organisatie: str | None = None

    def has_role(self, *roles: Role) -> bool:
        """True when the principal holds at least one of `roles`."""
        return not self.roles.isdisjoint(roles)


class TokenVerifier(Protocol):
    """Turns a bearer token into a Principal or raises NietIngelogd with a RefusalReason code."""

    def verify(self, token: str) -> Principal:
        """Verify `token` and return its principal."""
        ...


def _unauthenticated(reason: RefusalReason) -> NietIngelogd:
    return NietIngelogd(
        reason.value,
        "Het token is niet geldig.",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


# Order matters: InvalidSignatureError is a DecodeError, so it must come before the fallback.
_REASONS: Final[Sequence[tuple[type[jwt.PyJWTError], RefusalReason]]] = (
    (jwt.ExpiredSignatureError, RefusalReason.expired),
    (jwt.ImmatureSignatureError, RefusalReason.not_yet_valid),
    (jwt.InvalidIssuerError, RefusalReason.wrong_issuer),
    (jwt.InvalidAudienceError, RefusalReason.wrong_audience),
    (jwt.MissingRequiredClaimError, RefusalReason.missing_claim),
    (jwt.InvalidSignatureError, RefusalReason.bad_signature),
    (jwt.InvalidAlgorithmError, RefusalReason.bad_signature),
    (jwt.InvalidKeyError, RefusalReason.bad_signature),
)


def _reason_for(exc: jwt.PyJWTError) -> RefusalReason:
    for exc_type, reason in _REASONS:
        if isinstance(exc, exc_type):
            return reason
    return RefusalReason.malformed


def _optional_str(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _unauthenticated(RefusalReason.malformed)
    return value


def _principal_from(claims: Mapping[str, Any]) -> Principal:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise _unauthenticated(RefusalReason.missing_claim)
    if "roles" not in claims:
        raise _unauthenticated(RefusalReason.missing_claim)
    raw_roles = claims["roles"]
    if not isinstance(raw_roles, list) or not all(isinstance(r, str) for r in raw_roles):
        raise _unauthenticated(RefusalReason.malformed)
    # An OIDC provider may list roles of other applications; those mean nothing here. A token
    # with none of ours is refused like any other bad token: it names nobody the process knows.
    roles = frozenset(Role(r) for r in raw_roles if r in _ROLE_VALUES)
    if not roles:
        raise _unauthenticated(RefusalReason.no_known_role)
    return Principal(
        sub=sub,
        roles=roles,
        email=_optional_str(claims, "email"),
        organisatie=_optional_str(claims, "organisatie"),
    )


def _provider_principal(claims: Mapping[str, Any], service_clients: Mapping[str, str]) -> Principal:
    """The principal of a provider's access token: a service only by its own client's token.

    A service's token is one the provider issued to the service's client by the client
    credentials grant, so it names that client as its subject (RFC 9068): it is the service
    (``svc-<name>``) with the role ``dienst`` and nothing else, whatever other claims it has. Any
    other token is a person's: its roles come from the ``roles`` claim, and ``dienst`` never
    does, so no account at the provider (or claim mapping gone wrong) can pass as a service.
    """
    client_id = claims.get("client_id")
    if isinstance(client_id, str) and client_id in service_clients:
        if claims.get("sub") != client_id:
            # Someone signed in through a service's client: neither a service nor a person.
            raise _unauthenticated(RefusalReason.malformed)
        return Principal(sub=service_clients[client_id], roles=frozenset({Role.dienst}))
    principal = _principal_from(claims)
    roles = principal.roles - {Role.dienst}
    if not roles:
        raise _unauthenticated(RefusalReason.no_known_role)
    return principal.model_copy(update={"roles": roles})


def _unverified_header(token: str) -> dict[str, Any]:
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _unauthenticated(RefusalReason.malformed) from None


class HmacTokenVerifier:
    """Verifies HS256 tokens made by `issue_token` with the local shared secret."""

    def __init__(
        self, secret: bytes, issuer: str, audience: str, *, leeway: timedelta = timedelta(0)
    ) -> None:
        if len(secret) < SECRET_BYTES:
            raise ValueError(f"the HMAC secret must be at least {SECRET_BYTES} bytes")
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway

    def verify(self, token: str) -> Principal:
        """Verify signature, issuer, audience and validity period; return the principal."""
        # Checked before PyJWT so that `none` and every other algorithm is refused by us, not
        # only by a library default.
        if _unverified_header(token).get("alg") != _HMAC_ALGORITHM:
            raise _unauthenticated(RefusalReason.bad_signature)
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_HMAC_ALGORITHM],
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise _unauthenticated(_reason_for(exc)) from None
        return _principal_from(claims)


class OidcTokenVerifier:
    """Verifies tokens of an OIDC provider against its JWKS (cached), issuer and audience."""

    def __init__(
        self,
        jwks_url: str,
        issuer: str,
        audience: str,
        algorithms: Sequence[str] = ("RS256", "ES256"),
        *,
        leeway: timedelta = timedelta(seconds=30),
        jwks_lifespan: timedelta = timedelta(minutes=5),
        timeout: timedelta = timedelta(seconds=5),
        service_clients: Mapping[str, str] | None = None,
    ) -> None:
        unsafe = {a for a in algorithms if a.lower() == "none" or a.upper().startswith("HS")}
        if unsafe:
            # A symmetric algorithm here would let anyone holding the public key sign tokens.
            raise ValueError(f"algorithms not allowed with a JWKS: {sorted(unsafe)}")
        self._algorithms = list(algorithms)
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._service_clients = dict(service_clients or {})
        # Only the key set is cached (with a lifespan): PyJWKClient's per-kid cache never
        # expires, so a key the provider withdrew would stay valid until restart.
        self._client = jwt.PyJWKClient(
            jwks_url,
            cache_jwk_set=True,
            lifespan=jwks_lifespan.total_seconds(),
            timeout=timeout.total_seconds(),
        )

    def verify(self, token: str) -> Principal:
        """Check algorithm, key id, signature, issuer, audience and validity of `token`."""
        header = _unverified_header(token)
        if header.get("alg") not in self._algorithms:
            raise _unauthenticated(RefusalReason.bad_signature)
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise _unauthenticated(RefusalReason.unknown_key)
        key = self._signing_key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise _unauthenticated(_reason_for(exc)) from None
        return _provider_principal(claims, self._service_clients)

    def _signing_key(self, kid: str) -> jwt.PyJWK:
        try:
            # Fetch (or take from cache) first: a JWKS that cannot be read is our outage, not
            # the caller's unknown key.
            self._client.get_signing_keys()
        except (jwt.PyJWKClientError, jwt.PyJWKSetError) as exc:
            logger.error("JWKS unavailable", extra={"error_type": type(exc).__name__})
            raise NietBeschikbaar(
                "De sleutels van de identity provider zijn niet beschikbaar.", code=IDP_KEYS_CODE
            ) from None
        try:
            return self._client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            logger.error("JWKS unavailable", extra={"error_type": type(exc).__name__})
            raise NietBeschikbaar(
                "De sleutels van de identity provider zijn niet beschikbaar.", code=IDP_KEYS_CODE
            ) from None
        except (jwt.PyJWKClientError, jwt.PyJWKSetError):
            raise _unauthenticated(RefusalReason.unknown_key) from None


def issue_token(
    secret: bytes,
    *,
    role: Role | str,
    sub: str | None = None,
    email: str | None = None,
    organisatie: str | None = None,
    issuer: str,
    audience: str,
    ttl: timedelta = timedelta(hours=8),
    now: datetime | None = None,
) -> str:
    """Sign an HS256 token with one role, as `weerbaar token` prints it."""
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "iss": issuer,
        "aud": audience,
        "sub": sub or f"usr-{secrets.token_hex(8)}",
        "roles": [Role(role).value],
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl,
        "jti": secrets.token_hex(16),
    }
    if email is not None:
        claims["email"] = email
    if organisatie is not None:
        claims["organisatie"] = organisatie
    return jwt.encode(claims, secret, algorithm=_HMAC_ALGORITHM)


def load_or_create_secret(path: Path) -> bytes:
    """Return the 32-byte signing secret at `path`, creating it (mode 0600) the first time."""
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Write to a private temporary file and link it into place: two services starting at once
    # then agree on one secret, and neither ever reads a half-written file.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".secret-")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, secrets.token_bytes(SECRET_BYTES))
        os.fsync(fd)
        os.close(fd)
        fd = -1
        # Losing the race is fine: the other process's secret is the one everybody reads.
        with contextlib.suppress(FileExistsError):
            os.link(tmp_name, path)
    finally:
        if fd != -1:
            os.close(fd)
        os.unlink(tmp_name)
    return _read_secret(path)


def _read_secret(path: Path) -> bytes:
    secret = path.read_bytes()
    if len(secret) < SECRET_BYTES:
        raise ValueError(f"secret file {path} is shorter than {SECRET_BYTES} bytes")
    if path.stat().st_mode & 0o077:
        logger.warning("secret file is readable by others", extra={"path": str(path)})
    return secret


@dataclass(frozen=True)
class Refusal:
    """A refused attempt, as handed to `Auth.on_refused` (to be recorded as ToegangGeweigerd)."""

    actie: str
    reason: str
    status: int
    principal: Principal | None
    aanvraag_id: UUID | None
    # Every path parameter that is a UUID (e.g. rapport_id), so a service can find the dossier.
    ids: Mapping[str, UUID] = field(default_factory=dict)
    #: The address the attempt came from (``shared.platform.throttle.client_source``): what
    #: anonymous attempts are limited by; never recorded.
    source: str = ""


def _path_ids(request: Request) -> dict[str, UUID]:
    # Only UUIDs are passed on: a path segment is caller input and could hold anything.
    ids: dict[str, UUID] = {}
    for name, value in request.path_params.items():
        try:
            ids[name] = value if isinstance(value, UUID) else UUID(str(value))
        except ValueError:
            continue
    return ids


def _actie(request: Request) -> str:
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    # Never the concrete path: it holds ids and whatever else the caller typed.
    return f"{request.method} {template if isinstance(template, str) else '/{unmatched}'}"


_bearer = HTTPBearer(auto_error=False)


def _peer(request: Request) -> str:
    return request.client.host if request.client is not None else "onbekend"


class Auth:
    """Checks the bearer token and roles of a request; reports every refusal to `on_refused`."""

    def __init__(
        self,
        verifier: TokenVerifier,
        on_refused: Callable[[Refusal], None],
        source_of: Callable[[Request], str] | None = None,
        refusals: object | None = None,
    ) -> None:
        self.verifier = verifier
        self.on_refused = on_refused
        self.source_of = source_of or _peer
        #: What records the refusals (``shared.platform.access.Refusals``), for the worker that
        #: records the anonymous attempts of ended windows.
        self.refusals = refusals

    def require(self, *roles: Role) -> Callable[..., Principal]:
        """A dependency returning the caller's Principal; 401 without a valid token, 403 if the
        caller has none of `roles` (no roles given: any authenticated caller)."""
        wanted = frozenset(roles)

        # A plain `def` runs in FastAPI's thread pool: the JWKS fetch and the refusal recorder
        # (the event store) are blocking calls.
        def dependency(
            request: Request,
            credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        ) -> Principal:
            if credentials is None:
                self._refuse(request, None, RefusalReason.missing_token.value, 401)
                raise NietIngelogd(
                    RefusalReason.missing_token.value,
                    "Een bearer token is nodig.",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            try:
                if len(credentials.credentials) > MAX_TOKEN_CHARS:
                    raise _unauthenticated(RefusalReason.token_too_long)
                principal = self.verifier.verify(credentials.credentials)
            except NietIngelogd as exc:
                self._refuse(request, None, exc.code or RefusalReason.malformed.value, 401)
                raise
            if wanted and not principal.has_role(*wanted):
                self.refuse(request, principal, RefusalReason.missing_role.value)
            return principal

        return dependency

    def refuse(
        self, request: Request, principal: Principal | None, reason: str, *, status: int = 403
    ) -> NoReturn:
        """Record a refusal the service decided itself; raise 403, or 404 to hide the dossier."""
        if status not in (403, 404):
            raise ValueError("a refusal answers 403 or 404")
        self._refuse(request, principal, reason, status)
        if status == 404:
            raise NietGevonden()
        raise Geweigerd("U heeft geen toegang tot deze actie.", code=reason)

    def _refuse(
        self, request: Request, principal: Principal | None, reason: str, status: int
    ) -> None:
        ids = _path_ids(request)
        refusal = Refusal(
            actie=_actie(request),
            reason=reason,
            status=status,
            principal=principal,
            aanvraag_id=ids.get("aanvraag_id"),
            ids=ids,
            source=self.source_of(request),
        )
        try:
            self.on_refused(refusal)
        except TeVaak:
            raise  # counted, and over the source's limit: 429
        except Exception as exc:
            # An unrecorded refusal would be a hole in the audit trail: fail the request.
            logger.exception("recording a refusal failed", extra={"actie": refusal.actie})
            raise NietBeschikbaar(
                "De weigering kon niet worden vastgelegd.", code=REFUSAL_UNRECORDED_CODE
            ) from exc
