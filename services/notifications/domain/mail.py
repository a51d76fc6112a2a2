"""The mail as it goes out and how sending it can fail: values the sender composes and the SMTP
adapter (``adapters.smtp``) sends, without any I/O.

Failures come out as `TransientMailError` (retry later) or `PermanentMailError` (retrying will not
help). Their messages carry only a reason code and the SMTP reply code: server replies often echo
the recipient address, so neither the reply text nor the original exception travels with them.
"""

from __future__ import annotations

import hashlib
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.contracts.envelope import TRACEPARENT_PATTERN
from shared.platform.email_address import AdresOngeldig, veilig_adres

__all__ = [
    "Attachment",
    "MailError",
    "OutgoingMail",
    "PermanentMailError",
    "TransientMailError",
    "make_message_id",
    "single_address",
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


def single_address(value: str) -> str:
    """Check that `value` is one bare address, safe in a header; errors never repeat the value."""
    try:
        return veilig_adres(value)
    except AdresOngeldig as exc:
        raise ValueError(f"not one bare e-mail address ({exc.rule})") from None


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
        return single_address(value)

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
