"""Approval's read model: the register of the dossiers intake announced (may a decision still be
taken on this dossier, and by which organisation?), in PostgreSQL or, for use-case tests, in memory.

The register's rows, its consumer and its rebuild are the platform's (``shared.platform.register``,
shared with assessment); approval only says which form it keeps and declares its subscription.
"""

from __future__ import annotations

from shared.platform.consumer import Subscription
from shared.platform.eventstore import ServiceApplication
from shared.platform.memory import MemoryDossierRegister
from shared.platform.ports import DossierRegister
from shared.platform.register import SUBJECTS, register_ddl
from shared.platform.register import DossierRegister as PostgresDossierRegister


def dossier_register(app: ServiceApplication) -> DossierRegister:
    """The register on the application's store (its tables created when missing)."""
    if app.in_memory:
        return MemoryDossierRegister()
    app.create_tables(register_ddl())
    return PostgresDossierRegister(app)


def register_subscription(register: DossierRegister) -> Subscription:
    """The subscription that keeps the register (purpose ``register``)."""
    return Subscription(
        purpose="register",
        subjects=list(SUBJECTS),
        handler=register.handle,
        description="Keeps the register of dossiers this service may act on.",
    )
