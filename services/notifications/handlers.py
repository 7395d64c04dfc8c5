"""From facts to mails: each handler keeps what later mails need and queues, in the consumer's
transaction, one mail per fact and recipient (NotificationsUnitOfWork.queue_mail)."""

from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import delete, select, update

from contracts.events import (
    BudgetThresholdCrossed, CityApplied, CityJoined, CreditApplied, CreditNoteIssued, DelegateRegistered, Event, InvoiceIssued,
    PaymentReceived, PaymentReversed, RegistrationCancelled, RegistrationPromoted, ReimbursementApproved, ReimbursementHeld,
    ReimbursementPaid, ReimbursementRejected, TravelClaimed, WorkshopCancelled, WorkshopRescheduled, WorkshopScheduled,
)
from services.common.documents import Bank, InvoiceDocument, invoice_pdf
from services.notifications import texts
from services.notifications.db import NotificationsUnitOfWork, cities, claims, invoices, registrations, waiting, workshops
from services.notifications.directory import Directory, NoDirectory, city_addresses


@dataclass
class Context:
    """What handlers need besides the database: the unit of work finds it in its session's info."""

    finance_mailbox: str = "finance@icc.example"
    secretariat_mailbox: str = "secretariat@icc.example"
    directory: Directory = field(default_factory=NoDirectory)
    bank: Bank = field(default_factory=Bank)


def _context(uow: NotificationsUnitOfWork) -> Context:
    return uow.session.info.get("notifications") or Context()




def _event_id(uow: NotificationsUnitOfWork) -> str:
    return str(uow.cause.id)


async def _mail(uow: NotificationsUnitOfWork, event_id: str, recipient: str, which: str,
                attachment: tuple[str, bytes] | None = None, **values: Any) -> bool:
    language = await uow.language(recipient)
    subject, body = texts.mail(language, which, **values)
    return await uow.queue_mail(event_id, recipient.lower(), language, subject, body, attachment)


async def _wait(uow: NotificationsUnitOfWork, event_id: str, waits_for: str, event: Event) -> None:
    """Park a fact whose recipient is named by a fact not here yet (another topic: no order between them)."""
    await uow.upsert(waiting, {"event_id": event_id, "waits_for": waits_for, "type": event.type,
                               "payload": event.model_dump(mode="json")}, keep=("payload",))


async def _release(uow: NotificationsUnitOfWork, waits_for: str) -> None:
    rows = (await uow.session.execute(select(waiting).where(waiting.c.waits_for == waits_for).order_by(waiting.c.event_id))).all()
    if not rows:
        return
    await uow.session.execute(delete(waiting).where(waiting.c.waits_for == waits_for))
    for row in rows:
        event_type = next(t for (name, _), t in Event.registry.items() if name == row.type)
        await DELIVER[event_type](event_type.model_validate(row.payload), uow, row.event_id)


# --- cities and invoices ----------------------------------------------------------------------


async def city_applied(event: CityApplied, uow: NotificationsUnitOfWork) -> None:
    await uow.upsert(cities, {"city_id": event.city_id, "name": event.name, "contact": event.contact})
    await _mail(uow, _event_id(uow), _context(uow).secretariat_mailbox, "city_applied", city=event.name, country=event.country,
                population=event.population, applied_on=event.applied_on, contact=event.contact or "-")
    await _release(uow, f"city:{event.city_id}")


async def city_joined(event: CityJoined, uow: NotificationsUnitOfWork) -> None:
    await uow.upsert(cities, {"city_id": event.city_id, "name": event.name}, keep=("contact",))


async def invoice_issued(event: InvoiceIssued, uow: NotificationsUnitOfWork) -> None:
    await uow.upsert(invoices, {"invoice_id": event.invoice_id, "city_id": event.city_id, "number": event.number,
                                "amount": event.amount, "balance": event.amount, "due_on": event.due_on}, keep=("balance",))
    if event.replaces is not None:  # a corrected invoice replaces the old one: nothing is owed on that any more
        await uow.session.execute(update(invoices).where(invoices.c.invoice_id == event.replaces).values(balance=Decimal(0)))
    await _deliver_invoice(event, uow, _event_id(uow))


