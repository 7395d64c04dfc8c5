"""The local mail capture server: an SMTP server (aiosmtpd) on 127.0.0.1:8025 that delivers nothing
and keeps every message it receives as an .eml file under .local/mail/ (`make up` runs it; the
notifications service sends there by default). Tests run the same handler in-process.

    python -m deploy.mail serve [--port 8025] [--directory .local/mail]
    python -m deploy.mail list          # what was sent: time, to, subject, attachments"""

import email
import email.policy
import time
from pathlib import Path

from aiosmtpd.controller import Controller

from services.common.settings import REPO_ROOT

MAILDIR = REPO_ROOT / ".local" / "mail"
PORT = 8025


class Capture:
    """An aiosmtpd handler: each message to a file (one per message, whatever its recipients), in
    arrival order by name. `refuse` holds addresses answered 550 (tests of refused mail)."""

    def __init__(self, directory: Path = MAILDIR, refuse: set[str] | None = None) -> None:
        self.directory = directory
        self.refuse = refuse if refuse is not None else set()
        directory.mkdir(parents=True, exist_ok=True)
        self._count = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd's name)
        if address.lower() in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self._count += 1
        name = f"{time.time_ns()}-{self._count:04d}.eml"
        (self.directory / name).write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"

    def messages(self) -> list[email.message.EmailMessage]:
        return read(self.directory)


def read(directory: Path = MAILDIR) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default) for path in sorted(directory.glob("*.eml"))]


def controller(handler: Capture, port: int = PORT, host: str = "127.0.0.1") -> Controller:
    return Controller(handler, hostname=host, port=port)
