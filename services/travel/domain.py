"""Travel rules: delegates' claims and expert visits under the funding rule. Pure: no I/O.

A claim is decided when it is submitted: every line is converted to EUR, checked (proof of
payment, allowance caps) and funded by the rule that applies, with one sentence saying why.
Finance then commits, holds, pays or rejects the CoE-funded amount; the claim's status follows.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal
from uuid import UUID, uuid4

from contracts.events import ExpertVisitClaimed, TravelClaimed
from contracts.money import EUR, to_cents
from services.common.refusals import Conflict

ZERO = Decimal("0.00")
CLAIM_WINDOW = timedelta(days=60)  # [rule] claims close 60 days after the event's last day
HALF_DAY_SHARE = Decimal("0.5")  # [rule] a travel day without a night earns 50% of the nightly rate
TRAVEL_DAYS_WITHOUT_NIGHT_MAX = 2  # [rule] a round trip has two travel days: going and coming back
RATE_MAX_AGE = timedelta(days=31)  # [rule] an exchange rate older than this on the expense date is missing, not used
EXPERT_VISIT_TEAM = 2  # [programme] at least one expert and one CoE representative

ExpenseKind = Literal["transport", "visa", "local_transport"]
KIND_NAMES = {"transport": "Transport", "visa": "Visa fees", "local_transport": "Local transport"}


class RateMissing(LookupError):
    """No stored rate applies: the claim cannot be priced, and we never guess one (422)."""


class ClaimStatus(StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    HELD = "held"
    PAID = "paid"
    REJECTED = "rejected"


# --- what travel knows of other services' facts -------------------------------------------


@dataclass(eq=False)
class KnownCity:
    """A member city as travel learnt it from CityJoined: `european` decides who funds its delegates."""

    city_id: UUID
    name: str
    european: bool
    joined_on: date
    left_on: date | None = None
    country: str | None = None


@dataclass(eq=False)
class KnownEvent:
    workshop_id: UUID
    title: str
    host_country: str
    starts_on: date
    ends_on: date
    funded_quota_per_city: int
    cancelled: bool = False

    @property
    def days(self) -> int:
        return (self.ends_on - self.starts_on).days + 1

    @property
    def claims_close_on(self) -> date:
        return self.ends_on + CLAIM_WINDOW


@dataclass(eq=False)
class Registration:
    """A delegate's registration as events published it; events alone decides `funded` (the quota)."""

    registration_id: UUID
    workshop_id: UUID
    city_id: UUID
    delegate_name: str
    delegate_email: str
    status: str  # "registered" | "waitlisted" | "cancelled"
    funded: bool


# --- dated rate tables --------------------------------------------------------------------


@dataclass(eq=False)
class AllowanceRate:
    """The daily subsistence allowance per night in a host country, in force from `valid_from`."""

    country: str
    valid_from: date
    eur_per_night: Decimal


@dataclass(eq=False)
class ExchangeRate:
    """As the ECB quotes it: `units_per_eur` units of `currency` buy one euro, on `quoted_on`."""

    currency: str
    quoted_on: date
    units_per_eur: Decimal


def plain(rate: Decimal) -> Decimal:
    """A rate in its shortest exact form, never an exponent: 11.4500 -> 11.45, 1.6E+3 -> 1600."""
    exact = rate.normalize()
    return exact.quantize(Decimal(1)) if exact.as_tuple().exponent > 0 else exact


def to_eur(amount: Decimal, rate: ExchangeRate) -> Decimal:
    """ECB quoting: units per euro, so euros = amount / units, half up to the cent."""
    return to_cents(amount / rate.units_per_eur)


