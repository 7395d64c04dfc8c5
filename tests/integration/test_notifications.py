"""Notifications' rules on SQLite and PostgreSQL: who gets which mail, dunning while something is owed,
the language route. Mails are read from the mail outbox (sending is tested over SMTP in tests/e2e)."""

from datetime import date, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest
from sqlalchemy import select

from contracts.events import (
    BudgetThresholdCrossed, CityApplied, CreditNoteIssued, DelegateRegistered, InvoiceIssued, PaymentReceived, PaymentReversed,
    RegistrationCancelled, RegistrationPromoted, WorkshopCancelled, WorkshopRescheduled, WorkshopScheduled,
)
from services.notifications.app import build_app
from services.notifications.db import mails
from services.notifications.directory import city_addresses
from services.notifications.handlers import remind_overdue
from services.notifications.settings import NotificationsSettings
from tests.identity import STAND_IN
from tests.integration.test_finance_budget import NO_BROKER, record
from tests.support import running
from tests.unit.test_documents import text

DUE = date(2026, 5, 15)


@pytest.fixture
async def notifications(databases):
    app = build_app(NotificationsSettings(**NO_BROKER, **databases("notifications"), dunning_check_seconds=3600,
                                          smtp_port=1, mail_poll_seconds=3600, bank_iban="CH93 0076 2011 6238 5295 7"))
    async with running(app) as client:
        yield client, app.state.runtime


async def deliver(runtime, *events, service: str = "finance") -> None:
    outcome = await runtime.consumer.apply([record(event, service) for event in events])
    assert outcome.dead_lettered == [] and outcome.applied == len(events)


async def queued(runtime) -> list[tuple[str, str, str]]:
    async with runtime.sessions() as session:
        rows = await session.execute(select(mails.c.event_id, mails.c.recipient, mails.c.subject).order_by(mails.c.id))
        return [tuple(row) for row in rows]


async def remind(runtime, on: date) -> int:
    async with runtime.unit_of_work() as uow:
        count = await remind_overdue(uow, on, [15, 45])
        await uow.commit()
    return count


def invoice(city_id, amount: str = "5000.00") -> InvoiceIssued:
    return InvoiceIssued(invoice_id=uuid4(), city_id=city_id, kind="contribution", year=2026, amount=Decimal(amount),
                         issued_on=DUE - timedelta(days=60), due_on=DUE, number=f"ICC-2026-{uuid4().hex[:4]}")


async def test_dunning_reminds_at_15_and_45_days_only_while_something_is_owed(notifications) -> None:
    _, runtime = notifications
    city = uuid4()
    await deliver(runtime, CityApplied(city_id=city, name="Ghent", country="BE", population=263_000, european=True,
                                       small_city=False, applied_on=date(2026, 1, 5), contact="icc@gent.example"), service="membership")
    owed, paid = invoice(city), invoice(city)
    await deliver(runtime, owed, paid)
    await deliver(runtime, PaymentReceived(invoice_id=owed.invoice_id, city_id=city, amount=Decimal("1000.00"), paid_on=DUE, reference="A"),
                  PaymentReceived(invoice_id=paid.invoice_id, city_id=city, amount=Decimal("4000.00"), paid_on=DUE, reference="B"),
                  CreditNoteIssued(credit_note_id=uuid4(), invoice_id=paid.invoice_id, city_id=city, amount=Decimal("1000.00"),
                                   reason="population", issued_on=DUE))
    invoice_mails = [m for m in await queued(runtime) if m[1] == "icc@gent.example"]
    assert len(invoice_mails) == 2  # one per invoice, to the contact the application gave
    async with runtime.sessions() as session:
        name, pdf = (await session.execute(select(mails.c.attachment_name, mails.c.attachment)
                                           .where(mails.c.event_id == invoice_mails[0][0]))).one()
    assert name == f"{owed.number}.pdf" and pdf.startswith(b"%PDF")
    assert "CH93 0076 2011 6238 5295 7" in text(pdf)  # the bank of the settings (BANK_*, as finance's)

    assert await remind(runtime, DUE + timedelta(days=14)) == 0
    assert await remind(runtime, DUE + timedelta(days=15)) == 1
    assert await remind(runtime, DUE + timedelta(days=16)) == 0  # once per step
    [reminder] = [m for m in await queued(runtime) if m[0].startswith("dunning-")]
    assert reminder == (f"dunning-15:{owed.invoice_id}", "icc@gent.example", f"Reminder: invoice {owed.number} is overdue")

    # A reversed payment makes the paid invoice owed again: it is reminded too (both steps, late).
    await deliver(runtime, PaymentReversed(payment_id=uuid4(), invoice_id=paid.invoice_id, city_id=city, amount=Decimal("4000.00"),
                                           from_invoice=Decimal("4000.00"), from_credit=Decimal("0.00"), reason="bounced",
                                           reversed_on=DUE))
    assert await remind(runtime, DUE + timedelta(days=45)) == 3
    assert sorted(m[0].split(":")[0] + ":" + ("owed" if m[0].endswith(str(owed.invoice_id)) else "paid")
                  for m in await queued(runtime) if m[0].startswith("dunning-")) == [
        "dunning-15:owed", "dunning-15:paid", "dunning-45:owed", "dunning-45:paid"]


