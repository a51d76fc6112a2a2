"""The e-mails of the advice process, on real PostgreSQL and the real SMTP server (MailCatcher).

Each test feeds other services' public events to the notifications consumers' handlers (chosen by
their NATS subjects), runs the sender once and reads what the SMTP server stored. The dossier's
addresses and the appointments come from fakes (the claim-check collaborators on intake and
scheduling); the registration behind them holds distinctive personal data so a leak shows.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi.testclient import TestClient

from services.notifications import application as notifications_application
from services.notifications import projections
from services.notifications.adapters.appointments import SchedulingAppointments
from services.notifications.adapters.recipients import RecipientDirectory
from services.notifications.adapters.webhook_store import sql_webhook_store
from services.notifications.application import (
    AfspraakOnbekend,
    Notifications,
    RecipientUnknown,
)
from services.notifications.bootstrap import NotificationsComponents, bootstrap
from services.notifications.domain.afspraak import Afspraak
from services.notifications.domain.mail import make_message_id
from services.notifications.domain.notificatie import (
    NotificatieGepland,
    NotificatieOpnieuwGepland,
    NotificatieVervallen,
    Ontvanger,
)
from services.notifications.gateway import to_public
from services.notifications.ops import resend
from shared.contracts import events as public
from shared.contracts.registry import to_cloudevent
from shared.platform.consumer import Delivery, TransientError
from shared.platform.errors import Conflict, NietPubliceerbaar
from shared.platform.eventstore import AlreadyProcessed
from shared.platform.model import Context, DomainEvent, FixedClock
from shared.platform.settings import Settings
from tests.support import aanmelding, gateway_defect, personal_values, token
from tools.mailcatcher import CaughtMail, MailCatcher, free_port, list_messages

pytestmark = pytest.mark.integration

NU = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # Monday 09:00 in Amsterdam
# Thursday 3 December 2026, 10:00 in Amsterdam (CET, UTC+1).
GEPLAND_OP = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
VERZET_NAAR = datetime(2026, 12, 8, 13, 30, tzinfo=UTC)  # Tuesday 8 December, 14:30
VIDEO_LINK = "https://video.weerbaarbestuur.test/kamer/8f3a?pin=4921"
SECRETARIAAT = "dienstdoend.secretariaat@ccv.test"
DOMAIN = "weerbaarbestuur.local"  # of the default smtp_from: the .ics UID's domain


# --- collaborators on other services -------------------------------------------------------------


class FakeRecipients:
    """Intake's claim-check: the addresses of one registration; counts what it handed out."""

    def __init__(self) -> None:
        self.dossiers: dict[UUID, dict[str, Any]] = {}
        self.handed_out: list[tuple[UUID, str]] = []

    def address(self, aanvraag_id: UUID, ontvanger: Ontvanger) -> str:
        body = self.dossiers.get(aanvraag_id)
        if body is None or ontvanger == "secretariaat":
            raise RecipientUnknown(ontvanger)
        self.handed_out.append((aanvraag_id, ontvanger))
        if ontvanger == "aanvrager":
            ontvanger = body["ingediend_door"]
        email: str = body[ontvanger]["email"]
        return email


class FakeAppointments:
    """Scheduling's claim-check: appointments as scheduling has them now."""

    def __init__(self) -> None:
        self.afspraken: dict[UUID, Afspraak] = {}
        self.outage = False

    def afspraak(self, afspraak_id: UUID) -> Afspraak:
        if self.outage:
            raise TransientError("scheduling_unreachable:ConnectError")
        try:
            return self.afspraken[afspraak_id]
        except KeyError:
            raise AfspraakOnbekend() from None

    def update(self, afspraak_id: UUID, **changes: Any) -> None:
        self.afspraken[afspraak_id] = self.afspraken[afspraak_id].model_copy(update=changes)


# --- the harness ---------------------------------------------------------------------------------


def _matches(pattern: str, subject: str) -> bool:
    """NATS subject matching with `*` (one token)."""
    want, have = pattern.split("."), subject.split(".")
    return len(want) == len(have) and all(w in ("*", h) for w, h in zip(want, have, strict=True))


@dataclass
class Harness:
    components: NotificationsComponents
    settings: Settings
    catcher: MailCatcher
    clock: FixedClock
    recipients: FakeRecipients
    appointments: FakeAppointments
    aanvraag_id: UUID = field(default_factory=uuid4)
    body: dict[str, Any] = field(default_factory=aanmelding)

    def feed(self, delivery: Delivery) -> bool:
        """Hand a delivery to the subscription whose subjects match; False if it was a repeat."""
        event = delivery.event
        subject = f"weerbaar.{event.emitting_service}.{event.event_name}.{event.aanvraag_id}"
        [subscription] = [
            s
            for s in self.components.subscriptions
            if any(_matches(p, subject) for p in s.subjects)
        ]
        try:
            subscription.handler(delivery)
        except AlreadyProcessed:  # what the consumer acks without a second effect
            return False
        return True

    def publish(self, event: public.PublicEvent) -> Delivery:
        """Feed a new event (a fresh CloudEvent id) and return its delivery."""
        delivery = deliver(event)
        assert self.feed(delivery)
        return delivery

    def run(self) -> int:
        return self.components.sender.run_once()

    def ingediend(self) -> public.AanvraagIngediend:
        """The registration of this dossier, submitted by the bestuurder."""
        return public.AanvraagIngediend(
            aanvraag_id=self.aanvraag_id,
            ingediend_op=NU,
            ingediend_door=public.Partij.BESTUURDER,
            organisatie_code="GM0363",
            binnen_regeling=True,
            verhuizing_gepland=False,
        )

    def mails(self) -> list[CaughtMail]:
        return list_messages(self.catcher.directory)

    def log(self) -> list[dict[str, Any]]:
        rows = self.components.tables.bezorgingen(aanvraag_id=self.aanvraag_id)
        return [row.model_dump() for row in rows]

    def stored_events(self) -> list[DomainEvent]:
        app = self.components.sender.app
        events: list[DomainEvent] = []
        for notification in app.recorder.select_notifications(1, 1000):
            event = app.mapper.to_domain_event(notification)
            assert isinstance(event, DomainEvent)
            events.append(event)
        return events

    def plan_afspraak(
        self,
        soort: str = "gesprek_werkgever",
        vorm: str = "digitaal",
        *,
        video_link: str | None = VIDEO_LINK,
        duur_minuten: int = 60,
        partijen: tuple[str, ...] | None = None,
    ) -> tuple[Afspraak, Delivery]:
        """Scheduling planned an appointment: its state there, and the public event."""
        afspraak = Afspraak.model_validate(
            {
                "afspraak_id": uuid4(),
                "aanvraag_id": self.aanvraag_id,
                "soort": soort,
                "vorm": vorm,
                "gepland_op": GEPLAND_OP,
                "duur_minuten": duur_minuten,
                "adviseur_id": "adviseur-7",
                "video_link": video_link if vorm == "digitaal" else None,
                "status": "gepland",
                "partijen": partijen,
            }
        )
        self.appointments.afspraken[afspraak.afspraak_id] = afspraak
        event = public.AfspraakGepland(
            aanvraag_id=self.aanvraag_id,
            afspraak_id=afspraak.afspraak_id,
            soort=public.AfspraakSoort(soort),
            vorm=public.AfspraakVorm(vorm),
            gepland_op=GEPLAND_OP,
            duur_minuten=duur_minuten,
            adviseur_id="adviseur-7",
        )
        return afspraak, deliver(event)


