"""Typed payloads of the integration events, one model per (type, schema version).

Evolution rule: add optional fields only; never rename or retype. A breaking change is a new
class with `version = 2`, published side by side. Unknown fields are ignored on read so that an
old consumer keeps working when a producer adds a field.
"""

from datetime import date
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict

from contracts.money import Money
from contracts.topics import Topic

WorkshopKind = Literal["thematic_workshop", "study_visit", "high_level_meeting"]
InvoiceKind = Literal["contribution", "expert_visit_recharge"]
BudgetLine = Literal["administration", "delegate_travel", "expert_visits", "index_analysis", "events"]


class Event(BaseModel):
    """Base of every payload. `type`, `version` and `topic` are class-level facts of the contract."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    type: ClassVar[str]
    version: ClassVar[int] = 1
    topic: ClassVar[Topic]
    key_field: ClassVar[str]

    registry: ClassVar[dict[tuple[str, int], type["Event"]]] = {}

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.type = cls.__name__
        Event.registry[(cls.type, cls.version)] = cls

    @property
    def key(self) -> str:
        """The aggregate id: the Kafka key, so one aggregate's facts stay in order."""
        return str(getattr(self, self.key_field))


# --- membership ---------------------------------------------------------------------------


class CityApplied(Event):
    topic = Topic.CITIES
    key_field = "city_id"
    city_id: UUID
    name: str
    country: str
    population: int
    european: bool
    small_city: bool
    applied_on: date
    contact: str | None = None  # who to write to at the city (the application's), if given


class CityJoined(Event):
    """A city became a member. `european` is decided once, here, so no consumer needs the CoE list."""

    topic = Topic.CITIES
    key_field = "city_id"
    city_id: UUID
    name: str
    country: str
    european: bool
    joined_on: date


class JoinDateCorrected(Event):
    """The secretariat corrected a mistyped signature date of a member city. Its join date (the
    later of the two signatures) is re-derived, and with it whether it is European on that day;
    consumers re-derive what follows (e.g. the contribution year). `previous_joined_on` is the join
    date consumers were told before."""

    topic = Topic.CITIES
    key_field = "city_id"
    city_id: UUID
    joined_on: date
    previous_joined_on: date
    european: bool
    reason: str


class CityLeft(Event):
    topic = Topic.CITIES
    key_field = "city_id"
    city_id: UUID
    effective_on: date


# --- events -------------------------------------------------------------------------------


class WorkshopScheduled(Event):
    topic = Topic.WORKSHOPS
    key_field = "workshop_id"
    workshop_id: UUID
    title: str
    kind: WorkshopKind
    host_city: str
    host_country: str
    starts_on: date
    ends_on: date
    capacity: int
    funded_quota_per_city: int


class WorkshopRescheduled(Event):
    topic = Topic.WORKSHOPS
    key_field = "workshop_id"
    workshop_id: UUID
    starts_on: date
    ends_on: date


class WorkshopCancelled(Event):
    topic = Topic.WORKSHOPS
    key_field = "workshop_id"
    workshop_id: UUID


class DelegateRegistered(Event):
    """A member city's delegate registered: seated ("registered") or on the waiting list."""

    topic = Topic.WORKSHOPS
    key_field = "workshop_id"
    registration_id: UUID
    workshop_id: UUID
    city_id: UUID
    delegate_name: str
    delegate_email: str
    status: Literal["registered", "waitlisted"]
    funded: bool  # within the city's funded quota for this event; otherwise self-funded


class RegistrationCancelled(Event):
    topic = Topic.WORKSHOPS
    key_field = "workshop_id"
    registration_id: UUID
    workshop_id: UUID
    city_id: UUID


class RegistrationPromoted(Event):
    """A waitlisted delegate got the seat someone freed (first come, first served)."""

    topic = Topic.WORKSHOPS
    key_field = "workshop_id"
    registration_id: UUID
    workshop_id: UUID
    city_id: UUID
    funded: bool


class RegistrationFundingChanged(Event):
    """A registration moved inside or outside its city's funded quota (a funded colleague cancelled)."""

    topic = Topic.WORKSHOPS
    key_field = "workshop_id"
    registration_id: UUID
    workshop_id: UUID
    city_id: UUID
    funded: bool


# --- travel -------------------------------------------------------------------------------


