"""Outgoing e-mail over SMTP (stdlib `smtplib`, synchronous: callers run `send` in a thread).

Failures come out as `TransientMailError` (retry later) or `PermanentMailError` (retrying will not
help). Their messages carry only a reason code and the SMTP reply code: server replies often echo
the recipient address, so neither the reply text nor the original exception travels with them.
"""

from __future__ import annotations

import hashlib
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

from shared.contracts.envelope import TRACEPARENT_PATTERN
from shared.platform.email_address import AdresOngeldig, veilig_adres

__all__ = [
    "Attachment",
    "MailError",
    "Mailer",
    "OutgoingMail",
    "PermanentMailError",
    "SmtpConfig",
    "TransientMailError",
    "build_email",
    "make_message_id",
]

_LINE_BREAK = re.compile(r"[\r\n]")
_DOMAIN = re.compile(
    r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)
_MESSAGE_ID = re.compile(r"^<[^<>@\s]+@[^<>@\s]+>$")
_CONTENT_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$")


class MailError(Exception):
    """A delivery failed; `reason` is a short code, `smtp_code` the server's reply code if any."""

    def __init__(self, reason: str, smtp_code: int | None = None) -> None:
        self.reason = reason
        self.smtp_code = smtp_code
        super().__init__(reason if smtp_code is None else f"{reason} (smtp {smtp_code})")


class TransientMailError(MailError):
    """The delivery may succeed later: connection problems, timeouts and 4xx replies."""


class PermanentMailError(MailError):
    """The delivery will not succeed as it is: 5xx replies, TLS verification, unsupported AUTH."""


def _single_address(value: str) -> str:
    """Check that `value` is one bare address, safe in a header; errors never repeat the value."""
    try:
        return veilig_adres(value)
    except AdresOngeldig as exc:
        raise ValueError(f"not one bare e-mail address ({exc.rule})") from None


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
        _single_address(addresses[0][1])
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


class Attachment(BaseModel):
    """A file attached to a mail; `content_type` may carry parameters (`text/calendar; a=b`)."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    filename: str = Field(min_length=1, max_length=200)
    content_type: str
    content: bytes = Field(repr=False)

    @field_validator("filename")
    @classmethod
    def _plain_filename(cls, value: str) -> str:
        if _LINE_BREAK.search(value) or "/" in value or "\\" in value:
            raise ValueError("filename must be a plain name without line breaks or slashes")
        return value

    @field_validator("content_type")
    @classmethod
    def _valid_content_type(cls, value: str) -> str:
        if _LINE_BREAK.search(value):
            raise ValueError("content_type contains a line break")
        mime_type, *params = (part.strip() for part in value.split(";"))
        if not _CONTENT_TYPE.match(mime_type):
            raise ValueError("content_type must look like type/subtype")
        for param in params:
            key, sep, _ = param.partition("=")
            if not sep or not key.strip():
                raise ValueError("content_type parameters must look like key=value")
        return value

    def mime_parts(self) -> tuple[str, str, dict[str, str]]:
        """Split `content_type` into maintype, subtype and parameters."""
        mime_type, *params = (part.strip() for part in self.content_type.split(";"))
        maintype, subtype = mime_type.lower().split("/")
        parsed: dict[str, str] = {}
        for param in params:
            key, _, value = param.partition("=")
            parsed[key.strip().lower()] = value.strip().strip('"')
        return maintype, subtype, parsed


class OutgoingMail(BaseModel):
    """One mail to one recipient. Personal fields are kept out of `repr` so logging it is safe."""

    model_config = ConfigDict(frozen=True, hide_input_in_errors=True)

    to: str = Field(repr=False)
    subject: str = Field(min_length=1, repr=False)
    text: str = Field(repr=False)
    html: str | None = Field(default=None, repr=False)
    attachments: tuple[Attachment, ...] = Field(default=(), repr=False)
    message_id: str
    #: W3C trace context of the attempt, sent as the ``Traceparent`` header (no personal data).
    traceparent: str | None = Field(default=None, pattern=TRACEPARENT_PATTERN)

    @field_validator("to")
    @classmethod
    def _to_is_one_address(cls, value: str) -> str:
        return _single_address(value)

    @field_validator("subject")
    @classmethod
    def _subject_on_one_line(cls, value: str) -> str:
        if _LINE_BREAK.search(value):
            raise ValueError("subject contains a line break")
        return value

    @field_validator("message_id")
    @classmethod
    def _message_id_shape(cls, value: str) -> str:
        if not _MESSAGE_ID.match(value):
            raise ValueError("message_id must look like <local@domain>")
        return value


def make_message_id(cause_event_id: str, template: str, domain: str, recipient: str = "") -> str:
    """Return a Message-ID that is the same every time for one (cause event, template, recipient).

    A retried or redelivered notification then carries the same Message-ID, so receivers can
    recognise the duplicate. `recipient` tells apart the mails one event sends to several
    people; pass an opaque key (a role or an actor id), not an address. The parts are hashed, so
    nothing of them can be read back from the header.
    """
    if not cause_event_id or not template:
        raise ValueError("cause_event_id and template are required")
    if not _DOMAIN.match(domain):
        raise ValueError("domain must be a DNS name")
    parts = "\x1f".join((cause_event_id, template, recipient))
    digest = hashlib.sha256(parts.encode("utf-8")).hexdigest()[:40]
    return f"<weerbaar.{digest}@{domain}>"


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