def retry_wait(h: Harness, poging: int) -> timedelta:
    """After the ``poging``-th attempt failed, the next is due no later than this (the
    schedule's delay with the most jitter it can add)."""
    delay = h.settings.mail_retry_schedule_s[poging - 1]
    return timedelta(seconds=delay * (1 + h.settings.mail_retry_jitter))


def deliver(event: public.PublicEvent, event_id: str | None = None) -> Delivery:
    envelope = to_cloudevent(
        event,
        id=event_id or str(uuid4()),
        source=f"urn:nl:weerbaarbestuur:{event.emitting_service}",
        time=NU,
    )
    return Delivery(envelope=envelope, event=event, stream_sequence=1, attempt=1)


@contextmanager
def harness_on(settings: Settings, catcher: MailCatcher, **updates: Any) -> Iterator[Harness]:
    """The notifications service on the test's database, sending to ``catcher``."""
    with catcher:
        configured = settings.model_copy(
            update={"smtp_port": catcher.port, "secretariaat_email": SECRETARIAAT, **updates}
        )
        recipients, appointments, clock = FakeRecipients(), FakeAppointments(), FixedClock(NU)
        components = bootstrap(configured, clock, recipients=recipients, appointments=appointments)
        h = Harness(components, configured, catcher, clock, recipients, appointments)
        recipients.dossiers[h.aanvraag_id] = h.body
        yield h


@pytest.fixture(name="h")
def harness(settings: Settings, tmp_path: Path) -> Iterator[Harness]:
    """The notifications service on the test's database, sending to a real SMTP server."""
    with harness_on(settings, MailCatcher(tmp_path / "mail")) as h:
        yield h


# --- reading what arrived ------------------------------------------------------------------------


def subject(mail: CaughtMail) -> str:
    """The subject as a mail client shows it.

    Python folds a subject that fits on one continuation line as `Subject:<CRLF> <value>`, and its
    parser then keeps the folding space; clients drop it (RFC 5322 unfolding plus trimming).
    """
    return " ".join(mail.subject.split())


def text_of(mail: CaughtMail) -> str:
    body = mail.message().get_body(("plain",))
    assert body is not None
    content: str = body.get_content()
    return content


def raw(mail: CaughtMail) -> str:
    """The whole stored message, decoded (base64 attachments included), for leak checks."""
    message = mail.message()
    parts = [str(message)]
    parts += [str(part.get_content()) for part in message.walk() if not part.is_multipart()]
    return "\n".join(parts)


def invitation(mail: CaughtMail) -> tuple[EmailMessage, dict[str, list[str]]]:
    """The one .ics attachment and its properties (unfolded; name → values, parameters dropped)."""
    [attachment] = [a for a in mail.message().iter_attachments() if isinstance(a, EmailMessage)]
    assert attachment.get_content_type() == "text/calendar"
    assert (attachment.get_filename() or "").endswith(".ics")
    content = attachment.get_content()
    assert isinstance(content, str)
    assert "\r\n" in content and "\n" not in content.replace("\r\n", "")  # CRLF only
    properties: dict[str, list[str]] = {}
    for line in content.replace("\r\n ", "").split("\r\n"):
        if line:
            name, _, value = line.partition(":")
            properties.setdefault(name.split(";")[0], []).append(value)
    return attachment, properties


def only(properties: dict[str, list[str]], name: str) -> str:
    [value] = properties[name]
    return value


def assert_nothing_of_the_bestuurder(mail: CaughtMail, body: dict[str, Any]) -> None:
    shown = raw(mail)
    b = body["bestuurder"]
    for value in (
        b["naam"],
        b["email"],
        b["telefoon"],
        b["adres"]["straat"],
        b["adres"]["postcode"],
        b["adres"]["woonplaats"],
        body["reden"],
    ):
        assert value not in shown


# --- appointments: confirmation ------------------------------------------------------------------


def test_werkgever_gets_the_video_conversation_with_a_calendar_invitation(h: Harness) -> None:
    afspraak, gepland = h.plan_afspraak("gesprek_werkgever", "digitaal", duur_minuten=90)
    assert h.feed(gepland)

    assert h.run() == 1

    [mail] = h.mails()
    assert mail.to == (h.body["werkgever"]["email"],)
    assert subject(mail).startswith(
        "Bevestiging van uw afspraak op donderdag 3 december 2026 om 10:00 uur"
    )
    text = text_of(mail)
    assert "Hierbij bevestigen wij de afspraak" in text
    assert "Datum: donderdag 3 december 2026" in text
    assert "Tijd: 10:00 tot 11:30 uur (Nederlandse tijd)" in text
    assert "Duur: 1 uur en 30 minuten" in text
    assert "digitaal" in text
    assert VIDEO_LINK in text
    assert f"dossiernummer {h.aanvraag_id}" in text
    attachment, ics = invitation(mail)
    assert attachment.get_param("method") == "REQUEST"
    assert only(ics, "METHOD") == "REQUEST"
    assert only(ics, "UID") == f"{afspraak.afspraak_id}@{DOMAIN}"
    assert only(ics, "DTSTART") == "20261203T090000Z"
    assert only(ics, "DTEND") == "20261203T103000Z"
    assert only(ics, "SEQUENCE") == "0"
    assert only(ics, "STATUS") == "CONFIRMED"
    assert only(ics, "DTSTAMP").endswith("Z")
    assert only(ics, "LOCATION") == VIDEO_LINK.replace(",", "\\,").replace(";", "\\;")
    assert only(ics, "SUMMARY") == "Weerbaar bestuur: gesprek met de adviseur van het CCV"
    assert_nothing_of_the_bestuurder(mail, h.body)
    assert h.recipients.handed_out == [(h.aanvraag_id, "werkgever")]


