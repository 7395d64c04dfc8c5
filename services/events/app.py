"""Composition root of the events service."""

from pathlib import Path

from services.common.auth import KeySource
from services.common.runtime import build_service
from services.events.api import routers
from services.events.db import EventsUnitOfWork
from services.events.handlers import HANDLERS
from services.events.settings import EventsSettings


def build_app(settings: EventsSettings | None = None, *, keys: KeySource | None = None):
    return build_service(
        settings or EventsSettings(),
        title="ICC network events",
        description=(
            "Organisers schedule, reschedule and cancel thematic workshops, study visits and high-level meetings; "
            "member cities' delegates register, with a waiting list and a funded quota per city. Events learns "
            "which cities are applicants and members from `CityApplied`, `CityJoined`, `JoinDateCorrected` and `CityLeft` and publishes its own facts on "
            "`icc.events.workshops`, keyed by event id."
        ),
        uow_class=EventsUnitOfWork,
        migrations=Path(__file__).parent / "migrations",
        routers=routers,
        handlers=HANDLERS,
        keys=keys,
        audit_readers=("auditor", "secretariat", "organiser"),
    )