def usable_rate(currency: str, spent_on: date, rate: ExchangeRate | None) -> ExchangeRate:
    if rate is None:
        raise RateMissing(
            f"no {currency} exchange rate on or before {spent_on}; finance staff add it with PUT /exchange-rates/{currency}"
        )
    if spent_on - rate.quoted_on > RATE_MAX_AGE:
        raise RateMissing(
            f"the latest {currency} exchange rate before {spent_on} is from {rate.quoted_on}, more than "
            f"{RATE_MAX_AGE.days} days earlier; finance staff add a current one with PUT /exchange-rates/{currency}"
        )
    return rate


# --- the funding rule ---------------------------------------------------------------------


class Funding(StrEnum):
    """Who bears a delegate's eligible costs: the rule's name as it appears on every line."""

    COE = "european_member_coe_funded"
    NON_EUROPEAN = "non_european_member_city_borne"
    SELF_FUNDED = "beyond_funded_quota_self_funded"


def funding_of(european: bool, within_quota: bool) -> Funding:
    # A non-European city bears its delegates' travel whatever the quota says.
    if not european:
        return Funding.NON_EUROPEAN
    return Funding.COE if within_quota else Funding.SELF_FUNDED


MISSING_PROOF = "missing_proof_of_payment"
EXPERT_VISIT_COE_FUNDED = "expert_visit_coe_funded"
EXPERT_VISIT_RECHARGED = "expert_visit_recharged_to_city"


def _funding_clause(funding: Funding, city: str) -> str:
    return {
        Funding.COE: f"CoE-funded because {city} is a European member city and the delegate is within its funded quota",
        Funding.NON_EUROPEAN: f"city-borne because {city} is not a European member city: it bears its own delegates' travel",
        Funding.SELF_FUNDED: f"self-funded (city-borne) because the delegate is beyond {city}'s funded quota for this event",
    }[funding]


# --- lines --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expense:
    """One cost as the delegate (or the secretariat, for an expert visit) declares it."""

    kind: ExpenseKind
    amount: Decimal
    currency: str
    spent_on: date
    receipt: str | None = None
    traveller: str | None = None

    @property
    def proven(self) -> bool:
        return bool(self.receipt and self.receipt.strip())


@dataclass(eq=False)
class ClaimLine:
    """A priced line: what was spent, its EUR value, how much of it is eligible and who bears it.

    eur_amount = eligible + blocked; eligible = coe_funded + city_borne (for an expert visit,
    city_borne is what is recharged to the city)."""

    position: int
    kind: str
    amount: Decimal
    currency: str
    eur_amount: Decimal
    eligible: Decimal
    coe_funded: Decimal
    city_borne: Decimal
    rule: str
    explanation: str
    spent_on: date | None = None
    receipt: str | None = None
    units_per_eur: Decimal | None = None  # None: the amount was in EUR, or is the allowance
    rate_on: date | None = None  # the exchange rate's date, or the allowance rate's valid_from
    traveller: str | None = None

    @property
    def blocked(self) -> Decimal:
        return self.eur_amount - self.eligible


def _priced(expense: Expense, rate: ExchangeRate | None) -> tuple[Decimal, str]:
    """The expense in EUR and the words saying how it got there."""
    spent = f"{KIND_NAMES[expense.kind]}: {expense.amount:.2f} {expense.currency} spent on {expense.spent_on}"
    if expense.currency == EUR:
        return expense.amount, spent
    assert rate is not None
    eur = to_eur(expense.amount, rate)
    return eur, f"{spent}, converted at {plain(rate.units_per_eur)} {rate.currency} per EUR (rate of {rate.quoted_on}), is {eur:.2f} EUR"


def _split(eligible: Decimal, coe: bool) -> tuple[Decimal, Decimal]:
    return (eligible, ZERO) if coe else (ZERO, eligible)


