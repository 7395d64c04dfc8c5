"""Events HTTP API: parse, call a handler, answer. Requests and answers are in schemas.py."""

import csv
import io
from datetime import date
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from contracts.events import WorkshopKind
from services.common.api import Limit, Offset, today
from services.common.db import utcnow
from services.common.auth import Principal, require
from services.common.refusals import NotFound, NotYours
from services.common.runtime import get_unit_of_work
from services.events import handlers
from services.events.db import EventsUnitOfWork
from services.events.domain import RegistrationStatus, Workshop, WorkshopStatus
from services.events.schemas import (
    CITY_ID,
    NO_EVENT,
    REGISTRATION_ID,
    WORKSHOP_ID,
    MemberCityView,
    RegistrationRequest,
    RegistrationView,
    Rescheduling,
    WorkshopRequest,
    WorkshopView,
    refusal,
)

workshops_router = APIRouter(tags=["workshops"])
registrations_router = APIRouter(tags=["registrations"])
cities_router = APIRouter(tags=["member cities"])
routers = [workshops_router, registrations_router, cities_router]

UoW = Annotated[EventsUnitOfWork, Depends(get_unit_of_work)]

# Participant lists (names, e-mail addresses) go to these in full; a coordinator or delegate sees
# their city's or their own registrations only.
PARTICIPANT_READERS = ("organiser", "secretariat", "finance", "auditor")


# --- workshops ---------------------------------------------------------------------------------


@workshops_router.post(
    "/workshops",
    status_code=201,
    summary="Schedule a workshop, study visit or high-level meeting",
    responses={422: refusal("a field breaks a rule (e.g. ends before it starts); nothing is written",
                            "the event cannot end (2027-03-09) before it starts (2027-03-10)", "ends_before_start",
                            field="ends_on")},
    dependencies=[require("organiser")],
)
async def schedule(request: WorkshopRequest, uow: UoW) -> WorkshopView:
    """Publishes `WorkshopScheduled`. Registration opens at once and stays open until the last day."""
    async with uow:
        workshop = await handlers.schedule_workshop(uow, **request.model_dump())
        return WorkshopView.of(workshop, today())


@workshops_router.get("/workshops", summary="Network events, by start date", dependencies=[require()])
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
        return [WorkshopView.of(w, today()) for w in found]


@workshops_router.get("/workshops/{workshop_id}", summary="One network event, with its seats", responses=NO_EVENT,
                      dependencies=[require()])
async def get_workshop(workshop_id: UUID, uow: UoW) -> WorkshopView:
    """Dates, capacity, seats taken and left, the length of the waiting list."""
    async with uow:
        return WorkshopView.of(await uow.workshops.get(workshop_id), today())


@workshops_router.post(
    "/workshops/{workshop_id}/rescheduling",
    summary="Move an event to new dates, optionally with a new capacity",
    responses={
        **NO_EVENT,
        409: refusal("cancelled, over, or the capacity is below the seats taken",
                     "38 delegates hold seats at 'Intercultural competence in public services'; the capacity cannot go "
                     "below that (cancel registrations first)", "capacity_below_seats_taken", retryable=False),
        422: refusal("the new dates end before they start, or lie in the past",
                     "an event cannot be moved into the past (ends_on 2026-12-01 is before today, 2027-01-15)",
                     "in_the_past", field="ends_on"),
    },
    dependencies=[require("organiser")],
)
async def reschedule(workshop_id: UUID, request: Rescheduling, uow: UoW) -> WorkshopView:
    """New dates publish `WorkshopRescheduled`; registrations are kept. A larger capacity seats
    the waiting list first come, first served (`RegistrationPromoted`); a capacity below the seats
    already taken is refused. A cancelled or past event cannot be rescheduled, nor moved into the past."""
    async with uow:
        workshop = await handlers.reschedule_workshop(uow, workshop_id, request.starts_on, request.ends_on, request.capacity, today())
        return WorkshopView.of(workshop, today())


