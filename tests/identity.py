"""A stand-in identity provider for tests: an RSA key of its own, its JWKS handed to the services'
verifier without a network (`build_app(settings, keys=identity.keys())`), and access tokens signed
for any roles, city or e-mail. The verifier under test is the real one; only where the keys come
from differs. For the browser sign-in it also plays the provider's HTTP endpoints (`transport()`)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlparse

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from services.common.auth import ROLES, JwksKeys
from services.common.settings import LOCAL_ISSUER


TEST_KEYS = "the test identity provider"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TestIdentity:
    __test__ = False  # not a test class

    def __init__(self, issuer: str = LOCAL_ISSUER, audience: str = "icc-api"):
        self.issuer, self.audience = issuer, audience
        self._signing: dict[str, rsa.RSAPrivateKey] = {}
        self.kid = self.rotate()
        self.reachable = True  # False: the JWKS endpoint fails like a provider that is down
        self.jwks_fetches = 0

    # --- keys -------------------------------------------------------------------------------

    def rotate(self, *, keep_old: bool = True) -> str:
        """A new signing key (as the provider rotates), published under a new key id."""
        kid = f"test-{uuid.uuid4().hex[:8]}"
        if not keep_old:
            self._signing.clear()
        self._signing[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = kid
        return kid

    def public_key(self, kid: str | None = None):
        return self._signing[kid or self.kid].public_key()

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, private in self._signing.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
            keys.append({**jwk, "kid": kid, "alg": "RS256", "use": "sig"})
        return {"keys": keys}

    async def _fetch(self) -> dict[str, Any]:
        self.jwks_fetches += 1
        if not self.reachable:
            raise httpx.ConnectError("connection refused (test provider is down)")
        return self.jwks()

    def keys(self, *, min_interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> JwksKeys:
        """What a service gets instead of the provider's keys over HTTP."""
        return JwksKeys(self._fetch, min_interval=min_interval, source=TEST_KEYS, clock=clock)

    @contextmanager
    def serving_jwks(self) -> Iterator[str]:
        """The JWKS on a local HTTP port, for services run as processes: yields the URL to put in
        their OIDC_JWKS_URL (with OIDC_ISSUER = `self.issuer`)."""
        document = json.dumps(self.jwks()).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(document)))
                self.end_headers()
                self.wfile.write(document)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/jwks"
        finally:
            server.shutdown()
            server.server_close()

    # --- tokens -----------------------------------------------------------------------------

    def claims(
        self,
        *roles: str,
        username: str = "someone",
        email: str | None = None,
        city_id: uuid.UUID | str | None = None,
        expires_in: float = 300,
        audience: str | list[str] | None = None,
        service_account: bool = False,
        **extra: Any,
    ) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": str(uuid.uuid5(uuid.NAMESPACE_DNS, username)), "aud": audience or self.audience,
            "iat": now, "exp": int(now + expires_in), "typ": "Bearer", "azp": "icc-cli",
            "preferred_username": username, "roles": list(roles),
        }
        if email:
            claims["email"] = email
        if city_id:
            claims["city_id"] = str(city_id)
        if service_account:
            claims["client_id"] = claims["azp"] = "icc-services"
        return {**claims, **extra}

    def sign(self, claims: dict[str, Any], *, kid: str | None = None, algorithm: str = "RS256") -> str:
        return jwt.encode(claims, self._signing[kid or self.kid], algorithm=algorithm, headers={"kid": kid or self.kid})

    def token(self, *roles: str, **kwargs: Any) -> str:
        """An access token as Keycloak would issue it for the realm icc (see `claims` for the options)."""
        return self.sign(self.claims(*roles, **kwargs))

    def bearer(self, *roles: str, **kwargs: Any) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(*roles, **kwargs)}"}

    @staticmethod
    def forged(header: dict[str, Any], claims: dict[str, Any], signature: Callable[[bytes], bytes] = lambda _: b"") -> str:
        """A token built by hand (alg none, HS256 with the public key as secret...)."""
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
        return f"{signing_input}.{_b64(signature(signing_input.encode()))}"

    # --- the provider's HTTP endpoints, for the browser sign-in ---------------------------------

    def transport(self, user: dict[str, Any]) -> ProviderDouble:
        return ProviderDouble(self, user)


