"""Scheduling's domain: the planning of a dossier — contact, appointments and toelichting.

The appointments live inside the Planning aggregate (id = aanvraag_id), not in an aggregate of
their own. The rules that matter span a dossier's appointments: no second active conversation of
a kind, a toelichting only for an open request, contact before any appointment, nothing after
withdrawal or closing. In one aggregate these hold under concurrent requests by the event store's
optimistic concurrency alone (two secretaries planning the same conversation at once: one wins,
the other gets 409 on retry), with no cross-aggregate locking or process manager. A dossier has a
handful of appointments, so the aggregate stays small and cheap to rebuild.

Every function here is pure: it takes the current Planning and returns the events a command
records (None or an empty list when the planning already is in the asked-for state), or raises
Conflict (409, step out of order), Ongeldig (422, input that breaks a rule) or NietGevonden.

When an appointment may lie: the whole of it, from its start to its end (start + duration), on
one working day of the calendar and within its working hours
(``services.scheduling.domain.calendar``; by default Monday to Friday 08:00–18:00 Europe/Amsterdam,
the Algemene termijnenwet's feestdagen excluded). Nobody is expected to sit in a conversation after
hours because it started before closing. A plan starts in the future. An appointment that already
took place but was never entered (made by phone, moved on the day) is recorded afterwards with
``achteraf``: then its start must have passed, so a mistyped date is never silently taken for
either. A conversation is recorded as held only once its planned start has passed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Final, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from services.scheduling.domain.calendar import WorkingDayCalendar
from shared.contracts.envelope import OPAQUE_ID_PATTERN, UtcDatetime
from shared.platform.errors import Conflict, FieldError, NietGevonden, Ongeldig
from shared.platform.model import Aggregate, Context, DomainEvent, first_event, next_event

Soort = Literal["gesprek_werkgever", "gesprek_bestuurder", "toelichting"]
Vorm = Literal["digitaal", "thuis"]
Partij = Literal["bestuurder", "werkgever"]
AfspraakStatus = Literal["gepland", "gevoerd", "geannuleerd"]
ToelichtingStatus = Literal["open", "gepland", "gevoerd"]
StopReden = Literal["ingetrokken", "afgesloten"]
ContactStatus = Literal["open", "opgenomen", "verstreken", "gestopt"]

#: Where each kind of appointment takes place (domain.md: the werkgever conversation is digital,
#: the bestuurder conversation is at home and includes the woningscan).
VORM: Final[dict[Soort, Vorm]] = {
    "gesprek_werkgever": "digitaal",
    "gesprek_bestuurder": "thuis",
    "toelichting": "digitaal",
}
GESPREK_MET: Final[dict[Soort, Partij]] = {
    "gesprek_werkgever": "werkgever",
    "gesprek_bestuurder": "bestuurder",
}
MIN_DUUR: Final = 15
MAX_DUUR: Final = 480
# https only, and no user info before the host: a link must not carry credentials.
VIDEO_LINK_PATTERN: Final = r"^https://[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?([/?#][^\s]*)?$"


# --- commands ------------------------------------------------------------------------------------


class AfspraakVerzoek(BaseModel):
    """Command: plan an appointment for a dossier."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    soort: Soort
    gepland_op: UtcDatetime = Field(
        description="Start; aware, in the future (in the past with `achteraf`). The whole "
        "appointment lies on a working day within working hours."
    )
    duur_minuten: int = Field(ge=MIN_DUUR, le=MAX_DUUR)
    adviseur_id: str = Field(
        pattern=OPAQUE_ID_PATTERN, description="Opaque id of the adviseur who holds it."
    )
    video_link: str | None = Field(
        default=None,
        max_length=2000,
        pattern=VIDEO_LINK_PATTERN,
        description="https link; required for digitaal appointments, not allowed at home.",
    )
    partij: Partij | None = Field(
        default=None,
        description="toelichting only: the party whose request it serves; omitted: every "
        "party with an open request.",
    )
    achteraf: StrictBool = Field(
        default=False,
        description="The appointment already took place and is recorded afterwards: its start "
        "must have passed (a plan, the default, starts in the future).",
    )


