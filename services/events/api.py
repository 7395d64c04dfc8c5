"""Events HTTP API: parse, call a handler, answer."""

import csv
import io
import re
from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.events import WorkshopKind
from contracts.reference import is_country_code
from services.common.api import Limit, Offset, today
from services.common.db import utcnow
from services.common.refusals import NotFound
from services.common.runtime import get_unit_of_work
from services.events import handlers
from services.events.db import EventsUnitOfWork
from services.events.domain import (
    DEFAULT_FUNDED_QUOTA,
    MemberCity,
    NotAMember,
    Registration,
    RegistrationStatus,
    Workshop,
    WorkshopStatus,
)

workshops_router = APIRouter(tags=["workshops"])
registrations_router = APIRouter(tags=["registrations"])
cities_router = APIRouter(tags=["member cities"])
routers = [workshops_router, registrations_router, cities_router]

UoW = Annotated[EventsUnitOfWork, Depends(get_unit_of_work)]
WORKSHOP_ID = "3e0b7a52-1c6d-4f8e-9b2a-7d4c5e6f8a90"
CITY_ID = "6f1c2b0e-8d4a-4c57-9a43-2f0d7c1e5b90"
REGISTRATION_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


def refusal(description: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": {"detail": detail, **extra}}}}


NO_EVENT = {404: refusal("no event with this id", f"no event with id {WORKSHOP_ID}")}


def install_error_handlers(app: FastAPI) -> None:
    """A city known not to be a member gets a final 403, distinct from the retryable 409 of a city
    events has not heard of yet."""

    @app.exception_handler(NotAMember)
    async def not_a_member(_: Request, err: NotAMember) -> JSONResponse:
        return JSONResponse({"detail": str(err), "retryable": False}, status_code=403)


# --- workshops ---------------------------------------------------------------------------------


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value.strip()


Text = Annotated[str, AfterValidator(_not_blank)]


class WorkshopRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "title": "Intercultural competence in public services",
                    "kind": "thematic_workshop",
                    "host_city": "Lisbon",
                    "host_country": "PT",
                    "starts_on": "2027-03-10",
                    "ends_on": "2027-03-11",
                    "capacity": 40,
                    "funded_quota_per_city": 1,
                }
            ]
        }
    )

    title: Text = Field(min_length=1, max_length=300)
    kind: WorkshopKind
    host_city: Text = Field(min_length=1, max_length=200)
    host_country: str = Field(description="ISO 3166-1 alpha-2 code")
    starts_on: date
    ends_on: date = Field(description="the last day; not before starts_on")
    capacity: int = Field(gt=0, description="seats; further delegates go on the waiting list")
    funded_quota_per_city: int = Field(
        default=DEFAULT_FUNDED_QUOTA, ge=0, description="funded delegates per city; the others are self-funded"
    )

    @field_validator("host_country")
    @classmethod
    def _iso_country(cls, value: str) -> str:
        code = value.strip().upper()
        if not is_country_code(code):
            raise ValueError(f"{value!r} is not an ISO 3166-1 alpha-2 country code")
        return code

    @model_validator(mode="after")
    def _dates_in_order(self) -> "WorkshopRequest":
        if self.ends_on < self.starts_on:
            raise ValueError(f"ends_on ({self.ends_on}) is before starts_on ({self.starts_on})")
        return self


class WorkshopView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": WORKSHOP_ID, "title": "Intercultural competence in public services", "kind": "thematic_workshop",
                 "host_city": "Lisbon", "host_country": "PT", "starts_on": "2027-03-10", "ends_on": "2027-03-11",
                 "capacity": 40, "funded_quota_per_city": 1, "status": "scheduled", "cancelled_on": None,
                 "registration_open": True, "seats_taken": 38, "seats_left": 2, "waitlisted": 0}
            ]
        }
    )

    id: UUID
    title: str
    kind: WorkshopKind
    host_city: str
    host_country: str
    starts_on: date
    ends_on: date
    capacity: int
    funded_quota_per_city: int
    status: WorkshopStatus
    cancelled_on: date | None
    registration_open: bool = Field(description="scheduled and not past its last day")
    seats_taken: int
    seats_left: int
    waitlisted: int

    @classmethod
    def of(cls, w: Workshop) -> "WorkshopView":
        return cls(
            id=w.id, title=w.title, kind=w.kind, host_city=w.host_city, host_country=w.host_country, starts_on=w.starts_on,
            ends_on=w.ends_on, capacity=w.capacity, funded_quota_per_city=w.funded_quota_per_city, status=w.status,
            cancelled_on=w.cancelled_on, registration_open=w.status == WorkshopStatus.SCHEDULED and today() <= w.ends_on,
            seats_taken=len(w.seated), seats_left=w.seats_left, waitlisted=len(w.waiting_list),
        )


