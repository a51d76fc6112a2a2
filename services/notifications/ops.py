"""Notifications' commands (``python -m services.notifications.ops``, run by ``tools/cli.py``).

``weerbaar mail resend <notificatie_id>``: send an e-mail that failed for good again.

The same use case as ``POST /notificaties/{id}/opnieuw``: it records NotificatieOpnieuwGepland
(the operator as actor, role ``beheerder``) and the notification is due at once, on a fresh
round of ``WEERBAAR_MAIL_RETRY_SCHEDULE_S``; the running sender sends it with its own Message-ID.
It works on the database directly, like ``weerbaar forget``: no service token is needed on the
operator's machine, and the notifications process need not answer HTTP for it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from services.notifications import projections
from services.notifications.adapters.webhook_store import sql_webhook_store
from services.notifications.application import Notifications
from services.notifications.domain.notificatie import NotificatieBezorging
from shared.platform.access import configure_pseudonyms, opaque_actor_id
from shared.platform.errors import Conflict, NietGevonden
from shared.platform.model import Context, utcnow
from shared.platform.settings import Settings, load_settings

ROLE = "beheerder"
"""The role an operator acts under on the command line (in the event's ``actor_role``)."""


def resend(
    settings: Settings,
    notificatie_id: UUID,
    door: str,
    *,
    now: datetime | None = None,
    app: Notifications | None = None,
) -> NotificatieBezorging:
    """Plan the failed notification again; NietGevonden or Conflict (not failed) otherwise."""
    if app is None:
        own = Notifications(
            settings.eventsourcing_env("notifications"),
            tables=projections.sql_tables,
            webhooks=sql_webhook_store,
        )
        try:
            return resend(settings, notificatie_id, door, now=now, app=own)
        finally:
            own.close()
    configure_pseudonyms(settings.pseudonym_key_path)
    ctx = Context(now=now or utcnow(), actor_id=opaque_actor_id(door), actor_role=ROLE)
    app.opnieuw(notificatie_id, ctx)
    return app.bezorging(notificatie_id)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``weerbaar mail resend``."""
    parser = argparse.ArgumentParser(
        prog="weerbaar mail resend",
        description="Send an e-mail notification that failed for good again (same Message-ID).",
    )
    parser.add_argument("notificatie_id", type=UUID, help="from GET /notificaties?status=mislukt")
    parser.add_argument(
        "--door",
        default=os.environ.get("USER") or ROLE,
        help="who asked: an opaque id (stored as a pseudonym)",
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    try:
        row = resend(settings, args.notificatie_id, args.door)
    except NietGevonden:
        print(f"weerbaar mail resend: no notification {args.notificatie_id}", file=sys.stderr)
        return 1
    except Conflict:
        print(
            f"weerbaar mail resend: notification {args.notificatie_id} has not failed;"
            " only a failed one can be sent again",
            file=sys.stderr,
        )
        return 1
    print(
        f"weerbaar mail resend: notification {row.notificatie_id} ({row.soort}) is due again;"
        f" last reason {row.reden_code or 'unknown'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
