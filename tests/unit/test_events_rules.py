"""Network events: scheduling, seats, the waiting list, the funded quota, who may register. Pure rules."""

from datetime import UTC, date, datetime
from uuid import uuid4

import pytest

from contracts.events import (
    DelegateRegistered,
    RegistrationCancelled,
    RegistrationFundingChanged,
    RegistrationPromoted,
    WorkshopCancelled,
    WorkshopRescheduled,
)
from services.common.refusals import Conflict, Invalid, NotFound, NotYetKnown
from services.events.domain import MemberCity, schedule

TODAY = date(2027, 1, 15)
NOW = datetime(2027, 1, 15, 10, tzinfo=UTC)


def event(capacity: int = 2, quota: int = 1, starts_on: date = date(2027, 3, 10), ends_on: date = date(2027, 3, 11)):
    return schedule("Anti-rumour strategies", "thematic_workshop", "Lisbon", "PT", starts_on, ends_on, capacity, quota)


def member(name: str = "Oslo", joined_on: date = date(2026, 3, 15)) -> MemberCity:
    return MemberCity(uuid4(), name, european=True, country="NO", joined_on=joined_on)


def register(workshop, city: MemberCity, who: str, today: date = TODAY):
    return workshop.register(city.city_id, city, who, f"{who.lower()}@example.org", today, NOW)


def test_an_event_cannot_end_before_it_starts() -> None:
    with pytest.raises(Invalid, match="end .2027-03-09. before it starts .2027-03-10.") as refused:
        event(starts_on=date(2027, 3, 10), ends_on=date(2027, 3, 9))
    assert (refused.value.code, refused.value.field) == ("ends_before_start", "ends_on")
    assert event(starts_on=date(2027, 3, 10), ends_on=date(2027, 3, 10)).capacity == 2  # a one-day event


@pytest.mark.parametrize(("capacity", "quota", "field"), [(0, 1, "capacity"), (5, -1, "funded_quota_per_city")])
def test_an_event_needs_a_seat_and_a_quota_of_zero_or_more(capacity: int, quota: int, field: str) -> None:
    with pytest.raises(Invalid) as refused:
        event(capacity=capacity, quota=quota)
    assert refused.value.field == field


def test_delegates_take_seats_then_go_on_the_waiting_list() -> None:
    workshop, oslo, ghent = event(capacity=2), member("Oslo"), member("Ghent")
    first, [registered] = register(workshop, oslo, "Ingrid")
    second, _ = register(workshop, ghent, "Pieter")
    third, [waitlisted] = register(workshop, ghent, "Marie")
    assert [r.status for r in (first, second, third)] == ["registered", "registered", "waitlisted"]
    assert isinstance(registered, DelegateRegistered) and (registered.status, registered.funded) == ("registered", True)
    assert (waitlisted.status, waitlisted.funded) == ("waitlisted", False)
    assert workshop.seats_left == 0 and workshop.waitlist_position(third) == 1


def test_the_funded_quota_per_city_decides_funded_and_self_funded() -> None:
    workshop, oslo = event(capacity=10, quota=2), member()
    registrations = [register(workshop, oslo, name)[0] for name in ("A", "B", "C")]
    assert [(r.funded, r.participation) for r in registrations] == [
        (True, "funded"), (True, "funded"), (False, "self_funded"),
    ]
    other, _ = register(workshop, member("Ghent"), "D")
    assert other.funded  # the quota is per city


def test_a_quota_of_zero_funds_nobody() -> None:
    workshop = event(capacity=5, quota=0)
    assert not register(workshop, member(), "A")[0].funded