@workshops_router.post(
    "/workshops",
    status_code=201,
    summary="Schedule a workshop, study visit or high-level meeting",
    responses={422: {"description": "a field breaks a rule (e.g. ends before it starts); nothing is written"}},
)
async def schedule(request: WorkshopRequest, uow: UoW) -> WorkshopView:
    """Publishes `WorkshopScheduled`. Registration opens at once and stays open until the last day."""
    async with uow:
        workshop = await handlers.schedule_workshop(uow, **request.model_dump())
        return WorkshopView.of(workshop)


@workshops_router.get("/workshops", summary="Network events, by start date")
async def list_workshops(
    uow: UoW,
    status: WorkshopStatus | None = None,
    kind: WorkshopKind | None = None,
    starting_from: Annotated[date | None, Query(description="events not over by this day")] = None,
    until: Annotated[date | None, Query(description="events starting by this day")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[WorkshopView]:
    """Filter by `status`, `kind`, and a date window (`starting_from`: not over by then; `until`:
    starting by then)."""
    async with uow:
        found = await uow.workshops.list(status, kind, starting_from, until, limit, offset)
        return [WorkshopView.of(w) for w in found]


@workshops_router.get("/workshops/{workshop_id}", summary="One network event, with its seats", responses=NO_EVENT)
async def get_workshop(workshop_id: UUID, uow: UoW) -> WorkshopView:
    """Dates, capacity, seats taken and left, the length of the waiting list."""
    async with uow:
        return WorkshopView.of(await uow.workshops.get(workshop_id))


class Rescheduling(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"starts_on": "2027-04-14", "ends_on": "2027-04-15", "capacity": 50}]}
    )

    starts_on: date
    ends_on: date
    capacity: int | None = Field(default=None, gt=0, description="optional new capacity; never below the seats taken")

    @model_validator(mode="after")
    def _dates(self) -> "Rescheduling":
        if self.ends_on < self.starts_on:
            raise ValueError(f"ends_on ({self.ends_on}) is before starts_on ({self.starts_on})")
        if self.ends_on < today():
            raise ValueError(f"an event cannot be moved into the past (ends_on {self.ends_on})")
        return self


@workshops_router.post(
    "/workshops/{workshop_id}/rescheduling",
    summary="Move an event to new dates, optionally with a new capacity",
    responses={
        **NO_EVENT,
        409: refusal("cancelled, over, or the capacity is below the seats taken",
                     "38 delegates hold seats at 'Intercultural competence in public services'; the capacity cannot go "
                     "below that (cancel registrations first)"),
    },
)
async def reschedule(workshop_id: UUID, request: Rescheduling, uow: UoW) -> WorkshopView:
    """New dates publish `WorkshopRescheduled`; registrations are kept. A larger capacity seats
    the waiting list first come, first served (`RegistrationPromoted`); a capacity below the seats
    already taken is refused. A cancelled or past event cannot be rescheduled."""
    async with uow:
        workshop = await handlers.reschedule_workshop(uow, workshop_id, request.starts_on, request.ends_on, request.capacity, today())
        return WorkshopView.of(workshop)


@workshops_router.post(
    "/workshops/{workshop_id}/cancellation",
    summary="Cancel an event",
    responses={**NO_EVENT, 409: refusal("already cancelled, or already over", "'Intercultural competence in public services' "
                                        "was cancelled on 2027-02-01")},
)
async def cancel(workshop_id: UUID, uow: UoW) -> WorkshopView:
    """Publishes `WorkshopCancelled`, which voids every registration for every consumer (travel
    accepts no claim for it). The participant list stays readable, so the organiser can tell the
    delegates; nobody can register or cancel any more."""
    async with uow:
        return WorkshopView.of(await handlers.cancel_workshop(uow, workshop_id, today()))


