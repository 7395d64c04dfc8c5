"""The platform's documents as PDF: invoices, credit notes and statements of account, in English or French.

Shared (not finance's) so the notifications service attaches the very PDF finance serves, from the same
plain data, without importing finance. Texts come from the gettext catalogues in services/common/locale
(read at runtime: no compiled .mo to go stale); amounts and dates are formatted per language by Babel."""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Literal

from babel.dates import format_date
from babel.messages.pofile import read_po
from babel.numbers import format_currency
from pydantic import BaseModel, Field
from reportlab.lib import colors
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

LANGUAGES = ("en", "fr")
Language = Literal["en", "fr"]
LOCALE = Path(__file__).parent / "locale"
CURRENCY = "EUR"
ISSUER = ("Council of Europe", "Intercultural Cities programme")


@dataclass(frozen=True)
class Bank:
    """Where cities pay. The defaults are PLACEHOLDERS, not the Council of Europe's real account:
    production sets BANK_ACCOUNT_HOLDER, BANK_IBAN and BANK_BIC (services/finance/settings.py)."""

    account_holder: str = "Council of Europe (PLACEHOLDER)"
    iban: str = "FR76 0000 0000 0000 0000 0000 000"
    bic: str = "XXXXFRPPXXX"


@dataclass(frozen=True)
class InvoiceDocument:
    number: str  # the legal number; also the payment reference
    city_name: str
    year: int  # the contribution year
    amount: Decimal
    issued_on: date
    due_on: date
    kind: str = "contribution"  # contribution | expert_visit_recharge
    bank: Bank = field(default_factory=Bank)


@dataclass(frozen=True)
class CreditNoteDocument:
    number: str
    invoice_number: str  # the invoice it credits
    city_name: str
    year: int
    amount: Decimal
    issued_on: date
    reason: str


@dataclass(frozen=True)
class StatementLine:
    on: date
    document: str  # an invoice's or credit note's number, a payment's bank reference
    kind: Literal["invoice", "credit_note", "payment"]
    amount: Decimal  # positive; the kind says which column


@dataclass(frozen=True)
class StatementDocument:
    city_name: str
    year: int | None  # None: every year
    on: date  # the statement's date
    lines: list[StatementLine]
    bank: Bank = field(default_factory=Bank)

    @property
    def balance(self) -> Decimal:
        return sum((line.amount if line.kind == "invoice" else -line.amount for line in self.lines), Decimal("0"))


@cache
def catalogue(language: str) -> dict[str, str]:
    with open(LOCALE / language / "LC_MESSAGES" / "icc.po", "rb") as po:
        return {message.id: message.string for message in read_po(po) if message.id and message.string}


def translate(text: str, language: str) -> str:
    return catalogue(_checked(language)).get(text, text)


def money(amount: Decimal, language: str) -> str:
    """`€1,234.56` in English, `1 234,56 €` in French (Babel's CLDR data). CLDR's narrow no-break space becomes a
    no-break space: the PDF's standard fonts have no glyph for the narrow one."""
    return format_currency(amount, CURRENCY, locale=_checked(language)).replace("\u202f", "\xa0")


def day(on: date, language: str) -> str:
    return format_date(on, format="long", locale=_checked(language)).replace("\u202f", "\xa0")


def _checked(language: str) -> str:
    if language not in LANGUAGES:
        raise ValueError(f"language {language!r}: one of {', '.join(LANGUAGES)}")
    return language


class _Page:
    """One document being written: a title, labelled fields, tables."""

    def __init__(self, language: str, title: str) -> None:
        self.language = _checked(language)
        self.styles = getSampleStyleSheet()
        self.title = self._(title)
        self.flow: list = [
            Paragraph(self._(ISSUER[0]), self.styles["Heading3"]),
            Paragraph(self._(ISSUER[1]), self.styles["Normal"]),
            Spacer(1, 10 * mm),
            Paragraph(self.title, self.styles["Title"]),
        ]

    def _(self, text: str) -> str:
        return translate(text, self.language)

    def fields(self, rows: list[tuple[str, str]]) -> None:
        table = Table([[self._(label), value] for label, value in rows], colWidths=[55 * mm, 110 * mm], hAlign="LEFT")
        table.setStyle(TableStyle([("FONTNAME", (0, 0), (0, -1), "Helvetica-Bold"), ("VALIGN", (0, 0), (-1, -1), "TOP")]))
        self.flow += [table, Spacer(1, 6 * mm)]

    def heading(self, text: str) -> None:
        self.flow.append(Paragraph(self._(text), self.styles["Heading4"]))

    def text(self, text: str) -> None:
        self.flow.append(Paragraph(self._(text), self.styles["Normal"]))

    def grid(self, header: list[str], rows: list[list[str]], widths: list[float]) -> None:
        table = Table([[self._(h) for h in header], *rows], colWidths=[w * mm for w in widths], hAlign="LEFT", repeatRows=1)
        table.setStyle(TableStyle([
            ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
            ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.black),
            ("LINEABOVE", (0, -1), (-1, -1), 0.5, colors.black),
            ("ALIGN", (2, 0), (-1, -1), "RIGHT"),
        ]))
        self.flow += [table, Spacer(1, 6 * mm)]

    def bank(self, bank: Bank, reference: str | None) -> None:
        self.heading("Payment details")
        rows = [("Account holder", bank.account_holder), ("IBAN", bank.iban), ("BIC", bank.bic)]
        if reference:
            rows.append(("Payment reference", reference))
        self.fields(rows)
        if reference:
            self.text("Please quote the payment reference with your transfer.")

    def pdf(self, subject: str) -> bytes:
        out = BytesIO()
        document = SimpleDocTemplate(out, pagesize=A4, title=f"{self.title} {subject}", author=self._(ISSUER[0]),
                                     leftMargin=20 * mm, rightMargin=20 * mm, topMargin=20 * mm, bottomMargin=20 * mm)
        document.build(self.flow)
        return out.getvalue()


