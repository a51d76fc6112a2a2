"""Intake's read model: the dossier projection.

- ``dossier``: its tables (``dossier_events``, the audit trail; ``dossiers``, the folded views;
  ``uitvoering_events``, what the closing policy needs), the view models, the typed fold (one
  handler per public event), its SQL and queries, its consumer (``subscription``) and the tables
  as the use cases need them (``ReadTables``);
- ``rebuild``: its rebuild from the event logs or the stream (``weerbaar replay``);
- ``audit``: the audit export, a query of the audit trail, and its formats.
"""
