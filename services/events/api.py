"""Events HTTP API."""

from datetime import date
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.events import WorkshopKind
from contracts.reference import is_country_code
from services.common.runtime import get_unit_of_work
from services.events import handlers
from services.events.db import EventsUnitOfWork
from services.events.domain import DEFAULT_FUNDED_QUOTA, Workshop

router = APIRouter(tags=["workshops"])
UoW = Annotated[EventsUnitOfWork, Depends(get_unit_of_work)]


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
                }
            ]
        }
    )

    title: str = Field(min_length=1, max_length=300)
    kind: WorkshopKind
    host_city: str = Field(min_length=1, max_length=200)
    host_country: str
    starts_on: date
    ends_on: date
    capacity: int = Field(gt=0)
    funded_quota_per_city: int = Field(default=DEFAULT_FUNDED_QUOTA, ge=0)

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


class WorkshopView(WorkshopRequest):
    id: UUID
    status: str

    @classmethod
    def of(cls, workshop: Workshop) -> "WorkshopView":
        return cls.model_validate({name: getattr(workshop, name) for name in cls.model_fields})


@router.post("/workshops", status_code=201, summary="Schedule a workshop, study visit or high-level meeting")
async def schedule(request: WorkshopRequest, uow: UoW) -> WorkshopView:
    async with uow:
        try:
            workshop = await handlers.schedule_workshop(uow, **request.model_dump())
        except ValueError as err:
            raise HTTPException(422, str(err)) from err
        return WorkshopView.of(workshop)


@router.get("/workshops/{workshop_id}", summary="One network event")
async def get_workshop(workshop_id: UUID, uow: UoW) -> WorkshopView:
    async with uow:
        return WorkshopView.of(await uow.workshops.get(workshop_id))
