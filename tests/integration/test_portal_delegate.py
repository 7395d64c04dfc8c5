"""The delegate's pages over events and travel running in this process, on SQLite and PostgreSQL:
register (or the waiting list), claim with a receipt file priced before it is sent, the claim's
page, its receipt as a download, refusals next to their fields. What travel learns from events
over Kafka is handed to its consumer from events' outbox, as the relay would."""

import itertools
import re
from datetime import date, timedelta
from uuid import uuid4

import pytest
from aiokafka.structs import ConsumerRecord
from sqlalchemy import select

from contracts.events import CityJoined, ReimbursementRejected
from services.common.api import today
from services.common.db import OutboxMessage
from services.events.app import build_app as build_events
from services.events.settings import EventsSettings
from services.travel.app import build_app as build_travel
from services.travel.settings import TravelSettings
from tests.integration.test_travel_claims import NO_BROKER, record
from tests.portal import portal_over, text_of
from tests.support import running

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + b"\x00" * 64
offsets = itertools.count(10_000)


class Stage:
    """Events and travel, and the portal over them."""

    def __init__(self, events, travel, events_app, travel_app):
        self.events, self.travel, self.events_app, self.travel_app = events, travel, events_app, travel_app
        self.forwarded = 0

    async def city(self, name: str = "Ghent", country: str = "BE") -> str:
        city_id = uuid4()
        joined = CityJoined(city_id=city_id, name=name, country=country, european=True, joined_on=date(2024, 5, 1))
        for app in (self.events_app, self.travel_app):
            outcome = await app.state.runtime.consumer.apply([record(joined)])
            assert outcome.dead_lettered == []
        return str(city_id)

    async def event(self, title: str = "Intercultural public services", capacity: int = 10) -> dict:
        answer = await self.events.post("/workshops", json={
            "title": title, "kind": "thematic_workshop", "host_city": "Lisbon", "host_country": "PT",
            "starts_on": today().isoformat(), "ends_on": (today() + timedelta(days=1)).isoformat(), "capacity": capacity})
        assert answer.status_code == 201, answer.text
        return answer.json()

    async def relay(self) -> None:
        """What events published since last time, to travel's consumer."""
        async with self.events_app.state.runtime.sessions() as session:
            rows = list(await session.scalars(select(OutboxMessage).where(OutboxMessage.position > self.forwarded)
                                              .order_by(OutboxMessage.position)))
        if rows:
            records = [ConsumerRecord(row.topic, 0, next(offsets), 0, 0, (row.key or "").encode(), row.value, None, 0, 0,
                                      [(name, text.encode()) for name, text in row.headers]) for row in rows]
            outcome = await self.travel_app.state.runtime.consumer.apply(records)
            assert outcome.dead_lettered == []
            self.forwarded = rows[-1].position


@pytest.fixture
async def stage(databases):
    events_app = build_events(EventsSettings(**NO_BROKER, **databases("events")))
    travel_app = build_travel(TravelSettings(**NO_BROKER, **databases("travel")))
    async with running(events_app) as events, running(travel_app) as travel:
        assert (await travel.put("/allowance-rates/PT", json={"eur_per_night": "155.00", "valid_from": "2025-01-01"})).status_code == 200
        on = today().replace(day=1).isoformat()
        assert (await travel.put("/exchange-rates/NOK", json={"units_per_eur": "11.4500", "on": on})).status_code == 200
        yield Stage(events, travel, events_app, travel_app)


def hidden_fields(html: str) -> dict[str, str]:
    return {name: value.replace("&amp;", "&") for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html)}


def claim_form(registration: dict, workshop: dict, **lines: str) -> dict[str, str]:
    return {"registration_id": registration["id"], "workshop_id": workshop["id"], "nights": "1", "travel_days_without_night": "1",
            "lines[0].kind": "transport", "lines[0].amount": "4580.00", "lines[0].currency": "NOK",
            "lines[0].spent_on": today().isoformat(), **{f"lines[1].{k}": "" for k in ("kind", "amount", "spent_on", "receipt")},
            "lines[1].currency": "EUR", **lines}


async def registered(stage: Stage, portal, workshop: dict) -> dict:
    answer = await portal.post(f"/delegate/events/{workshop['id']}/registrations", data={"delegate_name": "Ana Lopes"})
    assert answer.status_code == 303 and answer.headers["location"] == "/delegate/registrations", answer.text
    [registration] = (await stage.events.get(f"/workshops/{workshop['id']}/registrations")).json()
    await stage.relay()
    return registration


