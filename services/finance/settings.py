from typing import ClassVar

from pydantic import Field

from services.common.documents import BankSettings
from services.common.settings import ServiceSettings


class FinanceSettings(BankSettings, ServiceSettings):
    service: ClassVar[str] = "finance"
    default_port: ClassVar[int] = 8004

    dashboard_ping_seconds: float = Field(default=15.0, gt=0, description="comment ping on an idle dashboard stream")
