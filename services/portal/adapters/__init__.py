"""The portal's adapters: the services' HTTP APIs (one module per service) and signing in.

``HttpApis`` is the ``Apis`` port over HTTP: one class made of each service's calls
(``intake.py``, ``scheduling.py``, …) on the shared ``HttpBasis`` (``http.py``). A journey that
needs another call adds it to its service's module; a new service adds a module and a base
class here.
"""

from __future__ import annotations

from services.portal.adapters.approval import ApprovalHttp
from services.portal.adapters.assessment import AssessmentHttp
from services.portal.adapters.http import HttpBasis, uitkomst_van
from services.portal.adapters.inloggen import DEMO_PERSONEN, EmbeddedInloggen
from services.portal.adapters.intake import IntakeHttp
from services.portal.adapters.notifications import NotificationsHttp
from services.portal.adapters.scheduling import SchedulingHttp


class HttpApis(
    IntakeHttp, SchedulingHttp, AssessmentHttp, ApprovalHttp, NotificationsHttp, HttpBasis
):
    """The services' APIs over HTTP, as one person (their token) or anonymously."""


__all__ = ["DEMO_PERSONEN", "EmbeddedInloggen", "HttpApis", "HttpBasis", "uitkomst_van"]