def test_a_cancelled_seat_goes_to_the_first_on_the_waiting_list() -> None:
    workshop, oslo, ghent, malmo = event(capacity=1), member("Oslo"), member("Ghent"), member("Malmö")
    seated, _ = register(workshop, oslo, "Ingrid")
    first_waiting, _ = register(workshop, ghent, "Pieter")
    second_waiting, _ = register(workshop, malmo, "Sven")
    cancelled, events = workshop.cancel_registration(seated.id, TODAY, NOW)
    assert cancelled.status == "cancelled" and not cancelled.funded
    assert first_waiting.status == "registered" and first_waiting.funded
    assert second_waiting.status == "waitlisted" and workshop.waitlist_position(second_waiting) == 1
    assert [type(e) for e in events] == [RegistrationCancelled, RegistrationPromoted]
    assert (events[1].registration_id, events[1].funded) == (first_waiting.id, True)


def test_when_a_funded_delegate_cancels_the_city_s_next_seated_delegate_becomes_funded() -> None:
    workshop, oslo = event(capacity=5, quota=1), member()
    funded, _ = register(workshop, oslo, "A")
    self_funded, _ = register(workshop, oslo, "B")
    assert not self_funded.funded
    _, events = workshop.cancel_registration(funded.id, TODAY, NOW)
    assert self_funded.funded
    assert [type(e) for e in events] == [RegistrationCancelled, RegistrationFundingChanged]
    assert (events[1].registration_id, events[1].funded) == (self_funded.id, True)


def test_a_promoted_delegate_is_funded_only_within_the_city_quota() -> None:
    workshop, oslo = event(capacity=2, quota=1), member()
    first, _ = register(workshop, oslo, "A")
    other, _ = register(workshop, member("Ghent"), "B")
    waiting, _ = register(workshop, oslo, "C")
    _, events = workshop.cancel_registration(other.id, TODAY, NOW)
    assert waiting.status == "registered" and not waiting.funded and first.funded
    promoted = [e for e in events if isinstance(e, RegistrationPromoted)]
    assert [(e.registration_id, e.funded) for e in promoted] == [(waiting.id, False)]
    assert not [e for e in events if isinstance(e, RegistrationFundingChanged)]


def test_cancelling_a_waitlisted_registration_frees_no_seat() -> None:
    workshop = event(capacity=1)
    register(workshop, member(), "A")
    waiting, _ = register(workshop, member(), "B")
    _, events = workshop.cancel_registration(waiting.id, TODAY, NOW)
    assert [type(e) for e in events] == [RegistrationCancelled] and workshop.seats_left == 0


def test_the_same_delegate_cannot_register_twice_but_may_again_after_cancelling() -> None:
    workshop, oslo = event(capacity=5), member()
    first, _ = register(workshop, oslo, "Ingrid")
    with pytest.raises(Conflict, match="ingrid@example.org is already registered"):
        workshop.register(oslo.city_id, oslo, "Ingrid B.", "  INGRID@example.org ", TODAY, NOW)
    workshop.cancel_registration(first.id, TODAY, NOW)
    again, _ = register(workshop, oslo, "Ingrid")
    assert again.status == "registered" and again.id != first.id


def test_a_city_events_has_not_heard_of_gets_a_retryable_answer() -> None:
    workshop = event()
    with pytest.raises(NotYetKnown, match="retry in a few seconds"):
        workshop.register(uuid4(), None, "Ingrid", "ingrid@example.org", TODAY, NOW)
    assert workshop.registrations == [] and workshop.last_sequence == 0


def test_a_city_that_left_is_refused_for_good() -> None:
    workshop, oslo = event(), member()
    oslo.left(date(2027, 1, 1))
    with pytest.raises(Conflict, match="Oslo withdrew from the network effective 2027-01-01, so it is not a member on today") as refused:
        register(workshop, oslo, "Ingrid")
    assert refused.value.code == "not_a_member"
    known_only_as_left = MemberCity(uuid4(), left_on=date(2027, 1, 1))
    with pytest.raises(Conflict, match="withdrew") as refused:
        register(workshop, known_only_as_left, "Sven")
    assert refused.value.code == "not_a_member"
    assert workshop.registrations == []


