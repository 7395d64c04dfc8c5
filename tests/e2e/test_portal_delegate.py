"""A delegate's journey in a real browser over the whole stack, in English and in French: their city
joins, an organiser schedules an event, the delegate signs in on Keycloak's page, registers, claims
their travel with a receipt file (a wrong file refused first), sees the claim priced, sends it, and
follows finance's decisions (approved, then paid) on the claim's page."""

import re
from datetime import timedelta
from uuid import uuid4

import pytest
from playwright.async_api import Page, expect

from services.common.api import today
from tests.e2e.conftest import accessible, screenshot, sign_in
from tests.e2e.test_join_to_invoice import join
from tests.e2e.test_travel_claims_over_kafka import set_rates
from tests.support import eventually

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89" + b"\x00" * 32

WORDS = {
    "en": {"register": "Register for this event", "funded": "Registered, funded", "claim": "Claim travel costs",
           "quote": "See what will be reimbursed", "refused": "send a PDF, JPEG or PNG file", "send": "Send the claim",
           "sent": "Your claim is sent to finance.", "approved": "Approved", "paid": "Paid",            "receipt": "Receipt file"},
    "fr": {"register": "S’inscrire à cet événement", "funded": "Inscrit·e, financé·e",
           "claim": "Demander le remboursement des frais",
           "quote": "Voir ce qui sera remboursé", "refused": "envoyez un fichier PDF, JPEG ou PNG", "send": "Envoyer la demande",
           "sent": "Votre demande est transmise au service financier.", "approved": "Approuvée", "paid": "Payée",
           "receipt": "Fichier justificatif"},
}


async def status_shows(page: Page, text: str) -> None:
    """Finance decides over Kafka: reload the claim's page until its status says so."""

    async def shown() -> bool:
        await page.reload()
        return (await page.get_by_test_id("claim-status").text_content() or "").strip() == text

    await eventually(shown, timeout=60, what=f"the claim's page showing {text!r}")


