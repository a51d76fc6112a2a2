"""Assessment's read model: the tables that find a report or a measure from its id alone, and the
register of the dossiers intake announced.

- ``RAPPORT``: ``rapporten`` (rapport_id → aanvraag_id, one report per dossier by a unique key) and
  ``maatregelen`` (maatregel_id → rapport_id, aanvraag_id), a function of the ``Rapport``
  aggregate (``shared.platform.projection``): written with the report's events by the side writes
  the use cases are given, rebuilt from the log by ``weerbaar replay --projection assessment``.
  Two forms of the application's ``ReadModel``: ``ReadTables`` (the tables in PostgreSQL, written
  in the events' transaction) and ``MemoryReadTables`` (the same rows on the in-memory store,
  written under its recorder's lock, with the same unique keys); the composition root picks the
  one of the application's store.
- the dossier register (``shared.platform.register``, kept by its own consumer), in PostgreSQL or,
  for use-case tests, in memory.
"""

from __future__ import annotations

from uuid import UUID

from psycopg.sql import SQL, Identifier

from services.assessment.domain import Rapport, RapportOpgesteld, project_rapport
from shared.platform.consumer import Subscription
from shared.platform.eventstore import ServiceApplication
from shared.platform.memory import MemoryDossierRegister
from shared.platform.ports import DossierRegister, DuplicateKey, MemoryWrite, Statement
from shared.platform.projection import AggregateProjection, Row, Table
from shared.platform.register import SUBJECTS
from shared.platform.register import DossierRegister as PostgresDossierRegister

RAPPORTEN = Identifier("assessment", "rapporten")
MAATREGELEN = Identifier("assessment", "maatregelen")

#: The unique key a second report for one dossier violates: the name PostgreSQL gives the UNIQUE
#: of ``rapporten.aanvraag_id`` (and the in-memory tables give it too).
EEN_RAPPORT_PER_DOSSIER = "rapporten_aanvraag_id_key"


def _rapport_rows(rapport: Rapport) -> dict[str, list[tuple[object, ...]]]:
    """What the read tables hold for one report: the report, and every measure of any version."""
    return {
        "rapporten": [(rapport.id, rapport.aanvraag_id)],
        "maatregelen": [
            (maatregel_id, rapport.id, rapport.aanvraag_id)
            for maatregel_id in sorted(rapport.maatregel_ids())
        ],
    }


#: The read tables: dossier → its only report (the UNIQUE keeps it the only one) and measure →
#: report. Rebuilt by ``weerbaar replay --projection assessment``.
RAPPORT = AggregateProjection[Rapport](
    service="assessment",
    tables=(
        Table(
            "rapporten",
            columns=("rapport_id", "aanvraag_id"),
            key=("rapport_id",),
            owner="rapport_id",
            ddl=(
                "CREATE TABLE IF NOT EXISTS {schema}.rapporten ("
                " rapport_id uuid PRIMARY KEY, aanvraag_id uuid NOT NULL UNIQUE)",
            ),
        ),
        Table(
            "maatregelen",
            columns=("maatregel_id", "rapport_id", "aanvraag_id"),
            key=("maatregel_id",),
            owner="rapport_id",
            ddl=(
                "CREATE TABLE IF NOT EXISTS {schema}.maatregelen ("
                " maatregel_id uuid PRIMARY KEY, rapport_id uuid NOT NULL,"
                " aanvraag_id uuid NOT NULL)",
            ),
        ),
    ),
    started_by=(RapportOpgesteld,),
    fold=project_rapport,
    rows=_rapport_rows,
    description="reports and their measures",
)


