"""Small pieces every service's HTTP API shares."""

from typing import Annotated

from fastapi import Query

from services.common.fields import today

__all__ = ["Limit", "Offset", "today"]

Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="rows to skip")]