# --- events --------------------------------------------------------------------------------------


class PlanningGeopend(DomainEvent):
    """A new aanvraag arrived; the contact deadline runs from here."""

    ingediend_op: datetime
    deadline: datetime
    werkdagen: int
    kalender: str


class ContactOpgenomen(DomainEvent):
    """The secretariat made contact."""

    contact_op: datetime
    binnen_termijn: bool


class ContacttermijnVerstreken(DomainEvent):
    """The deadline passed without contact (recorded once, by whichever checker saw it first)."""

    deadline: datetime
    vastgesteld_op: datetime


class PlanningGestopt(DomainEvent):
    """The aanvraag was withdrawn or the dossier closed: nothing more is planned or escalated."""

    # Events stored before closing stopped the planning carry no reason: they were withdrawals.
    reden: StopReden = "ingetrokken"


class AfspraakGepland(DomainEvent):
    """An appointment was planned (the video link stays in this service)."""

    afspraak_id: UUID
    soort: Soort
    vorm: Vorm
    gepland_op: datetime
    duur_minuten: int
    adviseur_id: str
    video_link: str | None
    partijen: tuple[Partij, ...]
    # Recorded afterwards: it had taken place already (events stored before this was known: no).
    achteraf: bool = False


class AfspraakVerzet(DomainEvent):
    """An appointment was moved."""

    afspraak_id: UUID
    soort: Soort
    gepland_op: datetime
    vorige_gepland_op: datetime
    duur_minuten: int
    # Recorded afterwards: it took place at the new time already.
    achteraf: bool = False


class AfspraakGeannuleerd(DomainEvent):
    """An appointment was cancelled."""

    afspraak_id: UUID
    soort: Soort


class GesprekGevoerd(DomainEvent):
    """A planned appointment took place."""

    afspraak_id: UUID
    soort: Soort
    gevoerd_op: datetime


class WoningscanUitgevoerd(DomainEvent):
    """The woningscan was carried out (during or after the conversation at home)."""

    afspraak_id: UUID
    uitgevoerd_op: datetime


class ToelichtingAangevraagd(DomainEvent):
    """A party asked for a toelichting with the adviseur."""

    partij: Partij
    aangevraagd_op: datetime


class RapportOntvangen(DomainEvent):
    """A party received the approved report (noted from approval's events); from now on it may
    ask for a toelichting. Private: approval already announced it."""

    partij: Partij
    rapport_id: UUID
    versie: int


# --- state ---------------------------------------------------------------------------------------


class Afspraak(BaseModel):
    """One appointment of the planning."""

    model_config = ConfigDict(frozen=True)

    afspraak_id: UUID
    soort: Soort
    vorm: Vorm
    gepland_op: datetime
    duur_minuten: int
    adviseur_id: str
    video_link: str | None
    partijen: tuple[Partij, ...]
    status: AfspraakStatus = "gepland"
    gevoerd_op: datetime | None = None
    woningscan_uitgevoerd_op: datetime | None = None


class Toelichting(BaseModel):
    """A party's request for a toelichting and the appointment that serves it, if any."""

    model_config = ConfigDict(frozen=True)

    partij: Partij
    aangevraagd_op: datetime
    afspraak_id: UUID | None = None