async def _deliver_invoice(event: InvoiceIssued, uow: NotificationsUnitOfWork, event_id: str) -> None:
    city = await uow.one(cities, event.city_id)
    if city is None:
        await _wait(uow, event_id, f"city:{event.city_id}", event)
        return
    number = event.number or str(event.invoice_id)
    for recipient in await city_addresses(_context(uow).directory, event.city_id, city.contact):
        language = await uow.language(recipient)  # the PDF in the recipient's language too
        pdf = invoice_pdf(InvoiceDocument(number=number, city_name=city.name or "", year=event.year, amount=event.amount,
                                          issued_on=event.issued_on, due_on=event.due_on, kind=event.kind,
                                          bank=_context(uow).bank), language)
        await _mail(uow, event_id, recipient, "invoice_issued", (f"{number}.pdf", pdf), number=number, city=city.name or "",
                    amount=(event.amount), due_on=event.due_on)


async def _owed(uow: NotificationsUnitOfWork, invoice_id: UUID, change: Decimal) -> None:
    await uow.session.execute(update(invoices).where(invoices.c.invoice_id == invoice_id).values(balance=invoices.c.balance + change))


async def payment_received(event: PaymentReceived, uow: NotificationsUnitOfWork) -> None:
    await _owed(uow, event.invoice_id, -event.amount)


async def credit_note_issued(event: CreditNoteIssued, uow: NotificationsUnitOfWork) -> None:
    await _owed(uow, event.invoice_id, -event.amount)


async def credit_applied(event: CreditApplied, uow: NotificationsUnitOfWork) -> None:
    await _owed(uow, event.invoice_id, -event.amount)


async def payment_reversed(event: PaymentReversed, uow: NotificationsUnitOfWork) -> None:
    await _owed(uow, event.invoice_id, event.from_invoice)


async def remind_overdue(uow: NotificationsUnitOfWork, today: date, days: list[int]) -> int:
    """Queue the dunning reminders due by `today`: one per invoice and step, while something is owed
    (the mail's key, dunning-<days>:<invoice>, makes a second check add nothing). Returns how many were queued."""
    queued = 0
    for step in sorted(days):
        rows = (await uow.session.execute(
            select(invoices, cities.c.name, cities.c.contact).join(cities, cities.c.city_id == invoices.c.city_id)
            .where(invoices.c.balance > Decimal(0), invoices.c.due_on <= today - timedelta(days=step))
        )).all()
        for row in rows:
            for recipient in await city_addresses(_context(uow).directory, row.city_id, row.contact):
                queued += await _mail(uow, f"dunning-{step}:{row.invoice_id}", recipient, "dunning", number=row.number or str(row.invoice_id),
                            city=row.name or "", due_on=row.due_on, days=step, balance=(row.balance))
    return queued


# --- claims and reimbursements ------------------------------------------------------------------


async def travel_claimed(event: TravelClaimed, uow: NotificationsUnitOfWork) -> None:
    await uow.upsert(claims, {"claim_id": event.claim_id, "delegate_email": event.delegate_email.lower(),
                              "coe_funded": event.coe_funded, "city_borne": event.city_borne})
    await _release(uow, f"claim:{event.claim_id}")


def _reimbursement(name: str):
    async def deliver(event: Event, uow: NotificationsUnitOfWork, event_id: str) -> None:
        claim = await uow.one(claims, event.claim_id)
        if claim is None:
            await _wait(uow, event_id, f"claim:{event.claim_id}", event)
            return
        language = await uow.language(claim.delegate_email)
        lines = texts.text(language, "mail.claim_lines", coe_funded=(claim.coe_funded), city_borne=(claim.city_borne))
        values = {"claim": str(event.claim_id)[:8], "lines": lines, "reason": getattr(event, "reason", ""),
                  "amount": (getattr(event, "amount", claim.coe_funded)), "paid_on": getattr(event, "paid_on", "")}
        await _mail(uow, event_id, claim.delegate_email, name, **values)

    async def handle(event: Event, uow: NotificationsUnitOfWork) -> None:
        await deliver(event, uow, _event_id(uow))

    handle.deliver = deliver
    return handle


reimbursement_approved = _reimbursement("reimbursement_approved")
reimbursement_held = _reimbursement("reimbursement_held")
reimbursement_paid = _reimbursement("reimbursement_paid")
reimbursement_rejected = _reimbursement("reimbursement_rejected")


# --- workshops and registrations (one topic, in order) ----------------------------------------------


