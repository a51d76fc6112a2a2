"""The mailer against a real SMTP server: the development mailcatcher, in process and standalone."""

from __future__ import annotations

import signal
import subprocess
import sys
import traceback
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.notifications.adapters.smtp import Mailer, SmtpConfig
from services.notifications.domain.mail import (
    Attachment,
    MailError,
    OutgoingMail,
    PermanentMailError,
    TransientMailError,
    make_message_id,
)
from tools.mailcatcher import MailCatcher, free_port, list_messages

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
SENT_AT = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
BODY = "Uw afspraak is bevestigd. Dossier 6f1c."
ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Weerbaar//NL\r\nMETHOD:REQUEST\r\n"
    "BEGIN:VEVENT\r\nUID:afspraak-1@weerbaar.test\r\nDTSTART:20261203T090000Z\r\n"
    "SUMMARY:Gesprek\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def recipient() -> str:
    return f"bestuurder-{uuid.uuid4().hex[:10]}@example.org"


def mailer_for(port: int) -> Mailer:
    config = SmtpConfig(
        host="127.0.0.1",
        port=port,
        from_address="CCV Weerbaar bestuur <noreply@weerbaar.test>",
        timeout_s=5,
        helo_name="notifications.weerbaar.test",
    )
    return Mailer(config, clock=lambda: SENT_AT)


def mail_to(address: str, *, attachments: tuple[Attachment, ...] = ()) -> OutgoingMail:
    return OutgoingMail(
        to=address,
        subject="Bevestiging afspraak (dossier 6f1c)",
        text=BODY,
        html=f"<p>{BODY}</p>",
        attachments=attachments,
        message_id=make_message_id(str(uuid.uuid4()), "afspraak_bevestigd", "weerbaar.test"),
    )


def assert_leaks_nothing(error: MailError, address: str) -> None:
    """Neither the message nor a logged traceback may show the recipient or the body."""
    shown = "".join(traceback.format_exception(error)) + repr(error)
    assert address not in shown
    assert address.split("@", maxsplit=1)[0] not in shown
    assert BODY not in shown


@pytest.fixture
def catcher(tmp_path: Path) -> Iterator[MailCatcher]:
    with MailCatcher(tmp_path / "mail") as running:
        yield running


def test_mail_with_calendar_attachment_arrives_intact(catcher: MailCatcher) -> None:
    address = recipient()
    invite = Attachment(
        filename="afspraak.ics",
        content_type="text/calendar; method=REQUEST",
        content=ICS.encode(),
    )
    mail = mail_to(address, attachments=(invite,))

    mailer_for(catcher.port).send(mail)

    [caught] = list_messages(catcher.directory)
    assert caught.subject == "Bevestiging afspraak (dossier 6f1c)"
    assert caught.to == (address,)
    assert caught.sender == "noreply@weerbaar.test"
    assert caught.message_id == mail.message_id
    assert caught.date == SENT_AT
    message = caught.message()
    assert message["To"] == address
    assert message["From"] == "CCV Weerbaar bestuur <noreply@weerbaar.test>"
    plain = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert plain is not None
    assert plain.get_content().strip() == BODY
    assert html is not None
    assert html.get_content().strip() == f"<p>{BODY}</p>"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == "afspraak.ics"
    assert attachment.get_content_type() == "text/calendar"
    assert attachment.get_param("method") == "REQUEST"
    assert attachment.get_content() == ICS


def test_a_resent_mail_keeps_its_message_id(catcher: MailCatcher) -> None:
    mail = mail_to(recipient())
    mailer = mailer_for(catcher.port)

    mailer.send(mail)
    mailer.send(mail)

    caught = list_messages(catcher.directory)
    assert len(caught) == 2
    assert {c.message_id for c in caught} == {mail.message_id}
    assert len({c.path for c in caught}) == 2


def test_message_id_is_stable_per_event_template_and_recipient() -> None:
    event_id = str(uuid.uuid4())

    first = make_message_id(event_id, "bevestiging_aanvraag", "weerbaar.test", "bestuurder")

    assert first == make_message_id(event_id, "bevestiging_aanvraag", "weerbaar.test", "bestuurder")
    assert first.startswith("<") and first.endswith("@weerbaar.test>")
    assert event_id not in first and "bestuurder" not in first
    others = {
        make_message_id(str(uuid.uuid4()), "bevestiging_aanvraag", "weerbaar.test", "bestuurder"),
        make_message_id(event_id, "afspraak_gepland", "weerbaar.test", "bestuurder"),
        make_message_id(event_id, "bevestiging_aanvraag", "weerbaar.test", "werkgever"),
    }
    assert first not in others and len(others) == 3


def test_451_from_the_server_is_transient_and_the_retry_succeeds(catcher: MailCatcher) -> None:
    address = recipient()
    mail = mail_to(address)
    mailer = mailer_for(catcher.port)
    catcher.fail_next = 1

    with pytest.raises(TransientMailError) as caught:
        mailer.send(mail)

    assert caught.value.smtp_code == 451
    assert list_messages(catcher.directory) == []
    assert_leaks_nothing(caught.value, address)
    mailer.send(mail)
    [stored] = list_messages(catcher.directory)
    assert stored.message_id == mail.message_id


def test_5xx_from_the_server_is_permanent(catcher: MailCatcher) -> None:
    address = recipient()
    catcher.fail(1, code=550)

    with pytest.raises(PermanentMailError) as caught:
        mailer_for(catcher.port).send(mail_to(address))

    assert caught.value.smtp_code == 550
    assert_leaks_nothing(caught.value, address)
    assert list_messages(catcher.directory) == []


def test_closed_port_is_transient() -> None:
    address = recipient()
    closed = free_port()

    with pytest.raises(TransientMailError) as caught:
        mailer_for(closed).send(mail_to(address))

    assert caught.value.reason == "connection_refused"
    assert caught.value.smtp_code is None
    assert_leaks_nothing(caught.value, address)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_standalone_catcher_stores_mail_and_stops_on_signal(
    tmp_path: Path, stop_signal: signal.Signals
) -> None:
    directory = tmp_path / "mail"
    process = subprocess.Popen(
        [sys.executable, "-m", "tools.mailcatcher", "--dir", str(directory), "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready = process.stdout.readline()
        assert ready.startswith("mailcatcher listening on 127.0.0.1:"), ready
        port = int(ready.split()[3].rsplit(":", 1)[1])
        address = recipient()
        mail = mail_to(address)

        mailer_for(port).send(mail)

        [caught] = list_messages(directory)
        assert caught.message_id == mail.message_id
        process.send_signal(stop_signal)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.stderr is not None
    stderr = process.stderr.read()
    assert "Traceback" not in stderr
    assert address not in stderr
    assert "mailcatcher stopped" in stderr
