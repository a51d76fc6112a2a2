"""Typed settings for every Weerbaar process, read from the environment (prefix ``WEERBAAR_``).

A missing or wrong setting stops the process at start with one clear line (see ``load_settings``).
"""

from __future__ import annotations

import sys
from datetime import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AnyUrl, Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.contracts.events import Dienst

#: The services, in the order of the public contract's ``Dienst`` (the producers it names).
SERVICES: tuple[str, ...] = tuple(dienst.value for dienst in Dienst)

#: Each service's API port when nothing else is set: 8001 onwards, in that order.
DEFAULT_PORTS: dict[str, int] = {service: 8001 + i for i, service in enumerate(SERVICES)}


class AuthMode(StrEnum):
    """How bearer tokens are verified."""

    EMBEDDED = "embedded"  # HS256 with a secret kept in the data directory
    OIDC = "oidc"  # an OIDC provider's JWKS, issuer and audience


class IdentitySettings(BaseSettings):
    """Where local state lives and how people and services prove who they are: shared by the
    services' settings and the portal's."""

    model_config = SettingsConfigDict(env_prefix="WEERBAAR_", extra="ignore", frozen=True)

    data_dir: Path = Field(
        default=Path(".data"), description="Local state: servers, secrets, mail."
    )
    auth_mode: AuthMode = AuthMode.EMBEDDED
    jwt_secret_file: Path | None = Field(
        default=None, description="Embedded mode: defaults to <data_dir>/secrets/jwt.key"
    )
    jwt_issuer: str = "weerbaar-embedded"
    jwt_audience: str = "weerbaar"
    oidc_jwks_url: AnyUrl | None = None
    oidc_token_url: AnyUrl | None = Field(
        default=None,
        description="OIDC mode: the provider's token endpoint for the services' own tokens"
        " (client credentials); found by discovery from WEERBAAR_JWT_ISSUER when unset.",
    )
    oidc_client_id_prefix: str = Field(
        default="weerbaar-",
        description="OIDC mode: a service's client id is this prefix and its name"
        " (weerbaar-intake …); the verifiers know the services' tokens by these ids.",
    )
    oidc_client_secret_dir: Path | None = Field(
        default=None,
        description="OIDC mode: where each service's client secret is, one file"
        " <service>.secret; defaults to <data_dir>/secrets/oidc.",
    )
    oidc_leeway_s: Annotated[float, Field(ge=0, le=300)] = Field(
        default=30.0, description="OIDC mode: the clock skew allowed on a token's exp and nbf."
    )

    @property
    def secret_file(self) -> Path:
        """Where the embedded signing secret lives."""
        return self.jwt_secret_file or self.data_dir / "secrets" / "jwt.key"

    def oidc_client_id(self, service: str) -> str:
        """The client id with which ``service`` gets its own tokens in OIDC mode."""
        return f"{self.oidc_client_id_prefix}{service}"

    def oidc_client_secret_path(self, service: str) -> Path:
        """The file holding ``service``'s client secret in OIDC mode."""
        directory = self.oidc_client_secret_dir or self.data_dir / "secrets" / "oidc"
        return directory / f"{service}.secret"