class ProviderDouble(httpx.MockTransport):
    """Discovery, token endpoint (authorization code with PKCE, refresh) and end-session of the realm,
    for the sign-in flow's tests. `user` are the token options (`TestIdentity.claims` keywords);
    `authorize(url)` plays the browser at the login page and returns the code."""

    def __init__(self, identity: TestIdentity, user: dict[str, Any]):
        super().__init__(self._handle)
        self.identity, self.user = identity, user
        self.codes: dict[str, dict[str, str]] = {}
        self.refresh_tokens: set[str] = set()
        self.token_requests: list[dict[str, str]] = []
        self.access_lifetime = 300
        self.refuse_refresh = False

    @property
    def base(self) -> str:
        return f"{self.identity.issuer}/protocol/openid-connect"

    def authorize(self, url: str) -> str:
        query = {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}
        code = uuid.uuid4().hex
        self.codes[code] = query
        return code

    def _tokens(self, nonce: str | None) -> dict[str, Any]:
        access = self.identity.sign(self.identity.claims(**{**self.user, "expires_in": self.access_lifetime}))
        refresh = uuid.uuid4().hex
        self.refresh_tokens.add(refresh)
        id_claims = self.identity.claims(**self.user, typ="ID", aud="icc-web")
        if nonce:
            id_claims["nonce"] = nonce
        return {"access_token": access, "expires_in": self.access_lifetime, "refresh_token": refresh,
                "refresh_expires_in": 1800, "id_token": self.identity.sign(id_claims), "token_type": "Bearer"}

    def _handle(self, request: httpx.Request) -> httpx.Response:
        url = str(request.url).split("?")[0]
        if url == f"{self.identity.issuer}/.well-known/openid-configuration":
            return httpx.Response(200, json={
                "issuer": self.identity.issuer, "authorization_endpoint": f"{self.base}/auth",
                "token_endpoint": f"{self.base}/token", "jwks_uri": f"{self.base}/certs",
                "end_session_endpoint": f"{self.base}/logout",
            })
        if url == f"{self.base}/token":
            form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
            self.token_requests.append(form)
            basic = base64.b64decode(request.headers["authorization"].split()[1]).decode()
            if basic != "icc-web:icc-web-local-secret":
                return httpx.Response(401, json={"error": "unauthorized_client"})
            if form["grant_type"] == "authorization_code":
                asked = self.codes.pop(form["code"], None)
                challenge = _b64(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
                if asked is None or asked["code_challenge"] != challenge or asked["redirect_uri"] != form["redirect_uri"]:
                    return httpx.Response(400, json={"error": "invalid_grant", "error_description": "PKCE or code mismatch"})
                return httpx.Response(200, json=self._tokens(asked.get("nonce")))
            if form["grant_type"] == "refresh_token":
                if self.refuse_refresh or form["refresh_token"] not in self.refresh_tokens:
                    return httpx.Response(400, json={"error": "invalid_grant", "error_description": "Session not active"})
                return httpx.Response(200, json=self._tokens(None))
        return httpx.Response(404)


# The tests' default identity provider: apps that a test runs without keys of its own trust it
# (tests.support.running), and their client signs in as STAFF unless the test says otherwise.
STAND_IN = TestIdentity()
# Every role: a caller every route lets in, with no city scope (it holds network-wide roles).
ALL_ROLES = ROLES


def staff_headers() -> dict[str, str]:
    return STAND_IN.bearer(*ALL_ROLES, username="test-staff", email="staff@coe.example", expires_in=6 * 3600)
