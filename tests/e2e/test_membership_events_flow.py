"""Membership and events over the real broker: a city joins in membership and its delegate can
register in events; it withdraws and a new registration is refused. Events learns both facts only
from `CityJoined` / `CityLeft` on Kafka."""

import json
from datetime import timedelta

from services.common.api import today
from tests.support import eventually, header, read_topic, running

SOON = today() + timedelta(days=30)
WORKSHOP = {
    "title": "Anti-rumour strategies", "kind": "thematic_workshop", "host_city": "Barcelona", "host_country": "ES",
    "starts_on": str(SOON), "ends_on": str(SOON + timedelta(days=1)), "capacity": 1,
}


async def register(events, workshop_id: str, city_id: str, who: str):
    return await events.post(f"/workshops/{workshop_id}/registrations",
                             json={"city_id": city_id, "delegate_name": who, "delegate_email": f"{who.lower()}@gent.be"})


async def test_a_city_joins_its_delegate_registers_it_withdraws_and_a_new_registration_is_refused(platform) -> None:
    async with running(platform.membership()) as membership, running(platform.events()) as events:
        workshop = (await events.post("/workshops", json=WORKSHOP)).json()
        city = (await membership.post("/cities", json={"name": "Ghent", "country": "BE", "population": 265_000,
                                                       "foreign_born_share": "0.22"})).json()
        await membership.post(f"/cities/{city['id']}/statement-of-intent", json={"signed_on": "2026-02-01"})

        # The delegate is quicker than the news: no CityJoined exists yet, so events cannot know the city.
        early = await register(events, workshop["id"], city["id"], "Pieter")
        assert early.status_code == 409 and early.json()["retryable"] is True and early.headers["Retry-After"]

        joined = await membership.post(f"/cities/{city['id']}/financial-agreement", json={"signed_on": "2026-03-01"})
        assert joined.json()["status"] == "member"
        answers = []

        async def registered():
            answers.append(await register(events, workshop["id"], city["id"], "Pieter"))
            return answers[-1].status_code == 201

        await eventually(registered, what="events learning that Ghent joined, and the delegate registering")
        # every answer before CityJoined was consumed said "retry", none was a silent accept or a refusal
        assert all(a.status_code == 409 and a.json()["retryable"] for a in answers[:-1])
        seat = answers[-1].json()
        assert (seat["status"], seat["funded"], seat["city_name"]) == ("registered", True, "Ghent")

        # A member up to and including its effective date: effective yesterday, it has left today.
        left = await membership.post(f"/cities/{city['id']}/withdrawal", json={"effective_on": str(today() - timedelta(days=1))})
        assert left.json()["status"] == "left"

        async def knows_it_left():
            return (await events.get(f"/member-cities/{city['id']}")).json()["member"] is False

        await eventually(knows_it_left, what="events learning that Ghent left")
        refused = await register(events, workshop["id"], city["id"], "Marie")
        assert refused.status_code == 403 and refused.json()["retryable"] is False
        assert "Ghent is not a member" in refused.json()["detail"]
        listed = (await events.get(f"/workshops/{workshop['id']}/registrations")).json()
        assert [r["delegate_name"] for r in listed] == ["Pieter"]  # the earlier registration stays

        cities = await read_topic(platform.bootstrap, platform.topic("icc.membership.cities"), at_least=3)
        assert [header(r, "ce_type") for r in cities] == ["CityApplied", "CityJoined", "CityLeft"]
        assert {r.key.decode() for r in cities} == {city["id"]}


async def test_the_waiting_list_moving_up_reaches_kafka_in_order_keyed_by_the_event(platform) -> None:
    async with running(platform.membership()) as membership, running(platform.events()) as events:
        workshop = (await events.post("/workshops", json=WORKSHOP)).json()
        city_ids = []
        for name, country in (("Ghent", "BE"), ("Lublin", "PL")):
            city = (await membership.post("/cities", json={"name": name, "country": country, "population": 200_000})).json()
            await membership.post(f"/cities/{city['id']}/statement-of-intent", json={"signed_on": "2026-02-01"})
            await membership.post(f"/cities/{city['id']}/financial-agreement", json={"signed_on": "2026-02-01"})
            city_ids.append(city["id"])

        async def known():
            return [(await events.get(f"/member-cities/{c}")).status_code for c in city_ids] == [200, 200]

        await eventually(known, what="events learning both members")
        seated = (await register(events, workshop["id"], city_ids[0], "Pieter")).json()
        waiting = (await register(events, workshop["id"], city_ids[1], "Ania")).json()
        assert (seated["status"], waiting["status"]) == ("registered", "waitlisted")
        assert (await events.delete(f"/workshops/{workshop['id']}/registrations/{seated['id']}")).status_code == 200

        records = await read_topic(platform.bootstrap, platform.topic("icc.events.workshops"), at_least=5)
        assert [header(r, "ce_type") for r in records] == [
            "WorkshopScheduled", "DelegateRegistered", "DelegateRegistered", "RegistrationCancelled", "RegistrationPromoted",
        ]
        assert {r.key.decode() for r in records} == {workshop["id"]} and len({r.partition for r in records}) == 1
        promoted = json.loads(records[-1].value)
        assert promoted == {"registration_id": waiting["id"], "workshop_id": workshop["id"], "city_id": city_ids[1], "funded": True}
