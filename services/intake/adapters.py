"""Intake's own reach beyond its store: the verification of every service's event log against its
hash chain and signed checkpoints, which the audit export states (``projections.audit``)."""

from __future__ import annotations

import psycopg

from services.intake.projections.audit import Verificatie
from shared.platform.chain import verify
from shared.platform.settings import SERVICES, Settings
from shared.platform.signing import load_public_keys


def verify_chains(settings: Settings) -> Verificatie:
    """Verify every service's event log against its hash chain and signed checkpoints."""
    keys = load_public_keys(settings.audit_key_path.parent)
    diensten: dict[str, str] = {}
    in_orde = True
    try:
        for service in SERVICES:
            report = verify(service, settings.database_url, keys)
            diensten[service] = report.summary()
            in_orde = in_orde and report.ok
    except psycopg.Error as exc:
        return Verificatie(
            uitgevoerd=False,
            in_orde=None,
            toelichting=f"niet geverifieerd: de logs zijn niet leesbaar ({type(exc).__name__})",
        )
    toelichting = "in orde" if in_orde else "NIET in orde: zie de diensten"
    if not keys:
        toelichting += "; geen publieke sleutels gevonden, handtekeningen niet gecontroleerd"
    return Verificatie(uitgevoerd=True, in_orde=in_orde, diensten=diensten, toelichting=toelichting)