async def test_a_delegate_registers_sends_a_priced_claim_with_a_receipt_and_downloads_it(stage) -> None:
    city, workshop = await stage.city(), await stage.event()
    async with portal_over({"events": stage.events_app, "travel": stage.travel_app}) as portal:
        portal.sign_in("delegate", username="ana", email="ana@ghent.be", city_id=city)
        events = await portal.get("/delegate/events")
        assert events.status_code == 200 and workshop["title"] in text_of(events.text)
        assert 'data-testid="not-a-member"' not in events.text
        registration = await registered(stage, portal, workshop)
        assert (registration["delegate_email"], registration["city_id"], registration["status"]) == ("ana@ghent.be", city, "registered")

        mine = await portal.get("/delegate/registrations")
        assert "ana is registered." not in mine.text and "Ana Lopes is registered." in text_of(mine.text)  # the note
        assert "Registered, funded" in text_of(mine.text) and "Claim travel costs" in mine.text

        form = await portal.get(f"/delegate/claims/new?workshop_id={workshop['id']}&registration_id={registration['id']}")
        assert form.status_code == 200 and form.text.count("<fieldset") == 4

        quote = await portal.post("/delegate/claims/quote", data=claim_form(registration, workshop),
                                  files={"lines[0].file": ("ticket.png", PNG, "image/png")})
        assert quote.status_code == 200, text_of(quote.text)
        text = text_of(quote.text)
        # 4580.00 NOK / 11.45 = 400.00; one night 155.00 + a travel day 77.50 = 232.50
        assert "€400.00" in text and "€232.50" in text and "€632.50" in text and "Send the claim" in text
        assert (await stage.travel.get("/claims")).json() == []  # a quote stores nothing
        carried = hidden_fields(quote.text)
        assert carried["lines[0].receipt_id"] and carried["lines[0].receipt_name"] == "ticket.png"
        assert "lines[1].kind" not in carried  # the empty row is gone

        sent = await portal.post("/delegate/claims", data=carried)
        assert sent.status_code == 303, text_of(sent.text)
        [claim] = (await stage.travel.get("/claims")).json()
        assert sent.headers["location"] == f"/delegate/claims/{claim['id']}"
        assert claim["lines"][0]["receipt_id"] == carried["lines[0].receipt_id"] and claim["coe_funded"] == "632.50"

        page = await portal.get(sent.headers["location"])
        text = text_of(page.text)
        assert "Your claim is sent to finance." in text and "Submitted" in text and "Finance has not decided yet." in text
        assert claim["lines"][0]["explanation"] in page.text
        [link] = re.findall(r'href="(/delegate/claims/[^"]+/receipts/[^"]+)"', page.text)
        download = await portal.get(link)
        assert download.status_code == 200 and download.content == PNG
        assert download.headers["content-type"] == "image/png" and download.headers["x-content-type-options"] == "nosniff"
        assert download.headers["content-disposition"].startswith("attachment")
        other = await portal.get(f"/delegate/claims/{claim['id']}/receipts/{uuid4()}")
        assert other.status_code == 404

        portal.sign_in("delegate", username="ana", email="ana@ghent.be", city_id=city, lang="fr")
        page = await portal.get(f"/delegate/claims/{claim['id']}")
        text = text_of(page.text)
        assert 'lang="fr"' in page.text and "Soumise" in text and "632,50 €" in text
        # each line said in French from its figures, with its rule; travel's own sentence kept aside (marked English)
        assert "Financé par le Conseil de l’Europe : délégué·e d’une ville membre européenne" in text
        assert "4 580,00 NOK dépensés le" in text and "convertis au taux de 11,45 NOK pour un euro" in text and ": 400,00 €." in text
        assert "Indemnité journalière de 232,50 €, au barème en vigueur depuis le" in text
        assert f'<span lang="en">{claim["lines"][0]["explanation"]}</span>' in page.text


async def test_a_wrong_file_or_a_too_large_one_is_refused_next_to_its_line_and_nothing_is_stored(stage) -> None:
    city, workshop = await stage.city(), await stage.event()
    async with portal_over({"events": stage.events_app, "travel": stage.travel_app}, receipt_max_bytes=1000) as portal:
        portal.sign_in("delegate", username="ana", email="ana@ghent.be", city_id=city)
        registration = await registered(stage, portal, workshop)
        refused = await portal.post("/delegate/claims/quote", data=claim_form(registration, workshop),
                                    files={"lines[0].file": ("ticket.png", b"<html><script>alert(1)</script></html>", "image/png")})
        assert refused.status_code == 422
        assert 'data-testid="error-lines[0].file"' in refused.text
        assert "send a PDF, JPEG or PNG file" in text_of(refused.text)
        assert 'value="4580.00"' in refused.text  # the form as it was filled

        too_large = await portal.post("/delegate/claims/quote", data=claim_form(registration, workshop),
                                      files={"lines[0].file": ("ticket.png", PNG + b"\x00" * 2000, "image/png")})
        assert too_large.status_code == 422 and "The file is too large" in text_of(too_large.text)
        way_too_large = await portal.post("/delegate/claims/quote", data=claim_form(registration, workshop),
                                          files={"lines[0].file": ("ticket.png", PNG + b"\x00" * 1_200_000, "image/png")})
        assert way_too_large.status_code == 413  # refused before the form is read

        portal.sign_in("delegate", username="ana", email="ana@ghent.be", city_id=city, lang="fr")
        refused = await portal.post("/delegate/claims/quote", data=claim_form(registration, workshop),
                                    files={"lines[0].file": ("ticket.pdf", b"not a pdf", "application/pdf")})
        assert refused.status_code == 422 and "PDF, JPEG ou PNG" in text_of(refused.text)
        assert (await stage.travel.get("/claims")).json() == []


