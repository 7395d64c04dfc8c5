"""The shared renderer: the figures on the PDF, in English and French (text extracted with pypdf)."""

from datetime import date
from decimal import Decimal
from io import BytesIO

import pytest
from pypdf import PdfReader

from services.common.documents import (
    Bank, CreditNoteDocument, InvoiceDocument, StatementDocument, StatementLine, credit_note_pdf, invoice_pdf, money,
    statement_pdf,
)

INVOICE = InvoiceDocument(
    number="ICC-2027-0042", city_name="Lisboa", year=2027, amount=Decimal("1234.56"),
    issued_on=date(2027, 1, 15), due_on=date(2027, 3, 16), bank=Bank("Council of Europe", "FR76 1234 5678 9012 3456 7890 123", "CEPAFRPP"),
)


def text(pdf: bytes) -> str:
    # pypdf renders the narrow no-break space Babel puts in French amounts as it is; compare on plain spaces
    return " ".join(page.extract_text() for page in PdfReader(BytesIO(pdf)).pages).replace("\u202f", " ").replace("\xa0", " ")


def test_amounts_per_language():
    assert money(Decimal("1234.56"), "en") == "€1,234.56"
    assert money(Decimal("1234.56"), "fr").replace("\u202f", " ").replace("\xa0", " ") == "1 234,56 €"
    with pytest.raises(ValueError):
        money(Decimal(1), "de")


@pytest.mark.parametrize("language, expected", [
    ("en", ["Invoice", "ICC-2027-0042", "Lisboa", "€1,234.56", "March 16, 2027", "Payment reference", "Intercultural Cities programme"]),
    ("fr", ["Facture", "ICC-2027-0042", "Lisboa", "1 234,56 €", "16 mars 2027", "Référence de paiement", "Programme des Cités interculturelles"]),
])
def test_invoice_pdf(language, expected):
    pdf = invoice_pdf(INVOICE, language)
    assert pdf.startswith(b"%PDF")
    found = text(pdf)
    for figure in [*expected, "FR76 1234 5678 9012 3456 7890 123", "CEPAFRPP"]:
        assert figure in found, (figure, found)


@pytest.mark.parametrize("language, expected", [
    ("en", ["Credit note", "ICC-CN-2027-0001", "ICC-2027-0042", "€100.00", "duplicate"]),
    ("fr", ["Note de crédit", "ICC-CN-2027-0001", "ICC-2027-0042", "100,00 €", "duplicate"]),
])
def test_credit_note_pdf(language, expected):
    doc = CreditNoteDocument("ICC-CN-2027-0001", "ICC-2027-0042", "Lisboa", 2027, Decimal("100"), date(2027, 2, 1), "duplicate")
    found = text(credit_note_pdf(doc, language))
    for figure in expected:
        assert figure in found, (figure, found)


@pytest.mark.parametrize("language, balance", [("en", "€834.56"), ("fr", "834,56 €")])
def test_statement_pdf(language, balance):
    doc = StatementDocument("Lisboa", 2027, date(2027, 6, 1), [
        StatementLine(date(2027, 1, 15), "ICC-2027-0042", "invoice", Decimal("1234.56")),
        StatementLine(date(2027, 2, 1), "ICC-CN-2027-0001", "credit_note", Decimal("100")),
        StatementLine(date(2027, 3, 1), "BANK-77", "payment", Decimal("300")),
    ])
    assert doc.balance == Decimal("834.56")
    found = text(statement_pdf(doc, language))
    for figure in ["Lisboa", "ICC-2027-0042", "ICC-CN-2027-0001", "BANK-77", balance]:
        assert figure in found, (figure, found)
