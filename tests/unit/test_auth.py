"""Token checking (services/common/auth.py) with a test key: what is accepted, what is refused and
how, the key cache's refetch limit, the HTTP answers (401/403/503) and the route rules."""

import hashlib
import hmac
import json
from pathlib import Path
from uuid import uuid4

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI

from services.common import auth
from services.common.auth import InvalidToken, Principal, ProviderUnavailable, TokenVerifier, public, require, rules
from services.common.settings import LOCAL_ISSUER
from services.finance.settings import FinanceSettings
from tests.identity import TestIdentity
from tests.support import eventually

REALM_FILE = Path(__file__).parents[2] / "deploy" / "keycloak" / "realm-icc.json"


def verifier(identity: TestIdentity, **keys) -> TokenVerifier:
    return TokenVerifier(LOCAL_ISSUER, "icc-api", identity.keys(**keys), frozenset({"RS256"}), leeway=30)


# --- what is accepted ---------------------------------------------------------------------


async def test_a_valid_token_gives_its_principal(identity) -> None:
    city = uuid4()
    token = identity.token("delegate", "not-a-platform-role", username="ana", email="ana@example.org", city_id=city)
    principal = await verifier(identity).verify(token)
    assert principal.username == "ana" and principal.email == "ana@example.org"
    assert principal.roles == {"delegate"}  # roles the platform does not know grant nothing
    assert principal.city_id == city and principal.is_city(city) and principal.is_city(str(city))
    assert not principal.is_city(uuid4()) and not principal.is_city(None)
    assert principal.has("delegate", "finance") and not principal.has("finance")
    assert principal.via == "app_user" and not principal.is_service_account


async def test_a_client_credentials_token_is_a_service_account(identity) -> None:
    principal = await verifier(identity).verify(identity.token(username="service-account-icc-services", service_account=True))
    assert principal.via == "service_account" and principal.roles == frozenset() and principal.city_id is None


async def test_an_audience_list_that_includes_icc_api_is_accepted(identity) -> None:
    principal = await verifier(identity).verify(identity.token("finance", audience=["account", "icc-api"]))
    assert principal.roles == {"finance"}


async def test_a_token_expired_within_the_leeway_is_still_accepted(identity) -> None:
    assert (await verifier(identity).verify(identity.token("finance", expires_in=-10))).roles == {"finance"}


async def test_a_verified_token_is_not_checked_again_until_it_expires_then_it_is_refused(identity) -> None:
    keys, lookups = identity.keys(), []

    class Counting:
        async def key(self, kid: str):
            lookups.append(kid)
            return await keys.key(kid)

    checker = TokenVerifier(LOCAL_ISSUER, "icc-api", Counting(), frozenset({"RS256"}), leeway=0)
    token = identity.token("finance", expires_in=2)
    assert (await checker.verify(token)).roles == {"finance"}
    assert (await checker.verify(token)).roles == {"finance"} and len(lookups) == 1  # remembered: no second check

    async def refused_as_expired() -> bool:
        try:
            await checker.verify(token)
        except InvalidToken as err:
            return "expired" in str(err)
        return False

    assert await eventually(refused_as_expired, timeout=10, what="the remembered token refused once expired")


async def test_the_verified_tokens_remembered_are_bounded_least_recently_used_first(identity) -> None:
    checker = verifier(identity)
    checker.verified_max = 2
    first, second, third = (identity.token("finance", username=name) for name in ("a", "b", "c"))
    for token in (first, second, first, third):  # `first` used again: `second` is the least recent
        await checker.verify(token)
    assert list(checker.verified) == [first, third]


# --- what is refused ----------------------------------------------------------------------


async def refused(identity: TestIdentity, token: str) -> str:
    with pytest.raises(InvalidToken) as err:
        await verifier(identity).verify(token)
    return str(err.value)


async def test_an_expired_token_is_refused(identity) -> None:
    assert "expired" in await refused(identity, identity.token("finance", expires_in=-120))


async def test_a_token_from_another_issuer_is_refused(identity) -> None:
    token = identity.sign(identity.claims("finance", iss="http://127.0.0.1:8180/realms/master"))
    assert "not issued by http://127.0.0.1:8180/realms/icc" in await refused(identity, token)


@pytest.mark.parametrize("audience", ["account", ["account", "broker"], "icc-web"])
async def test_a_token_not_meant_for_icc_api_is_refused(identity, audience) -> None:
    assert "not meant for icc-api" in await refused(identity, identity.token("finance", audience=audience))


async def test_a_token_without_audience_is_refused(identity) -> None:
    claims = identity.claims("finance")
    del claims["aud"]
    assert "aud" in await refused(identity, identity.sign(claims))


async def test_an_id_token_is_not_an_access_token(identity) -> None:
    assert "ID token" in await refused(identity, identity.sign(identity.claims("finance", typ="ID")))


async def test_alg_none_is_refused_before_any_key_is_fetched(identity) -> None:
    token = identity.forged({"alg": "none", "typ": "JWT", "kid": identity.kid}, identity.claims("finance"))
    assert "algorithm 'none' is not accepted" in await refused(identity, token)
    assert identity.jwks_fetches == 0


