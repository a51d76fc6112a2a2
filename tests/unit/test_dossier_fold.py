"""The dossier projection's fold: the case rebuilt from every service's public CloudEvents."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from services.intake.projections.dossier import Dossier, Place, fold, recorded_order
from shared.contracts import events as ev
from shared.contracts.envelope import CloudEvent
from shared.contracts.registry import to_cloudevent
from shared.platform.eventstore import public_event_id

T0 = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)  # Monday
DEADLINE = datetime(2026, 3, 4, 23, 0, tzinfo=UTC)
CONTACT = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
INGETROKKEN = datetime(2026, 3, 5, 16, 30, tzinfo=UTC)
NOTIFICATIE_BEVESTIGING = UUID("0d3c2b1a-0000-4000-8000-000000000001")
NOTIFICATIE_SECRETARIAAT = UUID("0d3c2b1a-0000-4000-8000-000000000002")


def ce(
    event: ev.PublicEvent,
    time: datetime,
    *,
    version: int = 1,
    index: int = 0,
    actorrole: str | None = None,
    actorid: str | None = None,
    id: str | None = None,
) -> CloudEvent:
    """Wrap a public event as the relay does."""
    service = event.emitting_service
    assert event.aanvraag_id is not None
    return to_cloudevent(
        event,
        id=id or public_event_id(service, event.aanvraag_id, version, index),
        source=f"urn:nl:weerbaarbestuur:{service}",
        time=time,
        actorrole=actorrole,
        actorid=actorid,
    )


def ingediend(aanvraag_id: UUID, *, binnen_regeling: bool = True, at: datetime = T0) -> CloudEvent:
    return ce(
        ev.AanvraagIngediend(
            aanvraag_id=aanvraag_id,
            ingediend_op=at,
            ingediend_door=ev.Partij.WERKGEVER,
            organisatie_code="GM0363",
            binnen_regeling=binnen_regeling,
            verhuizing_gepland=True,
        ),
        at,
        actorrole="aanvrager",
    )


def termijn_gesteld(aanvraag_id: UUID, at: datetime = T0 + timedelta(seconds=1)) -> CloudEvent:
    return ce(
        ev.ContacttermijnGesteld(
            aanvraag_id=aanvraag_id,
            deadline=DEADLINE,
            werkdagen=3,
            kalender="algemene_termijnenwet",
        ),
        at,
        actorrole="systeem",
        actorid="svc-scheduling",
    )


def contact(aanvraag_id: UUID, at: datetime = CONTACT) -> CloudEvent:
    return ce(
        ev.ContactOpgenomen(aanvraag_id=aanvraag_id, contact_op=at, binnen_termijn=at < DEADLINE),
        at,
        version=2,
        actorrole="secretariaat",
        actorid="sec-1",
    )


def verstreken(aanvraag_id: UUID, at: datetime) -> CloudEvent:
    return ce(
        ev.ContacttermijnVerstreken(aanvraag_id=aanvraag_id, deadline=DEADLINE, vastgesteld_op=at),
        at,
        version=2,
        actorrole="systeem",
    )


def ingetrokken(aanvraag_id: UUID, at: datetime = INGETROKKEN) -> CloudEvent:
    return ce(
        ev.AanvraagIngetrokken(
            aanvraag_id=aanvraag_id, ingetrokken_op=at, door_rol=ev.Rol.BESTUURDER
        ),
        at,
        version=2,
        actorrole="bestuurder",
        actorid="bestuurder-1",
    )


def geweigerd(aanvraag_id: UUID, at: datetime) -> CloudEvent:
    return ce(
        ev.ToegangGeweigerd(
            aanvraag_id=aanvraag_id,
            dienst=ev.Dienst.INTAKE,
            actie="GET /aanvragen/{id}",
            reden="niet_van_deze_werkgever",
            status_code=404,
        ),
        at,
        actorrole="werkgever",
        actorid="werkgever-9",
        id=str(uuid4()),
    )


def notificatie(
    aanvraag_id: UUID,
    notificatie_id: UUID,
    at: datetime,
    *,
    poging: int,
    mislukt: bool = False,
    definitief: bool = False,
    soort: str = "bevestiging_aanvraag",
) -> CloudEvent:
    common = {
        "aanvraag_id": aanvraag_id,
        "notificatie_id": notificatie_id,
        "soort": soort,
        "kanaal": "email",
        "ontvanger_rol": ev.Rol.AANVRAGER,
        "oorzaak_event_id": "ev-1",
        "poging": poging,
    }
    event: ev.PublicEvent
    if mislukt:
        event = ev.NotificatieMislukt.model_validate(
            common | {"reden_code": "smtp_timeout", "definitief": definitief}
        )
    else:
        event = ev.NotificatieVerzonden.model_validate(common)
    return ce(event, at, id=f"{notificatie_id}-{poging}", actorrole="systeem")


def full_history(aanvraag_id: UUID) -> list[CloudEvent]:
    """A withdrawn dossier outside the regeling, with contact, notifications and a refusal."""
    return [
        ingediend(aanvraag_id, binnen_regeling=False),
        ce(
            ev.AanvraagBuitenRegeling(
                aanvraag_id=aanvraag_id, reden=ev.BuitenRegelingReden.RAADSLID
            ),
            T0,  # the same moment as AanvraagIngediend: both come from one stored event
            index=1,
            actorrole="aanvrager",
        ),
        termijn_gesteld(aanvraag_id),
        notificatie(
            aanvraag_id, NOTIFICATIE_BEVESTIGING, T0 + timedelta(seconds=5), poging=1, mislukt=True
        ),
        notificatie(aanvraag_id, NOTIFICATIE_BEVESTIGING, T0 + timedelta(seconds=9), poging=2),
        notificatie(
            aanvraag_id,
            NOTIFICATIE_SECRETARIAAT,
            T0 + timedelta(seconds=6),
            poging=1,
            mislukt=True,
            definitief=True,
            soort="nieuwe_aanvraag",
        ),
        geweigerd(aanvraag_id, CONTACT - timedelta(hours=1)),
        contact(aanvraag_id),
        ingetrokken(aanvraag_id),
    ]


def folded(envelopes: list[CloudEvent]) -> Dossier:
    dossier = fold(envelopes)
    assert dossier is not None
    return dossier


# --- order does not matter -----------------------------------------------------------------------


def test_the_same_events_in_any_order_give_the_same_dossier() -> None:
    events = full_history(uuid4())
    expected = folded(events)
    rng = random.Random(20260302)
    for _ in range(200):
        shuffled = events[:]
        rng.shuffle(shuffled)
        assert folded(shuffled) == expected


def test_events_delivered_before_aanvraag_ingediend_are_not_lost() -> None:
    aanvraag_id = uuid4()
    events = full_history(aanvraag_id)
    last = events[1:] + events[:1]  # AanvraagIngediend delivered last
    dossier = folded(last)
    assert dossier == folded(events)
    assert dossier.status == "ingetrokken"
    assert dossier.contact_deadline == DEADLINE
    assert dossier.buiten_regeling_reden == "raadslid"


def test_events_timed_before_aanvraag_ingediend_are_applied_after_it() -> None:
    # Clock skew between services: scheduling's events carry an earlier time than intake's.
    aanvraag_id = uuid4()
    dossier = folded(
        [
            termijn_gesteld(aanvraag_id, at=T0 - timedelta(seconds=2)),
            contact(aanvraag_id, at=T0 - timedelta(seconds=1)),
            ingediend(aanvraag_id),
        ]
    )
    assert dossier.status == "contact_opgenomen"
    assert dossier.contact_deadline == DEADLINE
    assert dossier.contact_op == T0 - timedelta(seconds=1)
    assert [r.gebeurtenis for r in dossier.tijdlijn] == [
        "ContacttermijnGesteld",
        "ContactOpgenomen",
        "AanvraagIngediend",
    ]


def test_buiten_regeling_at_the_same_moment_is_applied_whichever_id_sorts_first() -> None:
    aanvraag_id = uuid4()
    buiten = ce(
        ev.AanvraagBuitenRegeling(aanvraag_id=aanvraag_id, reden=ev.BuitenRegelingReden.STATENLID),
        T0,
        id="0000-first",
    )
    intake = ingediend(aanvraag_id, binnen_regeling=False)
    assert buiten.id < intake.id
    dossier = folded([intake, buiten])
    assert dossier.binnen_regeling is False
    assert dossier.buiten_regeling_reden == "statenlid"


def test_no_dossier_without_aanvraag_ingediend() -> None:
    aanvraag_id = uuid4()
    assert fold([]) is None
    assert fold([termijn_gesteld(aanvraag_id), contact(aanvraag_id)]) is None
    assert fold(e for e in full_history(aanvraag_id)[1:]) is None


# --- what the dossier shows ----------------------------------------------------------------------


def test_a_new_dossier_shows_the_registration() -> None:
    aanvraag_id = uuid4()
    dossier = folded([ingediend(aanvraag_id)])
    assert dossier.aanvraag_id == aanvraag_id
    assert dossier.status == "ingediend"
    assert dossier.ingediend_op == T0
    assert dossier.ingediend_door == "werkgever"
    assert dossier.organisatie_code == "GM0363"
    assert dossier.binnen_regeling is True
    assert dossier.buiten_regeling_reden is None
    assert dossier.verhuizing_gepland is True
    assert dossier.contact_deadline is None
    assert dossier.deadline_verstreken is False
    assert dossier.notificaties == ()


def test_deadline_is_shown_from_contacttermijn_gesteld() -> None:
    aanvraag_id = uuid4()
    dossier = folded([ingediend(aanvraag_id), termijn_gesteld(aanvraag_id)])
    assert dossier.status == "ingediend"
    assert dossier.contact_deadline == DEADLINE
    assert dossier.deadline_verstreken is False


def test_status_goes_from_ingediend_to_contact_opgenomen() -> None:
    aanvraag_id = uuid4()
    dossier = folded([ingediend(aanvraag_id), termijn_gesteld(aanvraag_id), contact(aanvraag_id)])
    assert dossier.status == "contact_opgenomen"
    assert dossier.contact_op == CONTACT
    assert dossier.contact_binnen_termijn is True


@pytest.mark.parametrize("met_contact", [False, True])
def test_withdrawal_sets_ingetrokken(met_contact: bool) -> None:
    aanvraag_id = uuid4()
    events = [ingediend(aanvraag_id), termijn_gesteld(aanvraag_id)]
    if met_contact:
        events.append(contact(aanvraag_id))
    dossier = folded([*events, ingetrokken(aanvraag_id)])
    assert dossier.status == "ingetrokken"
    assert dossier.ingetrokken_op == INGETROKKEN


def test_contact_recorded_after_withdrawal_does_not_reopen_the_dossier() -> None:
    aanvraag_id = uuid4()
    dossier = folded(
        [
            ingediend(aanvraag_id),
            ingetrokken(aanvraag_id, at=CONTACT - timedelta(minutes=1)),
            contact(aanvraag_id),
        ]
    )
    assert dossier.status == "ingetrokken"


def test_missed_deadline_is_shown() -> None:
    aanvraag_id = uuid4()
    vastgesteld = DEADLINE + timedelta(minutes=5)
    dossier = folded(
        [ingediend(aanvraag_id), termijn_gesteld(aanvraag_id), verstreken(aanvraag_id, vastgesteld)]
    )
    assert dossier.deadline_verstreken is True
    assert dossier.deadline_verstreken_op == vastgesteld
    assert dossier.contact_deadline == DEADLINE
    assert dossier.status == "ingediend"


def test_missed_deadline_alone_also_shows_the_deadline() -> None:
    aanvraag_id = uuid4()
    dossier = folded([ingediend(aanvraag_id), verstreken(aanvraag_id, DEADLINE)])
    assert dossier.contact_deadline == DEADLINE
    assert dossier.deadline_verstreken is True


def test_late_contact_after_a_missed_deadline() -> None:
    aanvraag_id = uuid4()
    laat = DEADLINE + timedelta(hours=3)
    dossier = folded(
        [
            ingediend(aanvraag_id),
            termijn_gesteld(aanvraag_id),
            verstreken(aanvraag_id, DEADLINE + timedelta(minutes=1)),
            contact(aanvraag_id, at=laat),
        ]
    )
    assert dossier.status == "contact_opgenomen"
    assert dossier.contact_binnen_termijn is False
    assert dossier.deadline_verstreken is True  # a missed deadline stays on record


def test_notifications_are_listed_with_their_latest_status() -> None:
    dossier = folded(full_history(uuid4()))
    assert {n.notificatie_id: (n.soort, n.status, n.op) for n in dossier.notificaties} == {
        str(NOTIFICATIE_BEVESTIGING): (
            "bevestiging_aanvraag",
            "verzonden",
            T0 + timedelta(seconds=9),
        ),
        str(NOTIFICATIE_SECRETARIAAT): (
            "nieuwe_aanvraag",
            "definitief_mislukt",
            T0 + timedelta(seconds=6),
        ),
    }


def test_a_retryable_failure_is_listed_as_mislukt() -> None:
    aanvraag_id = uuid4()
    dossier = folded(
        [
            ingediend(aanvraag_id),
            notificatie(
                aanvraag_id,
                NOTIFICATIE_BEVESTIGING,
                T0 + timedelta(seconds=3),
                poging=1,
                mislukt=True,
            ),
        ]
    )
    assert [n.status for n in dossier.notificaties] == ["mislukt"]


def test_timeline_lists_every_event_but_refusals_in_time_order() -> None:
    dossier = folded(full_history(uuid4()))
    assert [r.gebeurtenis for r in dossier.tijdlijn].count("AanvraagIngediend") == 1
    assert "ToegangGeweigerd" not in {r.gebeurtenis for r in dossier.tijdlijn}
    assert len(dossier.tijdlijn) == len(full_history(uuid4())) - 1
    tijden = [r.tijd for r in dossier.tijdlijn]
    assert tijden == sorted(tijden)
    assert [r.gebeurtenis for r in dossier.tijdlijn][-2:] == [
        "ContactOpgenomen",
        "AanvraagIngetrokken",
    ]


def test_timeline_says_which_service_and_which_role() -> None:
    aanvraag_id = uuid4()
    dossier = folded([ingediend(aanvraag_id), contact(aanvraag_id), ingetrokken(aanvraag_id)])
    assert [(r.gebeurtenis, r.dienst, r.rol, r.actor_id) for r in dossier.tijdlijn] == [
        ("AanvraagIngediend", "intake", "aanvrager", None),
        ("ContactOpgenomen", "scheduling", "secretariaat", "sec-1"),
        ("AanvraagIngetrokken", "intake", "bestuurder", "bestuurder-1"),
    ]


def test_a_refusal_changes_nothing_in_the_dossier() -> None:
    aanvraag_id = uuid4()
    events = [ingediend(aanvraag_id), termijn_gesteld(aanvraag_id), contact(aanvraag_id)]
    with_refusals = [
        *events,
        geweigerd(aanvraag_id, T0 - timedelta(days=1)),  # even one before the dossier existed
        geweigerd(aanvraag_id, CONTACT + timedelta(hours=1)),
    ]
    assert folded(with_refusals) == folded(events)


# --- consent and the measures --------------------------------------------------------------------

RAPPORT = UUID("0d3c2b1a-0000-4000-8000-0000000000aa")
MAATREGEL_BESTUURDER = UUID("0d3c2b1a-0000-4000-8000-0000000000b1")
MAATREGEL_WERKGEVER = UUID("0d3c2b1a-0000-4000-8000-0000000000b2")
GOEDGEKEURD = datetime(2026, 3, 20, 10, 0, tzinfo=UTC)


def goedgekeurd_rapport(aanvraag_id: UUID) -> list[CloudEvent]:
    """A dossier whose report (two measures) was approved and handed to the bestuurder."""
    maatregelen = (
        ev.MaatregelSamenvatting(
            maatregel_id=MAATREGEL_BESTUURDER,
            domein=ev.Domein.VERPLAATSEN,
            kosten=ev.Kosten.KOSTELOOS,
            uitvoerder=ev.Partij.BESTUURDER,
            prioriteit=ev.Prioriteit.MIDDEL,
        ),
        ev.MaatregelSamenvatting(
            maatregel_id=MAATREGEL_WERKGEVER,
            domein=ev.Domein.WONEN,
            kosten=ev.Kosten.MET_KOSTEN,
            uitvoerder=ev.Partij.WERKGEVER,
            prioriteit=ev.Prioriteit.HOOG,
        ),
    )
    ids = {"aanvraag_id": aanvraag_id, "rapport_id": RAPPORT, "versie": 1}
    inhoud_hash = "a" * 64
    return [
        ingediend(aanvraag_id),
        contact(aanvraag_id),
        ce(
            ev.RapportOpgesteld(**ids, aantal_maatregelen=2, maatregelen=maatregelen),
            GOEDGEKEURD - timedelta(days=2),
            version=10,
        ),
        ce(
            ev.RapportTerToetsingAangeboden(**ids, inhoud_hash=inhoud_hash),
            GOEDGEKEURD - timedelta(days=1),
            version=11,
        ),
        ce(ev.RapportGoedgekeurd(**ids, inhoud_hash=inhoud_hash), GOEDGEKEURD, version=3),
        ce(ev.RapportVerstrektAanBestuurder(**ids), GOEDGEKEURD, version=4),
    ]


def maatregel_uitgevoerd(
    aanvraag_id: UUID, at: datetime, maatregel_id: UUID = MAATREGEL_BESTUURDER
) -> CloudEvent:
    bestuurder = maatregel_id == MAATREGEL_BESTUURDER
    return ce(
        ev.MaatregelUitgevoerd(
            aanvraag_id=aanvraag_id,
            maatregel_id=maatregel_id,
            rapport_id=RAPPORT,
            domein=ev.Domein.VERPLAATSEN if bestuurder else ev.Domein.WONEN,
            kosten=ev.Kosten.KOSTELOOS if bestuurder else ev.Kosten.MET_KOSTEN,
            uitgevoerd_door=ev.Partij.BESTUURDER if bestuurder else ev.Partij.WERKGEVER,
            uitgevoerd_op=at,
        ),
        at,
        version=20 if bestuurder else 21,
        actorrole="bestuurder" if bestuurder else "werkgever",
    )


def instemming(aanvraag_id: UUID, at: datetime, *, gegeven: bool) -> list[CloudEvent]:
    """The bestuurder's decision: consent and release (one stored step), or a refusal."""
    ids = {"aanvraag_id": aanvraag_id, "rapport_id": RAPPORT, "versie": 1}
    if not gegeven:
        return [ce(ev.InstemmingGeweigerd(**ids), at, version=5, actorrole="bestuurder")]
    return [
        ce(ev.InstemmingGegeven(**ids), at, version=6, actorrole="bestuurder"),
        ce(
            ev.RapportVrijgegeven(**ids, organisatie_code="GM0363"),
            at,
            version=7,
            actorrole="bestuurder",
        ),
    ]


