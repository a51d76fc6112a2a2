"""Intake's reactions to other services' events, declared in one list (``policies``).

- the closing policy: assessment's reports and carried-out measures and approval's approval
  (``UITVOERING_SUBJECTS``) → once every measure of the approved report is carried out, the
  dossier is closed (DossierAfgesloten, reason ``alle_maatregelen_uitgevoerd``).

Each handler turns a delivery into one use case of the application. Every public event also
feeds the dossier projection, a read model (``projections``), whose subscription is declared
there.
"""

from __future__ import annotations

import contextlib

from services.intake.application import Intake
from services.intake.projections.dossier import UITVOERING_SUBJECTS
from shared.platform.consumer import Delivery, Subscription
from shared.platform.errors import Conflict
from shared.platform.model import Clock
from shared.platform.wiring import delivery_context

SERVICE = "intake"


class SluitAf:
    """Closes a dossier once every measure of the approved report is carried out.

    The events it needs are kept by the read model (``Intake.noteer_uitvoering``: once per event
    id); closing an already closed dossier records nothing, so the effect happens once however
    often, and by whichever replica, the last MaatregelUitgevoerd is handled. A withdrawn dossier
    is not closed (Conflict): nothing to do.
    """

    def __init__(self, app: Intake, clock: Clock) -> None:
        self.app = app
        self.clock = clock

    def __call__(self, delivery: Delivery) -> None:
        """Handle one delivery."""
        aanvraag_id = delivery.event.aanvraag_id
        assert aanvraag_id is not None
        totaal, uitgevoerd = self.app.noteer_uitvoering(delivery)
        if not totaal or uitgevoerd < totaal:
            return
        ctx = delivery_context(delivery, self.clock, SERVICE)
        with contextlib.suppress(Conflict):
            self.app.sluit_dossier_af(
                aanvraag_id, "alle_maatregelen_uitgevoerd", None, totaal, uitgevoerd, ctx
            )


def policies(app: Intake, clock: Clock) -> list[Subscription]:
    """Intake's subscriptions to other services' events (the dossier projection's aside)."""
    return [
        Subscription(
            purpose="afsluiting",
            subjects=list(UITVOERING_SUBJECTS),
            handler=SluitAf(app, clock),
            description="Closes the dossier when every measure of the approved report is done.",
        ),
    ]
