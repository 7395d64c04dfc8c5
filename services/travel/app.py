"""Composition root of the travel service."""

from pathlib import Path

from services.common.auth import KeySource
from services.common.runtime import build_service
from services.travel.api import router
from services.travel.db import TravelUnitOfWork
from services.travel.handlers import HANDLERS
from services.travel.settings import TravelSettings


def build_app(settings: TravelSettings | None = None, *, keys: KeySource | None = None):
    return build_service(
        settings or TravelSettings(),
        title="ICC travel",
        description="Delegates' travel claims under the funding rule, and expert visits.",
        uow_class=TravelUnitOfWork,
        migrations=Path(__file__).parent / "migrations",
        routers=[router],
        handlers=HANDLERS,
        keys=keys,
        audit_readers=("auditor", "finance", "secretariat"),
    )
