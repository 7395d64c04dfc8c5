"""The organiser in a real browser over the whole stack, in English and in French: schedules an event
through the form (a refusal first, next to its field), a member city's delegate registers (once
membership's CityJoined has reached events over Kafka), the organiser sees the registration on the
event's page and downloads the participant list."""

import csv
import io
from datetime import timedelta

import pytest

from services.common.fields import today
from tests.e2e.conftest import accessible, screenshot, sign_in
from tests.e2e.test_join_to_invoice import join
from tests.support import eventually

WORDS = {
    "en": {"schedule": "Schedule an event", "submit": "Schedule", "funded": "Funded", "accept": "en-GB,en;q=0.9",
           "cancel": "Cancel the event…", "confirm": "Yes, cancel the event", "cancelled": "Cancelled",
           "back": "Back to the events"},
    "fr": {"schedule": "Planifier un événement", "submit": "Programmer", "funded": "Financé", "accept": "fr-FR,fr;q=0.9",
           "cancel": "Annuler l'événement…", "confirm": "Oui, annuler l'événement", "cancelled": "Annulé",
           "back": "Retour aux événements"},
}


@pytest.mark.parametrize("lang", ["en", "fr"])
async def test_an_organiser_schedules_an_event_sees_a_delegate_register_and_downloads_the_list(
        portal_stack, browser, lang) -> None:
    words = WORDS[lang]
    user, password = portal_stack.person(f"organiser-{lang}", "organiser")
    page = await browser.new_page(locale=words["accept"].split(",")[0], extra_http_headers={"accept-language": words["accept"]},
                                  accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    city = await join(portal_stack.staff["membership"])  # membership publishes CityJoined; events learns it over Kafka

    await sign_in(page, f"{portal_stack.url}/organiser/events", portal_stack.keycloak_url, user, password)
    assert await page.locator("html").get_attribute("lang") == lang
    await accessible(page, f"events ({lang})")

    await page.get_by_role("link", name=words["schedule"]).click()
    await page.get_by_role("heading", name=words["schedule"]).wait_for()
    starts = today() + timedelta(days=40)
    await page.fill("[name=title]", "Intercultural competence in public services")
    await page.select_option("[name=kind]", "study_visit")
    await page.fill("[name=host_city]", "Lisbon")
    await page.select_option("[name=host_country]", "PT")
    await page.fill("[name=starts_on]", str(starts))
    await page.fill("[name=ends_on]", str(starts - timedelta(days=1)))  # a slip: ends before it starts
    await page.fill("[name=capacity]", "30")
    await page.fill("[name=funded_quota_per_city]", "1")
    await accessible(page, f"schedule an event ({lang})")
    await page.get_by_role("button", name=words["submit"], exact=True).click()
    refusal = page.get_by_test_id("error-ends_on")
    await refusal.wait_for()
    assert await page.get_attribute("#f-ends_on", "aria-describedby") == "f-ends_on-error"
    assert await page.input_value("[name=title]") == "Intercultural competence in public services"  # kept
    await accessible(page, f"schedule an event, refused ({lang})")

    await page.fill("[name=ends_on]", str(starts + timedelta(days=1)))
    await page.get_by_role("button", name=words["submit"], exact=True).click()
    await page.wait_for_url(f"{portal_stack.url}/organiser/events/*-*")
    event_id = page.url.rsplit("/", 1)[1]
    await page.get_by_test_id("note").wait_for()
    await page.get_by_role("heading", name="Intercultural competence in public services").wait_for()

    # A delegate of the member city registers (through the events API): once events has learnt the city.
    async def registered():
        answer = await portal_stack.staff["events"].post(f"/workshops/{event_id}/registrations", json={
            "city_id": city["id"], "delegate_name": "Ingrid Berg", "delegate_email": f"ingrid.berg.{lang}@oslo.example"})
        assert answer.status_code in (201, 409), answer.text
        if answer.status_code == 409:
            assert answer.json()["retryable"] is True, answer.text  # only "not yet known" may be waited out
            return None
        return answer.json()

    registration = await eventually(registered, what="events learning that Oslo joined")
    assert registration["participation"] == "funded"

    async def shown():
        await page.reload()
        table = page.get_by_test_id("registrations")
        return await table.count() and "Ingrid Berg" in (await table.inner_text())

    await eventually(shown, timeout=20, what="the registration on the event's page")
    row = await page.get_by_test_id("registrations").inner_text()
    assert "Oslo" in row and words["funded"] in row
    assert await page.get_by_test_id("funded").inner_text() == "1"
    assert await page.get_by_test_id("self-funded").inner_text() == "0"
    await accessible(page, f"event ({lang})")
    if lang == "en":
        await screenshot(page, "portal-organiser-event")

    async with page.expect_download() as started:
        await page.get_by_test_id("download").click()
    download = await started.value
    assert download.suggested_filename == f"participants-{starts}-{event_id}.csv"
    with open(await download.path(), encoding="utf-8") as file:
        rows = list(csv.DictReader(io.StringIO(file.read())))
    assert [(r["participation"], r["delegate_name"], r["city_name"]) for r in rows] == [("funded", "Ingrid Berg", "Oslo")]

    await page.get_by_role("link", name=words["back"]).click()
    listed = page.get_by_test_id("events")
    await listed.wait_for()
    assert "Intercultural competence in public services" in await listed.inner_text()

    # Cancelling asks first.
    await page.get_by_role("link", name="Intercultural competence in public services").click()
    await page.get_by_role("link", name=words["cancel"]).click()
    await accessible(page, f"cancel the event ({lang})")
    await page.get_by_role("button", name=words["confirm"]).click()
    await page.wait_for_url(f"{portal_stack.url}/organiser/events/{event_id}")
    assert words["cancelled"] in await page.get_by_test_id("status").inner_text()
    assert (await portal_stack.staff["events"].get(f"/workshops/{event_id}")).json()["status"] == "cancelled"
    assert errors == []
