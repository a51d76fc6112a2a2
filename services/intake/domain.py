"""Intake's domain: the registration (aanvraag) and the rules about who may register.

Knows nothing of HTTP, NATS or SQL. The registration's personal data lives here, in intake's own
event store, encrypted with the dossier's key; the public contract (``shared.contracts``)
announces only ids, statuses and dates. Once the personal data are forgotten, an aanmelding
loads as a ``VergetenAanmelding``: what it said that is not personal (who submitted, the
office, the organisation, consent), without the names, addresses, numbers and the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints
from pydantic_core import PydanticCustomError

from shared.platform.email_address import MAX_LENGTH, AdresOngeldig, email_address
from shared.platform.errors import Conflict
from shared.platform.model import (
    OMIT,
    VERGETEN,
    Aggregate,
    Context,
    DomainEvent,
    first_event,
    next_event,
)


class Functie(StrEnum):
    """The office of the bestuurder."""

    BURGEMEESTER = "burgemeester"
    WETHOUDER = "wethouder"
    GEDEPUTEERDE = "gedeputeerde"
    COMMISSARIS_VAN_DE_KONING = "commissaris_van_de_koning"
    DIJKGRAAF = "dijkgraaf"
    VOORZITTER_WATERSCHAP = "voorzitter_waterschap"
    DAGELIJKS_BESTUURSLID_WATERSCHAP = "dagelijks_bestuurslid_waterschap"
    RAADSLID = "raadslid"
    STATENLID = "statenlid"
    OVERIG = "overig"


#: Regeling beveiligingsmaatregelen decentrale bestuurders (in force 2024-01-01).
BINNEN_REGELING: frozenset[Functie] = frozenset(
    {
        Functie.BURGEMEESTER,
        Functie.WETHOUDER,
        Functie.GEDEPUTEERDE,
        Functie.COMMISSARIS_VAN_DE_KONING,
        Functie.DIJKGRAAF,
        Functie.VOORZITTER_WATERSCHAP,
        Functie.DAGELIJKS_BESTUURSLID_WATERSCHAP,
    }
)


def buiten_regeling_reden(functie: Functie) -> Literal["raadslid", "statenlid", "overig"] | None:
    """Why an aanvraag falls outside the regeling, or None when it falls inside."""
    if functie in BINNEN_REGELING:
        return None
    if functie is Functie.RAADSLID:
        return "raadslid"
    if functie is Functie.STATENLID:
        return "statenlid"
    return "overig"


Naam = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


def _email(value: str) -> str:
    try:
        return email_address(value)
    except AdresOngeldig as exc:
        # The rule names the field's problem in the 422; the value never appears in it.
        raise PydanticCustomError(
            f"email_{exc.rule}", "Not one acceptable e-mail address ({rule})", {"rule": exc.rule}
        ) from None


#: One bare address, normalised: what the mailer checks again and sends
#: (``shared.platform.email_address``).
Email = Annotated[str, StringConstraints(max_length=MAX_LENGTH), AfterValidator(_email)]
#: An address as an earlier release accepted it, which checked less (see ``EerdereAanmelding``).
EerderEmail = str
# At least one digit; pydantic's (Rust) regex engine has no look-ahead, hence this shape.
Telefoon = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=6,
        max_length=21,
        pattern=r"^\+?[0-9 ()-]*[0-9][0-9 ()-]*$",
    ),
]
OrganisatieCode = Annotated[str, StringConstraints(pattern=r"^(GM[0-9]{4}|PV[0-9]{2}|WS[0-9]{4})$")]
Postcode = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[1-9][0-9]{3} ?[A-Z]{2}$")
]


class Adres(BaseModel):
    """A Dutch address (the home the woningscan is about)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    straat: Naam
    huisnummer: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10)
    ]
    postcode: Postcode
    woonplaats: Naam


class Bestuurder(BaseModel):
    """The administrator the dossier is about."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    naam: Naam
    functie: Functie
    email: Email
    telefoon: Telefoon
    adres: Adres


class Werkgever(BaseModel):
    """The employer organisation and its contact person."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    organisatie: Naam
    organisatie_code: OrganisatieCode = Field(description="CBS code, e.g. GM0363, PV27, WS0155")
    contactpersoon: Naam
    email: Email
    telefoon: Telefoon


def _must_consent(value: bool) -> bool:
    if value is not True:
        raise PydanticCustomError("toestemming_vereist", "Consent is required")
    return value


class Aanmelding(BaseModel):
    """What the public registration form submits."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ingediend_door: Literal["bestuurder", "werkgever"]
    bestuurder: Bestuurder
    werkgever: Werkgever
    reden: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]
    verhuizing_gepland: bool = False
    toestemming: Annotated[StrictBool, AfterValidator(_must_consent)] = Field(
        description="Consent to process the personal data for the security advice (JSON true).",
    )

    @property
    def aanvrager_email(self) -> str:
        """The submitter's e-mail address (where the confirmation goes)."""
        return (
            self.bestuurder.email if self.ingediend_door == "bestuurder" else self.werkgever.email
        )


