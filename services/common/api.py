"""Small pieces every service's HTTP API shares."""

from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import Query


def today() -> date:
    return datetime.now(UTC).date()


Limit = Annotated[int, Query(ge=1, le=1000, description="page size")]
Offset = Annotated[int, Query(ge=0, description="rows to skip")]
