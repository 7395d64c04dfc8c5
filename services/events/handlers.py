"""Events handlers: organisers' commands and the membership facts events keeps."""

from contracts.events import CityJoined, CityLeft
from services.events import domain
from services.events.db import EventsUnitOfWork
from services.events.domain import MemberCity, Workshop


async def schedule_workshop(uow: EventsUnitOfWork, **details) -> Workshop:
    workshop = domain.schedule(**details)
    uow.workshops.add(workshop)
    uow.emit(workshop.scheduled())
    await uow.commit()
    return workshop


async def on_city_joined(event: CityJoined, uow: EventsUnitOfWork) -> None:
    city = await uow.member_cities.get(event.city_id)
    if city is None:
        uow.member_cities.add(MemberCity(event.city_id, event.name, event.european, event.joined_on))
    else:
        city.joined_on, city.left_on, city.european = event.joined_on, None, event.european


async def on_city_left(event: CityLeft, uow: EventsUnitOfWork) -> None:
    if city := await uow.member_cities.get(event.city_id):
        city.left_on = event.effective_on


HANDLERS = {CityJoined: on_city_joined, CityLeft: on_city_left}
