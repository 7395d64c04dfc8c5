from typing import ClassVar

from services.common.settings import ServiceSettings


class FinanceSettings(ServiceSettings):
    service: ClassVar[str] = "finance"
    default_port: ClassVar[int] = 8004