def test_a_measure_before_the_consent_decision_keeps_the_dossier_with_the_bestuurder() -> None:
    aanvraag_id = uuid4()
    approved = goedgekeurd_rapport(aanvraag_id)
    assert folded(approved).status == "goedgekeurd"
    uitgevoerd = GOEDGEKEURD + timedelta(days=1)
    dossier = folded([*approved, maatregel_uitgevoerd(aanvraag_id, uitgevoerd)])
    # Still waiting on the bestuurder's decision (the secretariat's list of pending consents),
    # with the measure shown as carried out.
    assert dossier.status == "goedgekeurd"
    assert dossier.rapport is not None and dossier.rapport.instemming is None
    done = {m.maatregel_id: m.uitgevoerd_op for m in dossier.maatregelen}
    assert done == {MAATREGEL_BESTUURDER: uitgevoerd, MAATREGEL_WERKGEVER: None}


@pytest.mark.parametrize(
    ("gegeven", "besloten"), [(True, "vrijgegeven"), (False, "instemming_geweigerd")]
)
def test_after_the_consent_decision_measures_move_the_dossier_to_in_uitvoering(
    gegeven: bool, besloten: str
) -> None:
    aanvraag_id = uuid4()
    besluit = instemming(aanvraag_id, GOEDGEKEURD + timedelta(days=1), gegeven=gegeven)
    decided = [*goedgekeurd_rapport(aanvraag_id), *besluit]
    assert folded(decided).status == besloten
    measure = maatregel_uitgevoerd(aanvraag_id, GOEDGEKEURD + timedelta(days=2))
    assert folded([*decided, measure]).status == "in_uitvoering"


