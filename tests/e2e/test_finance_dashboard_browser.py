"""The finance dashboard in a real headless browser (Debian's chromium driven by Playwright): the
finance officer signs in on Keycloak's own login page, the page renders the live figures and a
payment moves them within a second, without a reload."""

import time
from pathlib import Path

from tests.e2e.test_join_to_invoice import join
from tests.support import eventually, password_grant, running, serving

SCREENSHOTS = Path(__file__).parents[2] / ".local" / "screenshots"


async def test_a_payment_moves_the_dashboard_within_a_second(platform_sqlite, browser, keycloak_url, sign_in_back_to) -> None:
    platform = platform_sqlite
    membership_app, finance_app = platform.membership(), platform.finance(KEYCLOAK_URL=keycloak_url)
    # finance trusts the real Keycloak (the browser signs in there); its API calls here carry a
    # token of the demo user finance.
    async with running(membership_app) as membership, running(finance_app, stand_in=False) as finance, \
            serving(finance_app) as finance_url:
        finance.headers["authorization"] = f"Bearer {await password_grant(keycloak_url, 'finance', 'finance-pass')}"
        sign_in_back_to(finance_url)
        city = await join(membership, agreement="2026-03-15")

        async def invoiced():
            return (await finance.get("/invoices", params={"city_id": city["id"]})).json()

        [invoice] = await eventually(invoiced, what="the contribution invoice")

        page = await browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        await page.goto(f"{finance_url}/dashboard?year={invoice['year']}")
        # Signed out: the provider's login page, then back to the dashboard asked for.
        await page.wait_for_url(f"{keycloak_url}/realms/icc/protocol/openid-connect/auth*", timeout=15_000)
        await page.fill("#username", "finance")
        await page.fill("#password", "finance-pass")
        await page.click("#kc-login")
        await page.wait_for_url(f"{finance_url}/dashboard?year={invoice['year']}", timeout=15_000)
        assert await page.get_by_test_id("signed-in-as").text_content() == "finance"
        assert not any(c["name"] == "icc_session" and not c["httpOnly"] for c in await page.context.cookies())
        assert await page.evaluate("document.cookie.includes('icc_session')") is False  # out of JavaScript's reach
        await page.wait_for_function("document.querySelector('[data-testid=live]').classList.contains('on')", timeout=15_000)
        invoiced_cell = page.get_by_test_id("contributions-invoiced")
        await page.wait_for_function(
            "document.querySelector('[data-testid=contributions-invoiced]').textContent === '5 000.00'", timeout=15_000
        )
        assert await page.get_by_test_id("contributions-received").text_content() == "0.00"
        assert await invoiced_cell.text_content() == "5 000.00"
        snapshots_before = int(await page.evaluate("document.body.dataset.snapshots"))

        paid = await finance.post(f"/invoices/{invoice['id']}/payments",
                                  json={"amount": "2500.00", "paid_on": "2026-11-20", "reference": "BANK-TEST-1"})
        assert paid.status_code in (200, 201), paid.text
        posted = time.monotonic()
        await page.wait_for_function(
            "document.querySelector('[data-testid=contributions-received]').textContent === '2 500.00'", timeout=1_000
        )
        moved_after = time.monotonic() - posted
        assert await page.get_by_test_id("contributions-outstanding").text_content() == "2 500.00"
        assert int(await page.evaluate("document.body.dataset.snapshots")) > snapshots_before  # pushed, not reloaded
        assert "PaymentReceived" in await page.get_by_test_id("recent-events").text_content()
        assert errors == []

        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=SCREENSHOTS / "dashboard.png", full_page=True)
        print(f"dashboard moved {moved_after * 1000:.0f} ms after the payment; screenshot {SCREENSHOTS / 'dashboard.png'}")

        # Signing out ends the provider's session too: the next visit asks for the password again.
        await page.get_by_role("link", name="Sign out").click()
        await page.wait_for_url(f"{finance_url}/signed-out*", timeout=15_000)
        assert "You are signed out" in await page.get_by_test_id("signed-out").text_content()
        await page.goto(f"{finance_url}/dashboard")
        await page.wait_for_url(f"{keycloak_url}/realms/icc/protocol/openid-connect/auth*", timeout=15_000)
        assert await page.locator("#password").is_visible()
