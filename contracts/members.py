"""Membership as a consumer reads it from membership's facts, the same way in every service.

A city is an applicant from `CityApplied`, a member from its `joined_on` (`CityJoined`, moved by
`JoinDateCorrected`) up to and including the `effective_on` of its `CityLeft`, and not after.
"European" is decided on the dated Council of Europe list on the date that matters for each
decision (`european_on`), from the city's country; `european` as membership last published it
is the fallback for a city whose country a consumer never learnt.
"""

from dataclasses import dataclass
from datetime import date
from uuid import UUID

from contracts.reference import is_coe_member


@dataclass(eq=False)
class CityFacts:
    """What a service keeps of a city. Each service maps its own subclass onto its own table."""

    city_id: UUID
    name: str | None = None
    european: bool | None = None
    country: str | None = None
    applied_on: date | None = None
    joined_on: date | None = None
    left_on: date | None = None  # the effective date of its withdrawal: its last day as a member

    # --- what membership's facts change ---

    def applied(self, name: str, country: str, european: bool, applied_on: date) -> None:
        # A replayed application never undoes a join or a departure learnt since.
        self.applied_on = applied_on
        self.name, self.country = self.name or name, self.country or country
        if self.european is None:
            self.european = european

    def joined(self, name: str, country: str, european: bool, joined_on: date) -> None:
        if self.left_on is not None and joined_on <= self.left_on:
            return  # a join older than the departure already known changes nothing
        self.name, self.country, self.european, self.joined_on, self.left_on = name, country, european, joined_on, None

    def join_date_corrected(self, joined_on: date, european: bool) -> None:
        self.joined_on, self.european = joined_on, european

    def left(self, effective_on: date) -> None:
        self.left_on = effective_on

    # --- what services ask ---

    @property
    def applicant(self) -> bool:
        return self.joined_on is None and self.left_on is None

    def member_on(self, day: date) -> bool:
        return self.joined_on is not None and self.joined_on <= day and (self.left_on is None or day <= self.left_on)

    def not_a_member_on(self, day: date, what: str) -> str | None:
        """Why the city is not a member on `day` (`what` says which day: "the event's first day,
        2026-06-10"), or None when it is one."""
        if self.member_on(day):
            return None
        name = self.name or f"city {self.city_id}"
        if self.applicant:
            return (f"{name} is an applicant, not a member of the network: it becomes one when it has signed both the "
                    "statement of intent and the financial agreement")
        if self.left_on is not None and (self.joined_on is None or day > self.left_on):
            return f"{name} withdrew from the network effective {self.left_on}, so it is not a member on {what}"
        return f"{name} joined the network on {self.joined_on}, so it was not yet a member on {what}"

    def european_on(self, day: date) -> bool:
        return is_coe_member(self.country, day) if self.country else bool(self.european)
