"""Network events: scheduling, registration, the waiting list and the funded quota. Pure: no I/O.

A workshop (any kind of network event) is the aggregate: it holds its registrations, so seats,
the waiting list and each city's funded quota are decided in one place, under one lock."""

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from uuid import UUID, uuid4

from contracts.events import (
    DelegateRegistered,
    Event,
    RegistrationCancelled,
    RegistrationFundingChanged,
    RegistrationPromoted,
    WorkshopCancelled,
    WorkshopRescheduled,
    WorkshopScheduled,
)
from services.common.refusals import Conflict, NotFound, NotYetKnown

DEFAULT_FUNDED_QUOTA = 1  # [rule] funded delegates per city and event


class NotAMember(Exception):
    """The city is known not to be a member (it left): a final refusal, not worth retrying."""


class WorkshopStatus(StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class RegistrationStatus(StrEnum):
    REGISTERED = "registered"  # holds a seat
    WAITLISTED = "waitlisted"
    CANCELLED = "cancelled"


@dataclass(eq=False)
class MemberCity:
    """What events knows of a city, learnt from membership's events (never by calling membership).
    A city known only from `CityLeft` has no name or join date."""

    city_id: UUID
    name: str | None
    european: bool | None
    joined_on: date | None
    left_on: date | None = None

    @property
    def is_member(self) -> bool:
        return self.joined_on is not None and self.left_on is None

    def joined(self, name: str, european: bool, joined_on: date) -> None:
        if self.left_on is not None and joined_on <= self.left_on:
            return  # a join older than the departure we already know of changes nothing
        self.name, self.european, self.joined_on, self.left_on = name, european, joined_on, None

    def left(self, effective_on: date) -> None:
        self.left_on = effective_on


@dataclass(eq=False)
class Registration:
    id: UUID
    workshop_id: UUID
    city_id: UUID
    delegate_name: str
    delegate_email: str
    sequence: int  # first come, first served: the order registrations reached the event
    status: str
    funded: bool  # seated and within the city's funded quota; otherwise self-funded (or waiting)
    registered_at: datetime
    cancelled_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status != RegistrationStatus.CANCELLED

    @property
    def participation(self) -> str:
        """How the organiser's list shows it: funded, self_funded, waitlisted or cancelled."""
        if self.status == RegistrationStatus.REGISTERED:
            return "funded" if self.funded else "self_funded"
        return self.status


def normalise_email(email: str) -> str:
    return email.strip().lower()


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
    status: str = WorkshopStatus.SCHEDULED
    cancelled_on: date | None = None
    last_sequence: int = 0
    registrations: list[Registration] = field(default_factory=list)

    # --- what the organiser sees ---

    @property
    def seated(self) -> list[Registration]:
        return sorted((r for r in self.registrations if r.status == RegistrationStatus.REGISTERED), key=lambda r: r.sequence)

    @property
    def waiting_list(self) -> list[Registration]:
        return sorted((r for r in self.registrations if r.status == RegistrationStatus.WAITLISTED), key=lambda r: r.sequence)

    @property
    def seats_left(self) -> int:
        return max(self.capacity - len(self.seated), 0)

    def registration(self, registration_id: UUID) -> Registration:
        for registration in self.registrations:
            if registration.id == registration_id:
                return registration
        raise NotFound(f"no registration {registration_id} for event {self.id}")

    def waitlist_position(self, registration: Registration) -> int | None:
        waiting = self.waiting_list
        return waiting.index(registration) + 1 if registration in waiting else None

    # --- commands ---

    def register(
        self, city_id: UUID, city: MemberCity | None, delegate_name: str, delegate_email: str, today: date, now: datetime
    ) -> tuple[Registration, list[Event]]:
        """Seat the delegate, or put them on the waiting list when the event is full. Refusals come
        in order of finality: the event's own state, then the city, then the delegate."""
        self._refuse_unless_open(today)
        if today > self.ends_on:
            raise Conflict(f"registration for {self.title!r} closed after its last day, {self.ends_on}")
        if city is None:
            raise NotYetKnown(
                f"events has not (yet) learnt that city {city_id} joined the network; if it has just joined, "
                "retry in a few seconds, otherwise check the city's id and status in membership"
            )
        if not city.is_member:
            raise NotAMember(f"{city.name or f'city {city_id}'} is not a member of the network (it withdrew, effective "
                             f"{city.left_on}); only member cities' delegates may register")
        email = normalise_email(delegate_email)
        if any(r.active and r.delegate_email == email for r in self.registrations):
            raise Conflict(f"{email} is already registered for {self.title!r}")
        self.last_sequence += 1
        # Seats go first come, first served: a newcomer never overtakes someone already waiting.
        seated = len(self.seated) < self.capacity and not self.waiting_list
        registration = Registration(
            id=uuid4(),
            workshop_id=self.id,
            city_id=city_id,
            delegate_name=delegate_name.strip(),
            delegate_email=email,
            sequence=self.last_sequence,
            status=RegistrationStatus.REGISTERED if seated else RegistrationStatus.WAITLISTED,
            funded=False,
            registered_at=now,
        )
        self.registrations.append(registration)
        changed = self._apply_funded_quota()
        events: list[Event] = [
            DelegateRegistered(
                registration_id=registration.id,
                workshop_id=self.id,
                city_id=city_id,
                delegate_name=registration.delegate_name,
                delegate_email=email,
                status=registration.status,
                funded=registration.funded,
            )
        ]
        events += self._funding_changes(changed, skip={registration})
        return registration, events

    def cancel_registration(self, registration_id: UUID, today: date, now: datetime) -> tuple[Registration, list[Event]]:
        """Free the seat; the waiting list moves up first come, first served, and the city's funded
        quota passes to its next seated delegate."""
        registration = self.registration(registration_id)
        if not registration.active:
            raise Conflict(f"registration {registration_id} was already cancelled on {registration.cancelled_at:%Y-%m-%d}")
        self._refuse_unless_open(today)
        if today > self.ends_on:
            raise Conflict(f"{self.title!r} ended on {self.ends_on}; its registrations are history")
        registration.status, registration.cancelled_at = RegistrationStatus.CANCELLED, now
        registration.funded = False
        events: list[Event] = [
            RegistrationCancelled(registration_id=registration.id, workshop_id=self.id, city_id=registration.city_id)
        ]
        promoted = self._fill_seats()
        changed = self._apply_funded_quota()
        events += self._promotions(promoted)
        events += self._funding_changes(changed, skip=set(promoted))
        return registration, events

    def reschedule(self, starts_on: date, ends_on: date, capacity: int | None, today: date) -> list[Event]:
        """New dates, and optionally a new capacity: never below the seats already taken; a larger
        one seats the waiting list, first come, first served."""
        self._refuse_unless_open(today)
        if self.ends_on < today:
            raise Conflict(f"{self.title!r} already took place (it ended on {self.ends_on})")
        if ends_on < starts_on:
            raise ValueError(f"the event cannot end ({ends_on}) before it starts ({starts_on})")
        if capacity is not None:
            if capacity < len(self.seated):
                raise Conflict(
                    f"{len(self.seated)} delegates hold seats at {self.title!r}; the capacity cannot go below that "
                    "(cancel registrations first)"
                )
        events: list[Event] = []
        if (starts_on, ends_on) != (self.starts_on, self.ends_on):
            self.starts_on, self.ends_on = starts_on, ends_on
            events.append(WorkshopRescheduled(workshop_id=self.id, starts_on=starts_on, ends_on=ends_on))
        if capacity is not None and capacity != self.capacity:
            self.capacity = capacity
            promoted = self._fill_seats()
            changed = self._apply_funded_quota()
            events += self._promotions(promoted)
            events += self._funding_changes(changed, skip=set(promoted))
        return events

    def cancel(self, today: date) -> WorkshopCancelled:
        """The event will not take place. Its registrations stay as they were, for the record; the
        single `WorkshopCancelled` voids them all for every consumer."""
        self._refuse_unless_open(today)
        if self.ends_on < today:
            raise Conflict(f"{self.title!r} already took place (it ended on {self.ends_on}); it cannot be cancelled")
        self.status, self.cancelled_on = WorkshopStatus.CANCELLED, today
        return WorkshopCancelled(workshop_id=self.id)

    # --- rules ---

    def _refuse_unless_open(self, today: date) -> None:
        if self.status == WorkshopStatus.CANCELLED:
            raise Conflict(f"{self.title!r} was cancelled on {self.cancelled_on}")

    def _fill_seats(self) -> list[Registration]:
        promoted = []
        for registration in self.waiting_list[: self.seats_left]:
            registration.status = RegistrationStatus.REGISTERED
            promoted.append(registration)
        return promoted

    def _apply_funded_quota(self) -> list[Registration]:
        """[rule] Each city's first `funded_quota_per_city` seated delegates (in registration order)
        are funded, the others self-funded; waiting delegates are not funded until seated.
        Returns the registrations whose funding changed."""
        changed = []
        per_city: dict[UUID, int] = {}
        for registration in self.seated:
            rank = per_city[registration.city_id] = per_city.get(registration.city_id, 0) + 1
            funded = rank <= self.funded_quota_per_city
            if registration.funded != funded:
                registration.funded = funded
                changed.append(registration)
        for registration in self.waiting_list:
            if registration.funded:
                registration.funded = False
                changed.append(registration)
        return changed

    def _promotions(self, promoted: list[Registration]) -> list[Event]:
        return [
            RegistrationPromoted(registration_id=r.id, workshop_id=self.id, city_id=r.city_id, funded=r.funded)
            for r in promoted
        ]

    def _funding_changes(self, changed: list[Registration], skip: set[Registration]) -> list[Event]:
        # A new or promoted registration already says whether it is funded in its own event.
        return [
            RegistrationFundingChanged(registration_id=r.id, workshop_id=self.id, city_id=r.city_id, funded=r.funded)
            for r in changed
            if r not in skip
        ]

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
    if capacity < 1:
        raise ValueError("an event needs at least one seat")
    if funded_quota_per_city < 0:
        raise ValueError("the funded quota per city cannot be negative")
    return Workshop(uuid4(), title, kind, host_city, host_country, starts_on, ends_on, capacity, funded_quota_per_city)
