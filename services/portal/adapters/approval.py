"""Approval's API as the portal calls it."""

from __future__ import annotations

from services.portal.adapters.http import HttpBasis


class ApprovalHttp(HttpBasis):
    """Approval: the review queue, the decisions, consent and release."""
