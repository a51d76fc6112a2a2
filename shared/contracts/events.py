"""The public events: the versioned contract between the services and with integrators.

Each model is the `data` of one CloudEvent type. Payloads carry ids, statuses, dates, roles and
counts only; names, addresses, phone numbers, e-mail addresses and free text stay in the owning
service. Who acted travels in the envelope (`actorrole`, `actorid`), not here.

Evolving a model: adding an optional field is compatible, but it still changes the schema, so it
gets a new model with `version = N + 1` (the lock in `schemas/versions.lock.json` enforces that).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.envelope import OPAQUE_ID_PATTERN, UtcDatetime

# --- value types ---------------------------------------------------------------------------------


class Rol(StrEnum):
    """A role of the system (see domain.md, Roles)."""

    AANVRAGER = "aanvrager"
    BESTUURDER = "bestuurder"
    WERKGEVER = "werkgever"
    SECRETARIAAT = "secretariaat"
    ADVISEUR = "adviseur"
    BVA = "bva"
    COMPLIANCE = "compliance"


class Partij(StrEnum):
    """One of the two parties a dossier is for: the bestuurder or the werkgever."""

    BESTUURDER = "bestuurder"
    WERKGEVER = "werkgever"


class Dienst(StrEnum):
    """A service of the system; it is the second token of every NATS subject."""

    INTAKE = "intake"
    SCHEDULING = "scheduling"
    ASSESSMENT = "assessment"
    APPROVAL = "approval"
    NOTIFICATIONS = "notifications"


class BuitenRegelingReden(StrEnum):
    """Why an aanvraag falls outside the Regeling beveiligingsmaatregelen decentrale bestuurders."""

    RAADSLID = "raadslid"
    STATENLID = "statenlid"
    OVERIG = "overig"


class AfsluitReden(StrEnum):
    """Why a dossier was closed."""

    ALLE_MAATREGELEN_UITGEVOERD = "alle_maatregelen_uitgevoerd"
    GESLOTEN_DOOR_SECRETARIAAT = "gesloten_door_secretariaat"


class VergeetReden(StrEnum):
    """Why a dossier's personal data were erased: the grounds of AVG article 17, as a code."""

    VERZOEK_BETROKKENE = "verzoek_betrokkene"
    TOESTEMMING_INGETROKKEN = "toestemming_ingetrokken"
    BEWAARTERMIJN_VERSTREKEN = "bewaartermijn_verstreken"
    ONRECHTMATIG_VERWERKT = "onrechtmatig_verwerkt"
    WETTELIJKE_VERPLICHTING = "wettelijke_verplichting"


class AfspraakSoort(StrEnum):
    """The kind of appointment."""

    GESPREK_WERKGEVER = "gesprek_werkgever"
    GESPREK_BESTUURDER = "gesprek_bestuurder"
    TOELICHTING = "toelichting"


class AfspraakVorm(StrEnum):
    """Where an appointment takes place: by video link or at the bestuurder's home."""

    DIGITAAL = "digitaal"
    THUIS = "thuis"


class PkvwStatus(StrEnum):
    """State of the bestuurder's Politiekeurmerk Veilig Wonen."""

    GEEN = "geen"
    VERKLARING = "verklaring"
    CERTIFICAAT = "certificaat"


class Domein(StrEnum):
    """One of the four security domains of the report."""

    WERK = "werk"
    WONEN = "wonen"
    INFORMATIE = "informatie"
    VERPLAATSEN = "verplaatsen"


class Kosten(StrEnum):
    """Whether a measure costs money."""

    KOSTELOOS = "kosteloos"
    MET_KOSTEN = "met_kosten"


class Prioriteit(StrEnum):
    """How urgent a measure is."""

    HOOG = "hoog"
    MIDDEL = "middel"
    LAAG = "laag"


