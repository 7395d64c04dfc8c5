from typing import ClassVar

from pydantic import Field

from services.common.settings import ServiceSettings
from services.travel.receipts import DEFAULT_MAX_BYTES


class TravelSettings(ServiceSettings):
    service: ClassVar[str] = "travel"
    default_port: ClassVar[int] = 8003

    receipt_max_bytes: int = Field(
        default=DEFAULT_MAX_BYTES, ge=1, le=64 * 1024 * 1024, alias="RECEIPT_MAX_BYTES",
        description="the largest receipt file accepted (POST /receipts), in bytes",
    )
