"""Travel rules: delegates' claims and expert visits under the funding rule. Pure: no I/O.

A claim is decided when it is submitted: every line is converted to EUR, checked (proof of
payment, allowance caps) and funded by the rule that applies, with one sentence saying why.
Finance then commits, holds, pays or rejects the CoE-funded amount; the claim's status follows.
Until finance has decided, the delegate may amend the claim; once rejected, resubmit it as a new
version.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Literal
from uuid import UUID, uuid4

from contracts.events import ExpertVisitClaimed, TravelClaimAmended, TravelClaimed
from contracts.members import CityFacts
from contracts.money import EUR, to_cents
from services.common.refusals import Conflict, Invalid
from services.travel.receipts import Receipt

ZERO = Decimal("0.00")
CLAIM_WINDOW = timedelta(days=60)  # [rule] claims close 60 days after the event's last day
HALF_DAY_SHARE = Decimal("0.5")  # [rule] a travel day without a night earns 50% of the nightly rate
NIGHTS_BEYOND_EVENT = 1  # [rule] at most event days + 1 nights
DAYS_BEYOND_EVENT = 2  # [rule] nights + travel days without a night: at most event days + 2
TRAVEL_DAYS_WITHOUT_NIGHT_MAX = 2  # [rule] a round trip has two travel days: going and coming back
RATE_MAX_AGE = timedelta(days=31)  # [rule] an exchange rate older than this on the expense date is missing, not used
EXPERT_VISIT_TEAM = 2  # [programme] at least one expert and one CoE representative

ExpenseKind = Literal["transport", "visa", "local_transport"]
KIND_NAMES = {"transport": "Transport", "visa": "Visa fees", "local_transport": "Local transport"}


class ClaimStatus(StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    HELD = "held"
    PAID = "paid"
    REJECTED = "rejected"


# --- what travel knows of other services' facts -------------------------------------------


class KnownCity(CityFacts):
    """A city as travel learnt it from membership's facts: whether it is a member, and European,
    on the date that matters (the event's first day for a claim, the visit date for a visit)."""


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
    """A delegate's registration as events published it. `funded`: within the city's funded quota
    as events counts seats; travel also counts the claims already funded (see `funding_of`)."""

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


def refuse_rate_for_eur(currency: str) -> None:
    if currency == EUR:
        raise Invalid("EUR is the claims' currency: it has no rate to itself", code="eur_has_no_rate", field="currency")


def plain(rate: Decimal) -> Decimal:
    """A rate in its shortest exact form, never an exponent: 11.4500 -> 11.45, 1.6E+3 -> 1600."""
    exact = rate.normalize()
    return exact.quantize(Decimal(1)) if exact.as_tuple().exponent > 0 else exact


def to_eur(amount: Decimal, rate: ExchangeRate) -> Decimal:
    """ECB quoting: units per euro, so euros = amount / units, half up to the cent."""
    return to_cents(amount / rate.units_per_eur)


def _line_words(expense: "Expense", position: int) -> str:
    return f"line {position} ({KIND_NAMES[expense.kind].lower()}, {expense.amount:.2f} {expense.currency} spent on {expense.spent_on})"


def usable_rate(expense: "Expense", position: int, rate: ExchangeRate | None) -> ExchangeRate:
    """[rule] The latest stored rate on or before the expense date, at most 31 days older; else
    the line cannot be priced and the claim is refused, naming the line (never a guessed rate)."""
    line = _line_words(expense, position)
    missing = {"code": "rate_missing", "field": f"lines[{position - 1}].currency"}
    if rate is None:
        raise Invalid(
            f"{line}: no {expense.currency} exchange rate on or before {expense.spent_on}; finance staff add it with "
            f"PUT /exchange-rates/{expense.currency}",
            **missing,
        )
    if expense.spent_on - rate.quoted_on > RATE_MAX_AGE:
        raise Invalid(
            f"{line}: the latest {expense.currency} exchange rate before {expense.spent_on} is from {rate.quoted_on}, more "
            f"than {RATE_MAX_AGE.days} days earlier; finance staff add a current one with PUT /exchange-rates/{expense.currency}",
            **missing,
        )
    return rate


def allowance_rate_missing(country: str | None, on: date) -> Invalid:
    return Invalid(
        f"no daily allowance rate for {country} in force on {on}; finance staff set it with PUT /allowance-rates/{country}",
        code="allowance_rate_missing",
    )


# --- the funding rule ---------------------------------------------------------------------


class Funding(StrEnum):
    """Who bears a delegate's eligible costs: the rule's name as it appears on every line."""

    COE = "european_member_coe_funded"
    NON_EUROPEAN = "non_european_member_city_borne"
    SELF_FUNDED = "beyond_funded_quota_self_funded"
    QUOTA_USED = "funded_quota_used_self_funded"


def funding_of(european: bool, registration_funded: bool, coe_funded_claims: int, quota: int) -> Funding:
    """[rule] The CoE funds a European member city's delegate within the city's funded quota; the
    quota is counted twice: events' seats (`registration_funded`), and the city's claims for the
    event that are already CoE-funded and not rejected, so that funding passed on after a
    cancellation never funds more claims than the quota."""
    if not european:
        return Funding.NON_EUROPEAN  # a non-European city bears its delegates' travel whatever the quota says
    if not registration_funded:
        return Funding.SELF_FUNDED
    return Funding.COE if coe_funded_claims < quota else Funding.QUOTA_USED


MISSING_PROOF = "missing_proof_of_payment"
EXPERT_VISIT_COE_FUNDED = "expert_visit_coe_funded"
EXPERT_VISIT_RECHARGED = "expert_visit_recharged_to_city"


def _funding_clause(funding: Funding, city: str, event: "KnownEvent") -> str:
    return {
        Funding.COE: f"CoE-funded because {city} is a European member city and the delegate is within its funded quota",
        Funding.NON_EUROPEAN: f"city-borne because {city} is not a European member city: it bears its own delegates' travel",
        Funding.SELF_FUNDED: f"self-funded (city-borne) because the delegate is beyond {city}'s funded quota for this event",
        Funding.QUOTA_USED: (
            f"self-funded (city-borne) because {city}'s funded quota for this event "
            f"({_count(event.funded_quota_per_city, 'delegate')}) is already used by its other delegates' CoE-funded claims"
        ),
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
    receipt_id: UUID | None = None  # an uploaded receipt (POST /receipts): the delegate's own

    @property
    def proven(self) -> bool:
        return bool(self.receipt and self.receipt.strip()) or self.receipt_id is not None


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
    receipt_id: UUID | None = None

    @property
    def blocked(self) -> Decimal:
        return self.eur_amount - self.eligible


def _priced(expense: Expense, rate: ExchangeRate | None) -> tuple[Decimal, str]:
    """The expense in EUR and the words saying how it got there."""
    spent = f"{KIND_NAMES[expense.kind]}: {expense.amount:.2f} {expense.currency} spent on {expense.spent_on}"
    if rate is None:
        return expense.amount, spent
    eur = to_eur(expense.amount, rate)
    return eur, f"{spent}, converted at {plain(rate.units_per_eur)} {rate.currency} per EUR (rate of {rate.quoted_on}), is {eur:.2f} EUR"


def _split(eligible: Decimal, coe: bool) -> tuple[Decimal, Decimal]:
    return (eligible, ZERO) if coe else (ZERO, eligible)


def expense_line(
    position: int, expense: Expense, rate: ExchangeRate | None, *, rule: str, coe: bool, clause: str
) -> ClaimLine:
    """Price one declared expense; transport without proof of payment is kept on the claim but blocked."""
    rate = usable_rate(expense, position, rate) if expense.currency != EUR else None
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
        units_per_eur=rate.units_per_eur if rate else None,
        rate_on=rate.quoted_on if rate else None,
        traveller=expense.traveller,
        receipt_id=expense.receipt_id,
    )


def expense_lines(
    expenses: list[Expense], exchange_rates: dict[tuple[str, date], ExchangeRate | None], *, rule: str, coe: bool, clause: str
) -> list[ClaimLine]:
    return [
        expense_line(position, expense, exchange_rates.get((expense.currency, expense.spent_on)), rule=rule, coe=coe, clause=clause)
        for position, expense in enumerate(expenses, start=1)
    ]


@dataclass(frozen=True)
class Allowance:
    """The daily subsistence allowance a stay earns: nights and travel days without a night, capped."""

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
    """[rule] Each calendar day of the trip earns one allowance at most: at most event days + 1
    nights; nights + travel days without a night at most event days + 2; a trip with no night is
    a single day (one travel day without a night); and at most two travel days without a night
    (going and coming back). More is capped, never refused, and the caps are said."""
    caps = []
    allowed_nights = min(nights, event_days + NIGHTS_BEYOND_EVENT)
    if allowed_nights < nights:
        caps.append(f"{nights} nights claimed, capped at {allowed_nights}: the event's {_count(event_days, 'day')} + 1")
    days_left = event_days + DAYS_BEYOND_EVENT - allowed_nights
    if allowed_nights == 0:
        limit, why = 1, "a trip with no night is a single day"
    elif days_left < TRAVEL_DAYS_WITHOUT_NIGHT_MAX:
        limit, why = days_left, (
            f"each calendar day earns one allowance at most, and {_count(allowed_nights, 'night')} + "
            f"{_count(days_left, 'travel day')} make the event's {_count(event_days, 'day')} + 2"
        )
    else:
        limit, why = TRAVEL_DAYS_WITHOUT_NIGHT_MAX, "going and coming back"
    allowed_days = min(travel_days_without_night, limit)
    if allowed_days < travel_days_without_night:
        caps.append(f"{travel_days_without_night} travel days without a night claimed, capped at {allowed_days}: {why}")
    amount = rate * allowed_nights + half_rate(rate) * allowed_days
    return Allowance(allowed_nights, allowed_days, amount, tuple(caps))


def half_rate(eur_per_night: Decimal) -> Decimal:
    """What a travel day without a night earns, half up to the cent (145.55 -> 72.78)."""
    return to_cents(eur_per_night * HALF_DAY_SHARE)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def allowance_line(position: int, amount: Decimal, rate: AllowanceRate, *, earned: str, rule: str, coe: bool, clause: str) -> ClaimLine:
    coe_funded, city_borne = _split(amount, coe)
    return ClaimLine(
        position=position,
        kind="daily_allowance",
        amount=amount,
        currency=EUR,
        eur_amount=amount,
        eligible=amount,
        coe_funded=coe_funded,
        city_borne=city_borne,
        rule=rule,
        explanation=f"Daily subsistence allowance: {earned}, {clause}.",
        rate_on=rate.valid_from,
    )


def _totals(lines: list[ClaimLine]) -> tuple[Decimal, Decimal]:
    return sum((line.coe_funded for line in lines), ZERO), sum((line.city_borne for line in lines), ZERO)


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
        if not takes_decisions(self.status):
            return False
        self.decisions.append(decision)
        self.status = decision.status
        return True


def takes_decisions(status: str) -> bool:
    """Whether a claim (or expert visit) in `status` follows finance's next decision. Paid is final:
    the money has left; a later decision cannot take it back."""
    return status != ClaimStatus.PAID


# --- a delegate's claim -------------------------------------------------------------------


@dataclass(frozen=True)
class Stay:
    """What a delegate declares: nights away, travel days without a night, and the expenses."""

    nights: int
    travel_days_without_night: int
    expenses: list[Expense]


@dataclass(frozen=True)
class Rates:
    """The stored rates a claim needs: the host country's allowance rate in force on the event's
    first day, and the exchange rate in force on each expense's date (None where none is)."""

    allowance: AllowanceRate | None
    exchange: dict[tuple[str, date], ExchangeRate | None]


@dataclass(eq=False)
class TravelClaim(FollowsFinance):
    id: UUID
    registration_id: UUID
    workshop_id: UUID
    city_id: UUID
    delegate_name: str
    delegate_email: str
    european: bool  # on the event's first day
    funded: bool  # within the city's funded quota when decided (events' seats and the claims already funded)
    funding: str  # the funding rule of its lines (a Funding)
    submitted_on: date
    event_year: int
    nights: int
    travel_days_without_night: int
    coe_funded: Decimal
    city_borne: Decimal
    status: str = ClaimStatus.SUBMITTED
    claim_version: int = 1
    supersedes: UUID | None = None
    amended_on: date | None = None
    amendments: int = 0
    lines: list[ClaimLine] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    @property
    def uses_funded_quota(self) -> bool:
        """A live CoE-funded claim: it takes one of the city's funded places for the event."""
        return self.funding == Funding.COE and self.status != ClaimStatus.REJECTED

    def _for_finance(self) -> dict:
        """What finance decides by, in `TravelClaimed` and `TravelClaimAmended` alike."""
        return {
            "claim_id": self.id, "registration_id": self.registration_id, "workshop_id": self.workshop_id,
            "city_id": self.city_id, "european": self.european, "budget_line": "delegate_travel",
            "coe_funded": self.coe_funded, "city_borne": self.city_borne, "event_year": self.event_year,
        }

    def claimed_event(self) -> TravelClaimed:
        return TravelClaimed(
            **self._for_finance(), delegate_email=self.delegate_email, submitted_on=self.submitted_on,
            supersedes=self.supersedes, claim_version=self.claim_version,
        )

    def amend(self, city: KnownCity, event: KnownEvent, stay: Stay, rates: Rates, today: date) -> TravelClaimAmended:
        """[rule] Until finance decides (submitted, or held for headroom) the delegate may amend
        the claim: its lines are priced again, under the funding it was decided with, and finance
        decides again. Approved, paid or rejected: refused, saying what to do instead."""
        if self.status == ClaimStatus.APPROVED:
            raise Conflict(
                f"claim {self.id} was approved by finance: it can no longer be amended; if it is wrong, ask the finance "
                "unit to reject it, then resubmit it as a new version",
                code="claim_decided",
            )
        if self.status == ClaimStatus.PAID:
            raise Conflict(f"claim {self.id} was paid: nothing about it can change any more", code="claim_decided")
        if self.status == ClaimStatus.REJECTED:
            raise Conflict(
                f"claim {self.id} was rejected: resubmit it as a new version (POST /claims/{self.id}/resubmission)",
                code="claim_decided",
            )
        previous = self.coe_funded
        self._price(city, event, Funding(self.funding), stay, rates)
        self.status, self.amended_on, self.amendments = ClaimStatus.SUBMITTED, today, self.amendments + 1
        return TravelClaimAmended(**self._for_finance(), previous_coe_funded=previous, amended_on=today, amendment=self.amendments)

    def _price(self, city: KnownCity, event: KnownEvent, funding: Funding, stay: Stay, rates: Rates) -> None:
        if rates.allowance is None:
            raise allowance_rate_missing(event.host_country, event.starts_on)
        coe, clause = funding is Funding.COE, _funding_clause(funding, city.name or "the city", event)
        lines = expense_lines(stay.expenses, rates.exchange, rule=funding, coe=coe, clause=clause)
        allowance = daily_allowance(stay.nights, stay.travel_days_without_night, event.days, rates.allowance.eur_per_night)
        lines.append(allowance_line(len(lines) + 1, allowance.amount, rates.allowance, earned=allowance.described(rates.allowance),
                                    rule=funding, coe=coe, clause=clause))
        self.lines, self.nights, self.travel_days_without_night = lines, stay.nights, stay.travel_days_without_night
        self.coe_funded, self.city_borne = _totals(lines)


def check_claimable(registration: Registration, city: KnownCity, event: KnownEvent, today: date) -> None:
    """Who may claim, and when: a seated delegate of a city that was a member on the event's first
    day, for an event that took place, within the window."""
    if registration.status == "cancelled":
        raise Conflict(f"registration {registration.registration_id} was cancelled: a cancelled registration cannot claim",
                       code="registration_cancelled")
    if registration.status == "waitlisted":
        raise Conflict(
            f"registration {registration.registration_id} is on the waiting list: only a delegate who got a seat can claim",
            code="waitlisted",
        )
    if event.cancelled:
        raise Conflict(f"'{event.title}' was cancelled: there is nothing to claim for", code="event_cancelled")
    if why := city.not_a_member_on(event.starts_on, f"the event's first day, {event.starts_on}"):
        raise Conflict(f"{why}; only member cities' delegates are reimbursed", code="not_a_member")
    if today < event.starts_on:
        raise Conflict(f"claims for '{event.title}' open on its first day, {event.starts_on}", code="claims_not_open")
    if today > event.claims_close_on:
        raise Conflict(
            f"claims for '{event.title}' closed on {event.claims_close_on}, {CLAIM_WINDOW.days} days after it ended on {event.ends_on}",
            code="claim_window_closed",
        )


def check_receipts(expenses: list[Expense], receipts: dict[UUID, Receipt], city_id: UUID, delegate_email: str) -> None:
    """[rule] A line's uploaded receipt must be the claimant's own: uploaded by or for the delegate
    (their address, in their city). Another's, or none at all, is refused alike, naming the line."""
    for position, expense in enumerate(expenses, start=1):
        receipt = receipts.get(expense.receipt_id) if expense.receipt_id else None
        if expense.receipt_id and (receipt is None or not receipt.belongs_to(city_id, delegate_email)):
            raise Invalid(
                f"{_line_words(expense, position)}: receipt {expense.receipt_id} is not one of {delegate_email}'s "
                "uploaded receipts; upload the file with POST /receipts (as the delegate, or their city's coordinator "
                "for them) and give the id it answers",
                code="receipt_unknown", field=f"lines[{position - 1}].receipt_id",
            )


def check_no_claim_yet(latest: TravelClaim | None) -> None:
    """[rule] One claim per delegate and event; a rejected one is resubmitted, a live one amended."""
    if latest is None:
        return
    if latest.status == ClaimStatus.REJECTED:
        raise Conflict(
            f"registration {latest.registration_id} already has claim {latest.id}, which was rejected: resubmit it as a "
            f"new version (POST /claims/{latest.id}/resubmission)",
            code="claim_rejected",
        )
    raise Conflict(
        f"registration {latest.registration_id} already has claim {latest.id}: one claim per delegate and event"
        + (f"; until finance decides it, amend it (POST /claims/{latest.id}/amendment)"
           if latest.status in (ClaimStatus.SUBMITTED, ClaimStatus.HELD) else ""),
        code="already_claimed",
    )


def submit_claim(
    registration: Registration,
    city: KnownCity,
    event: KnownEvent,
    stay: Stay,
    rates: Rates,
    *,
    coe_funded_claims: int,
    today: date,
    rejected: TravelClaim | None = None,
) -> TravelClaim:
    """Decide a delegate's claim line by line under the funding rule; `coe_funded_claims` counts
    the city's live CoE-funded claims for the event (see `funding_of`). `rejected`: the claim
    this one is a new version of (see `check_resubmittable`)."""
    check_claimable(registration, city, event, today)
    european = city.european_on(event.starts_on)
    funding = funding_of(european, registration.funded, coe_funded_claims, event.funded_quota_per_city)
    claim = TravelClaim(
        id=uuid4(),
        registration_id=registration.registration_id,
        workshop_id=event.workshop_id,
        city_id=city.city_id,
        delegate_name=registration.delegate_name,
        delegate_email=registration.delegate_email,
        european=european,
        funded=registration.funded and funding is not Funding.QUOTA_USED,
        funding=funding,
        submitted_on=today,
        event_year=event.starts_on.year,
        nights=stay.nights,
        travel_days_without_night=stay.travel_days_without_night,
        coe_funded=ZERO,
        city_borne=ZERO,
        claim_version=rejected.claim_version + 1 if rejected else 1,
        supersedes=rejected.id if rejected else None,
    )
    claim._price(city, event, funding, stay, rates)
    return claim


def check_resubmittable(rejected: TravelClaim, newer: TravelClaim | None) -> None:
    """[rule] A rejected claim is resubmitted as a new version, once: a new claim, decided like any
    claim (window, quota, rates as they are today), that names the rejected one, which is kept."""
    if rejected.status != ClaimStatus.REJECTED:
        raise Conflict(
            f"claim {rejected.id} is {rejected.status}, not rejected: only a rejected claim is resubmitted"
            + (f"; until finance decides it, amend it (POST /claims/{rejected.id}/amendment)"
               if rejected.status in (ClaimStatus.SUBMITTED, ClaimStatus.HELD) else ""),
            code="not_rejected",
        )
    if newer is not None:
        raise Conflict(f"claim {rejected.id} was already resubmitted as claim {newer.id}", code="already_resubmitted")


# --- expert visits ------------------------------------------------------------------------


@dataclass(eq=False)
class ExpertVisit(FollowsFinance):
    """The travel and subsistence of the expert(s) and the CoE representative visiting a city."""

    id: UUID
    city_id: UUID
    city_name: str
    european: bool  # on the visit date
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
    """Price an expert visit to a member city: CoE-funded if the city is European on the visit
    date, recharged to it otherwise."""
    if travellers < EXPERT_VISIT_TEAM:
        raise Invalid(
            f"an expert visit has at least {EXPERT_VISIT_TEAM} travellers: one expert and one CoE representative",
            code="team_too_small", field="travellers",
        )
    if why := city.not_a_member_on(visit_date, f"the visit date, {visit_date}"):
        raise Conflict(f"{why}; only visits to member cities are claimed here", code="not_a_member")
    european, name = city.european_on(visit_date), city.name or "the city"
    if european:
        rule, clause = EXPERT_VISIT_COE_FUNDED, f"CoE-funded on the expert visits budget because {name} is a European city"
    else:
        rule, clause = EXPERT_VISIT_RECHARGED, f"recharged to {name} because a non-European city bears the costs of expert visits to it"
    lines = expense_lines(expenses, exchange_rates, rule=rule, coe=european, clause=clause)
    if nights:
        if allowance_rate is None:
            raise allowance_rate_missing(city.country, visit_date)
        # The team's allowance: every traveller's nights at the host country's rate, no cap (no event dates to cap by).
        amount = to_cents(allowance_rate.eur_per_night * nights * travellers)
        earned = (
            f"{_count(travellers, 'traveller')} x {_count(nights, 'night')} at {allowance_rate.eur_per_night:.2f} EUR "
            f"({allowance_rate.country} rate from {allowance_rate.valid_from}) make {amount:.2f} EUR"
        )
        lines.append(allowance_line(len(lines) + 1, amount, allowance_rate, earned=earned, rule=rule, coe=european, clause=clause))
    coe_funded, recharged = _totals(lines)
    return ExpertVisit(
        id=uuid4(),
        city_id=city.city_id,
        city_name=name,
        european=european,
        visit_date=visit_date,
        submitted_on=today,
        nights=nights,
        travellers=travellers,
        coe_funded=coe_funded,
        recharged=recharged,
        lines=lines,
    )