@workshops_router.post(
    "/workshops/{workshop_id}/cancellation",
    summary="Cancel an event",
    responses={**NO_EVENT, 409: refusal("already cancelled, or already over", "'Intercultural competence in public services' "
                                        "was cancelled on 2027-02-01", "event_cancelled", retryable=False)},
    dependencies=[require("organiser")],
)
async def cancel(workshop_id: UUID, uow: UoW) -> WorkshopView:
    """Publishes `WorkshopCancelled`, which voids every registration for every consumer (travel
    accepts no claim for it). The participant list stays readable, so the organiser can tell the
    delegates; nobody can register or cancel any more."""
    async with uow:
        return WorkshopView.of(await handlers.cancel_workshop(uow, workshop_id, today()), today())


# --- registrations -----------------------------------------------------------------------------


@registrations_router.post(
    "/workshops/{workshop_id}/registrations",
    status_code=201,
    summary="Register a member city's delegate",
    responses={
        **NO_EVENT,
        409: {
            "description": "either a final refusal (`retryable: false`: the city is an applicant or not a member on "
                           "the day or on the event's first day, the event is cancelled or over, the delegate is "
                           "already registered), or, with `retryable: true` and a `Retry-After` header, a city events "
                           "has not heard of yet (its `CityJoined` may still be on its way)",
            "content": {"application/json": {"examples": {
                "applicant": {"value": {"detail": "Oslo is an applicant, not a member of the network: it becomes one when "
                                        "it has signed both the statement of intent and the financial agreement; only "
                                        "member cities' delegates may register", "code": "not_a_member",
                                        "retryable": False}},
                "withdrew": {"value": {"detail": "Oslo withdrew from the network effective 2027-01-31, so it is not a "
                                       "member on the event's first day, 2027-03-10; only member cities' delegates may "
                                       "register", "code": "not_a_member", "retryable": False}},
                "not yet known": {"value": {"detail": f"events has not (yet) learnt of city {CITY_ID}; if it has just "
                                            "joined, retry in a few seconds, otherwise check the city's id and status in "
                                            "membership", "code": "not_yet_known", "retryable": True}},
                "already registered": {"value": {"detail": "ingrid.berg@oslo.kommune.no is already registered for "
                                                 "'Intercultural competence in public services'",
                                                 "code": "already_registered", "retryable": False}},
            }}},
        },
    },
)
async def register(
    workshop_id: UUID, request: RegistrationRequest, uow: UoW,
    principal: Annotated[Principal, require("organiser", "secretariat", "city_coordinator", "delegate")],
) -> RegistrationView:
    """A seat if one is free (`status: registered`), else the waiting list (`waitlisted`), first
    come, first served. Within its city's funded quota a seated delegate is `funded`, beyond it
    self-funded. Publishes `DelegateRegistered`. Open until the event's last day, to delegates of
    cities that are members today and on the event's first day. A delegate registers themselves
    (their own e-mail address and city), a city coordinator their city's delegates (403 otherwise)."""
    if not principal.scope().covers(city_id=request.city_id, email=request.delegate_email):
        raise NotYours(f"{principal.username} may register only {_whom(principal)}", code="not_yours")
    async with uow:
        workshop, registration = await handlers.register_delegate(
            uow, workshop_id, request.city_id, request.delegate_name, request.delegate_email, today(), utcnow()
        )
        return RegistrationView.of(workshop, registration, await uow.member_cities.get(registration.city_id))


async def _participants(uow: EventsUnitOfWork, workshop: Workshop, status: RegistrationStatus | None) -> list[RegistrationView]:
    if status is None:
        chosen = workshop.seated + workshop.waiting_list
    else:
        chosen = [r for r in sorted(workshop.registrations, key=lambda r: r.sequence) if r.status == status]
    await uow.member_cities.preload({r.city_id for r in chosen})  # one query for all the cities' names
    return [RegistrationView.of(workshop, r, await uow.member_cities.get(r.city_id)) for r in chosen]


def _whom(principal: Principal) -> str:
    if "city_coordinator" in principal.roles and principal.city_id:
        return f"delegates of their own city ({principal.city_id})"
    return f"themselves ({principal.email or 'no e-mail address in their token'}, city {principal.city_id})"