class Planning(Aggregate):
    """The planning of one dossier (id = aanvraag_id)."""

    deadline: datetime
    contact_op: datetime | None = None
    verstreken: bool = False
    gestopt: bool = False
    gestopt_reden: StopReden | None = None
    afspraken: tuple[Afspraak, ...] = ()
    rapport_ontvangen: frozenset[Partij] = frozenset()
    toelichtingen: tuple[Toelichting, ...] = ()

    @property
    def contact_status(self) -> ContactStatus:
        """Where the contact stands."""
        if self.gestopt:
            return "gestopt"
        if self.contact_op is not None:
            return "opgenomen"
        return "verstreken" if self.verstreken else "open"

    def afspraak(self, afspraak_id: UUID) -> Afspraak:
        """One appointment; 404 when the planning has no such appointment."""
        for afspraak in self.afspraken:
            if afspraak.afspraak_id == afspraak_id:
                return afspraak
        raise NietGevonden("Onbekende afspraak.")

    def actief(self, soort: Soort) -> Afspraak | None:
        """The appointment of this kind that is planned or was held, if any."""
        for afspraak in self.afspraken:
            if afspraak.soort == soort and afspraak.status != "geannuleerd":
                return afspraak
        return None

    def toelichting_status(self, toelichting: Toelichting) -> ToelichtingStatus:
        """Whether a request still waits for an appointment, has one, or was served."""
        if toelichting.afspraak_id is None:
            return "open"
        return (
            "gevoerd" if self.afspraak(toelichting.afspraak_id).status == "gevoerd" else "gepland"
        )

    def lopende_toelichting(self, partij: Partij) -> Toelichting | None:
        """The party's request that is not yet served (open or planned), if any."""
        for toelichting in self.toelichtingen:
            if toelichting.partij == partij and self.toelichting_status(toelichting) != "gevoerd":
                return toelichting
        return None


# --- decisions -----------------------------------------------------------------------------------


def _vereis_open(planning: Planning) -> None:
    if not planning.gestopt:
        return
    if planning.gestopt_reden == "afgesloten":
        raise Conflict(
            "Het dossier is afgesloten; er wordt niets meer gepland.", code="dossier_afgesloten"
        )
    raise Conflict(
        "De aanvraag is ingetrokken; er wordt niets meer gepland.", code="dossier_ingetrokken"
    )


def _tijdstip(
    gepland_op: datetime,
    duur_minuten: int,
    achteraf: bool,
    kalender: WorkingDayCalendar,
    ctx: Context,
) -> list[FieldError]:
    """Whether an appointment may lie at this moment: a plan in the future, one recorded
    afterwards in the past; the whole of it on a working day within working hours."""
    errors: list[FieldError] = []
    if achteraf and gepland_op > ctx.now:
        errors.append({"field": "body.gepland_op", "rule": "must_be_in_past"})
    if not achteraf and gepland_op <= ctx.now:
        errors.append({"field": "body.gepland_op", "rule": "must_be_in_future"})
    if not MIN_DUUR <= duur_minuten <= MAX_DUUR:
        return errors  # the duration's own rule is reported by the caller
    einde = gepland_op + timedelta(minutes=duur_minuten)
    try:
        werkdag = kalender.is_working_day(kalender.local(gepland_op).date())
        binnen = kalender.within_working_hours(gepland_op, einde)
    except ValueError:  # a year the calendar does not cover: nobody plans that far out
        errors.append({"field": "body.gepland_op", "rule": "outside_calendar_years"})
        return errors
    if not werkdag:
        errors.append({"field": "body.gepland_op", "rule": "must_be_on_working_day"})
    elif not binnen:
        errors.append({"field": "body.gepland_op", "rule": "must_be_within_working_hours"})
    return errors


_WERKTIJD_REGELS: Final = frozenset({"must_be_on_working_day", "must_be_within_working_hours"})


def _weiger(errors: list[FieldError], kalender: WorkingDayCalendar) -> Ongeldig:
    """The 422 for these errors; it names the working hours when those were broken (the
    configured rule, never the submitted value)."""
    if any(e["rule"] in _WERKTIJD_REGELS for e in errors):
        return Ongeldig(
            errors,
            "Een afspraak ligt van begin tot eind op een werkdag binnen de werktijden "
            f"({kalender.hours}, {kalender.profile.timezone}; feestdagen uitgezonderd).",
        )
    return Ongeldig(errors)


