"""Membership's facts kept by the services that need to know who is a member (events, travel):
the same table and the same four handlers for each, written once. A service maps its own record
class (a `contracts.members.CityFacts`) onto `city_facts_table` and tells the handlers where its
unit of work keeps those records (a `Keyed`)."""

from collections.abc import Callable
from typing import Any

from sqlalchemy import Boolean, Column, Date, MetaData, String, Table, Uuid

from contracts.events import CityApplied, CityJoined, CityLeft, Event, JoinDateCorrected
from contracts.members import CityFacts
from services.common.consumer import Handler
from services.common.db import Keyed

MEMBERSHIP_FACTS = (CityApplied, CityJoined, JoinDateCorrected, CityLeft)


def city_facts_table(name: str, metadata: MetaData) -> Table:
    """The columns of a `CityFacts`: only the id is always known (a city may be known as an
    applicant, a member, or only from its `CityLeft`)."""
    return Table(
        name,
        metadata,
        Column("city_id", Uuid, primary_key=True),
        Column("name", String(200)),
        Column("european", Boolean),
        Column("joined_on", Date),
        Column("left_on", Date),
        Column("country", String(2)),
        Column("applied_on", Date),
    )


def membership_handlers(record: type[CityFacts], cities: Callable[[Any], Keyed]) -> dict[type[Event], Handler]:
    """The handlers of `MEMBERSHIP_FACTS` (batch consumer: they never commit)."""

    async def on_city_applied(event: CityApplied, uow: Any) -> None:
        # Known as an applicant, its delegates get a final refusal instead of "retry" forever.
        if city := await cities(uow).get(event.city_id):
            city.applied(event.name, event.country, event.european, event.applied_on)
        else:
            cities(uow).add(record(event.city_id, event.name, event.european, event.country, applied_on=event.applied_on))

    async def on_city_joined(event: CityJoined, uow: Any) -> None:
        if city := await cities(uow).get(event.city_id):
            city.joined(event.name, event.country, event.european, event.joined_on)
        else:
            cities(uow).add(record(event.city_id, event.name, event.european, event.country, joined_on=event.joined_on))

    async def on_join_date_corrected(event: JoinDateCorrected, uow: Any) -> None:
        # It follows the city's CityJoined on the same key: a city not known here has nothing to correct.
        if city := await cities(uow).get(event.city_id):
            city.join_date_corrected(event.joined_on, event.european)

    async def on_city_left(event: CityLeft, uow: Any) -> None:
        if city := await cities(uow).get(event.city_id):
            city.left(event.effective_on)
        else:
            # Known only as a city that left: its delegates are refused, not told to retry.
            cities(uow).add(record(event.city_id, left_on=event.effective_on))

    return {
        CityApplied: on_city_applied,
        CityJoined: on_city_joined,
        JoinDateCorrected: on_join_date_corrected,
        CityLeft: on_city_left,
    }


def city_ids(events: list[Event]) -> set[Any]:
    """The cities a batch's membership facts touch: what a unit of work preloads."""
    return {e.city_id for e in events if isinstance(e, MEMBERSHIP_FACTS)}