async def test_hs256_signed_with_the_public_key_as_secret_is_refused(identity) -> None:
    # The classic confusion attack: the public key is public, so an HMAC "signed" with it proves nothing.
    pem = identity.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    token = identity.forged({"alg": "HS256", "typ": "JWT", "kid": identity.kid}, identity.claims("finance"),
                            lambda data: hmac.new(pem, data, hashlib.sha256).digest())
    assert "algorithm 'HS256' is not accepted" in await refused(identity, token)


async def test_a_tampered_token_is_refused(identity) -> None:
    header, payload, signature = identity.token("delegate").split(".")
    forged_payload = identity.forged({}, identity.claims("finance")).split(".")[1]
    assert "not valid" in await refused(identity, f"{header}.{forged_payload}.{signature}")


async def test_garbage_is_refused(identity) -> None:
    assert "not a JSON Web Token" in await refused(identity, "not-a-token")


async def test_a_verifier_cannot_be_configured_for_hs256(identity) -> None:
    with pytest.raises(ValueError, match="HS256"):
        TokenVerifier(LOCAL_ISSUER, "icc-api", identity.keys(), frozenset({"RS256", "HS256"}))
    with pytest.raises(ValueError, match="HS256"):
        FinanceSettings(oidc_algorithms=["HS256"])
    with pytest.raises(ValueError, match="none"):
        FinanceSettings(oidc_algorithms=["none"])


# --- the key cache ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_an_unknown_kid_refetches_once_and_a_flood_of_them_does_not_hammer_the_provider(identity) -> None:
    clock = Clock()
    check = TokenVerifier(LOCAL_ISSUER, "icc-api", identity.keys(min_interval=10, clock=clock))
    await check.verify(identity.token("finance"))
    assert identity.jwks_fetches == 1
    await check.verify(identity.token("finance"))
    assert identity.jwks_fetches == 1  # cached

    stranger = TestIdentity()  # same issuer, a key the provider never published
    with pytest.raises(InvalidToken, match="does not publish"):
        await check.verify(stranger.token("finance"))
    assert identity.jwks_fetches == 1  # fetched a moment ago: not asked again yet
    clock.now += 10
    for _ in range(50):
        with pytest.raises(InvalidToken, match="does not publish"):
            await check.verify(stranger.token("finance"))
    assert identity.jwks_fetches == 2  # one refetch for the first unknown kid, then none

    # The provider rotates its key: found on the next refetch, once the interval has passed.
    identity.rotate()
    rotated = identity.token("finance")
    with pytest.raises(InvalidToken, match="does not publish"):
        await check.verify(rotated)
    assert identity.jwks_fetches == 2
    clock.now += 10
    assert (await check.verify(rotated)).roles == {"finance"}
    assert identity.jwks_fetches == 3


async def test_a_provider_that_is_down_gives_unavailable_for_new_keys_and_cached_keys_keep_working(identity) -> None:
    clock = Clock()
    check = TokenVerifier(LOCAL_ISSUER, "icc-api", identity.keys(min_interval=10, clock=clock))
    identity.reachable = False
    with pytest.raises(ProviderUnavailable, match="cannot be reached"):
        await check.verify(identity.token("finance"))
    with pytest.raises(ProviderUnavailable):  # answered from the last failure: no new attempt
        await check.verify(identity.token("finance"))
    assert identity.jwks_fetches == 1

    identity.reachable = True
    clock.now += 10
    await check.verify(identity.token("finance"))
    identity.reachable = False
    assert (await check.verify(identity.token("auditor"))).roles == {"auditor"}  # cached key, no fetch
    assert identity.jwks_fetches == 2