@pytest.mark.parametrize("lang", ["en", "fr"])
async def test_a_delegate_registers_claims_with_a_receipt_and_sees_finance_decide(portal_stack, browser, lang) -> None:
    words = WORDS[lang]
    staff = portal_stack.staff
    city = await join(staff["membership"], city={"name": "Oslo", "country": "NO", "population": 709_000, "foreign_born_share": "0.28"})
    await set_rates(staff["travel"])
    year = today().year
    budget = {"administration": "10000.00", "delegate_travel": "20000.00", "expert_visits": "5000.00", "index_analysis": "0.00",
              "events": "0.00"}
    assert (await staff["finance"].put(f"/budgets/{year}", json={"lines": budget})).status_code in (200, 201)
    scheduled = await staff["events"].post("/workshops", json={
        "title": f"Intercultural public services ({lang})", "kind": "thematic_workshop", "host_city": "Lisbon", "host_country": "PT",
        "starts_on": today().isoformat(), "ends_on": (today() + timedelta(days=1)).isoformat(), "capacity": 10})
    assert scheduled.status_code == 201, scheduled.text
    workshop = scheduled.json()

    async def member_in_events():  # events learns the city from membership over Kafka
        answer = await staff["events"].get(f"/member-cities/{city['id']}")
        return answer.status_code == 200 and answer.json()["member"]

    await eventually(member_in_events, what="events knowing Oslo as a member")

    user, password = portal_stack.person(f"delegate-{lang}-{uuid4().hex[:6]}", "delegate", city_id=city["id"])
    page = await browser.new_page(locale="fr-FR" if lang == "fr" else "en-GB",
                                  extra_http_headers={"accept-language": "fr-FR,fr;q=0.9" if lang == "fr" else "en-GB,en;q=0.9"})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await sign_in(page, f"{portal_stack.url}/delegate/events", portal_stack.keycloak_url, user, password)
    assert await page.locator("html").get_attribute("lang") == lang
    await accessible(page, f"events ({lang})")

    # the event, and registering
    await page.get_by_role("link", name=workshop["title"], exact=True).click()
    await accessible(page, f"an event ({lang})")
    await page.get_by_role("button", name=words["register"]).click()
    await page.wait_for_url("**/delegate/registrations")
    row = page.get_by_test_id("registration").filter(has_text=workshop["title"])
    await expect(row).to_contain_text(words["funded"])
    await accessible(page, f"my registrations ({lang})")

    [registration] = (await staff["events"].get(f"/workshops/{workshop['id']}/registrations")).json()

    async def travel_knows():  # travel learns the registration from events over Kafka
        answer = await staff["travel"].post("/claims/quote", json={"registration_id": registration["id"], "nights": 0})
        return answer.status_code == 200

    await eventually(travel_knows, what="travel knowing the registration")

    # the claim: a wrong file first, refused next to its line, nothing stored
    await row.get_by_role("link", name=words["claim"]).click()
    await accessible(page, f"new claim ({lang})")
    await page.fill('[name="nights"]', "1")
    await page.fill('[name="travel_days_without_night"]', "0")
    await page.select_option('[name="lines[0].kind"]', "transport")
    await page.fill('[name="lines[0].amount"]', "82.50")
    await page.fill('[name="lines[0].currency"]', "EUR")
    await page.fill('[name="lines[0].spent_on"]', today().isoformat())
    await page.set_input_files('[name="lines[0].file"]', files=[{"name": "ticket.png", "mimeType": "image/png",
                                                                  "buffer": b"<html><body>not a ticket</body></html>"}])
    await page.get_by_role("button", name=words["quote"]).click()
    await expect(page.get_by_test_id("error-lines[0].file")).to_contain_text(words["refused"])
    assert await page.locator('[name="lines[0].amount"]').input_value() == "82.50"  # kept as filled
    await accessible(page, f"a refused receipt ({lang})")
    assert (await staff["travel"].get("/claims", params={"city_id": city["id"]})).json() == []

    # the right file: the claim priced, each line explained
    await page.set_input_files('[name="lines[0].file"]', files=[{"name": "ticket.png", "mimeType": "image/png", "buffer": PNG}])
    await page.get_by_role("button", name=words["quote"]).click()
    await expect(page.get_by_test_id("claimed")).to_have_text(re.compile(r"237[.,]50"))  # 82.50 + one night at 155.00
    await expect(page.get_by_test_id("explanation")).to_have_count(2)
    await accessible(page, f"the priced claim ({lang})")
    await screenshot(page, f"portal-delegate-claim{'' if lang == 'en' else '-fr'}")
    assert (await staff["travel"].get("/claims", params={"city_id": city["id"]})).json() == []  # a quote stores nothing

    await page.get_by_role("button", name=words["send"]).click()
    await page.wait_for_url("**/delegate/claims/*")
    await expect(page.get_by_test_id("note")).to_have_text(words["sent"])
    [claim] = (await staff["travel"].get("/claims", params={"city_id": city["id"]})).json()
    assert claim["lines"][0]["receipt_id"] and claim["claimed"] == "237.50"
    async with page.expect_download() as download:
        await page.get_by_role("link", name=words["receipt"]).click()
    assert (await download.value).suggested_filename.endswith(".png")

    # finance decides: approved (within the budget), then paid through finance's API
    await status_shows(page, words["approved"])
    await accessible(page, f"the claim's page ({lang})")
    paid = await staff["finance"].post(f"/reimbursements/{claim['id']}/payment", json={"paid_on": today().isoformat()})
    assert paid.status_code == 200, paid.text
    await status_shows(page, words["paid"])
    await page.goto(f"{portal_stack.url}/delegate/claims?status=paid")
    await expect(page.get_by_test_id("claim")).to_have_count(1)
    await accessible(page, f"my claims ({lang})")
    assert errors == []
