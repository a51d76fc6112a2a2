"""Intake's commands, each run as ``python -m services.intake.ops.<name>`` (by ``tools/cli.py`` and
``tools/backup.py``): ``forget`` (crypto-shredding, and its re-application after a restore, which
the composition root also runs at every start), ``retention`` (the retention periods with legal
holds) and ``audit_export`` (the audit export on the database directly)."""