def expense_line(
    position: int, expense: Expense, rate: ExchangeRate | None, *, rule: str, coe: bool, clause: str
) -> ClaimLine:
    """Price one declared expense; transport without proof of payment is kept on the claim but blocked."""
    if expense.currency != EUR:
        rate = usable_rate(expense.currency, expense.spent_on, rate)
    eur, priced = _priced(expense, rate)
    if expense.kind == "transport" and not expense.proven:
        eligible, rule = ZERO, MISSING_PROOF
        explanation = f"{priced}, not reimbursed: transport needs proof of payment and no receipt was given."
    else:
        eligible, explanation = eur, f"{priced}, {clause}."
    coe_funded, city_borne = _split(eligible, coe)
    return ClaimLine(
        position=position,
        kind=expense.kind,
        amount=expense.amount,
        currency=expense.currency,
        eur_amount=eur,
        eligible=eligible,
        coe_funded=coe_funded,
        city_borne=city_borne,
        rule=rule,
        explanation=explanation,
        spent_on=expense.spent_on,
        receipt=expense.receipt,
        units_per_eur=rate.units_per_eur if rate is not None and expense.currency != EUR else None,
        rate_on=rate.quoted_on if rate is not None and expense.currency != EUR else None,
        traveller=expense.traveller,
    )


@dataclass(frozen=True)
class Allowance:
    """The daily subsistence allowance a stay earns: nights capped, half rate per travel day without a night."""

    nights: int
    travel_days: int
    amount: Decimal
    caps: tuple[str, ...]

    def described(self, rate: AllowanceRate) -> str:
        words = f"{_count(self.nights, 'night')} at {rate.eur_per_night:.2f} EUR ({rate.country} rate from {rate.valid_from})"
        if self.travel_days:
            words += (
                f" plus {_count(self.travel_days, 'travel day')} without a night at half rate"
                f" ({half_rate(rate.eur_per_night):.2f} EUR each)"
            )
        words += f" make {self.amount:.2f} EUR"
        return words + (f" ({'; '.join(self.caps)})" if self.caps else "")


def daily_allowance(nights: int, travel_days_without_night: int, event_days: int, rate: Decimal) -> Allowance:
    """At most event days + 1 nights and two travel days without a night; more is capped, never refused."""
    caps = []
    allowed_nights = min(nights, event_days + 1)
    if allowed_nights < nights:
        caps.append(f"{nights} nights claimed, capped at {allowed_nights}: the event's {_count(event_days, 'day')} + 1")
    allowed_days = min(travel_days_without_night, TRAVEL_DAYS_WITHOUT_NIGHT_MAX)
    if allowed_days < travel_days_without_night:
        caps.append(
            f"{travel_days_without_night} travel days without a night claimed, capped at {allowed_days}: going and coming back"
        )
    amount = rate * allowed_nights + half_rate(rate) * allowed_days
    return Allowance(allowed_nights, allowed_days, amount, tuple(caps))


def half_rate(eur_per_night: Decimal) -> Decimal:
    """What a travel day without a night earns, half up to the cent (145.55 -> 72.78)."""
    return to_cents(eur_per_night * HALF_DAY_SHARE)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def allowance_line(position: int, allowance: Allowance, rate: AllowanceRate, *, rule: str, coe: bool, clause: str) -> ClaimLine:
    coe_funded, city_borne = _split(allowance.amount, coe)
    return ClaimLine(
        position=position,
        kind="daily_allowance",
        amount=allowance.amount,
        currency=EUR,
        eur_amount=allowance.amount,
        eligible=allowance.amount,
        coe_funded=coe_funded,
        city_borne=city_borne,
        rule=rule,
        explanation=f"Daily subsistence allowance: {allowance.described(rate)}, {clause}.",
        rate_on=rate.valid_from,
    )


# --- decisions, followed from finance -------------------------------------------------------


@dataclass(eq=False)
class Decision:
    """One of finance's decisions on a claim, as travel learnt it."""

    status: str
    recorded_at: datetime
    amount: Decimal | None = None
    reason: str | None = None
    paid_on: date | None = None