class Settings(IdentitySettings):
    """Settings shared by every service process."""

    model_config = SettingsConfigDict(env_prefix="WEERBAAR_", extra="ignore", frozen=True)

    database_url: Annotated[str, Field(description="postgresql://user[:pw]@host:port/dbname")]
    nats_url: Annotated[str, Field(description="nats://host:port[,nats://host:port...]")]

    stream_name: str = "WEERBAAR"
    deadletter_stream_name: str = "WEERBAAR_DEADLETTER"
    stream_duplicate_window_s: Annotated[float, Field(ge=600)] = 3600.0
    stream_replicas: Annotated[int, Field(ge=1, le=5)] = 1

    source_prefix: str = Field(
        default="urn:nl:weerbaarbestuur",
        description="CloudEvent `source` is <source_prefix>:<service>.",
    )

    kek_dir: Path | None = Field(
        default=None,
        description="Key-encryption keys (kek-<n>.key) that wrap the data keys of personal data;"
        " defaults to <data_dir>/secrets. Back it up apart from the database.",
    )
    pseudonym_key_file: Path | None = Field(
        default=None,
        description="Key of the actors' pseudonyms; defaults to <data_dir>/secrets/pseudonym.key."
        " Every service of a deployment must read the same file.",
    )
    smtp_host: str = "127.0.0.1"
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 1025
    smtp_from: str = "noreply@weerbaarbestuur.local"
    smtp_starttls: bool = False

    # E-mail (notifications): delays between attempts; the default spans ~28.1 hours, so an
    # SMTP relay that is down for a night loses no mail.
    mail_retry_schedule_s: tuple[Annotated[float, Field(ge=0)], ...] = Field(
        # The first ten double from 2 s as the retries always did (a hiccup costs seconds),
        # then the waits grow to 12 hours.
        default=(
            *(2.0**n for n in range(1, 11)),
            1800.0,
            3600.0,
            7200.0,
            14400.0,
            28800.0,
            43200.0,
        ),
        min_length=1,
        description="Seconds before each retry of an e-mail that failed for a passing reason"
        " (JSON list); the first attempt is immediate, each delay gets 0-`mail_retry_jitter`"
        " extra, and after the last retry the mail has failed (it can be sent again:"
        " `POST /notificaties/{id}/opnieuw`, `weerbaar mail resend ID`).",
    )
    mail_retry_jitter: Annotated[float, Field(ge=0, le=1)] = 0.1
    notification_max_attempts: int | None = Field(
        default=None,
        description="Replaced by WEERBAAR_MAIL_RETRY_SCHEDULE_S (attempts = its length + 1);"
        " refused when set, so a deployment that tuned it does not silently get another span.",
    )
    sender_interval_s: Annotated[float, Field(gt=0)] = 1.0
    sender_concurrency: Annotated[int, Field(ge=1, le=32)] = Field(
        default=4, description="Dossiers whose mails one notifications process sends at once."
    )
    intake_url: str = Field(
        default="http://127.0.0.1:8001", description="Intake's API, for the claim-check calls."
    )
    scheduling_url: str = Field(
        default="http://127.0.0.1:8002", description="Scheduling's API, for the claim-check calls."
    )
    secretariaat_email: str = "secretariaat@weerbaarbestuur.local"
    confirmation_mail_window_s: Annotated[float, Field(ge=0)] = Field(
        default=3600.0,
        description="At most one registration confirmation per address within this many seconds"
        " (the public registration must not be usable to flood a mailbox); a further one is not"
        " sent (lapses with reason te_vaak_verzonden). 0: no limit.",
    )

    # Webhooks (notifications): delays between attempts; the default spans ~27.6 hours.
    webhook_retry_schedule_s: tuple[Annotated[float, Field(ge=0)], ...] = Field(
        default=(5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0),
        min_length=1,
        description="Seconds before each retry of a webhook delivery (JSON list); the first"
        " attempt is immediate, each delay gets 0-`webhook_jitter` extra.",
    )
    webhook_jitter: Annotated[float, Field(ge=0, le=1)] = 0.1
    webhook_timeout_s: Annotated[float, Field(gt=0, le=60)] = 10.0
    webhook_failing_after: Annotated[int, Field(ge=1, le=1000)] = 5
    webhook_max_subscriptions: Annotated[int, Field(ge=1, le=10_000)] = Field(
        default=25,
        description="Live webhook subscriptions one organisation may have (every event is"
        " matched against each of them): a werkgever asking for more gets 409.",
    )
    webhook_interval_s: Annotated[float, Field(gt=0)] = 1.0
    webhook_allow_private_addresses: bool = Field(
        default=False,
        description="Allow callback URLs on loopback and private addresses (development, tests).",
    )

    calendar_profile: str = "algemene_termijnenwet"
    contact_working_days: Annotated[int, Field(ge=1, le=30)] = 3
    # Appointments lie wholly (start to end) within these hours on a working day of the calendar
    # profile, in the profile's time zone (Europe/Amsterdam).
    working_hours_start: time = Field(
        default=time(8, 0), description="Local time working hours begin (HH:MM), e.g. 08:00."
    )
    working_hours_end: time = Field(
        default=time(18, 0),
        description="Local time working hours end (HH:MM); an appointment may end at it.",
    )
    deadline_check_interval_s: Annotated[float, Field(gt=0)] = 30.0

    consumer_max_deliver: Annotated[int, Field(ge=1, le=100)] = 5
    consumer_ack_wait_s: Annotated[float, Field(ge=1)] = 30.0
    relay_batch_size: Annotated[int, Field(ge=1, le=5000)] = 500

    postgres_pool_size: Annotated[int, Field(ge=1, le=100)] = 5
    postgres_lock_timeout_s: Annotated[int, Field(ge=1)] = 5
    postgres_connect_timeout_s: Annotated[int, Field(ge=1)] = Field(
        default=1,
        description="How long a request waits for a database connection (each of the event"
        " store's retries); while the database is down the APIs answer 503 after the retries.",
    )

    bind_host: str = Field(
        default="127.0.0.1",
        description="Address the HTTP API listens on: 0.0.0.0 in a container, loopback otherwise.",
    )
    http_keep_alive_s: Annotated[int, Field(ge=1)] = Field(
        default=65,
        description="How long the API keeps an idle connection open. Longer than the idle time"
        " after which clients (httpx: 5 s) and load balancers (often 60 s) stop reusing one, so"
        " the server never closes a connection just as a client sends on it (a request without"
        " an answer). uvicorn's own default, 5 s, races httpx's.",
    )

    audit_key_file: Path | None = Field(
        default=None,
        description="Ed25519 key that signs the event-log checkpoints; defaults to "
        "<data_dir>/secrets/audit-ed25519.key",
    )
    audit_checkpoint_interval_s: Annotated[float, Field(gt=0)] = 60.0

    retention_default_days: Annotated[int, Field(ge=1)] = Field(
        default=2555,
        description="Days a dossier's history stays in the read models after the dossier ended"
        " (closed or withdrawn), for event types without their own period (7 years).",
    )
    retention_days: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict,
        description='Per public event type, e.g. {"RapportIngezien": 3650,'
        ' "NotificatieVerzonden": 365}: days its entries are kept after the dossier ended.',
    )
    retention_personal_data_days: Annotated[int, Field(ge=1)] = Field(
        default=730,
        description="Days after a dossier ended before its personal data are destroyed"
        " (crypto-shredding, recorded as PersoonsgegevensVergeten).",
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    metrics_port: Annotated[int, Field(ge=1, le=65535)] | None = Field(
        default=None,
        description="Port of /metrics in a process that runs no API role (the API serves its "
        "own /metrics); unset: such a process serves none.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP base URL (e.g. http://collector:4318) to export traces to; "
        "unset: the standard OTEL_EXPORTER_OTLP_ENDPOINT, else no export.",
    )
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1_000_000

    # Hostile traffic at the edge.
    trusted_proxies: tuple[str, ...] = Field(
        default=(),
        description="Peers whose last X-Forwarded-For entry names the client (the reverse"
        " proxy); from anyone else the header is ignored.",
    )
    anonymous_refusal_window_s: Annotated[float, Field(gt=0)] = Field(
        default=600.0,
        description="Attempts without a valid token are recorded per dossier and window:"
        " the first at once, the rest as one counted event when the window ends.",
    )
    anonymous_requests_per_minute: Annotated[int, Field(ge=0)] = Field(
        default=60,
        description="Refused attempts without a valid token one source may make per minute"
        " before it gets 429 (0: no limit).",
    )
    pending_records_interval_s: Annotated[float, Field(gt=0)] = 30.0
    chain_verification_max_age_s: Annotated[float, Field(ge=0)] = Field(
        default=60.0,
        description="How old a verification of the hash chains GET /audit/verificatie may"
        " answer with (0: a new one for every request); the audit export always makes its own.",
    )
    registration_window_s: Annotated[float, Field(gt=0)] = 3600.0
    registrations_per_source: Annotated[int, Field(ge=0)] = Field(
        default=20,
        description="Registrations (POST /aanvragen) one source may make per window (0: no limit).",
    )
    registrations_per_address: Annotated[int, Field(ge=0)] = Field(
        default=3,
        description="Registrations for one e-mail address per window (0: no limit).",
    )
    report_reads_per_hour: Annotated[int, Field(ge=0)] = Field(
        default=120,
        description="Reads of one report by one person per hour (GET /rapporten/{id}); each is"
        " on record in the dossier's history (0: no limit).",
    )

    @field_validator("working_hours_start", "working_hours_end")
    @classmethod
    def _local_time(cls, value: time, info: ValidationInfo) -> time:
        if value.tzinfo is not None:
            raise ValueError("must be a local time (the calendar's), without an offset")
        start = info.data.get("working_hours_start")
        if info.field_name == "working_hours_end" and start is not None and start >= value:
            raise ValueError("must come after WEERBAAR_WORKING_HOURS_START")
        return value

    @field_validator("notification_max_attempts")
    @classmethod
    def _replaced(cls, value: int | None) -> int | None:
        if value is not None:
            raise ValueError(
                "replaced by WEERBAAR_MAIL_RETRY_SCHEDULE_S (a JSON list of seconds between"
                " attempts; attempts = its length + 1): remove this setting"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"postgresql", "postgres"} or not parts.hostname:
            raise ValueError("must be a postgresql:// URL with a host")
        if not parts.path.strip("/"):
            raise ValueError("must name a database")
        return value

    @field_validator("nats_url")
    @classmethod
    def _nats_url(cls, value: str) -> str:
        for url in value.split(","):
            if urlsplit(url.strip()).scheme not in {"nats", "tls"}:
                raise ValueError("must be one or more nats:// URLs, comma separated")
        return value

    @property
    def nats_servers(self) -> list[str]:
        """The NATS URLs as a list."""
        return [u.strip() for u in self.nats_url.split(",") if u.strip()]

    @property
    def pseudonym_key_path(self) -> Path:
        """The key of the actors' pseudonyms (``actorid``): one per deployment, shared by every
        service, kept with the other secrets and in every backup."""
        return self.pseudonym_key_file or self.data_dir / "secrets" / "pseudonym.key"

    @property
    def kek_path(self) -> Path:
        """Where the key-encryption keys live."""
        return self.kek_dir or self.data_dir / "secrets"

    @property
    def audit_key_path(self) -> Path:
        """Where the checkpoint signing key lives."""
        return self.audit_key_file or self.data_dir / "secrets" / "audit-ed25519.key"

    def source_for(self, service: str) -> str:
        """The CloudEvent `source` of a service."""
        return f"{self.source_prefix}:{service}"

    def eventsourcing_env(self, service: str) -> dict[str, str]:
        """The environment of the eventsourcing library for one service's application."""
        parts = urlsplit(self.database_url)
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "APPLICATION_RECORDER_TOPIC": "shared.platform.eventstore:WeerbaarRecorder",
            "POSTGRES_DBNAME": parts.path.strip("/"),
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_SCHEMA": service,
            "POSTGRES_POOL_SIZE": str(self.postgres_pool_size),
            "POSTGRES_MAX_OVERFLOW": "5",
            "POSTGRES_LOCK_TIMEOUT": str(self.postgres_lock_timeout_s),
            "POSTGRES_CONNECT_TIMEOUT": str(self.postgres_connect_timeout_s),
            "POSTGRES_CONN_MAX_AGE": "600",
            "POSTGRES_PRE_PING": "y",
            "CREATE_TABLE": "y",
            "WEERBAAR_KEK_DIR": str(self.kek_path),
        }


