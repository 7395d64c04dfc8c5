"""Events' requests and answers: shape and format only (shared field types); the rules are the domain's."""

from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from contracts.events import WorkshopKind
from services.common.fields import Country, Email, Text
from services.events.domain import DEFAULT_FUNDED_QUOTA, MemberCity, Registration, RegistrationStatus, Workshop, WorkshopStatus

WORKSHOP_ID = "3e0b7a52-1c6d-4f8e-9b2a-7d4c5e6f8a90"
CITY_ID = "6f1c2b0e-8d4a-4c57-9a43-2f0d7c1e5b90"
REGISTRATION_ID = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"

# Sane bounds, so that a typo is a 422 naming the field, never an overflowing column.
EventDay = Annotated[date, Field(ge=date(2000, 1, 1), le=date(2099, 12, 31))]
Seats = Annotated[int, Field(gt=0, le=100_000)]


def refusal(description: str, detail: str, code: str, **extra: Any) -> dict[str, Any]:
    """How a refusal looks in the OpenAPI docs: the body services/common/errors.py answers with."""
    return {"description": description,
            "content": {"application/json": {"example": {"detail": detail, "code": code, **extra}}}}


NO_EVENT = {404: refusal("no event with this id", f"no event with id {WORKSHOP_ID}", "not_found")}


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
    host_country: Country = Field(description="ISO 3166-1 alpha-2 code")
    starts_on: EventDay
    ends_on: EventDay = Field(description="the last day; not before starts_on")
    capacity: Seats = Field(description="seats; further delegates go on the waiting list")
    funded_quota_per_city: int = Field(
        default=DEFAULT_FUNDED_QUOTA, ge=0, le=1000, description="funded delegates per city; the others are self-funded"
    )


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
    def of(cls, w: Workshop, today: date) -> "WorkshopView":
        return cls(
            id=w.id, title=w.title, kind=w.kind, host_city=w.host_city, host_country=w.host_country, starts_on=w.starts_on,
            ends_on=w.ends_on, capacity=w.capacity, funded_quota_per_city=w.funded_quota_per_city, status=w.status,
            cancelled_on=w.cancelled_on, registration_open=w.registration_open(today),
            seats_taken=len(w.seated), seats_left=w.seats_left, waitlisted=len(w.waiting_list),
        )


class Rescheduling(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"starts_on": "2027-04-14", "ends_on": "2027-04-15", "capacity": 50}]}
    )

    starts_on: EventDay
    ends_on: EventDay = Field(description="not before starts_on, and not in the past")
    capacity: Seats | None = Field(default=None, description="optional new capacity; never below the seats taken")


class RegistrationRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"city_id": CITY_ID, "delegate_name": "Ingrid Berg", "delegate_email": "ingrid.berg@oslo.kommune.no"}]
        }
    )

    city_id: UUID
    delegate_name: Text = Field(min_length=1, max_length=200)
    delegate_email: Email


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
    def of(cls, workshop: Workshop, r: Registration, city: MemberCity | None) -> "RegistrationView":
        return cls(
            id=r.id, workshop_id=r.workshop_id, city_id=r.city_id, city_name=city.name if city else None,
            delegate_name=r.delegate_name, delegate_email=r.delegate_email, status=r.status, funded=r.funded,
            participation=r.participation, waitlist_position=workshop.waitlist_position(r), registered_at=r.registered_at,
            cancelled_at=r.cancelled_at,
        )


class MemberCityView(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"city_id": CITY_ID, "name": "Oslo", "european": True, "applied_on": "2026-01-12",
                          "joined_on": "2026-03-15", "left_on": None, "member": True}]
        }
    )

    city_id: UUID
    name: str | None
    european: bool | None
    applied_on: date | None = Field(description="from CityApplied; an applicant has no join date")
    joined_on: date | None
    left_on: date | None = Field(description="the effective date of its withdrawal: its last day as a member")
    member: bool = Field(description="a member today: its delegates may register for events it is a member on the first day of")

    @classmethod
    def of(cls, city: MemberCity, today: date) -> "MemberCityView":
        return cls(city_id=city.city_id, name=city.name, european=city.european, applied_on=city.applied_on,
                   joined_on=city.joined_on, left_on=city.left_on, member=city.member_on(today))