def test_an_applicant_city_gets_a_final_refusal_that_says_applicant() -> None:
    workshop, applicant = event(), MemberCity(uuid4(), "Ghent", european=True, country="BE", applied_on=date(2026, 11, 2))
    with pytest.raises(Conflict, match="Ghent is an applicant, not a member of the network") as refused:
        register(workshop, applicant, "Pieter")
    assert refused.value.code == "not_a_member" and not isinstance(refused.value, NotYetKnown)
    assert workshop.registrations == [] and workshop.last_sequence == 0


def test_a_city_withdrawing_later_is_a_member_up_to_and_including_its_effective_date() -> None:
    # The event runs 2027-03-10 to 2027-03-11; the withdrawal is known on 2027-01-15, effective later.
    until_first_day, until_before = member("Oslo"), member("Ghent")
    until_first_day.left(date(2027, 3, 10))
    until_before.left(date(2027, 3, 9))
    assert register(event(), until_first_day, "Ingrid")[0].status == "registered"
    with pytest.raises(Conflict, match="effective 2027-03-09, so it is not a member on the event's first day, 2027-03-10"):
        register(event(), until_before, "Pieter")
    assert until_first_day.member_on(date(2027, 3, 10)) and not until_first_day.member_on(date(2027, 3, 11))


def test_a_city_that_joined_after_the_event_began_was_not_a_member_on_its_first_day() -> None:
    under_way = event(starts_on=date(2027, 1, 10), ends_on=date(2027, 1, 20))
    with pytest.raises(Conflict, match="joined the network on 2027-01-12, so it was not yet a member on the event's first day"):
        register(under_way, member(joined_on=date(2027, 1, 12)), "Late joiner")


def test_a_corrected_join_date_moves_membership() -> None:
    oslo = member(joined_on=date(2027, 1, 1))
    oslo.join_date_corrected(date(2026, 12, 1), european=True)
    assert oslo.member_on(date(2026, 12, 1)) and not oslo.member_on(date(2026, 11, 30))


def test_a_join_older_than_a_known_departure_changes_nothing_but_a_later_one_readmits() -> None:
    city = MemberCity(uuid4(), left_on=date(2027, 1, 1))
    city.joined("Oslo", "NO", True, date(2026, 3, 15))
    assert not city.member_on(date(2026, 6, 1))
    city.joined("Oslo", "NO", True, date(2027, 6, 1))
    assert city.member_on(date(2027, 6, 1)) and city.left_on is None


def test_registration_is_open_until_the_event_s_last_day() -> None:
    workshop = event(starts_on=date(2027, 3, 10), ends_on=date(2027, 3, 11))
    assert workshop.registration_open(date(2027, 3, 11)) and not workshop.registration_open(date(2027, 3, 12))
    assert register(workshop, member(), "On the last day", today=date(2027, 3, 11))[0].status == "registered"
    with pytest.raises(Conflict, match="closed after its last day, 2027-03-11"):
        register(workshop, member(), "Too late", today=date(2027, 3, 12))


def test_nobody_registers_for_or_cancels_at_a_cancelled_event() -> None:
    workshop, oslo = event(), member()
    registration, _ = register(workshop, oslo, "Ingrid")
    assert isinstance(workshop.cancel(TODAY), WorkshopCancelled)
    with pytest.raises(Conflict, match="was cancelled on 2027-01-15"):
        register(workshop, oslo, "Sven")
    with pytest.raises(Conflict, match="was cancelled"):
        workshop.cancel_registration(registration.id, TODAY, NOW)
    with pytest.raises(Conflict, match="was cancelled"):
        workshop.cancel(TODAY)
    assert registration.status == "registered"  # kept for the record; WorkshopCancelled voids it


def test_an_event_that_took_place_can_be_neither_cancelled_nor_rescheduled() -> None:
    workshop = event(starts_on=date(2027, 1, 5), ends_on=date(2027, 1, 6))
    with pytest.raises(Conflict, match="already took place"):
        workshop.cancel(TODAY)
    with pytest.raises(Conflict, match="already took place"):
        workshop.reschedule(date(2027, 2, 1), date(2027, 2, 2), None, TODAY)