class PortalSettings(IdentitySettings):
    """The portal's settings: it has no database or stream, only the services' APIs it calls."""

    model_config = SettingsConfigDict(env_prefix="WEERBAAR_", extra="ignore", frozen=True)

    portal_port: Annotated[int, Field(ge=1, le=65535)] = 8000
    portal_behind_tls: bool = Field(
        default=False,
        description="The portal is reached over HTTPS (a proxy ends TLS): its cookie is Secure.",
    )
    portal_session_key_file: Path | None = Field(
        default=None,
        description="The session cookie's AES-GCM key; defaults to <data_dir>/secrets/portal.key.",
    )
    portal_session_hours: Annotated[float, Field(gt=0, le=24)] = 8.0
    portal_trusted_proxies: tuple[str, ...] = Field(
        default=(),
        description="Peers in front of the portal whose last X-Forwarded-For entry names the"
        " visitor (its reverse proxy); from anyone else the header is not believed.",
    )
    portal_source_address: str | None = Field(
        default=None,
        description="The local address the portal's calls to the services leave from: the"
        " address the services trust (WEERBAAR_TRUSTED_PROXIES) to name the visitor in"
        " X-Forwarded-For. None: the system's choice.",
    )
    portal_public_url: str | None = Field(
        default=None,
        description="OIDC mode: the address people reach the portal at (the provider sends them"
        " back to <it>/inloggen/terug, and after sign-out to <it>/uitgelogd); defaults to"
        " http://127.0.0.1:<WEERBAAR_PORTAL_PORT>.",
    )
    intake_url: str = "http://127.0.0.1:8001"
    scheduling_url: str = "http://127.0.0.1:8002"
    assessment_url: str = "http://127.0.0.1:8003"
    approval_url: str = "http://127.0.0.1:8004"
    notifications_url: str = "http://127.0.0.1:8005"
    nats_url: str | None = Field(
        default=None,
        description="Live pages: the portal reads the public event stream (subscribe only) at"
        " these nats:// URLs, comma separated. None: pages are not live.",
    )

    @field_validator("nats_url")
    @classmethod
    def _nats_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for url in value.split(","):
            if urlsplit(url.strip()).scheme not in {"nats", "tls"}:
                raise ValueError("must be one or more nats:// URLs, comma separated")
        return value

    @property
    def nats_servers(self) -> list[str]:
        """The NATS URLs as a list (empty: none given)."""
        return [u.strip() for u in (self.nats_url or "").split(",") if u.strip()]

    @property
    def public_url(self) -> str:
        """Where people reach the portal (no trailing slash)."""
        return (self.portal_public_url or f"http://127.0.0.1:{self.portal_port}").rstrip("/")

    @property
    def session_key_path(self) -> Path:
        """Where the session cookie's key lives."""
        return self.portal_session_key_file or self.data_dir / "secrets" / "portal.key"


def load_settings(**overrides: object) -> Settings:
    """Read the settings; on a missing or wrong value print one line per problem and exit 2."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        for err in exc.errors(include_input=False, include_url=False):
            name = "WEERBAAR_" + "_".join(str(p) for p in err["loc"]).upper()
            print(f"weerbaar: setting {name}: {err['msg']}", file=sys.stderr)
        raise SystemExit(2) from None
