"""Composition root of the events service."""

from pathlib import Path

from contracts.topics import Topic
from services.common.runtime import build_service
from services.events.api import router
from services.events.db import EventsUnitOfWork
from services.events.handlers import HANDLERS
from services.events.settings import EventsSettings


def build_app(settings: EventsSettings | None = None):
    return build_service(
        settings or EventsSettings(),
        title="ICC network events",
        description="Organisers schedule workshops, study visits and high-level meetings; member cities' delegates register.",
        uow_class=EventsUnitOfWork,
        migrations=Path(__file__).parent / "migrations",
        routers=[router],
        handlers=HANDLERS,
        produces=[Topic.WORKSHOPS],
    )
