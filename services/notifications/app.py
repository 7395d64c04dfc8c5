"""Composition root of the notifications service: facts from Kafka become e-mails."""

from pathlib import Path

from fastapi import FastAPI

from services.common import login
from services.common.auth import KeySource
from services.common.runtime import build_service
from services.notifications.api import router
from services.notifications.db import NotificationsUnitOfWork
from services.notifications.directory import Directory, KeycloakDirectory, NoDirectory
from services.notifications.handlers import HANDLERS, Context
from services.notifications.sender import MailSender, keep_reminding
from services.notifications.settings import NotificationsSettings


def _directory(settings: NotificationsSettings) -> Directory:
    if not settings.directory_url:
        return NoDirectory()
    password = settings.directory_password.get_secret_value() if settings.directory_password else ""
    return KeycloakDirectory(settings.directory_url, settings.directory_username, password)


def build_app(settings: NotificationsSettings | None = None, *, keys: KeySource | None = None,
              directory: Directory | None = None) -> FastAPI:
    settings = settings or NotificationsSettings()

    def wire(app: FastAPI) -> None:
        runtime = app.state.runtime
        context = Context(settings.finance_mailbox, settings.secretariat_mailbox, directory or _directory(settings), settings.bank)
        runtime.sessions.configure(info={"notifications": context})
        app.state.sender = sender = MailSender(runtime.unit_of_work, settings)
        runtime.background.append(sender.run)
        runtime.background.append(lambda: keep_reminding(runtime.unit_of_work, settings, sender.wake))
        if runtime.consumer is not None:  # a batch that queued mails: send them now, not at the next poll
            applied = runtime.consumer.after_commit

            async def after_commit(outcome) -> None:
                await applied(outcome)
                if outcome.applied:
                    sender.wake()

            runtime.consumer.after_commit = after_commit

    return build_service(
        settings,
        title="ICC notifications",
        description="E-mails from the platform's facts: invoices and reminders, reimbursement decisions, seats and event changes, budget alerts.",
        uow_class=NotificationsUnitOfWork,
        migrations=Path(__file__).parent / "migrations",
        routers=[router, login.router],
        handlers=HANDLERS,
        keys=keys,
        audit_readers=("auditor", "secretariat"),
        configure=wire,
    )