def open_planning(
    aanvraag_id: UUID,
    ingediend_op: datetime,
    deadline: datetime,
    werkdagen: int,
    kalender: str,
    ctx: Context,
) -> PlanningGeopend:
    """Open the planning of a new aanvraag with its contact deadline."""
    return first_event(
        PlanningGeopend,
        aanvraag_id,
        ctx,
        ingediend_op=ingediend_op,
        deadline=deadline,
        werkdagen=werkdagen,
        kalender=kalender,
    )


def neem_contact_op(planning: Planning, ctx: Context) -> ContactOpgenomen | None:
    """Record contact; None when it was already recorded (a retried request has one effect)."""
    _vereis_open(planning)
    if planning.contact_op is not None:
        return None
    return next_event(
        ContactOpgenomen,
        planning,
        ctx,
        contact_op=ctx.now,
        binnen_termijn=ctx.now < planning.deadline,
    )


def stel_verstrijken_vast(planning: Planning, ctx: Context) -> ContacttermijnVerstreken | None:
    """The deadline passed without contact: escalate once; None when there is nothing to do."""
    if planning.contact_status != "open" or ctx.now < planning.deadline:
        return None
    return next_event(
        ContacttermijnVerstreken,
        planning,
        ctx,
        deadline=planning.deadline,
        vastgesteld_op=ctx.now,
    )


def stop(
    planning: Planning, ctx: Context, reden: StopReden = "ingetrokken"
) -> PlanningGestopt | None:
    """Stop the planning of a withdrawn aanvraag or a closed dossier (the first reason stays)."""
    if planning.gestopt:
        return None
    return next_event(PlanningGestopt, planning, ctx, reden=reden)


def annuleer_na_stop(planning: Planning, ctx: Context) -> list[AfspraakGeannuleerd]:
    """Cancel every appointment still planned on a stopped planning: nobody should turn up."""
    assert planning.gestopt, "only a stopped planning cancels its appointments by itself"
    events: list[AfspraakGeannuleerd] = []
    current = planning
    for afspraak in planning.afspraken:
        if afspraak.status != "gepland":
            continue
        event = next_event(
            AfspraakGeannuleerd,
            current,
            ctx,
            afspraak_id=afspraak.afspraak_id,
            soort=afspraak.soort,
        )
        events.append(event)
        current = _fold(current, event)
    return events


def plan_afspraak(
    planning: Planning,
    verzoek: AfspraakVerzoek,
    afspraak_id: UUID,
    ctx: Context,
    kalender: WorkingDayCalendar,
) -> AfspraakGepland:
    """Plan an appointment (or record one afterwards): input rules first (422), then the order of
    the process (409)."""
    vorm = VORM[verzoek.soort]
    errors = _tijdstip(verzoek.gepland_op, verzoek.duur_minuten, verzoek.achteraf, kalender, ctx)
    if vorm == "digitaal" and verzoek.video_link is None:
        errors.append({"field": "body.video_link", "rule": "required_for_digitaal"})
    if vorm == "thuis" and verzoek.video_link is not None:
        errors.append({"field": "body.video_link", "rule": "not_allowed_for_thuis"})
    if verzoek.partij is not None and verzoek.soort != "toelichting":
        errors.append({"field": "body.partij", "rule": "only_for_toelichting"})
    if errors:
        raise _weiger(errors, kalender)
    _vereis_open(planning)
    if planning.contact_op is None:
        raise Conflict(
            "Leg eerst vast dat er contact met de partijen is opgenomen.",
            code="contact_ontbreekt",
        )
    if verzoek.soort == "toelichting":
        partijen = _toelichting_voor(planning, verzoek.partij)
    else:
        if planning.actief(verzoek.soort) is not None:
            raise Conflict(
                "Dit gesprek is al gepland of gevoerd; verzet of annuleer de bestaande afspraak.",
                code="gesprek_bestaat_al",
            )
        partijen = (GESPREK_MET[verzoek.soort],)
    return next_event(
        AfspraakGepland,
        planning,
        ctx,
        afspraak_id=afspraak_id,
        soort=verzoek.soort,
        vorm=vorm,
        gepland_op=verzoek.gepland_op,
        duur_minuten=verzoek.duur_minuten,
        adviseur_id=verzoek.adviseur_id,
        video_link=verzoek.video_link,
        partijen=partijen,
        achteraf=verzoek.achteraf,
    )


