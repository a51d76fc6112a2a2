"""Intake's read model: the dossier projection.

- ``dossier``: its tables (``dossier_events``, the audit trail; ``dossiers``, the folded views;
  ``uitvoering_events``, what the closing policy needs), the view models, the typed fold (one
  handler per public event), its SQL and queries and its consumer (``subscription``);
- ``read_model``: the read model as the use cases need it (the application's ``ReadModel``): the
  access index (``dossier_access``), the closing policy's events and a destruction's deletes, in
  PostgreSQL (``SqlReadModel``) and on the in-memory store (``MemoryReadModel``);
- ``rebuild``: its rebuild from the event logs or the stream (``weerbaar replay``);
- ``audit``: the audit export, a query of the audit trail, and its formats.
"""
