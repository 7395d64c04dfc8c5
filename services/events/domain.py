"""Network events: scheduling rules. Pure: no I/O."""

from dataclasses import dataclass
from datetime import date
from uuid import UUID, uuid4

from contracts.events import WorkshopScheduled

DEFAULT_FUNDED_QUOTA = 1  # [rule] funded delegates per city and event


@dataclass(eq=False)
class MemberCity:
    """What events knows of a city, learnt from membership's events (never by calling membership)."""

    city_id: UUID
    name: str
    european: bool
    joined_on: date
    left_on: date | None = None

    @property
    def is_member(self) -> bool:
        return self.left_on is None


@dataclass(eq=False)
class Workshop:
    id: UUID
    title: str
    kind: str
    host_city: str
    host_country: str
    starts_on: date
    ends_on: date
    capacity: int
    funded_quota_per_city: int
    status: str = "scheduled"

    def scheduled(self) -> WorkshopScheduled:
        return WorkshopScheduled(
            workshop_id=self.id,
            title=self.title,
            kind=self.kind,
            host_city=self.host_city,
            host_country=self.host_country,
            starts_on=self.starts_on,
            ends_on=self.ends_on,
            capacity=self.capacity,
            funded_quota_per_city=self.funded_quota_per_city,
        )


def schedule(
    title: str,
    kind: str,
    host_city: str,
    host_country: str,
    starts_on: date,
    ends_on: date,
    capacity: int,
    funded_quota_per_city: int = DEFAULT_FUNDED_QUOTA,
) -> Workshop:
    if ends_on < starts_on:
        raise ValueError(f"the event ends ({ends_on}) before it starts ({starts_on})")
    return Workshop(uuid4(), title, kind, host_city, host_country, starts_on, ends_on, capacity, funded_quota_per_city)
