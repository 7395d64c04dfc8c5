"""Finance's handlers driven with a fake unit of work and repositories in memory: the rules run
for real, no database. (The same flows run on SQLite and PostgreSQL in tests/integration.)"""

from datetime import date, datetime
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from contracts.envelope import wrap
from contracts.events import (
    CityJoined, ContributionRunCompleted, CreditNoteIssued, InvoiceIssued, JoinDateCorrected, PaymentReceived, PaymentReversed,
    ReimbursementApproved, ReimbursementHeld, ReimbursementReopened, TravelClaimAmended, TravelClaimed,
)
from services.common.refusals import Conflict, NotYetKnown
from services.finance import handlers
from services.finance.domain import LINES, ZERO, BudgetLine, Claim, Credit, Invoice, Payment, Spending
from tests.fakes import FakeUnitOfWork, FakeKeyed

D = Decimal
ON = date(2026, 11, 30)


class FakeInvoices(FakeKeyed[Invoice]):
    def __init__(self) -> None:
        super().__init__("id")
        self.credit_notes: list[dict] = []

    async def get(self, invoice_id: UUID, *, lock: bool = False) -> Invoice | None:
        return self.rows.get(invoice_id)

    async def preload_contributions(self, city_ids: set[UUID]) -> None:
        pass

    async def contributions_of(self, city_id: UUID) -> list[Invoice]:
        return [i for i in self.rows.values() if i.city_id == city_id and i.kind == "contribution"]

    async def add_credit_note(self, **row) -> None:
        self.credit_notes.append(row)

    def issuing(self, invoice: Invoice) -> None:
        pass  # the real one spares a query and a copy; a dict has nothing to spare

    def made(self, invoice_id: UUID) -> Invoice | None:
        return None


class FakePayments(FakeKeyed[Payment]):
    async def of_invoice(self, invoice_id: UUID) -> list[Payment]:
        return [p for p in self.rows.values() if p.invoice_id == invoice_id]


class FakeMembers(FakeKeyed):
    async def all(self) -> list:
        return sorted(self.rows.values(), key=lambda m: m.name)

    def name(self, city_id) -> str:
        return self.rows[city_id].name if city_id in self.rows else f"city {city_id}"


class Balances:
    """Budget lines or credits: created blank on first use (locking is the database's business)."""

    def __init__(self, blank) -> None:
        self.blank, self.rows = blank, {}

    async def lock(self, keys) -> None:
        for key in keys:
            self.rows.setdefault(key, self.blank(key))

    async def row(self, key):
        await self.lock([key])
        return self.rows[key]

    def loaded(self) -> list:
        return list(self.rows.values())


class FakeNumbers:
    """Legal numbers as the counter rows give them: gap-free per series and year."""

    def __init__(self) -> None:
        self.next: dict[tuple[str, int], int] = {}

    async def take(self, series: str, year: int) -> str:
        taken = self.next.get((series, year), 1)
        self.next[series, year] = taken + 1
        return f"{series}-{year}-{taken:04d}"


class FakeLines(Balances):
    def __init__(self) -> None:
        super().__init__(lambda key: BudgetLine(*key))

    async def get(self, year: int, line: str) -> BudgetLine:
        return await self.row((year, line))

    async def year(self, year: int) -> list[BudgetLine]:
        return [await self.get(year, line) for line in LINES]


class FakeCredits(Balances):
    def __init__(self) -> None:
        super().__init__(Credit)

    async def of(self, city_id: UUID) -> Credit:
        return await self.row(city_id)


class FakeRuns:
    def __init__(self) -> None:
        self.done: set[int] = set()

    async def years(self) -> set[int]:
        return self.done

    async def start(self) -> None:
        pass  # one task at a time here: nothing to wait for

    async def add(self, year: int, run_on: date) -> None:
        self.done.add(year)


class FakeClaims(FakeKeyed[Claim]):
    async def held_on(self, year: int, line: str) -> list[Claim]:
        held = [c for c in self.rows.values() if (c.year, c.budget_line, c.status) == (year, line, "held")]
        return sorted(held, key=lambda c: c.held_since)