async def test_keys_over_http_come_from_the_discovery_document(identity) -> None:
    calls: list[str] = []

    def provider(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/realms/icc/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": LOCAL_ISSUER, "jwks_uri": f"{LOCAL_ISSUER}/protocol/openid-connect/certs"})
        return httpx.Response(200, json={"keys": [*identity.jwks()["keys"], {"kty": "RSA", "use": "enc", "kid": "enc", "n": "x", "e": "AQAB"}]})

    keys = auth.JwksKeys.over_http(LOCAL_ISSUER, transport=httpx.MockTransport(provider))
    check = TokenVerifier(LOCAL_ISSUER, "icc-api", keys)
    assert (await check.verify(identity.token("finance"))).roles == {"finance"}
    assert calls == ["/realms/icc/.well-known/openid-configuration", "/realms/icc/protocol/openid-connect/certs"]


# --- FastAPI: 401, 403, 503 and the route rules ---------------------------------------------


def app_with(identity: TestIdentity, **keys) -> FastAPI:
    app = FastAPI()
    auth.install(app, verifier(identity, **keys))

    @app.get("/ledger", dependencies=[require("finance", "auditor")])
    async def ledger() -> dict:
        return {"ok": True}

    @app.get("/me")
    async def me(principal: Principal = require()) -> dict:
        return {"username": principal.username, "roles": sorted(principal.roles)}

    @app.get("/open", dependencies=[public])
    async def open_route() -> dict:
        return {}

    @app.get("/forgotten")
    async def forgotten() -> dict:
        return {}

    return app


async def call(app: FastAPI, path: str, headers: dict | None = None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as client:
        return await client.get(path, headers=headers or {})


async def test_no_token_is_401_with_a_bearer_challenge(identity) -> None:
    answer = await call(app_with(identity), "/ledger")
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="icc"'
    assert "Authorization: Bearer" in answer.json()["detail"]


async def test_a_bad_token_is_401_invalid_token_saying_why(identity) -> None:
    answer = await call(app_with(identity), "/ledger", identity.bearer("finance", expires_in=-120))
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith('Bearer realm="icc", error="invalid_token"')
    assert "expired" in answer.headers["www-authenticate"] and "expired" in answer.json()["detail"]


async def test_the_wrong_role_is_403_naming_the_roles_needed(identity) -> None:
    answer = await call(app_with(identity), "/ledger", identity.bearer("delegate", username="ana"))
    assert answer.status_code == 403
    assert answer.json()["detail"] == "this needs one of the roles finance, auditor; ana has delegate"
    assert (await call(app_with(identity), "/ledger", identity.bearer("auditor"))).status_code == 200


async def test_require_without_roles_takes_anyone_signed_in_and_gives_the_principal(identity) -> None:
    answer = await call(app_with(identity), "/me", identity.bearer(username="svc", service_account=True))
    assert answer.json() == {"username": "svc", "roles": []}


async def test_a_provider_that_is_down_is_503_not_500(identity) -> None:
    identity.reachable = False
    answer = await call(app_with(identity), "/ledger", identity.bearer("finance"))
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert "cannot be reached" in answer.json()["detail"]


def test_a_rule_with_an_unknown_role_fails_where_it_is_declared() -> None:
    with pytest.raises(ValueError, match="unknown role"):
        require("finanse")


def test_every_route_tells_its_rule(identity) -> None:
    found = {path: rule for _, path, rule in rules(app_with(identity))}
    assert found["/ledger"].roles == ("finance", "auditor") and not found["/ledger"].session
    assert found["/me"].roles == ()
    assert found["/open"] is auth.public.dependency
    assert found["/forgotten"] is None  # what a walk over all routes will flag


def test_the_openapi_document_offers_bearer_sign_in_on_protected_routes(identity) -> None:
    document = app_with(identity).openapi()
    assert document["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": auth.bearer.model.description,
    }
    assert document["paths"]["/ledger"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in document["paths"]["/open"]["get"]


# --- settings and the realm ---------------------------------------------------------------


def test_the_issuer_follows_keycloak_url_unless_named(monkeypatch) -> None:
    monkeypatch.delenv("OIDC_ISSUER", raising=False)
    monkeypatch.delenv("KEYCLOAK_URL", raising=False)
    assert FinanceSettings().oidc_issuer == "http://127.0.0.1:8180/realms/icc"
    monkeypatch.setenv("KEYCLOAK_URL", "https://id.example.org/")
    assert FinanceSettings().oidc_issuer == "https://id.example.org/realms/icc"
    monkeypatch.setenv("OIDC_ISSUER", "https://other.example.org/realms/icc")
    assert FinanceSettings().oidc_issuer == "https://other.example.org/realms/icc"


def test_the_realm_declares_the_platform_roles_and_what_tokens_carry() -> None:
    realm = json.loads(REALM_FILE.read_text())
    assert [r["name"] for r in realm["roles"]["realm"]] == list(auth.ROLES)
    clients = {c["clientId"]: c for c in realm["clients"]}
    assert clients["icc-cli"]["publicClient"] and clients["icc-cli"]["directAccessGrantsEnabled"]
    web = clients["icc-web"]
    assert not web["publicClient"] and web["standardFlowEnabled"] and web["attributes"]["pkce.code.challenge.method"] == "S256"
    assert set(web["redirectUris"]) == {"http://127.0.0.1:8000/auth/callback", "http://127.0.0.1:8004/auth/callback"}
    assert clients["icc-services"]["serviceAccountsEnabled"]
    [scope] = realm["clientScopes"]
    mappers = {m["name"]: m["config"] for m in scope["protocolMappers"]}
    assert mappers["audience icc-api"]["included.custom.audience"] == "icc-api"
    assert mappers["roles"]["claim.name"] == "roles" and mappers["city_id"]["user.attribute"] == "city_id"
    profile = json.loads(realm["components"]["org.keycloak.userprofile.UserProfileProvider"][0]["config"]["kc.user.profile.config"][0])
    assert "city_id" in [a["name"] for a in profile["attributes"]]
    users = {u["username"]: u for u in realm["users"]}
    for name in ("secretariat", "organiser", "finance", "auditor"):
        assert users[name]["realmRoles"] == [name] and users[name]["credentials"][0]["value"] == f"{name}-pass"


def test_published_keys_are_public_signing_keys_only(identity) -> None:
    with pytest.raises(ValueError, match="not a JWKS"):
        auth._parse_jwks({"not": "keys"})
    secret = {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac", "alg": "HS256"}
    assert list(auth._parse_jwks({"keys": [secret, *identity.jwks()["keys"]]})) == [identity.kid]