async def test_a_refused_field_is_shown_next_to_it_and_an_undecided_claim_is_amended(stage) -> None:
    city, workshop = await stage.city(), await stage.event()
    async with portal_over({"events": stage.events_app, "travel": stage.travel_app}) as portal:
        portal.sign_in("delegate", username="ana", email="ana@ghent.be", city_id=city)
        registration = await registered(stage, portal, workshop)
        wrong = await portal.post("/delegate/claims/quote", data=claim_form(registration, workshop, **{"lines[0].amount": "lots"}))
        assert wrong.status_code == 422 and 'data-testid="error-lines[0].amount"' in wrong.text

        quote = await portal.post("/delegate/claims/quote", data=claim_form(registration, workshop))
        assert quote.status_code == 200, text_of(quote.text)
        changed = await portal.post("/delegate/claims/form", data=hidden_fields(quote.text))  # back to the form
        assert changed.status_code == 200 and 'value="4580.00"' in changed.text
        sent = await portal.post("/delegate/claims", data=hidden_fields(quote.text))
        claim_url = sent.headers["location"]

        page = await portal.get(claim_url)
        assert "Amend the claim" in page.text
        # the amendment starts from the claim as it stands: its nights and travel days too
        assert 'id="f-nights" name="nights" type="number" value="1"' in page.text
        assert 'name="travel_days_without_night" type="number" value="1"' in page.text
        amended = await portal.post(f"{claim_url}/amendment", data={
            "nights": "2", "travel_days_without_night": "0", "lines[0].kind": "visa", "lines[0].amount": "60.00",
            "lines[0].currency": "EUR", "lines[0].spent_on": today().isoformat()})
        assert amended.status_code == 303 and amended.headers["location"] == claim_url
        [claim] = (await stage.travel.get("/claims")).json()
        assert (claim["amendments"], claim["claimed"]) == (1, "370.00")  # 60.00 + 2 x 155.00
        listed = await portal.get("/delegate/claims?status=submitted")
        assert claim["id"] in listed.text and workshop["title"] in listed.text
        assert 'name="delegate_email"' not in listed.text  # a delegate sees only their own: no delegate filter
        assert claim["id"] not in (await portal.get("/delegate/claims?status=approved")).text

        # another city's delegate sees neither the claim nor its page
        portal.sign_in("delegate", username="bo", email="bo@ghent.be", city_id=await stage.city("Oslo", "NO"))
        assert (await portal.get(claim_url)).status_code == 404
        assert claim["id"] not in (await portal.get("/delegate/claims")).text


async def test_a_coordinator_registers_their_delegates_the_waiting_list_shows_and_a_registration_is_cancelled(stage) -> None:
    city, workshop = await stage.city(), await stage.event(capacity=1)
    async with portal_over({"events": stage.events_app, "travel": stage.travel_app}) as portal:
        portal.sign_in("city_coordinator", username="cora", email="cora@ghent.be", city_id=city)
        page = await portal.get(f"/delegate/events/{workshop['id']}")
        assert 'name="delegate_email"' in page.text  # a coordinator names the delegate
        for name, email in (("Ana Lopes", "ana@ghent.be"), ("Bram Peeters", "bram@ghent.be")):
            answer = await portal.post(f"/delegate/events/{workshop['id']}/registrations",
                                       data={"delegate_name": name, "delegate_email": email})
            assert answer.status_code == 303
        mine = text_of((await portal.get("/delegate/registrations")).text)
        assert "The event is full: Bram Peeters is on the waiting list (position 1)." in mine
        assert "On the waiting list (position 1)" in mine and "Registered, funded" in mine

        refused = await portal.post(f"/delegate/events/{workshop['id']}/registrations",
                                    data={"delegate_name": "Ana", "delegate_email": "ana@ghent.be"})
        assert refused.status_code == 409 and 'data-testid="refused"' in refused.text  # already registered

        listed = (await stage.events.get(f"/workshops/{workshop['id']}/registrations")).json()
        [ana] = [r for r in listed if r["delegate_name"] == "Ana Lopes"]
        cancelled = await portal.post(f"/delegate/events/{workshop['id']}/registrations/{ana['id']}/cancellation")
        assert cancelled.status_code == 303
        mine = text_of((await portal.get("/delegate/registrations")).text)
        assert "The registration of Ana Lopes is cancelled." in mine and "On the waiting list" not in mine  # Bram got the seat

        portal.sign_in("delegate", username="x", email="x@else.example", city_id=await stage.city("Oslo", "NO"))
        assert "Bram Peeters" not in (await portal.get("/delegate/registrations")).text