def _toelichting_voor(planning: Planning, partij: Partij | None) -> tuple[Partij, ...]:
    """The parties whose open requests a new toelichting serves."""
    open_partijen = tuple(
        t.partij for t in planning.toelichtingen if planning.toelichting_status(t) == "open"
    )
    if partij is None and open_partijen:
        return tuple(dict.fromkeys(open_partijen))
    if partij is not None and partij in open_partijen:
        return (partij,)
    raise Conflict(
        "Een toelichting wordt pas gepland nadat de bestuurder of de werkgever erom heeft "
        "gevraagd, en nog niet voor dat verzoek is gepland.",
        code="geen_toelichting_aangevraagd",
    )


def verzet_afspraak(
    planning: Planning,
    afspraak_id: UUID,
    gepland_op: datetime,
    duur_minuten: int | None,
    ctx: Context,
    kalender: WorkingDayCalendar,
    *,
    achteraf: bool = False,
) -> AfspraakVerzet | None:
    """Move a planned appointment (``achteraf``: record that it took place at another time);
    None when it already is at that time (and duration)."""
    afspraak = planning.afspraak(afspraak_id)
    _vereis_open(planning)
    if afspraak.status == "gevoerd":
        raise Conflict("Dit gesprek is al gevoerd en kan niet worden verzet.", code="al_gevoerd")
    if afspraak.status == "geannuleerd":
        raise Conflict(
            "Deze afspraak is geannuleerd; plan een nieuwe afspraak.", code="geannuleerd"
        )
    duur = afspraak.duur_minuten if duur_minuten is None else duur_minuten
    if gepland_op == afspraak.gepland_op and duur == afspraak.duur_minuten:
        return None
    errors = _tijdstip(gepland_op, duur, achteraf, kalender, ctx)
    if not MIN_DUUR <= duur <= MAX_DUUR:
        errors.append({"field": "body.duur_minuten", "rule": "out_of_range"})
    if errors:
        raise _weiger(errors, kalender)
    return next_event(
        AfspraakVerzet,
        planning,
        ctx,
        afspraak_id=afspraak_id,
        soort=afspraak.soort,
        gepland_op=gepland_op,
        vorige_gepland_op=afspraak.gepland_op,
        duur_minuten=duur,
        achteraf=achteraf,
    )


def annuleer_afspraak(
    planning: Planning, afspraak_id: UUID, ctx: Context
) -> AfspraakGeannuleerd | None:
    """Cancel a planned appointment; None when it was already cancelled."""
    afspraak = planning.afspraak(afspraak_id)
    if afspraak.status == "geannuleerd":
        return None
    _vereis_open(planning)
    if afspraak.status == "gevoerd":
        raise Conflict(
            "Dit gesprek is al gevoerd en kan niet meer worden geannuleerd.", code="al_gevoerd"
        )
    return next_event(
        AfspraakGeannuleerd, planning, ctx, afspraak_id=afspraak_id, soort=afspraak.soort
    )


