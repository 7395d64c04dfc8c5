"""Composition root of the membership service."""

from pathlib import Path

from services.common.auth import KeySource
from services.common.runtime import build_service
from services.membership.api import routers
from services.membership.db import MembershipUnitOfWork
from services.membership.index import questionnaires
from services.membership.settings import MembershipSettings


def build_app(settings: MembershipSettings | None = None, *, keys: KeySource | None = None):
    questionnaires()  # a broken INDEX definition stops the service here, before it takes traffic
    return build_service(
        settings or MembershipSettings(),
        title="ICC membership",
        description=(
            "The ICC secretariat's service: cities apply, sign the statement of intent and the financial "
            "agreement, join and leave (`CityApplied`, `CityJoined`, `CityLeft` on `icc.membership.cities`); "
            "the ICC INDEX questionnaire, its analysis queue, results and comparisons; expert visits and "
            "intercultural profiles."
        ),
        uow_class=MembershipUnitOfWork,
        migrations=Path(__file__).parent / "migrations",
        routers=routers,
        keys=keys,
        audit_readers=("auditor", "secretariat"),
    )