class FollowsFinance:
    """A claim (or expert visit): its lines' totals, and a status that follows finance's decisions
    in the order finance made them."""

    status: str
    lines: list[ClaimLine]
    decisions: list[Decision]

    @property
    def claimed(self) -> Decimal:
        return sum((line.eur_amount for line in self.lines), ZERO)

    @property
    def blocked(self) -> Decimal:
        return sum((line.blocked for line in self.lines), ZERO)

    def record(self, decision: Decision) -> bool:
        # Paid is final: the money has left; a later decision cannot take it back.
        if self.status == ClaimStatus.PAID:
            return False
        self.decisions.append(decision)
        self.status = decision.status
        return True


def _totals(lines: list[ClaimLine]) -> tuple[Decimal, Decimal]:
    return sum((line.coe_funded for line in lines), ZERO), sum((line.city_borne for line in lines), ZERO)


# --- a delegate's claim -------------------------------------------------------------------


@dataclass(eq=False)
class TravelClaim(FollowsFinance):
    id: UUID
    registration_id: UUID
    workshop_id: UUID
    city_id: UUID
    delegate_name: str
    delegate_email: str
    european: bool
    funded: bool
    submitted_on: date
    event_year: int
    nights: int
    travel_days_without_night: int
    coe_funded: Decimal
    city_borne: Decimal
    status: str = ClaimStatus.SUBMITTED
    lines: list[ClaimLine] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def claimed_event(self) -> TravelClaimed:
        return TravelClaimed(
            claim_id=self.id,
            registration_id=self.registration_id,
            workshop_id=self.workshop_id,
            city_id=self.city_id,
            delegate_email=self.delegate_email,
            european=self.european,
            budget_line="delegate_travel",
            coe_funded=self.coe_funded,
            city_borne=self.city_borne,
            submitted_on=self.submitted_on,
            event_year=self.event_year,
        )


def check_claimable(registration: Registration, event: KnownEvent, today: date) -> None:
    """Who may claim, and when: a seated delegate of an event that took place, within the window."""
    if registration.status == "cancelled":
        raise Conflict(f"registration {registration.registration_id} was cancelled: a cancelled registration cannot claim")
    if registration.status == "waitlisted":
        raise Conflict(
            f"registration {registration.registration_id} is on the waiting list: only a delegate who got a seat can claim"
        )
    if event.cancelled:
        raise Conflict(f"'{event.title}' was cancelled: there is nothing to claim for")
    if today < event.starts_on:
        raise Conflict(f"claims for '{event.title}' open on its first day, {event.starts_on}")
    if today > event.claims_close_on:
        raise Conflict(
            f"claims for '{event.title}' closed on {event.claims_close_on}, {CLAIM_WINDOW.days} days after it ended on {event.ends_on}"
        )


def submit_claim(
    registration: Registration,
    city: KnownCity,
    event: KnownEvent,
    *,
    nights: int,
    travel_days_without_night: int,
    expenses: list[Expense],
    allowance_rate: AllowanceRate | None,
    exchange_rates: dict[tuple[str, date], ExchangeRate | None],
    today: date,
) -> TravelClaim:
    """Decide a delegate's claim line by line under the funding rule."""
    check_claimable(registration, event, today)
    if allowance_rate is None:
        raise RateMissing(
            f"no daily allowance rate for {event.host_country} in force on {event.starts_on}; "
            f"finance staff set it with PUT /allowance-rates/{event.host_country}"
        )
    funding = funding_of(city.european, registration.funded)
    coe, clause = funding is Funding.COE, _funding_clause(funding, city.name)
    lines = [
        expense_line(position, expense, exchange_rates.get((expense.currency, expense.spent_on)), rule=funding, coe=coe, clause=clause)
        for position, expense in enumerate(expenses, start=1)
    ]
    allowance = daily_allowance(nights, travel_days_without_night, event.days, allowance_rate.eur_per_night)
    lines.append(allowance_line(len(lines) + 1, allowance, allowance_rate, rule=funding, coe=coe, clause=clause))
    coe_funded, city_borne = _totals(lines)
    return TravelClaim(
        id=uuid4(),
        registration_id=registration.registration_id,
        workshop_id=event.workshop_id,
        city_id=city.city_id,
        delegate_name=registration.delegate_name,
        delegate_email=registration.delegate_email,
        european=city.european,
        funded=registration.funded,
        submitted_on=today,
        event_year=event.starts_on.year,
        nights=nights,
        travel_days_without_night=travel_days_without_night,
        coe_funded=coe_funded,
        city_borne=city_borne,
        lines=lines,
    )