def test_bestuurder_gets_the_home_visit_with_the_woningscan_and_no_address(h: Harness) -> None:
    afspraak, gepland = h.plan_afspraak("gesprek_bestuurder", "thuis", duur_minuten=120)
    h.feed(gepland)

    h.run()

    [mail] = h.mails()
    assert mail.to == (h.body["bestuurder"]["email"],)
    text = text_of(mail)
    assert "Plaats: bij u thuis" in text
    assert "woningscan" in text
    assert "door en rond uw woning" in text  # what the woningscan is
    assert "thuis is, voor de hele duur van de afspraak" in text  # someone must be home
    assert "Duur: 2 uur" in text
    _, ics = invitation(mail)
    assert only(ics, "LOCATION") == "Thuis (woningscan)"
    assert only(ics, "UID") == f"{afspraak.afspraak_id}@{DOMAIN}"
    assert only(ics, "SUMMARY") == "Weerbaar bestuur: gesprek en woningscan"
    adres = h.body["bestuurder"]["adres"]
    for value in (adres["straat"], adres["postcode"], adres["woonplaats"], h.body["reden"]):
        assert value not in raw(mail)
    # The werkgever is not told about the bestuurder's home visit.
    assert [row["ontvanger"] for row in h.log()] == ["bestuurder"]


def test_a_summer_appointment_is_written_in_utc_and_shown_in_amsterdam_time(h: Harness) -> None:
    afspraak, gepland = h.plan_afspraak("gesprek_werkgever")
    zomer = datetime(2027, 6, 1, 7, 15, tzinfo=UTC)  # 09:15 in Amsterdam (CEST, UTC+2)
    h.appointments.update(afspraak.afspraak_id, gepland_op=zomer)
    h.feed(gepland)

    h.run()

    [mail] = h.mails()
    assert "Tijd: 09:15 tot 10:15 uur" in text_of(mail)
    _, ics = invitation(mail)
    assert only(ics, "DTSTART") == "20270601T071500Z"
    assert only(ics, "DTEND") == "20270601T081500Z"


# --- appointments: toelichting -------------------------------------------------------------------


def _toelichting_gevraagd(h: Harness, partij: public.Partij) -> Delivery:
    return h.publish(
        public.ToelichtingAangevraagd(
            aanvraag_id=h.aanvraag_id, aangevraagd_door=partij, aangevraagd_op=NU
        )
    )


def test_toelichting_goes_to_the_party_that_asked(h: Harness) -> None:
    _toelichting_gevraagd(h, public.Partij.WERKGEVER)
    _, gepland = h.plan_afspraak("toelichting", "digitaal")
    h.feed(gepland)

    h.run()

    [mail] = h.mails()
    assert mail.to == (h.body["werkgever"]["email"],)
    assert "de toelichting op het adviesrapport" in text_of(mail)
    assert_nothing_of_the_bestuurder(mail, h.body)


def test_a_request_is_answered_by_one_toelichting_only(h: Harness) -> None:
    _toelichting_gevraagd(h, public.Partij.BESTUURDER)
    _, eerste = h.plan_afspraak("toelichting")
    h.feed(eerste)
    _toelichting_gevraagd(h, public.Partij.WERKGEVER)
    _, tweede = h.plan_afspraak("toelichting")
    h.feed(tweede)

    h.run()

    assert sorted(m.to[0] for m in h.mails()) == sorted(
        [h.body["bestuurder"]["email"], h.body["werkgever"]["email"]]
    )


def test_toelichting_of_unknown_origin_goes_to_both_parties(h: Harness) -> None:
    _, gepland = h.plan_afspraak("toelichting")
    h.feed(gepland)

    h.run()

    assert sorted(m.to[0] for m in h.mails()) == sorted(
        [h.body["bestuurder"]["email"], h.body["werkgever"]["email"]]
    )


def test_toelichting_is_not_mailed_to_a_party_scheduling_says_it_is_not_with(h: Harness) -> None:
    # Nobody was known to have asked (so both were planned), but scheduling knows better.
    _, gepland = h.plan_afspraak("toelichting", partijen=("bestuurder",))
    h.feed(gepland)

    h.run()

    assert [m.to for m in h.mails()] == [(h.body["bestuurder"]["email"],)]
    assert {(r["ontvanger"], r["status"]) for r in h.log()} == {
        ("bestuurder", "verzonden"),
        ("werkgever", "vervallen"),
    }
    assert (h.aanvraag_id, "werkgever") not in h.recipients.handed_out


# --- appointments: moved and cancelled -----------------------------------------------------------


def _verzet(h: Harness, afspraak: Afspraak) -> Delivery:
    h.appointments.update(afspraak.afspraak_id, gepland_op=VERZET_NAAR)
    return deliver(
        public.AfspraakVerzet(
            aanvraag_id=h.aanvraag_id,
            afspraak_id=afspraak.afspraak_id,
            soort=afspraak.soort,
            gepland_op=VERZET_NAAR,
            vorige_gepland_op=afspraak.gepland_op,
        )
    )


def _geannuleerd(h: Harness, afspraak: Afspraak) -> Delivery:
    h.appointments.update(afspraak.afspraak_id, status="geannuleerd")
    return deliver(
        public.AfspraakGeannuleerd(
            aanvraag_id=h.aanvraag_id, afspraak_id=afspraak.afspraak_id, soort=afspraak.soort
        )
    )


def test_a_moved_appointment_replaces_the_calendar_entry(h: Harness) -> None:
    afspraak, gepland = h.plan_afspraak("gesprek_werkgever")
    h.feed(gepland)
    h.run()

    h.feed(_verzet(h, afspraak))
    h.run()

    eerste, verzet = h.mails()
    assert verzet.to == (h.body["werkgever"]["email"],)
    assert subject(verzet).startswith(
        "Uw afspraak is verzet naar dinsdag 8 december 2026 om 14:30 uur"
    )
    text = text_of(verzet)
    assert "is verzet" in text
    assert "De afspraak op donderdag 3 december 2026 om 10:00 uur gaat niet door" in text
    assert "Datum: dinsdag 8 december 2026" in text
    assert VIDEO_LINK in text
    _, before = invitation(eerste)
    _, after = invitation(verzet)
    assert only(after, "UID") == only(before, "UID") == f"{afspraak.afspraak_id}@{DOMAIN}"
    assert only(after, "METHOD") == "REQUEST"
    assert int(only(after, "SEQUENCE")) > int(only(before, "SEQUENCE"))
    assert only(after, "DTSTART") == "20261208T133000Z"
    assert_nothing_of_the_bestuurder(verzet, h.body)


