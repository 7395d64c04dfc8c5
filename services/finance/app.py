"""Composition root of the finance service."""

from pathlib import Path

from fastapi import FastAPI

from services.common import login
from services.common.auth import KeySource
from services.common.runtime import build_service
from services.finance import dashboard_page
from services.finance.api import router
from services.finance.db import Changes, FinanceUnitOfWork
from services.finance.handlers import HANDLERS
from services.finance.settings import FinanceSettings


def _wire_changes(app: FastAPI) -> None:
    # Every session of this app carries the app's change signal: FinanceUnitOfWork.commit fires it,
    # the dashboard stream waits on it.
    app.state.changes = Changes()
    app.state.runtime.sessions.configure(info={"finance_changes": app.state.changes})


def build_app(settings: FinanceSettings | None = None, *, keys: KeySource | None = None) -> FastAPI:
    return build_service(
        settings or FinanceSettings(),
        title="ICC finance",
        description="Contributions, invoices and payments, budget limits, reconciliation and the finance dashboard.",
        uow_class=FinanceUnitOfWork,
        migrations=Path(__file__).parent / "migrations",
        routers=[router, dashboard_page.router, login.router],
        handlers=HANDLERS,
        keys=keys,
        audit_readers=("auditor", "finance"),
        configure=_wire_changes,
    )
