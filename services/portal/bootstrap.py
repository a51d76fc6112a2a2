"""The portal's composition root: its settings, the APIs it calls, how people sign in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from fastapi import FastAPI

from services.portal.adapters import EmbeddedInloggen, HttpApis
from services.portal.api import SessieSleutel, create_portal_app
from services.portal.application import Apis, Inloggen
from shared.platform.auth import load_or_create_secret
from shared.platform.settings import AuthMode, PortalSettings


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
    """How people sign in: the demo people in embedded mode; none otherwise (OIDC to come)."""
    if settings.auth_mode is AuthMode.EMBEDDED:
        return EmbeddedInloggen(
            load_or_create_secret(settings.secret_file), settings.jwt_issuer, settings.jwt_audience
        )
    return None


def bootstrap(
    settings: PortalSettings,
    *,
    apis: Apis | None = None,
    inloggen: Inloggen | None = None,
    session_key: bytes | None = None,
    klok: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The portal app; tests pass ``apis``, ``inloggen``, ``session_key`` or ``klok``."""
    key = session_key or load_or_create_secret(settings.session_key_path)
    return create_portal_app(
        apis or HttpApis(service_urls(settings), bron_adres=settings.portal_source_address),
        inloggen if inloggen is not None else inloggen_voor(settings),
        SessieSleutel(key, settings.portal_session_hours * 3600),
        secure_cookie=settings.portal_behind_tls,
        vertrouwde_proxies=settings.portal_trusted_proxies,
        klok=klok,
    )