class EerdereBestuurder(Bestuurder):
    """The bestuurder of an aanmelding stored by an earlier release (see EerdereAanmelding)."""

    email: EerderEmail


class EerdereWerkgever(Werkgever):
    """The werkgever of an aanmelding stored by an earlier release (see EerdereAanmelding)."""

    email: EerderEmail


class EerdereAanmelding(Aanmelding):
    """An aanmelding stored by an earlier release whose e-mail address today's rules refuse.

    Stored events never change, so such an aanmelding must still load: as this subclass, whose
    addresses are taken as stored. It is an Aanmelding to every reader; the mailer checks the
    address again and refuses it (the notification fails for good, with a reason code).
    """

    bestuurder: EerdereBestuurder
    werkgever: EerdereWerkgever


class VergetenBestuurder(BaseModel):
    """The bestuurder of a forgotten dossier: only the office remains."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    functie: Functie


class VergetenWerkgever(BaseModel):
    """The werkgever of a forgotten dossier: the organisation, not its contact person."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    organisatie: Naam
    organisatie_code: OrganisatieCode


class VergetenAanmelding(BaseModel):
    """An aanmelding whose personal data were forgotten: what remains is not personal."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ingediend_door: Literal["bestuurder", "werkgever"]
    bestuurder: VergetenBestuurder
    werkgever: VergetenWerkgever
    verhuizing_gepland: bool = False
    toestemming: Annotated[StrictBool, AfterValidator(_must_consent)]


# --- events (private: they carry the personal data) ---


class AanvraagOntvangen(DomainEvent):
    """A registration was received (holds the personal data; announced as AanvraagIngediend)."""

    personal: ClassVar[Mapping[str, object]] = {
        "aanmelding.bestuurder.naam": OMIT,
        "aanmelding.bestuurder.email": OMIT,
        "aanmelding.bestuurder.telefoon": OMIT,
        "aanmelding.bestuurder.adres": OMIT,
        "aanmelding.werkgever.contactpersoon": OMIT,
        "aanmelding.werkgever.email": OMIT,
        "aanmelding.werkgever.telefoon": OMIT,
        "aanmelding.reden": OMIT,
    }

    # The first that validates: the whole aanmelding, (forgotten) what remains of it, or one an
    # earlier release stored with an address today's rules refuse.
    aanmelding: Annotated[
        Aanmelding | VergetenAanmelding | EerdereAanmelding, Field(union_mode="left_to_right")
    ]


class AanvraagIngetrokken(DomainEvent):
    """The bestuurder withdrew, or the secretariat withdrew on their behalf."""


AfsluitReden = Literal["alle_maatregelen_uitgevoerd", "gesloten_door_secretariaat"]


class DossierAfgesloten(DomainEvent):
    """The dossier was closed: all measures done, or closed by the secretariat with a reason."""

    personal: ClassVar[Mapping[str, object]] = {"toelichting": VERGETEN}

    reden: AfsluitReden
    toelichting: str | None  # the secretariat's own words: private, never published
    maatregelen_totaal: int
    maatregelen_uitgevoerd: int


VergeetReden = Literal[
    "verzoek_betrokkene",
    "toestemming_ingetrokken",
    "bewaartermijn_verstreken",
    "onrechtmatig_verwerkt",
    "wettelijke_verplichting",
]
"""Why personal data are erased (the grounds of AVG article 17), as a code: never free text."""


class PersoonsgegevensVergeten(DomainEvent):
    """The dossier's personal data were made unreadable (their keys destroyed) in these services."""

    reden: VergeetReden
    diensten: tuple[str, ...]


class PersoonsgegevensVerstrekt(DomainEvent):
    """Personal data of a dossier were handed to a service or person (who: the actor fields)."""

    aanvraag_id: UUID
    gegevens: Literal["email_aanvrager", "email_bestuurder", "email_werkgever", "adres_bestuurder"]


BewaarplichtReden = Literal["rechtszaak", "klacht", "onderzoek", "toezicht"]
"""Why a dossier's history must be kept beyond its retention periods (a legal hold)."""


class BewaarplichtOpgelegd(DomainEvent):
    """A legal hold was placed on the dossier: retention destroys nothing of it."""

    reden: BewaarplichtReden


class BewaarplichtOpgeheven(DomainEvent):
    """The legal hold was lifted: the retention periods apply again."""


class GegevensVernietigd(DomainEvent):
    """Entries of one public event type of the dossier's read models were destroyed (retention).

    Recorded in the transaction that deletes them. The event stores are not touched.
    """

    soort: str
    aantal: int
    tot: datetime


# --- aggregate ---

Status = Literal["ingediend", "ingetrokken", "afgesloten"]


class Aanvraag(Aggregate):
    """One registration, the key of the dossier in every service."""

    aanmelding: Aanmelding | VergetenAanmelding
    ontvangen_op: datetime
    status: Status = "ingediend"
    vergeten_op: datetime | None = None
    bewaarplicht: BewaarplichtReden | None = None

    @property
    def binnen_regeling(self) -> bool:
        """Whether the function falls under the regeling."""
        return buiten_regeling_reden(self.aanmelding.bestuurder.functie) is None


