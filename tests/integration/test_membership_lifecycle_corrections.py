"""Membership over HTTP on SQLite and PostgreSQL: a withdrawal takes effect on its date, a mistyped
signature date is corrected (and the correction published), and bad input is a 422 naming the field."""

from datetime import timedelta

import pytest

from services.common.api import today
from tests.integration.test_membership_secretariat import apply, join, membership, published, sign, submit  # noqa: F401 (fixture)



async def status(client, city_id: str) -> str:
    return (await client.get(f"/cities/{city_id}")).json()["status"]


async def listed(client, status_: str) -> set[str]:
    return {c["id"] for c in (await client.get("/cities", params={"status": status_, "limit": 1000})).json()}


async def test_a_city_is_a_member_up_to_and_including_its_withdrawals_effective_date(membership) -> None:
    client, runtime = membership
    leaving_later, leaving_today, gone = await join(client, "Later"), await join(client, "Today"), await join(client, "Gone")
    for city, effective_on in ((leaving_later, today() + timedelta(days=30)), (leaving_today, today()), (gone, today() - timedelta(days=1))):
        response = await client.post(f"/cities/{city['id']}/withdrawal", json={"effective_on": effective_on.isoformat()})
        assert response.status_code == 200, response.text
        assert response.json()["left_on"] == effective_on.isoformat()
    assert [await status(client, c["id"]) for c in (leaving_later, leaving_today, gone)] == ["member", "member", "left"]
    assert await listed(client, "member") == {leaving_later["id"], leaving_today["id"]}
    assert await listed(client, "left") == {gone["id"]}
    assert await listed(client, "applicant") == set()
    facts = [(t, p) for t, _, p in await published(runtime) if t == "CityLeft"]
    assert [p["effective_on"] for _, p in facts] == [(today() + timedelta(days=30)).isoformat(), today().isoformat(),
                                                     (today() - timedelta(days=1)).isoformat()]

    again = await client.post(f"/cities/{leaving_later['id']}/withdrawal", json={"effective_on": today().isoformat()})
    assert again.status_code == 409 and again.json()["code"] == "already_withdrawing"
    assert (await submit(client, leaving_later["id"])).status_code == 202  # still a member: it may submit the INDEX
    refused = await submit(client, gone["id"])
    assert refused.status_code == 409 and refused.json()["code"] == "city_left"


async def test_the_secretariat_corrects_a_mistyped_signature_date_and_the_join_date_follows(membership) -> None:
    client, runtime = membership
    kazan = await apply(client, "Kazan", country="RU")
    await sign(client, kazan["id"], "statement-of-intent", "2022-03-01")
    member = await sign(client, kazan["id"], "financial-agreement", "2022-03-10")
    assert (member["joined_on"], member["european"]) == ("2022-03-10", True)

    reason = "the agreement was signed on 20 March; 10 March was the letter's date"
    corrected = await client.post(f"/cities/{kazan['id']}/signature-corrections",
                                  json={"document": "financial_agreement", "signed_on": "2022-03-20", "reason": reason})
    assert corrected.status_code == 200, corrected.text
    # joined after Russia left the Council of Europe (2022-03-16): not European on its join date
    assert (corrected.json()["joined_on"], corrected.json()["european"], corrected.json()["status"]) == ("2022-03-20", False, "member")
    [(_, key, event)] = [f for f in await published(runtime) if f[0] == "JoinDateCorrected"]
    assert key == kazan["id"]
    assert event == {"city_id": kazan["id"], "joined_on": "2022-03-20", "previous_joined_on": "2022-03-10", "european": False,
                     "reason": reason}

    earlier = await client.post(f"/cities/{kazan['id']}/signature-corrections",
                                json={"document": "statement_of_intent", "signed_on": "2022-02-01", "reason": "typo"})
    assert earlier.status_code == 200 and earlier.json()["joined_on"] == "2022-03-20"  # the join date does not move
    assert len([f for f in await published(runtime) if f[0] == "JoinDateCorrected"]) == 1
    corrections = (await client.get(f"/cities/{kazan['id']}/signature-corrections")).json()
    assert [(c["document"], c["previous_signed_on"], c["signed_on"]) for c in corrections] == [
        ("financial_agreement", "2022-03-10", "2022-03-20"), ("statement_of_intent", "2022-03-01", "2022-02-01")]


