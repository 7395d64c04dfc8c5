"""Travel's rules with worked amounts: the funding rule, the allowance, conversions, the window."""

from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import uuid4

import pytest

from services.common.refusals import Conflict, Invalid
from services.travel.domain import (
    AllowanceRate,
    ClaimStatus,
    Decision,
    ExchangeRate,
    Expense,
    KnownCity,
    KnownEvent,
    Rates,
    Registration,
    Stay,
    claim_expert_visit,
    check_resubmittable,
    daily_allowance,
    submit_claim,
    to_eur,
)

D = Decimal
DURING = date(2026, 3, 11)
# Built afresh for each use: the service maps these classes onto tables, and an instance made
# before that mapping would not be usable after it.


def ghent(**changes) -> KnownCity:
    return KnownCity(uuid4(), "Ghent", **{"european": True, "joined_on": date(2024, 5, 1), "country": "BE", **changes})


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
    coe_funded_claims: int = 0,
):
    expenses = [train(), Expense("visa", D("60.00"), "EUR", date(2026, 2, 1))] if expenses is None else expenses
    exchange = {("NOK", date(2026, 3, 2)): nok_march()} if rates is None else rates
    return submit_claim(
        registered or registration(funded=funded),
        city or ghent(),
        event or lisbon(),
        Stay(nights, travel_days, expenses),
        Rates(AllowanceRate("PT", date(2025, 1, 1), D("155.00")), exchange),
        coe_funded_claims=coe_funded_claims,
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


def test_a_funded_delegate_is_self_funded_when_the_city_s_quota_is_already_used_by_claims() -> None:
    # Events passed the funding on after a funded colleague cancelled, but the colleague had already claimed.
    decided = claim(funded=True, coe_funded_claims=1)
    assert (decided.funded, decided.funding, decided.coe_funded, decided.city_borne) == (
        False, "funded_quota_used_self_funded", D("0.00"), D("1002.50"),
    )
    assert {line.rule for line in decided.lines} == {"funded_quota_used_self_funded"}
    assert ("self-funded (city-borne) because Ghent's funded quota for this event (1 delegate) is already used by its other "
            "delegates' CoE-funded claims") in decided.lines[0].explanation
    assert claim(funded=True, coe_funded_claims=0).funding == "european_member_coe_funded"


def test_european_is_decided_on_the_event_s_first_day_not_at_joining() -> None:
    # A Russian city joined in 2021 as European; Russia left the Council of Europe on 2022-03-15.
    moscow_district = ghent(country="RU", european=True, joined_on=date(2021, 6, 1))
    decided = claim(moscow_district)
    assert (decided.european, decided.funding, decided.coe_funded) == (False, "non_european_member_city_borne", D("0.00"))
    before = KnownEvent(uuid4(), "Earlier", "PT", date(2022, 3, 14), date(2022, 3, 15), 1)
    earlier = claim(moscow_district, event=before, expenses=[], rates={}, today=date(2022, 3, 20))
    assert (earlier.european, earlier.funding) == (True, "european_member_coe_funded")


@pytest.mark.parametrize(("left_on", "accepted"), [(date(2026, 3, 10), True), (date(2026, 3, 9), False)])
def test_a_claim_needs_the_city_to_be_a_member_on_the_event_s_first_day(left_on: date, accepted: bool) -> None:
    city = ghent()
    city.left(left_on)
    if accepted:
        assert claim(city).coe_funded == D("1002.50")
    else:
        with pytest.raises(Conflict, match="effective 2026-03-09, so it is not a member on the event's first day, 2026-03-10") as refused:
            claim(city)
        assert refused.value.code == "not_a_member"


# --- corrections: amendments and new versions -----------------------------------------------


def test_a_submitted_or_held_claim_is_amended_under_the_funding_it_was_decided_with() -> None:
    decided = claim(expenses=[train(receipt=None)])  # the receipt forgotten: 400.00 blocked
    assert decided.coe_funded == D("542.50")
    decided.record(Decision("held", datetime(2026, 3, 12, tzinfo=UTC), D("542.50"), "headroom 100.00"))
    amended = decided.amend(ghent(), lisbon(), Stay(3, 1, [train()]), Rates(AllowanceRate("PT", date(2025, 1, 1), D("155.00")),
                            {("NOK", date(2026, 3, 2)): nok_march()}), date(2026, 3, 20))
    assert (decided.status, decided.coe_funded, decided.amendments, decided.amended_on) == ("submitted", D("942.50"), 1, date(2026, 3, 20))
    assert [line.kind for line in decided.lines] == ["transport", "daily_allowance"] and decided.lines[0].eligible == D("400.00")
    assert (amended.claim_id, amended.coe_funded, amended.previous_coe_funded, amended.amendment, amended.budget_line) == (
        decided.id, D("942.50"), D("542.50"), 1, "delegate_travel",
    )
    assert [d.status for d in decided.decisions] == ["held"]  # finance's decisions stay on record


@pytest.mark.parametrize(("status", "says"), [
    ("approved", "ask the finance unit to reject it, then resubmit"),
    ("paid", "nothing about it can change"),
    ("rejected", "resubmit it as a new version"),
])
def test_a_claim_finance_has_decided_is_not_amended(status: str, says: str) -> None:
    decided = claim()
    decided.record(Decision(status, datetime(2026, 3, 12, tzinfo=UTC)))
    with pytest.raises(Conflict, match=says) as refused:
        decided.amend(ghent(), lisbon(), Stay(1, 0, []), Rates(AllowanceRate("PT", date(2025, 1, 1), D("155.00")), {}), DURING)
    assert refused.value.code == "claim_decided" and decided.coe_funded == D("1002.50")


def test_a_rejected_claim_is_resubmitted_once_as_a_new_version_that_names_it() -> None:
    rejected = claim()
    rejected.record(Decision("rejected", datetime(2026, 3, 12, tzinfo=UTC), reason="no boarding pass"))
    check_resubmittable(rejected, None)
    stay, rates = Stay(2, 0, []), Rates(AllowanceRate("PT", date(2025, 1, 1), D("155.00")), {})
    again = submit_claim(registration(), ghent(), lisbon(), stay, rates, coe_funded_claims=0, today=DURING, rejected=rejected)
    assert (again.id != rejected.id, again.supersedes, again.claim_version, again.coe_funded) == (True, rejected.id, 2, D("310.00"))
    published = again.claimed_event()
    assert (published.supersedes, published.claim_version) == (rejected.id, 2)
    with pytest.raises(Conflict, match=f"already resubmitted as claim {again.id}"):
        check_resubmittable(rejected, again)
    with pytest.raises(Conflict, match="not rejected: only a rejected claim is resubmitted; until finance decides it, amend it") as refused:
        check_resubmittable(again, None)
    assert refused.value.code == "not_rejected"


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
    allowance = daily_allowance(nights=1, travel_days_without_night=4, event_days=2, rate=D("100.00"))
    assert allowance.amount == D("200.00") and allowance.travel_days == 2
    assert "4 travel days without a night claimed, capped at 2: going and coming back" in allowance.caps[0]


def test_a_trip_with_no_night_earns_one_travel_day_at_most() -> None:
    # 0 nights + 2 travel days at 100.00 was 100.00: two half days for what is a single calendar day
    allowance = daily_allowance(nights=0, travel_days_without_night=2, event_days=2, rate=D("100.00"))
    assert (allowance.amount, allowance.travel_days) == (D("50.00"), 1)
    assert allowance.caps == ("2 travel days without a night claimed, capped at 1: a trip with no night is a single day",)


def test_nights_and_travel_days_together_never_exceed_event_days_plus_two() -> None:
    # A 2-day event: 3 nights + 2 travel days would be 5 calendar days; 4 at most: 3 nights + 1 travel day
    allowance = daily_allowance(nights=3, travel_days_without_night=2, event_days=2, rate=D("155.00"))
    assert (allowance.nights, allowance.travel_days, allowance.amount) == (3, 1, D("542.50"))
    assert allowance.caps == (
        "2 travel days without a night claimed, capped at 1: each calendar day earns one allowance at most, "
        "and 3 nights + 1 travel day make the event's 2 days + 2",
    )
    # 5 nights claimed are capped first, to 3; then the travel days
    capped = daily_allowance(nights=5, travel_days_without_night=2, event_days=2, rate=D("155.00"))
    assert (capped.nights, capped.travel_days, len(capped.caps)) == (3, 1, 2)
    # within the rule nothing is capped: 2 nights + 2 travel days on a 2-day event
    assert daily_allowance(nights=2, travel_days_without_night=2, event_days=2, rate=D("155.00")).caps == ()


def test_the_cap_follows_a_rescheduled_events_current_dates() -> None:
    assert claim(expenses=[], nights=5, travel_days=0, event=lisbon(ends_on=date(2026, 3, 13))).coe_funded == D("775.00")  # 5 of max 5 nights


def test_a_missing_allowance_rate_is_refused() -> None:
    with pytest.raises(Invalid, match="no daily allowance rate for PT") as refused:
        submit_claim(registration(), ghent(), lisbon(), Stay(1, 0, []), Rates(None, {}), coe_funded_claims=0, today=DURING)
    assert refused.value.code == "allowance_rate_missing"


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


def test_a_missing_exchange_rate_is_refused_never_guessed_and_the_line_is_named() -> None:
    visa_in_nok = Expense("visa", D("700.00"), "NOK", date(2026, 3, 2))
    with pytest.raises(Invalid, match=r"line 2 \(visa fees, 700.00 NOK spent on 2026-03-02\): no NOK exchange rate on or before") as refused:
        claim(expenses=[Expense("visa", D("60.00"), "EUR", date(2026, 2, 1)), visa_in_nok], rates={("NOK", date(2026, 3, 2)): None})
    assert (refused.value.code, refused.value.field) == ("rate_missing", "lines[1].currency")


def test_a_stale_exchange_rate_counts_as_missing() -> None:
    january = ExchangeRate("NOK", date(2026, 1, 1), D("11.30"))
    with pytest.raises(Invalid, match="from 2026-01-01, more than 31 days earlier"):
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


def test_an_expert_visit_is_european_or_not_on_its_visit_date() -> None:
    # Russia was a Council of Europe member until 2022-03-15: a visit in April 2026 is recharged.
    assert visit(ghent(country="RU", european=True, joined_on=date(2021, 6, 1))).european is False


def test_an_expert_visit_needs_a_team_and_a_member_city() -> None:
    with pytest.raises(Invalid, match="at least 2 travellers") as refused:
        claim_expert_visit(ghent(), visit_date=date(2026, 4, 14), nights=0, travellers=1, expenses=[], allowance_rate=None,
                           exchange_rates={}, today=date(2026, 4, 20))
    assert refused.value.field == "travellers"
    applicant = KnownCity(uuid4(), "Lublin", european=True, country="PL", applied_on=date(2026, 1, 5))
    with pytest.raises(Conflict, match="Lublin is an applicant") as refused:
        visit(applicant)
    assert refused.value.code == "not_a_member"


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
