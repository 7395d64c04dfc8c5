"""Each service's audit trail: who changed what, when, and which event the change published.

Rows are written by the unit of work (`UnitOfWork.emit` and `UnitOfWork.audit`) in the
transaction of the change, for every change a signed-in person or program made through the API.
Changes a service derives from other services' events are traced through those events instead:
their actor is on the consumed event (`ce_authid`) and kept in the processed-event row."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from services.common.api import Limit, Offset
from services.common.auth import require
from services.common.db import AuditEntry
from services.common.fields import Text


class AuditEntryView(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "at": "2027-01-15T10:02:11Z", "actor_type": "app_user", "actor_id": "5b0c6c2e-8a4e-4c59-9d55-0d7a3c1f2b44",
        "actor_name": "secretariat", "action": "CityJoined", "subject": "3f2c9a1e-6b7d-4e8f-9a0b-1c2d3e4f5a6b",
        "event_id": "8d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6", "details": None,
    }]})

    at: datetime
    actor_type: str
    actor_id: str
    actor_name: str | None
    action: str
    subject: str | None
    event_id: str | None
    details: dict[str, Any] | None


def audit_router(*readers: str) -> APIRouter:
    """`GET /audit`, readable by `readers` (the auditor and the unit that owns the service's records)."""
    router = APIRouter(tags=["audit"])

    @router.get("/audit", summary="Who changed what, when, and which event it published", dependencies=[require(*readers)])
    async def audit_trail(
        request: Request,
        subject: Annotated[Text | None, Query(max_length=200, description="the record's id (an event's key)")] = None,
        actor: Annotated[Text | None, Query(max_length=200, description="a user name or subject id")] = None,
        action: Annotated[Text | None, Query(max_length=100, description="e.g. CityJoined, AllowanceRateSet")] = None,
        since: datetime | None = None,
        limit: Limit = 100,
        offset: Offset = 0,
    ) -> list[AuditEntryView]:
        """Newest first."""
        query = select(AuditEntry).order_by(AuditEntry.position.desc()).limit(limit).offset(offset)
        if subject is not None:
            query = query.where(AuditEntry.subject == subject)
        if actor is not None:
            query = query.where((AuditEntry.actor_name == actor) | (AuditEntry.actor_id == actor))
        if action is not None:
            query = query.where(AuditEntry.action == action)
        if since is not None:
            query = query.where(AuditEntry.at >= since)
        async with request.app.state.runtime.sessions() as session:
            return [AuditEntryView.model_validate(row, from_attributes=True) for row in await session.scalars(query)]

    return router