# --- expert visits ------------------------------------------------------------------------


@dataclass(eq=False)
class ExpertVisit(FollowsFinance):
    """The travel and subsistence of the expert(s) and the CoE representative visiting a city."""

    id: UUID
    city_id: UUID
    city_name: str
    european: bool
    visit_date: date
    submitted_on: date
    nights: int
    travellers: int
    coe_funded: Decimal
    recharged: Decimal
    status: str = ClaimStatus.SUBMITTED
    lines: list[ClaimLine] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def claimed_event(self) -> ExpertVisitClaimed:
        return ExpertVisitClaimed(
            claim_id=self.id,
            city_id=self.city_id,
            european=self.european,
            visit_date=self.visit_date,
            coe_funded=self.coe_funded,
            recharged=self.recharged,
        )


def claim_expert_visit(
    city: KnownCity,
    *,
    visit_date: date,
    nights: int,
    travellers: int,
    expenses: list[Expense],
    allowance_rate: AllowanceRate | None,
    exchange_rates: dict[tuple[str, date], ExchangeRate | None],
    today: date,
) -> ExpertVisit:
    """Price an expert visit: CoE-funded for a European city, recharged to a non-European one."""
    if city.european:
        rule, clause = EXPERT_VISIT_COE_FUNDED, f"CoE-funded on the expert visits budget because {city.name} is a European city"
    else:
        rule, clause = EXPERT_VISIT_RECHARGED, (
            f"recharged to {city.name} because a non-European city bears the costs of expert visits to it"
        )
    lines = [
        expense_line(position, expense, exchange_rates.get((expense.currency, expense.spent_on)), rule=rule, coe=city.european, clause=clause)
        for position, expense in enumerate(expenses, start=1)
    ]
    if nights:
        if allowance_rate is None:
            raise RateMissing(
                f"no daily allowance rate for {city.country} in force on {visit_date}; "
                f"finance staff set it with PUT /allowance-rates/{city.country}"
            )
        # The team's allowance: every traveller's nights at the host country's rate, no cap (no event dates to cap by).
        amount = to_cents(allowance_rate.eur_per_night * nights * travellers)
        coe_funded, city_borne = _split(amount, city.european)
        lines.append(
            ClaimLine(
                position=len(lines) + 1,
                kind="daily_allowance",
                amount=amount,
                currency=EUR,
                eur_amount=amount,
                eligible=amount,
                coe_funded=coe_funded,
                city_borne=city_borne,
                rule=rule,
                explanation=(
                    f"Daily subsistence allowance: {_count(travellers, 'traveller')} x {_count(nights, 'night')} at "
                    f"{allowance_rate.eur_per_night:.2f} EUR ({allowance_rate.country} rate from {allowance_rate.valid_from}) "
                    f"make {amount:.2f} EUR, {clause}."
                ),
                rate_on=allowance_rate.valid_from,
            )
        )
    coe_funded, recharged = _totals(lines)
    return ExpertVisit(
        id=uuid4(),
        city_id=city.city_id,
        city_name=city.name,
        european=city.european,
        visit_date=visit_date,
        submitted_on=today,
        nights=nights,
        travellers=travellers,
        coe_funded=coe_funded,
        recharged=recharged,
        lines=lines,
    )
