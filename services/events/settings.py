from typing import ClassVar

from services.common.settings import ServiceSettings


class EventsSettings(ServiceSettings):
    service: ClassVar[str] = "events"
    default_port: ClassVar[int] = 8002
