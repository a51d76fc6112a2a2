"""E-mail addresses: exactly one bare address, checked by a maintained validator (email-validator).

Intake checks a registration's addresses with ``email_address`` and stores what it returns; the
mailer checks every dossier address with the same function again before sending, so what intake
accepts is what the mailer sends, unchanged. Addresses stored by an older release, which checked
less, are refused there (``AdresOngeldig``) instead of reaching an SMTP header.

Beyond the RFC 5322 syntax the validator checks, the rules are: no control or invisible format
characters, no RFC 2047 encoded words (``=?utf-8?q?...?=``), exactly one addressee (no lists, no
display names, no groups), no quoted local part, no IP literal, ASCII only (no SMTPUTF8: the
relay need not support it; an internationalised domain is sent in its ASCII form), and a domain
that can receive mail on the internet (not ``localhost``, ``.local``, ``.test``, ...). Nothing
is looked up in DNS. Errors carry a rule code, never the value.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from email.utils import parseaddr
from typing import Final

from email_validator import EmailNotValidError, validate_email

__all__ = ["MAX_LENGTH", "AdresOngeldig", "adres_sleutel", "email_address", "veilig_adres"]

#: RFC 5321's limit on a forward path, as the validator applies it.
MAX_LENGTH: Final = 254

#: Characters that separate addressees or wrap a display name or group in an address header.
_LIJST: Final = frozenset(",;")
_NAAM: Final = frozenset('<>"():')


class AdresOngeldig(ValueError):
    """The value is not one acceptable address; ``rule`` says which rule it breaks."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


def _regels(value: str) -> None:
    """The rules that keep a value from changing or adding to a mail header."""
    if len(value) > MAX_LENGTH:
        raise AdresOngeldig("te_lang")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in value):
        raise AdresOngeldig("stuurteken")
    if "=?" in value:
        raise AdresOngeldig("encoded_word")
    if any(c in _LIJST for c in value):
        raise AdresOngeldig("meer_dan_een_adres")
    if any(c in _NAAM for c in value):
        raise AdresOngeldig("weergavenaam")


def email_address(value: str) -> str:
    """The one address in ``value``, normalised (ASCII, domain in lower case); spaces around it
    are dropped. Raises ``AdresOngeldig`` when it is not one acceptable address."""
    value = value.strip(" ")
    _regels(value)
    try:
        checked = validate_email(
            value,
            check_deliverability=False,
            allow_smtputf8=False,
            allow_empty_local=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            globally_deliverable=True,
        )
    except EmailNotValidError:
        raise AdresOngeldig("ongeldig") from None
    # Always set without SMTPUTF8: the local part is ASCII and the domain has an ASCII form.
    assert checked.ascii_email is not None
    return checked.ascii_email


def veilig_adres(value: str) -> str:
    """One bare address that is safe in a header, for addresses from the configuration (which may
    be on a local domain such as ``weerbaarbestuur.local``); raises ``AdresOngeldig``."""
    _regels(value)
    _, address = parseaddr(value)
    if address != value or any(c.isspace() or not c.isascii() for c in address):
        raise AdresOngeldig("ongeldig")
    local, _, domain = address.partition("@")
    if not local or not domain:
        raise AdresOngeldig("ongeldig")
    return address


def adres_sleutel(address: str, key: bytes) -> str:
    """A keyed hash of the address, the same for every spelling that reaches the same mailbox
    (case, a ``+tag``): a key for counting mails to someone without storing the address."""
    local, _, domain = address.strip(" ").lower().rpartition("@")
    local = local.split("+", 1)[0]
    return hmac.new(key, f"{local}@{domain}".encode(), hashlib.sha256).hexdigest()