@pytest.mark.parametrize("gegeven", [True, False])
def test_a_decision_after_a_measure_moves_the_dossier_on_to_in_uitvoering(gegeven: bool) -> None:
    aanvraag_id = uuid4()
    measure = maatregel_uitgevoerd(aanvraag_id, GOEDGEKEURD + timedelta(days=1))
    besluit = instemming(aanvraag_id, GOEDGEKEURD + timedelta(days=2), gegeven=gegeven)
    dossier = folded([*goedgekeurd_rapport(aanvraag_id), measure, *besluit])
    assert dossier.status == "in_uitvoering"
    assert dossier.rapport is not None
    assert dossier.rapport.instemming == ("gegeven" if gegeven else "geweigerd")


@pytest.mark.parametrize("gegeven", [True, False])
def test_a_measure_and_the_decision_at_one_moment_give_one_status_in_either_order(
    gegeven: bool,
) -> None:
    # The live projection orders events of one moment by stream sequence, a rebuild by each
    # service's own log: the status must not depend on which of the two services came first.
    aanvraag_id = uuid4()
    moment = GOEDGEKEURD + timedelta(days=1)
    events = [
        *goedgekeurd_rapport(aanvraag_id),
        maatregel_uitgevoerd(aanvraag_id, moment),
        *instemming(aanvraag_id, moment, gegeven=gegeven),
    ]
    measure_id = events[-3 if gegeven else -2].id
    # The decision's events were recorded together: consecutive in the stream.
    decision = {e.id: Place(2 + i) for i, e in enumerate(events[-2 if gegeven else -1 :])}
    measure_first = fold(events, {measure_id: Place(1)} | decision)
    decision_first = fold(events, {measure_id: Place(4)} | decision)
    assert measure_first is not None and decision_first is not None
    # Only the timeline lists the two in another order.
    assert [r.gebeurtenis for r in measure_first.tijdlijn][-1] in {
        "InstemmingGeweigerd",
        "RapportVrijgegeven",
    }
    assert [r.gebeurtenis for r in decision_first.tijdlijn][-1] == "MaatregelUitgevoerd"
    assert (measure_first.status, decision_first.status) == ("in_uitvoering", "in_uitvoering")
    assert measure_first.model_copy(update={"tijdlijn": ()}) == decision_first.model_copy(
        update={"tijdlijn": ()}
    )


