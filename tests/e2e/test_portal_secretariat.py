"""The secretariat in a browser, in English and in French: a city from its application to member
entirely through the pages (the application, its INDEX answers and their analysis, the two
signatures), then the costs of an expert visit to it, recorded in travel once travel has heard
of the city over the broker."""

from datetime import timedelta

import pytest

from services.common.api import today
from tests.e2e.conftest import accessible, screenshot, sign_in
from tests.support import eventually

WORDS = {
    "en": {"Cities": "Cities", "Member": "Member", "Applicant": "Applicant", "recorded": "The application of {name} is recorded.",
           "member now": "{name} is now a member of the network.", "queued": "number 1 in the analysis queue",
           "analysed": "Analysed: an overall index of", "visit": "The expert visit to {name} on"},
    "fr": {"Cities": "Villes", "Member": "Membre", "Applicant": "Candidate", "recorded": "La candidature de {name} est enregistrée.",
           "member now": "{name} est désormais membre du réseau.", "queued": "numéro 1 dans la file d’analyse",
           "analysed": "Analyse faite : un indice global de", "visit": "La visite d’experts à {name} le"},
}


@pytest.mark.parametrize("lang", ["en", "fr"])
async def test_the_secretariat_takes_a_city_from_application_to_member(portal_stack, browser, lang) -> None:
    words = WORDS[lang]
    name = f"Tromsø-{lang}"
    user, password = portal_stack.person(f"sec-portal-{lang}", "secretariat")
    page = await browser.new_page(locale="fr-FR" if lang == "fr" else "en-GB",
                                  extra_http_headers={"accept-language": "fr-FR,fr;q=0.9" if lang == "fr" else "en-GB,en;q=0.9"})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await sign_in(page, f"{portal_stack.url}/", portal_stack.keycloak_url, user, password)
    assert await page.locator("html").get_attribute("lang") == lang

    # The cities, from the menu; the application, through its form.
    await page.get_by_role("link", name=words["Cities"], exact=True).first.click()
    await page.wait_for_url("**/secretariat/cities")
    await accessible(page, f"cities ({lang})")
    await page.click("a[href='/secretariat/cities/new']")
    await accessible(page, f"application form ({lang})")
    await page.fill("#f-name", name)
    await page.fill("#f-country", "NO")
    await page.fill("#f-population", "77000")
    await page.fill("#f-foreign_born_share", "0.12")
    await page.click("form[action='/secretariat/cities'] button[type=submit]")
    await page.wait_for_url("**/secretariat/cities/*-*")
    city_id = page.url.rsplit("/", 1)[1]
    assert await page.get_by_test_id("note").first.text_content() == words["recorded"].format(name=name)
    assert (await page.get_by_test_id("city-status").text_content()).strip() == words["Applicant"]
    assert await page.locator("[data-testid=steps] li[data-done=no]").count() == 4
    await accessible(page, f"an applicant's page ({lang})")

    # Its INDEX answers (the first option of every question), then their analysis from the queue.
    await page.click(f"a[href='/secretariat/cities/{city_id}/index-questionnaire']")
    questions = page.locator("select[name^='answers.']")
    assert await questions.count() > 40
    await accessible(page, f"the INDEX questionnaire ({lang})")
    for i in range(await questions.count()):
        await questions.nth(i).select_option(index=1)
    await page.click(f"form[action='/secretariat/cities/{city_id}/index-questionnaire'] button[type=submit]")
    await page.wait_for_url(f"**/secretariat/cities/{city_id}")
    assert words["queued"] in await page.get_by_test_id("note").first.text_content()
    await page.click("a[href='/secretariat/index-queue']")
    await page.get_by_role("link", name=name).wait_for()
    await accessible(page, f"the INDEX queue ({lang})")
    await page.click("form[action='/secretariat/index-queue/analysis'] button[type=submit]")
    await page.wait_for_url(f"**/secretariat/cities/{city_id}")
    assert words["analysed"] in await page.get_by_test_id("note").first.text_content()
    await page.get_by_test_id("index-result").wait_for()

    # The two documents, each signature with its date: a member on the later one.
    await page.fill("#f-statement_of_intent-signed_on", "2026-02-01")
    await page.click(f"form[action='/secretariat/cities/{city_id}/statement-of-intent'] button")
    await page.wait_for_url(f"**/secretariat/cities/{city_id}")
    assert (await page.get_by_test_id("city-status").text_content()).strip() == words["Applicant"]
    await page.fill("#f-financial_agreement-signed_on", "2026-03-15")
    await page.click(f"form[action='/secretariat/cities/{city_id}/financial-agreement'] button")
    await page.wait_for_url(f"**/secretariat/cities/{city_id}")
    assert words["member now"].format(name=name) in await page.get_by_test_id("note").first.text_content()
    assert (await page.get_by_test_id("city-status").text_content()).strip() == words["Member"]
    assert await page.locator("[data-testid=steps] li[data-done=no]").count() == 0
    await accessible(page, f"a member's page ({lang})")
    if lang == "en":
        await screenshot(page, "portal-secretariat-city")
    member = (await portal_stack.staff["membership"].get(f"/cities/{city_id}")).json()
    assert (member["status"], member["joined_on"]) == ("member", "2026-03-15")

    # Among the members in the list.
    await page.goto(f"{portal_stack.url}/secretariat/cities?status=member")
    assert (await page.get_by_test_id(f"status-{city_id}").text_content()).strip() == words["Member"]

    # An expert visit's costs, in travel: travel learns of the city over the broker, so the form is
    # sent again (as it was filled) until travel knows it.
    await page.goto(f"{portal_stack.url}/secretariat/expert-visits/new?city_id={city_id}")
    await accessible(page, f"the expert visit form ({lang})")
    visit_day = (today() - timedelta(days=5)).isoformat()
    await page.fill("#f-visit_date", visit_day)
    await page.fill("#f-lines-0-amount", "312.50")
    await page.fill("#f-lines-0-spent_on", visit_day)
    await page.fill("#f-lines-0-receipt", "SAS-1")

    async def recorded() -> bool:
        async with page.expect_navigation():
            await page.click("form[action='/secretariat/expert-visits'] button[type=submit]")
        return "/secretariat/expert-visits?city_id=" in page.url

    await eventually(recorded, timeout=30, what="travel recording the expert visit")
    assert words["visit"].format(name=name) in await page.get_by_test_id("note").first.text_content()
    await page.get_by_role("link", name=name).wait_for()
    await accessible(page, f"expert visits ({lang})")
    assert errors == []
