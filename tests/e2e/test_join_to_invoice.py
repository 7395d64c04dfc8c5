"""A city joins in membership and finance invoices its contribution: over the real broker."""

from datetime import date

from sqlalchemy import select

from services.common.db import ProcessedEvent
from services.events.domain import MemberCity
from services.travel.db import StoredCity
from tests.identity import STAND_IN
from tests.support import eventually, header, read_topic, running

OSLO = {"name": "Oslo", "country": "NO", "population": 709_000, "foreign_born_share": "0.28"}


async def join(membership, city=OSLO, statement="2026-02-01", agreement="2026-03-15") -> dict:
    created = await membership.post("/cities", json=city)
    assert created.status_code == 201, created.text
    city_id = created.json()["id"]
    assert (await membership.post(f"/cities/{city_id}/statement-of-intent", json={"signed_on": statement})).status_code == 200
    signed = await membership.post(f"/cities/{city_id}/financial-agreement", json={"signed_on": agreement})
    assert signed.status_code == 200 and signed.json()["status"] == "member"
    return signed.json()


async def test_a_joining_city_is_invoiced_5000_eur_for_its_join_year(secured_platform) -> None:
    # Every service logs in as itself, with no more rights than the ACLs grant its principal.
    platform = secured_platform
    membership_app, finance_app, events_app, travel_app = platform.membership(), platform.finance(), platform.events(), platform.travel()
    assert [app.state.runtime.settings.kafka.username for app in (membership_app, finance_app, events_app, travel_app)] == [
        "membership", "finance", "events", "travel"]
    async with running(membership_app) as membership, running(finance_app) as finance, running(events_app), running(travel_app):
        city = await join(membership)
        assert city["joined_on"] == "2026-03-15" and city["european"] is True

        async def invoiced():
            return (await finance.get("/invoices", params={"city_id": city["id"]})).json()

        [invoice] = await eventually(invoiced, what="the contribution invoice")
        assert (invoice["kind"], invoice["year"], invoice["amount"], invoice["status"]) == ("contribution", 2026, "5000.00", "issued")

        issued = await read_topic(platform.kafka, platform.topic("icc.finance.invoices"), at_least=1)
        assert [header(r, "ce_type") for r in issued] == ["InvoiceIssued"]
        assert issued[0].key.decode() == invoice["id"]
        # the invoice event carries the cause's correlation id end to end
        joined = [r for r in await read_topic(platform.kafka, platform.topic("icc.membership.cities"), at_least=2)
                  if header(r, "ce_type") == "CityJoined"]
        assert header(issued[0], "ce_correlationid") == header(joined[0], "ce_correlationid")
        # who: the person who signed (their subject id, never a token) on CityJoined; finance itself
        # on the invoice it derived, and the signer kept with the effect in finance
        signer = STAND_IN.claims(username="test-staff")["sub"]
        assert (header(joined[0], "ce_authtype"), header(joined[0], "ce_authid")) == ("app_user", signer)
        assert (header(issued[0], "ce_authtype"), header(issued[0], "ce_authid")) == ("system", "finance")
        async with finance_app.state.runtime.sessions() as session:
            kept = await session.scalar(select(ProcessedEvent.actor).where(ProcessedEvent.event_id == header(joined[0], "ce_id")))
        assert kept == f"app_user:{signer}"
        trail = (await membership.get("/audit", params={"subject": city["id"]})).json()
        assert [e["action"] for e in trail] == [  # newest first; signatures publish nothing but are recorded
            "FinancialAgreementSigned", "CityJoined", "StatementOfIntentSigned", "CityApplied"]
        assert {e["actor_name"] for e in trail} == {"test-staff"}

        # events and travel learnt the member from the same CityJoined, without calling membership
        for app, model in ((events_app, MemberCity), (travel_app, StoredCity)):
            async def knows(app=app, model=model):
                async with app.state.runtime.sessions() as session:
                    return (await session.scalars(select(model))).all()

            [known] = await eventually(knows, what=f"{app.title} learning the member")
            assert str(known.city_id) == city["id"] and known.european and known.joined_on == date(2026, 3, 15)

        for client in (membership, finance):
            assert (await eventually(lambda c=client: _ready(c), what="ready")).json()["status"] == "ready"


async def _ready(client):
    response = await client.get("/ready")
    return response if response.status_code == 200 else None


async def test_a_city_joining_in_october_is_invoiced_for_the_next_year(platform_sqlite) -> None:
    platform = platform_sqlite
    async with running(platform.membership()) as membership, running(platform.finance()) as finance:
        city = await join(membership, {"name": "Montréal", "country": "CA", "population": 1_760_000}, "2025-10-01", "2025-10-01")
        assert city["european"] is False

        async def invoiced():
            return (await finance.get("/invoices", params={"city_id": city["id"]})).json()

        [invoice] = await eventually(invoiced, what="the contribution invoice")
        assert invoice["year"] == 2026 and invoice["amount"] == "5000.00"


async def test_bad_input_gets_a_clear_4xx_and_writes_nothing(platform_sqlite) -> None:
    app = platform_sqlite.membership()
    async with running(app) as membership:
        cases = [
            ({"name": "Atlantis", "country": "ZZ", "population": 10_000}, "country"),
            ({"name": "Minus", "country": "FR", "population": -5}, "population"),
            ({"country": "FR", "population": 5}, "name"),
            ({"name": "Float", "country": "FR", "population": 5, "foreign_born_share": 2}, "foreign_born_share"),
        ]
        for body, field in cases:
            response = await membership.post("/cities", json=body)
            assert response.status_code == 422, response.text
            assert any(error["loc"][-1] == field for error in response.json()["detail"])
        unknown = await membership.post("/cities/00000000-0000-0000-0000-000000000000/statement-of-intent", json={"signed_on": "2026-01-01"})
        assert unknown.status_code == 404 and "no city" in unknown.json()["detail"]
        assert (await membership.get("/cities")).json() == []
        assert await app.state.runtime.relay.pending() == 0
