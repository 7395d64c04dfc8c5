from typing import ClassVar

from pydantic import Field

from services.common.settings import WebSettings


class PortalSettings(WebSettings):
    """The portal keeps no data and reads no topic: it needs where the services answer (as it can
    reach them) and where a browser finds the finance dashboard."""

    service: ClassVar[str] = "portal"
    default_port: ClassVar[int] = 8000

    membership_url: str = "http://127.0.0.1:8001"
    events_url: str = "http://127.0.0.1:8002"
    travel_url: str = "http://127.0.0.1:8003"
    finance_url: str = "http://127.0.0.1:8004"
    notifications_url: str = "http://127.0.0.1:8005"
    dashboard_url: str = Field(default="http://127.0.0.1:8004/dashboard", description="the finance dashboard, as a browser reaches it")
    service_timeout_seconds: float = Field(default=15.0, gt=0, description="longest wait for a service's answer")
    receipt_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1, description="the largest receipt a browser may send")

    def service_url(self, service: str) -> str:
        return getattr(self, f"{service}_url").rstrip("/")