def leg_gesprek_vast(
    planning: Planning, afspraak_id: UUID, woningscan_uitgevoerd: bool, ctx: Context
) -> list[DomainEvent]:
    """Record that a planned appointment took place, with the woningscan when it was done then;
    only once its planned start has passed (409 before).

    An empty list when it was already recorded (the same request again).
    """
    afspraak = planning.afspraak(afspraak_id)
    if woningscan_uitgevoerd and afspraak.soort != "gesprek_bestuurder":
        raise Ongeldig(
            [{"field": "body.woningscan_uitgevoerd", "rule": "only_in_gesprek_bestuurder"}],
            "De woningscan hoort bij het gesprek met de bestuurder thuis.",
        )
    if afspraak.status == "gevoerd":
        if woningscan_uitgevoerd and afspraak.woningscan_uitgevoerd_op is None:
            raise Conflict(
                "Het gesprek is al vastgelegd zonder woningscan; leg de woningscan apart vast.",
                code="woningscan_apart_vastleggen",
            )
        return []
    _vereis_open(planning)
    if afspraak.status == "geannuleerd":
        raise Conflict(
            "Deze afspraak is geannuleerd; er kan geen gesprek worden vastgelegd.",
            code="geannuleerd",
        )
    if ctx.now < afspraak.gepland_op:
        raise Conflict(
            "Dit gesprek is nog niet begonnen; het wordt pas als gevoerd vastgelegd nadat het "
            "geplande begin is verstreken.",
            code="nog_niet_begonnen",
        )
    gevoerd = next_event(
        GesprekGevoerd,
        planning,
        ctx,
        afspraak_id=afspraak_id,
        soort=afspraak.soort,
        gevoerd_op=ctx.now,
    )
    events: list[DomainEvent] = [gevoerd]
    if woningscan_uitgevoerd:
        events.append(
            next_event(
                WoningscanUitgevoerd,
                _fold(planning, gevoerd),
                ctx,
                afspraak_id=afspraak_id,
                uitgevoerd_op=ctx.now,
            )
        )
    return events


def leg_woningscan_vast(
    planning: Planning, afspraak_id: UUID, ctx: Context
) -> WoningscanUitgevoerd | None:
    """Record a woningscan done after the conversation at home; None when already recorded."""
    afspraak = planning.afspraak(afspraak_id)
    if afspraak.soort != "gesprek_bestuurder":
        raise Conflict(
            "De woningscan hoort bij het gesprek met de bestuurder thuis.",
            code="geen_gesprek_bestuurder",
        )
    if afspraak.woningscan_uitgevoerd_op is not None:
        return None
    _vereis_open(planning)
    if afspraak.status == "geannuleerd":
        raise Conflict("Deze afspraak is geannuleerd.", code="geannuleerd")
    if afspraak.status != "gevoerd":
        raise Conflict(
            "Leg eerst vast dat het gesprek met de bestuurder is gevoerd.", code="niet_gevoerd"
        )
    return next_event(
        WoningscanUitgevoerd, planning, ctx, afspraak_id=afspraak_id, uitgevoerd_op=ctx.now
    )


_RAPPORT_NOG_NIET: Final[dict[Partij, str]] = {
    "bestuurder": "Een toelichting kan pas worden aangevraagd nadat het goedgekeurde rapport "
    "aan de bestuurder is verstrekt.",
    "werkgever": "Een toelichting kan pas worden aangevraagd nadat het rapport met instemming "
    "van de bestuurder aan de werkgever is vrijgegeven.",
}


def noteer_rapport(
    planning: Planning, partij: Partij, rapport_id: UUID, versie: int, ctx: Context
) -> RapportOntvangen | None:
    """Note that a party received the report; None when noted before or the planning stopped."""
    if planning.gestopt or partij in planning.rapport_ontvangen:
        return None
    return next_event(
        RapportOntvangen, planning, ctx, partij=partij, rapport_id=rapport_id, versie=versie
    )