def test_a_refusal_turned_into_consent_releases_the_report() -> None:
    aanvraag_id = uuid4()
    refused = [
        *goedgekeurd_rapport(aanvraag_id),
        *instemming(aanvraag_id, GOEDGEKEURD + timedelta(days=1), gegeven=False),
    ]
    assert folded(refused).status == "instemming_geweigerd"
    later = instemming(aanvraag_id, GOEDGEKEURD + timedelta(days=3), gegeven=True)
    dossier = folded([*refused, *later])
    assert dossier.status == "vrijgegeven"
    assert dossier.rapport is not None
    assert (dossier.rapport.instemming, dossier.rapport.vrijgegeven_op) == (
        "gegeven",
        GOEDGEKEURD + timedelta(days=3),
    )
    measure = maatregel_uitgevoerd(
        aanvraag_id, GOEDGEKEURD + timedelta(days=4), MAATREGEL_WERKGEVER
    )
    assert folded([*refused, *later, measure]).status == "in_uitvoering"


# --- events of one moment: the order they were recorded ------------------------------------------


def _retried_at_one_moment(aanvraag_id: UUID) -> tuple[CloudEvent, CloudEvent]:
    """A failed first attempt and the successful second one, recorded at one moment by
    notifications (two stored events, one after the other in its log)."""
    moment = T0 + timedelta(seconds=5)
    return (
        notificatie(aanvraag_id, NOTIFICATIE_BEVESTIGING, moment, poging=1, mislukt=True),
        notificatie(aanvraag_id, NOTIFICATIE_BEVESTIGING, moment, poging=2),
    )


