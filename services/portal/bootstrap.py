"""The portal's composition root: its settings, the APIs it calls, how people sign in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from fastapi import FastAPI

from services.portal.adapters import EmbeddedInloggen, HttpApis
from services.portal.adapters.oidc import OidcAanbieder
from services.portal.adapters.stroom import NatsLuisteraar
from services.portal.api import SessieSleutel, create_portal_app
from services.portal.application import Aanbieder, Apis, Inloggen
from services.portal.application.live import Luisteraar, Verdeler
from services.portal.application.start import ROL_NAMEN
from shared.platform.auth import OidcTokenVerifier, load_or_create_secret
from shared.platform.servicetokens import read_client_secret
from shared.platform.settings import SERVICES, AuthMode, PortalSettings

#: The portal's name among the provider's clients (``<prefix>portal``).
PORTAAL = "portal"


def service_urls(settings: PortalSettings) -> dict[str, str]:
    """Each service's API base URL, by the service's name."""
    return {
        "intake": settings.intake_url,
        "scheduling": settings.scheduling_url,
        "assessment": settings.assessment_url,
        "approval": settings.approval_url,
        "notifications": settings.notifications_url,
    }


def inloggen_voor(settings: PortalSettings) -> Inloggen | None:
    """The development sign-in (the demo people): in embedded mode only."""
    if settings.auth_mode is AuthMode.EMBEDDED:
        return EmbeddedInloggen(
            load_or_create_secret(settings.secret_file), settings.jwt_issuer, settings.jwt_audience
        )
    return None


def aanbieder_voor(settings: PortalSettings) -> Aanbieder | None:
    """Signing in at the OIDC provider (the portal's own confidential client,
    ``<prefix>portal``, its secret in ``<secret dir>/portal.secret``): in OIDC mode only."""
    if settings.auth_mode is not AuthMode.OIDC:
        return None
    if settings.oidc_jwks_url is None:
        raise SystemExit("weerbaar: setting WEERBAAR_OIDC_JWKS_URL is required in oidc mode")
    verifier = OidcTokenVerifier(
        str(settings.oidc_jwks_url),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway=timedelta(seconds=settings.oidc_leeway_s),
        # A service's token is never a person's: the verifier knows the services' clients.
        service_clients={
            settings.oidc_client_id(service): f"svc-{service}" for service in SERVICES
        },
    )
    return OidcAanbieder(
        settings.jwt_issuer,
        client_id=settings.oidc_client_id(PORTAAL),
        client_secret=read_client_secret(settings.oidc_client_secret_path(PORTAAL)),
        redirect_uri=f"{settings.public_url}/inloggen/terug",
        post_logout_redirect_uri=f"{settings.public_url}/uitgelogd",
        audience=settings.jwt_audience,
        verifier=verifier,
        rollen=tuple(ROL_NAMEN),
    )


def live_voor(settings: PortalSettings) -> tuple[Verdeler | None, Luisteraar | None]:
    """Live pages, fed by the public event stream: when the portal is given NATS."""
    if not settings.nats_servers:
        return None, None
    verdeler = Verdeler()
    return verdeler, NatsLuisteraar(settings.nats_servers, verdeler)


def bootstrap(
    settings: PortalSettings,
    *,
    apis: Apis | None = None,
    inloggen: Inloggen | None = None,
    aanbieder: Aanbieder | None = None,
    session_key: bytes | None = None,
    klok: Callable[[], datetime] | None = None,
    live: tuple[Verdeler | None, Luisteraar | None] | None = None,
) -> FastAPI:
    """The portal app; tests pass ``apis``, ``inloggen``, ``aanbieder``, ``session_key``,
    ``klok`` or ``live`` (the fan-out and what feeds it)."""
    key = session_key or load_or_create_secret(settings.session_key_path)
    verdeler, luisteraar = live if live is not None else live_voor(settings)
    return create_portal_app(
        apis or HttpApis(service_urls(settings), bron_adres=settings.portal_source_address),
        inloggen if inloggen is not None else inloggen_voor(settings),
        SessieSleutel(key, settings.portal_session_hours * 3600),
        secure_cookie=settings.portal_behind_tls,
        vertrouwde_proxies=settings.portal_trusted_proxies,
        klok=klok,
        aanbieder=aanbieder if aanbieder is not None else aanbieder_voor(settings),
        live=verdeler,
        luisteraar=luisteraar,
    )