class FakeFinance(FakeUnitOfWork):
    service = "finance"

    def __init__(self) -> None:
        super().__init__()
        self.members, self.invoices, self.payments = FakeMembers("city_id"), FakeInvoices(), FakePayments("id")
        self.credits, self.runs, self.lines = FakeCredits(), FakeRuns(), FakeLines()
        self.claims, self.spendings = FakeClaims("claim_id"), FakeKeyed[Spending]("id")
        self.numbers = FakeNumbers()
        self.ledger: list[dict] = []

    def record_ledger(self, **row) -> None:
        self.ledger.append(row)

    def record_activity(self, event_id, type_: str, occurred_at: datetime, summary: str) -> None:
        pass


async def consume(uow: FakeFinance, *events) -> None:
    """Apply events as the batch consumer does: each with its envelope as the cause, one commit."""
    for event in events:
        uow.cause = wrap(event, service="membership")
        await handlers.HANDLERS[type(event)](event, uow)
    await uow.commit()


def joined(on: date, name: str = "Ghent") -> CityJoined:
    return CityJoined(city_id=uuid4(), name=name, country="BE", european=True, joined_on=on)


def years(uow: FakeFinance, city_id) -> list[tuple[int, bool]]:
    return sorted((i.year, i.cancelled) for i in uow.invoices.rows.values() if i.city_id == city_id)


async def test_a_join_that_reaches_finance_after_a_run_for_a_later_year_is_invoiced_for_both_years() -> None:
    uow = FakeFinance()
    issued, already = await handlers.run_contributions(uow, 2027, ON)
    assert (issued, already) == ([], 0) and uow.published_of(ContributionRunCompleted)
    city = joined(date(2026, 3, 1))
    await consume(uow, city)
    assert years(uow, city.city_id) == [(2026, False), (2027, False)]
    assert [e.year for e in uow.published_of(InvoiceIssued)] == [2026, 2027]


async def test_a_corrected_join_date_cancels_the_year_no_longer_owed_and_invoices_the_new_one() -> None:
    uow = FakeFinance()
    city = joined(date(2026, 3, 1))
    await consume(uow, city)
    await consume(uow, JoinDateCorrected(city_id=city.city_id, joined_on=date(2026, 10, 2), previous_joined_on=date(2026, 3, 1),
                                         european=True, reason="typed March for October"))
    assert years(uow, city.city_id) == [(2026, True), (2027, False)]
    [note] = uow.published_of(CreditNoteIssued)
    assert note.amount == D("5000.00") and note.reason.endswith("typed March for October")


async def test_an_overpayment_reversed_takes_its_credit_back_and_a_second_reversal_is_refused() -> None:
    uow = FakeFinance()
    city = joined(date(2026, 3, 1))
    await consume(uow, city)
    [invoice] = uow.invoices.rows.values()
    _, payment = await handlers.pay_invoice(uow, invoice.id, D("5200.00"), ON, "B-1")
    assert (payment.applied, (await uow.credits.of(city.city_id)).balance) == (D("5000.00"), D("200.00"))
    await handlers.reverse_payment(uow, payment.id, "bounced", ON)
    [reversed_] = uow.published_of(PaymentReversed)
    assert (reversed_.from_invoice, reversed_.from_credit) == (D("5000.00"), D("200.00"))
    assert (invoice.paid, (await uow.credits.of(city.city_id)).balance) == (ZERO, ZERO)
    commits = uow.commits
    with pytest.raises(Conflict, match="was reversed on"):
        await handlers.reverse_payment(uow, payment.id, "again", ON)
    assert uow.commits == commits


async def test_nothing_coe_funded_is_nothing_to_pay_and_the_refusal_emits_nothing() -> None:
    uow = FakeFinance()
    claim = TravelClaimed(claim_id=uuid4(), registration_id=uuid4(), workshop_id=uuid4(), city_id=uuid4(), delegate_email="d@x.ca",
                          european=False, budget_line="delegate_travel", coe_funded="0.00", city_borne="900.00",
                          submitted_on=ON, event_year=2026)
    await consume(uow, claim)
    assert (await uow.claims.get(claim.claim_id)).status == "approved"
    before = list(uow.published)
    with pytest.raises(Conflict, match="nothing to pay"):
        await handlers.pay_claim(uow, claim.claim_id, ON, None)
    assert uow.published == before


