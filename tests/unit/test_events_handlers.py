"""Events' handlers driven with a fake unit of work: what each command and each fact from
membership changes and publishes, without a database."""

from datetime import UTC, date, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from contracts.events import (
    CityApplied,
    CityJoined,
    CityLeft,
    DelegateRegistered,
    JoinDateCorrected,
    RegistrationCancelled,
    RegistrationFundingChanged,
    WorkshopScheduled,
)
from services.common.refusals import Conflict, Invalid, NotFound, NotYetKnown
from services.events import handlers
from services.events.domain import Workshop
from tests.fakes import FakeKeyed, FakeUnitOfWork

TODAY = date(2027, 1, 15)
NOW = datetime(2027, 1, 15, 10, tzinfo=UTC)
FIRST_DAY = date(2027, 3, 10)


class FakeWorkshops:
    def __init__(self) -> None:
        self.rows: dict[UUID, Workshop] = {}

    async def get(self, workshop_id: UUID, *, for_update: bool = False) -> Workshop:
        if workshop_id not in self.rows:
            raise NotFound(f"no event with id {workshop_id}")
        return self.rows[workshop_id]

    def add(self, workshop: Workshop) -> None:
        self.rows[workshop.id] = workshop


class FakeEventsUnitOfWork(FakeUnitOfWork):
    def __init__(self) -> None:
        super().__init__()
        self.workshops = FakeWorkshops()
        self.member_cities = FakeKeyed("city_id")


async def learn(uow: FakeEventsUnitOfWork, *facts) -> None:
    for fact in facts:
        await handlers.HANDLERS[type(fact)](fact, uow)


async def scheduled(uow: FakeEventsUnitOfWork, capacity: int = 10, quota: int = 1) -> Workshop:
    return await handlers.schedule_workshop(
        uow, title="Anti-rumour strategies", kind="thematic_workshop", host_city="Lisbon", host_country="PT",
        starts_on=FIRST_DAY, ends_on=FIRST_DAY + timedelta(days=1), capacity=capacity, funded_quota_per_city=quota,
    )


def joined(city_id: UUID, name: str = "Oslo", on: date = date(2026, 3, 15)) -> CityJoined:
    return CityJoined(city_id=city_id, name=name, country="NO", european=True, joined_on=on)


async def register(uow: FakeEventsUnitOfWork, workshop: Workshop, city_id: UUID, who: str):
    return await handlers.register_delegate(uow, workshop.id, city_id, who, f"{who.lower()}@example.org", TODAY, NOW)


async def test_scheduling_publishes_the_event_once_committed() -> None:
    uow = FakeEventsUnitOfWork()
    workshop = await scheduled(uow, capacity=40)
    assert [type(e) for e in uow.published] == [WorkshopScheduled] and uow.commits == 1
    assert (uow.published[0].workshop_id, uow.published[0].capacity) == (workshop.id, 40)


async def test_a_member_s_delegate_registers_and_the_registration_is_published() -> None:
    uow, oslo = FakeEventsUnitOfWork(), uuid4()
    workshop = await scheduled(uow)
    await learn(uow, joined(oslo))
    _, registration = await register(uow, workshop, oslo, "Ingrid")
    [published] = uow.published[1:]
    assert isinstance(published, DelegateRegistered) and (published.registration_id, published.funded) == (registration.id, True)


async def test_an_applicant_is_refused_for_good_and_nothing_is_published() -> None:
    uow, lublin = FakeEventsUnitOfWork(), uuid4()
    workshop = await scheduled(uow)
    await learn(uow, CityApplied(city_id=lublin, name="Lublin", country="PL", population=339_000, european=True, small_city=False,
                                 applied_on=date(2027, 1, 2)))
    with pytest.raises(Conflict, match="Lublin is an applicant") as refused:
        await register(uow, workshop, lublin, "Ania")
    assert refused.value.code == "not_a_member"
    assert [type(e) for e in uow.published] == [WorkshopScheduled] and workshop.registrations == []


async def test_a_city_unknown_to_events_is_told_to_retry() -> None:
    uow = FakeEventsUnitOfWork()
    workshop = await scheduled(uow)
    with pytest.raises(NotYetKnown):
        await register(uow, workshop, uuid4(), "Ingrid")


async def test_a_withdrawal_counts_from_its_effective_date_and_a_replayed_join_does_not_undo_it() -> None:
    uow, oslo = FakeEventsUnitOfWork(), uuid4()
    workshop = await scheduled(uow)
    await learn(uow, joined(oslo), CityLeft(city_id=oslo, effective_on=FIRST_DAY), joined(oslo))
    _, registration = await register(uow, workshop, oslo, "Ingrid")  # a member until the event's first day included
    assert registration.status == "registered"
    await learn(uow, CityLeft(city_id=oslo, effective_on=FIRST_DAY - timedelta(days=1)))
    with pytest.raises(Conflict, match="not a member on the event's first day"):
        await register(uow, workshop, oslo, "Sven")


async def test_a_corrected_join_date_replaces_the_one_events_knew() -> None:
    uow, oslo = FakeEventsUnitOfWork(), uuid4()
    await learn(uow, joined(oslo), JoinDateCorrected(city_id=oslo, joined_on=date(2026, 4, 1), previous_joined_on=date(2026, 3, 15),
                                                     european=True, reason="typo"))
    city = await uow.member_cities.get(oslo)
    assert (city.joined_on, city.name, city.country) == (date(2026, 4, 1), "Oslo", "NO")
    await learn(uow, JoinDateCorrected(city_id=uuid4(), joined_on=date(2026, 4, 1), previous_joined_on=date(2026, 3, 15),
                                       european=True, reason="never joined here"))
    assert len(uow.member_cities.rows) == 1  # a correction for a city events never heard of changes nothing


async def test_cancelling_a_funded_registration_passes_the_funding_on_in_one_commit() -> None:
    uow, oslo = FakeEventsUnitOfWork(), uuid4()
    workshop = await scheduled(uow, quota=1)
    await learn(uow, joined(oslo))
    _, funded = await register(uow, workshop, oslo, "Ingrid")
    _, colleague = await register(uow, workshop, oslo, "Sven")
    commits = uow.commits
    await handlers.cancel_registration(uow, workshop.id, funded.id, TODAY, NOW)
    assert uow.commits == commits + 1
    assert [(type(e), e.registration_id) for e in uow.published[-2:]] == [
        (RegistrationCancelled, funded.id), (RegistrationFundingChanged, colleague.id),
    ]


async def test_moving_an_event_into_the_past_is_refused_and_publishes_nothing() -> None:
    uow = FakeEventsUnitOfWork()
    workshop = await scheduled(uow)
    with pytest.raises(Invalid) as refused:
        await handlers.reschedule_workshop(uow, workshop.id, TODAY - timedelta(days=3), TODAY - timedelta(days=2), None, TODAY)
    assert refused.value.field == "ends_on" and len(uow.published) == 1 and workshop.starts_on == FIRST_DAY
