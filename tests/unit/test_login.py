"""Browser sign-in (services/common/login.py) against a stand-in for the provider's endpoints: PKCE,
state and nonce, the session cookie, renewal with the refresh token, sign-out, and pages' answers.
The real provider's login page is exercised by tests/e2e/test_finance_dashboard_browser.py."""

from typing import Annotated
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from fastapi import FastAPI

from services.common import auth, login
from services.common.auth import Principal, TokenVerifier, page
from services.common.settings import LOCAL_ISSUER
from services.finance.settings import FinanceSettings
from tests.identity import ProviderDouble, TestIdentity


def site(identity: TestIdentity, provider: ProviderDouble) -> FastAPI:
    app = FastAPI()
    verifier = TokenVerifier(LOCAL_ISSUER, "icc-api", identity.keys())
    auth.install(app, verifier)
    app.state.web_sessions = login.WebSessions(FinanceSettings(), verifier, transport=provider)
    app.include_router(login.router)

    @app.get("/ledger")
    async def ledger(principal: Annotated[Principal, page("finance")]) -> dict:
        return {"username": principal.username}

    return app


@pytest.fixture
async def browser(identity):
    provider = identity.transport({"username": "fran", "roles": ["finance"], "email": "fran@example.org"})
    app = site(identity, provider)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://pages.test") as client:
        client.provider = provider
        yield client


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


async def sign_in(browser, next_url: str = "/ledger") -> httpx.Response:
    """Follow the flow as a browser would, the provider's login page played by the double."""
    to_provider = await browser.get("/login", params={"next": next_url})
    code = browser.provider.authorize(to_provider.headers["location"])
    return await browser.get("/auth/callback", params={"state": query(to_provider.headers["location"])["state"], "code": code})


async def test_a_signed_out_visitor_of_a_page_is_sent_to_the_login_and_back(browser) -> None:
    answer = await browser.get("/ledger", params={"year": "2026"})
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/ledger%3Fyear%3D2026"


async def test_the_login_redirect_carries_state_nonce_and_a_pkce_s256_challenge(browser) -> None:
    answer = await browser.get("/login", params={"next": "/ledger"})
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith(f"{LOCAL_ISSUER}/protocol/openid-connect/auth?")
    asked = query(location)
    assert asked["response_type"] == "code" and asked["client_id"] == "icc-web" and asked["scope"] == "openid"
    assert asked["redirect_uri"] == "http://pages.test/auth/callback"
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert len(asked["state"]) >= 32 and len(asked["nonce"]) >= 32 and asked["state"] != asked["nonce"]
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"icc_login={asked['state']};") and "HttpOnly" in cookie and "SameSite=lax" in cookie


async def test_signing_in_sets_an_httponly_session_cookie_and_no_token_reaches_the_browser(browser) -> None:
    back = await sign_in(browser)
    assert back.status_code == 303 and back.headers["location"] == "/ledger"
    cookie = [c for c in back.headers.get_list("set-cookie") if c.startswith("icc_session=")][0]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    exchanged = browser.provider.token_requests[-1]
    assert exchanged["grant_type"] == "authorization_code" and len(exchanged["code_verifier"]) >= 43
    assert "eyJ" not in str(back.headers) and "eyJ" not in back.text  # no JWT in anything the browser sees
    answer = await browser.get("/ledger")
    assert answer.status_code == 200 and answer.json() == {"username": "fran"}


async def test_a_callback_this_browser_did_not_start_is_refused(browser) -> None:
    started = await browser.get("/login")
    code = browser.provider.authorize(started.headers["location"])
    browser.cookies.clear()  # another browser (or an attacker's link) brings the state back
    answer = await browser.get("/auth/callback", params={"state": query(started.headers["location"])["state"], "code": code})
    assert answer.status_code == 400 and "did not start in this browser" in answer.text
    assert "icc_session" not in answer.headers.get("set-cookie", "")


async def test_a_replayed_sign_in_is_refused(browser) -> None:
    started = await browser.get("/login")
    state = query(started.headers["location"])["state"]
    code = browser.provider.authorize(started.headers["location"])
    assert (await browser.get("/auth/callback", params={"state": state, "code": code})).status_code == 303
    browser.cookies.set("icc_login", state, domain="pages.test", path="/auth")
    again = await browser.get("/auth/callback", params={"state": state, "code": code})
    assert again.status_code == 400 and "unknown" in again.text


async def test_the_destination_after_sign_in_is_always_on_this_site(browser) -> None:
    assert (await sign_in(browser, "https://evil.example/phish")).headers["location"] == "/"
    assert (await sign_in(browser, "//evil.example")).headers["location"] == "/"


async def test_an_expired_access_token_is_renewed_and_a_refused_renewal_signs_out(browser) -> None:
    browser.provider.access_lifetime = 10  # already within the renewal margin
    await sign_in(browser)
    assert (await browser.get("/ledger")).status_code == 200
    assert browser.provider.token_requests[-1]["grant_type"] == "refresh_token"
    browser.provider.refuse_refresh = True  # the provider's session ended
    answer = await browser.get("/ledger")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/login?next=/ledger")


async def test_signing_out_ends_the_session_here_and_at_the_provider(browser) -> None:
    await sign_in(browser)
    answer = await browser.get("/logout", params={"next": "/ledger"})
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith(f"{LOCAL_ISSUER}/protocol/openid-connect/logout?")
    asked = query(location)
    assert asked["client_id"] == "icc-web" and asked["id_token_hint"].startswith("eyJ")
    assert asked["post_logout_redirect_uri"] == "http://pages.test/signed-out?next=%2Fledger"
    assert 'icc_session=""' in answer.headers["set-cookie"]
    assert (await browser.get("/ledger")).status_code == 303
    signed_out = await browser.get("/signed-out", params={"next": "/ledger"})
    assert "You are signed out" in signed_out.text and "/login?next=%2Fledger" in signed_out.text


async def test_a_signed_in_person_without_the_role_gets_a_403_page(identity) -> None:
    provider = identity.transport({"username": "ana", "roles": ["delegate"]})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=site(identity, provider)), base_url="http://pages.test") as browser:
        browser.provider = provider
        await sign_in(browser)
        answer = await browser.get("/ledger")
    assert answer.status_code == 403 and answer.headers["content-type"].startswith("text/html")
    assert "needs the role finance" in answer.text and "ana" in answer.text and "/logout" in answer.text


async def test_a_bearer_token_opens_a_page_too(identity, browser) -> None:
    answer = await browser.get("/ledger", headers=identity.bearer("finance", username="script"))
    assert answer.status_code == 200 and answer.json() == {"username": "script"}