@registrations_router.get("/workshops/{workshop_id}/registrations", summary="The participant list", responses=NO_EVENT)
async def list_registrations(
    workshop_id: UUID,
    uow: UoW,
    principal: Annotated[Principal, require(*PARTICIPANT_READERS, "city_coordinator", "delegate")],
    status: Annotated[RegistrationStatus | None, Query(description="default: seated, then waiting")] = None,
    limit: Limit = 1000,
    offset: Offset = 0,
) -> list[RegistrationView]:
    """Seated delegates (funded or self-funded) in registration order, then the waiting list in
    its order. `?status=cancelled` lists cancelled registrations instead. A coordinator gets their
    city's registrations, a delegate their own."""
    scope = principal.scope()
    async with uow:
        workshop = await uow.workshops.get(workshop_id)
        shown = [r for r in await _participants(uow, workshop, status) if scope.covers(city_id=r.city_id, email=r.delegate_email)]
        return shown[offset : offset + limit]


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
    dependencies=[require(*PARTICIPANT_READERS)],
)
async def export_participants(workshop_id: UUID, uow: UoW) -> Response:
    """For the organiser's spreadsheet: participation (funded, self_funded, waitlisted), delegate,
    city, place on the waiting list."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    async with uow:
        workshop = await uow.workshops.get(workshop_id)
        for r in await _participants(uow, workshop, None):
            writer.writerow([_cell(v) for v in (r.participation, r.delegate_name, r.delegate_email, r.city_name, r.city_id,
                                                r.waitlist_position, r.registered_at.isoformat(), r.id)])
        filename = f"participants-{workshop.starts_on}-{workshop.id}.csv"
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@registrations_router.delete(
    "/workshops/{workshop_id}/registrations/{registration_id}",
    summary="Cancel a registration",
    responses={
        404: refusal("no such event or registration", f"no registration {REGISTRATION_ID} for event {WORKSHOP_ID}",
                     "not_found"),
        409: refusal("already cancelled, or the event is cancelled or over",
                     f"registration {REGISTRATION_ID} was already cancelled on 2027-02-03", "already_cancelled",
                     retryable=False),
    },
)
async def cancel_registration(
    workshop_id: UUID, registration_id: UUID, uow: UoW,
    principal: Annotated[Principal, require("organiser", "secretariat", "city_coordinator", "delegate")],
) -> RegistrationView:
    """Publishes `RegistrationCancelled`. A freed seat goes to the first on the waiting list
    (`RegistrationPromoted`); if the delegate was funded, the city's next seated delegate becomes
    funded (`RegistrationFundingChanged`). A delegate cancels their own, a coordinator their city's
    (another's answers 404)."""
    scope = principal.scope()
    async with uow:
        workshop, registration = await handlers.cancel_registration(
            uow, workshop_id, registration_id, today(), utcnow(),
            may_cancel=lambda r: scope.covers(city_id=r.city_id, email=r.delegate_email),
        )
        return RegistrationView.of(workshop, registration, await uow.member_cities.get(registration.city_id))


# --- member cities, as events knows them ---------------------------------------------------------


@cities_router.get("/member-cities", summary="The cities events knows of, from membership's events", dependencies=[require()])
async def list_member_cities(uow: UoW, limit: Limit = 100, offset: Offset = 0) -> list[MemberCityView]:
    """Learnt from `CityApplied`, `CityJoined`, `JoinDateCorrected` and `CityLeft`, never by calling
    membership: a city that has just joined appears here once its `CityJoined` is consumed."""
    async with uow:
        return [MemberCityView.of(city, today()) for city in await uow.member_cities.list(limit, offset)]


@cities_router.get(
    "/member-cities/{city_id}",
    summary="Whether events knows a city, and as a member or not",
    responses={404: refusal("events has not heard of this city (yet)", f"events has not heard of city {CITY_ID} (yet)",
                            "not_found")},
    dependencies=[require()],
)
async def get_member_city(city_id: UUID, uow: UoW) -> MemberCityView:
    """What a registration for this city would be checked against."""
    async with uow:
        city = await uow.member_cities.get(city_id)
        if city is None:
            raise NotFound(f"events has not heard of city {city_id} (yet)")
        return MemberCityView.of(city, today())
