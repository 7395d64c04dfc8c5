"""Travel's handlers driven with a fake unit of work: claims decided against the facts travel has
learnt, the funded quota counted over claims, amendments and new versions, without a database."""

from datetime import date, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest

from contracts.events import (
    CityApplied,
    CityJoined,
    DelegateRegistered,
    RegistrationCancelled,
    RegistrationFundingChanged,
    ReimbursementRejected,
    TravelClaimAmended,
    TravelClaimed,
    WorkshopScheduled,
)
from services.common.refusals import Conflict, Invalid, NotFound, NotYetKnown
from services.travel import handlers
from services.travel.db import ClaimFacts
from services.travel.domain import AllowanceRate, ClaimLine, ExchangeRate, Expense, ExpertVisit, Rates, Stay, TravelClaim
from tests.fakes import FakeKeyed, FakeUnitOfWork

D = Decimal
FIRST_DAY = date(2026, 3, 10)
TODAY = date(2026, 3, 12)


class FakeRates:
    """A dated rate table: the rate in force on a day is the latest dated on or before it."""

    def __init__(self, model: type) -> None:
        self.model, self.rows = model, {}

    async def in_force(self, key: str, on: date):
        dated = [day for (k, day) in self.rows if k == key and day <= on]
        return self.rows[(key, max(dated))] if dated else None

    async def stored(self, key: str, dated: date) -> Decimal | None:
        rate = self.rows.get((key, dated))
        return None if rate is None else getattr(rate, "eur_per_night", None) or rate.units_per_eur

    async def put(self, key: str, dated: date, value: Decimal):
        self.rows[(key, dated)] = rate = self.model(key, dated, value)
        return rate


class FakeClaims(FakeKeyed[TravelClaim]):
    def __init__(self) -> None:
        super().__init__("id")
        self.saved: list[tuple[UUID, list[ClaimLine]]] = []  # amended claims, with their new lines

    async def get_one(self, claim_id: UUID, may_see=None, *, for_update: bool = False) -> TravelClaim:
        if claim_id not in self.rows or (may_see and not may_see(self.rows[claim_id].city_id, self.rows[claim_id].delegate_email)):
            raise NotFound(f"no claim with id {claim_id}")
        return self.rows[claim_id]

    async def latest_for(self, registration_id: UUID) -> TravelClaim | None:
        mine = [c for c in self.rows.values() if c.registration_id == registration_id]
        return max(mine, key=lambda c: c.claim_version, default=None)

    async def superseding(self, claim_id: UUID) -> TravelClaim | None:
        return next((c for c in self.rows.values() if c.supersedes == claim_id), None)

    async def using_funded_quota(self, workshop_id: UUID, city_id: UUID) -> int:
        return sum(c.uses_funded_quota for c in self.rows.values() if (c.workshop_id, c.city_id) == (workshop_id, city_id))

    async def save_amended(self, claim: TravelClaim) -> None:
        self.saved.append((claim.id, list(claim.lines)))

    async def insert(self, claim: TravelClaim) -> None:
        self.add(claim)


class FakeExpertVisits(FakeKeyed[ExpertVisit]):
    def __init__(self) -> None:
        super().__init__("id")

    async def insert(self, visit: ExpertVisit) -> None:
        self.add(visit)

    async def on(self, city_id: UUID, visit_date: date) -> ExpertVisit | None:
        return next((v for v in self.rows.values() if (v.city_id, v.visit_date) == (city_id, visit_date)), None)


class FakeDecisions:
    """Finance's decisions, recorded on the fake claims and expert visits."""

    def __init__(self, claims: FakeClaims, visits: FakeExpertVisits) -> None:
        self.claims, self.visits = claims, visits

    def _of(self, claim_id: UUID):
        return self.claims.rows.get(claim_id) or self.visits.rows.get(claim_id)

    async def status(self, claim_id: UUID) -> str | None:
        claimed = self._of(claim_id)
        return None if claimed is None else claimed.status

    async def record(self, claim_id: UUID, decision) -> None:
        assert self._of(claim_id).record(decision)


