"""Who is calling: access tokens from the identity provider (Keycloak, realm `icc`), checked once for
every service.

A request carries `Authorization: Bearer <access token>` (scripts, other programs), or, on the
routes that accept it, the session cookie of a browser signed in through `services.common.login`.
A token is accepted when its signature verifies against the provider's published keys (JWKS,
fetched over HTTP and cached; refetched on an unknown key id at most once per
`oidc_key_refresh_seconds`), its algorithm is in the allow-list (never `none` or HS*), its issuer
is ours, it has not expired (small leeway), and its audience includes `icc-api` (a token meant only
for Keycloak's `account` client is refused).

Each route states who may call it, in its own signature, with one of:

    dependencies=[require("finance")]                 # a bearer token with the role finance
    principal: Annotated[Principal, require("finance", "auditor")]
    dependencies=[require("finance", session=True)]   # ... or the browser session (GET pages' data)
    dependencies=[page("finance", "auditor")]         # an HTML page: signed out -> the login page
    dependencies=[public]                             # deliberately open

`rules(app)` lists every route with its rule, so a test can walk all routes and find each one's.
"""

from __future__ import annotations

import asyncio
import logging
from html import escape
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import quote
from uuid import UUID

import httpx
import jwt
from contracts.envelope import Actor
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

log = logging.getLogger("icc.auth")

# The platform's roles: exactly the realm roles of deploy/keycloak/realm-icc.json.
ROLES = ("secretariat", "organiser", "delegate", "city_coordinator", "finance", "auditor")
# Asymmetric signatures only: HS* would let anyone holding the (public) key sign; `none` signs nothing.
ALLOWED_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})


class InvalidToken(Exception):
    """The token is not one we accept (401 with `error="invalid_token"`); the message says why."""


class ProviderUnavailable(Exception):
    """The identity provider cannot be reached for a key we do not have (503: try again)."""


# Roles that act for the whole network; the others (delegate, city_coordinator) act for a city.
STAFF = ("secretariat", "organiser", "finance", "auditor")


@dataclass(frozen=True)
class Scope:
    """The records a principal may see: everything, or those of one city (a coordinator's), or a
    delegate's own (their e-mail address, in their city). Others' records answer 404, not 403, so
    that an id reveals nothing; lists leave them out."""

    everything: bool = False
    city_id: UUID | None = None
    email: str | None = None
    delegate_city_id: UUID | None = None

    def covers(self, *, city_id: UUID | str | None, email: str | None = None) -> bool:
        """Whether a record of `city_id` (a delegate's, with `email`) is in scope."""
        if self.everything:
            return True
        if self.city_id is not None and city_id is not None and str(city_id) == str(self.city_id):
            return True
        return self.owns(city_id=city_id, email=email)

    def owns(self, *, city_id: UUID | str | None, email: str | None) -> bool:
        """A delegate's own record: their address, in their city."""
        return (self.email is not None and email is not None and email.casefold() == self.email.casefold()
                and (self.delegate_city_id is None or city_id is None or str(city_id) == str(self.delegate_city_id)))

    @property
    def cities(self) -> set[UUID] | None:
        """The cities whose records are in scope: None for all."""
        if self.everything:
            return None
        return {c for c in (self.city_id, self.delegate_city_id) if c is not None}


@dataclass(frozen=True)
class Principal:
    """The person (or process) behind a request, as the identity provider vouches for it."""

    subject: str
    username: str
    email: str | None
    roles: frozenset[str]
    city_id: UUID | None
    via: Literal["app_user", "service_account"]

    def has(self, *roles: str) -> bool:
        """Holds at least one of `roles`."""
        return not self.roles.isdisjoint(roles)

    def is_city(self, city_id: UUID | str | None) -> bool:
        """Speaks for this member city (a delegate's or coordinator's own city)."""
        return self.city_id is not None and city_id is not None and str(self.city_id) == str(city_id)

    @property
    def is_service_account(self) -> bool:
        return self.via == "service_account"

    @property
    def actor(self) -> Actor:
        """As the events this principal causes name them (never the token)."""
        return Actor(auth_type=self.via, auth_id=self.subject, name=self.username)

    def scope(self) -> Scope:
        """Which records this principal may see among those a route lets its roles reach: all of
        them for the staff roles; else its city's (a coordinator) and its own (a delegate)."""
        if self.has(*STAFF):
            return Scope(everything=True)
        return Scope(
            city_id=self.city_id if "city_coordinator" in self.roles else None,
            email=self.email if "delegate" in self.roles else None,
            delegate_city_id=self.city_id if "delegate" in self.roles else None,
        )

    @classmethod
    def of(cls, claims: dict[str, Any]) -> Principal:
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidToken("the roles claim is not a list of role names")
        city = claims.get("city_id")
        try:
            city_id = UUID(city) if city else None
        except (ValueError, TypeError, AttributeError):
            raise InvalidToken("the city_id claim is not a UUID") from None
        return cls(
            subject=claims["sub"],
            username=claims.get("preferred_username") or claims["sub"],
            email=claims.get("email"),
            # Roles the platform does not know (none, with realm-icc.json) grant nothing here.
            roles=frozenset(r for r in roles if r in ROLES),
            city_id=city_id,
            # Keycloak names the client in `client_id` only in a client-credentials token.
            via="service_account" if "client_id" in claims else "app_user",
        )