# --- registrations -----------------------------------------------------------------------------

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class RegistrationRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"city_id": CITY_ID, "delegate_name": "Ingrid Berg", "delegate_email": "ingrid.berg@oslo.kommune.no"}]
        }
    )

    city_id: UUID
    delegate_name: Text = Field(min_length=1, max_length=200)
    delegate_email: str = Field(max_length=320)

    @field_validator("delegate_email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not EMAIL.match(value.strip()):
            raise ValueError(f"{value!r} is not an email address")
        return value.strip().lower()


class RegistrationView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": REGISTRATION_ID, "workshop_id": WORKSHOP_ID, "city_id": CITY_ID, "city_name": "Oslo",
                 "delegate_name": "Ingrid Berg", "delegate_email": "ingrid.berg@oslo.kommune.no", "status": "registered",
                 "funded": True, "participation": "funded", "waitlist_position": None,
                 "registered_at": "2027-01-15T10:02:11Z", "cancelled_at": None}
            ]
        }
    )

    id: UUID
    workshop_id: UUID
    city_id: UUID
    city_name: str | None
    delegate_name: str
    delegate_email: str
    status: RegistrationStatus = Field(description="registered (holds a seat) | waitlisted | cancelled")
    funded: bool = Field(description="seated and within the city's funded quota; otherwise self-funded or waiting")
    participation: str = Field(description="funded | self_funded | waitlisted | cancelled")
    waitlist_position: int | None
    registered_at: datetime
    cancelled_at: datetime | None

    @classmethod
    def of(cls, workshop: Workshop, r: Registration, city_name: str | None) -> "RegistrationView":
        return cls(
            id=r.id, workshop_id=r.workshop_id, city_id=r.city_id, city_name=city_name, delegate_name=r.delegate_name,
            delegate_email=r.delegate_email, status=r.status, funded=r.funded, participation=r.participation,
            waitlist_position=workshop.waitlist_position(r), registered_at=r.registered_at, cancelled_at=r.cancelled_at,
        )


@registrations_router.post(
    "/workshops/{workshop_id}/registrations",
    status_code=201,
    summary="Register a member city's delegate",
    responses={
        **NO_EVENT,
        403: refusal("the city is not a member (it left the network): final, do not retry",
                     "Oslo is not a member of the network (it withdrew, effective 2027-01-31); only member cities' delegates may "
                     "register", retryable=False),
        409: {
            "description": "either a final refusal (the event is cancelled or over, or the delegate is already "
                           "registered), or, with `retryable: true` and a `Retry-After` header, a city events has not "
                           "heard of yet (its `CityJoined` may still be on its way)",
            "content": {"application/json": {"examples": {
                "not yet known": {"value": {"detail": f"events has not (yet) learnt that city {CITY_ID} joined the "
                                            "network; if it has just joined, retry in a few seconds, otherwise check "
                                            "the city's id and status in membership", "retryable": True}},
                "already registered": {"value": {"detail": "ingrid.berg@oslo.kommune.no is already registered for "
                                                 "'Intercultural competence in public services'"}},
            }}},
        },
    },
)
async def register(workshop_id: UUID, request: RegistrationRequest, uow: UoW) -> RegistrationView:
    """A seat if one is free (`status: registered`), else the waiting list (`waitlisted`), first
    come, first served. Within its city's funded quota a seated delegate is `funded`, beyond it
    self-funded. Publishes `DelegateRegistered`. Open until the event's last day."""
    async with uow:
        workshop, registration = await handlers.register_delegate(
            uow, workshop_id, request.city_id, request.delegate_name, request.delegate_email, today(), utcnow()
        )
        city = await uow.member_cities.get(registration.city_id)
        return RegistrationView.of(workshop, registration, city.name if city else None)


async def _participants(uow: EventsUnitOfWork, workshop: Workshop, status: RegistrationStatus | None) -> list[tuple[Registration, str | None]]:
    if status is None:
        chosen = workshop.seated + workshop.waiting_list
    else:
        chosen = [r for r in sorted(workshop.registrations, key=lambda r: r.sequence) if r.status == status]
    await uow.member_cities.preload({r.city_id for r in chosen})  # one query for all the cities' names
    return [(r, _name(await uow.member_cities.get(r.city_id))) for r in chosen]


def _name(city: MemberCity | None) -> str | None:
    return city.name if city else None


