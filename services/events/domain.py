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
from contracts.members import CityFacts
from services.common.refusals import Conflict, Invalid, NotFound, NotYetKnown

DEFAULT_FUNDED_QUOTA = 1  # [rule] funded delegates per city and event


class WorkshopStatus(StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class RegistrationStatus(StrEnum):
    REGISTERED = "registered"  # holds a seat
    WAITLISTED = "waitlisted"
    CANCELLED = "cancelled"


class MemberCity(CityFacts):
    """What events knows of a city, learnt from membership's events (never by calling membership):
    an applicant, a member from `joined_on` up to and including `left_on`. A city known only from
    `CityLeft` has no name or join date."""


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

    def registration_open(self, today: date) -> bool:
        """[rule] From scheduling until the event's last day, inclusive, unless it was cancelled."""
        return self.status == WorkshopStatus.SCHEDULED and today <= self.ends_on

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
            raise Conflict(f"registration for {self.title!r} closed after its last day, {self.ends_on}", code="registration_closed")
        self._refuse_unless_member(city_id, city, today)
        email = normalise_email(delegate_email)
        if any(r.active and r.delegate_email == email for r in self.registrations):
            raise Conflict(f"{email} is already registered for {self.title!r}", code="already_registered")
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
            raise Conflict(f"registration {registration_id} was already cancelled on {registration.cancelled_at:%Y-%m-%d}",
                           code="already_cancelled")
        self._refuse_unless_open(today)
        if today > self.ends_on:
            raise Conflict(f"{self.title!r} ended on {self.ends_on}; its registrations are history", code="event_over")
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
        one seats the waiting list, first come, first served. Never into the past."""
        self._refuse_unless_open(today)
        if self.ends_on < today:
            raise Conflict(f"{self.title!r} already took place (it ended on {self.ends_on})", code="event_over")
        _refuse_unless_in_order(starts_on, ends_on)
        if ends_on < today:
            raise Invalid(f"an event cannot be moved into the past (ends_on {ends_on} is before today, {today})",
                          code="in_the_past", field="ends_on")
        if capacity is not None:
            _refuse_unless_seats(capacity)
            if capacity < len(self.seated):
                raise Conflict(
                    f"{len(self.seated)} delegates hold seats at {self.title!r}; the capacity cannot go below that "
                    "(cancel registrations first)",
                    code="capacity_below_seats_taken",
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
            raise Conflict(f"{self.title!r} already took place (it ended on {self.ends_on}); it cannot be cancelled",
                           code="event_over")
        self.status, self.cancelled_on = WorkshopStatus.CANCELLED, today
        return WorkshopCancelled(workshop_id=self.id)

    # --- rules ---

    def _refuse_unless_open(self, today: date) -> None:
        if self.status == WorkshopStatus.CANCELLED:
            raise Conflict(f"{self.title!r} was cancelled on {self.cancelled_on}", code="event_cancelled")

    def _refuse_unless_member(self, city_id: UUID, city: MemberCity | None, today: date) -> None:
        """[rule] Only a member city's delegates register: a member today, and on the event's first
        day (a city that withdraws before the event, or joined after it began, is not)."""
        if city is None:
            raise NotYetKnown(
                f"events has not (yet) learnt of city {city_id}; if it has just joined, retry in a few seconds, "
                "otherwise check the city's id and status in membership"
            )
        why = city.not_a_member_on(today, f"today, {today}") or city.not_a_member_on(
            self.starts_on, f"the event's first day, {self.starts_on}"
        )
        if why:
            raise Conflict(f"{why}; only member cities' delegates may register", code="not_a_member")

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
    """A new event. It may lie in the past (to record it); registration is then closed."""
    _refuse_unless_in_order(starts_on, ends_on)
    _refuse_unless_seats(capacity)
    if funded_quota_per_city < 0:
        raise Invalid("the funded quota per city cannot be negative", code="negative_quota", field="funded_quota_per_city")
    return Workshop(uuid4(), title, kind, host_city, host_country, starts_on, ends_on, capacity, funded_quota_per_city)


def _refuse_unless_in_order(starts_on: date, ends_on: date) -> None:
    if ends_on < starts_on:
        raise Invalid(f"the event cannot end ({ends_on}) before it starts ({starts_on})", code="ends_before_start",
                      field="ends_on")


def _refuse_unless_seats(capacity: int) -> None:
    if capacity < 1:
        raise Invalid("an event needs at least one seat", code="no_seats", field="capacity")
