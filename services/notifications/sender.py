"""Sending the mail outbox over SMTP, and the dunning check.

A pending row is sent and marked sent in one transaction that holds its row (PostgreSQL: FOR UPDATE
SKIP LOCKED, so replicas share the rows without sending one twice). A server that cannot be reached
or answers 4xx delays every mail (back-off) and costs no attempt: nothing is lost while it is down.
A 5xx refusal costs an attempt; after `mail_max_attempts` the mail is marked failed and goes to
the service's dead-letter topic with the reason, through the outbox, in the same transaction."""

import asyncio
import json
import logging
import smtplib
import ssl
from collections.abc import Callable
from datetime import date, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from uuid import uuid4

from sqlalchemy import select, update

from contracts.topics import dead_letter_topic
from services.common.db import utcnow
from services.common.retry import Backoff
from services.notifications.db import NotificationsUnitOfWork, mails
from services.notifications.handlers import remind_overdue
from services.notifications.settings import NotificationsSettings

log = logging.getLogger("icc.notifications.sender")
RETRY_CAP_SECONDS = 3600.0


class Refused(Exception):
    """The server refused this mail for good (5xx): another try may fail the same way."""


def compose(settings: NotificationsSettings, row) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = row.recipient
    message["Subject"] = row.subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="icc.example")
    message["X-ICC-Event-Id"] = row.event_id  # which fact the mail tells of
    message.set_content(row.body)
    message["Content-Language"] = row.language  # after set_content, which replaces the Content-* headers
    if row.attachment is not None:
        message.add_attachment(row.attachment, maintype="application", subtype="pdf", filename=row.attachment_name)
    return message


def send_over_smtp(settings: NotificationsSettings, message: EmailMessage) -> None:
    """Blocking (smtplib): run in a thread. Raises Refused on a 5xx, anything else on an outage or 4xx."""
    connect = smtplib.SMTP_SSL if settings.smtp_security == "tls" else smtplib.SMTP
    try:
        with connect(settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds) as smtp:
            if settings.smtp_security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value() if settings.smtp_password else "")
            smtp.send_message(message)
    except smtplib.SMTPRecipientsRefused as err:
        codes = [code for code, _ in err.recipients.values()]
        if all(code >= 500 for code in codes):
            raise Refused(f"recipient refused: {err.recipients}") from err
        raise
    except smtplib.SMTPResponseException as err:
        if err.smtp_code >= 500:
            raise Refused(f"{err.smtp_code} {err.smtp_error.decode(errors='replace') if isinstance(err.smtp_error, bytes) else err.smtp_error}") from err
        raise


class MailSender:
    def __init__(self, unit_of_work: Callable[[], NotificationsUnitOfWork], settings: NotificationsSettings,
                 send: Callable[[NotificationsSettings, EmailMessage], None] = send_over_smtp) -> None:
        self._unit_of_work, self.settings, self._send = unit_of_work, settings, send
        self._wake = asyncio.Event()
        self.sent = 0

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        outage = Backoff(cap=min(self.settings.mail_retry_seconds, 30.0))
        while True:
            try:
                await self.send_due()
                outage.reset()
                delay = self.settings.mail_poll_seconds
            except asyncio.CancelledError:
                raise
            except Exception as err:
                delay = outage.next()
                log.warning("mail not sent; it stays pending", extra={"error": repr(err), "retry_in_s": round(delay, 2)})
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), delay)
            except TimeoutError:
                pass

    async def send_due(self, limit: int = 20) -> int:
        """Send the pending mails that are due, one transaction each. An outage raises (the loop backs off)."""
        count = 0
        while count < limit:
            async with self._unit_of_work() as uow:
                row = (await uow.session.execute(
                    select(mails).where(mails.c.status == "pending", mails.c.next_attempt_at <= utcnow())
                    .order_by(mails.c.id).limit(1).with_for_update(skip_locked=True)
                )).first()
                if row is None:
                    return count
                try:
                    await asyncio.to_thread(self._send, self.settings, compose(self.settings, row))
                except Refused as err:
                    await uow.session.execute(update(mails).where(mails.c.id == row.id).values(**self._refused(uow, row, str(err))))
                    await uow.commit()
                    count += 1
                    continue
                await uow.session.execute(update(mails).where(mails.c.id == row.id).values(
                    status="sent", sent_at=utcnow(), attempts=row.attempts + 1, last_error=None))
                await uow.commit()
                self.sent += 1
                count += 1
                log.info("mail sent", extra={"mail_event_id": row.event_id, "to": row.recipient})
        return count

    def _refused(self, uow: NotificationsUnitOfWork, row, reason: str) -> dict:
        """A refusal costs an attempt: try again later (doubling waits), or after the last one give up
        and dead-letter it (what, to whom, why), in the same transaction."""
        attempts = row.attempts + 1
        if attempts < self.settings.mail_max_attempts:
            wait = min(self.settings.mail_retry_seconds * 2 ** (attempts - 1), RETRY_CAP_SECONDS)
            log.warning("mail refused; will retry", extra={"mail_event_id": row.event_id, "to": row.recipient, "reason": reason})
            return {"attempts": attempts, "last_error": reason, "next_attempt_at": utcnow() + timedelta(seconds=wait)}
        full_reason = f"mail to {row.recipient} refused {attempts} times: {reason}"
        uow.add_outbox(
            message_id=f"dlq-{uuid4()}",
            topic=dead_letter_topic(uow.service),
            key=row.event_id,
            value=json.dumps({"mail_id": row.id, "event_id": row.event_id, "recipient": row.recipient,
                              "subject": row.subject, "attempts": attempts, "reason": reason}).encode(),
            headers=[["dlq_reason", full_reason], ["dlq_consumer", uow.service], ["dlq_kind", "mail_refused"],
                     ["dlq_event_id", row.event_id], ["dlq_failed_at", utcnow().isoformat()]],
        )
        log.error("mail failed for good; dead-lettered", extra={"mail_event_id": row.event_id, "to": row.recipient, "reason": reason})
        return {"attempts": attempts, "last_error": reason, "status": "failed"}


async def keep_reminding(unit_of_work: Callable[[], NotificationsUnitOfWork], settings: NotificationsSettings,
                         wake: Callable[[], None], today: Callable[[], date] = date.today) -> None:
    """The periodic dunning check: reminders of overdue unpaid invoices go to the mail outbox."""
    while True:
        try:
            async with unit_of_work() as uow:
                queued = await remind_overdue(uow, today(), settings.dunning_days)
                await uow.commit()
            if queued:
                log.info("dunning reminders queued", extra={"count": queued})
                wake()
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.warning("dunning check failed; next time", extra={"error": repr(err)})
        await asyncio.sleep(settings.dunning_check_seconds)