AanvraagId = Annotated[UUID, Field(description="The dossier key (UUID) shared by every service.")]
AfspraakId = Annotated[UUID, Field(description="The appointment (UUID).")]
RapportId = Annotated[UUID, Field(description="The advice report (UUID); stable across versions.")]
MaatregelId = Annotated[UUID, Field(description="The measure of the report (UUID).")]
NotificatieId = Annotated[UUID, Field(description="The notification (UUID).")]
Versie = Annotated[int, Field(ge=1, description="Version of the report, starting at 1.")]
InhoudHash = Annotated[
    str,
    Field(
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 (lowercase hex) of the report version's content, kept by assessment.",
    ),
]
OrganisatieCode = Annotated[
    str,
    Field(
        pattern=r"^(GM[0-9]{4}|PV[0-9]{2}|WS[0-9]{4})$",
        description="CBS code of the werkgever: gemeente `GM0363`, provincie `PV27`, "
        "waterschap `WS0155`.",
    ),
]
Aantal = Annotated[int, Field(ge=0)]
Code = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


# --- base ----------------------------------------------------------------------------------------


class PublicEvent(BaseModel):
    """Base of every public event: the `data` of one versioned CloudEvent type."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    service: ClassVar[str]
    """The service that owns the event; `*` for an event every service emits."""
    event_name: ClassVar[str]
    """The wire name (PascalCase, Dutch, past tense); defaults to the class name."""
    version: ClassVar[int] = 1
    """Contract version; part of the type string and the schema id."""

    # Narrowed to `UUID` by every event that always concerns one dossier.
    aanvraag_id: UUID | None

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "event_name" not in cls.__dict__:
            cls.event_name = cls.__name__

    @property
    def emitting_service(self) -> str:
        """The service that publishes this event; the second token of its NATS subject."""
        return self.service


# --- intake --------------------------------------------------------------------------------------


class AanvraagIngediend(PublicEvent):
    """An aanvraag for a security advice was submitted; a dossier now exists."""

    service = Dienst.INTAKE.value

    aanvraag_id: AanvraagId
    ingediend_op: UtcDatetime = Field(description="When the aanvraag was submitted.")
    ingediend_door: Partij = Field(description="Which party submitted the aanvraag.")
    organisatie_code: OrganisatieCode
    binnen_regeling: bool = Field(
        description="Whether the bestuurder's office falls under the regeling; if not, "
        "AanvraagBuitenRegeling follows and the secretariaat decides."
    )
    verhuizing_gepland: bool = Field(
        description="Whether the bestuurder plans to move house (advice before the move)."
    )


class AanvraagIngetrokken(PublicEvent):
    """The aanvraag was withdrawn; the dossier stops but nothing is deleted."""

    service = Dienst.INTAKE.value

    aanvraag_id: AanvraagId
    ingetrokken_op: UtcDatetime = Field(description="When the aanvraag was withdrawn.")
    door_rol: Rol = Field(description="Role under which it was withdrawn.")


class AanvraagBuitenRegeling(PublicEvent):
    """The aanvraag is outside the regeling; it is kept and the secretariaat decides."""

    service = Dienst.INTAKE.value

    aanvraag_id: AanvraagId
    reden: BuitenRegelingReden = Field(description="Why it is outside the regeling.")


class DossierAfgesloten(PublicEvent):
    """The dossier was closed."""

    service = Dienst.INTAKE.value

    aanvraag_id: AanvraagId
    afgesloten_op: UtcDatetime = Field(description="When the dossier was closed.")
    reden: AfsluitReden = Field(description="Why the dossier was closed.")
    maatregelen_totaal: Aantal = Field(description="Number of measures in the approved report.")
    maatregelen_uitgevoerd: Aantal = Field(description="Number of those measures carried out.")


class PersoonsgegevensVergeten(PublicEvent):
    """The dossier's personal data were made unreadable in every service (their keys destroyed).

    The dossier's events, dates and decisions remain; its names, addresses, contact details,
    reasons and report texts can no longer be read by anyone.
    """

    service = Dienst.INTAKE.value

    aanvraag_id: AanvraagId
    vergeten_op: UtcDatetime = Field(description="When the personal data were forgotten.")
    reden: VergeetReden = Field(description="Why (a ground of AVG article 17).")


class Persoonsgegeven(StrEnum):
    """Which personal data of a dossier were handed out."""

    EMAIL_AANVRAGER = "email_aanvrager"
    EMAIL_BESTUURDER = "email_bestuurder"
    EMAIL_WERKGEVER = "email_werkgever"
    ADRES_BESTUURDER = "adres_bestuurder"


class PersoonsgegevensVerstrekt(PublicEvent):
    """Intake handed a dossier's personal data to someone (who: the envelope's actorid/actorrole;
    the request's trace id: its correlationid). Never the data itself."""

    service = Dienst.INTAKE.value

    aanvraag_id: AanvraagId
    gegevens: Persoonsgegeven = Field(description="Which personal data were handed out.")
    verstrekt_op: UtcDatetime = Field(description="When.")