async def test_an_amended_claim_releases_its_commitment_and_is_held_behind_the_queue_when_it_no_longer_fits() -> None:
    uow = FakeFinance()
    (await uow.lines.get(2026, "delegate_travel")).allocation = D("1000.00")
    (await uow.lines.get(2026, "delegate_travel")).is_set = True

    def travel(amount: str) -> TravelClaimed:
        return TravelClaimed(claim_id=uuid4(), registration_id=uuid4(), workshop_id=uuid4(), city_id=uuid4(), delegate_email="d@x.eu",
                             european=True, budget_line="delegate_travel", coe_funded=amount, city_borne="0.00",
                             submitted_on=ON, event_year=2026)

    first, second, third = travel("400.00"), travel("500.00"), travel("200.00")
    await consume(uow, first, second, third)  # the 200 does not fit: held
    amendment = TravelClaimAmended(claim_id=first.claim_id, registration_id=first.registration_id, workshop_id=first.workshop_id,
                                   city_id=first.city_id, european=True, budget_line="delegate_travel", coe_funded="450.00",
                                   city_borne="0.00", previous_coe_funded="400.00", event_year=2026, amended_on=ON, amendment=1)
    await consume(uow, amendment)
    decisions = [(type(e).__name__, e.claim_id, e.amount) for e in uow.published_of(ReimbursementReopened, ReimbursementApproved,
                                                                                ReimbursementHeld)][3:]
    # as if it arrived now: the 200 waiting before it goes first, then the 450 no longer fits
    assert decisions == [("ReimbursementReopened", first.claim_id, D("400.00")), ("ReimbursementHeld", first.claim_id, D("450.00")),
                         ("ReimbursementApproved", third.claim_id, D("200.00"))]
    line = await uow.lines.get(2026, "delegate_travel")
    assert (line.committed, line.held) == (D("700.00"), 1)


async def test_a_manual_invoice_needs_a_known_member_and_one_contribution_per_year() -> None:
    uow = FakeFinance()
    with pytest.raises(NotYetKnown):
        await handlers.invoice_by_hand(uow, uuid4(), 2026, "x", ON)
    city = joined(date(2026, 10, 5))
    await consume(uow, city)
    invoice = await handlers.invoice_by_hand(uow, city.city_id, 2026, "joined in October, pays 2026 by agreement", ON)
    assert (invoice.year, invoice.manual) == (2026, True)
    with pytest.raises(Conflict, match="at most one per city and year"):
        await handlers.invoice_by_hand(uow, city.city_id, 2026, "again", ON)


async def test_a_reversed_spending_entry_gives_its_headroom_back_to_the_held_claims() -> None:
    uow = FakeFinance()
    line = await uow.lines.get(2026, "events")
    line.allocation, line.is_set = D("100.00"), True
    spending_id = await handlers.record_spending(uow, 2026, "events", "spent", D("100.00"), "venue", ON)
    waiting = Claim(uuid4(), kind="expert_visit", budget_line="events", year=2026, amount=D("60.00"), status="held",
                    held_since=datetime(2026, 5, 1))
    uow.claims.add(waiting)
    line.held = 1
    await handlers.reverse_spending(uow, spending_id, "booked twice", ON)
    assert (line.spent, line.committed, waiting.status) == (ZERO, D("60.00"), "approved")
    assert [row["amount"] for row in uow.ledger if row["account"] == "spent"] == [D("100.00"), D("-100.00")]


async def test_a_payment_on_a_cancelled_invoice_is_refused_before_anything_is_emitted() -> None:
    uow = FakeFinance()
    city = joined(date(2026, 3, 1))
    await consume(uow, city)
    [invoice] = uow.invoices.rows.values()
    await handlers.credit_invoice(uow, invoice.id, D("5000.00"), "withdrawn before the year began", ON)
    before = list(uow.published)
    with pytest.raises(Conflict, match="cancelled"):
        await handlers.pay_invoice(uow, invoice.id, D("10.00"), ON, "B-9")
    assert uow.published == before and not uow.published_of(PaymentReceived)
