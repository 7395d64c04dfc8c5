"""Membership over HTTP against a real database (SQLite and PostgreSQL): the lifecycle and its events
in the outbox, the INDEX (submission, queue, analysis, result and comparison), expert visits."""

import asyncio
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from services.common.api import today
from services.common.db import OutboxMessage
from services.membership import index
from services.membership.app import build_app
from services.membership.index import IndexSubmission
from services.membership.settings import MembershipSettings
from tests.support import running

NO_BROKER = {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
V1 = index.questionnaire(1)


@pytest.fixture
async def membership(databases):
    app = build_app(MembershipSettings(**NO_BROKER, **databases("membership")))
    async with running(app) as client:
        yield client, app.state.runtime


async def apply(client, name: str, country: str = "NO", population: int = 300_000, share: str | None = "0.15") -> dict:
    response = await client.post("/cities", json={"name": name, "country": country, "population": population,
                                                  "foreign_born_share": share})
    assert response.status_code == 201, response.text
    return response.json()


async def sign(client, city_id: str, document: str, on: str) -> dict:
    response = await client.post(f"/cities/{city_id}/{document}", json={"signed_on": on})
    assert response.status_code == 200, response.text
    return response.json()


async def join(client, name: str, **kwargs) -> dict:
    city = await apply(client, name, **kwargs)
    await sign(client, city["id"], "statement-of-intent", "2026-02-01")
    return await sign(client, city["id"], "financial-agreement", "2026-03-01")


def answers(points: str = "best", **overrides: str) -> dict[str, str]:
    pick = max if points == "best" else min
    chosen = {q.code: pick(q.options, key=q.options.get) for a in V1.areas if a.core for q in a.questions}
    return {**chosen, **{k.replace("__", "."): v for k, v in overrides.items()}}


async def submit(client, city_id: str, body: dict | None = None):
    return await client.post(f"/cities/{city_id}/index-questionnaire", json=body or {"answers": answers()})


async def published(runtime) -> list[tuple[str, str, dict]]:
    async with runtime.sessions() as session:
        rows = (await session.scalars(select(OutboxMessage).order_by(OutboxMessage.position))).all()
    return [(dict(row.headers)["ce_type"], row.key, json.loads(row.value)) for row in rows]


async def test_a_city_applies_joins_on_the_later_signature_and_leaves_with_each_fact_published(membership) -> None:
    client, runtime = membership
    city = await apply(client, "Ceuta", country="ES", population=29_000, share=None)
    assert (city["status"], city["small_city"], city["european"]) == ("applicant", True, True)
    assert (await sign(client, city["id"], "financial-agreement", "2026-04-30"))["status"] == "applicant"
    twice = await client.post(f"/cities/{city['id']}/financial-agreement", json={"signed_on": "2026-05-01"})
    assert twice.status_code == 409 and "signed its financial agreement on 2026-04-30" in twice.json()["detail"]
    early_withdrawal = await client.post(f"/cities/{city['id']}/withdrawal", json={"effective_on": "2026-06-01"})
    assert early_withdrawal.status_code == 409 and "not a member" in early_withdrawal.json()["detail"]
    member = await sign(client, city["id"], "statement-of-intent", "2026-02-01")
    assert (member["status"], member["joined_on"]) == ("member", "2026-04-30")
    assert [c["id"] for c in (await client.get("/cities", params={"status": "member"})).json()] == [city["id"]]

    left = await client.post(f"/cities/{city['id']}/withdrawal", json={"effective_on": "2026-09-30"})
    assert left.status_code == 200 and (left.json()["status"], left.json()["left_on"]) == ("left", "2026-09-30")
    facts = await published(runtime)
    assert [t for t, _, _ in facts] == ["CityApplied", "CityJoined", "CityLeft"]
    assert {key for _, key, _ in facts} == {city["id"]}
    assert facts[0][2]["small_city"] is True and facts[1][2]["joined_on"] == "2026-04-30"
    assert facts[2][2] == {"city_id": city["id"], "effective_on": "2026-09-30"}


async def test_a_signature_dated_in_the_future_is_refused_and_nothing_changes(membership) -> None:
    client, runtime = membership
    city = await apply(client, "Oslo")
    refused = await client.post(f"/cities/{city['id']}/statement-of-intent", json={"signed_on": str(today() + timedelta(days=1))})
    assert refused.status_code == 422
    assert (await client.get(f"/cities/{city['id']}")).json()["statement_signed_on"] is None
    assert [t for t, _, _ in await published(runtime)] == ["CityApplied"]


async def test_answers_that_do_not_fit_the_questionnaire_are_refused_question_by_question(membership) -> None:
    client, runtime = membership
    city = await apply(client, "Oslo")
    bad = answers(commitment__2="maybe")
    del bad["language.1"]
    refused = await submit(client, city["id"], {"answers": bad})
    assert refused.status_code == 422
    assert {tuple(e["loc"]) for e in refused.json()["detail"]} == {("body", "answers", "commitment.2"), ("body", "answers", "language.1")}
    unknown_version = await submit(client, city["id"], {"version": 9, "answers": answers()})
    assert unknown_version.status_code == 422 and "no INDEX questionnaire version 9" in unknown_version.text
    assert (await client.get("/index-queue")).json() == []


async def test_the_analysis_queue_puts_cities_that_had_signed_first_then_first_submitted_first(membership) -> None:
    client, runtime = membership
    unsigned_first = await apply(client, "Unsigned first")
    signed_second = await apply(client, "Signed second")
    signed_later = await apply(client, "Signed after submitting")
    await sign(client, signed_second["id"], "statement-of-intent", "2026-01-10")
    for city in (unsigned_first, signed_second, signed_later):
        assert (await submit(client, city["id"])).status_code == 202
    await sign(client, signed_later["id"], "statement-of-intent", str(today()))  # recorded after submitting...
    queue = (await client.get("/index-queue")).json()
    # ...but signed the day it submitted: it had signed "when it submitted", so it moves up
    assert [e["city_name"] for e in queue] == ["Signed second", "Signed after submitting", "Unsigned first"]
    assert [e["priority"] for e in queue] == [True, True, False]
    assert queue[2]["reason"].startswith("no statement of intent signed when submitting")

    again = await submit(client, unsigned_first["id"])
    assert again.status_code == 409 and "already has INDEX answers waiting" in again.json()["detail"]

    analysed = await client.post("/index-queue/analysis", json={"analyst": "M. Rossi"})
    assert analysed.status_code == 200 and analysed.json()["city_id"] == signed_second["id"]
    assert [e["city_name"] for e in (await client.get("/index-queue")).json()] == ["Signed after submitting", "Unsigned first"]
    by_signed_in = (await client.post("/index-queue/analysis")).json()
    assert by_signed_in["city_id"] == signed_later["id"] and by_signed_in["analyst"] == "test-staff"  # who is signed in
    assert (await client.post("/index-queue/analysis")).json()["city_id"] == unsigned_first["id"]
    empty = await client.post("/index-queue/analysis")
    assert empty.status_code == 404 and "queue is empty" in empty.json()["detail"]


async def test_a_city_sees_its_scores_and_how_it_compares_with_the_network_and_its_peers(membership) -> None:
    client, _ = membership
    peer = await join(client, "Peer", population=250_000, share="0.12")
    big = await join(client, "Big", population=900_000, share="0.15")
    applicant = await apply(client, "Applicant", population=300_000, share="0.15")  # not in the network
    me = await join(client, "Me", population=300_000, share="0.15")
    await submit(client, peer["id"], {"answers": answers("worst")})
    await submit(client, big["id"])
    await submit(client, applicant["id"])
    await submit(client, me["id"], {"answers": answers(commitment__1="yes", commitment__2="yes_without_budget", commitment__3="no")})

    waiting = await client.get(f"/cities/{me['id']}/index-result")
    assert waiting.status_code == 404 and "position 3 in the analysis queue" in waiting.json()["detail"]  # the applicant has not signed: last
    for _ in range(4):
        assert (await client.post("/index-queue/analysis")).status_code == 200

    result = (await client.get(f"/cities/{me['id']}/index-result")).json()
    assert result["overall"] == "93.5"
    commitment = next(a for a in result["areas"] if a["code"] == "commitment")
    assert (commitment["score"], commitment["weight"]) == ("42.9", "2")
    assert result["network"] == {"rank": 2, "out_of": 3, "average": "64.5"}  # members only: (0 + 100 + 93.5) / 3
    assert result["peers"]["rank"] == 1 and result["peers"]["out_of"] == 2
    assert (result["peers"]["population_band"], result["peers"]["diversity_band"]) == (
        "200 000 to 499 999 inhabitants", "10% to under 20% foreign-born")
    assert commitment["network_average"] == "47.6" and commitment["peers_average"] == "21.5"
    never = await client.get(f"/cities/{(await apply(client, 'Silent'))['id']}/index-result")
    assert never.status_code == 404 and "has not submitted" in never.json()["detail"]


async def test_a_city_submitting_twice_at_once_gets_one_place_in_the_queue(membership) -> None:
    client, runtime = membership
    city = await apply(client, "Oslo")
    answered = await asyncio.gather(*(submit(client, city["id"]) for _ in range(4)))
    assert sorted(a.status_code for a in answered) == [202, 409, 409, 409]
    async with runtime.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(IndexSubmission)) == 1