class BewaarplichtReden(StrEnum):
    """Why a dossier's history must be kept beyond its retention periods (a legal hold)."""

    RECHTSZAAK = "rechtszaak"
    KLACHT = "klacht"
    ONDERZOEK = "onderzoek"
    TOEZICHT = "toezicht"


class BewaarplichtOpgelegd(PublicEvent):
    """A legal hold on the dossier: retention destroys nothing of it until the hold is lifted."""

    service = Dienst.INTAKE.value

    aanvraag_id: AanvraagId
    reden: BewaarplichtReden = Field(description="Why the history must be kept.")
    opgelegd_op: UtcDatetime = Field(description="When the hold was placed.")


class BewaarplichtOpgeheven(PublicEvent):
    """The legal hold on the dossier was lifted: its retention periods apply again."""

    service = Dienst.INTAKE.value

    aanvraag_id: AanvraagId
    opgeheven_op: UtcDatetime = Field(description="When the hold was lifted.")


class GegevensVernietigd(PublicEvent):
    """Entries of one type in the dossier's history were destroyed: their retention period passed.

    Recorded in the transaction that destroys them: nothing is ever deleted silently. The event
    stores keep their (hash-chained) rows; what goes is the read models' copy.
    """

    service = Dienst.INTAKE.value

    aanvraag_id: AanvraagId
    soort: str = Field(
        pattern=r"^[A-Z][A-Za-z]{2,63}$",
        description="The public event name whose entries were destroyed (e.g. RapportIngezien).",
    )
    aantal: Aantal = Field(description="How many entries were destroyed.")
    tot: UtcDatetime = Field(
        description="Every entry of this type recorded up to this moment was destroyed."
    )
    vernietigd_op: UtcDatetime = Field(description="When they were destroyed.")


# --- scheduling ----------------------------------------------------------------------------------


class ContactOpgenomen(PublicEvent):
    """The secretariaat made contact with the parties to plan the conversations."""

    service = Dienst.SCHEDULING.value

    aanvraag_id: AanvraagId
    contact_op: UtcDatetime = Field(description="When contact was made.")
    binnen_termijn: bool = Field(
        description="Whether contact was made within the contact deadline (3 working days)."
    )


class ContacttermijnGesteld(PublicEvent):
    """The contact deadline of a new aanvraag was set (so every projection can show it).

    Not in domain.md's minimum list: an additive extension, because the dossier projection carries
    the deadline before it is missed.
    """

    service = Dienst.SCHEDULING.value

    aanvraag_id: AanvraagId
    deadline: UtcDatetime = Field(
        description="The moment after which contact is late: the end of the last working day."
    )
    werkdagen: int = Field(ge=1, description="Number of working days the deadline allows.")
    kalender: Code = Field(
        description="Code of the working-day calendar used (e.g. `algemene_termijnenwet`)."
    )


class ContacttermijnVerstreken(PublicEvent):
    """The contact deadline passed without contact; the dossier escalates."""

    service = Dienst.SCHEDULING.value

    aanvraag_id: AanvraagId
    deadline: UtcDatetime = Field(
        description="The moment after which contact was late: the end of the last working day."
    )
    vastgesteld_op: UtcDatetime = Field(description="When the missed deadline was detected.")


