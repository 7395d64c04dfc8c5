"""Travel's rules with worked amounts: the funding rule, the allowance, conversions, the window."""

from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from services.common.errors import Conflict
from services.travel.domain import (
    AllowanceRate,
    ClaimStatus,
    Decision,
    ExchangeRate,
    Expense,
    KnownCity,
    KnownEvent,
    RateMissing,
    Registration,
    claim_expert_visit,
    daily_allowance,
    submit_claim,
    to_eur,
)

D = Decimal
DURING = date(2026, 3, 11)
# Built afresh for each use: the service maps these classes onto tables, and an instance made
# before that mapping would not be usable after it.


def ghent() -> KnownCity:
    return KnownCity(uuid4(), "Ghent", european=True, joined_on=date(2024, 5, 1), country="BE")


def montreal() -> KnownCity:
    return KnownCity(uuid4(), "Montréal", european=False, joined_on=date(2024, 5, 1), country="CA")


def lisbon(ends_on: date = date(2026, 3, 11), cancelled: bool = False) -> KnownEvent:
    """A two-day workshop in Lisbon: at most 3 nights."""
    return KnownEvent(uuid4(), "Intercultural public services", "PT", date(2026, 3, 10), ends_on, 1, cancelled)


def nok_march() -> ExchangeRate:
    return ExchangeRate("NOK", date(2026, 3, 1), D("11.45"))


def registration(city: KnownCity | None = None, *, funded: bool = True, status: str = "registered") -> Registration:
    return Registration(uuid4(), uuid4(), uuid4(), "Ana Lopes", "ana@ghent.be", status, funded)


def train(amount: str = "4580.00", currency: str = "NOK", receipt: str | None = "SAS-7781", on: date = date(2026, 3, 2)) -> Expense:
    return Expense("transport", D(amount), currency, on, receipt)


def claim(
    city: KnownCity | None = None,
    *,
    funded: bool = True,
    expenses: list[Expense] | None = None,
    nights: int = 3,
    travel_days: int = 1,
    event: KnownEvent | None = None,
    rates: dict | None = None,
    today: date = DURING,
    registered: Registration | None = None,
):
    return submit_claim(
        registered or registration(funded=funded),
        city or ghent(),
        event or lisbon(),
        nights=nights,
        travel_days_without_night=travel_days,
        expenses=[train(), Expense("visa", D("60.00"), "EUR", date(2026, 2, 1))] if expenses is None else expenses,
        allowance_rate=AllowanceRate("PT", date(2025, 1, 1), D("155.00")),
        exchange_rates={("NOK", date(2026, 3, 2)): nok_march()} if rates is None else rates,
        today=today,
    )


def amounts(line) -> tuple[str, str, str, str]:
    return (str(line.eur_amount), str(line.eligible), str(line.coe_funded), str(line.city_borne))


# --- the funding rule -----------------------------------------------------------------------


def test_a_european_member_delegate_within_quota_is_coe_funded() -> None:
    decided = claim()
    transport, visa, allowance = decided.lines
    # 4580.00 NOK / 11.45 NOK per EUR = 400.00 EUR
    assert amounts(transport) == ("400.00", "400.00", "400.00", "0.00")
    assert (transport.units_per_eur, transport.rate_on) == (D("11.45"), date(2026, 3, 1))
    assert amounts(visa) == ("60.00", "60.00", "60.00", "0.00")
    # 3 nights x 155.00 + 1 travel day x 77.50 = 542.50
    assert amounts(allowance) == ("542.50", "542.50", "542.50", "0.00")
    assert (decided.coe_funded, decided.city_borne, decided.claimed) == (D("1002.50"), D("0.00"), D("1002.50"))
    assert {line.rule for line in decided.lines} == {"european_member_coe_funded"}
    assert "Ghent is a European member city and the delegate is within its funded quota" in transport.explanation
    assert "converted at 11.45 NOK per EUR (rate of 2026-03-01), is 400.00 EUR" in transport.explanation


def test_a_non_european_member_delegate_is_city_funded() -> None:
    decided = claim(montreal())
    assert [amounts(line) for line in decided.lines] == [
        ("400.00", "400.00", "0.00", "400.00"),
        ("60.00", "60.00", "0.00", "60.00"),
        ("542.50", "542.50", "0.00", "542.50"),
    ]
    assert (decided.coe_funded, decided.city_borne) == (D("0.00"), D("1002.50"))
    assert {line.rule for line in decided.lines} == {"non_european_member_city_borne"}
    assert "Montréal is not a European member city" in decided.lines[0].explanation
    event = decided.claimed_event()
    assert (event.european, event.coe_funded, event.city_borne, event.budget_line) == (False, D("0.00"), D("1002.50"), "delegate_travel")


