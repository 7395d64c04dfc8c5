"""Events handlers: organisers' and delegates' commands, and the membership facts events keeps."""

from collections.abc import Callable
from datetime import date, datetime
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from services.common.members import membership_handlers
from services.common.refusals import Conflict, NotFound
from services.events import domain
from services.events.db import EventsUnitOfWork
from services.events.domain import MemberCity, Registration, Workshop


async def schedule_workshop(uow: EventsUnitOfWork, **details) -> Workshop:
    workshop = domain.schedule(**details)
    uow.workshops.add(workshop)
    uow.emit(workshop.scheduled())
    await uow.commit()
    return workshop


async def reschedule_workshop(
    uow: EventsUnitOfWork, workshop_id: UUID, starts_on: date, ends_on: date, capacity: int | None, today: date
) -> Workshop:
    workshop = await uow.workshops.get(workshop_id, for_update=True)
    for event in workshop.reschedule(starts_on, ends_on, capacity, today):
        uow.emit(event)
    await uow.commit()
    return workshop


async def cancel_workshop(uow: EventsUnitOfWork, workshop_id: UUID, today: date) -> Workshop:
    workshop = await uow.workshops.get(workshop_id, for_update=True)
    uow.emit(workshop.cancel(today))
    await uow.commit()
    return workshop


async def register_delegate(
    uow: EventsUnitOfWork,
    workshop_id: UUID,
    city_id: UUID,
    delegate_name: str,
    delegate_email: str,
    today: date,
    now: datetime,
) -> tuple[Workshop, Registration]:
    # The workshop row is locked first: concurrent registrations queue here, one seat count at a time.
    workshop = await uow.workshops.get(workshop_id, for_update=True)
    city = await uow.member_cities.get(city_id)
    registration, events = workshop.register(city_id, city, delegate_name, delegate_email, today, now)
    for event in events:
        uow.emit(event)
    already = f"{registration.delegate_email} is already registered for {workshop.title!r}"  # a failed commit expires objects
    try:
        await uow.commit()
    except IntegrityError:  # the unique index caught a double registration the lock did not see
        raise Conflict(already, code="already_registered") from None
    return workshop, registration


async def cancel_registration(
    uow: EventsUnitOfWork, workshop_id: UUID, registration_id: UUID, today: date, now: datetime,
    may_cancel: Callable[[Registration], bool] = lambda _: True,
) -> tuple[Workshop, Registration]:
    """`may_cancel`: whether the caller may cancel this one (theirs, their city's); others are
    refused as if they did not exist."""
    workshop = await uow.workshops.get(workshop_id, for_update=True)
    if not may_cancel(workshop.registration(registration_id)):
        raise NotFound(f"no registration {registration_id} for event {workshop_id}")
    registration, events = workshop.cancel_registration(registration_id, today, now)
    for event in events:
        uow.emit(event)
    await uow.commit()
    return workshop, registration


# --- facts learnt from membership (batch consumer: no commit here) ---------------------------

HANDLERS = membership_handlers(MemberCity, lambda uow: uow.member_cities)
