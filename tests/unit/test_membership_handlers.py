"""Membership's handlers driven with a fake unit of work and repositories in memory: the rules run
for real, no database. (The same flows run over HTTP on SQLite and PostgreSQL in tests/integration.)"""

from datetime import date
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from contracts.events import CityApplied, CityJoined, CityLeft, JoinDateCorrected
from services.common.refusals import Conflict, Invalid, NotFound
from services.membership import handlers
from services.membership.domain import City, CityStatus, ExpertVisit, SignatureCorrection
from tests.fakes import FakeUnitOfWork, FakeKeyed

TODAY = date(2026, 11, 30)


class FakeCities(FakeKeyed[City]):
    def __init__(self) -> None:
        super().__init__("id")
        self.corrections: list[SignatureCorrection] = []

    async def get(self, city_id: UUID) -> City:
        if city_id not in self.rows:
            raise NotFound(f"no city with id {city_id}")
        return self.rows[city_id]

    def add_correction(self, correction: SignatureCorrection) -> None:
        self.corrections.append(correction)


class FakeVisits(FakeKeyed[ExpertVisit]):
    async def of(self, city_id: UUID, visit_id: UUID) -> ExpertVisit:
        visit = self.rows.get(visit_id)
        if visit is None or visit.city_id != city_id:
            raise NotFound(f"no expert visit {visit_id}")
        return visit


class FakeMembership(FakeUnitOfWork):
    service = "membership"

    def __init__(self) -> None:
        super().__init__()
        self.cities, self.expert_visits = FakeCities(), FakeVisits("id")


async def member(uow: FakeMembership, country: str = "NO", statement: date = date(2026, 2, 1), agreement: date = date(2026, 3, 1)) -> City:
    city = await handlers.apply_for_membership(uow, "Oslo", country, 700_000, Decimal("0.28"), date(2026, 1, 5))
    await handlers.sign_statement_of_intent(uow, city.id, statement, TODAY)
    return await handlers.sign_financial_agreement(uow, city.id, agreement, TODAY)


async def test_a_city_joins_on_the_later_signature_and_each_fact_is_committed_with_its_change() -> None:
    uow = FakeMembership()
    city = await member(uow)
    assert [type(e) for e in uow.published] == [CityApplied, CityJoined]
    assert uow.published_of(CityJoined)[0].joined_on == date(2026, 3, 1) == city.joined_on
    assert uow.commits == 3


async def test_a_signature_dated_in_the_future_is_refused_before_anything_is_emitted() -> None:
    uow = FakeMembership()
    city = await handlers.apply_for_membership(uow, "Oslo", "NO", 700_000, None, date(2026, 1, 5))
    with pytest.raises(Invalid, match="in the future") as refused:
        await handlers.sign_statement_of_intent(uow, city.id, date(2026, 12, 1), TODAY)
    assert refused.value.field == "signed_on" and city.statement_signed_on is None
    assert [type(e) for e in uow.published] == [CityApplied]


async def test_a_corrected_signature_moves_the_join_date_and_european_and_is_kept() -> None:
    uow = FakeMembership()
    city = await member(uow, country="RU", statement=date(2022, 3, 1), agreement=date(2022, 3, 10))
    assert city.european
    await handlers.correct_signature(uow, city.id, "financial_agreement", date(2022, 3, 20), "typo in the day", TODAY)
    [corrected] = uow.published_of(JoinDateCorrected)
    assert (corrected.joined_on, corrected.previous_joined_on, corrected.european) == (date(2022, 3, 20), date(2022, 3, 10), False)
    [kept] = uow.cities.corrections
    assert (kept.document, kept.previous_signed_on, kept.signed_on, kept.reason) == (
        "financial_agreement", date(2022, 3, 10), date(2022, 3, 20), "typo in the day")


async def test_a_correction_on_an_applicant_is_refused() -> None:
    uow = FakeMembership()
    city = await handlers.apply_for_membership(uow, "Oslo", "NO", 700_000, None, date(2026, 1, 5))
    with pytest.raises(Conflict, match="applicant"):
        await handlers.correct_signature(uow, city.id, "statement_of_intent", date(2026, 2, 1), "x", TODAY)
    assert uow.cities.corrections == [] and not uow.published_of(JoinDateCorrected)


async def test_a_withdrawal_is_published_at_once_and_takes_effect_after_its_date() -> None:
    uow = FakeMembership()
    city = await member(uow)
    await handlers.withdraw(uow, city.id, date(2026, 12, 31), TODAY)
    [left] = uow.published_of(CityLeft)
    assert left.effective_on == date(2026, 12, 31)
    assert [city.status_on(day) for day in (TODAY, date(2026, 12, 31), date(2027, 1, 1))] == [
        CityStatus.MEMBER, CityStatus.MEMBER, CityStatus.LEFT]
    with pytest.raises(Conflict, match="already withdraws"):
        await handlers.withdraw(uow, city.id, date(2026, 12, 1), TODAY)


async def test_an_expert_visit_needs_its_team_and_its_report_is_not_dated_in_the_future() -> None:
    uow = FakeMembership()
    city = await member(uow)
    with pytest.raises(Invalid) as refused:
        await handlers.schedule_expert_visit(uow, city.id, date(2026, 5, 12), [" "], ["I. Novak"], TODAY)
    assert (refused.value.code, refused.value.field) == ("team_incomplete", "experts")
    visit = await handlers.schedule_expert_visit(uow, city.id, date(2026, 5, 12), [" Dr Okafor "], ["I. Novak"], TODAY)
    assert visit.experts == ["Dr Okafor"]
    with pytest.raises(Invalid, match="future"):
        await handlers.record_intercultural_profile(uow, city.id, visit.id, "Strong", None, date(2026, 12, 1), TODAY)
    with pytest.raises(NotFound):
        await handlers.record_intercultural_profile(uow, uuid4(), visit.id, "Strong", None, date(2026, 6, 1), TODAY)
    await handlers.record_intercultural_profile(uow, city.id, visit.id, "Strong", None, date(2026, 6, 1), TODAY)
    assert visit.status == "reported"
