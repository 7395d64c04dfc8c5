"""Composition root of the finance service."""

from pathlib import Path

from fastapi import FastAPI

from services.common import login
from services.common.auth import KeySource
from services.common.notify import listen
from services.common.runtime import build_service
from services.finance import dashboard_page
from services.finance.api import router
from services.finance.db import Changes, FinanceUnitOfWork
from services.finance.handlers import HANDLERS
from services.finance.settings import FinanceSettings


def _wire_changes(app: FastAPI) -> None:
    # Every session of this app carries the app's change signal: FinanceUnitOfWork.commit fires it,
    # the dashboard stream waits on it. On PostgreSQL (replicas) a commit also NOTIFYs the others,
    # and each process listens, so a stream moves whichever replica committed.
    runtime = app.state.runtime
    settings = runtime.settings
    postgresql = runtime.engine.dialect.name == "postgresql"
    app.state.changes = changes = Changes(settings.db_schema if postgresql else None)
    runtime.sessions.configure(info={"finance_changes": changes})
    if postgresql:
        runtime.background.append(lambda: listen(settings.db_url, Changes.CHANNEL, changes.heard, name=listener_name(settings),
                                                 retry_max_seconds=settings.retry_max_seconds))


def listener_name(settings: FinanceSettings) -> str:
    """What the dashboard's listening connection is called in pg_stat_activity."""
    return f"icc-finance-changes:{settings.db_schema}"


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
