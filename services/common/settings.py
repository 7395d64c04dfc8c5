"""Typed settings shared by every service. Each service derives one class; a bad value fails at start."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
LOCAL_DATA = REPO_ROOT / ".local" / "data"


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
