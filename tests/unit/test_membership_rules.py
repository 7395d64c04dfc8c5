from datetime import date
from decimal import Decimal

import pytest

from services.common.refusals import Conflict, Invalid
from services.membership.domain import CityStatus, apply_for_membership

TODAY = date(2026, 11, 30)


def applicant(country: str = "NO", population: int = 700_000):
    city, _ = apply_for_membership("Somewhere", country, population, Decimal("0.2"), date(2026, 1, 5))
    return city


def test_a_city_joins_when_both_documents_are_signed_on_the_later_date() -> None:
    city = applicant()
    assert city.sign_financial_agreement(date(2026, 3, 1), TODAY) is None
    joined = city.sign_statement_of_intent(date(2026, 2, 1), TODAY)
    assert joined is not None and joined.joined_on == date(2026, 3, 1)
    assert city.status_on(TODAY) == CityStatus.MEMBER


def test_cities_under_30000_inhabitants_are_flagged_not_refused() -> None:
    city, applied = apply_for_membership("Small", "PT", 29_999, None, date(2026, 1, 5))
    assert city.small_city and applied.small_city and city.status_on(TODAY) == CityStatus.APPLICANT
    assert not applicant(population=30_000).small_city


@pytest.mark.parametrize(("country", "european"), [("TR", True), ("AZ", True), ("MA", False), ("CA", False), ("XK", False)])
def test_european_follows_the_council_of_europe_list(country: str, european: bool) -> None:
    city = applicant(country)
    city.sign_statement_of_intent(date(2026, 2, 1), TODAY)
    joined = city.sign_financial_agreement(date(2026, 2, 2), TODAY)
    assert joined.european is european


def test_a_russian_city_joining_after_the_exclusion_is_not_european() -> None:
    city, applied = apply_for_membership("Kazan", "RU", 1_300_000, None, date(2022, 3, 1))
    assert applied.european
    city.sign_statement_of_intent(date(2022, 3, 10), TODAY)
    assert city.sign_financial_agreement(date(2022, 3, 20), TODAY).european is False


def test_signing_twice_is_refused() -> None:
    city = applicant()
    city.sign_statement_of_intent(date(2026, 2, 1), TODAY)
    with pytest.raises(Conflict, match="signed its statement of intent"):
        city.sign_statement_of_intent(date(2026, 2, 2), TODAY)


def test_only_members_can_withdraw() -> None:
    city = applicant()
    with pytest.raises(Conflict, match="not a member"):
        city.withdraw(date(2026, 5, 1), TODAY)
    city.sign_statement_of_intent(date(2026, 2, 1), TODAY)
    city.sign_financial_agreement(date(2026, 2, 1), TODAY)
    left = city.withdraw(date(2026, 6, 30), TODAY)
    assert city.status_on(TODAY) == CityStatus.LEFT and left.effective_on == date(2026, 6, 30)


# --- issue 3: the full lifecycle -------------------------------------------------------------

EUROPEAN = ["TR", "AM", "AZ", "GE", "CY"]
NOT_EUROPEAN = ["MA", "IL", "CA", "JP", "MX", "US", "AU", "KR", "BY", "XK"]


@pytest.mark.parametrize(("country", "european"), [(c, True) for c in EUROPEAN] + [(c, False) for c in NOT_EUROPEAN])
def test_european_is_council_of_europe_membership_never_geography(country: str, european: bool) -> None:
    city, applied = apply_for_membership("Somewhere", country, 250_000, None, date(2026, 1, 5))
    assert city.european is european and applied.european is european
    city.sign_statement_of_intent(date(2026, 2, 1), TODAY)
    assert city.sign_financial_agreement(date(2026, 2, 2), TODAY).european is european


@pytest.mark.parametrize(("joined_on", "european"), [(date(2022, 3, 15), True), (date(2022, 3, 16), False)])
def test_russia_is_european_up_to_and_including_2022_03_15(joined_on: date, european: bool) -> None:
    city, _ = apply_for_membership("Kazan", "RU", 1_300_000, None, date(2022, 1, 10))
    city.sign_statement_of_intent(joined_on, TODAY)
    assert city.sign_financial_agreement(joined_on, TODAY).european is european


def test_the_join_date_is_the_later_signature_whichever_is_signed_first() -> None:
    city = applicant()
    assert city.sign_statement_of_intent(date(2026, 4, 30), TODAY) is None
    assert city.status_on(TODAY) == CityStatus.APPLICANT and city.joined_on is None
    joined = city.sign_financial_agreement(date(2026, 2, 1), TODAY)  # recorded last, signed first
    assert joined.joined_on == city.joined_on == date(2026, 4, 30)


def test_signing_the_financial_agreement_twice_is_refused_and_changes_nothing() -> None:
    city = applicant()
    city.sign_financial_agreement(date(2026, 2, 1), TODAY)
    with pytest.raises(Conflict, match="signed its financial agreement on 2026-02-01"):
        city.sign_financial_agreement(date(2026, 3, 1), TODAY)
    assert city.agreement_signed_on == date(2026, 2, 1) and city.status_on(TODAY) == CityStatus.APPLICANT


def test_a_city_that_left_cannot_withdraw_again_nor_submit_the_index() -> None:
    city = applicant()
    city.sign_statement_of_intent(date(2026, 2, 1), TODAY)
    city.sign_financial_agreement(date(2026, 2, 1), TODAY)
    city.withdraw(date(2026, 6, 30), TODAY)
    with pytest.raises(Conflict, match="status left"):
        city.withdraw(date(2026, 7, 1), TODAY)
    with pytest.raises(Conflict, match="cannot submit the INDEX"):
        city.may_submit_index(TODAY, None)
    assert city.left_on == date(2026, 6, 30)


def test_a_withdrawal_cannot_take_effect_before_the_city_joined() -> None:
    city = applicant()
    city.sign_statement_of_intent(date(2026, 2, 1), TODAY)
    city.sign_financial_agreement(date(2026, 3, 1), TODAY)
    with pytest.raises(Conflict, match="precede joining"):
        city.withdraw(date(2026, 2, 28), TODAY)
    assert city.status_on(TODAY) == CityStatus.MEMBER


def test_an_expert_visit_needs_an_expert_and_a_coe_representative_and_one_report_after_it() -> None:
    city = applicant()
    with pytest.raises(Invalid, match="at least one expert and one Council of Europe representative"):
        city.schedule_expert_visit(date(2026, 5, 12), ["Dr Okafor"], [" "], TODAY)
    visit = city.schedule_expert_visit(date(2026, 5, 12), ["Dr Okafor"], ["I. Novak"], TODAY)
    assert visit.status == "scheduled"
    with pytest.raises(Conflict, match="cannot be dated 2026-05-11"):
        visit.record_profile("Strong commitment", None, date(2026, 5, 11), TODAY)
    visit.record_profile("Strong commitment", "https://example.org/profile", date(2026, 6, 30), TODAY)
    assert visit.status == "reported"
    with pytest.raises(Conflict, match="recorded on 2026-06-30"):
        visit.record_profile("Again", None, date(2026, 7, 1), TODAY)


def test_no_expert_visit_is_scheduled_for_a_city_that_left() -> None:
    city = applicant()
    city.sign_statement_of_intent(date(2026, 2, 1), TODAY)
    city.sign_financial_agreement(date(2026, 2, 1), TODAY)
    city.withdraw(date(2026, 3, 1), TODAY)
    with pytest.raises(Conflict, match="no expert visit"):
        city.schedule_expert_visit(date(2026, 5, 12), ["Dr Okafor"], ["I. Novak"], TODAY)
