"""Outgoing e-mail over SMTP (stdlib `smtplib`, synchronous: callers run `send` in a thread).

Failures are classified as `TransientMailError` (retry later) or `PermanentMailError` (retrying
will not help), with a reason code and the SMTP reply code only (``domain.mail``).
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, getaddresses, parseaddr

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from services.notifications.domain.mail import (
    MailError,
    OutgoingMail,
    PermanentMailError,
    TransientMailError,
    single_address,
)

__all__ = ["Mailer", "SmtpConfig", "build_email"]

_LINE_BREAK = re.compile(r"[\r\n]")


class SmtpConfig(BaseModel):
    """How to reach the SMTP relay. `ssl` is implicit TLS (port 465), `starttls` upgrades."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    host: str
    port: int = Field(default=25, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = False
    ssl: bool = False
    timeout_s: float = Field(default=10.0, gt=0)
    from_address: str
    # smtplib otherwise says EHLO with socket.getfqdn(), which can stall on a slow resolver.
    helo_name: str | None = None

    @field_validator("from_address")
    @classmethod
    def _from_address_is_an_address(cls, value: str) -> str:
        if _LINE_BREAK.search(value):
            raise ValueError("from_address contains a line break")
        addresses = getaddresses([value])
        if len(addresses) != 1:
            raise ValueError("from_address must hold exactly one address")
        single_address(addresses[0][1])
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SmtpConfig:
        if self.ssl and self.starttls:
            raise ValueError("choose either ssl (implicit TLS) or starttls, not both")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together")
        return self

    @property
    def envelope_from(self) -> str:
        """The bare address of `from_address`, used as the SMTP envelope sender."""
        return parseaddr(self.from_address)[1]


def build_email(message: OutgoingMail, from_address: str, now: datetime) -> EmailMessage:
    """Build the MIME message: text, optional HTML alternative, then the attachments."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    email = EmailMessage(policy=SMTP_POLICY)
    email["From"] = from_address
    email["To"] = message.to
    email["Subject"] = message.subject
    email["Date"] = format_datetime(now.astimezone(UTC))
    email["Message-ID"] = message.message_id
    if message.traceparent is not None:
        email["Traceparent"] = message.traceparent
    email.set_content(message.text)
    if message.html is not None:
        email.add_alternative(message.html, subtype="html")
    for attachment in message.attachments:
        maintype, subtype, params = attachment.mime_parts()
        email.add_attachment(
            attachment.content,
            maintype=maintype,
            subtype=subtype,
            filename=attachment.filename,
            params=params,
        )
    return email


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Mailer:
    """Sends `OutgoingMail` through one SMTP relay, one connection per mail."""

    def __init__(self, config: SmtpConfig, *, clock: Callable[[], datetime] = _utc_now) -> None:
        self._config = config
        self._clock = clock

    def send(self, message: OutgoingMail) -> None:
        """Deliver `message` or raise `TransientMailError` / `PermanentMailError`."""
        email = build_email(message, self._config.from_address, self._clock())
        try:
            self._deliver(email, message.to)
            return
        except OSError as exc:  # smtplib's errors are OSErrors too
            error = _classify(exc)
        # Raised outside the handler so the original exception (whose text may hold the
        # recipient address) is not attached as __context__ and never reaches a traceback log.
        raise error

    def _deliver(self, email: EmailMessage, recipient: str) -> None:
        config = self._config
        smtp: smtplib.SMTP
        if config.ssl:
            smtp = smtplib.SMTP_SSL(
                config.host,
                config.port,
                local_hostname=config.helo_name,
                timeout=config.timeout_s,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(
                config.host,
                config.port,
                local_hostname=config.helo_name,
                timeout=config.timeout_s,
            )
        try:
            if config.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if config.username is not None and config.password is not None:
                smtp.login(config.username, config.password.get_secret_value())
            smtp.send_message(email, from_addr=config.envelope_from, to_addrs=[recipient])
        finally:
            _hang_up(smtp)


def _hang_up(smtp: smtplib.SMTP) -> None:
    # Once DATA is accepted the mail is delivered: a failing QUIT must not turn that into an
    # error (and a retry that sends it twice), so it only closes the socket.
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


_RESPONSE_REASONS: tuple[tuple[type[smtplib.SMTPResponseException], str], ...] = (
    (smtplib.SMTPConnectError, "connect_refused"),
    (smtplib.SMTPHeloError, "helo_refused"),
    (smtplib.SMTPAuthenticationError, "auth_failed"),
    (smtplib.SMTPSenderRefused, "sender_refused"),
    (smtplib.SMTPDataError, "data_refused"),
)


def _by_code(reason: str, code: int) -> MailError:
    if 500 <= code <= 599:
        return PermanentMailError(reason, code)
    # 4xx is transient by definition; anything else (smtplib uses -1 for a dropped line) is a
    # broken conversation, which a later attempt may not repeat.
    return TransientMailError(reason, code)


# First match wins, so subclasses come before their bases (SMTPException is an OSError).
_FAILURE_KINDS: tuple[tuple[type[OSError], type[MailError], str], ...] = (
    (smtplib.SMTPServerDisconnected, TransientMailError, "disconnected"),
    (smtplib.SMTPNotSupportedError, PermanentMailError, "not_supported"),
    # e.g. "No suitable authentication method found": configuration, not bad luck.
    (smtplib.SMTPException, PermanentMailError, "smtp_protocol"),
    (ssl.SSLCertVerificationError, PermanentMailError, "tls_verify_failed"),
    (ssl.SSLError, TransientMailError, "tls_error"),
    (ConnectionRefusedError, TransientMailError, "connection_refused"),
    (TimeoutError, TransientMailError, "timeout"),
    (socket.gaierror, TransientMailError, "dns_error"),
)


def _classify(exc: OSError) -> MailError:
    """Map an smtplib or socket failure to a mail error without copying its text."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return _by_code("recipient_refused", max(codes) if codes else -1)
    if isinstance(exc, smtplib.SMTPResponseException):
        reason = next((r for cls, r in _RESPONSE_REASONS if isinstance(exc, cls)), "smtp_reply")
        return _by_code(reason, exc.smtp_code)
    for kind, error, reason in _FAILURE_KINDS:
        if isinstance(exc, kind):
            return error(reason)
    return TransientMailError("network_error")
