"""Assessment's application (its use cases arrive with the process issue)."""

from __future__ import annotations

from shared.eventstore import ServiceApplication
from shared.register import register_ddl


class Assessment(ServiceApplication):
    """The assessment service's application."""

    service = "assessment"
    ddl = register_ddl()