class AfspraakGepland(PublicEvent):
    """An appointment was planned."""

    service = Dienst.SCHEDULING.value

    aanvraag_id: AanvraagId
    afspraak_id: AfspraakId
    soort: AfspraakSoort = Field(description="Kind of appointment.")
    vorm: AfspraakVorm = Field(description="By video link or at the bestuurder's home.")
    gepland_op: UtcDatetime = Field(description="Start of the appointment.")
    duur_minuten: int = Field(gt=0, le=1440, description="Planned duration in minutes.")
    adviseur_id: str = Field(
        pattern=OPAQUE_ID_PATTERN,
        description="Opaque id of the adviseur who holds the appointment; never a name.",
    )


class AfspraakVerzet(PublicEvent):
    """An appointment was moved to another time."""

    service = Dienst.SCHEDULING.value

    aanvraag_id: AanvraagId
    afspraak_id: AfspraakId
    soort: AfspraakSoort = Field(description="Kind of appointment.")
    gepland_op: UtcDatetime = Field(description="New start of the appointment.")
    vorige_gepland_op: UtcDatetime = Field(description="Start before it was moved.")


class AfspraakGeannuleerd(PublicEvent):
    """An appointment was cancelled."""

    service = Dienst.SCHEDULING.value

    aanvraag_id: AanvraagId
    afspraak_id: AfspraakId
    soort: AfspraakSoort = Field(description="Kind of appointment.")


class GesprekGevoerd(PublicEvent):
    """A planned conversation took place."""

    service = Dienst.SCHEDULING.value

    aanvraag_id: AanvraagId
    afspraak_id: AfspraakId
    soort: AfspraakSoort = Field(description="Kind of appointment.")
    gevoerd_op: UtcDatetime = Field(description="When the conversation took place.")


class WoningscanUitgevoerd(PublicEvent):
    """The woningscan was carried out during the conversation at the bestuurder's home."""

    service = Dienst.SCHEDULING.value

    aanvraag_id: AanvraagId
    afspraak_id: AfspraakId
    uitgevoerd_op: UtcDatetime = Field(description="When the woningscan was carried out.")


class ToelichtingAangevraagd(PublicEvent):
    """A party asked for a toelichting (explanation meeting) with the adviseur."""

    service = Dienst.SCHEDULING.value

    aanvraag_id: AanvraagId
    aangevraagd_door: Partij = Field(description="Which party asked for it.")
    aangevraagd_op: UtcDatetime = Field(description="When it was asked for.")


# --- assessment ----------------------------------------------------------------------------------


class MaatregelSamenvatting(BaseModel):
    """One measure of a report version, without its description (that stays in assessment)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    maatregel_id: MaatregelId
    domein: Domein = Field(description="The security domain the measure belongs to.")
    kosten: Kosten = Field(description="Whether the measure costs money.")
    uitvoerder: Partij = Field(description="Who carries the measure out.")
    prioriteit: Prioriteit = Field(description="How urgent the measure is.")


class RapportOpgesteld(PublicEvent):
    """The adviseur drafted the first version of the advice report."""

    service = Dienst.ASSESSMENT.value

    aanvraag_id: AanvraagId
    rapport_id: RapportId
    versie: Versie
    aantal_maatregelen: Aantal = Field(description="Number of measures in this version.")
    maatregelen: tuple[MaatregelSamenvatting, ...] = Field(
        description="The measures of this version: ids, domains, costs, who carries them out."
    )


class RapportHerzien(PublicEvent):
    """The adviseur revised the report; a new version exists and the old one is kept."""

    service = Dienst.ASSESSMENT.value

    aanvraag_id: AanvraagId
    rapport_id: RapportId
    versie: Versie
    aantal_maatregelen: Aantal = Field(description="Number of measures in this version.")
    maatregelen: tuple[MaatregelSamenvatting, ...] = Field(
        description="The measures of this version: ids, domains, costs, who carries them out."
    )


class RapportTerToetsingAangeboden(PublicEvent):
    """A report version was submitted to the BVA for review."""

    service = Dienst.ASSESSMENT.value

    aanvraag_id: AanvraagId
    rapport_id: RapportId
    versie: Versie
    inhoud_hash: InhoudHash


class RapportIngezien(PublicEvent):
    """Someone read the content of a report version (written for every read)."""

    service = Dienst.ASSESSMENT.value

    aanvraag_id: AanvraagId
    rapport_id: RapportId
    versie: Versie
    rol: Rol = Field(description="Role under which the report was read.")
    ingezien_op: UtcDatetime = Field(description="When the report was read.")


class PkvwStatusGewijzigd(PublicEvent):
    """The status of the bestuurder's Politiekeurmerk Veilig Wonen changed."""

    service = Dienst.ASSESSMENT.value

    aanvraag_id: AanvraagId
    status: PkvwStatus = Field(description="The new PKVW status.")
    geldig_tot: date | None = Field(
        default=None, description="Last day the certificate is valid (10 years), if any."
    )


