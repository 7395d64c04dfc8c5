from typing import ClassVar

from services.common.settings import ServiceSettings


class TravelSettings(ServiceSettings):
    service: ClassVar[str] = "travel"
    default_port: ClassVar[int] = 8003