class FakeTravelUnitOfWork(FakeUnitOfWork):
    def __init__(self) -> None:
        super().__init__()
        self.cities = FakeKeyed("city_id")
        self.workshops = FakeKeyed("workshop_id")
        self.registrations = FakeKeyed("registration_id")
        self.claims = FakeClaims()
        self.expert_visits = FakeExpertVisits()
        self.decisions = FakeDecisions(self.claims, self.expert_visits)
        self.allowance_rates = FakeRates(AllowanceRate)
        self.exchange_rates = FakeRates(ExchangeRate)

    async def claimant(self, registration_id: UUID):
        registration = await self.registrations.get(registration_id)
        if registration is None:
            return None
        city, event = await self.cities.get(registration.city_id), await self.workshops.get(registration.workshop_id)
        return None if city is None or event is None else (registration, city, event)

    async def claim_facts(self, registration_id: UUID, event, city_id: UUID, exchange: list) -> ClaimFacts:
        return ClaimFacts(
            await self.claims.latest_for(registration_id) is not None,
            await self.claims.using_funded_quota(event.workshop_id, city_id),
            Rates(await self.allowance_rates.in_force(event.host_country, event.starts_on),
                  {(currency, on): await self.exchange_rates.in_force(currency, on) for currency, on in exchange}),
        )


class Ghent:
    """A European member city, a two-day event in Lisbon, and the rates its claims need."""

    def __init__(self) -> None:
        self.uow, self.city, self.workshop = FakeTravelUnitOfWork(), uuid4(), uuid4()

    async def learn(self, *facts) -> None:
        for fact in facts:
            await handlers.HANDLERS[type(fact)](fact, self.uow)

    async def ready(self) -> "Ghent":
        await self.learn(
            CityJoined(city_id=self.city, name="Ghent", country="BE", european=True, joined_on=date(2024, 5, 1)),
            WorkshopScheduled(workshop_id=self.workshop, title="Intercultural public services", kind="thematic_workshop",
                              host_city="Lisbon", host_country="PT", starts_on=FIRST_DAY, ends_on=FIRST_DAY + timedelta(days=1),
                              capacity=40, funded_quota_per_city=1),
        )
        await handlers.set_allowance_rate(self.uow, "PT", date(2025, 1, 1), D("155.00"))
        await handlers.set_exchange_rate(self.uow, "NOK", date(2026, 3, 1), D("11.45"))
        return self

    async def delegate(self, email: str, funded: bool = True) -> UUID:
        registration_id = uuid4()
        await self.learn(DelegateRegistered(registration_id=registration_id, workshop_id=self.workshop, city_id=self.city,
                                            delegate_name=email, delegate_email=email, status="registered", funded=funded))
        return registration_id

    async def claim(self, registration_id: UUID, stay: Stay | None = None) -> TravelClaim:
        return await handlers.submit_claim(self.uow, registration_id, stay or STAY, TODAY)


STAY = Stay(3, 1, [Expense("transport", D("4580.00"), "NOK", date(2026, 3, 2), "SAS-7781")])  # 400.00 + 542.50


async def test_a_claim_is_decided_and_published_once_committed() -> None:
    ghent = await Ghent().ready()
    claim = await ghent.claim(await ghent.delegate("ana@ghent.be"))
    assert (claim.funding, claim.coe_funded) == ("european_member_coe_funded", D("942.50"))
    [published] = [e for e in ghent.uow.published if isinstance(e, TravelClaimed)]
    assert (published.claim_id, published.coe_funded, published.claim_version, published.supersedes) == (claim.id, D("942.50"), 1, None)


