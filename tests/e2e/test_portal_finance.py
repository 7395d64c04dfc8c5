"""The finance unit's day in a real browser over the whole stack (Keycloak sign-in, Kafka), in English
and in French: a city joins and its invoice appears, finance records the payment on the invoice's
page and sees it paid; a delegate's claim is decided (paid) on its page and travel follows."""

from datetime import timedelta

import pytest

from services.common.api import today
from tests.e2e.conftest import accessible, screenshot, sign_in
from tests.e2e.test_join_to_invoice import join
from tests.e2e.test_travel_claims_over_kafka import claim_body, set_rates, submit_when_known
from tests.support import eventually

TEXTS = {
    "en": {"reference": "Bank reference", "record": "Record the payment", "paid": "Paid", "recorded": "Payment recorded.",
           "mark_paid": "Mark paid", "claim_paid": "The claim is marked paid.", "transport": "Transport"},
    "fr": {"reference": "Référence bancaire", "record": "Enregistrer le paiement", "paid": "Payée",
           "recorded": "Paiement enregistré.", "mark_paid": "Marquer payée", "claim_paid": "La demande est marquée payée.",
           "transport": "Transport"},
}


async def scene(staff, city_name: str) -> tuple[dict, dict]:
    """A member city (invoiced by finance from membership's event) and its delegate's claim, approved."""
    membership, events, travel, finance = (staff[name] for name in ("membership", "events", "travel", "finance"))
    signed = (today() - timedelta(days=2)).isoformat(), (today() - timedelta(days=1)).isoformat()
    city = await join(membership, {"name": city_name, "country": "NO", "population": 120_000}, *signed)
    await set_rates(travel)
    lines = {"administration": "10000.00", "delegate_travel": "20000.00", "expert_visits": "0.00", "index_analysis": "0.00",
             "events": "0.00"}
    assert (await finance.put(f"/budgets/{today().year}", json={"lines": lines})).status_code == 200
    workshop = await events.post("/workshops", json={
        "title": "Intercultural public services", "kind": "thematic_workshop", "host_city": "Lisbon", "host_country": "PT",
        "starts_on": today().isoformat(), "ends_on": (today() + timedelta(days=1)).isoformat(), "capacity": 10})
    assert workshop.status_code == 201, workshop.text

    async def registered():
        answer = await events.post(f"/workshops/{workshop.json()['id']}/registrations", json={
            "city_id": city["id"], "delegate_name": "Ingrid Berg", "delegate_email": f"ingrid@{city_name.lower()}.example"})
        return answer.json() if answer.status_code == 201 else None  # events learns the member from Kafka

    registration = await eventually(registered, what="the delegate's registration")
    claim = await submit_when_known(travel, claim_body(registration["id"]))

    async def approved():
        decided = await finance.get(f"/reimbursements/{claim['id']}")
        return decided.json() if decided.status_code == 200 and decided.json()["status"] == "approved" else None

    await eventually(approved, what="finance approving the claim")
    return city, claim


@pytest.mark.parametrize("lang", ["en", "fr"])
async def test_finance_records_a_payment_and_decides_a_claim_in_the_portal(portal_stack, browser, lang) -> None:
    texts = TEXTS[lang]
    city, claim = await scene(portal_stack.staff, f"Tromso{lang}")
    finance = portal_stack.staff["finance"]

    async def invoiced():
        return (await finance.get("/invoices", params={"city_id": city["id"]})).json() or None

    [invoice] = await eventually(invoiced, what="the new member's contribution invoice")

    user, password = portal_stack.person(f"fin-pages-{lang}", "finance")
    locale = {"en": "en-GB", "fr": "fr-FR"}[lang]
    page = await browser.new_page(locale=locale, extra_http_headers={"accept-language": f"{locale},{lang};q=0.9"})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await sign_in(page, f"{portal_stack.url}/finance/invoices?city_id={city['id']}", portal_stack.keycloak_url, user, password)
    assert await page.locator("html").get_attribute("lang") == lang
    await accessible(page, f"invoices ({lang})")

    # the invoice, from the list: record the payment the bank shows
    await page.locator(f'a[href="/finance/invoices/{invoice["id"]}"]').click()
    await page.get_by_label(texts["reference"]).fill(f"BANK-{lang}-1")
    await accessible(page, f"invoice ({lang})")
    await page.get_by_role("button", name=texts["record"]).click()
    await page.get_by_test_id("note").filter(has_text=texts["recorded"]).wait_for()
    assert await page.get_by_test_id("invoice-status").text_content() == texts["paid"]
    assert await page.get_by_test_id("invoice-outstanding").text_content() == {"en": "€0.00", "fr": "0,00\xa0€"}[lang]
    assert (await finance.get(f"/invoices/{invoice['id']}")).json()["status"] == "paid"
    if lang == "en":
        await screenshot(page, "portal-finance-invoice")

    # the delegate's claim, approved by finance's rules: paid from its page
    await page.goto(f"{portal_stack.url}/finance/claims?status=approved")
    await accessible(page, f"claims ({lang})")
    await page.locator(f'a[href="/finance/claims/{claim["id"]}"]').click()
    await page.get_by_role("cell", name=texts["transport"]).first.wait_for()  # travel's lines, explained
    await accessible(page, f"claim ({lang})")
    await page.get_by_role("button", name=texts["mark_paid"]).click()
    await page.get_by_test_id("note").filter(has_text=texts["claim_paid"]).wait_for()
    assert await page.get_by_test_id("claim-status").text_content() == texts["paid"]

    async def travel_follows():
        return (await portal_stack.staff["travel"].get(f"/claims/{claim['id']}")).json()["status"] == "paid" or None

    await eventually(travel_follows, what="travel following finance's payment")

    for path in ("/finance/budget", "/finance/reconciliation", "/finance/rates"):
        await page.goto(f"{portal_stack.url}{path}")
        await accessible(page, f"{path} ({lang})")
    assert errors == []
