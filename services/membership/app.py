"""Composition root of the membership service."""

from pathlib import Path

from contracts.topics import Topic
from services.common.runtime import build_service
from services.membership.api import router
from services.membership.db import MembershipUnitOfWork
from services.membership.settings import MembershipSettings


def build_app(settings: MembershipSettings | None = None):
    return build_service(
        settings or MembershipSettings(),
        title="ICC membership",
        description="Cities apply, sign the statement of intent and the financial agreement, join and leave.",
        uow_class=MembershipUnitOfWork,
        migrations=Path(__file__).parent / "migrations",
        routers=[router],
        produces=[Topic.CITIES],
    )
