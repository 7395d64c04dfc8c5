"""Travel: what travel knows of cities and events, to apply the funding rule. Pure: no I/O."""

from dataclasses import dataclass
from datetime import date
from uuid import UUID


@dataclass(eq=False)
class KnownCity:
    """A member city as travel learnt it from CityJoined: `european` decides who funds its delegates."""

    city_id: UUID
    name: str
    european: bool
    joined_on: date
    left_on: date | None = None


@dataclass(eq=False)
class KnownEvent:
    workshop_id: UUID
    title: str
    host_country: str
    starts_on: date
    ends_on: date
    funded_quota_per_city: int
    cancelled: bool = False
