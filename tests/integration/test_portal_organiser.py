"""The organiser's pages over the events service (in this process, SQLite and PostgreSQL): scheduling
through the form (and a refusal next to its field), the list and its filters, rescheduling,
cancelling after a confirmation, who is coming (funded, self-funded, waiting) and the CSV."""

import csv
import io
import itertools
from datetime import date, timedelta
from uuid import uuid4

import pytest
from aiokafka.structs import ConsumerRecord

from contracts.envelope import to_headers, to_value, wrap
from contracts.events import CityJoined
from services.common.fields import today
from services.events.app import build_app
from services.events.settings import EventsSettings
from tests.portal import portal_over, text_of
from tests.support import running

NO_BROKER = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}  # these tests never reach Kafka
offsets = itertools.count()
SOON = today() + timedelta(days=30)


@pytest.fixture
async def stack(databases):
    """The events service (`staff`: its API with every role) and the portal over it."""
    app = build_app(EventsSettings(**NO_BROKER, **databases("events")))
    async with running(app) as staff, portal_over({"events": app}) as portal:
        yield staff, portal, app.state.runtime


async def member_city(runtime, name: str = "Oslo") -> str:
    """Membership's CityJoined, through events' own consumer (a record built by hand, no broker)."""
    city_id = uuid4()
    envelope = wrap(CityJoined(city_id=city_id, name=name, country="NO", european=True, joined_on=date(2026, 3, 15)),
                    service="membership")
    record = ConsumerRecord("icc.membership.cities", 0, next(offsets), 0, 0, envelope.key.encode(), to_value(envelope),
                            None, 0, 0, to_headers(envelope))
    assert (await runtime.consumer.apply([record])).applied == 1
    return str(city_id)


def event_form(**changes) -> dict:
    return {"title": "Anti-rumour strategies", "kind": "thematic_workshop", "host_city": "Lisbon", "host_country": "PT",
            "starts_on": str(SOON), "ends_on": str(SOON + timedelta(days=1)), "capacity": "2",
            "funded_quota_per_city": "1", **changes}


async def scheduled(portal, **changes) -> str:
    answer = await portal.form("/organiser/events", event_form(**changes))
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


async def test_an_organiser_schedules_an_event_through_the_form_and_finds_it_in_the_list(stack) -> None:
    staff, portal, _ = stack
    portal.sign_in("organiser", username="olga")
    form = await portal.get("/organiser/events/new")
    assert form.status_code == 200 and 'name="funded_quota_per_city"' in form.text and 'value="PT"' in form.text

    where = await scheduled(portal)
    event_id = where.rsplit("/", 1)[1]
    [event] = (await staff.get("/workshops")).json()  # written by the events service, as the form said
    assert (event["id"], event["host_country"], event["capacity"], event["funded_quota_per_city"]) == (event_id, "PT", 2, 1)

    page = text_of((await portal.get(where)).text)
    assert "“Anti-rumour strategies” is scheduled" in page  # the note after the write
    assert "Lisbon, Portugal" in page and "Thematic workshop" in page and "Nobody has registered yet." in page

    listed = text_of((await portal.get("/organiser/events")).text)
    assert "Anti-rumour strategies" in listed
    for filters in ({"kind": "study_visit"}, {"when": "past"}, {"status": "cancelled"}):
        other = await portal.get("/organiser/events", params=filters)
        assert "Anti-rumour strategies" not in other.text and 'data-testid="no-events"' in other.text, filters
    assert "Anti-rumour strategies" in (await portal.get("/organiser/events", params={"kind": "thematic_workshop", "when": "all"})).text


async def test_a_refused_schedule_shows_the_reason_next_to_the_field_and_keeps_what_was_typed(stack) -> None:
    staff, portal, _ = stack
    portal.sign_in("organiser", username="olga")
    answer = await portal.form("/organiser/events", event_form(ends_on=str(SOON - timedelta(days=1))))
    assert answer.status_code == 422
    assert 'data-testid="error-ends_on"' in answer.text and "before it starts" in answer.text
    assert 'aria-describedby="f-ends_on-error"' in answer.text  # the message belongs to the field
    assert 'value="Anti-rumour strategies"' in answer.text
    assert (await staff.get("/workshops")).json() == []  # nothing written

    portal.sign_in("organiser", username="olga", lang="fr")
    missing = await portal.form("/organiser/events", event_form(title=""))
    assert missing.status_code == 422
    assert "Ce champ est obligatoire." in missing.text and 'data-testid="error-title"' in missing.text
    assert "Planifier un événement" in missing.text


async def test_an_organiser_reschedules_and_then_cancels_after_confirming(stack) -> None:
    staff, portal, _ = stack
    portal.sign_in("organiser", username="olga")
    where = await scheduled(portal)
    later = SOON + timedelta(days=14)

    moved = await portal.form(f"{where}/reschedule", {"starts_on": str(later), "ends_on": str(later + timedelta(days=2)),
                                                      "capacity": "5"})
    assert moved.status_code == 303 and moved.headers["location"] == where
    event = (await staff.get(f"/workshops/{where.rsplit('/', 1)[1]}")).json()
    assert (event["starts_on"], event["ends_on"], event["capacity"]) == (str(later), str(later + timedelta(days=2)), 5)
    assert "now runs from" in text_of((await portal.get(where)).text)

    past = await portal.form(f"{where}/reschedule", {"starts_on": "2020-01-01", "ends_on": "2020-01-02", "capacity": ""})
    assert past.status_code == 422
    assert 'data-testid="error-ends_on"' in past.text and "into the past" in past.text
    assert 'value="2020-01-01"' in past.text  # the form as typed

    confirm = await portal.get(f"{where}/cancel")
    assert confirm.status_code == 200 and "Yes, cancel the event" in confirm.text
    assert (await staff.get(f"/workshops/{where.rsplit('/', 1)[1]}")).json()["status"] == "scheduled"  # asking changes nothing
    cancelled = await portal.form(f"{where}/cancel")
    assert cancelled.status_code == 303
    page = await portal.get(where)
    assert "is cancelled" in text_of(page.text) and "Cancelled" in page.text
    assert "/reschedule" not in page.text and f"{where}/cancel" not in page.text  # nothing left to change
    again = await portal.form(f"{where}/cancel")
    assert again.status_code == 409 and 'data-testid="refused"' in again.text