def test_cancelling_twice_or_an_unknown_registration_is_refused() -> None:
    workshop = event()
    registration, _ = register(workshop, member(), "Ingrid")
    workshop.cancel_registration(registration.id, TODAY, NOW)
    with pytest.raises(Conflict, match="already cancelled on 2027-01-15"):
        workshop.cancel_registration(registration.id, TODAY, NOW)
    with pytest.raises(NotFound):
        workshop.cancel_registration(uuid4(), TODAY, NOW)


def test_an_event_is_never_moved_into_the_past_nor_to_end_before_it_starts() -> None:
    workshop = event()
    with pytest.raises(Invalid, match="cannot be moved into the past") as refused:
        workshop.reschedule(date(2027, 1, 10), date(2027, 1, 14), None, TODAY)
    assert (refused.value.code, refused.value.field) == ("in_the_past", "ends_on")
    with pytest.raises(Invalid, match="before it starts"):
        workshop.reschedule(date(2027, 4, 15), date(2027, 4, 14), None, TODAY)
    assert workshop.starts_on == date(2027, 3, 10)
    assert workshop.reschedule(date(2027, 1, 10), TODAY, None, TODAY)  # ending today is not the past


def test_rescheduling_moves_the_dates_and_keeps_the_registrations() -> None:
    workshop = event()
    registration, _ = register(workshop, member(), "Ingrid")
    [moved] = workshop.reschedule(date(2027, 4, 14), date(2027, 4, 15), None, TODAY)
    assert isinstance(moved, WorkshopRescheduled) and (moved.starts_on, moved.ends_on) == (date(2027, 4, 14), date(2027, 4, 15))
    assert registration.status == "registered"
    assert workshop.reschedule(date(2027, 4, 14), date(2027, 4, 15), None, TODAY) == []  # nothing changed, nothing said


def test_rescheduling_below_the_seats_taken_is_refused_and_changes_nothing() -> None:
    workshop = event(capacity=3)
    for name in ("A", "B", "C"):
        register(workshop, member(), name)
    with pytest.raises(Conflict, match="3 delegates hold seats"):
        workshop.reschedule(date(2027, 4, 14), date(2027, 4, 15), 2, TODAY)
    assert (workshop.capacity, workshop.starts_on) == (3, date(2027, 3, 10))
    assert workshop.reschedule(workshop.starts_on, workshop.ends_on, 3, TODAY) == []


def test_a_larger_capacity_seats_the_waiting_list_first_come_first_served() -> None:
    workshop = event(capacity=1)
    register(workshop, member(), "A")
    waiting = [register(workshop, member(), name)[0] for name in ("B", "C", "D")]
    events = workshop.reschedule(workshop.starts_on, workshop.ends_on, 3, TODAY)
    assert [r.status for r in waiting] == ["registered", "registered", "waitlisted"]
    assert [(type(e), e.registration_id) for e in events] == [(RegistrationPromoted, waiting[0].id), (RegistrationPromoted, waiting[1].id)]


def test_a_newcomer_never_overtakes_the_waiting_list() -> None:
    workshop = event(capacity=1)
    seated, _ = register(workshop, member(), "A")
    waiting, _ = register(workshop, member(), "B")
    workshop.cancel_registration(seated.id, TODAY, NOW)
    newcomer, _ = register(workshop, member(), "C")
    assert waiting.status == "registered" and newcomer.status == "waitlisted"


def test_registrations_are_numbered_in_arrival_order() -> None:
    workshop = event(capacity=1)
    registrations = [register(workshop, member(), name)[0] for name in "ABC"]
    assert [r.sequence for r in registrations] == [1, 2, 3] and workshop.last_sequence == 3
    assert all(r.registered_at == NOW for r in registrations)
