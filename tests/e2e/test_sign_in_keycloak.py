"""Against the real Keycloak (realm icc from deploy/keycloak/realm-icc.json): the tokens it issues
pass the services' verifier, fetching the keys over HTTP, with the roles, city and audience the
services rely on."""

import base64
import json
from uuid import uuid4

import httpx
import pytest

from deploy.keycloak.admin import KeycloakAdmin
from services.common.auth import JwksKeys, TokenVerifier
from services.finance.app import build_app
from services.finance.settings import FinanceSettings
from tests.support import password_grant, running


def verifier(keycloak_url: str) -> TokenVerifier:
    issuer = f"{keycloak_url}/realms/icc"
    return TokenVerifier(issuer, "icc-api", JwksKeys.over_http(issuer))


def unverified_claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def test_a_finance_officer_signs_in_with_the_password_grant(keycloak_url) -> None:
    token = await password_grant(keycloak_url, "finance", "finance-pass")
    principal = await verifier(keycloak_url).verify(token)
    assert sorted(principal.roles) == ["finance"]
    assert principal.username == "finance" and principal.email == "finance@icc.example.org"
    assert principal.via == "app_user" and principal.city_id is None
    claims = unverified_claims(token)
    assert claims["aud"] == "icc-api" and claims["roles"] == ["finance"]  # nothing else: no `account`, no default roles


async def test_a_delegate_added_with_add_user_carries_the_city(keycloak_url) -> None:
    city = uuid4()
    with KeycloakAdmin(keycloak_url) as admin:
        admin.upsert_user("test-delegate", "test-delegate@icc.example.org", ["city_coordinator"], city_id=uuid4())
        user = admin.upsert_user("test-delegate", "delegate@icc.example.org", ["delegate"], city_id=city)  # updated
    principal = await verifier(keycloak_url).verify(await password_grant(keycloak_url, "test-delegate", "test-delegate-pass"))
    assert principal.subject == user.id
    assert sorted(principal.roles) == ["delegate"] and principal.city_id == city and principal.is_city(city)
    assert principal.email == "delegate@icc.example.org"


async def test_a_process_acting_as_itself_is_a_service_account(keycloak_url) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(f"{keycloak_url}/realms/icc/protocol/openid-connect/token", data={
            "grant_type": "client_credentials", "client_id": "icc-services", "client_secret": "icc-services-local-secret"})
    principal = await verifier(keycloak_url).verify(answer.json()["access_token"])
    assert principal.via == "service_account" and principal.username == "service-account-icc-services"


@pytest.mark.parametrize("who", [("auditor", 200), ("organiser", 403)])
async def test_a_service_checks_real_tokens_with_keys_fetched_over_http(keycloak_url, tmp_path, who) -> None:
    username, status = who
    settings = FinanceSettings(KEYCLOAK_URL=keycloak_url, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
                               DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/finance.db")
    async with running(build_app(settings), stand_in=False) as finance:
        token = await password_grant(keycloak_url, username, f"{username}-pass")
        answer = await finance.get("/dashboard", headers={"authorization": f"Bearer {token}"})
        assert answer.status_code == status
        assert (await finance.get("/dashboard")).status_code == 303  # signed out: to the login
