from typing import ClassVar

from services.common.settings import ServiceSettings


class MembershipSettings(ServiceSettings):
    service: ClassVar[str] = "membership"
    default_port: ClassVar[int] = 8001