def dien_in(aanvraag_id: UUID, aanmelding: Aanmelding, ctx: Context) -> AanvraagOntvangen:
    """Register a new aanvraag; always accepted (outside the regeling is recorded, not refused)."""
    return first_event(AanvraagOntvangen, aanvraag_id, ctx, aanmelding=aanmelding)


def trek_in(aanvraag: Aanvraag, ctx: Context) -> AanvraagIngetrokken | None:
    """Withdraw the aanvraag; allowed at any time before the dossier is closed.

    None when it was already withdrawn: a repeated request has no second effect.
    """
    if aanvraag.status == "afgesloten":
        raise Conflict("Het dossier is afgesloten en kan niet meer worden ingetrokken.")
    if aanvraag.status == "ingetrokken":
        return None
    return next_event(AanvraagIngetrokken, aanvraag, ctx)


def sluit_af(
    aanvraag: Aanvraag,
    reden: AfsluitReden,
    toelichting: str | None,
    totaal: int,
    uitgevoerd: int,
    ctx: Context,
) -> DossierAfgesloten | None:
    """Close the dossier; None when it is already closed (one effect however often asked)."""
    if aanvraag.status == "afgesloten":
        return None
    if aanvraag.status == "ingetrokken":
        raise Conflict("De aanvraag is ingetrokken; een ingetrokken dossier wordt niet afgesloten.")
    if reden == "alle_maatregelen_uitgevoerd" and (totaal == 0 or uitgevoerd < totaal):
        raise Conflict("Nog niet alle maatregelen zijn uitgevoerd.")
    return next_event(
        DossierAfgesloten,
        aanvraag,
        ctx,
        reden=reden,
        toelichting=toelichting,
        maatregelen_totaal=totaal,
        maatregelen_uitgevoerd=uitgevoerd,
    )


def vergeet(
    aanvraag: Aanvraag, reden: VergeetReden, diensten: Sequence[str], ctx: Context
) -> PersoonsgegevensVergeten | None:
    """Record that the personal data were forgotten; None when that was recorded before."""
    if aanvraag.vergeten_op is not None:
        return None
    return next_event(
        PersoonsgegevensVergeten, aanvraag, ctx, reden=reden, diensten=tuple(diensten)
    )


def leg_bewaarplicht_op(
    aanvraag: Aanvraag, reden: BewaarplichtReden, ctx: Context
) -> BewaarplichtOpgelegd | None:
    """Place a legal hold; None when this hold is in place already (one effect however often)."""
    if aanvraag.bewaarplicht == reden:
        return None
    return next_event(BewaarplichtOpgelegd, aanvraag, ctx, reden=reden)


def hef_bewaarplicht_op(aanvraag: Aanvraag, ctx: Context) -> BewaarplichtOpgeheven | None:
    """Lift the legal hold; None when there is none."""
    if aanvraag.bewaarplicht is None:
        return None
    return next_event(BewaarplichtOpgeheven, aanvraag, ctx)


def vernietig(
    aanvraag: Aanvraag, soort: str, aantal: int, tot: datetime, ctx: Context
) -> GegevensVernietigd:
    """Record a destruction; refused under a legal hold or before the dossier ended."""
    if aanvraag.bewaarplicht is not None:
        raise Conflict("Op het dossier rust een bewaarplicht; er wordt niets vernietigd.")
    if aanvraag.status == "ingediend":
        raise Conflict("Het dossier loopt nog; er wordt niets vernietigd.")
    return next_event(GegevensVernietigd, aanvraag, ctx, soort=soort, aantal=aantal, tot=tot)


def project(aanvraag: Aanvraag | None, events: Iterable[DomainEvent]) -> Aanvraag | None:
    """Rebuild an Aanvraag from its events."""
    for event in events:
        if isinstance(event, AanvraagOntvangen):
            aanvraag = Aanvraag(
                id=event.originator_id,
                version=event.originator_version,
                aanmelding=event.aanmelding,
                ontvangen_op=event.timestamp,
            )
        elif isinstance(event, AanvraagIngetrokken | DossierAfgesloten):
            assert aanvraag is not None
            status = "ingetrokken" if isinstance(event, AanvraagIngetrokken) else "afgesloten"
            aanvraag = aanvraag.model_copy(
                update={"version": event.originator_version, "status": status}
            )
        elif isinstance(event, PersoonsgegevensVergeten):
            assert aanvraag is not None
            aanvraag = aanvraag.model_copy(
                update={"version": event.originator_version, "vergeten_op": event.timestamp}
            )
        elif isinstance(event, BewaarplichtOpgelegd | BewaarplichtOpgeheven | GegevensVernietigd):
            assert aanvraag is not None
            update: dict[str, object] = {"version": event.originator_version}
            if isinstance(event, BewaarplichtOpgelegd):
                update["bewaarplicht"] = event.reden
            elif isinstance(event, BewaarplichtOpgeheven):
                update["bewaarplicht"] = None
            aanvraag = aanvraag.model_copy(update=update)
    return aanvraag