async def test_funding_passed_on_after_a_cancellation_does_not_fund_a_second_claim() -> None:
    ghent = await Ghent().ready()
    ana, ben = await ghent.delegate("ana@ghent.be"), await ghent.delegate("ben@ghent.be", funded=False)
    await ghent.claim(ana)
    await ghent.learn(
        RegistrationCancelled(registration_id=ana, workshop_id=ghent.workshop, city_id=ghent.city),
        RegistrationFundingChanged(registration_id=ben, workshop_id=ghent.workshop, city_id=ghent.city, funded=True),
    )
    second = await ghent.claim(ben)
    assert (second.funding, second.coe_funded, second.city_borne) == ("funded_quota_used_self_funded", D("0.00"), D("942.50"))


async def test_a_claim_for_a_city_known_only_as_an_applicant_waits_for_its_join() -> None:
    ghent = await Ghent().ready()
    lublin = uuid4()
    await ghent.learn(CityApplied(city_id=lublin, name="Lublin", country="PL", population=339_000, european=True,
                                  small_city=False, applied_on=date(2024, 1, 5)))
    registration_id = uuid4()
    await ghent.learn(DelegateRegistered(registration_id=registration_id, workshop_id=ghent.workshop, city_id=lublin,
                                         delegate_name="Ania", delegate_email="ania@lublin.pl", status="registered", funded=True))
    with pytest.raises(NotYetKnown, match="has not yet learnt that city"):
        await ghent.claim(registration_id)
    assert ghent.uow.published == []


async def test_an_amendment_reprices_the_claim_drops_its_old_lines_and_tells_finance() -> None:
    ghent = await Ghent().ready()
    claim = await ghent.claim(await ghent.delegate("ana@ghent.be"))
    old_lines = list(claim.lines)
    amended = await handlers.amend_claim(ghent.uow, claim.id, Stay(2, 0, []), TODAY)
    assert (amended.id, amended.coe_funded, amended.amendments) == (claim.id, D("310.00"), 1)
    assert ghent.uow.claims.saved == [(claim.id, amended.lines)] and not set(map(id, old_lines)) & set(map(id, amended.lines))
    last = ghent.uow.published[-1]
    assert isinstance(last, TravelClaimAmended) and (last.coe_funded, last.previous_coe_funded) == (D("310.00"), D("942.50"))


async def test_a_rejected_claim_is_resubmitted_once_as_its_next_version() -> None:
    ghent = await Ghent().ready()
    registration_id = await ghent.delegate("ana@ghent.be")
    first = await ghent.claim(registration_id)
    await ghent.learn(ReimbursementRejected(claim_id=first.id, reason="no boarding pass"))
    with pytest.raises(Conflict, match="resubmission") as refused:
        await ghent.claim(registration_id)
    assert refused.value.code == "claim_rejected"
    second = await handlers.resubmit_claim(ghent.uow, first.id, STAY, TODAY)
    assert (second.supersedes, second.claim_version, second.funding) == (first.id, 2, "european_member_coe_funded")
    with pytest.raises(Conflict, match=f"already resubmitted as claim {second.id}"):
        await handlers.resubmit_claim(ghent.uow, first.id, STAY, TODAY)


async def test_euro_has_no_exchange_rate_to_itself() -> None:
    uow = FakeTravelUnitOfWork()
    with pytest.raises(Invalid) as refused:
        await handlers.set_exchange_rate(uow, "EUR", date(2026, 1, 1), D("1"))
    assert (refused.value.code, refused.value.field, uow.commits) == ("eur_has_no_rate", "currency", 0)


async def test_an_expert_visit_to_an_applicant_is_refused_for_good() -> None:
    uow, lublin = FakeTravelUnitOfWork(), uuid4()
    await handlers.HANDLERS[CityApplied](CityApplied(city_id=lublin, name="Lublin", country="PL", population=339_000,
                                                     european=True, small_city=False, applied_on=date(2026, 1, 5)), uow)
    with pytest.raises(Conflict, match="Lublin is an applicant") as refused:
        await handlers.claim_expert_visit(uow, lublin, date(2026, 2, 1), 0, 2, [], TODAY)
    assert refused.value.code == "not_a_member" and uow.published == []