def test_a_cancelled_appointment_is_removed_from_the_calendar(h: Harness) -> None:
    afspraak, gepland = h.plan_afspraak("gesprek_bestuurder", "thuis")
    h.feed(gepland)
    h.run()

    h.feed(_geannuleerd(h, afspraak))
    h.run()

    _, geannuleerd = h.mails()
    assert geannuleerd.to == (h.body["bestuurder"]["email"],)
    assert subject(geannuleerd).startswith("Geannuleerd: uw afspraak op donderdag 3 december 2026")
    assert "is geannuleerd en gaat niet door" in text_of(geannuleerd)
    attachment, ics = invitation(geannuleerd)
    assert attachment.get_param("method") == "CANCEL"
    assert only(ics, "METHOD") == "CANCEL"
    assert only(ics, "STATUS") == "CANCELLED"
    assert only(ics, "UID") == f"{afspraak.afspraak_id}@{DOMAIN}"
    assert only(ics, "SEQUENCE") == "1"
    assert only(ics, "DTSTART") == "20261203T090000Z"


def test_moves_and_a_cancellation_count_up_the_sequence_once_each(h: Harness) -> None:
    afspraak, gepland = h.plan_afspraak("gesprek_werkgever")
    h.feed(gepland)
    h.run()
    verzet = _verzet(h, afspraak)
    h.feed(verzet)
    assert not h.feed(verzet)  # redelivered: no second move
    h.run()
    h.feed(_geannuleerd(h, afspraak))
    h.run()

    sequences = [only(invitation(m)[1], "SEQUENCE") for m in h.mails()]
    methods = [only(invitation(m)[1], "METHOD") for m in h.mails()]
    assert sequences == ["0", "1", "2"]
    assert methods == ["REQUEST", "REQUEST", "CANCEL"]


def test_an_appointment_cancelled_before_its_mail_went_out_is_not_announced(h: Harness) -> None:
    afspraak, gepland = h.plan_afspraak("gesprek_werkgever")
    h.feed(gepland)
    h.feed(_geannuleerd(h, afspraak))

    assert h.run() == 2

    assert h.mails() == []
    assert {(r["soort"], r["status"]) for r in h.log()} == {
        ("afspraak_bevestiging", "vervallen"),
        ("afspraak_geannuleerd", "vervallen"),
    }
    assert h.recipients.handed_out == []  # no address was fetched for nothing
    lapsed = [e for e in h.stored_events() if isinstance(e, NotificatieVervallen)]
    assert {e.reden_code for e in lapsed} == {"afspraak_geannuleerd", "niet_aangekondigd"}
    assert all(to_public(e) == [] for e in lapsed)  # nothing was sent, nothing failed
    assert h.run() == 0


def test_a_move_that_arrives_after_the_appointment_was_cancelled_is_not_sent(h: Harness) -> None:
    afspraak, gepland = h.plan_afspraak("gesprek_werkgever")
    h.feed(gepland)
    h.run()
    h.feed(_verzet(h, afspraak))
    h.appointments.update(afspraak.afspraak_id, status="geannuleerd")

    h.run()

    assert len(h.mails()) == 1
    assert ("afspraak_verzet", "vervallen") in {(r["soort"], r["status"]) for r in h.log()}


def test_a_confirmation_still_unsent_when_the_appointment_begins_lapses(h: Harness) -> None:
    _, gepland = h.plan_afspraak("gesprek_werkgever")
    h.feed(gepland)
    h.catcher.fail(1)
    h.run()  # refused: retried after its back-off
    h.clock.advance_to(GEPLAND_OP)  # ... which the SMTP outage stretched past the start

    h.run()

    assert h.mails() == []
    assert [(r["status"], r["pogingen"]) for r in h.log()] == [("vervallen", 1)]


# --- exactly once --------------------------------------------------------------------------------


def test_an_event_delivered_twice_mails_once(h: Harness) -> None:
    _, gepland = h.plan_afspraak("gesprek_werkgever")

    assert h.feed(gepland) is True
    assert h.feed(gepland) is False
    assert h.run() == 1
    assert h.run() == 0

    assert len(h.log()) == 1
    assert len(h.mails()) == 1


def test_a_report_event_delivered_twice_mails_once(h: Harness) -> None:
    delivery = deliver(
        public.RapportVerstrektAanBestuurder(
            aanvraag_id=h.aanvraag_id, rapport_id=uuid4(), versie=1
        )
    )
    h.feed(delivery)
    h.feed(delivery)
    h.run()
    h.run()

    assert len(h.mails()) == 1


# --- the report ----------------------------------------------------------------------------------


def test_the_bestuurder_hears_the_report_is_ready_without_its_content(h: Harness) -> None:
    rapport_id = uuid4()
    h.publish(
        public.RapportVerstrektAanBestuurder(
            aanvraag_id=h.aanvraag_id, rapport_id=rapport_id, versie=2
        )
    )

    h.run()

    [mail] = h.mails()
    assert mail.to == (h.body["bestuurder"]["email"],)
    assert subject(mail) == f"Uw adviesrapport staat klaar (dossier {h.aanvraag_id})"
    text = text_of(mail)
    assert "in te loggen bij Weerbaar bestuur" in text  # where to read it
    assert f"rapport {rapport_id}, versie 2" in text
    assert "niet per e-mail" in text
    assert list(mail.message().iter_attachments()) == []


def test_the_werkgever_hears_of_the_released_report_and_nothing_of_the_bestuurder(
    h: Harness,
) -> None:
    h.publish(
        public.RapportVrijgegeven(
            aanvraag_id=h.aanvraag_id, rapport_id=uuid4(), versie=1, organisatie_code="GM0363"
        )
    )

    h.run()

    [mail] = h.mails()
    assert mail.to == (h.body["werkgever"]["email"],)
    assert subject(mail) == f"Het adviesrapport is met u gedeeld (dossier {h.aanvraag_id})"
    assert "heeft ingestemd" in text_of(mail)
    assert list(mail.message().iter_attachments()) == []
    assert_nothing_of_the_bestuurder(mail, h.body)


# --- escalation and the aanvraag's confirmation --------------------------------------------------


def test_a_missed_contact_deadline_is_mailed_to_the_configured_secretariaat(h: Harness) -> None:
    h.publish(
        public.ContacttermijnVerstreken(
            aanvraag_id=h.aanvraag_id,
            deadline=datetime(2026, 4, 30, 22, 0, tzinfo=UTC),  # the end of Thursday 30 April
            vastgesteld_op=datetime(2026, 4, 30, 22, 0, 30, tzinfo=UTC),
        )
    )

    h.run()

    [mail] = h.mails()
    assert mail.to == (SECRETARIAAT,)
    assert subject(mail) == f"Contacttermijn verstreken (dossier {h.aanvraag_id})"
    text = text_of(mail)
    assert "aan het eind van donderdag 30 april 2026" in text
    for value in personal_values(h.body):
        assert value not in raw(mail)
    assert h.recipients.handed_out == []  # intake was not asked