# --- the provider's keys ------------------------------------------------------------------


class KeySource(Protocol):
    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The verification key `kid`, or None when the provider does not publish it."""


JwksFetch = Callable[[], Awaitable[dict[str, Any]]]


class JwksKeys:
    """The provider's signing keys, from its JWKS document, cached. An unknown key id (the provider
    rotated its keys) triggers one refetch, but at most one fetch per `min_interval` seconds
    whatever the traffic, so a flood of made-up key ids cannot hammer the provider. While the
    provider is down, keys already cached keep working."""

    def __init__(
        self, fetch: JwksFetch, *, min_interval: float = 10.0, source: str = "the identity provider",
        clock: Callable[[], float] = time.monotonic,
    ):
        self._fetch = fetch
        self._min_interval = min_interval
        self._clock = clock
        self._source = source
        self._keys: dict[str, jwt.PyJWK] = {}
        self._last_attempt: float | None = None
        self._last_error: str | None = None
        self._lock = asyncio.Lock()
        self.fetches = 0  # how often the provider was asked (observability, tests)

    @classmethod
    def over_http(
        cls, issuer: str, jwks_url: str | None = None, *, min_interval: float = 10.0, timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> JwksKeys:
        """Keys from `jwks_url`, or from the `jwks_uri` of the issuer's discovery document."""
        found: dict[str, str] = {}

        async def fetch() -> dict[str, Any]:
            async with httpx.AsyncClient(timeout=timeout, transport=transport) as http:
                url = jwks_url or found.get("jwks_uri")
                if url is None:
                    found["jwks_uri"] = url = (await discover(http, issuer))["jwks_uri"]
                response = await http.get(url)
                response.raise_for_status()
                return response.json()

        return cls(fetch, min_interval=min_interval, source=jwks_url or issuer)

    async def key(self, kid: str) -> jwt.PyJWK | None:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:  # concurrent unknown kids share one fetch
            if kid in self._keys:
                return self._keys[kid]
            now = self._clock()
            if self._last_attempt is not None and now - self._last_attempt < self._min_interval:
                if self._last_error is not None:
                    raise ProviderUnavailable(self._unavailable(self._last_error))
                return None  # fetched a moment ago and it was not there
            self._last_attempt = now
            self.fetches += 1
            try:
                document = await self._fetch()
                keys = _parse_jwks(document)
            except Exception as err:
                self._last_error = f"{type(err).__name__}: {err}"
                log.warning("cannot fetch the provider's signing keys", extra={"source": self._source, "error": self._last_error})
                raise ProviderUnavailable(self._unavailable(self._last_error)) from None
            self._last_error = None
            self._keys = keys
            log.info("fetched the provider's signing keys", extra={"source": self._source, "kids": sorted(keys)})
            return keys.get(kid)

    def _unavailable(self, error: str) -> str:
        return (f"the identity provider ({self._source}) cannot be reached to fetch the key that signed this "
                f"token ({error}); try again in a few seconds")


def _parse_jwks(document: dict[str, Any]) -> dict[str, jwt.PyJWK]:
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (no 'keys' list)")
    keys = {}
    for entry in document["keys"]:
        if entry.get("use", "sig") != "sig" or "kid" not in entry or entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue  # encryption keys, shared secrets, keys no token can name
        try:
            keys[entry["kid"]] = jwt.PyJWK(entry)
        except jwt.PyJWKError:
            continue  # a key type this verifier does not use
    return keys


