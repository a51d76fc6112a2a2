"""The portal's HTTP side (routes, templates, static files, session, CSRF, headers)."""

from services.portal.api.pages import create_portal_app
from services.portal.api.session import SessieSleutel

__all__ = ["SessieSleutel", "create_portal_app"]
