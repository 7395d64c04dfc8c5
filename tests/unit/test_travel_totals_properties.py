"""Property-based: whatever is claimed, a claim's totals are the sums of its lines and never negative."""

from datetime import date
from decimal import Decimal
from uuid import uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from services.travel.domain import (
    AllowanceRate,
    ExchangeRate,
    Expense,
    KnownCity,
    KnownEvent,
    Rates,
    Registration,
    Stay,
    claim_expert_visit,
    daily_allowance,
    submit_claim,
    to_eur,
)

ZERO = Decimal("0.00")
UNITS_PER_EUR = {"NOK": "11.6512", "JPY": "163.2", "GBP": "0.8571", "TRY": "48.0377"}  # quoted on 2026-05-20
EVENT_DAYS = 3  # 2026-06-01 to 2026-06-03

cents = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("250000.00"), places=2)
expenses = st.builds(
    Expense,
    kind=st.sampled_from(["transport", "visa", "local_transport"]),
    amount=cents,
    currency=st.sampled_from(["EUR", *UNITS_PER_EUR]),
    spent_on=st.dates(min_value=date(2026, 5, 20), max_value=date(2026, 6, 5)),
    receipt=st.one_of(st.none(), st.just(""), st.text(min_size=1, max_size=12)),
)
nightly = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("999.99"), places=2)


def rates_for(claimed: list[Expense]) -> dict:
    # Built per example (not at import): the service maps these classes, and an instance made before would break.
    return {
        (e.currency, e.spent_on): ExchangeRate(e.currency, date(2026, 5, 20), Decimal(UNITS_PER_EUR[e.currency]))
        for e in claimed
        if e.currency != "EUR"
    }


def assert_lines_add_up(decided, city_share: str) -> None:
    for line in decided.lines:
        assert min(line.eur_amount, line.eligible, line.coe_funded, line.city_borne) >= ZERO
        assert line.eligible == line.coe_funded + line.city_borne
        assert line.eur_amount == line.eligible + line.blocked
        assert line.eur_amount == line.eur_amount.quantize(Decimal("0.01"))
    assert decided.coe_funded == sum((line.coe_funded for line in decided.lines), ZERO)
    assert getattr(decided, city_share) == sum((line.city_borne for line in decided.lines), ZERO)
    assert decided.claimed == decided.coe_funded + getattr(decided, city_share) + decided.blocked
    assert min(decided.coe_funded, getattr(decided, city_share), decided.blocked) >= ZERO


@settings(max_examples=300, deadline=None)
@given(
    european=st.booleans(),
    funded=st.booleans(),
    claimed=st.lists(expenses, max_size=8),
    nights=st.integers(min_value=0, max_value=60),
    travel_days=st.integers(min_value=0, max_value=10),
    per_night=nightly,
)
def test_claim_totals_always_equal_the_sum_of_the_lines_and_never_go_negative(
    european: bool, funded: bool, claimed: list[Expense], nights: int, travel_days: int, per_night: Decimal
) -> None:
    city = KnownCity(uuid4(), "Somewhere", country="NO" if european else "CA", joined_on=date(2024, 1, 1))
    event = KnownEvent(uuid4(), "Study visit", "NO", date(2026, 6, 1), date(2026, 6, 3), 1)
    registration = Registration(uuid4(), event.workshop_id, city.city_id, "D", "d@x.org", "registered", funded)
    decided = submit_claim(
        registration, city, event, Stay(nights, travel_days, claimed),
        Rates(AllowanceRate("NO", date(2025, 1, 1), per_night), rates_for(claimed)), coe_funded_claims=0, today=date(2026, 6, 10),
    )
    assert_lines_add_up(decided, "city_borne")
    assert len(decided.lines) == len(claimed) + 1
    # whoever pays, pays all that is eligible: the CoE for a funded European delegate, the city otherwise
    assert (decided.city_borne if european and funded else decided.coe_funded) == ZERO
    # the allowance never exceeds event days + 1 nights and one half day (each calendar day one allowance)
    assert decided.lines[-1].eur_amount <= per_night * (EVENT_DAYS + 1) + per_night / 2 + Decimal("0.01")
    event = decided.claimed_event()
    assert (event.coe_funded, event.city_borne) == (decided.coe_funded, decided.city_borne)


@settings(max_examples=200, deadline=None)
@given(european=st.booleans(), claimed=st.lists(expenses, max_size=8), nights=st.integers(0, 30), per_night=nightly)
def test_expert_visit_totals_always_equal_the_sum_of_the_lines_and_never_go_negative(
    european: bool, claimed: list[Expense], nights: int, per_night: Decimal
) -> None:
    city = KnownCity(uuid4(), "Somewhere", country="NO" if european else "CA", joined_on=date(2024, 1, 1))
    visited = claim_expert_visit(
        city, visit_date=date(2026, 6, 2), nights=nights, travellers=2, expenses=claimed,
        allowance_rate=AllowanceRate("NO", date(2025, 1, 1), per_night), exchange_rates=rates_for(claimed),
        today=date(2026, 6, 10),
    )
    assert_lines_add_up(visited, "recharged")
    assert (visited.recharged if european else visited.coe_funded) == ZERO


@given(amount=cents, units=st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("99999.9999"), places=4))
def test_a_conversion_is_within_half_a_cent_of_the_exact_quotient(amount: Decimal, units: Decimal) -> None:
    eur = to_eur(amount, ExchangeRate("XXX", date(2026, 1, 1), units))
    assert eur >= ZERO and abs(eur - amount / units) <= Decimal("0.005")


@given(nights=st.integers(0, 60), travel_days=st.integers(0, 10), event_days=st.integers(1, 15), per_night=nightly)
def test_each_calendar_day_of_a_trip_earns_one_allowance_at_most(nights: int, travel_days: int, event_days: int, per_night: Decimal) -> None:
    allowance = daily_allowance(nights, travel_days, event_days, per_night)
    assert allowance.nights <= min(nights, event_days + 1) and allowance.travel_days <= min(travel_days, 2)
    assert allowance.nights + allowance.travel_days <= event_days + 2
    assert allowance.nights > 0 or allowance.travel_days <= 1  # a trip with no night is a single day
    assert allowance.amount == per_night * allowance.nights + (per_night / 2).quantize(Decimal("0.01"), "ROUND_HALF_UP") * allowance.travel_days
    assert bool(allowance.caps) == ((allowance.nights, allowance.travel_days) != (nights, travel_days))
