"""Typed settings shared by every service. Each service derives one class; a bad value fails at start."""

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

from contracts.topics import consumer_group
from services.common.auth import ALLOWED_ALGORITHMS

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_DATA = REPO_ROOT / ".local" / "data"
LOCAL_ISSUER = "http://127.0.0.1:8180/realms/icc"

SecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class KafkaConnection(BaseModel):
    """Where the cluster is and who this client is there: all any Kafka client needs to connect
    (services.common.kafka.client_args turns it into a client's arguments). An incomplete
    combination fails here, before anything tries to connect."""

    model_config = ConfigDict(frozen=True)

    bootstrap_servers: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = None
    ssl_cafile: Path | None = Field(default=None, description="CA certificate(s), PEM, for SASL_SSL; default: the system's")

    @model_validator(mode="after")
    def _complete(self) -> "KafkaConnection":
        if self.security_protocol == "PLAINTEXT":
            if self.username or self.password:
                raise ValueError(
                    "KAFKA_SASL_USERNAME/KAFKA_SASL_PASSWORD are set but KAFKA_SECURITY_PROTOCOL is PLAINTEXT; "
                    "set KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT (or SASL_SSL), or drop the credentials"
                )
        elif not self.username or not self.password or not self.password.get_secret_value():
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD "
                "(the local stack's are in deploy/kafka/principals.py; `python -m deploy.kafka env --user <service>` prints them)"
            )
        if self.ssl_cafile is not None:
            if self.security_protocol != "SASL_SSL":
                raise ValueError(f"KAFKA_SSL_CAFILE is only used with KAFKA_SECURITY_PROTOCOL=SASL_SSL, not {self.security_protocol}")
            if not self.ssl_cafile.is_file():
                raise ValueError(f"KAFKA_SSL_CAFILE {self.ssl_cafile} is not a readable file")
        return self

    @property
    def secured(self) -> bool:
        return self.security_protocol != "PLAINTEXT"

    def as_user(self, username: str, password: str) -> "KafkaConnection":
        """The same cluster, logged in as another principal."""
        return KafkaConnection(**{**self.model_dump(), "username": username, "password": password})

    def env(self) -> dict[str, str]:
        """The environment that gives a process (a service, a tool) this connection; every
        variable is set, an empty one meaning unset, so none leaks in from the parent's."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": self.security_protocol,
            "KAFKA_SASL_MECHANISM": self.sasl_mechanism,
            "KAFKA_SASL_USERNAME": self.username or "",
            "KAFKA_SASL_PASSWORD": self.password.get_secret_value() if self.password else "",
            "KAFKA_SSL_CAFILE": str(self.ssl_cafile or ""),
        }


class KafkaSettings(BaseSettings):
    """The Kafka connection as the environment gives it: the services' settings include these,
    and tools (tests, the benchmark, `python -m deploy.kafka grant`) read them alone."""

    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True)

    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_security_protocol: SecurityProtocol = Field(default="PLAINTEXT", alias="KAFKA_SECURITY_PROTOCOL")
    kafka_sasl_mechanism: SaslMechanism = Field(default="SCRAM-SHA-512", alias="KAFKA_SASL_MECHANISM")
    kafka_sasl_username: str | None = Field(
        default=None, alias="KAFKA_SASL_USERNAME", description="the Kafka principal; a service's default: its name"
    )
    kafka_sasl_password: SecretStr | None = Field(default=None, alias="KAFKA_SASL_PASSWORD")
    kafka_ssl_cafile: Path | None = Field(default=None, alias="KAFKA_SSL_CAFILE")

    @field_validator("kafka_sasl_username", "kafka_sasl_password", "kafka_ssl_cafile", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value  # as in the environment (KafkaConnection.env writes "" for unset)

    def kafka_connection(self, default_username: str | None = None) -> KafkaConnection:
        secured = self.kafka_security_protocol != "PLAINTEXT"
        return KafkaConnection(
            bootstrap_servers=self.kafka_bootstrap_servers,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_sasl_username or (default_username if secured else None),
            password=self.kafka_sasl_password,
            ssl_cafile=self.kafka_ssl_cafile,
        )


class WebSettings(BaseSettings):
    """What every process that serves HTTP and signs people in reads: where it listens, its log
    level and the identity provider. The services add Kafka and a database (ServiceSettings); the
    portal, which has neither, uses this alone."""

    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True)

    service: ClassVar[str]
    default_port: ClassVar[int]

    http_host: str = "127.0.0.1"
    http_port: int | None = None
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")

    # Sign-in (services/common/auth.py, login.py). The provider is the project's Keycloak unless
    # KEYCLOAK_URL (its base URL) or OIDC_ISSUER (the realm's issuer URL) name another.
    keycloak_url: str | None = Field(default=None, description="base URL of an existing Keycloak (realm icc)")
    oidc_issuer: str = Field(default=LOCAL_ISSUER, description="tokens must name exactly this issuer")
    oidc_audience: str = Field(default="icc-api", description="tokens must list this audience")
    oidc_jwks_url: str | None = Field(default=None, description="default: jwks_uri of the issuer's discovery document")
    oidc_algorithms: list[str] = Field(default=["RS256"], description="accepted signature algorithms (asymmetric only)")
    oidc_leeway_seconds: float = Field(default=30.0, ge=0, le=300, description="clock skew tolerated on exp/iat")
    oidc_key_refresh_seconds: float = Field(default=10.0, gt=0, description="fewest seconds between two JWKS fetches")
    oidc_web_client_id: str = Field(default="icc-web", description="the confidential client pages sign in with")
    # The realm file's secret: right for the local stack only; set OIDC_WEB_CLIENT_SECRET anywhere else.
    oidc_web_client_secret: str = Field(default="icc-web-local-secret")

    @model_validator(mode="after")
    def _issuer_from_keycloak_url(self) -> "WebSettings":
        if self.keycloak_url and "oidc_issuer" not in self.model_fields_set:
            self.oidc_issuer = f"{self.keycloak_url.rstrip('/')}/realms/icc"
        return self

    @field_validator("oidc_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        refused = [a for a in value if a not in ALLOWED_ALGORITHMS]
        if refused or not value:
            raise ValueError(f"OIDC_ALGORITHMS: {refused or 'none given'} refused; choose among {sorted(ALLOWED_ALGORITHMS)}")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        if value.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR")
        return value.upper()

    @property
    def port(self) -> int:
        return self.http_port or self.default_port


class ServiceSettings(WebSettings, KafkaSettings):
    """Read from the environment. `DATABASE_URL` may be shared by all five services: on PostgreSQL
    each service keeps its tables in its own schema (named after the service, or DATABASE_SCHEMA),
    so one server and one database serve the whole platform."""

    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True)

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    database_schema: str | None = Field(
        default=None, description="PostgreSQL schema for this service's tables; default: the service name"
    )
    kafka_topic_prefix: str = Field(
        default="", alias="KAFKA_TOPIC_PREFIX", description="namespace for topics and groups (tests isolate runs)"
    )
    kafka_replication_factor: int = Field(
        default=1, ge=1, alias="KAFKA_REPLICATION_FACTOR",
        description="replicas of the topics a service creates: 1 on the single local broker, 3 on a cluster",
    )
    migrate_on_start: bool = Field(
        default=True, description="apply the migrations before taking traffic; false where a migration job does (`migrate`)"
    )
    consumer_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_poll_seconds: float = Field(default=1.0, gt=0)
    retry_max_seconds: float = Field(default=5.0, gt=0, description="longest back-off between broker or database retries")

    # Replicas (README "Replicas"): N processes of a service on one PostgreSQL schema.
    replica_id: str | None = Field(
        default=None, description="stable per replica (the pod's name): its Kafka static membership id"
    )
    replicas: int = Field(default=1, ge=1, description="how many processes of this service run; > 1 needs PostgreSQL")
    # Purging old rows (services/common/purge.py).
    outbox_retention_hours: float = Field(default=168, gt=0, description="published outbox rows are kept this long")
    processed_retention_days: float = Field(
        default=30, gt=0,
        description="processed event ids (the consumers' dedupe) are kept this long: longer than any redelivery or replay, "
                    "so Kafka's retention of what may be replayed must be shorter",
    )
    purge_interval_seconds: float = Field(default=600, gt=0)
    purge_batch_size: int = Field(default=1000, ge=1, description="rows per purge transaction: short writer locks")

    @model_validator(mode="after")
    def _replicas_need_postgresql(self) -> "ServiceSettings":
        if self.replicas > 1 and make_url(self.db_url).get_backend_name() == "sqlite":
            raise ValueError(
                f"REPLICAS={self.replicas} on SQLite: SQLite is the single-process embedded default (one writer, a file "
                "on one machine); to run replicas set DATABASE_URL to PostgreSQL, or run one process (REPLICAS=1)"
            )
        return self

    @model_validator(mode="after")
    def _kafka_connection_complete(self) -> "ServiceSettings":
        # An incomplete Kafka security combination fails at start, not at the first connection.
        try:
            self.kafka  # noqa: B018
        except ValidationError as err:
            raise ValueError("; ".join(e["msg"].removeprefix("Value error, ") for e in err.errors())) from None
        return self

    @property
    def kafka(self) -> KafkaConnection:
        """This service's login: its own principal (named after it) unless KAFKA_SASL_USERNAME says otherwise."""
        return self.kafka_connection(default_username=self.service)

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{LOCAL_DATA / f'{self.service}.db'}"

    @property
    def db_schema(self) -> str:
        return self.database_schema or self.service

    @property
    def consumer_group(self) -> str:
        return f"{self.kafka_topic_prefix}{consumer_group(self.service)}"

    def physical_topic(self, topic: str) -> str:
        return f"{self.kafka_topic_prefix}{topic}"

    # Traces (services/common/tracing.py), off by default. OTEL_EXPORTER_OTLP_ENDPOINT means what it means to
    # OpenTelemetry's own SDKs (as do OTEL_EXPORTER_OTLP_HEADERS, read by the exporter itself).
    otel_exporter: Literal["none", "otlp"] = Field(default="none", description="otlp: send spans to a collector (OTLP over HTTP)")
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None, description="the collector's base URL (http://collector:4318); default: the exporter's (localhost:4318)"
    )
    otel_traces_sample_ratio: float = Field(
        default=1.0, ge=0, le=1, description="share of new traces recorded; a trace begun upstream follows its caller's choice"
    )