class TravelClaimed(Event):
    """A delegate's claim, decided by travel's rules. Finance commits `coe_funded` on `budget_line`.

    A rejected claim may be resubmitted: the new version is a new claim (its own `claim_id`, decided
    like any claim) that names the rejected one in `supersedes`; `claim_version` counts them (1, 2,
    ...). (Not `version`: that is the schema's version, `ce_schemaversion`.) Both fields are absent
    from events published before they existed: read them as None and 1."""

    topic = Topic.CLAIMS
    key_field = "claim_id"
    claim_id: UUID
    registration_id: UUID
    workshop_id: UUID
    city_id: UUID
    delegate_email: str
    european: bool
    budget_line: BudgetLine  # "delegate_travel"
    coe_funded: Money
    city_borne: Money
    submitted_on: date
    event_year: int  # the budget year: the year the event starts
    supersedes: UUID | None = None  # the rejected claim this version replaces
    claim_version: int = 1


class TravelClaimAmended(Event):
    """A delegate amended a claim that finance had not finally decided: its amounts replace those
    of the claim's `TravelClaimed` (or of its previous amendment). Same claim, same key, so it
    reaches finance after the claim it amends.

    Travel accepts an amendment while the claim is `submitted` or `held`, and keeps the claim's
    funding (European or not on the event's first day, within the city's funded quota or not);
    only the lines and their totals change. What finance does with it: re-decide the claim as if
    it arrived now with these amounts. Release what the claim holds on `budget_line` for
    `event_year` (its commitment, if finance approved it meanwhile, or its place among the held
    claims), then commit `coe_funded` if the line's headroom covers it in full, else hold it, and
    publish that decision as usual (`ReimbursementApproved` / `ReimbursementHeld`; an amount of
    0.00 is approved at once). A claim finance has already paid or rejected is not re-decided:
    the amendment crossed that decision, and travel follows finance's decision.

    `previous_coe_funded` is what finance was told before; `amendment` counts the claim's
    amendments (1, 2, ...)."""

    topic = Topic.CLAIMS
    key_field = "claim_id"
    claim_id: UUID
    registration_id: UUID
    workshop_id: UUID
    city_id: UUID
    european: bool
    budget_line: BudgetLine  # "delegate_travel"
    coe_funded: Money
    city_borne: Money
    previous_coe_funded: Money
    event_year: int
    amended_on: date
    amendment: int


class ExpertVisitClaimed(Event):
    """The costs of an expert visit (expert and CoE representative) to a city.

    For a European city they are CoE-funded on the `expert_visits` line (`coe_funded`); for a
    non-European city they are recharged to it (`recharged`): finance invoices them."""

    topic = Topic.CLAIMS
    key_field = "claim_id"
    claim_id: UUID  # the expert visit's id
    city_id: UUID
    european: bool
    visit_date: date
    coe_funded: Money
    recharged: Money


# --- finance ------------------------------------------------------------------------------


class InvoiceIssued(Event):
    """An invoice. `reason` is set on a manual invoice only: one finance issued by hand for a year
    the rules did not bill (the rules never cancel it by themselves). `replaces` names the
    contribution of the same city and year that credit notes cancelled before this one was
    issued (a year owed again after a corrected join date)."""

    topic = Topic.INVOICES
    key_field = "invoice_id"
    invoice_id: UUID
    city_id: UUID
    kind: InvoiceKind
    year: int
    amount: Money
    issued_on: date
    due_on: date
    reason: str | None = None
    replaces: UUID | None = None
    # The legal number, sequential and gap-free per year (ICC-2027-0001), assigned once by finance.
    # None on invoices issued before numbering.
    number: str | None = None


class ContributionRunCompleted(Event):
    """The annual run invoiced every member of `year` (the first run for that year). From then on
    a city whose joining reaches finance later is invoiced for `year` as well."""

    topic = Topic.INVOICES
    key_field = "year"
    year: int
    run_on: date


class PaymentReceived(Event):
    topic = Topic.INVOICES
    key_field = "invoice_id"
    invoice_id: UUID
    city_id: UUID
    amount: Money
    paid_on: date
    reference: str


class CreditNoteIssued(Event):
    """Cancels (part of) an invoice; invoices are never deleted."""

    topic = Topic.INVOICES
    key_field = "invoice_id"
    credit_note_id: UUID
    invoice_id: UUID
    city_id: UUID
    amount: Money
    reason: str
    issued_on: date
    number: str | None = None  # its own series (ICC-CN-2027-0001); None before numbering