@registrations_router.get("/workshops/{workshop_id}/registrations", summary="The participant list", responses=NO_EVENT)
async def list_registrations(
    workshop_id: UUID,
    uow: UoW,
    status: Annotated[RegistrationStatus | None, Query(description="default: seated, then waiting")] = None,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> list[RegistrationView]:
    """Seated delegates (funded or self-funded) in registration order, then the waiting list in
    its order. `?status=cancelled` lists cancelled registrations instead."""
    async with uow:
        workshop = await uow.workshops.get(workshop_id)
        chosen = (await _participants(uow, workshop, status))[offset : offset + limit]
        return [RegistrationView.of(workshop, r, name) for r, name in chosen]


CSV_COLUMNS = ["participation", "delegate_name", "delegate_email", "city_name", "city_id", "waitlist_position",
               "registered_at", "registration_id"]


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    # A name starting with = + - @ would run as a formula in a spreadsheet.
    return f"'{text}" if text[:1] in ("=", "+", "-", "@") else text


@registrations_router.get(
    "/workshops/{workshop_id}/participants.csv",
    summary="The participant list as CSV",
    response_class=Response,
    responses={
        200: {"description": "one line per delegate, seated then waiting", "content": {"text/csv": {"example": (
            "participation,delegate_name,delegate_email,city_name,city_id,waitlist_position,registered_at,registration_id\r\n"
            f"funded,Ingrid Berg,ingrid.berg@oslo.kommune.no,Oslo,{CITY_ID},,2027-01-15T10:02:11+00:00,{REGISTRATION_ID}\r\n")}}},
        **NO_EVENT,
    },
)
async def export_participants(workshop_id: UUID, uow: UoW) -> Response:
    """For the organiser's spreadsheet: participation (funded, self_funded, waitlisted), delegate,
    city, place on the waiting list."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    async with uow:
        workshop = await uow.workshops.get(workshop_id)
        for r, city_name in await _participants(uow, workshop, None):
            writer.writerow([_cell(v) for v in (r.participation, r.delegate_name, r.delegate_email, city_name, r.city_id,
                                                workshop.waitlist_position(r), r.registered_at.isoformat(), r.id)])
        filename = f"participants-{workshop.starts_on}-{workshop.id}.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@registrations_router.delete(
    "/workshops/{workshop_id}/registrations/{registration_id}",
    summary="Cancel a registration",
    responses={
        404: refusal("no such event or registration", f"no registration {REGISTRATION_ID} for event {WORKSHOP_ID}"),
        409: refusal("already cancelled, or the event is cancelled or over",
                     f"registration {REGISTRATION_ID} was already cancelled on 2027-02-03"),
    },
)
async def cancel_registration(workshop_id: UUID, registration_id: UUID, uow: UoW) -> RegistrationView:
    """Publishes `RegistrationCancelled`. A freed seat goes to the first on the waiting list
    (`RegistrationPromoted`); if the delegate was funded, the city's next seated delegate becomes
    funded (`RegistrationFundingChanged`)."""
    async with uow:
        workshop, registration = await handlers.cancel_registration(uow, workshop_id, registration_id, today(), utcnow())
        city = await uow.member_cities.get(registration.city_id)
        return RegistrationView.of(workshop, registration, _name(city))


# --- member cities, as events knows them ---------------------------------------------------------


class MemberCityView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"city_id": CITY_ID, "name": "Oslo", "european": True, "joined_on": "2026-03-15", "left_on": None,
                          "member": True}]
        }
    )

    city_id: UUID
    name: str | None
    european: bool | None
    joined_on: date | None
    left_on: date | None
    member: bool = Field(description="its delegates may register")

    @classmethod
    def of(cls, city: MemberCity) -> "MemberCityView":
        return cls(city_id=city.city_id, name=city.name, european=city.european, joined_on=city.joined_on,
                   left_on=city.left_on, member=city.is_member)


@cities_router.get("/member-cities", summary="The cities events knows of, from membership's events")
async def list_member_cities(uow: UoW, limit: Limit = 100, offset: Offset = 0) -> list[MemberCityView]:
    """Learnt from `CityJoined` and `CityLeft`, never by calling membership: a city that has just
    joined appears here once its `CityJoined` is consumed."""
    async with uow:
        return [MemberCityView.of(city) for city in await uow.member_cities.list(limit, offset)]


@cities_router.get(
    "/member-cities/{city_id}",
    summary="Whether events knows a city, and as a member or not",
    responses={404: refusal("events has not heard of this city (yet)", f"events has not heard of city {CITY_ID} (yet)")},
)
async def get_member_city(city_id: UUID, uow: UoW) -> MemberCityView:
    """What a registration for this city would be checked against."""
    async with uow:
        city = await uow.member_cities.get(city_id)
        if city is None:
            raise NotFound(f"events has not heard of city {city_id} (yet)")
        return MemberCityView.of(city)
