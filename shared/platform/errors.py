"""Errors a user can cause, each with its HTTP status and a problem title.

`shared.platform.http` renders every `WeerbaarError` as `application/problem+json` (RFC 9457). The
`detail` and `code` of these errors are shown to the caller and may be logged, so they must
NEVER contain submitted values or personal data: describe the rule that was broken, not the
value that broke it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar, Final, NotRequired, TypedDict

__all__ = [
    "Conflict",
    "FieldError",
    "Geweigerd",
    "NietBeschikbaar",
    "NietGevonden",
    "NietIngelogd",
    "NietPubliceerbaar",
    "Ongeldig",
    "TeGroot",
    "TeVaak",
    "WeerbaarError",
    "field_path",
]

# A location part that looks like a field name is kept; anything else (a dict key or an unknown
# field the caller sent, which could be an e-mail address or a name) is masked.
_FIELD_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,63}")


def field_path(loc: Iterable[str | int]) -> str:
    """Render a validation location like `body.maatregelen.0.domein`, masking odd keys as `*`."""
    parts = []
    for part in loc:
        if isinstance(part, int) or _FIELD_NAME.fullmatch(part):
            parts.append(str(part))
        else:
            parts.append("*")
    return ".".join(parts)


class FieldError(TypedDict):
    """One invalid field: where it is and which rule it broke (never the submitted value)."""

    field: str
    rule: str
    message: NotRequired[str]


class WeerbaarError(Exception):
    """Base class of the errors a user can cause; carries what the problem response needs."""

    status: ClassVar[int] = 400
    title: ClassVar[str] = "Ongeldig verzoek / Bad request"
    slug: ClassVar[str] = "ongeldig-verzoek"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail
        self.code = code
        self.headers: dict[str, str] = dict(headers or {})

    @property
    def type_uri(self) -> str:
        """The RFC 9457 `type` of this problem."""
        return f"urn:weerbaar:problem:{self.slug}"


class NietGevonden(WeerbaarError):
    """404: the resource does not exist, or the caller may not know that it exists."""

    status = 404
    title = "Niet gevonden / Not found"
    slug = "niet-gevonden"


class Conflict(WeerbaarError):
    """409: a step out of order; `reason` says which step has to come first."""

    status = 409
    title = "Stap niet toegestaan in deze fase / Step out of order"
    slug = "conflict"

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason, code=code)
        self.reason = reason


class Geweigerd(WeerbaarError):
    """403: the caller is known but may not do this."""

    status = 403
    title = "Geen toegang / Forbidden"
    slug = "geweigerd"


class NietIngelogd(WeerbaarError):
    """401: no valid bearer token; `code` is a short reason such as `expired`."""

    status = 401
    title = "Niet ingelogd / Not authenticated"
    slug = "niet-ingelogd"

    def __init__(
        self,
        code: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail, code=code, headers=headers)


class Ongeldig(WeerbaarError):
    """422: the input breaks one or more rules, listed per field in `errors`."""

    status = 422
    title = "Ongeldige invoer / Invalid input"
    slug = "ongeldig"

    def __init__(
        self,
        errors: Sequence[FieldError],
        detail: str | None = None,
        *,
        code: str | None = None,
    ) -> None:
        super().__init__(detail or "De invoer voldoet niet aan de regels.", code=code)
        self.errors: list[FieldError] = list(errors)


class TeGroot(WeerbaarError):
    """413: the request body is larger than the service accepts."""

    status = 413
    title = "Verzoek te groot / Content too large"
    slug = "te-groot"


class NietBeschikbaar(WeerbaarError):
    """503: a dependency needed to answer (database, key server, audit log) is unavailable."""

    status = 503
    title = "Tijdelijk niet beschikbaar / Service unavailable"
    slug = "niet-beschikbaar"


class TeVaak(WeerbaarError):
    """429: too many requests of this kind from this source (or for this address) for now;
    ``Retry-After`` says when the window ends."""

    status = 429
    title = "Te veel verzoeken / Too many requests"
    slug = "te-vaak"

    def __init__(self, detail: str, *, retry_after_s: int, code: str = "te_vaak") -> None:
        super().__init__(detail, code=code, headers={"Retry-After": str(retry_after_s)})
        self.retry_after_s = retry_after_s


class NietPubliceerbaar(WeerbaarError):
    """500: a command's events could not be given a public form the contract accepts, so nothing
    was recorded (a defect of the service, not of the input: the input was checked first)."""

    status = 500
    title = "Interne fout / Internal server error"
    slug = "niet-publiceerbaar"

    def __init__(self, event_type: str, rules: str) -> None:
        super().__init__(
            "De wijziging kon niet worden vastgelegd: er is niets opgeslagen. Vermeld de trace_id"
            " als u contact opneemt.",
            code="niet_publiceerbaar",
        )
        self.event_type = event_type
        self.rules = rules
