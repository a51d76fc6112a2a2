"""Assessment's API as the portal calls it."""

from __future__ import annotations

from services.portal.adapters.http import HttpBasis


class AssessmentHttp(HttpBasis):
    """Assessment: conversations, the woningscan, the report and its versions."""