async def workshop_scheduled(event: WorkshopScheduled, uow: NotificationsUnitOfWork) -> None:
    await uow.upsert(workshops, {"workshop_id": event.workshop_id, "title": event.title, "starts_on": event.starts_on, "ends_on": event.ends_on})


async def delegate_registered(event: DelegateRegistered, uow: NotificationsUnitOfWork) -> None:
    await uow.upsert(registrations, {"registration_id": event.registration_id, "workshop_id": event.workshop_id,
                                     "delegate_name": event.delegate_name, "delegate_email": event.delegate_email.lower(),
                                     "status": event.status})


async def registration_cancelled(event: RegistrationCancelled, uow: NotificationsUnitOfWork) -> None:
    await uow.session.execute(update(registrations).where(registrations.c.registration_id == event.registration_id).values(status="cancelled"))


async def registration_promoted(event: RegistrationPromoted, uow: NotificationsUnitOfWork) -> None:
    await uow.session.execute(update(registrations).where(registrations.c.registration_id == event.registration_id).values(status="registered"))
    registration, workshop = await uow.one(registrations, event.registration_id), await uow.one(workshops, event.workshop_id)
    if registration is None or workshop is None:
        return  # registered before this service kept registrations: no address to write to
    await _mail(uow, _event_id(uow), registration.delegate_email, "registration_promoted", name=registration.delegate_name,
                title=workshop.title, starts_on=workshop.starts_on, ends_on=workshop.ends_on)


async def _to_registered(uow: NotificationsUnitOfWork, workshop_id: UUID, which: str) -> None:
    workshop = await uow.one(workshops, workshop_id)
    if workshop is None:
        return
    rows = (await uow.session.execute(select(registrations).where(
        registrations.c.workshop_id == workshop_id, registrations.c.status != "cancelled"))).all()
    for registration in rows:
        await _mail(uow, _event_id(uow), registration.delegate_email, which, name=registration.delegate_name,
                    title=workshop.title, starts_on=workshop.starts_on, ends_on=workshop.ends_on)


async def workshop_rescheduled(event: WorkshopRescheduled, uow: NotificationsUnitOfWork) -> None:
    await uow.session.execute(update(workshops).where(workshops.c.workshop_id == event.workshop_id)
                              .values(starts_on=event.starts_on, ends_on=event.ends_on))
    await _to_registered(uow, event.workshop_id, "workshop_rescheduled")


async def workshop_cancelled(event: WorkshopCancelled, uow: NotificationsUnitOfWork) -> None:
    await _to_registered(uow, event.workshop_id, "workshop_cancelled")


# --- budget ---------------------------------------------------------------------------------------------


async def budget_threshold_crossed(event: BudgetThresholdCrossed, uow: NotificationsUnitOfWork) -> None:
    await _mail(uow, _event_id(uow), _context(uow).finance_mailbox, "budget_threshold", year=event.year,
                line=event.budget_line.replace("_", " "), threshold=event.threshold, used=(event.used),
                allocation=(event.allocation), crossed_on=event.crossed_on)


HANDLERS = {
    CityApplied: city_applied,
    CityJoined: city_joined,
    InvoiceIssued: invoice_issued,
    PaymentReceived: payment_received,
    CreditNoteIssued: credit_note_issued,
    CreditApplied: credit_applied,
    PaymentReversed: payment_reversed,
    TravelClaimed: travel_claimed,
    ReimbursementApproved: reimbursement_approved,
    ReimbursementHeld: reimbursement_held,
    ReimbursementPaid: reimbursement_paid,
    ReimbursementRejected: reimbursement_rejected,
    WorkshopScheduled: workshop_scheduled,
    DelegateRegistered: delegate_registered,
    RegistrationCancelled: registration_cancelled,
    RegistrationPromoted: registration_promoted,
    WorkshopRescheduled: workshop_rescheduled,
    WorkshopCancelled: workshop_cancelled,
    BudgetThresholdCrossed: budget_threshold_crossed,
}
# Facts that may wait for the one naming their recipient, and how to deliver them then.
DELIVER = {
    InvoiceIssued: _deliver_invoice,
    **{t: HANDLERS[t].deliver for t in (ReimbursementApproved, ReimbursementHeld, ReimbursementPaid, ReimbursementRejected)},
}