class PaymentReversed(Event):
    """A payment recorded by mistake (wrong invoice, bounced transfer) is taken back, with a reason.
    `from_invoice` comes off what the invoice shows paid, `from_credit` off the city's credit (what
    the payment left as credit); they add up to `amount`. The payment itself stays on record."""

    topic = Topic.INVOICES
    key_field = "invoice_id"
    payment_id: UUID  # the id of the payment's PaymentReceived event
    invoice_id: UUID
    city_id: UUID
    amount: Money
    from_invoice: Money
    from_credit: Money
    reason: str
    reversed_on: date


class CreditApplied(Event):
    """Finance paid (part of) an invoice out of the city's credit."""

    topic = Topic.INVOICES
    key_field = "invoice_id"
    invoice_id: UUID
    city_id: UUID
    amount: Money
    applied_on: date


class CreditRefunded(Event):
    """Finance paid (part of) a city's credit back to it."""

    topic = Topic.INVOICES
    key_field = "city_id"
    refund_id: UUID
    city_id: UUID
    amount: Money
    reference: str
    refunded_on: date


class ReimbursementApproved(Event):
    """Finance committed the claim's CoE-funded amount on its budget line (amount 0: nothing to fund)."""

    topic = Topic.REIMBURSEMENTS
    key_field = "claim_id"
    claim_id: UUID
    amount: Money
    budget_line: BudgetLine
    year: int


class ReimbursementHeld(Event):
    """The line's headroom does not cover the claim in full: held, released first come first served."""

    topic = Topic.REIMBURSEMENTS
    key_field = "claim_id"
    claim_id: UUID
    amount: Money
    budget_line: BudgetLine
    year: int
    reason: str


class ReimbursementReopened(Event):
    """A claim finance had approved or held was amended (`TravelClaimAmended`): its commitment of
    `amount` on `budget_line` for `year` is released, or its place among the held claims given up.
    The claim now asks `coe_funded` (borne by the city: `city_borne`); the decision on it follows
    (`ReimbursementApproved` or `ReimbursementHeld`)."""

    topic = Topic.REIMBURSEMENTS
    key_field = "claim_id"
    claim_id: UUID
    amount: Money
    budget_line: BudgetLine
    year: int
    coe_funded: Money
    city_borne: Money
    reason: str


class ReimbursementPaid(Event):
    topic = Topic.REIMBURSEMENTS
    key_field = "claim_id"
    claim_id: UUID
    amount: Money
    paid_on: date


class ReimbursementRejected(Event):
    topic = Topic.REIMBURSEMENTS
    key_field = "claim_id"
    claim_id: UUID
    reason: str


class BudgetSet(Event):
    """Finance set a year's allocations per line (administration: the planned administrative cost)."""

    topic = Topic.BUDGETS
    key_field = "year"
    year: int
    administration: Money
    delegate_travel: Money
    expert_visits: Money
    index_analysis: Money
    events: Money


class SpendingRecorded(Event):
    """Finance recorded other spending against a budget line (with a reference).

    `committed` and `spent` are the changes to the line's figures: a new commitment (+committed),
    money spent directly (+spent), or a commitment settled (-committed, +spent for what was paid;
    the rest is released)."""

    topic = Topic.BUDGETS
    key_field = "year"
    spending_id: UUID
    year: int
    budget_line: BudgetLine
    kind: Literal["commitment", "spent", "settled"]
    committed: Money
    spent: Money
    reference: str
    recorded_on: date


class BudgetThresholdCrossed(Event):
    """A line's use (committed + spent) reached `threshold` percent of its allocation (80 or 90),
    the first time in the year; finance owns the rule, others (notifications) are told."""

    topic = Topic.BUDGETS
    key_field = "year"
    year: int
    budget_line: BudgetLine
    threshold: Literal[80, 90]
    allocation: Money
    used: Money
    crossed_on: date


class SpendingReversed(Event):
    """A spending entry recorded by mistake is reversed, with a reason: what it still held on its
    line (`committed`, `spent`) is given back to the line's headroom. The entry stays on record."""

    topic = Topic.BUDGETS
    key_field = "year"
    spending_id: UUID
    year: int
    budget_line: BudgetLine
    committed: Money
    spent: Money
    reason: str
    reversed_on: date