KIND = {"contribution": "Annual membership contribution", "expert_visit_recharge": "Expert visit recharge"}


def invoice_pdf(doc: InvoiceDocument, language: str) -> bytes:
    page = _Page(language, "Invoice")
    page.fields([
        ("Number", doc.number), ("City", doc.city_name), ("Contribution year", str(doc.year)),
        ("Issued on", day(doc.issued_on, language)), ("Due on", day(doc.due_on, language)),
    ])
    page.grid(["Document", "", "Amount due"], [[page._(KIND.get(doc.kind, doc.kind)), "", money(doc.amount, language)]],
              [110, 5, 50])
    page.bank(doc.bank, doc.number)
    return page.pdf(doc.number)


def credit_note_pdf(doc: CreditNoteDocument, language: str) -> bytes:
    page = _Page(language, "Credit note")
    page.fields([
        ("Number", doc.number), ("Credits invoice", doc.invoice_number), ("City", doc.city_name),
        ("Contribution year", str(doc.year)), ("Issued on", day(doc.issued_on, language)),
        ("Reason", doc.reason), ("Amount credited", money(doc.amount, language)),
    ])
    return page.pdf(doc.number)


STATEMENT_KIND = {"invoice": "Invoice", "credit_note": "Credit note", "payment": "Payment"}


def statement_pdf(doc: StatementDocument, language: str) -> bytes:
    page = _Page(language, "Statement of account")
    page.fields([("City", doc.city_name), ("Year", str(doc.year) if doc.year else "—"), ("Date", day(doc.on, language))])
    rows = []
    for line in sorted(doc.lines, key=lambda line: (line.on, line.kind != "invoice")):
        amount = money(line.amount, language)
        debit, credit = (amount, "") if line.kind == "invoice" else ("", amount)
        rows.append([day(line.on, language), f"{page._(STATEMENT_KIND[line.kind])} {line.document}", debit, credit])
    rows.append(["", page._("Balance due"), money(doc.balance, language), ""])
    page.grid(["Date", "Document", "Debit", "Credit"], rows, [35, 70, 30, 30])
    page.bank(doc.bank, None)
    return page.pdf(doc.city_name)


def sample_invoice() -> InvoiceDocument:
    """The invoice shown in the README (docs/invoice.png)."""
    return InvoiceDocument(number="ICC-2027-0001", city_name="Lisboa", year=2027, amount=Decimal("5000.00"),
                           issued_on=date(2027, 1, 4), due_on=date(2027, 3, 5))


if __name__ == "__main__":  # python -m services.common.documents [en|fr] > invoice.pdf
    import sys

    sys.stdout.buffer.write(invoice_pdf(sample_invoice(), sys.argv[1] if len(sys.argv) > 1 else "en"))


class BankSettings(BaseModel):
    """Where cities pay, printed on invoices and statements: a settings mixin for every service that
    renders them (finance serves the PDFs, notifications attaches them), so both print the same.
    PLACEHOLDER defaults, not the Council of Europe's real account: production sets
    BANK_ACCOUNT_HOLDER, BANK_IBAN, BANK_BIC."""

    bank_account_holder: str = Field(default=Bank.account_holder, description="PLACEHOLDER default")
    bank_iban: str = Field(default=Bank.iban, description="PLACEHOLDER default")
    bank_bic: str = Field(default=Bank.bic, description="PLACEHOLDER default")

    @property
    def bank(self) -> Bank:
        return Bank(self.bank_account_holder, self.bank_iban, self.bank_bic)