async def test_workshop_changes_go_to_its_live_registrations_and_a_promotion_to_the_promoted(notifications) -> None:
    _, runtime = notifications
    workshop, city = uuid4(), uuid4()
    ana, ben, cy = uuid4(), uuid4(), uuid4()

    def registered(registration_id, email, status="registered"):
        return DelegateRegistered(registration_id=registration_id, workshop_id=workshop, city_id=city, delegate_name=email.split("@")[0],
                                  delegate_email=email, status=status, funded=True)

    await deliver(runtime, WorkshopScheduled(workshop_id=workshop, title="Anti-rumour study visit", kind="study_visit", host_city="Bilbao",
                                             host_country="ES", starts_on=date(2026, 9, 1), ends_on=date(2026, 9, 2), capacity=2,
                                             funded_quota_per_city=1),
                  registered(ana, "ana@gent.example"), registered(ben, "ben@gent.example"), registered(cy, "cy@gent.example", "waitlisted"),
                  RegistrationCancelled(registration_id=ben, workshop_id=workshop, city_id=city),
                  RegistrationPromoted(registration_id=cy, workshop_id=workshop, city_id=city, funded=False), service="events")
    assert [(m[1], m[2]) for m in await queued(runtime)] == [("cy@gent.example", "A seat is yours: Anti-rumour study visit")]
    await deliver(runtime, WorkshopRescheduled(workshop_id=workshop, starts_on=date(2026, 10, 1), ends_on=date(2026, 10, 2)),
                  WorkshopCancelled(workshop_id=workshop), service="events")
    changes = [(m[1], m[2]) for m in (await queued(runtime))[1:]]
    assert sorted(changes) == [("ana@gent.example", "Cancelled: Anti-rumour study visit"), ("ana@gent.example", "New dates: Anti-rumour study visit"),
                               ("cy@gent.example", "Cancelled: Anti-rumour study visit"), ("cy@gent.example", "New dates: Anti-rumour study visit")]


async def test_a_budget_threshold_goes_to_finance_and_a_language_is_ones_own(notifications) -> None:
    client, runtime = notifications
    await deliver(runtime, BudgetThresholdCrossed(year=2026, budget_line="delegate_travel", threshold=90, allocation=Decimal("10000.00"),
                                                  used=Decimal("9100.00"), crossed_on=date(2026, 6, 1)))
    [(_, to, subject)] = await queued(runtime)
    assert (to, subject) == ("finance@icc.example", "Budget 2026, delegate travel: 90% used")

    delegate = STAND_IN.bearer("delegate", username="ana", email="Ana@Gent.example", city_id=uuid4())
    mine = await client.put("/recipients/ana@gent.example/language", json={"language": "fr"}, headers=delegate)
    assert mine.status_code == 200
    assert (await client.put("/recipients/ben@gent.example/language", json={"language": "fr"}, headers=delegate)).status_code == 404
    assert (await client.put("/recipients/ana@gent.example/language", json={"language": "de"}, headers=delegate)).status_code == 422


class Coordinators:
    def __init__(self, *emails, failing: bool = False) -> None:
        self.emails, self.failing = emails, failing

    async def coordinators(self, city_id):
        if self.failing:
            raise ConnectionError("directory down")
        return list(self.emails)


async def test_a_citys_recipients_are_its_contact_and_its_coordinators() -> None:
    city = uuid4()
    assert await city_addresses(Coordinators("Lea@Gent.example"), city, "ICC@gent.example") == ["icc@gent.example", "lea@gent.example"]
    assert await city_addresses(Coordinators(failing=True), city, "icc@gent.example") == ["icc@gent.example"]
    assert await city_addresses(Coordinators(), city, None) == []


async def test_a_decision_before_its_claim_waits_for_the_delegates_address(notifications) -> None:
    from contracts.events import ReimbursementRejected, TravelClaimed

    _, runtime = notifications
    claim_id = uuid4()
    await deliver(runtime, ReimbursementRejected(claim_id=claim_id, reason="no boarding pass"))
    assert await queued(runtime) == []  # no address yet: another topic brings it
    await deliver(runtime, TravelClaimed(claim_id=claim_id, registration_id=uuid4(), workshop_id=uuid4(), city_id=uuid4(),
                                         delegate_email="ana@gent.example", european=True, budget_line="delegate_travel",
                                         coe_funded=Decimal("300.00"), city_borne=Decimal("0.00"), submitted_on=date(2026, 5, 2),
                                         event_year=2026), service="travel")
    [(_, to, subject)] = await queued(runtime)
    assert (to, subject) == ("ana@gent.example", "Your travel claim is rejected")
    await deliver(runtime, TravelClaimed(claim_id=claim_id, registration_id=uuid4(), workshop_id=uuid4(), city_id=uuid4(),
                                         delegate_email="ana@gent.example", european=True, budget_line="delegate_travel",
                                         coe_funded=Decimal("300.00"), city_borne=Decimal("0.00"), submitted_on=date(2026, 5, 2),
                                         event_year=2026), service="travel")
    assert len(await queued(runtime)) == 1  # released once
