from datetime import date
from decimal import Decimal

import pytest

from services.common.errors import Conflict
from services.membership.domain import CityStatus, apply_for_membership


def applicant(country: str = "NO", population: int = 700_000):
    city, _ = apply_for_membership("Somewhere", country, population, Decimal("0.2"), date(2026, 1, 5))
    return city


def test_a_city_joins_when_both_documents_are_signed_on_the_later_date() -> None:
    city = applicant()
    assert city.sign_financial_agreement(date(2026, 3, 1)) is None
    joined = city.sign_statement_of_intent(date(2026, 2, 1))
    assert joined is not None and joined.joined_on == date(2026, 3, 1)
    assert city.status == CityStatus.MEMBER


def test_cities_under_30000_inhabitants_are_flagged_not_refused() -> None:
    city, applied = apply_for_membership("Small", "PT", 29_999, None, date(2026, 1, 5))
    assert city.small_city and applied.small_city and city.status == CityStatus.APPLICANT
    assert not applicant(population=30_000).small_city


@pytest.mark.parametrize(("country", "european"), [("TR", True), ("AZ", True), ("MA", False), ("CA", False), ("XK", False)])
def test_european_follows_the_council_of_europe_list(country: str, european: bool) -> None:
    city = applicant(country)
    city.sign_statement_of_intent(date(2026, 2, 1))
    joined = city.sign_financial_agreement(date(2026, 2, 2))
    assert joined.european is european


def test_a_russian_city_joining_after_the_exclusion_is_not_european() -> None:
    city, applied = apply_for_membership("Kazan", "RU", 1_300_000, None, date(2022, 3, 1))
    assert applied.european
    city.sign_statement_of_intent(date(2022, 3, 10))
    assert city.sign_financial_agreement(date(2022, 3, 20)).european is False


def test_signing_twice_is_refused() -> None:
    city = applicant()
    city.sign_statement_of_intent(date(2026, 2, 1))
    with pytest.raises(Conflict, match="signed its statement of intent"):
        city.sign_statement_of_intent(date(2026, 2, 2))


def test_only_members_can_withdraw() -> None:
    city = applicant()
    with pytest.raises(Conflict, match="not a member"):
        city.withdraw(date(2026, 5, 1))
    city.sign_statement_of_intent(date(2026, 2, 1))
    city.sign_financial_agreement(date(2026, 2, 1))
    left = city.withdraw(date(2026, 6, 30))
    assert city.status == CityStatus.LEFT and left.effective_on == date(2026, 6, 30)
