"""The portal's HTTP side: one router per journey (``aanmelden``, ``inloggen``,
``secretariaat``, …) registered in ``pages.JOURNEYS``; ``web`` what they share (templates,
session, CSRF, refusals); ``session`` the cookie."""

from services.portal.api.pages import create_portal_app
from services.portal.api.session import SessieSleutel

__all__ = ["SessieSleutel", "create_portal_app"]
