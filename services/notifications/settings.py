from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from services.common.documents import BankSettings
from services.common.settings import ServiceSettings


class NotificationsSettings(BankSettings, ServiceSettings):
    # BankSettings: the same BANK_* as finance's, so the PDF a city gets by mail is the one finance serves.
    service: ClassVar[str] = "notifications"
    default_port: ClassVar[int] = 8005

    # Where mail goes out (default: the local capture server, deploy/mail).
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_security: Literal["none", "starttls", "tls"] = Field(default="none", description="starttls: upgrade on 587; tls: 465")
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    mail_from: str = "ICC <no-reply@icc.example>"
    finance_mailbox: str = "finance@icc.example"
    secretariat_mailbox: str = "secretariat@icc.example"
    mail_max_attempts: int = Field(default=5, ge=1, description="a mail the server refuses is tried this often, then dead-lettered")
    mail_poll_seconds: float = Field(default=1.0, gt=0, description="how often the sender looks for mails to send")
    mail_retry_seconds: float = Field(default=30.0, gt=0, description="first wait after a refusal or an outage; doubles, capped at 1 h")
    # Dunning: reminders of an unpaid invoice this many days after its due date.
    dunning_days: list[int] = Field(default=[15, 45])
    dunning_check_seconds: float = Field(default=3600.0, gt=0)
    # The identity provider's directory of city coordinators (Keycloak admin API); unset: the city's contact only.
    directory_url: str | None = Field(default=None, description="Keycloak base URL whose realm icc lists the coordinators")
    directory_username: str = "admin"
    directory_password: SecretStr | None = None