class ReadTables:
    """``RAPPORT``'s live tables in the application's database: their DDL, the statements of a
    report's change and the queries that find a report or measure by id (the application's
    ``ReadModel``)."""

    #: The constraint a second report for one dossier violates (``DuplicateKey``).
    rapport_per_dossier = EEN_RAPPORT_PER_DOSSIER

    def __init__(self, app: ServiceApplication) -> None:
        self.app = app

    @property
    def ddl(self) -> tuple[str, ...]:
        """The tables (``{schema}`` is the service's schema)."""
        return RAPPORT.ddl

    def statements(self, before: Rapport | None, after: Rapport) -> list[Statement]:
        """What brings the tables from the report's rows before a change to those after it."""
        return RAPPORT.statements(before, after)

    def rapport_van(self, aanvraag_id: UUID) -> UUID | None:
        """The id of the dossier's report, or None."""
        with self.app.datastore.get_connection() as conn:
            row = conn.execute(
                SQL("SELECT rapport_id FROM {} WHERE aanvraag_id = %s").format(RAPPORTEN),
                (aanvraag_id,),
            ).fetchone()
        return None if row is None else UUID(str(row["rapport_id"]))

    def maatregel_plaats(self, maatregel_id: UUID) -> tuple[UUID, UUID] | None:
        """(rapport_id, aanvraag_id) of a measure, or None when unknown."""
        with self.app.datastore.get_connection() as conn:
            row = conn.execute(
                SQL("SELECT rapport_id, aanvraag_id FROM {} WHERE maatregel_id = %s").format(
                    MAATREGELEN
                ),
                (maatregel_id,),
            ).fetchone()
        if row is None:
            return None
        return UUID(str(row["rapport_id"])), UUID(str(row["aanvraag_id"]))

    def dossier_van_rapport(self, rapport_id: UUID) -> UUID | None:
        """The aanvraag_id of a report, or None."""
        with self.app.datastore.get_connection() as conn:
            row = conn.execute(
                SQL("SELECT aanvraag_id FROM {} WHERE rapport_id = %s").format(RAPPORTEN),
                (rapport_id,),
            ).fetchone()
        return None if row is None else UUID(str(row["aanvraag_id"]))


class MemoryReadTables:
    """``RAPPORT``'s rows on the in-memory store, which has no tables: per table, its rows by
    their key (the application's ``ReadModel``, for use-case tests).

    A report's change writes them as PostgreSQL's statements do (the rows that changed replaced
    by their key, the rows that went deleted), with one ``MemoryWrite`` checked and applied under
    the recorder's lock with the events; a second report for a dossier is refused as the UNIQUE
    of ``rapporten.aanvraag_id`` refuses it, ``DuplicateKey`` with PostgreSQL's constraint name.
    """

    #: The constraint a second report for one dossier violates (``DuplicateKey``).
    rapport_per_dossier = EEN_RAPPORT_PER_DOSSIER

    def __init__(self) -> None:
        self.rows: dict[str, dict[Row, Row]] = {table.name: {} for table in RAPPORT.tables}

    @property
    def ddl(self) -> tuple[str, ...]:
        """No tables to create."""
        return ()

    def statements(self, before: Rapport | None, after: Rapport) -> list[MemoryWrite]:
        """The write that brings the tables from the report's rows before a change to those after
        it (none when they stay the same)."""
        old, new = RAPPORT.keyed(before), RAPPORT.keyed(after)
        if old == new:
            return []

        def check() -> None:
            for rapport_id, aanvraag_id in new["rapporten"].values():
                taken = self.rapport_van(aanvraag_id)
                if taken is not None and taken != rapport_id:
                    raise DuplicateKey(EEN_RAPPORT_PER_DOSSIER)

        def apply() -> None:
            for name, rows in self.rows.items():
                for key in old[name].keys() - new[name].keys():
                    rows.pop(key, None)
                rows.update(new[name])

        return [MemoryWrite(apply=apply, check=check)]

    def rapport_van(self, aanvraag_id: UUID) -> UUID | None:
        """The id of the dossier's report, or None."""
        rapporten = tuple(self.rows["rapporten"].values())  # a snapshot: writes come meanwhile
        return next((row[0] for row in rapporten if row[1] == aanvraag_id), None)

    def maatregel_plaats(self, maatregel_id: UUID) -> tuple[UUID, UUID] | None:
        """(rapport_id, aanvraag_id) of a measure, or None when unknown."""
        row = self.rows["maatregelen"].get((maatregel_id,))
        return None if row is None else (row[1], row[2])

    def dossier_van_rapport(self, rapport_id: UUID) -> UUID | None:
        """The aanvraag_id of a report, or None."""
        row = self.rows["rapporten"].get((rapport_id,))
        return None if row is None else row[1]


def dossier_register(app: ServiceApplication) -> DossierRegister:
    """The register on the application's store (its tables are in the application's DDL)."""
    if app.in_memory:
        return MemoryDossierRegister()
    return PostgresDossierRegister(app)


def register_subscription(register: DossierRegister) -> Subscription:
    """The consumer that keeps the register (purpose ``register``), whichever its form."""
    return Subscription(
        purpose="register",
        subjects=list(SUBJECTS),
        handler=register.handle,
        description="Keeps the register of dossiers this service may act on.",
    )
