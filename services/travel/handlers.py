"""Travel handlers for the facts it consumes."""

from contracts.events import CityJoined, CityLeft, WorkshopCancelled, WorkshopScheduled
from services.travel.db import TravelUnitOfWork
from services.travel.domain import KnownCity, KnownEvent


async def on_city_joined(event: CityJoined, uow: TravelUnitOfWork) -> None:
    if city := await uow.city(event.city_id):
        city.joined_on, city.left_on, city.european = event.joined_on, None, event.european
    else:
        uow.add(KnownCity(event.city_id, event.name, event.european, event.joined_on))


async def on_city_left(event: CityLeft, uow: TravelUnitOfWork) -> None:
    if city := await uow.city(event.city_id):
        city.left_on = event.effective_on


async def on_workshop_scheduled(event: WorkshopScheduled, uow: TravelUnitOfWork) -> None:
    if await uow.event(event.workshop_id) is None:
        uow.add(
            KnownEvent(
                event.workshop_id, event.title, event.host_country, event.starts_on, event.ends_on, event.funded_quota_per_city
            )
        )


async def on_workshop_cancelled(event: WorkshopCancelled, uow: TravelUnitOfWork) -> None:
    if known := await uow.event(event.workshop_id):
        known.cancelled = True


HANDLERS = {
    CityJoined: on_city_joined,
    CityLeft: on_city_left,
    WorkshopScheduled: on_workshop_scheduled,
    WorkshopCancelled: on_workshop_cancelled,
}