class MaatregelUitgevoerd(PublicEvent):
    """A measure of the approved report was carried out."""

    service = Dienst.ASSESSMENT.value

    aanvraag_id: AanvraagId
    maatregel_id: MaatregelId
    rapport_id: RapportId
    domein: Domein = Field(description="Security domain of the measure.")
    kosten: Kosten = Field(description="Whether the measure costs money.")
    uitgevoerd_door: Partij = Field(description="Which party carried it out.")
    uitgevoerd_op: UtcDatetime = Field(description="When it was carried out.")


# --- approval ------------------------------------------------------------------------------------


class RapportGoedgekeurd(PublicEvent):
    """The BVA approved exactly this report version (identified by version and content hash)."""

    service = Dienst.APPROVAL.value

    aanvraag_id: AanvraagId
    rapport_id: RapportId
    versie: Versie
    inhoud_hash: InhoudHash


class RapportAfgekeurd(PublicEvent):
    """The BVA rejected this report version; the reasons stay in the approval service."""

    service = Dienst.APPROVAL.value

    aanvraag_id: AanvraagId
    rapport_id: RapportId
    versie: Versie
    inhoud_hash: InhoudHash
    aantal_redenen: int = Field(ge=1, description="Number of reasons given for the rejection.")


class RapportVerstrektAanBestuurder(PublicEvent):
    """The approved report version was made available to the bestuurder."""

    service = Dienst.APPROVAL.value

    aanvraag_id: AanvraagId
    rapport_id: RapportId
    versie: Versie


class InstemmingGegeven(PublicEvent):
    """The bestuurder consented to sharing the approved report with the werkgever."""

    service = Dienst.APPROVAL.value

    aanvraag_id: AanvraagId
    rapport_id: RapportId
    versie: Versie


class InstemmingGeweigerd(PublicEvent):
    """The bestuurder refused to share the report with the werkgever, who never sees it."""

    service = Dienst.APPROVAL.value

    aanvraag_id: AanvraagId
    rapport_id: RapportId
    versie: Versie


class RapportVrijgegeven(PublicEvent):
    """The report version was released to the werkgever, after the bestuurder's consent."""

    service = Dienst.APPROVAL.value

    aanvraag_id: AanvraagId
    rapport_id: RapportId
    versie: Versie
    organisatie_code: OrganisatieCode


# --- notifications -------------------------------------------------------------------------------


class NotificatieVerzonden(PublicEvent):
    """A notification was handed to the mail server; the address stays in the owning service."""

    service = Dienst.NOTIFICATIONS.value

    aanvraag_id: AanvraagId
    notificatie_id: NotificatieId
    soort: Code = Field(description="Code of the message template (e.g. `afspraak_bevestiging`).")
    kanaal: Literal["email"] = Field(description="Delivery channel.")
    ontvanger_rol: Rol = Field(description="Role of the recipient.")
    oorzaak_event_id: str = Field(
        pattern=OPAQUE_ID_PATTERN, description="CloudEvent id of the event that caused it."
    )
    poging: int = Field(ge=1, description="Delivery attempt, starting at 1.")


