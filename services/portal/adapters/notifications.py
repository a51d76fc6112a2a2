"""Notifications's API as the portal calls it."""

from __future__ import annotations

from services.portal.adapters.http import HttpBasis


class NotificationsHttp(HttpBasis):
    """Notifications: an organisation's webhook subscriptions."""
