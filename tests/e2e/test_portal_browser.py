"""The portal's frame in a real browser over the whole stack: sign in on Keycloak's page (in the
person's language), the menu of one's roles, switching language, an accessible page."""

from tests.e2e.conftest import accessible, screenshot, sign_in


async def test_sign_in_menu_and_language(portal_stack, browser) -> None:
    user, password = portal_stack.person("fin-portal", "finance")
    page = await browser.new_page(locale="fr-FR", extra_http_headers={"accept-language": "fr-FR,fr;q=0.9"})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await sign_in(page, f"{portal_stack.url}/", portal_stack.keycloak_url, user, password)
    assert await page.get_by_test_id("signed-in-as").text_content() == user
    assert await page.locator("html").get_attribute("lang") == "fr"  # the browser's language
    await page.get_by_role("link", name="Tableau de bord financier").wait_for()
    await accessible(page, "front page (fr)")
    await page.get_by_role("button", name="English").click()
    await page.get_by_role("heading", name=f"Welcome, {user}").wait_for()
    await page.reload()  # remembered
    assert await page.locator("html").get_attribute("lang") == "en"
    await screenshot(page, "portal-home")
    assert errors == []