async def test_a_city_that_left_cannot_submit_the_index_nor_get_an_expert_visit(membership) -> None:
    client, _ = membership
    city = await join(client, "Oslo")
    await client.post(f"/cities/{city['id']}/withdrawal", json={"effective_on": "2026-06-30"})
    refused = await submit(client, city["id"])
    assert refused.status_code == 409 and "left the network" in refused.json()["detail"]
    visit = await client.post(f"/cities/{city['id']}/expert-visits",
                              json={"visit_date": "2026-09-01", "experts": ["A"], "coe_representatives": ["B"]})
    assert visit.status_code == 409 and "no expert visit" in visit.json()["detail"]


async def test_an_expert_visit_is_scheduled_and_its_intercultural_profile_recorded_once(membership) -> None:
    client, _ = membership
    city = await join(client, "Oslo")
    path = f"/cities/{city['id']}/expert-visits"
    for body in ({"visit_date": "2026-05-12", "experts": [], "coe_representatives": ["I. Novak"]},
                 {"visit_date": "2026-05-12", "experts": ["Dr Okafor"], "coe_representatives": ["  "]},
                 {"visit_date": "2026-05-12", "experts": ["Dr Okafor"]}):
        assert (await client.post(path, json=body)).status_code == 422
    scheduled = await client.post(path, json={"visit_date": "2026-05-12", "experts": ["Dr Okafor"], "coe_representatives": ["I. Novak"]})
    assert scheduled.status_code == 201 and scheduled.json()["status"] == "scheduled"
    visit = scheduled.json()
    profile_path = f"{path}/{visit['id']}/intercultural-profile"
    early = await client.post(profile_path, json={"summary": "Strong commitment", "recorded_on": "2026-05-01"})
    assert early.status_code == 409 and "cannot be dated 2026-05-01" in early.json()["detail"]
    recorded = await client.post(profile_path, json={"summary": "Strong commitment", "url": "https://example.org/p",
                                                     "recorded_on": "2026-06-30"})
    assert recorded.status_code == 200 and recorded.json()["intercultural_profile"]["recorded_on"] == "2026-06-30"
    again = await client.post(profile_path, json={"summary": "Again", "recorded_on": "2026-07-01"})
    assert again.status_code == 409
    [listed] = (await client.get(path)).json()
    assert (listed["status"], listed["intercultural_profile"]["summary"]) == ("reported", "Strong commitment")
    other = await apply(client, "Elsewhere")
    assert (await client.post(f"/cities/{other['id']}/expert-visits/{visit['id']}/intercultural-profile",
                              json={"summary": "x", "recorded_on": "2026-06-30"})).status_code == 404


async def test_the_questionnaire_is_served_as_data(membership) -> None:
    client, _ = membership
    questionnaire = (await client.get("/index-questionnaire")).json()
    assert questionnaire["version"] == 1 and len(questionnaire["areas"]) == 17
    commitment = questionnaire["areas"][0]
    assert (commitment["code"], commitment["core"], commitment["weight"], commitment["max_points"]) == ("commitment", True, "2", 7)
    assert (await client.get("/index-questionnaire", params={"version": 2})).status_code == 404