async def discover(http: httpx.AsyncClient, issuer: str) -> dict[str, Any]:
    """The issuer's OpenID discovery document, after checking it names the same issuer."""
    response = await http.get(f"{issuer}/.well-known/openid-configuration")
    response.raise_for_status()
    document = response.json()
    if document.get("issuer") != issuer:
        raise ValueError(f"the discovery document names issuer {document.get('issuer')!r}, not {issuer!r}")
    return document


# --- verification ---------------------------------------------------------------------------


@dataclass
class TokenVerifier:
    issuer: str
    audience: str
    keys: KeySource
    algorithms: frozenset[str] = field(default_factory=lambda: frozenset({"RS256"}))
    leeway: float = 30.0
    # Access tokens verified already, each with the time until which it is accepted (its `exp` plus
    # the leeway): a client sends the same token with every request for its lifetime, and the RSA
    # check and claim parsing were a twentieth of a request's CPU. Bounded; the least recently used go.
    verified: OrderedDict[str, tuple[float, Principal]] = field(default_factory=OrderedDict, init=False, repr=False)
    verified_max: int = 1024

    def __post_init__(self) -> None:
        refused = set(self.algorithms) - ALLOWED_ALGORITHMS
        if refused:
            raise ValueError(f"algorithms {sorted(refused)} are not accepted; use asymmetric ones such as RS256")

    async def claims(self, token: str, *, audience: str | None = None, token_type: str = "Bearer") -> dict[str, Any]:
        """The verified claims of `token`, or InvalidToken saying why not."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidToken("not a JSON Web Token") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:  # checked before any key is looked up
            raise InvalidToken(f"signature algorithm {algorithm!r} is not accepted")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise InvalidToken("the token names no signing key (kid)")
        key = await self.keys.key(kid)
        if key is None:
            raise InvalidToken("signed with a key the identity provider does not publish")
        if key.algorithm_name != algorithm:
            raise InvalidToken(f"the key {kid!r} is for {key.algorithm_name}, not {algorithm}")
        try:
            claims = jwt.decode(
                token, key.key, algorithms=[algorithm], audience=audience or self.audience, issuer=self.issuer,
                leeway=self.leeway, options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken(f"the token is not meant for {audience or self.audience} (audience)") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken(f"the token was not issued by {self.issuer}") from None
        except jwt.PyJWTError as err:
            raise InvalidToken(f"the token is not valid: {err}") from None
        if claims.get("typ", token_type) != token_type:
            raise InvalidToken(f"a {claims['typ']} token, not a {token_type} token")
        return claims

    async def verify(self, token: str) -> Principal:
        """The principal of an access token meant for our audience, or InvalidToken."""
        if (known := self.verified.get(token)) is not None:
            if time.time() < known[0]:
                self.verified.move_to_end(token)
                return known[1]
            del self.verified[token]  # expired since: verified again, and refused as expired
        claims = await self.claims(token)
        principal = Principal.of(claims)
        self.verified[token] = (claims["exp"] + self.leeway, principal)
        if len(self.verified) > self.verified_max:
            self.verified.popitem(last=False)
        return principal


# --- FastAPI: the rules routes declare ------------------------------------------------------

bearer = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    scheme_name="bearer",
    description="An access token from the identity provider (realm icc, audience icc-api). For the local "
    "stack: curl -d grant_type=password -d client_id=icc-cli -d username=finance -d password=finance-pass "
    "http://127.0.0.1:8180/realms/icc/protocol/openid-connect/token",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _quoted(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")


class SignInRequired(Exception):
    """A page asked for by a signed-out browser: send it to the login."""

    def __init__(self, next_url: str):
        self.next_url = next_url


class PageForbidden(Exception):
    def __init__(self, principal: Principal, roles: tuple[str, ...]):
        self.principal, self.roles = principal, roles


def _needs(roles: tuple[str, ...]) -> str:
    return f"the role {roles[0]}" if len(roles) == 1 else f"one of the roles {', '.join(roles)}"


@dataclass(frozen=True, eq=False)
class Rule:
    """Who may call a route: someone holding one of `roles` (any signed-in principal if empty)."""

    roles: tuple[str, ...]
    session: bool = False  # a signed-in browser's session cookie counts too
    page: bool = False  # answered as a page: the login when signed out, an HTML 403

    async def __call__(self, request: Request, credentials: Credentials) -> Principal:
        principal = await self._principal(request, credentials)
        if self.roles and not principal.has(*self.roles):
            log.info("refused: missing role", extra={"user": principal.username, "path": request.url.path, "needs": self.roles})
            if self.page:
                raise PageForbidden(principal, self.roles)
            raise HTTPException(
                403, f"this needs {_needs(self.roles)}; {principal.username} has "
                f"{', '.join(sorted(principal.roles)) or 'no platform role'}",
                headers={"WWW-Authenticate": 'Bearer realm="icc", error="insufficient_scope"'},
            )
        request.state.principal = principal
        return principal

    async def _principal(self, request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
        verifier: TokenVerifier = request.app.state.auth
        if credentials is not None:
            try:
                return await verifier.verify(credentials.credentials)
            except InvalidToken as err:
                raise HTTPException(401, f"invalid token: {err}", headers={
                    "WWW-Authenticate": f'Bearer realm="icc", error="invalid_token", error_description="{_quoted(str(err))}"'
                }) from None
            except ProviderUnavailable as err:
                raise HTTPException(503, str(err), headers={"Retry-After": "5"}) from None
        if self.session:
            try:
                principal = await request.app.state.web_sessions.principal(request)
            except ProviderUnavailable as err:
                raise HTTPException(503, str(err), headers={"Retry-After": "5"}) from None
            if principal is not None:
                request.state.via_session = True
                return principal
        if self.page:
            raise SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
        raise HTTPException(401, "sign in: send an access token as 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": 'Bearer realm="icc"'})


async def still_signed_in(request: Request) -> bool:
    """For a long-lived answer (an event stream) opened with a browser session: whether that session
    still stands (not signed out, renewal not refused). Streams opened with a bearer token: True."""
    if not getattr(request.state, "via_session", False):
        return True
    try:
        return await request.app.state.web_sessions.principal(request) is not None
    except ProviderUnavailable:
        return True  # the provider is briefly away: the session itself was not ended


class Public:
    """Marks a route as deliberately open (so a walk over the routes can tell it from a forgotten one)."""

    roles: tuple[str, ...] = ()

    async def __call__(self) -> None:
        return None

    def __repr__(self) -> str:
        return "public"


def _checked(roles: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"unknown role(s) {unknown}; the platform's roles are {', '.join(ROLES)}")
    return roles


def require(*roles: str, session: bool = False) -> Any:
    """A route dependency: the caller holds one of `roles` (none given: any signed-in caller).
    401 when no or a bad token was sent, 403 naming the roles needed. Returns the Principal."""
    return Depends(Rule(_checked(roles), session=session))


def page(*roles: str) -> Any:
    """Like `require` for an HTML page: the browser session (or a bearer token); a signed-out visitor
    is sent to the login and back, one without the role gets a 403 page."""
    return Depends(Rule(_checked(roles), session=True, page=True))


public = Depends(Public())


def rules(app: FastAPI) -> Iterator[tuple[str, str, Rule | Public | None]]:
    """Every API route of `app` as (methods, path, its rule or None if it declares none)."""

    def found(dependant) -> Rule | Public | None:
        for dependency in dependant.dependencies:
            if isinstance(dependency.call, Rule | Public):
                return dependency.call
            if (inner := found(dependency)) is not None:
                return inner
        return None

    # Included routers are resolved lazily by FastAPI; its route contexts carry the effective
    # dependencies (the router's own included).
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, APIRoute):
            yield ",".join(sorted(route.methods or ())), route.path, found(route.dependant)


def install(app: FastAPI, verifier: TokenVerifier) -> None:
    """The verifier for the app's routes, and the answers pages get when signed out or refused."""
    app.state.auth = verifier

    @app.exception_handler(SignInRequired)
    async def sign_in(_: Request, err: SignInRequired) -> RedirectResponse:
        return RedirectResponse(f"/login?next={quote(err.next_url, safe='/')}", status_code=303)

    @app.exception_handler(PageForbidden)
    async def forbidden(_: Request, err: PageForbidden) -> HTMLResponse:
        name = err.principal.username
        held = ", ".join(sorted(err.principal.roles)) or "no platform role"
        return HTMLResponse(
            f"<!doctype html><meta charset=utf-8><title>Not allowed</title>"
            f"<body style='font-family:sans-serif;margin:3em'><h1>Not allowed</h1>"
            f"<p data-testid=forbidden>This page needs {_needs(err.roles)}. You are signed in as "
            f"<b>{escape(name)}</b> ({escape(held)}).</p><p><a href='/logout'>Sign out</a> to sign in as someone else.</p>",
            status_code=403,
        )