def test_events_of_one_moment_of_one_service_fold_in_their_logs_order_after_a_broker_loss() -> None:
    # The broker lost its store between the two: the first kept its sequence (11) from before
    # the loss, the second arrived from the refilled stream with a new, lower one (2).
    aanvraag_id = uuid4()
    mislukt, verzonden = _retried_at_one_moment(aanvraag_id)
    events = [ingediend(aanvraag_id), mislukt, verzonden]
    start = {events[0].id: Place(1, 3 * 64)}
    placed = start | {mislukt.id: Place(11, 7 * 64), verzonden.id: Place(2, 8 * 64)}
    dossier = fold(events, placed)
    assert dossier is not None
    assert [n.status for n in dossier.notificaties] == ["verzonden"]
    assert [r.gebeurtenis for r in dossier.tijdlijn][1:] == [
        "NotificatieMislukt",
        "NotificatieVerzonden",
    ]
    # The stream sequences alone (no log places: rows kept before the places were) give the
    # order of arrival, which the loss turned round.
    unplaced = fold(events, start | {mislukt.id: Place(11), verzonden.id: Place(2)})
    assert unplaced is not None and [n.status for n in unplaced.notificaties] == ["mislukt"]


class _Event:
    def __init__(self, name: str, service: str, place: Place, time: int = 0) -> None:
        self.name, self.service, self.place, self.time = name, service, place, time

    def __repr__(self) -> str:
        return self.name


