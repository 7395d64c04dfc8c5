"""Composition root of the finance service."""

from pathlib import Path

from contracts.topics import Topic
from services.common.runtime import build_service
from services.finance.api import router
from services.finance.db import FinanceUnitOfWork
from services.finance.handlers import HANDLERS
from services.finance.settings import FinanceSettings


def build_app(settings: FinanceSettings | None = None):
    return build_service(
        settings or FinanceSettings(),
        title="ICC finance",
        description="Contributions, invoices and payments, budget limits, reconciliation and the finance dashboard.",
        uow_class=FinanceUnitOfWork,
        migrations=Path(__file__).parent / "migrations",
        routers=[router],
        handlers=HANDLERS,
        produces=[Topic.INVOICES, Topic.REIMBURSEMENTS, Topic.BUDGETS],
    )