def test_a_delegate_beyond_the_city_quota_is_self_funded() -> None:
    decided = claim(funded=False)
    assert (decided.coe_funded, decided.city_borne) == (D("0.00"), D("1002.50"))
    assert {line.rule for line in decided.lines} == {"beyond_funded_quota_self_funded"}
    assert "beyond Ghent's funded quota" in decided.lines[2].explanation


def test_a_non_european_city_bears_its_delegates_costs_even_within_quota() -> None:
    assert claim(montreal(), funded=True).coe_funded == claim(montreal(), funded=False).coe_funded == D("0.00")


# --- transport and proof of payment ---------------------------------------------------------


def test_transport_without_a_receipt_stays_on_the_claim_but_is_not_reimbursed() -> None:
    decided = claim(expenses=[train(receipt=None), Expense("local_transport", D("24.00"), "EUR", date(2026, 3, 10))])
    blocked, local, allowance = decided.lines
    assert amounts(blocked) == ("400.00", "0.00", "0.00", "0.00")
    assert blocked.rule == "missing_proof_of_payment"
    assert "not reimbursed: transport needs proof of payment" in blocked.explanation
    assert amounts(local) == ("24.00", "24.00", "24.00", "0.00")  # local transport needs no receipt
    # 24.00 + 542.50 funded; the 400.00 is shown but blocked
    assert (decided.coe_funded, decided.city_borne, decided.blocked, decided.claimed) == (
        D("566.50"), D("0.00"), D("400.00"), D("966.50"),
    )


def test_a_blank_receipt_is_no_proof() -> None:
    assert claim(expenses=[train(receipt="   ")]).lines[0].eligible == D("0.00")


def test_transport_legs_of_one_round_trip_each_need_their_proof() -> None:
    out, back = train("229.00", "EUR", "TAP-1"), train("231.50", "EUR", None, date(2026, 3, 12))
    decided = claim(expenses=[out, back], today=date(2026, 3, 12))
    assert [str(line.coe_funded) for line in decided.lines[:2]] == ["229.00", "0.00"]


# --- the daily subsistence allowance --------------------------------------------------------


def test_nights_beyond_event_days_plus_one_are_capped_not_refused() -> None:
    decided = claim(expenses=[], nights=5, travel_days=0)
    [allowance] = decided.lines
    assert allowance.eur_amount == D("465.00")  # 3 nights x 155.00, not 5
    assert "5 nights claimed, capped at 3: the event's 2 days + 1" in allowance.explanation


def test_a_travel_day_without_a_night_earns_half_the_rate_half_up() -> None:
    # 145.55 / 2 = 72.775 -> 72.78; 2 nights + 2 travel days = 291.10 + 145.56
    allowance = daily_allowance(nights=2, travel_days_without_night=2, event_days=2, rate=D("145.55"))
    assert allowance.amount == D("436.66")


def test_a_day_trip_earns_half_a_day_only() -> None:
    assert daily_allowance(nights=0, travel_days_without_night=1, event_days=1, rate=D("155.00")).amount == D("77.50")


def test_more_than_two_travel_days_without_a_night_are_capped() -> None:
    allowance = daily_allowance(nights=0, travel_days_without_night=4, event_days=2, rate=D("100.00"))
    assert allowance.amount == D("100.00") and allowance.travel_days == 2
    assert "4 travel days without a night claimed, capped at 2" in allowance.caps[0]


def test_the_cap_follows_a_rescheduled_events_current_dates() -> None:
    assert claim(expenses=[], nights=5, travel_days=0, event=lisbon(ends_on=date(2026, 3, 13))).coe_funded == D("775.00")  # 5 of max 5 nights


def test_a_missing_allowance_rate_is_refused() -> None:
    with pytest.raises(RateMissing, match="no daily allowance rate for PT"):
        submit_claim(
            registration(), ghent(), lisbon(), nights=1, travel_days_without_night=0, expenses=[],
            allowance_rate=None, exchange_rates={}, today=DURING,
        )


# --- currencies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "units_per_eur", "eur"),
    [
        ("4580.00", "11.45", "400.00"),  # NOK, exact
        ("1000.00", "24.7", "40.49"),  # CZK: 40.4858... rounds up
        ("1.00", "8", "0.13"),  # 0.125 exactly: half up, not to even
        ("1.00", "0.85", "1.18"),  # GBP is worth more than a euro: 1.17647...
        ("12000.00", "163.20", "73.53"),  # JPY: 73.529...
    ],
)
def test_amounts_convert_to_eur_as_amount_over_units_per_eur_half_up(amount: str, units_per_eur: str, eur: str) -> None:
    assert to_eur(D(amount), ExchangeRate("XXX", date(2026, 3, 1), D(units_per_eur))) == D(eur)