def test_the_aanvraag_is_still_confirmed_to_whoever_submitted_it(h: Harness) -> None:
    h.publish(h.ingediend())

    h.run()

    [mail] = h.mails()
    assert mail.to == (h.body["bestuurder"]["email"],)
    assert subject(mail) == f"Bevestiging van uw aanmelding (dossier {h.aanvraag_id})"


# --- at most one registration confirmation per address per window ---------------------------------


def _registration(h: Harness, email: str) -> UUID:
    """A further registration, submitted by its bestuurder with ``email``."""
    h.aanvraag_id = uuid4()
    body = aanmelding()
    body["bestuurder"]["email"] = email
    h.recipients.dossiers[h.aanvraag_id] = body
    h.publish(h.ingediend())
    return h.aanvraag_id


def _statuses(h: Harness, dossiers: list[UUID]) -> list[str]:
    tables = h.components.tables
    return [row.status for d in dossiers for row in tables.bezorgingen(aanvraag_id=d)]


def test_registrations_with_one_address_get_one_confirmation_per_window(h: Harness) -> None:
    address = h.body["bestuurder"]["email"]
    local, domain = address.split("@")
    window = timedelta(seconds=h.settings.confirmation_mail_window_s)
    assert window == timedelta(hours=1)  # the default
    # Four at once: the sender delivers them side by side in one round; one claims the window.
    first = [_registration(h, address) for _ in range(4)]
    unrelated = _registration(h, "iemand.anders@example.org")
    assert h.run() == 5
    assert sorted(m.to for m in h.mails()) == sorted([(address,), ("iemand.anders@example.org",)])
    assert sorted(_statuses(h, first)) == ["vervallen"] * 3 + ["verzonden"]
    assert _statuses(h, [unrelated]) == ["verzonden"]
    # Other spellings of the same mailbox, later within the window.
    h.clock.advance_to(NU + window - timedelta(seconds=1))
    others = [
        _registration(h, spelling)
        for spelling in (address.upper(), f"{local}+2@{domain}", f" {address} ")
    ]
    assert h.run() == 3
    assert _statuses(h, others) == ["vervallen"] * 3
    assert len(h.mails()) == 2
    lapsed = [e for e in h.stored_events() if isinstance(e, NotificatieVervallen)]
    assert [e.reden_code for e in lapsed] == ["te_vaak_verzonden"] * 6
    assert all(to_public(e) == [] for e in lapsed)  # not an attempt: nothing is announced

    # Other mails to the address are not counted against it: the appointment's goes out.
    sent = h.components.tables.bezorgingen(status="verzonden")
    [confirmed] = [r.aanvraag_id for r in sent if r.aanvraag_id in first]
    h.aanvraag_id = confirmed
    _, gepland = h.plan_afspraak("gesprek_bestuurder", "thuis", video_link=None)
    assert h.feed(gepland)
    assert h.run() == 1
    assert len([m for m in h.mails() if m.to == (address,)]) == 2

    # Once the window has passed (counted from the confirmation), the next one goes out again.
    h.clock.advance_to(NU + window + timedelta(seconds=1))
    later = _registration(h, address)
    assert h.run() == 1
    assert _statuses(h, [later]) == ["verzonden"]
    assert len([m for m in h.mails() if m.to == (address,)]) == 3

    # The window is kept by a keyed hash: the address is in none of the service's tables.
    with h.components.app.datastore.get_connection() as conn:
        rows = conn.execute("SELECT * FROM notifications.bevestigingsvenster").fetchall()
    assert rows and all(len(r["adres_sleutel"]) == 64 for r in rows)
    assert local not in json.dumps([dict(r) for r in rows], default=str)


def test_a_confirmation_that_failed_leaves_the_window_to_the_next_registration(
    h: Harness,
) -> None:
    address = h.body["bestuurder"]["email"]
    h.catcher.fail(1, code=451)
    first = _registration(h, address)
    assert h.run() == 1  # refused for now: still due, and still holding the window
    second = _registration(h, address)
    h.clock.advance_to(NU + retry_wait(h, 1))
    assert h.run() == 2
    assert _statuses(h, [first, second]) == ["verzonden", "vervallen"]

    h.clock.advance_to(NU + timedelta(hours=2))
    h.catcher.fail(1, code=550)
    third = _registration(h, address)
    assert h.run() == 1  # failed for good: no confirmation went, the window is given back
    fourth = _registration(h, address)
    assert h.run() == 1
    assert _statuses(h, [third, fourth]) == ["mislukt", "verzonden"]
    assert [m.to for m in h.mails()] == [(address,), (address,)]


# --- the sender under load -----------------------------------------------------------------------


def _another_dossier(h: Harness) -> UUID:
    """A further registration with its confirmation and a conversation's invitation due."""
    h.aanvraag_id = uuid4()
    h.recipients.dossiers[h.aanvraag_id] = aanmelding()
    h.publish(h.ingediend())
    # The invitation is planned a moment later, so due a moment later (the order to keep).
    h.clock.advance_to(h.clock.now() + timedelta(milliseconds=1))
    _, gepland = h.plan_afspraak("gesprek_werkgever")
    assert h.feed(gepland)
    return h.aanvraag_id