class NotificatieMislukt(PublicEvent):
    """A delivery attempt failed; `definitief` says whether it will be retried."""

    service = Dienst.NOTIFICATIONS.value

    aanvraag_id: AanvraagId
    notificatie_id: NotificatieId
    soort: Code = Field(description="Code of the message template (e.g. `afspraak_bevestiging`).")
    kanaal: Literal["email"] = Field(description="Delivery channel.")
    ontvanger_rol: Rol = Field(description="Role of the recipient.")
    oorzaak_event_id: str = Field(
        pattern=OPAQUE_ID_PATTERN, description="CloudEvent id of the event that caused it."
    )
    poging: int = Field(ge=1, description="Delivery attempt, starting at 1.")
    reden_code: Code = Field(description="Short code of the failure (e.g. `smtp_timeout`).")
    definitief: bool = Field(description="True when no further attempt will be made.")


class WebhookAbonnementGefaald(PublicEvent):
    """A webhook subscription keeps failing: its receiver has not accepted deliveries for a while.

    Deliveries are still retried on their schedule; WebhookAbonnementHersteld follows the first
    accepted delivery. Never the callback URL: it is the integrator's configuration.
    """

    service = Dienst.NOTIFICATIONS.value

    aanvraag_id: UUID | None = Field(
        default=None, description="Always null: the event concerns no one dossier."
    )
    abonnement_id: UUID = Field(description="The webhook subscription.")
    organisatie_code: OrganisatieCode | None = Field(
        default=None, description="The organisation whose subscription it is, if any."
    )
    opeenvolgende_fouten: int = Field(ge=1, description="Failed attempts in a row.")
    falend_sinds: UtcDatetime = Field(description="First failed attempt of this series.")
    reden_code: Code = Field(description="Code of the last failure (e.g. `http_500`, `timeout`).")


class WebhookAbonnementHersteld(PublicEvent):
    """A failing webhook subscription's receiver accepted a delivery again."""

    service = Dienst.NOTIFICATIONS.value

    aanvraag_id: UUID | None = Field(
        default=None, description="Always null: the event concerns no one dossier."
    )
    abonnement_id: UUID = Field(description="The webhook subscription.")
    organisatie_code: OrganisatieCode | None = Field(
        default=None, description="The organisation whose subscription it is, if any."
    )
    hersteld_op: UtcDatetime = Field(description="When a delivery was accepted again.")


# --- every service -------------------------------------------------------------------------------


class ToegangGeweigerd(PublicEvent):
    """An attempt to read or change a dossier's data was refused (written for every refusal)."""

    service = "*"

    aanvraag_id: UUID | None = Field(
        description="The dossier the attempt concerned, or null when it concerned no one dossier."
    )
    dienst: Dienst = Field(description="The service that refused the attempt.")
    actie: str = Field(
        pattern=r"^[A-Z]{3,7} /[A-Za-z0-9_{}/.-]*$",
        description="Method and route template, e.g. `GET /rapporten/{id}`; never concrete values.",
    )
    reden: Code = Field(description="Short code of the refusal (e.g. `rol_ontbreekt`).")
    status_code: int = Field(ge=400, le=499, description="HTTP status code returned.")

    @property
    def emitting_service(self) -> str:
        """The service that refused the attempt."""
        return self.dienst.value


class ToegangGeweigerdV2(ToegangGeweigerd):
    """Attempts without a valid token to reach a dossier's data were refused, counted together.

    Anonymous attempts cannot say who tried, so they are recorded per dossier, route and window:
    the first attempt of a window at once (`aantal` 1), the rest when the window has ended
    (`aantal` = how many more). A signed-in caller's refusal is one `ToegangGeweigerd` v1 each.
    """

    event_name = "ToegangGeweigerd"
    version = 2

    aantal: int = Field(ge=1, description="How many refused attempts this event stands for.")
    venster_van: UtcDatetime = Field(description="Start of the window the attempts fell in.")
    venster_tot: UtcDatetime = Field(description="End of that window.")