def test_the_latest_rate_on_or_before_the_expense_date_is_kept_on_the_line() -> None:
    late_march = train(on=date(2026, 3, 28))
    [line, _] = claim(expenses=[late_march], rates={("NOK", date(2026, 3, 28)): nok_march()}, today=date(2026, 3, 28)).lines
    assert (line.units_per_eur, line.rate_on, line.spent_on, line.eur_amount) == (D("11.45"), date(2026, 3, 1), date(2026, 3, 28), D("400.00"))


def test_a_missing_exchange_rate_is_refused_never_guessed() -> None:
    with pytest.raises(RateMissing, match="no NOK exchange rate on or before 2026-03-02"):
        claim(rates={("NOK", date(2026, 3, 2)): None})


def test_a_stale_exchange_rate_counts_as_missing() -> None:
    january = ExchangeRate("NOK", date(2026, 1, 1), D("11.30"))
    with pytest.raises(RateMissing, match="from 2026-01-01, more than 31 days earlier"):
        claim(rates={("NOK", date(2026, 3, 2)): january})


# --- who may claim, and when ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("today", "accepted"),
    [(date(2026, 3, 9), False), (date(2026, 3, 10), True), (date(2026, 5, 10), True), (date(2026, 5, 11), False)],
)
def test_claims_open_on_the_first_day_and_close_60_days_after_the_last(today: date, accepted: bool) -> None:
    if accepted:
        assert claim(today=today).submitted_on == today
    else:
        with pytest.raises(Conflict, match="open on its first day, 2026-03-10|closed on 2026-05-10"):
            claim(today=today)


@pytest.mark.parametrize(
    ("status", "reason"),
    [("waitlisted", "waiting list: only a delegate who got a seat can claim"), ("cancelled", "was cancelled")],
)
def test_a_delegate_who_did_not_attend_cannot_claim(status: str, reason: str) -> None:
    with pytest.raises(Conflict, match=reason):
        claim(registered=registration(status=status))


def test_a_cancelled_event_has_nothing_to_claim() -> None:
    with pytest.raises(Conflict, match="was cancelled: there is nothing to claim"):
        claim(event=lisbon(cancelled=True))


# --- expert visits --------------------------------------------------------------------------


def visit(city: KnownCity, nights: int = 2):
    return claim_expert_visit(
        city,
        visit_date=date(2026, 4, 14),
        nights=nights,
        travellers=2,
        expenses=[
            Expense("transport", D("612.40"), "EUR", date(2026, 4, 1), "AF-123", "expert"),
            Expense("transport", D("1100.00"), "CAD", date(2026, 4, 13), None, "CoE representative"),
        ],
        allowance_rate=AllowanceRate(city.country, date(2025, 1, 1), D("195.00")),
        exchange_rates={("CAD", date(2026, 4, 13)): ExchangeRate("CAD", date(2026, 4, 1), D("1.5625"))},
        today=date(2026, 4, 20),
    )


def test_an_expert_visit_to_a_non_european_city_is_recharged_to_it() -> None:
    visited = visit(montreal())
    expert, representative, allowance = visited.lines
    assert amounts(expert) == ("612.40", "612.40", "0.00", "612.40")
    assert amounts(representative) == ("704.00", "0.00", "0.00", "0.00")  # 1100 / 1.5625, no receipt: blocked
    assert amounts(allowance) == ("780.00", "780.00", "0.00", "780.00")  # 2 travellers x 2 nights x 195.00
    assert (visited.coe_funded, visited.recharged) == (D("0.00"), D("1392.40"))
    assert "recharged to Montréal" in expert.explanation
    event = visited.claimed_event()
    assert (event.claim_id, event.european, event.recharged, event.coe_funded) == (visited.id, False, D("1392.40"), D("0.00"))


def test_an_expert_visit_to_a_european_city_is_coe_funded() -> None:
    visited = visit(ghent(), nights=0)
    assert (visited.coe_funded, visited.recharged, len(visited.lines)) == (D("612.40"), D("0.00"), 2)


# --- following finance ----------------------------------------------------------------------


def test_the_status_follows_finance_and_paid_is_final() -> None:
    decided = claim()
    now = datetime(2026, 3, 20, tzinfo=UTC)
    assert decided.status == ClaimStatus.SUBMITTED
    decided.record(Decision("held", now, D("1002.50"), "delegate_travel headroom 500.00"))
    decided.record(Decision("approved", now, D("1002.50")))
    decided.record(Decision("paid", now, D("1002.50"), paid_on=date(2026, 4, 2)))
    assert decided.record(Decision("rejected", now, reason="too late")) is False
    assert decided.status == "paid"
    assert [d.status for d in decided.decisions] == ["held", "approved", "paid"]
