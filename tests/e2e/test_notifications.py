"""Notifications over the real broker, to a real SMTP server (aiosmtpd, in this process)."""

import json
import socket
from datetime import date
from uuid import uuid4

import pytest
from sqlalchemy import select

from contracts.envelope import to_headers, to_value, wrap
from contracts.events import CityApplied, Event, ReimbursementApproved, ReimbursementHeld, TravelClaimed
from deploy.mail import Capture, controller
from services.notifications.db import mails
from tests.e2e.test_join_to_invoice import join
from tests.support import consumed, eventually, header, produce, read_topic, running

OSLO = {"name": "Oslo", "country": "NO", "population": 709_000, "foreign_born_share": "0.28", "contact": "icc@oslo.example"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Smtp:
    """A real SMTP server that keeps what it gets; it can be stopped and started again on its port."""

    def __init__(self, directory, refuse=()) -> None:
        self.capture = Capture(directory, set(refuse))
        self.port = free_port()
        self.server = None

    def start(self) -> None:
        self.server = controller(self.capture, self.port)
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def to(self, address: str) -> list:
        return [m for m in self.capture.messages() if m["To"] == address]


@pytest.fixture
def smtp(tmp_path):
    server = Smtp(tmp_path / "mail")
    server.start()
    yield server
    server.stop()


def smtp_settings(smtp: Smtp, **overrides) -> dict:
    return {"smtp_port": smtp.port, "mail_retry_seconds": 0.2, **overrides}


async def publish(platform, *events: Event, service: str) -> list:
    envelopes = [wrap(event, service=service) for event in events]
    await produce(platform.kafka, platform.topic(events[0].topic.value),
                  [(e.key.encode(), to_value(e), to_headers(e)) for e in envelopes])
    return envelopes


async def redeliver(platform, topic: str) -> int:
    """Produce again every record of `topic`, as a replay would bring them back."""
    records = await read_topic(platform.kafka, platform.topic(topic))
    await produce(platform.kafka, platform.topic(topic), [(r.key, r.value, list(r.headers)) for r in records])
    return len(records)


async def test_a_joining_city_gets_one_invoice_mail_and_a_replay_sends_nothing_twice(secured_platform, smtp) -> None:
    platform = secured_platform  # every service as itself: notifications reads its topics with its own ACLs
    membership_app, finance_app = platform.membership(), platform.finance()
    notifications_app = platform.notifications(**smtp_settings(smtp))
    assert notifications_app.state.runtime.settings.kafka.username == "notifications"
    # Each topic is created by its writer: events and travel run too, so that notifications finds all it reads.
    async with (running(membership_app) as membership, running(finance_app), running(platform.events()), running(platform.travel()),
                running(notifications_app)):
        await consumed(notifications_app)
        city = await join(membership, OSLO)

        async def invoice_mail():
            return smtp.to("icc@oslo.example") or None

        [mail] = await eventually(invoice_mail, what="the invoice mail at the SMTP server")
        assert mail["Subject"].startswith("Invoice ICC-2026-") and "€5,000.00" in mail.get_body().get_content()
        assert "Oslo" in mail.get_body().get_content()
        [pdf] = list(mail.iter_attachments())  # the invoice itself, rendered by services/common/documents.py
        assert pdf.get_content_type() == "application/pdf" and pdf.get_filename().endswith(".pdf")
        assert pdf.get_content().startswith(b"%PDF")
        await eventually(lambda: _async(smtp.to("secretariat@icc.example")), what="the application's mail to the secretariat")

        # Replay: every fact comes again; the consumers' dedupe and the mails' (event, recipient) key add nothing.
        consumer = notifications_app.state.runtime.consumer
        before = consumer.totals["duplicates"]
        again = await redeliver(platform, "icc.membership.cities") + await redeliver(platform, "icc.finance.invoices")
        await eventually(lambda: _async(consumer.totals["duplicates"] - before >= again or None), what="the replay consumed")
        await notifications_app.state.sender.send_due()
        assert len(smtp.to("icc@oslo.example")) == 1 and len(smtp.to("secretariat@icc.example")) == 1
        async with notifications_app.state.runtime.sessions() as session:
            rows = (await session.execute(select(mails.c.recipient, mails.c.status))).all()
        assert sorted(rows) == [("icc@oslo.example", "sent"), ("secretariat@icc.example", "sent")]
        assert city["id"]


async def _async(value):
    return value or None


async def test_a_held_then_approved_claim_mails_the_delegate_twice_in_their_language(platform, smtp) -> None:
    app = platform.notifications(**smtp_settings(smtp))
    async with running(app) as notifications:
        chosen = await notifications.put("/recipients/Ana@Ghent.be/language", json={"language": "fr"})
        assert chosen.status_code == 200 and chosen.json() == {"email": "ana@ghent.be", "language": "fr"}
        await consumed(app)
        claim_id = uuid4()
        # The decision comes before the claim it decides (another topic, no order between them): it waits.
        await publish(platform, ReimbursementHeld(claim_id=claim_id, amount="787.50", budget_line="delegate_travel", year=2026,
                                                  reason="plafond atteint"), service="finance")
        await publish(platform, TravelClaimed(
            claim_id=claim_id, registration_id=uuid4(), workshop_id=uuid4(), city_id=uuid4(), delegate_email="ana@ghent.be",
            european=True, budget_line="delegate_travel", coe_funded="787.50", city_borne="12.00", submitted_on=date(2026, 5, 2),
            event_year=2026), service="travel")
        await publish(platform, ReimbursementApproved(claim_id=claim_id, amount="787.50", budget_line="delegate_travel", year=2026),
                      service="finance")

        async def both():
            found = smtp.to("ana@ghent.be")
            return found if len(found) >= 2 else None

        held, approved = sorted(await eventually(both, what="two mails to the delegate"), key=lambda m: "approuv" in m["Subject"])
        assert held["Subject"] == "Votre demande de remboursement est en attente"
        assert approved["Subject"] == "Votre demande de remboursement est approuvée"
        assert "plafond atteint" in held.get_body().get_content()
        assert "787,50\xa0€" in approved.get_body().get_content() and "12,00\xa0€" in approved.get_body().get_content()
        assert held["Content-Language"] == "fr"


async def test_an_smtp_outage_delays_the_mail_and_loses_none(platform_sqlite, smtp) -> None:
    platform = platform_sqlite
    app = platform.notifications(**smtp_settings(smtp))
    smtp.stop()
    async with running(app):
        await consumed(app)
        await publish(platform, CityApplied(city_id=uuid4(), name="Ghent", country="BE", population=263_000, european=True,
                                            small_city=False, applied_on=date(2026, 4, 1)), service="membership")

        async def queued():
            async with app.state.runtime.sessions() as session:
                return (await session.execute(select(mails.c.status, mails.c.attempts))).all() or None

        assert await eventually(queued, what="the mail queued") == [("pending", 0)]  # an outage costs no attempt
        assert smtp.capture.messages() == []
        smtp.start()
        [mail] = await eventually(lambda: _async(smtp.to("secretariat@icc.example")), what="the mail after the outage")
        assert mail["Subject"] == "New application: Ghent"


async def test_a_refused_address_is_dead_lettered_after_the_last_attempt(platform_sqlite, tmp_path) -> None:
    platform = platform_sqlite
    smtp = Smtp(tmp_path / "mail", refuse={"nobody@icc.example"})
    smtp.start()
    try:
        app = platform.notifications(**smtp_settings(smtp, secretariat_mailbox="nobody@icc.example", mail_max_attempts=3,
                                                     mail_retry_seconds=0.1))
        async with running(app):
            await consumed(app)
            [applied] = await publish(platform, CityApplied(city_id=uuid4(), name="Ghent", country="BE", population=263_000,
                                                            european=True, small_city=False, applied_on=date(2026, 4, 1)),
                                      service="membership")
            [letter] = await read_topic(platform.kafka, platform.topic("icc.notifications.dead-letter"), at_least=1, timeout=30)
            assert header(letter, "dlq_kind") == "mail_refused"
            assert header(letter, "dlq_reason").startswith("mail to nobody@icc.example refused 3 times: recipient refused")
            assert json.loads(letter.value)["event_id"] == str(applied.id)
            async with app.state.runtime.sessions() as session:
                assert (await session.execute(select(mails.c.status, mails.c.attempts))).all() == [("failed", 3)]
            assert smtp.capture.messages() == []
    finally:
        smtp.stop()