async def test_the_event_page_lists_who_is_coming_funded_or_not_the_waiting_list_and_the_csv(stack) -> None:
    staff, portal, runtime = stack
    oslo, lyon = await member_city(runtime, "Oslo"), await member_city(runtime, "Lyon")
    portal.sign_in("organiser", username="olga")
    where = await scheduled(portal, capacity="3")
    event_id = where.rsplit("/", 1)[1]
    for city, who in ((oslo, "Ingrid Berg"), (oslo, "Ola Nordmann"), (lyon, "Jeanne Martin"), (lyon, "Paul Durand")):
        answer = await staff.post(f"/workshops/{event_id}/registrations", json={
            "city_id": city, "delegate_name": who, "delegate_email": f"{who.split()[0].lower()}@example.org"})
        assert answer.status_code == 201, answer.text

    page = await portal.get(where)
    text = text_of(page.text)
    # seats: Ingrid (Oslo's funded one), Ola (Oslo, beyond its quota), Jeanne (Lyon's funded one); Paul waits
    assert "Ingrid Berg ingrid@example.org Oslo Funded" in text
    assert "Ola Nordmann ola@example.org Oslo Self-funded" in text
    assert "Jeanne Martin jeanne@example.org Lyon Funded" in text
    assert "1 Paul Durand paul@example.org Lyon" in text  # first on the waiting list
    assert "Funded Self-funded Waiting list 2 1 1" in text

    download = await portal.get(f"{where}/participants.csv")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-disposition"].startswith("attachment;")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert [(r["participation"], r["delegate_name"], r["city_name"]) for r in rows] == [
        ("funded", "Ingrid Berg", "Oslo"), ("self_funded", "Ola Nordmann", "Oslo"), ("funded", "Jeanne Martin", "Lyon"),
        ("waitlisted", "Paul Durand", "Lyon")]

    portal.sign_in("organiser", username="olga", lang="fr")
    french = text_of((await portal.get(where)).text)
    assert "Financé Autofinancé Liste d'attente 2 1 1" in french and "Télécharger la liste des participants" in french


async def test_the_secretariat_may_look_but_the_events_service_keeps_scheduling_to_organisers(stack) -> None:
    staff, portal, _ = stack
    portal.sign_in("organiser", username="olga")
    where = await scheduled(portal)
    portal.sign_in("secretariat", username="sam")
    listed = await portal.get("/organiser/events")
    assert listed.status_code == 200 and "Anti-rumour strategies" in listed.text
    assert "/organiser/events/new" not in listed.text  # no button for what the API would refuse
    page = await portal.get(where)
    assert page.status_code == 200 and "/reschedule" not in page.text
    assert (await portal.get(f"{where}/participants.csv")).status_code == 200
    refused = await portal.form("/organiser/events", event_form())
    assert refused.status_code == 403 and 'data-testid="refused"' in refused.text
    assert len((await staff.get("/workshops")).json()) == 1
    missing = await portal.get(f"/organiser/events/{uuid4()}")
    assert missing.status_code == 404 and "no event with id" in missing.text

    portal.sign_in("delegate", username="dora")
    assert (await portal.get("/organiser/events")).status_code == 403
    assert (await portal.get(f"{where}/participants.csv")).status_code == 403


async def test_upcoming_and_past_events_and_a_past_one_cannot_be_changed(stack) -> None:
    _, portal, _ = stack
    portal.sign_in("organiser", username="olga")
    day = timedelta(days=1)
    over = await scheduled(portal, title="Recorded summit", kind="high_level_meeting",
                           starts_on=str(today() - 10 * day), ends_on=str(today() - 9 * day))
    await scheduled(portal, title="Running visit", kind="study_visit", starts_on=str(today() - day), ends_on=str(today() + day))
    await scheduled(portal, title="Coming workshop")

    def titles(html: str) -> list[str]:
        """The events in the list's table (the notes above it name the events just scheduled)."""
        table = html.split('data-testid="events"', 1)[1] if 'data-testid="events"' in html else ""
        return [t for t in ("Recorded summit", "Running visit", "Coming workshop") if t in table]

    assert titles((await portal.get("/organiser/events")).text) == ["Running visit", "Coming workshop"]  # upcoming by default
    assert titles((await portal.get("/organiser/events", params={"when": "past"})).text) == ["Recorded summit"]
    assert len(titles((await portal.get("/organiser/events", params={"when": "all"})).text)) == 3
    assert titles((await portal.get("/organiser/events", params={"when": "all", "kind": "study_visit"})).text) == ["Running visit"]
    paged = await portal.get("/organiser/events", params={"when": "all", "limit": 2})
    assert titles(paged.text) == ["Recorded summit", "Running visit"] and 'rel="next"' in paged.text
    second = await portal.get("/organiser/events", params={"when": "all", "limit": 2, "offset": 2})
    assert titles(second.text) == ["Coming workshop"] and 'rel="prev"' in second.text and 'rel="next"' not in second.text

    page = await portal.get(over)
    assert "Recorded summit" in page.text and "/reschedule" not in page.text and f"{over}/cancel" not in page.text