def vraag_toelichting_aan(
    planning: Planning, partij: Partij, ctx: Context
) -> ToelichtingAangevraagd | None:
    """A party asks for a toelichting; None while its earlier request is not yet served."""
    _vereis_open(planning)
    if partij not in planning.rapport_ontvangen:
        raise Conflict(_RAPPORT_NOG_NIET[partij], code="rapport_niet_ontvangen")
    if planning.lopende_toelichting(partij) is not None:
        return None
    return next_event(ToelichtingAangevraagd, planning, ctx, partij=partij, aangevraagd_op=ctx.now)


# --- projection ----------------------------------------------------------------------------------


def _with_afspraak(planning: Planning, afspraak_id: UUID, **update: object) -> tuple[Afspraak, ...]:
    return tuple(
        a.model_copy(update=update) if a.afspraak_id == afspraak_id else a
        for a in planning.afspraken
    )


def _fold(planning: Planning, event: DomainEvent) -> Planning:
    after = project(planning, [event])
    assert after is not None
    return after


def project(planning: Planning | None, events: Iterable[DomainEvent]) -> Planning | None:
    """Rebuild a Planning from its events."""
    for event in events:
        if isinstance(event, PlanningGeopend):
            planning = Planning(
                id=event.originator_id, version=event.originator_version, deadline=event.deadline
            )
            continue
        assert planning is not None
        update: dict[str, object] = {"version": event.originator_version}
        if isinstance(event, ContactOpgenomen):
            update["contact_op"] = event.contact_op
        elif isinstance(event, ContacttermijnVerstreken):
            update["verstreken"] = True
        elif isinstance(event, PlanningGestopt):
            update["gestopt"] = True
            update["gestopt_reden"] = event.reden
        elif isinstance(event, AfspraakGepland):
            update.update(_gepland(planning, event))
        elif isinstance(event, AfspraakVerzet):
            update["afspraken"] = _with_afspraak(
                planning,
                event.afspraak_id,
                gepland_op=event.gepland_op,
                duur_minuten=event.duur_minuten,
            )
        elif isinstance(event, AfspraakGeannuleerd):
            update["afspraken"] = _with_afspraak(planning, event.afspraak_id, status="geannuleerd")
            # The requests this toelichting served are open again: it may be planned anew.
            update["toelichtingen"] = tuple(
                t.model_copy(update={"afspraak_id": None})
                if t.afspraak_id == event.afspraak_id
                else t
                for t in planning.toelichtingen
            )
        elif isinstance(event, GesprekGevoerd):
            update["afspraken"] = _with_afspraak(
                planning, event.afspraak_id, status="gevoerd", gevoerd_op=event.gevoerd_op
            )
        elif isinstance(event, WoningscanUitgevoerd):
            update["afspraken"] = _with_afspraak(
                planning, event.afspraak_id, woningscan_uitgevoerd_op=event.uitgevoerd_op
            )
        elif isinstance(event, ToelichtingAangevraagd):
            update["toelichtingen"] = (
                *planning.toelichtingen,
                Toelichting(partij=event.partij, aangevraagd_op=event.aangevraagd_op),
            )
        elif isinstance(event, RapportOntvangen):
            update["rapport_ontvangen"] = planning.rapport_ontvangen | {event.partij}
        planning = planning.model_copy(update=update)
    return planning


def _gepland(planning: Planning, event: AfspraakGepland) -> dict[str, object]:
    afspraak = Afspraak(
        afspraak_id=event.afspraak_id,
        soort=event.soort,
        vorm=event.vorm,
        gepland_op=event.gepland_op,
        duur_minuten=event.duur_minuten,
        adviseur_id=event.adviseur_id,
        video_link=event.video_link,
        partijen=event.partijen,
    )
    update: dict[str, object] = {"afspraken": (*planning.afspraken, afspraak)}
    if event.soort == "toelichting":
        update["toelichtingen"] = tuple(
            t.model_copy(update={"afspraak_id": event.afspraak_id})
            if t.afspraak_id is None and t.partij in event.partijen
            else t
            for t in planning.toelichtingen
        )
    return update
