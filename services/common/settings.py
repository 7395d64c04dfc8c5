"""Typed settings shared by every service. Each service derives one class; a bad value fails at start."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.auth import ALLOWED_ALGORITHMS

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_DATA = REPO_ROOT / ".local" / "data"
LOCAL_ISSUER = "http://127.0.0.1:8180/realms/icc"


class ServiceSettings(BaseSettings):
    """Read from the environment. `DATABASE_URL` may be shared by all four services: on PostgreSQL
    each service keeps its tables in its own schema (named after the service, or DATABASE_SCHEMA),
    so one server and one database serve the whole platform."""

    model_config = SettingsConfigDict(extra="ignore", env_ignore_empty=True)

    service: ClassVar[str]
    default_port: ClassVar[int]

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    database_schema: str | None = Field(
        default=None, description="PostgreSQL schema for this service's tables; default: the service name"
    )
    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092", alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_topic_prefix: str = Field(
        default="", alias="KAFKA_TOPIC_PREFIX", description="namespace for topics and groups (tests isolate runs)"
    )
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    log_level: str = Field(default="INFO", alias="LOG_LEVEL")

    consumer_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    relay_poll_seconds: float = Field(default=1.0, gt=0)
    retry_max_seconds: float = Field(default=5.0, gt=0, description="longest back-off between broker or database retries")

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
    def _issuer_from_keycloak_url(self) -> "ServiceSettings":
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

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{LOCAL_DATA / f'{self.service}.db'}"

    @property
    def db_schema(self) -> str:
        return self.database_schema or self.service

    @property
    def consumer_group(self) -> str:
        return f"{self.kafka_topic_prefix}icc.{self.service}"

    def physical_topic(self, topic: str) -> str:
        return f"{self.kafka_topic_prefix}{topic}"