async def test_corrections_that_would_unmake_a_member_or_correct_nothing_are_refused_and_write_nothing(membership) -> None:
    client, runtime = membership
    applicant = await apply(client, "Applicant")
    await sign(client, applicant["id"], "statement-of-intent", "2026-02-01")
    member = await join(client, "Member")  # signed 2026-02-01 and 2026-03-01
    await client.post(f"/cities/{member['id']}/withdrawal", json={"effective_on": "2026-06-30"})
    before = await published(runtime)
    url = "/cities/{}/signature-corrections"
    cases = [
        (applicant["id"], {"document": "statement_of_intent", "signed_on": "2026-01-15", "reason": "x"}, 409, "not_a_member"),
        (member["id"], {"document": "financial_agreement", "signed_on": (today() + timedelta(days=1)).isoformat(), "reason": "x"},
         422, "signed_in_the_future"),
        (member["id"], {"document": "financial_agreement", "signed_on": "2026-03-01", "reason": "x"}, 409, "nothing_to_correct"),
        (member["id"], {"document": "financial_agreement", "signed_on": "2026-07-01", "reason": "x"}, 409, "would_not_be_a_member"),
    ]
    for city_id, body, code, refusal in cases:
        response = await client.post(url.format(city_id), json=body)
        assert (response.status_code, response.json().get("code")) == (code, refusal), response.text
    assert (await client.post(url.format(member["id"]), json={"document": "lease", "signed_on": "2026-01-01", "reason": "x"})).status_code == 422
    assert (await client.post(url.format(member["id"]), json={"document": "statement_of_intent", "signed_on": "2026-01-01",
                                                               "reason": "  "})).status_code == 422
    missing = await client.post(url.format("00000000-0000-0000-0000-000000000000"),
                                json={"document": "statement_of_intent", "signed_on": "2026-01-01", "reason": "x"})
    assert missing.status_code == 404
    assert await published(runtime) == before
    assert (await client.get(f"/cities/{member['id']}")).json()["joined_on"] == "2026-03-01"


@pytest.mark.parametrize(("field", "value"), [
    ("population", 10**12), ("population", 0), ("population", 10**40), ("foreign_born_share", "NaN"),
    ("foreign_born_share", "0.123456"), ("foreign_born_share", "1E+3"), ("name", "   "), ("name", "Os\x00lo"), ("country", "ZZ"), ("contact", "x" * 301),
])
async def test_bad_numbers_and_text_in_an_application_are_a_422_naming_the_field(membership, field, value) -> None:
    client, runtime = membership
    body = {"name": "Oslo", "country": "NO", "population": 700_000, "foreign_born_share": "0.28", field: value}
    response = await client.post("/cities", json=body)
    assert response.status_code == 422, response.text
    assert any(e["loc"][-1] == field for e in response.json()["detail"]), response.text
    assert await published(runtime) == []


async def test_rules_the_api_once_checked_are_refused_by_the_domain_naming_the_field(membership) -> None:
    client, _ = membership
    city = await join(client, "Oslo")
    future = await client.post(f"/cities/{city['id']}/statement-of-intent", json={"signed_on": (today() + timedelta(days=1)).isoformat()})
    assert future.status_code == 409  # already signed comes first: a signature is recorded once
    other = await apply(client, "Bergen")
    future = await client.post(f"/cities/{other['id']}/statement-of-intent", json={"signed_on": (today() + timedelta(days=1)).isoformat()})
    assert (future.status_code, future.json()["code"], future.json()["field"]) == (422, "signed_in_the_future", "signed_on")
    visit = await client.post(f"/cities/{city['id']}/expert-visits",
                              json={"visit_date": "2026-05-12", "experts": ["Dr Okafor"], "coe_representatives": [" "]})
    assert (visit.status_code, visit.json()["code"], visit.json()["field"]) == (422, "team_incomplete", "coe_representatives")
    listing = await client.get("/cities", params={"limit": 10**9, "unknown": "ignored"})
    assert listing.status_code == 422 and listing.json()["detail"][0]["loc"][-1] == "limit"
    assert (await client.get("/cities", params={"unknown": "ignored"})).status_code == 200
