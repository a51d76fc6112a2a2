"""Approval's application (its use cases arrive with the process issue)."""

from __future__ import annotations

from shared.eventstore import ServiceApplication
from shared.register import register_ddl


class Approval(ServiceApplication):
    """The approval service's application."""

    service = "approval"
    ddl = register_ddl()