async def test_a_coordinator_claims_for_their_citys_delegate_with_the_delegates_receipt(stage) -> None:
    city, workshop = await stage.city(), await stage.event()
    async with portal_over({"events": stage.events_app, "travel": stage.travel_app}) as portal:
        portal.sign_in("city_coordinator", username="cora", email="cora@ghent.be", city_id=city)
        answer = await portal.post(f"/delegate/events/{workshop['id']}/registrations",
                                   data={"delegate_name": "Ana Lopes", "delegate_email": "ana@ghent.be"})
        assert answer.status_code == 303
        [registration] = (await stage.events.get(f"/workshops/{workshop['id']}/registrations")).json()
        await stage.relay()
        form = await portal.get(f"/delegate/claims/new?workshop_id={workshop['id']}&registration_id={registration['id']}")
        assert hidden_fields(form.text)["delegate_email"] == "ana@ghent.be"
        quote = await portal.post("/delegate/claims/quote", data={**claim_form(registration, workshop), **hidden_fields(form.text)},
                                  files={"lines[0].file": ("ticket.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")})
        assert quote.status_code == 200, text_of(quote.text)
        sent = await portal.post("/delegate/claims", data=hidden_fields(quote.text))
        assert sent.status_code == 303
        [claim] = (await stage.travel.get("/claims")).json()
        meta = (await stage.travel.get(f"/receipts/{claim['lines'][0]['receipt_id']}/meta")).json()
        assert (claim["delegate_email"], meta["content_type"]) == ("ana@ghent.be", "application/pdf")
        page = await portal.get(sent.headers["location"])
        [link] = re.findall(r'href="(/delegate/claims/[^"]+/receipts/[^"]+)"', page.text)
        download = await portal.get(link)
        assert download.headers["content-type"] == "application/pdf" and download.content.startswith(b"%PDF")
        mine = await portal.get("/delegate/claims?delegate_email=ana@ghent.be")
        assert 'name="delegate_email"' in mine.text and claim["id"] in mine.text
        assert claim["id"] not in (await portal.get("/delegate/claims?delegate_email=bram@ghent.be")).text


async def test_a_rejected_claim_is_resubmitted_as_a_new_version_and_an_unknown_city_is_told_it_cannot_register(stage) -> None:
    city, workshop = await stage.city(), await stage.event()
    async with portal_over({"events": stage.events_app, "travel": stage.travel_app}) as portal:
        portal.sign_in("delegate", username="ana", email="ana@ghent.be", city_id=city)
        registration = await registered(stage, portal, workshop)
        quote = await portal.post("/delegate/claims/quote", data=claim_form(registration, workshop))
        sent = await portal.post("/delegate/claims", data=hidden_fields(quote.text))
        claim_id = sent.headers["location"].rsplit("/", 1)[1]
        rejected = ReimbursementRejected(claim_id=claim_id, reason="the ticket is for another trip")
        assert (await stage.travel_app.state.runtime.consumer.apply([record(rejected)])).dead_lettered == []

        page = await portal.get(sent.headers["location"])
        text = text_of(page.text)
        assert "Rejected" in text and "the ticket is for another trip" in text and "Resubmit the claim" in text
        assert "Amend the claim" not in text
        again = await portal.post(f"/delegate/claims/{claim_id}/resubmission", data={
            "nights": "1", "travel_days_without_night": "0", "lines[0].kind": "visa", "lines[0].amount": "60.00",
            "lines[0].currency": "EUR", "lines[0].spent_on": today().isoformat()})
        assert again.status_code == 303, text_of(again.text)
        new_id = again.headers["location"].rsplit("/", 1)[1]
        assert new_id != claim_id
        page = await portal.get(again.headers["location"])
        assert "Your claim is resubmitted as version 2." in text_of(page.text) and f'href="/delegate/claims/{claim_id}"' in page.text
        listed = (await portal.get("/delegate/claims?status=rejected")).text
        assert claim_id in listed and new_id not in listed

        portal.sign_in("delegate", username="zoe", email="zoe@nowhere.example", city_id=uuid4())
        assert 'data-testid="not-a-member"' in (await portal.get("/delegate/events")).text