class Overlapping:
    """Intake's claim-check that notes how many requests are in flight at once. A request waits
    (up to ``patience_s``) for a second one to be in flight beside it: a sender that delivers
    one mail at a time never gets there."""

    def __init__(self, inner: FakeRecipients, patience_s: float = 5.0) -> None:
        self.inner = inner
        self.patience_s = patience_s
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most = 0
        self.side_by_side = threading.Event()

    def address(self, aanvraag_id: UUID, ontvanger: Ontvanger) -> str:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            if self.in_flight > 1:
                self.side_by_side.set()
        try:
            self.side_by_side.wait(self.patience_s)
            return self.inner.address(aanvraag_id, ontvanger)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_more_than_a_batch_due_goes_out_in_one_round(h: Harness) -> None:
    sender = h.components.sender
    dossiers = [_another_dossier(h) for _ in range(sender.batch // 2 + 3)]  # 2 mails each

    assert h.run() == 2 * len(dossiers) > sender.batch

    assert len(h.mails()) == 2 * len(dossiers)
    assert {r.status for d in dossiers for r in h.components.tables.bezorgingen(aanvraag_id=d)} == {
        "verzonden"
    }
    assert h.run() == 0


def test_dossiers_are_mailed_side_by_side_and_each_dossiers_mails_in_order(h: Harness) -> None:
    sender = h.components.sender
    assert isinstance(sender.recipients, RecipientDirectory)
    overlapping = Overlapping(h.recipients)
    sender.recipients.dossier = overlapping
    dossiers = [_another_dossier(h) for _ in range(4)]

    assert h.run() == 8

    assert overlapping.most > 1, "one mail at a time: the sender delivered nothing side by side"
    assert overlapping.most <= sender.concurrency
    assert len(h.mails()) == 8
    # Within a dossier, the order the mails were due in: the confirmation, then the invitation.
    for dossier in dossiers:
        asked = [ontvanger for d, ontvanger in h.recipients.handed_out if d == dossier]
        assert asked == ["aanvrager", "werkgever"], dossier


# --- failures and retries ------------------------------------------------------------------------


def test_a_refused_delivery_is_retried_with_the_same_invitation(h: Harness) -> None:
    afspraak, gepland = h.plan_afspraak("gesprek_werkgever")
    h.feed(gepland)
    h.catcher.fail(1)  # 451: try again later

    h.run()
    assert h.mails() == []
    assert h.run() == 0  # not due before its back-off
    h.clock.advance_to(NU + retry_wait(h, 1))
    h.run()

    [mail] = h.mails()
    [row] = h.log()
    assert (row["status"], row["pogingen"]) == ("verzonden", 2)
    assert only(invitation(mail)[1], "UID") == f"{afspraak.afspraak_id}@{DOMAIN}"


def _announced(h: Harness) -> list[public.PublicEvent]:
    return [p for e in h.stored_events() for p in to_public(e)]


@pytest.mark.parametrize(
    ("stored", "reden"),
    [
        ("geheim,ander@example.org", "adres_meer_dan_een_adres"),
        ("=?utf-8?q?geheim?=@example.org", "adres_encoded_word"),
        ("geheim@example.org\r\nBcc: ander@example.org", "adres_stuurteken"),
        ("Geheim <geheim@example.org>", "adres_weergavenaam"),
    ],
)
def test_an_address_the_mailer_refuses_fails_for_good_at_once(
    h: Harness, caplog: pytest.LogCaptureFixture, stored: str, reden: str
) -> None:
    # An address an earlier release accepted and intake hands out as stored.
    h.body["bestuurder"]["email"] = stored
    h.publish(h.ingediend())

    with caplog.at_level(logging.INFO):
        assert h.run() == 1
        h.clock.advance_to(NU + timedelta(days=1))
        assert h.run() == 0  # not retried

    assert h.mails() == []
    [row] = h.log()
    assert (row["status"], row["pogingen"], row["volgende_poging"]) == ("mislukt", 1, None)
    [announced] = _announced(h)
    assert isinstance(announced, public.NotificatieMislukt)
    assert (announced.reden_code, announced.definitief) == (reden, True)
    # One attempt on record, no error in the log, and nothing of the address in it.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any(r.getMessage() == "notification attempt" for r in caplog.records)
    for record in caplog.records:
        assert "geheim" not in json.dumps(record.__dict__, default=str).lower()


def test_the_smtp_servers_5xx_fails_for_good_at_once_and_its_4xx_is_retried(h: Harness) -> None:
    h.publish(h.ingediend())
    h.catcher.fail(1, code=550)

    assert h.run() == 1
    h.clock.advance_to(NU + timedelta(days=1))
    assert h.run() == 0

    assert h.mails() == []
    [row] = h.log()
    assert (row["status"], row["pogingen"]) == ("mislukt", 1)
    [announced] = _announced(h)
    assert isinstance(announced, public.NotificatieMislukt)
    assert (announced.reden_code, announced.definitief) == ("data_refused", True)

    # A 4xx for the next dossier's confirmation: retried, then sent.
    h.aanvraag_id = uuid4()
    h.recipients.dossiers[h.aanvraag_id] = aanmelding()
    h.publish(h.ingediend())
    h.catcher.fail(1, code=451)
    assert h.run() == 1
    [row] = h.log()
    assert (row["status"], row["pogingen"]) == ("gepland", 1)
    h.clock.advance_to(h.clock.now() + retry_wait(h, 1))
    assert h.run() == 1
    assert [row["status"] for row in h.log()] == ["verzonden"]
    assert len(h.mails()) == 1


def test_a_scheduling_outage_is_retried_later(h: Harness) -> None:
    _, gepland = h.plan_afspraak("gesprek_werkgever")
    h.feed(gepland)
    h.appointments.outage = True

    h.run()
    [row] = h.log()
    assert (row["status"], row["pogingen"]) == ("gepland", 1)
    assert h.recipients.handed_out == []
    [announced] = [p for e in h.stored_events() for p in to_public(e)]
    assert isinstance(announced, public.NotificatieMislukt)
    assert (announced.reden_code, announced.definitief) == (
        "scheduling_unreachable_connecterror",
        False,
    )

    h.appointments.outage = False
    h.clock.advance_to(NU + retry_wait(h, 1))
    h.run()
    assert len(h.mails()) == 1


def test_an_appointment_scheduling_does_not_know_fails_for_good(h: Harness) -> None:
    afspraak, gepland = h.plan_afspraak("gesprek_werkgever")
    del h.appointments.afspraken[afspraak.afspraak_id]
    h.feed(gepland)

    h.run()

    [row] = h.log()
    assert (row["status"], row["pogingen"]) == ("mislukt", 1)
    assert h.mails() == []


def test_an_appointment_of_another_dossier_is_never_mailed(h: Harness) -> None:
    afspraak, gepland = h.plan_afspraak("gesprek_werkgever")
    h.appointments.update(afspraak.afspraak_id, aanvraag_id=uuid4())
    h.feed(gepland)

    h.run()

    assert h.mails() == []
    assert [row["status"] for row in h.log()] == ["mislukt"]


# --- an SMTP outage (issue 16: mail is at least as durable as webhooks) --------------------------

#: An outage of the SMTP relay that the tests' short schedules span, or do not.
STORING = timedelta(minutes=10)


def _registrations(h: Harness, count: int) -> list[UUID]:
    dossiers = []
    for _ in range(count):
        h.aanvraag_id = uuid4()
        h.body = aanmelding()
        h.recipients.dossiers[h.aanvraag_id] = h.body
        h.publish(h.ingediend())
        dossiers.append(h.aanvraag_id)
    return dossiers


def _rows(h: Harness, dossiers: list[UUID]) -> list[dict[str, Any]]:
    tables = h.components.tables
    return [row.model_dump() for d in dossiers for row in tables.bezorgingen(aanvraag_id=d)]


def test_an_smtp_outage_of_ten_minutes_loses_no_mail(settings: Settings, tmp_path: Path) -> None:
    """The relay refuses connections for ten minutes; a schedule spanning 15 minutes (attempts at
    0, 1, 3, 7 and 15 minutes) tries through it, and every mail arrives once, after it ends."""
    catcher = MailCatcher(tmp_path / "mail", port=free_port())
    schedule = {"mail_retry_schedule_s": (60.0, 120.0, 240.0, 480.0), "mail_retry_jitter": 0.0}
    with harness_on(settings, catcher, **schedule) as h:
        catcher.stop()  # the outage begins
        dossiers = _registrations(h, 3)
        tried = 0
        while h.clock.now() < NU + STORING:
            tried += h.run()
            rows = _rows(h, dossiers)
            assert {(r["status"], r["reden_code"]) for r in rows} == {
                ("gepland", "connection_refused")
            }, "a mail failed for good during the outage"
            due = min(r["volgende_poging"] for r in rows)
            h.clock.advance_to(due)
        assert tried == 3 * 4, "every attempt of the outage was made"

        catcher.start()  # the outage is over; the next attempt is the schedule's last
        assert h.clock.now() == NU + timedelta(minutes=15)
        assert h.run() == 3

        rows = _rows(h, dossiers)
        assert {(r["status"], r["pogingen"], r["reden_code"]) for r in rows} == {
            ("verzonden", 5, None)
        }
        assert sorted(m.to for m in h.mails()) == sorted(
            (h.recipients.dossiers[d]["bestuurder"]["email"],) for d in dossiers
        ), "each mail arrived, once"


def test_an_smtp_outage_of_ten_minutes_on_the_default_schedule_loses_no_mail(
    settings: Settings, tmp_path: Path
) -> None:
    """The same outage on the schedule a deployment gets without configuring one (jitter
    included): every attempt in the ten minutes fails and leaves the mail planned with its
    reason; the first attempt after the outage sends each one, once."""
    assert (
        settings.mail_retry_schedule_s == Settings.model_fields["mail_retry_schedule_s"].default
    ), "the default schedule"
    catcher = MailCatcher(tmp_path / "mail", port=free_port())
    with harness_on(settings, catcher) as h:
        catcher.stop()  # the outage begins
        dossiers = _registrations(h, 3)
        tried = 0
        while True:
            tried += h.run()
            rows = _rows(h, dossiers)
            assert {(r["status"], r["reden_code"]) for r in rows} == {
                ("gepland", "connection_refused")
            }, "a mail failed for good during the outage"
            due = min(r["volgende_poging"] for r in rows)
            if due >= NU + STORING:
                break
            h.clock.advance_to(due)
        assert tried >= 3 * 8, "the default schedule tries often in the first ten minutes"

        catcher.start()  # the outage is over
        while (rows := _rows(h, dossiers)) and any(r["status"] == "gepland" for r in rows):
            h.clock.advance_to(min(r["volgende_poging"] for r in rows if r["status"] == "gepland"))
            h.run()
        assert {r["status"] for r in rows} == {"verzonden"}
        assert sorted(m.to for m in h.mails()) == sorted(
            (h.recipients.dossiers[d]["bestuurder"]["email"],) for d in dossiers
        ), "each mail arrived, once"


def test_a_mail_that_failed_in_an_outage_is_sent_again_with_its_message_id(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A schedule shorter than the outage gives up (reason on the failed-mail list); once the
    relay is back the secretariaat sends it again (recorded), and it arrives under its own
    Message-ID. Another one is sent again from the command line."""
    catcher = MailCatcher(tmp_path / "mail", port=free_port())
    schedule = {"mail_retry_schedule_s": (60.0,), "mail_retry_jitter": 0.0}
    with harness_on(settings, catcher, **schedule) as h, TestClient(h.components.api) as api:
        catcher.stop()
        [eerste, tweede] = _registrations(h, 2)
        assert h.run() == 2
        h.clock.advance_to(NU + timedelta(seconds=60))
        assert h.run() == 2
        h.clock.advance_to(NU + STORING)
        assert h.run() == 0, "given up: nothing is due"
        catcher.start()

        secretariaat = token(h.settings.data_dir, "secretariaat", sub="sec-1")
        mislukt = api.get(
            "/notificaties", params={"status": "mislukt"}, headers=secretariaat
        ).json()
        assert {(r["aanvraag_id"], r["pogingen"], r["reden_code"]) for r in mislukt} == {
            (str(eerste), 2, "connection_refused"),
            (str(tweede), 2, "connection_refused"),
        }
        [row] = [r for r in mislukt if r["aanvraag_id"] == str(eerste)]
        url = f"/notificaties/{row['notificatie_id']}/opnieuw"

        adviseur = token(h.settings.data_dir, "adviseur")
        assert api.post(url, headers=adviseur).status_code == 403
        answer = api.post(url, headers=secretariaat)
        assert answer.status_code == 202, answer.text
        assert answer.json()["status"] == "gepland"
        again = api.post(url, headers=secretariaat)
        assert (again.status_code, again.json()["code"]) == (409, "niet_mislukt")
        missing = api.post(f"/notificaties/{uuid4()}/opnieuw", headers=secretariaat)
        assert missing.status_code == 404

        # From the command line (the operator's database connection, not the API).
        with caplog.at_level(logging.INFO):
            [other] = [r for r in mislukt if r["aanvraag_id"] == str(tweede)]
            cli = resend(
                h.settings, UUID(other["notificatie_id"]), "beheerder-7", now=h.clock.now()
            )
            assert (cli.status, cli.reden_code) == ("gepland", "connection_refused")

            assert h.run() == 2
        rows = _rows(h, [eerste, tweede])
        assert {(r["status"], r["pogingen"], r["reden_code"]) for r in rows} == {
            ("verzonden", 3, None)
        }
        mails = {m.to[0]: m for m in h.mails()}
        assert len(h.mails()) == 2
        for dossier in (eerste, tweede):
            mail = mails[h.recipients.dossiers[dossier]["bestuurder"]["email"]]
            [planned] = [
                e
                for e in h.stored_events()
                if isinstance(e, NotificatieGepland) and e.aanvraag_id == dossier
            ]
            assert mail.message_id == make_message_id(
                planned.oorzaak_event_id, planned.soort, DOMAIN, planned.ontvanger
            )
        opnieuw = [e for e in h.stored_events() if isinstance(e, NotificatieOpnieuwGepland)]
        assert sorted(e.actor_role or "" for e in opnieuw) == ["beheerder", "secretariaat"]
        assert all(e.actor_id and e.actor_id not in ("sec-1", "beheerder-7") for e in opnieuw)
        for record in caplog.records:
            for dossier in (eerste, tweede):
                address = h.recipients.dossiers[dossier]["bestuurder"]["email"]
                assert address not in json.dumps(record.__dict__, default=str)


# --- what is stored ------------------------------------------------------------------------------


def test_two_replicas_sending_a_failed_mail_again_at_once_plan_it_once(h: Harness) -> None:
    """Both read the failed notification before either records: the one that loses is run
    again, finds the mail no longer failed and answers 409 ``niet_mislukt`` (as the API does
    to a second request), never a concurrency error."""
    h.publish(h.ingediend())
    h.catcher.fail(1, code=550)
    assert h.run() == 1
    [row] = h.log()
    assert row["status"] == "mislukt"
    both_read = threading.Barrier(2, timeout=30)

    class Replica(Notifications):
        """A process of the service whose first read waits until the other one has read too."""

        has_waited = False

        def load_or_none(self, aggregate_id: UUID, projector: Any) -> Any:
            found = super().load_or_none(aggregate_id, projector)
            if not self.has_waited:
                self.has_waited = True
                both_read.wait()
            return found

    env = h.settings.eventsourcing_env("notifications")
    replicas = [
        Replica(env, tables=projections.sql_tables, webhooks=sql_webhook_store) for _ in range(2)
    ]

    def opnieuw(app: Notifications) -> str:
        ctx = Context(now=h.clock.now(), actor_role="secretariaat")
        try:
            app.opnieuw(row["notificatie_id"], ctx)
        except Conflict as exc:
            return f"409 {exc.code}"
        return "202"

    try:
        with ThreadPoolExecutor(2) as pool:
            outcomes = sorted(pool.map(opnieuw, replicas))
    finally:
        for replica in replicas:
            replica.close()
    assert outcomes == ["202", "409 niet_mislukt"]
    assert [r["status"] for r in h.log()] == ["gepland"]
    opnieuw_gepland = [e for e in h.stored_events() if isinstance(e, NotificatieOpnieuwGepland)]
    assert len(opnieuw_gepland) == 1


def test_resend_on_the_command_line_refuses_what_it_cannot_publish(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``weerbaar mail resend`` builds the application itself: it checks as the service does.
    With a gateway defect for the event it records nothing is stored and the mail stays failed;
    with the fixed release the same command plans it again."""
    h.publish(h.ingediend())
    h.catcher.fail(1, code=550)
    assert h.run() == 1
    [row] = h.log()
    assert row["status"] == "mislukt"
    app = h.components.app
    mark = app.max_notification_id()
    with monkeypatch.context() as defect:
        defect.setattr(
            notifications_application,
            "to_public",
            gateway_defect(NotificatieOpnieuwGepland, to_public),
        )
        with pytest.raises(NietPubliceerbaar):
            resend(h.settings, row["notificatie_id"], "beheerder-7", now=h.clock.now())
    assert app.max_notification_id() == mark, "nothing stored"
    assert [r["status"] for r in h.log()] == ["mislukt"]

    again = resend(h.settings, row["notificatie_id"], "beheerder-7", now=h.clock.now())
    assert again.status == "gepland"
    assert [type(e) for e in h.stored_events()][-1] is NotificatieOpnieuwGepland


def test_notifications_store_no_personal_data_and_no_video_link(h: Harness) -> None:
    _toelichting_gevraagd(h, public.Partij.BESTUURDER)
    afspraak, gepland = h.plan_afspraak("toelichting")
    h.feed(gepland)
    h.feed(_verzet(h, afspraak))
    h.publish(
        public.RapportVerstrektAanBestuurder(
            aanvraag_id=h.aanvraag_id, rapport_id=uuid4(), versie=1
        )
    )
    h.run()
    assert len(h.mails()) == 3

    stored = json.dumps([e.model_dump(mode="json") for e in h.stored_events()])
    for value in [*personal_values(h.body), VIDEO_LINK, h.body["bestuurder"]["adres"]["postcode"]]:
        assert value not in stored
    with h.components.app.datastore.get_connection() as conn:
        tables = conn.execute(
            "SELECT (SELECT json_agg(d) FROM notifications.deliveries d)::text"
            " || (SELECT json_agg(a) FROM notifications.afspraken a)::text"
            " || (SELECT json_agg(t) FROM notifications.toelichtingsverzoeken t)::text AS dump"
        ).fetchone()
    assert tables is not None
    for value in [*personal_values(h.body), VIDEO_LINK]:
        assert value not in tables["dump"]


# --- the claim-check clients ---------------------------------------------------------------------


def _scheduling(handler: Any) -> SchedulingAppointments:
    return SchedulingAppointments(
        "http://scheduling.test", lambda: "svc-token", transport=httpx.MockTransport(handler)
    )


def test_scheduling_client_reads_the_appointment_with_the_service_token() -> None:
    afspraak_id, aanvraag_id = uuid4(), uuid4()
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "afspraak_id": str(afspraak_id),
                "aanvraag_id": str(aanvraag_id),
                "soort": "gesprek_werkgever",
                "vorm": "digitaal",
                "gepland_op": "2026-12-03T09:00:00Z",
                "duur_minuten": 60,
                "adviseur_id": "adviseur-7",
                "video_link": VIDEO_LINK,
                "status": "gepland",
                "partijen": ["werkgever"],
                "gevoerd_op": None,
            },
        )

    afspraak = _scheduling(handler).afspraak(afspraak_id)

    assert (afspraak.afspraak_id, afspraak.aanvraag_id) == (afspraak_id, aanvraag_id)
    assert afspraak.gepland_op == GEPLAND_OP
    assert afspraak.video_link == VIDEO_LINK
    assert afspraak.partijen == ("werkgever",)
    [request] = seen
    assert request.url.path == f"/internal/afspraken/{afspraak_id}"
    assert request.headers["Authorization"] == "Bearer svc-token"


@pytest.mark.parametrize(
    ("response", "error", "reason"),
    [
        (httpx.Response(404), AfspraakOnbekend, "afspraak_onbekend"),
        (httpx.Response(200, text="<html>"), AfspraakOnbekend, "afspraak_onleesbaar"),
        (httpx.Response(200, json={"afspraak_id": "x"}), AfspraakOnbekend, "afspraak_onleesbaar"),
        (httpx.Response(503), TransientError, "scheduling_status_503"),
        (httpx.Response(401), TransientError, "scheduling_status_401"),
    ],
)
def test_scheduling_client_tells_unknown_from_unavailable(
    response: httpx.Response, error: type[Exception], reason: str
) -> None:
    with pytest.raises(error) as caught:
        _scheduling(lambda _: response).afspraak(uuid4())
    assert str(caught.value) == reason


def test_scheduling_client_unreachable_is_transient() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(TransientError, match="scheduling_unreachable"):
        _scheduling(handler).afspraak(uuid4())


def test_the_secretariaat_address_comes_from_the_settings_not_from_intake() -> None:
    class Intake:
        def address(self, aanvraag_id: UUID, ontvanger: Ontvanger) -> str:
            return f"{ontvanger}@dossier.test"

    directory = RecipientDirectory(Intake(), SECRETARIAAT)

    assert directory.address(uuid4(), "secretariaat") == SECRETARIAAT
    assert directory.address(uuid4(), "werkgever") == "werkgever@dossier.test"
