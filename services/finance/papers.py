"""Finance's documents: the shared renderer's plain data (services/common/documents.py) from finance's rows."""

from datetime import date
from uuid import UUID

from sqlalchemy import select

from services.common.documents import (
    Bank, CreditNoteDocument, InvoiceDocument, StatementDocument, StatementLine,
)
from services.finance.db import FinanceUnitOfWork, credit_notes, invoices, payments
from services.finance.domain import Invoice


async def _city_name(uow: FinanceUnitOfWork, city_id: UUID) -> str:
    await uow.members.get(city_id)  # loads it for name()
    return uow.members.name(city_id)


async def invoice_document(uow: FinanceUnitOfWork, invoice: Invoice, bank: Bank) -> InvoiceDocument:
    return InvoiceDocument(
        number=invoice.number or str(invoice.id), city_name=await _city_name(uow, invoice.city_id), year=invoice.year,
        amount=invoice.amount, issued_on=invoice.issued_on, due_on=invoice.due_on, kind=invoice.kind, bank=bank,
    )


async def credit_note(uow: FinanceUnitOfWork, credit_note_id: UUID) -> dict | None:
    row = (await uow.session.execute(select(credit_notes).where(credit_notes.c.id == credit_note_id))).mappings().first()
    return dict(row) if row else None


async def credit_notes_of(uow: FinanceUnitOfWork, invoice_id: UUID) -> list[dict]:
    query = select(credit_notes).where(credit_notes.c.invoice_id == invoice_id).order_by(credit_notes.c.issued_on, credit_notes.c.number)
    return [dict(row) for row in (await uow.session.execute(query)).mappings()]


async def credit_note_document(uow: FinanceUnitOfWork, note: dict, invoice: Invoice) -> CreditNoteDocument:
    return CreditNoteDocument(
        number=note["number"] or str(note["id"]), invoice_number=invoice.number or str(invoice.id),
        city_name=await _city_name(uow, invoice.city_id), year=invoice.year, amount=note["amount"],
        issued_on=note["issued_on"], reason=note["reason"],
    )


async def statement_document(uow: FinanceUnitOfWork, city_id: UUID, year: int | None, on: date, bank: Bank) -> StatementDocument:
    """Invoices (of `year`: the contribution year), their credit notes and the payments received on them
    (reversed payments left out), up to `on`."""
    where = [invoices.c.city_id == city_id, invoices.c.issued_on <= on] + ([invoices.c.year == year] if year else [])
    billed = {row.id: row for row in await uow.session.execute(select(invoices).where(*where))}
    lines = [StatementLine(row.issued_on, row.number or str(row.id), "invoice", row.amount) for row in billed.values()]
    if billed:
        notes = select(credit_notes).where(credit_notes.c.invoice_id.in_(billed), credit_notes.c.issued_on <= on)
        lines += [StatementLine(n.issued_on, n.number or str(n.id), "credit_note", n.amount) for n in await uow.session.execute(notes)]
        paid = select(payments).where(payments.c.invoice_id.in_(billed), payments.c.paid_on <= on, payments.c.reversed_on.is_(None))
        lines += [StatementLine(p.paid_on, p.reference, "payment", p.amount) for p in await uow.session.execute(paid)]
    return StatementDocument(city_name=await _city_name(uow, city_id), year=year, on=on, lines=lines, bank=bank)
