"""The portal's use cases: what each page asks of the services' APIs and what it shows.

The portal owns no events and no data besides the signed-in session. Every page is made from
the services' public HTTP APIs through the ``Apis`` port (``ports``), called with the signed-in
person's own token, so it can never show what the API would refuse that person. Each journey
has its own module (``aanmelden``, ``secretariaat``, …) over the shared outcomes
(``uitkomsten``); nothing here knows HTTP, HTML or a service's code.
"""

from services.portal.application.ports import (
    HERKOMST,
    Aanbieder,
    AanbiederOnbereikbaar,
    Afmelding,
    Apis,
    ApprovalApi,
    AssessmentApi,
    Doorverwijzing,
    Ingelogd,
    Inloggen,
    IntakeApi,
    NotificationsApi,
    Persoon,
    SchedulingApi,
)
from services.portal.application.uitkomsten import (
    Bestand,
    Conflict,
    Gelukt,
    Geweigerd,
    NietGevonden,
    NietIngelogd,
    Onbereikbaar,
    Ongeldig,
    TeVaak,
    Uitkomst,
    VeldFout,
)

__all__ = [
    "HERKOMST",
    "Aanbieder",
    "AanbiederOnbereikbaar",
    "Afmelding",
    "Apis",
    "ApprovalApi",
    "AssessmentApi",
    "Bestand",
    "Conflict",
    "Doorverwijzing",
    "Gelukt",
    "Geweigerd",
    "Ingelogd",
    "Inloggen",
    "IntakeApi",
    "NietGevonden",
    "NietIngelogd",
    "NotificationsApi",
    "Onbereikbaar",
    "Ongeldig",
    "Persoon",
    "SchedulingApi",
    "TeVaak",
    "Uitkomst",
    "VeldFout",
]