def _ordered(events: list[_Event]) -> list[str]:
    return [
        e.name
        for e in recorded_order(
            events,
            time=lambda e: datetime.fromtimestamp(e.time, UTC),
            source=lambda e: e.service,
            ident=lambda e: e.name,
            place=lambda e: e.place,
        )
    ]


def test_without_a_loss_events_of_one_moment_keep_the_order_they_arrived_in() -> None:
    # Every service's events arrive in the order of its log: the order is the stream's, also
    # across services (the in-process test system's clock stands still: one moment for all).
    events = [
        _Event("intake-1", "intake", Place(1, 64)),
        _Event("scheduling-1", "scheduling", Place(2, 64)),
        _Event("intake-2", "intake", Place(3, 65)),
        _Event("approval-1", "approval", Place(4, 640)),
        _Event("scheduling-2", "scheduling", Place(5, 128)),
    ]
    rng = random.Random(5)
    for _ in range(50):
        shuffled = events[:]
        rng.shuffle(shuffled)
        assert _ordered(shuffled) == [e.name for e in events]


def test_time_comes_first_and_services_interleave_by_arrival_after_a_loss() -> None:
    events = [
        _Event("later", "intake", Place(1, 6400), time=2),
        _Event("intake-a", "intake", Place(100, 640)),  # before the loss
        _Event("intake-b", "intake", Place(3, 704)),  # after it, a lower sequence
        _Event("scheduling-a", "scheduling", Place(50, 64)),
        _Event("unplaced", "intake", Place(4)),  # no log place: by its arrival alone
    ]
    assert _ordered(events) == ["unplaced", "scheduling-a", "intake-a", "intake-b", "later"]


def test_any_split_by_a_loss_keeps_every_services_log_order() -> None:
    rng = random.Random(11)
    for _ in range(200):
        logs = {s: rng.randint(1, 6) for s in ("intake", "scheduling", "notifications")}
        arrival = [s for s, n in logs.items() for _ in range(n)]
        rng.shuffle(arrival)
        cut = rng.randint(0, len(arrival))  # before the cut: old sequences; after: new, lower
        seen: dict[str, int] = dict.fromkeys(logs, 0)
        events = []
        for i, service in enumerate(arrival):
            seen[service] += 1
            sequence = 1000 + i if i < cut else i - cut + 1
            name = f"{service}-{seen[service]}"
            events.append(_Event(name, service, Place(sequence, seen[service] * 64)))
        rng.shuffle(events)
        ordered = _ordered(events)
        assert sorted(ordered) == sorted(e.name for e in events)
        for service, count in logs.items():
            assert [n for n in ordered if n.startswith(f"{service}-")] == [
                f"{service}-{k}" for k in range(1, count + 1)
            ]
